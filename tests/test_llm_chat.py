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
    grade_probabilities,
    query_status,
    redact,
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
        if self.status_for_all:   # a careless server that echoes the request's key back
            return self._send(self.status_for_all, {"error": {
                "message": f"bad key: {self.headers.get('Authorization')}"}})
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
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
        if body.get("logprobs"):   # "[", the grade digit with its alternatives, "]"
            digit = answer[1]
            alts = [{"token": d, "logprob": lp, "bytes": None}
                    for d, lp in ((digit, -0.2), ("1", -2.0), ("x", -3.0))]
            choice["logprobs"] = {"content": [
                {"token": "[", "logprob": 0.0, "bytes": None, "top_logprobs": []},
                {"token": digit, "logprob": -0.2, "bytes": None, "top_logprobs": alts},
                {"token": "]", "logprob": 0.0, "bytes": None, "top_logprobs": []}]}
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [choice]})

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
    got = {i: (text, err) for i, text, err, _ in
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


def test_authentication_errors_stop_the_run_and_never_show_the_key(scripted_server):
    import dataclasses
    endpoint = dataclasses.replace(scripted_server, api_key="sk-test-SECRET0123456789")
    ScriptedChat.status_for_all = 401
    with pytest.raises(RuntimeError, match="bad key") as err:
        list(chat_many(endpoint, ["x"], ChatSettings(max_retries=0)))
    assert "SECRET0123456789" not in str(err.value) and "[redacted]" in str(err.value)
    ScriptedChat.status_for_all = 503                 # not fatal: the pair fails, the key stays out
    out = list(ChatAnnotator(endpoint, ChatSettings(max_retries=0, timeout=5)).grade(
        [Pair("q1", "d1", "en", "query", "passage")]))
    assert out[0].status == "request_failed" and "SECRET" not in out[0].raw


def test_redaction_of_secrets():
    assert redact("key sk-abcdefgh12345678 and Bearer eyJhbGciOi.x-y_z") == "key [redacted] and [redacted]"
    assert redact('{"api_key": "hunter2hunter2"}') == '{"[redacted]"}'
    assert redact("my-own-key-value in text", "my-own-key-value") == "[redacted] in text"
    assert redact("nothing secret here") == "nothing secret here"


def test_expected_grade_from_the_served_log_probabilities(scripted_server):
    ann = ChatAnnotator(scripted_server, ChatSettings(timeout=5, top_logprobs=5))
    j = list(ann.grade([Pair("q1", "d1", "en", "GRADE2", "p")]))[0]
    import math
    p2, p1 = math.exp(-0.2), math.exp(-2.0)          # "x" is no grade: left out, then renormalised
    assert (j.score, j.status) == (2, "ok")
    assert j.expected == pytest.approx((2 * p2 + 1 * p1) / (p2 + p1))
    assert grade_probabilities(None) is None


def test_generated_queries_are_validated():
    assert query_status("who won super bowl 50") == "ok"
    assert query_status(None) == "empty"
    assert query_status("Your task is to write a query that seeks information") == "instruction_echo"
    assert query_status(" ".join(["word"] * 33)) == "too_long"
    assert query_status("x" * 201) == "too_long"


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
    Gemma 3 270M from PyPI, greedy (temperature 0): Gemma 270M is a base model and answers
    the grading prompt by repeating its first line, which has no bracket: both pairs come
    back unparsed, as "no_bracket", with that text kept. Asked for a query at temperature 0
    it continues with a sentence about the passage, kept as the query (first line)."""
    from gradedrel.annotation.local_llm import LlamaCppServer

    pairs = [Pair("q1", "d1", "en", "Who won Super Bowl 50?",
                  "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50."),
             Pair("q2", "d2", "de", "Wer gewann den Super Bowl 50?", "Der Rhein ist ein Fluss.")]
    with LlamaCppServer() as server:
        judgements = list(ChatAnnotator(server.endpoint, ChatSettings(concurrency=2)).grade(pairs))
        queries = list(generate_queries(server.endpoint, [("en:a0p0", "en", "Denver won.")],
                                        ChatSettings(temperature=0.0, max_tokens=64)))
    judgements = sorted(judgements, key=lambda j: j.query_id)
    assert [j.query_id for j in judgements] == ["q1", "q2"]
    for j in judgements:
        assert (j.status, j.score) == ("no_bracket", None), j
        assert j.raw.startswith("You are a search quality rater evaluating the relevance"), j.raw
    # Which continuation a base model picks at temperature 0 depends on the CPU's arithmetic:
    # on an AMX Xeon (no extra buffers) it is "The Denver Broncos are the NFL's most successful
    # team.", with llama.cpp's CPU-repack path (an AMD EPYC's) it repeats the instruction. What
    # must hold on every CPU: the status and query are exactly what the parser makes of the
    # raw answer that came back.
    query = queries[0]
    assert query["raw"].strip(), query
    assert query["status"] == query_status(clean_generated_query(query["raw"])), query
    assert query["query"] == (clean_generated_query(query["raw"]) if query["status"] == "ok" else None)
    assert query["status"] in ("ok", "instruction_echo"), query
    assert server.process.poll() is not None          # stopped on exit
    assert not server.log_path.exists()                 # and its log, after a clean exit, removed


@pytest.mark.integration
def test_an_instruction_model_from_pypi_grades_with_probabilities_on_the_real_server():
    """Qwen2.5-Coder-0.5B-Instruct joined from its PyPI chunk wheels (SHA-256 and GGUF header
    checked), served by llama.cpp, greedy: parsed grades, and expected grades from the served
    top log-probabilities of "0"-"3". The 0.5B coder model answers "[3]" to both pairs, but
    its probabilities tell them apart: measured expected grades 2.185 (the answer passage)
    and 1.747 (a passage about the Rhine)."""
    from gradedrel.annotation.local_llm import LlamaCppServer
    from gradedrel.annotation.packaged_llms import PACKAGED_LLMS, header_name, packaged_gguf

    key = "qwen2.5-coder-0.5b-instruct"
    path = packaged_gguf(key)
    assert header_name(path) == PACKAGED_LLMS[key].header_name
    pairs = [Pair("q1", "d1", "en", "Who won Super Bowl 50?",
                  "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50."),
             Pair("q2", "d2", "en", "Who won Super Bowl 50?", "The Rhine is a river in Europe.")]
    with LlamaCppServer(path, alias=key, chat_format=PACKAGED_LLMS[key].chat_format) as server:
        out = list(ChatAnnotator(server.endpoint, ChatSettings(concurrency=1, top_logprobs=10)).grade(pairs))
    by_query = {j.query_id: j for j in out}
    assert sorted(by_query) == ["q1", "q2"]
    for j in out:
        assert (j.status, j.score, j.raw) == ("ok", 3, "[3]"), j
    assert by_query["q1"].expected == pytest.approx(2.185, abs=0.02)
    assert by_query["q2"].expected == pytest.approx(1.747, abs=0.02)
    assert by_query["q1"].expected - by_query["q2"].expected > 0.3      # relevant one higher


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


def test_failed_requests_surface_their_causes_counted(scripted_server, tmp_path):
    from gradedrel.annotation.pipeline import grade_candidates
    from gradedrel.annotation.store import JudgementStore
    from gradedrel.data.collection import Collection
    import pandas as pd
    corpus = pd.DataFrame({"doc_id": ["en:d1"], "base_id": ["d1"], "lang": "en", "text": ["p"], "group": "g"})
    queries = pd.DataFrame({"query_id": ["en:q1", "en:q2"], "base_id": ["q1", "q2"], "lang": "en",
                            "text": ["FAIL-9-503", "FAIL-9-503 again"], "group": "g"})
    coll = Collection("c", corpus, queries, pd.DataFrame(columns=["query_id", "doc_id", "grade"]))
    candidates = pd.DataFrame({"query_id": ["en:q1", "en:q2"], "doc_id": ["en:d1", "en:d1"]})
    ann = ChatAnnotator(scripted_server, ChatSettings(max_retries=0, timeout=5))
    with JudgementStore(tmp_path / "s.jsonl") as store, pytest.warns(UserWarning, match="2 requests failed"):
        counts = grade_candidates(ann, coll, candidates, store, progress=False)
    assert counts["failed"] == 2 and len(store) == 0          # failures are not cached
    (kind, cause), = counts["failure_causes"].items()
    assert cause["count"] == 2 and "try later" in cause["first"]


@pytest.mark.integration
def test_a_server_that_fails_to_start_keeps_its_log(tmp_path):
    from gradedrel.annotation.local_llm import LlamaCppServer
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    server = LlamaCppServer(bogus, alias="bogus", n_threads=1, startup_timeout=60)
    with pytest.raises(RuntimeError, match="exited with"):
        server.start()
    assert server.log_path.exists()                      # what went wrong stays readable
    server.log_path.unlink()


def test_query_generation_that_fails_says_why_writes_nothing_and_reruns(scripted_server, tmp_path):
    """Every request failing used to leave an empty file, no cause, and a rerun that raised
    KeyError: 'doc_id'. Now: an error with the count and the first cause, no file; a rerun
    (over such an empty file too) generates and resumes; some failures are a warning."""
    import pandas as pd

    from gradedrel.annotation.pipeline import QueryGenerationError, generate_llm_queries
    passages = pd.DataFrame({"doc_id": ["en:p1", "en:p2", "en:p3"], "lang": "en",
                             "text": ["Denver won.", "Paris is big.", "FAIL-9-503 Rome is old."]})
    path = tmp_path / "generated_queries.jsonl"
    settings = ChatSettings(max_retries=0, timeout=5, temperature=0.7, max_tokens=64)
    ScriptedChat.status_for_all = 500
    with pytest.raises(QueryGenerationError, match=r"3 of 3 requests failed after retries "
                                                   r"\(3 x InternalServerError: Error code: 500"):
        generate_llm_queries(None, passages, scripted_server, path, settings)
    assert not path.exists()
    path.write_text("")                                  # as the old code left it
    ScriptedChat.status_for_all = None
    with pytest.warns(UserWarning, match=r"1 of 3 requests failed after retries \(1 x "
                                         r"InternalServerError: Error code: 503"):
        out = generate_llm_queries(None, passages, scripted_server, path, settings)
    assert sorted(out["doc_id"]) == ["en:p1", "en:p2"] and out["query"].eq("who won").all()
    assert list(out.columns) == ["doc_id", "lang", "query", "status", "raw"]
    with pytest.raises(QueryGenerationError, match=r"1 of 1 requests failed"):   # p3 asked again
        generate_llm_queries(None, passages, scripted_server, path, settings)
    ScriptedChat.failures["FAIL-9-503"] = 9              # the server recovers
    out = generate_llm_queries(None, passages, scripted_server, path, settings)
    assert sorted(out["doc_id"]) == ["en:p1", "en:p2", "en:p3"] and out["status"].eq("ok").all()
