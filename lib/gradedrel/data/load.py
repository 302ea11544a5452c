"""`load_collection(cfg)`: the profile's data set in the normalised shape, optionally
cut down (first `max_groups` articles, a seeded sample of `max_queries` per language).

`load_collection(cfg, unit="sentence")` gives the threshold study's retrieval unit: on XQuAD,
XQuAD-R's sentences of the same articles and questions (its eleven languages: XQuAD's
twelve without Romanian), where a question's relevant document is its answer sentence.
The profile key `unit` says which unit notebooks 01-05 annotate, train and evaluate on;
notebooks 00 and 06 keep XQuAD's paragraphs, as their papers do."""
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


UNITS = ("paragraph", "sentence")


def load_collection(cfg: dict, unit: str = "paragraph") -> Collection:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "sentence":
        if cfg["dataset"] != "xquad":
            raise ValueError(f"the sentence unit is XQuAD-R's: dataset 'xquad', not {cfg['dataset']!r}")
        from gradedrel.data.xquad_r import LANGS as SENTENCE_LANGS
        from gradedrel.data.xquad_r import load_xquad_r
        coll = load_xquad_r([lang for lang in cfg["langs"] if lang in SENTENCE_LANGS])
    else:
        coll = load_dataset_by_name(cfg["dataset"], cfg["langs"], **cfg.get("dataset_options", {}))
    return shrink(coll, cfg.get("max_groups"), cfg.get("max_queries"), cfg.get("sample_seed", 0))
