"""`load_collection(cfg)`: the profile's data set in the normalised shape, optionally
cut down (first `max_groups` articles, a seeded sample of `max_queries` per language)."""
from __future__ import annotations

import numpy as np

from gradedrel.data.collection import Collection


def load_dataset_by_name(name: str, langs, **options) -> Collection:
    """`options` go to the loader, e.g. MIRACL's corpus="judged" or topics_dir."""
    if name == "xquad":
        from gradedrel.data.xquad import load_xquad
        return load_xquad(langs, **options)
    if name == "miracl":
        from gradedrel.data.miracl import load_miracl
        return load_miracl(langs, **options)
    if name == "belebele":
        from gradedrel.data.belebele import load_belebele
        return load_belebele(langs, **options)
    if name == "clirmatrix":
        from gradedrel.data.clirmatrix import load_multi8
        return load_multi8(langs=langs, **options)
    raise ValueError(f"unknown dataset {name!r}: xquad, miracl, belebele or clirmatrix")


def shrink(coll: Collection, max_groups=None, max_queries=None, seed: int = 0) -> Collection:
    if max_groups:
        groups = list(dict.fromkeys(coll.queries["group"]))[:max_groups]
        coll = coll.subset(groups=groups)
    if max_queries:
        rng = np.random.default_rng(seed)
        base = sorted(set(coll.queries["base_id"]))
        keep = set(rng.choice(base, size=min(max_queries, len(base)), replace=False))
        coll = coll.subset(query_ids=coll.queries.loc[coll.queries["base_id"].isin(keep),
                                                      "query_id"])
    return coll


def load_collection(cfg: dict) -> Collection:
    coll = load_dataset_by_name(cfg["dataset"], cfg["langs"], **cfg.get("dataset_options", {}))
    return shrink(coll, cfg.get("max_groups"), cfg.get("max_queries"), cfg.get("sample_seed", 0))
