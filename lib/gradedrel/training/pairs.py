"""From graded annotation rows to contrastive training pairs.

The threshold paper's construction (section 4.1): annotated instances (q, p, s), s in 0-3,
become positive pairs where s >= tau; everything below tau is a negative (here: used only
when hard negatives are asked for; in-batch negatives otherwise).

"Training size" has two readings, both supported:
  "instances"  N annotated rows drawn *before* the threshold filter (the paper's wording:
               "varying the number of training instances, from 50K to 300K"), so a
               stricter tau leaves fewer positives from the same N. The default.
  "positives"  N positive pairs *after* the filter, so every tau trains on N pairs.

Draws are nested: for a seed, one fixed permutation of a language's rows, and size N is its
first N rows (instances) or its first N positives in that order (positives). Larger sizes
therefore contain smaller ones, and every tau filters the same N instances.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np
import pandas as pd

SIZE_READINGS = ("instances", "positives")
ALL = "all"                     # a size meaning the whole train-split pool
ROW_COLUMNS = ["query_id", "doc_id", "lang", "score"]


def binarise(rows: pd.DataFrame, tau: int) -> pd.Series:
    """True where score >= tau. Rows without a parsed score are an error: drop them first
    (`parsed_rows`), so that nothing unparsed is silently read as a negative."""
    if tau not in (1, 2, 3):
        raise ValueError(f"tau must be 1, 2 or 3 on the 0-3 scale, got {tau!r}")
    if rows["score"].isna().any():
        raise ValueError(f"{int(rows['score'].isna().sum())} rows have no parsed score; "
                         "drop them with parsed_rows() first")
    return rows["score"].astype(int) >= tau


def parsed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"annotation rows lack columns {missing}")
    out = rows[rows["score"].notna()].copy()
    out["score"] = out["score"].astype(int)
    return out.reset_index(drop=True)


def train_split_rows(rows: pd.DataFrame, query_group: pd.Series, doc_group: pd.Series,
                     train_groups, check_docs: bool = True) -> pd.DataFrame:
    """Rows whose query belongs to a training group (article) and, where queries and
    documents share groups (XQuAD), whose document does too: a test article's paragraph
    must not be a training passage either."""
    train_groups = set(train_groups)
    keep = rows["query_id"].map(query_group).isin(train_groups)
    if check_docs:
        keep &= rows["doc_id"].map(doc_group).isin(train_groups)
    return rows[keep].reset_index(drop=True)


def _language_order(rows: pd.DataFrame, lang: str, seed: int) -> pd.DataFrame:
    """A language's rows in a fixed, seeded order (sorted first, so the order does not
    depend on how the rows arrived)."""
    mine = rows[rows["lang"] == lang].sort_values(["query_id", "doc_id"]).reset_index(drop=True)
    rng = np.random.default_rng([seed, zlib.crc32(lang.encode())])
    return mine.iloc[rng.permutation(len(mine))].reset_index(drop=True)


def sample_language(rows: pd.DataFrame, lang: str, size, tau: int,
                    size_reading: str = "instances", seed: int = 0) -> pd.DataFrame:
    """The annotated rows that a run of `size` uses for `lang` (below-tau rows included
    under the instances reading; they are the run's candidate hard negatives)."""
    if size_reading not in SIZE_READINGS:
        raise ValueError(f"size_reading must be one of {SIZE_READINGS}, got {size_reading!r}")
    ordered = _language_order(rows, lang, seed)
    if ordered.empty:
        raise ValueError(f"no annotated rows for language {lang!r}")
    positive = binarise(ordered, tau)
    n_have = len(ordered) if size_reading == "instances" else int(positive.sum())
    if size == ALL:
        size = n_have
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer or {ALL!r}, got {size!r}")
    if size > n_have:
        what = "annotated instances" if size_reading == "instances" else f"positives at tau={tau}"
        raise ValueError(f"{lang}: size {size} exceeds the {n_have} {what} of the train-split pool")
    if size_reading == "instances":
        return ordered.iloc[:size].reset_index(drop=True)
    # positives: the first `size` positives, plus the below-tau rows that precede the last one
    last = int(np.flatnonzero(positive.to_numpy())[size - 1])
    return ordered.iloc[:last + 1].reset_index(drop=True)


def positive_pairs(sample: pd.DataFrame, tau: int) -> pd.DataFrame:
    return sample[binarise(sample, tau)].reset_index(drop=True)


def with_texts(pairs: pd.DataFrame, query_text: pd.Series, doc_text: pd.Series) -> pd.DataFrame:
    """Columns `query` and `passage` (the texts), in the order of `pairs`."""
    q = pairs["query_id"].map(query_text)
    p = pairs["doc_id"].map(doc_text)
    if q.isna().any() or p.isna().any():
        raise ValueError(f"{int(q.isna().sum())} query ids and {int(p.isna().sum())} doc ids "
                         "of the annotation rows are not in the collection")
    return pairs.assign(query=q.to_numpy(), passage=p.to_numpy())


def add_hard_negatives(positives: pd.DataFrame, pool: pd.DataFrame, tau: int,
                       doc_group: pd.Series, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A `negative_id` for each positive pair: a below-tau candidate of the same query
    from `pool` (the run's own sampled instances, so the training size still counts
    every annotated row used), chosen at random with the seed. Queries without a
    below-tau candidate get a random pool passage from another group (article) instead;
    the counts say how many of each."""
    rng = np.random.default_rng(seed)
    below = pool[~binarise(pool, tau)].groupby("query_id")["doc_id"].apply(list).to_dict()
    all_docs = np.array(sorted(set(pool["doc_id"])))
    groups = np.array([doc_group.get(d) for d in all_docs], dtype=object)
    negatives, counts = [], {"hard": 0, "random_other_article": 0}
    for qid, did in positives[["query_id", "doc_id"]].itertuples(index=False):
        candidates = below.get(qid, [])
        if candidates:
            negatives.append(candidates[rng.integers(len(candidates))])
            counts["hard"] += 1
            continue
        other = all_docs[groups != doc_group.get(did)]
        if len(other) == 0:
            raise ValueError("no passage from another article to serve as a negative")
        negatives.append(str(other[rng.integers(len(other))]))
        counts["random_other_article"] += 1
    return positives.assign(negative_id=negatives), counts


def rows_fingerprint(rows: pd.DataFrame) -> str:
    """A short digest of the (query, doc, lang, score) rows: part of every run's config
    hash, so that rerunning the annotation notebook invalidates the runs built on it."""
    key = rows[ROW_COLUMNS].astype({"score": "Int64"}).sort_values(["query_id", "doc_id"])
    h = hashlib.sha256(pd.util.hash_pandas_object(key, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def positives_per_tau(rows: pd.DataFrame, taus=(1, 2, 3)) -> pd.DataFrame:
    """Per language: annotated instances, and the positive pairs (and their share) that each
    tau keeps from them: how different the training sets of the thresholds are."""
    parsed = parsed_rows(rows)
    out = parsed.groupby("lang").size().rename("instances").to_frame()
    for tau in taus:
        kept = parsed[binarise(parsed, tau)].groupby("lang").size()
        out[f"positives τ={tau}"] = kept.reindex(out.index, fill_value=0)
        out[f"share τ={tau}"] = (out[f"positives τ={tau}"] / out["instances"]).round(3)
    return out
