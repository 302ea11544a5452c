"""The OpenAI-compatible client against servers on loopback: a scripted one that fails on
purpose (429, 500, a dropped connection, 401), and the real llama.cpp server with Gemma."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gradedrel.annotation.judgement import Pair
from gradedrel.annotation.llm_chat import (
    ChatAnnotator,
    ChatEndpoint,
    ChatSettings,
    chat_many,
    clean_generated_query,
    generate_queries,
)


class ScriptedChat(BaseHTTPRequestHandler):
    """Answers chat completions; prompts containing FAIL-<n>-<code> fail n times first."""
    failures: dict = {}
    lock = threading.Lock()
    status_for_all: int | None = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        if self.status_for_all:
            return self._send(self.status_for_all, {"error": {"message": "bad key"}})
        for token in prompt.split():
            if token.startswith("FAIL-"):
                _, n, code = token.split("-")
                with self.lock:
                    seen = self.failures.get(token, 0)
                    self.failures[token] = seen + 1
                if seen < int(n):
                    if code == "drop":
                        self.connection.close()
                        return
                    return self._send(int(code), {"error": {"message": "try later"}},
                                      {"retry-after-ms": "5"})
        answer = "[2]" if "GRADE2" in prompt else ("Query: \"who won\"" if "seeks information" in prompt else "[3]")
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": answer}}]})

    def _send(self, code, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted_server():
    ScriptedChat.failures, ScriptedChat.status_for_all = {}, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ChatEndpoint(model="scripted", base_url=f"http://127.0.0.1:{server.server_port}/v1")
    server.shutdown()


def test_retries_on_429_500_and_dropped_connections(scripted_server):
    prompts = ["GRADE2 FAIL-2-429", "FAIL-1-500", "FAIL-1-drop", "plain"]
    got = {i: (text, err) for i, text, err in
           chat_many(scripted_server, prompts, ChatSettings(concurrency=2, max_retries=3, timeout=5))}
    assert got == {0: ("[2]", None), 1: ("[3]", None), 2: ("[3]", None), 3: ("[3]", None)}
    assert ScriptedChat.failures == {"FAIL-2-429": 3, "FAIL-1-500": 2, "FAIL-1-drop": 2}


def test_exhausted_retries_become_request_failed(scripted_server):
    ann = ChatAnnotator(scripted_server, ChatSettings(max_retries=1, timeout=5))
    pairs = [Pair("q1", "d1", "en", "FAIL-9-503", "p"), Pair("q2", "d2", "en", "GRADE2", "p")]
    out = {j.query_id: j for j in ann.grade(pairs)}
    assert out["q1"].status == "request_failed" and out["q1"].score is None
    assert "InternalServerError" in out["q1"].raw or "APIStatusError" in out["q1"].raw
    assert (out["q2"].score, out["q2"].status, out["q2"].raw) == (2, "ok", "[2]")


def test_authentication_errors_stop_the_run(scripted_server):
    ScriptedChat.status_for_all = 401
    with pytest.raises(RuntimeError, match="bad key"):
        list(chat_many(scripted_server, ["x"], ChatSettings(max_retries=0)))


def test_endpoint_from_environment(monkeypatch):
    for k in ("GRADEDREL_LLM_MODEL", "GRADEDREL_LLM_BASE_URL", "GRADEDREL_LLM_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match="GRADEDREL_LLM_MODEL"):
        ChatEndpoint.from_env()
    monkeypatch.setenv("GRADEDREL_LLM_MODEL", "gpt-4o")
    monkeypatch.setenv("GRADEDREL_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ep = ChatEndpoint.from_env()
    assert (ep.model, ep.base_url, ep.api_key, ep.provider) == ("gpt-4o", "http://127.0.0.1:9/v1",
                                                                "sk-test", "openai")


def test_endpoint_for_an_annotator_spec(monkeypatch):
    from contextlib import ExitStack

    from gradedrel.annotation.local_llm import endpoint_for
    monkeypatch.setenv("SECOND_MODEL", "gemma-3-27b")
    monkeypatch.setenv("SECOND_BASE_URL", "http://127.0.0.1:9/v1")
    with ExitStack() as stack:
        ep = endpoint_for("env:SECOND", stack)
        assert (ep.model, ep.base_url) == ("gemma-3-27b", "http://127.0.0.1:9/v1")
        with pytest.raises(ValueError, match="local-gemma"):
            endpoint_for("gemma", stack)


def test_generated_queries_are_cleaned(scripted_server):
    out = list(generate_queries(scripted_server, [("en:a0p0", "en", "Denver won.")]))
    assert out[0]["query"] == "who won" and out[0]["status"] == "ok"
    assert clean_generated_query('\n  "Query: capital of France"  \nmore') == "capital of France"
    assert clean_generated_query("  \n") is None


@pytest.mark.integration
def test_real_local_server_with_gemma():
    """The same client against llama.cpp's OpenAI-compatible server on loopback, serving
    Gemma 3 270M from PyPI: every answer comes back and is parsed or counted as unparsed."""
    from gradedrel.annotation.local_llm import LlamaCppServer
    from gradedrel.annotation.rubric import STATUSES

    pairs = [Pair("q1", "d1", "en", "Who won Super Bowl 50?",
                  "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50."),
             Pair("q2", "d2", "de", "Wer gewann den Super Bowl 50?", "Der Rhein ist ein Fluss.")]
    with LlamaCppServer() as server:
        judgements = list(ChatAnnotator(server.endpoint, ChatSettings(concurrency=2)).grade(pairs))
        queries = list(generate_queries(server.endpoint, [("en:a0p0", "en", "Denver won.")]))
    assert sorted(j.query_id for j in judgements) == ["q1", "q2"]
    assert all(j.status in STATUSES and j.raw for j in judgements)
    assert queries[0]["status"] in ("ok", "empty") and queries[0]["raw"]
    assert server.process.poll() is not None          # stopped on exit


PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from gradedrel.annotation.local_llm import LlamaCppServer
server = LlamaCppServer(n_threads=1).start()
print(server.process.pid, server.port, flush=True)
time.sleep(600)
"""


@pytest.mark.integration
def test_the_server_dies_with_its_parent_even_on_kill_9(tmp_path):
    """A notebook killed with SIGKILL runs no clean-up: the llama.cpp server must still go
    (PR_SET_PDEATHSIG), or it stays up with its ~1.4 GB and its port."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import REPO
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(REPO / "lib")],
                              stdout=subprocess.PIPE, text=True)
    try:
        server_pid, port = map(int, parent.stdout.readline().split())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
            assert r.status == 200                        # up, and answering
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break                                     # gone
            if open(f"/proc/{server_pid}/stat").read().split()[2] == "Z":
                break                                     # exited, waiting to be reaped
            time.sleep(0.2)
        else:
            os.kill(server_pid, signal.SIGKILL)
            pytest.fail(f"the llama.cpp server {server_pid} outlived its killed parent")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.integration
def test_next_token_annotator_reads_grade_probabilities():
    from gradedrel.annotation.causal_lm import CausalLMAnnotator
    from gradedrel.annotation.local_llm import gemma_gguf_path

    gguf = gemma_gguf_path()
    ann = CausalLMAnnotator(str(gguf.parent), gguf_file=gguf.name, device="cpu", batch_size=2)
    pairs = [Pair("q1", "d1", "en", "capital of France", "Paris is the capital of France."),
             Pair("q2", "d2", "en", "capital of France", "Bananas are yellow.")]
    pairs = [Pair("q1", "d1", "en", "capital of France", "Paris is the capital of France."),
             Pair("q2", "d2", "en", "capital of France",
                  "Bananas are yellow, grow in bunches and are eaten all over the world.")]
    out = {j.query_id: j for j in ann.grade(pairs)}      # one padded batch of two lengths
    import torch
    for pair in pairs:
        # independently: one prompt alone, no padding, the digits' share of the next token
        enc = ann.tokenizer(ann.prompt(pair), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            probs = torch.softmax(ann.lm(**enc).logits[0, -1].float(), dim=-1)[ann.digit_ids]
        probs = (probs / probs.sum()).tolist()
        j = out[pair.query_id]
        assert j.status == "ok"
        assert json.loads(j.raw)["p"] == pytest.approx(probs, abs=2e-3)   # batching changes nothing
        assert j.score == max(range(4), key=lambda g: probs[g])
        assert j.expected == pytest.approx(sum(g * q for g, q in enumerate(probs)), abs=5e-3)
