"""LAReQA's measures on XQuAD-R: mAP (and mAP@20) in the monolingual (X-X), cross-lingual
(X-Y) and multilingual pooled settings, and language bias.

Settings, for questions in language x (one relevant sentence a language, parallel across
the eleven languages):
  X-X      the sentences of x only: one relevant sentence, AP = its reciprocal rank
  X-Y      the sentences of one other language y: one relevant sentence
  pooled   every language's sentences at once (LAReQA's task): |L| relevant sentences,
           the question's answer sentence in each language

Average precision is trec_eval's (`map`, ir_measures `AP`): the mean over the R relevant
sentences of the precision at each one's rank, relevant sentences below the cut-off
counting 0; `AP@k` is trec_eval's `map_cut_k` (ir_measures `AP@k`): the same sum cut at
rank k, still divided by R (not by min(R, k)). `tests/test_hybrid_measures.py` checks both
against ir_measures on hand-made and random rankings.

Language bias (pooled setting only), per question: the largest distance in rank between
two of its relevant sentences, max(rank) - min(rank) over its |L| answer sentences. With
all |L| on top it is |L| - 1 (10 for XQuAD-R's eleven languages); a model that ranks the
query's own language first and the others far below scores high. Averaged over questions.
(The hybrid-batching paper, arXiv 2408.10536, reports "language bias" as a rank distance
of this kind; its exact normalisation could not be read from the sources stored here, so
our numbers are on this definition's scale: ranks in a pool of this evaluation's size.)

Ranks are computed from the full score matrix with numpy (every sentence of the pool is
ranked, so AP is exact, not cut at a depth): score descending, ties broken by doc id
descending, trec_eval's order (retrieval/metrics.py), so ir_measures on the same scores
gives the same values.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MEASURES = ("AP", "AP@20")
BIAS = "LangBias"
POOLED = "pooled"
SETTINGS = ("X-X", "X-Y", "pooled")


def ranks_of(scores: np.ndarray, doc_ids, relevant: np.ndarray) -> np.ndarray:
    """1-based ranks of relevant documents. `scores`: (queries, docs); `doc_ids`: the
    docs' ids (ties go to the larger id first, as in trec_eval); `relevant`: (queries, R)
    column indices into the docs. Returns (queries, R) ranks."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant)
    if scores.ndim != 2 or relevant.ndim != 2 or len(scores) != len(relevant):
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be "
                         "(queries, docs) and (queries, R)")
    if np.isnan(scores).any():
        raise ValueError("NaN in the scores")
    doc_ids = np.asarray(doc_ids, dtype=object)
    if len(doc_ids) != scores.shape[1]:
        raise ValueError(f"{len(doc_ids)} doc ids for {scores.shape[1]} score columns")
    if relevant.size and (relevant.min() < 0 or relevant.max() >= scores.shape[1]):
        raise ValueError("a relevant column index lies outside the documents")
    # position of each doc in id-descending order: among equal scores, the smaller
    # position ranks first
    by_id = np.argsort(np.argsort(doc_ids.astype(str))[::-1])
    own = np.take_along_axis(scores, relevant, axis=1)               # (Q, R)
    own_pos = by_id[relevant]                                        # (Q, R)
    ranks = np.empty(relevant.shape, dtype=np.int64)
    for r in range(relevant.shape[1]):
        s = own[:, r:r + 1]
        better = (scores > s) | ((scores == s) & (by_id[None, :] < own_pos[:, r:r + 1]))
        ranks[:, r] = better.sum(axis=1) + 1
    return ranks


def average_precision(ranks: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """Per query AP from the (queries, R) ranks of its R relevant documents (all of them
    ranked): mean over the relevant of (number of relevant at or above its rank) / rank;
    with `cutoff` k, relevant documents below rank k add 0 (trec_eval's map_cut_k)."""
    ranks = np.sort(np.asarray(ranks, dtype=np.float64), axis=1)
    if ranks.ndim != 2 or ranks.shape[1] == 0:
        raise ValueError(f"ranks must be (queries, R >= 1), got shape {ranks.shape}")
    if (ranks < 1).any():
        raise ValueError("ranks start at 1")
    if (np.diff(ranks, axis=1) == 0).any():
        raise ValueError("two relevant documents share a rank")
    hits = np.arange(1, ranks.shape[1] + 1)[None, :]
    precision = hits / ranks
    if cutoff is not None:
        if cutoff < 1:
            raise ValueError(f"cutoff must be >= 1, got {cutoff}")
        precision = np.where(ranks <= cutoff, precision, 0.0)
    return precision.mean(axis=1)


def language_bias(ranks: np.ndarray) -> np.ndarray:
    """Per query max(rank) - min(rank) over its relevant documents (one a language)."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] < 2:
        raise ValueError(f"language bias needs >= 2 relevant documents a query, got shape {ranks.shape}")
    return (ranks.max(axis=1) - ranks.min(axis=1)).astype(np.float64)


def _gold_columns(topics: pd.DataFrame, docs: pd.DataFrame, gold: pd.DataFrame) -> np.ndarray:
    """(queries,) column index of each topic's answer sentence among `docs`, via the base
    question id; `gold` maps base_id -> gold doc_id for the docs' language."""
    col = pd.Series(np.arange(len(docs)), index=docs["doc_id"].to_numpy())
    g = topics["base_id"].map(gold.set_index("base_id")["gold_doc_id"]).map(col)
    if g.isna().any():
        missing = topics.loc[g.isna(), "query_id"].head(3).tolist()
        raise ValueError(f"{int(g.isna().sum())} questions have no answer sentence in the pool "
                         f"(e.g. {missing})")
    return g.to_numpy(dtype=np.int64)


def _tidy(query_ids, q_lang: str, d_lang: str, values: dict) -> pd.DataFrame:
    frames = [pd.DataFrame({"query_id": list(query_ids), "measure": m, "value": v})
              for m, v in values.items()]
    return pd.concat(frames, ignore_index=True).assign(query_lang=q_lang, doc_lang=d_lang)


def evaluate_lareqa(coll, q_emb: dict, d_emb: dict, langs=None, cutoff: int = 20) -> pd.DataFrame:
    """Per-query LAReQA measures of one model on an XQuAD-R collection (`coll`: its test
    part; `q_emb` / `d_emb`: language -> normalised embeddings in the order of
    coll.topics(lang) / coll.docs(lang)). Rows (query_lang, doc_lang, query_id, measure,
    value): for every pair of `langs` (X-X on the diagonal, X-Y off it) AP and AP@cutoff;
    for doc_lang "pooled" (every language of `langs` at once) AP, AP@cutoff and LangBias."""
    langs = list(coll.languages if langs is None else langs)
    if len(langs) < 2:
        raise ValueError("the pooled setting needs at least two languages")
    gold = coll.queries[["lang", "base_id", "gold_doc_id"]]
    gold_by_lang = {lang: gold[gold["lang"] == lang] for lang in langs}
    frames = []
    pool_docs = pd.concat([coll.docs(lang) for lang in langs], ignore_index=True)
    pool_emb = np.concatenate([d_emb[lang] for lang in langs])
    cut = f"AP@{cutoff}"
    for q_lang in langs:
        topics = coll.topics(q_lang)
        for d_lang in langs:
            docs = coll.docs(d_lang)
            scores = q_emb[q_lang] @ d_emb[d_lang].T
            rel = _gold_columns(topics, docs, gold_by_lang[d_lang])[:, None]
            ranks = ranks_of(scores, docs["doc_id"], rel)
            frames.append(_tidy(topics["query_id"], q_lang, d_lang,
                                {"AP": average_precision(ranks),
                                 cut: average_precision(ranks, cutoff)}))
        scores = q_emb[q_lang] @ pool_emb.T
        rel = np.stack([_gold_columns(topics, pool_docs, gold_by_lang[d]) for d in langs], axis=1)
        ranks = ranks_of(scores, pool_docs["doc_id"], rel)
        frames.append(_tidy(topics["query_id"], q_lang, POOLED,
                            {"AP": average_precision(ranks), cut: average_precision(ranks, cutoff),
                             BIAS: language_bias(ranks)}))
    cols = ["query_lang", "doc_lang", "query_id", "measure", "value"]
    return pd.concat(frames, ignore_index=True)[cols]


def setting_of(query_lang: pd.Series, doc_lang: pd.Series) -> pd.Series:
    """"X-X", "X-Y" or "pooled" for each row."""
    return pd.Series(np.where(doc_lang == POOLED, "pooled",
                              np.where(query_lang == doc_lang, "X-X", "X-Y")), index=query_lang.index)


def per_question(per_query: pd.DataFrame, base_of: pd.Series) -> pd.DataFrame:
    """One value per (setting, measure, base question): the mean over the question's
    languages (X-X: its 11 monolingual values, X-Y: its 110 pair values, pooled: its 11
    query languages). Translations of a question are not independent, so the base question
    is the unit of every interval and paired test. `base_of`: query_id -> base_id."""
    pq = per_query.assign(setting=setting_of(per_query["query_lang"], per_query["doc_lang"]).to_numpy(),
                          base_id=per_query["query_id"].map(base_of).to_numpy())
    if pq["base_id"].isna().any():
        raise ValueError("query ids without a base question id")
    return (pq.groupby(["setting", "measure", "base_id"], observed=True)["value"].mean()
            .reset_index())


def setting_means(per_query: pd.DataFrame) -> pd.Series:
    """Mean per (setting, measure): X-X the mean over the languages' monolingual means, X-Y
    over the language pairs' means, pooled over the query languages' means (equal weights,
    as LAReQA and the hybrid paper average settings)."""
    pq = per_query.assign(setting=setting_of(per_query["query_lang"], per_query["doc_lang"]).to_numpy())
    cells = pq.groupby(["setting", "measure", "query_lang", "doc_lang"], observed=True)["value"].mean()
    return cells.groupby(level=["setting", "measure"]).mean()
