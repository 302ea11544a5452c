"""The length-bucketed, duplicate-free batch sampler the fine-tunes use."""
import numpy as np
import pytest
from datasets import Dataset
from torch.utils.data import BatchSampler, RandomSampler

from gradedrel.training.length_bucketing import (
    LengthBucketedBatchSampler,
    length_bucketed_sampler,
    padding_share,
)


def pairs(n, seed=0, repeat_every=0):
    """n (query, passage) rows with passage lengths drawn like paragraph token counts; with
    `repeat_every`, every k-th row reuses an earlier row's query (several positives)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(170), 0.35, n).astype(int), 20, 512)
    queries = [f"q{i}" for i in range(n)]
    if repeat_every:
        for i in range(repeat_every, n, repeat_every):
            queries[i] = queries[i - 1]
    return Dataset.from_dict({"query": queries, "passage": [f"p{i}" for i in range(n)]}), lengths


def sampler(ds, lengths, batch_size=32, drop_last=False, seed=0, **kw):
    return LengthBucketedBatchSampler(ds, batch_size=batch_size, drop_last=drop_last, seed=seed,
                                      lengths=lengths, **kw)


@pytest.mark.parametrize("n", [5, 32, 100, 1000, 2049])
def test_every_row_once_per_epoch_and_len_matches(n):
    ds, lengths = pairs(n)
    s = sampler(ds, lengths)
    batches = list(s)
    assert len(batches) == len(s) == -(-n // 32)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(len(b) <= 32 for b in batches)


def test_drop_last_yields_only_full_batches():
    ds, lengths = pairs(1000)
    batches = list(sampler(ds, lengths, drop_last=True))
    assert len(batches) == 1000 // 32 and all(len(b) == 32 for b in batches)


def test_no_text_twice_in_a_batch_and_no_row_lost():
    ds, lengths = pairs(1000, repeat_every=3)       # a third of the queries have 2 positives
    s = sampler(ds, lengths)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert abs(len(batches) - len(s)) <= 2
        for b in batches:
            texts = [t for i in b for t in (ds["query"][i], ds["passage"][i])]
            assert len(texts) == len(set(texts))


def test_epochs_are_a_function_of_seed_and_epoch():
    ds, lengths = pairs(300)
    a, b = sampler(ds, lengths, seed=1), sampler(ds, lengths, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(sampler(ds, lengths, seed=2)) != list(b)


def test_a_set_smaller_than_a_window_is_cut_differently_each_epoch():
    ds, lengths = pairs(128)                        # 4 batches, one window
    s = sampler(ds, lengths)
    cuts = []
    for epoch in range(2):
        s.set_epoch(epoch)
        cuts.append({frozenset(b) for b in s})
    assert cuts[0] != cuts[1]


def test_bucketing_removes_most_padding():
    ds, lengths = pairs(4000)
    bucketed = padding_share(list(sampler(ds, lengths)), lengths)
    random = padding_share(list(BatchSampler(RandomSampler(range(4000)), 32, False)), lengths)
    assert random > 0.3 and bucketed < random / 4


def test_factory_is_what_the_trainer_calls():
    ds, lengths = pairs(64)
    make = length_bucketed_sampler(lengths, window_batches=2)
    s = make(ds, batch_size=16, drop_last=False, valid_label_columns=["label"], generator=None, seed=0)
    assert isinstance(s, LengthBucketedBatchSampler) and len(list(s)) == 4
    with pytest.raises(ValueError, match="lengths"):
        make(ds.select(range(10)), batch_size=16, drop_last=False)


def test_heavily_repeated_passages_like_the_xquad_sweep():
    """XQuAD's tau=1 training set for one language: ~2,400 pairs over 180 paragraphs."""
    rng = np.random.default_rng(3)
    n, n_passages = 2444, 180
    passage_len = rng.integers(60, 500, n_passages)
    which = rng.integers(0, n_passages, n)
    ds = Dataset.from_dict({"query": [f"q{i % 868}" for i in range(n)],
                            "passage": [f"p{j}" for j in which]})
    s = sampler(ds, passage_len[which])
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert abs(len(batches) - len(s)) <= 2
    for b in batches:
        texts = [t for i in b for t in (ds["query"][i], ds["passage"][i])]
        assert len(texts) == len(set(texts))


def sentence_pairs(n, seed):
    """Like a sweep's tau=1 sentence set: ~2 positives a query, each sentence a positive of
    ~3 queries; a sentence's rows share its length, so sorting puts them side by side."""
    rng = np.random.default_rng(seed)
    queries = [f"q{i}" for i in rng.integers(0, n // 2, n)]
    sentence = rng.integers(0, int(n * 0.3), n)
    sentence_len = rng.integers(10, 120, int(n * 0.3))
    keep = list(dict.fromkeys(zip(queries, sentence)))          # distinct pairs, as the sweeps'
    return (Dataset.from_dict({"query": [q for q, _ in keep], "passage": [f"s{j}" for _, j in keep]}),
            sentence_len[[j for _, j in keep]])


@pytest.mark.parametrize("seed", range(4))
def test_rebalanced_tail_needs_no_extra_batch_where_greedy_does(seed):
    ds, lengths = sentence_pairs(1000, seed)
    n, extra = len(ds), {}
    for tail in ("greedy", "rebalanced"):
        s = sampler(ds, lengths, seed=seed, tail=tail)
        extra[tail] = []
        for epoch in range(2):
            batches = s.epoch_batches(epoch)
            assert sorted(i for b in batches for i in b) == list(range(n))
            for b in batches:
                texts = [t for i in b for t in (ds["query"][i], ds["passage"][i])]
                assert len(texts) == len(set(texts))
            extra[tail].append(len(batches) - -(-n // 32))
    assert extra["rebalanced"] == [0, 0]
    assert sum(extra["greedy"]) > 0           # the data set does leave the greedy fill a tail


def test_a_short_batch_is_emptied_by_a_swap_with_a_full_one():
    """Rows 2 and 3 share a query, so the two short batches cannot merge directly; row 2
    takes the place of row 0, the full batch's row of the closest length, which joins row 3."""
    ds = Dataset.from_dict({"query": ["a", "b", "c", "c"], "passage": ["p", "q", "r", "s"]})
    s = sampler(ds, [10, 50, 12, 48], batch_size=2)
    assert s._merge_short([[0, 1], [2], [3]]) == [[2, 1], [3, 0]]
    # nothing can move when every row clashes with every batch it could join
    ds = Dataset.from_dict({"query": ["a", "a", "a"], "passage": ["p", "q", "r"]})
    assert sampler(ds, [1, 1, 1], batch_size=2)._merge_short([[0], [1], [2]]) == [[0], [1], [2]]


def test_greedy_tail_is_the_stored_runs_recipe_and_keeps_their_hash():
    from gradedrel.training.finetune import Recipe
    assert "batch_tail" not in Recipe(batch_tail="greedy").as_dict()
    assert Recipe().as_dict()["batch_tail"] == "rebalanced"
    with pytest.raises(ValueError, match="tail"):
        Recipe(batch_tail="spread")
    with pytest.raises(ValueError, match="tail"):
        sampler(*pairs(10), tail="spread")
