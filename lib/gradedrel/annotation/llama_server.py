"""llama-cpp-python's OpenAI-compatible server, with its log-probability path made cheap.

    python -m gradedrel.annotation.llama_server --model M.gguf ...   # llama_cpp.server's arguments

llama-cpp-python (0.3.x) answers `logprobs`/`top_logprobs` by taking the log-softmax of every
position's logits, prompt included, and by sorting the whole vocabulary (151,936 entries for
Qwen2.5) as Python tuples for each generated token. On this CPU that is about 1.4 s of a 1.9 s
request for a four-token answer ("[3]"), three quarters of the annotator's time.

This entry point changes two names inside `llama_cpp.llama`, then runs the server unchanged:
- `Llama.logits_to_logprobs` of a 2-D array gives rows computed when they are read (the
  completion reads only the generated tokens' rows);
- `sorted(zip(row, range(len(row))), reverse=True)`, the vocabulary sort, gives the top
  `TOP` (value, token) pairs by a partial sort, in the order the full sort gives them.
Everything else, the chat template and the prefix cache included, is llama_cpp.server's.
The model loads under annotation/llama_cpu.py's setting (no AMX buffers on AMX CPUs).
The answers are the originals' (tests/test_llama_server.py compares them).
"""
from __future__ import annotations

import builtins

import numpy as np

TOP = 64        # more than any top_logprobs the OpenAI API allows (20)


class VocabularyRow:
    """`zip(row, range(len(row)))` as llama_cpp builds it to sort a vocabulary row; iterates
    as that zip would."""
    __slots__ = ("row",)

    def __init__(self, row: np.ndarray):
        self.row = row

    def __iter__(self):
        return builtins.zip(self.row, range(len(self.row)))


def fast_zip(*args):
    if (len(args) == 2 and isinstance(args[0], np.ndarray) and args[0].ndim == 1
            and isinstance(args[1], range) and args[1] == range(len(args[0]))):
        return VocabularyRow(args[0])
    return builtins.zip(*args)


def top_of(row: np.ndarray, k: int = TOP) -> list[tuple]:
    """The first k of sorted(zip(row, range(len(row))), reverse=True): value descending, and
    among equal values the higher index first (tuple order), ties at the k-th value included
    before the cut."""
    k = min(k, len(row))
    kth = np.partition(row, len(row) - k)[len(row) - k]
    cand = np.flatnonzero(row >= kth)
    order = np.lexsort((-cand, -row[cand]))[:k]
    return [(row[i], int(i)) for i in cand[order]]


def fast_sorted(iterable, /, *, key=None, reverse=False):
    if isinstance(iterable, VocabularyRow) and key is None and reverse:
        return top_of(iterable.row)
    return builtins.sorted(iterable, key=key, reverse=reverse)


class RowsOnDemand:
    """The log-softmax of a 2-D logits array, computed a row at a time when read."""

    def __init__(self, logits: np.ndarray, convert):
        self.logits, self.convert = logits, convert

    def __len__(self):
        return len(self.logits)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return RowsOnDemand(self.logits[item], self.convert)
        return self.convert(self.logits[item])

    def __iter__(self):
        return (self.convert(row) for row in self.logits)


def patch_llama_cpp() -> None:
    """Install the two replacements in llama_cpp.llama (idempotent)."""
    import llama_cpp.llama as module

    if getattr(module, "_gradedrel_patched", False):
        return
    original = module.Llama.logits_to_logprobs

    def logits_to_logprobs(logits, axis: int = -1):
        if isinstance(logits, np.ndarray) and logits.ndim == 2 and axis == -1:
            return RowsOnDemand(logits, original)
        return original(logits, axis=axis)

    module.Llama.logits_to_logprobs = staticmethod(logits_to_logprobs)
    module.sorted = fast_sorted
    module.zip = fast_zip
    module._gradedrel_patched = True


def main() -> None:
    from gradedrel.annotation.llama_cpu import apply
    apply()             # no AMX buffers where llama.cpp's AMX path crashes (llama_cpu.py)
    patch_llama_cpp()
    from llama_cpp.server.__main__ import main as serve
    serve()


if __name__ == "__main__":
    main()
