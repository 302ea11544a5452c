"""A deterministic train/test split by group (article), so that no article's
paragraphs or questions straddle the split. On XQuAD's 48 articles the defaults give
36 training and 12 test articles (seed 13, a quarter held out)."""
from __future__ import annotations

import numpy as np

SPLIT_SEED = 13
TEST_FRACTION = 0.25


def split_groups(groups, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """{"train": [...], "test": [...]} over the sorted unique groups."""
    unique = sorted(set(groups))
    if len(unique) < 2:
        raise ValueError("need at least two groups to split")
    n_test = min(max(1, round(len(unique) * test_fraction)), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    test = sorted(unique[i] for i in order[:n_test])
    train = sorted(unique[i] for i in order[n_test:])
    return {"train": train, "test": test}


def split_collection(collection, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """{"train": Collection, "test": Collection}, split by the queries' groups."""
    parts = split_groups(collection.queries["group"], test_fraction, seed)
    return {name: collection.subset(groups=groups) for name, groups in parts.items()}


HALVES_SEED = 7


def halve_groups(groups, seed: int = HALVES_SEED) -> dict[str, list]:
    """{"A": [...], "B": [...]}: the groups (e.g. the training articles) cut in two disjoint
    halves, seeded (notebook 04's mixtures from disjoint articles)."""
    unique = sorted(set(groups))
    if len(unique) < 2:
        raise ValueError("need at least two groups to halve")
    order = np.random.default_rng(seed).permutation(len(unique))
    half = len(unique) // 2
    return {"A": sorted(unique[i] for i in order[:half]),
            "B": sorted(unique[i] for i in order[half:])}
