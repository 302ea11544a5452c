"""The annotator's llama.cpp server entry point (annotation/llama_server.py): its partial
vocabulary sort and its rows-on-demand log-softmax give llama_cpp's own answers."""
import builtins

import numpy as np
import pytest

from gradedrel.annotation.llama_server import RowsOnDemand, VocabularyRow, fast_sorted, fast_zip, top_of


def full_sort(row):
    return builtins.sorted(builtins.zip(row, range(len(row))), reverse=True)


@pytest.mark.parametrize("seed", range(5))
def test_the_partial_sort_is_the_head_of_the_full_sort(seed):
    rng = np.random.default_rng(seed)
    row = rng.normal(size=5000).astype(np.single)
    row[rng.choice(5000, 300, replace=False)] = row[7]           # many ties, also at the cut
    row[rng.choice(5000, 50, replace=False)] = -np.inf           # masked tokens
    for k in (1, 5, 20, 64):
        assert top_of(row, k) == full_sort(row)[:k]


def test_ties_across_the_cut_keep_the_full_sorts_order():
    row = np.array([0.5, 1.0, 1.0, 1.0, 0.2, 1.0], dtype=np.single)
    assert top_of(row, 2) == [(1.0, 5), (1.0, 3)] == full_sort(row)[:2]


def test_only_llama_cpps_vocabulary_sort_takes_the_fast_path():
    row = np.arange(10, dtype=np.single)
    assert isinstance(fast_zip(row, range(10)), VocabularyRow)
    assert list(fast_zip(row, range(10))) == list(builtins.zip(row, range(10)))
    assert not isinstance(fast_zip(row, range(9)), VocabularyRow)
    assert not isinstance(fast_zip(row, np.arange(10)), VocabularyRow)   # no elementwise ==
    assert not isinstance(fast_zip([1, 2], range(2)), VocabularyRow)
    assert fast_sorted([3, 1, 2]) == [1, 2, 3]
    assert fast_sorted(fast_zip(row, range(10))) == builtins.sorted(builtins.zip(row, range(10)))
    assert fast_sorted(fast_zip(row, range(10)), reverse=True) == full_sort(row)


def test_rows_on_demand_are_the_log_softmax_rows():
    from llama_cpp import Llama
    logits = np.random.default_rng(0).normal(size=(6, 50)).astype(np.single)
    full = Llama.logits_to_logprobs(logits)
    lazy = RowsOnDemand(logits, Llama.logits_to_logprobs)
    assert len(lazy) == 6 and len(lazy[2:]) == 4
    np.testing.assert_array_equal(lazy[3], full[3])
    for mine, theirs in zip(lazy[2:], full[2:]):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.integration
def test_a_patched_completion_answers_what_the_original_does():
    """Qwen2.5-Coder-0.5B in process: the same chat completion, top log-probabilities and
    all, before and after the patch (which runs the request several times faster)."""
    import json

    from gradedrel.annotation.llama_cpu import load_llama
    from gradedrel.annotation.llama_server import patch_llama_cpp
    from gradedrel.annotation.packaged_llms import packaged_gguf

    model = load_llama(packaged_gguf("qwen2.5-coder-0.5b-instruct"), n_ctx=512, n_threads=1,
                       logits_all=True, verbose=False)
    messages = [{"role": "user", "content": "Query: who won Super Bowl 50?\nPassage: The Denver "
                 "Broncos won Super Bowl 50. Grade the passage 0-3 and answer [0], [1], [2] or [3]."}]

    def ask():
        return json.dumps(model.create_chat_completion(messages, max_tokens=4, logprobs=True,
                                                       top_logprobs=20, temperature=0)["choices"],
                          default=float)
    ask()               # the prompt evaluated once: the next calls take it from the cache alike
    before = ask()
    patch_llama_cpp()
    assert ask() == before
