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
