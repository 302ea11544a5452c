"""Any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM, llama.cpp's server,
`transformers serve`) as an annotator and as a query generator.

Where the endpoint is, which model and which key come from the environment only, never
from notebook parameters:

  GRADEDREL_LLM_BASE_URL   e.g. http://127.0.0.1:8080/v1 (unset: OpenAI's default)
  GRADEDREL_LLM_MODEL      the model name the endpoint serves (required)
  GRADEDREL_LLM_API_KEY    falls back to OPENAI_API_KEY; a local server takes any value
  GRADEDREL_LLM_PROVIDER   "openai" (default) or "azure" (then the base URL is the Azure
                           endpoint, the model the deployment, and
                           GRADEDREL_LLM_API_VERSION the API version)

Requests run concurrently up to a bound; the `openai` client retries 408/409/429/5xx,
timeouts and dropped connections with exponential backoff. A pair whose request still
fails comes back as status "request_failed" (not cached, so a rerun asks again);
authentication and unknown-model errors stop the run at once.
"""
from __future__ import annotations

import asyncio
import math
import os
import queue
import re
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

from gradedrel.annotation.judgement import Judgement, Pair
from gradedrel.annotation.rubric import (
    GRADING_PROMPT_VERSION,
    grading_prompt,
    parse_grade,
    query_generation_prompt,
)

FATAL_ERRORS = ("AuthenticationError", "PermissionDeniedError", "NotFoundError")


@dataclass(frozen=True)
class ChatEndpoint:
    model: str
    base_url: str | None = None
    api_key: str = "not-needed"
    provider: str = "openai"
    api_version: str | None = None

    @classmethod
    def from_env(cls, prefix: str = "GRADEDREL_LLM") -> "ChatEndpoint":
        env = os.environ
        model = env.get(f"{prefix}_MODEL")
        if not model:
            raise RuntimeError(f"set {prefix}_MODEL (and {prefix}_BASE_URL, {prefix}_API_KEY) "
                               "to the chat endpoint to use")
        return cls(model=model, base_url=env.get(f"{prefix}_BASE_URL") or None,
                   api_key=env.get(f"{prefix}_API_KEY") or env.get("OPENAI_API_KEY") or "not-needed",
                   provider=env.get(f"{prefix}_PROVIDER", "openai"),
                   api_version=env.get(f"{prefix}_API_VERSION"))

    def async_client(self, timeout: float, max_retries: int):
        import openai
        if self.provider == "azure":
            return openai.AsyncAzureOpenAI(azure_endpoint=self.base_url, api_key=self.api_key,
                                           api_version=self.api_version, timeout=timeout,
                                           max_retries=max_retries)
        if self.provider != "openai":
            raise ValueError(f"unknown provider {self.provider!r}: openai or azure")
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=timeout,
                                  max_retries=max_retries)


@dataclass
class ChatSettings:
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 6
    temperature: float = 0.0
    max_tokens: int = 16
    top_logprobs: int | None = None     # ask for each answer token's top alternatives


# what an error message must never carry, even when a server echoes a request back
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|(?i:api[-_]?key)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]{6,})")


def redact(text: str, *secrets: str) -> str:
    """`text` without the given secrets (the endpoint's key) and anything shaped like an API
    key or bearer token."""
    for secret in secrets:
        if secret and len(secret) >= 6 and secret not in ("not-needed", "local"):
            text = text.replace(secret, "[redacted]")
    return _SECRET.sub("[redacted]", text)


def describe_error(err: Exception, endpoint: ChatEndpoint | None = None) -> str:
    return redact(f"{type(err).__name__}: {err}", endpoint.api_key if endpoint else "")


def chat_many(endpoint: ChatEndpoint, prompts: list[str], settings: ChatSettings
              ) -> Iterator[tuple[int, str | None, Exception | None, list | None]]:
    """Send each prompt as one user message; yield (index, answer text, error, logprobs) as
    each answer arrives (logprobs: the answer tokens' top alternatives, where asked for and
    served). Runs its own event loop in a thread, so it works inside Jupyter."""
    results: queue.Queue = queue.Queue()
    done = object()
    extra = ({"logprobs": True, "top_logprobs": settings.top_logprobs}
             if settings.top_logprobs else {})

    async def worker():
        client = endpoint.async_client(settings.timeout, settings.max_retries)
        limit = asyncio.Semaphore(settings.concurrency)

        async def one(i, prompt):
            async with limit:
                try:
                    resp = await client.chat.completions.create(
                        model=endpoint.model, messages=[{"role": "user", "content": prompt}],
                        temperature=settings.temperature, max_tokens=settings.max_tokens, **extra)
                    choice = resp.choices[0]
                    logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
                    results.put((i, choice.message.content or "", None, logprobs))
                except Exception as err:  # noqa: BLE001 - reported per prompt, fatal ones re-raised
                    results.put((i, None, err, None))

        try:
            await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        finally:
            await client.close()

    def run():
        try:
            asyncio.run(worker())
        except Exception as err:  # noqa: BLE001 - handed to the consumer
            results.put((-1, None, err, None))
        finally:
            results.put(done)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while (item := results.get()) is not done:
        i, text, err, _ = item
        if err is not None and (i < 0 or type(err).__name__ in FATAL_ERRORS):
            raise RuntimeError(f"chat endpoint {endpoint.base_url or 'default'} "
                               f"(model {endpoint.model}): {describe_error(err, endpoint)}") from None
        yield item
    thread.join()


def grade_probabilities(logprobs) -> list[float] | None:
    """P(0..3) of the grade token: the first answer token that is a grade digit right after
    an opening bracket, renormalised over the digits among its top alternatives. None where
    no such token, or no digit among its alternatives, was served."""
    if not logprobs:
        return None
    before = ""
    for token in logprobs:
        text = token.token.strip()
        if text in ("0", "1", "2", "3") and before.rstrip().endswith("["):
            probs = [0.0] * 4
            for alt in token.top_logprobs or []:
                if alt.token.strip() in ("0", "1", "2", "3"):
                    probs[int(alt.token.strip())] += math.exp(alt.logprob)
            total = sum(probs)
            return [p / total for p in probs] if total > 0 else None
        before += token.token
    return None


class ChatAnnotator:
    """Grades pairs with the paper's grading prompt on a chat endpoint: the grade parsed
    strictly from the answer text and, where the endpoint serves top log-probabilities, the
    expected grade from those of the tokens "0"-"3" after the opening bracket."""

    prompt_version = GRADING_PROMPT_VERSION

    def __init__(self, endpoint: ChatEndpoint, settings: ChatSettings | None = None,
                 name: str | None = None):
        self.endpoint = endpoint
        self.settings = settings or ChatSettings()
        self.model = endpoint.model
        self.name = name or f"chat:{endpoint.model}"

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]:
        pairs = list(pairs)
        prompts = [grading_prompt(p.query, p.passage) for p in pairs]
        for i, text, err, logprobs in chat_many(self.endpoint, prompts, self.settings):
            pair = pairs[i]
            if err is not None:
                yield Judgement(pair.query_id, pair.doc_id, None, "request_failed",
                                describe_error(err, self.endpoint))
                continue
            parsed = parse_grade(text)
            probs = grade_probabilities(logprobs)
            expected = sum(g * p for g, p in enumerate(probs)) if probs else None
            yield Judgement(pair.query_id, pair.doc_id, parsed.score, parsed.status, text, expected)


def clean_generated_query(text: str | None) -> str | None:
    """First non-empty line, without surrounding quotes or a 'Query:' label."""
    for line in (text or "").splitlines():
        line = line.strip().strip('"“”«»').strip()
        if line.lower().startswith("query:"):
            line = line[6:].strip().strip('"“”«»').strip()
        if line:
            return line
    return None


MAX_QUERY_WORDS = 32
MAX_QUERY_CHARS = 200
# phrases of the query-generation prompt: a model that repeats them wrote no query
_INSTRUCTION_ECHO = re.compile(r"your task is|seeks information|context passage|style of web search|"
                               r"the passage is|question-based or keyword-based", re.IGNORECASE)


def query_status(query: str | None) -> str:
    """ "ok", or why a generated query is rejected: "empty", "instruction_echo" (the prompt
    repeated back), "too_long" (over 32 words or 200 characters: not a search query)."""
    if not query:
        return "empty"
    if _INSTRUCTION_ECHO.search(query):
        return "instruction_echo"
    if len(query.split()) > MAX_QUERY_WORDS or len(query) > MAX_QUERY_CHARS:
        return "too_long"
    return "ok"


def generate_queries(endpoint: ChatEndpoint, passages: list[tuple[str, str, str]],
                     settings: ChatSettings | None = None) -> Iterator[dict]:
    """One web-search style query per (doc_id, lang, text) passage, with the paper's
    query-generation prompt. Yields {doc_id, lang, query, raw, status} as they arrive;
    a query that is empty, echoes the instruction or is too long keeps its raw text and a
    status saying why, and no query."""
    settings = settings or ChatSettings(temperature=0.7, max_tokens=64)
    prompts = [query_generation_prompt(text, lang) for _, lang, text in passages]
    for i, text, err, _ in chat_many(endpoint, prompts, settings):
        doc_id, lang, _ = passages[i]
        query = None if err else clean_generated_query(text)
        status = "request_failed" if err else query_status(query)
        yield {"doc_id": doc_id, "lang": lang, "query": query if status == "ok" else None,
               "status": status, "raw": describe_error(err, endpoint) if err else text}
