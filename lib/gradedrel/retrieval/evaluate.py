"""Evaluate an encoder on every query-language x corpus-language pair of a collection.

Each language's queries and documents are encoded once (cached), then every pair is a
matrix product, a top-k run and ir_measures. On parallel data the diagonal is
monolingual retrieval and the off-diagonal cells are exact cross-lingual retrieval.
"""
from __future__ import annotations

import pandas as pd
from tqdm import tqdm

from gradedrel.data.collection import Collection
from gradedrel.retrieval.encode import encode
from gradedrel.retrieval.metrics import DEFAULT_MEASURES, evaluate
from gradedrel.retrieval.search import search


def embed_by_language(model, coll: Collection, batch_size: int = 64, langs=None,
                      show_progress: bool | None = None):
    """({lang: query embeddings}, {lang: document embeddings}) for `langs` (default all)."""
    langs = coll.languages if langs is None else langs
    queries = {lang: encode(model, coll.topics(lang)["text"], "query", batch_size,
                            show_progress=show_progress) for lang in langs}
    docs = {lang: encode(model, coll.docs(lang)["text"], "passage", batch_size,
                         show_progress=show_progress) for lang in langs}
    return queries, docs


def evaluate_pairs(model, coll: Collection, pairs=None, k: int = 100,
                   measures=DEFAULT_MEASURES, batch_size: int = 64, embeddings=None,
                   show_progress: bool | None = None) -> pd.DataFrame:
    """Per-query metrics, columns query_lang, doc_lang, query_id, measure, value.
    `pairs` defaults to all (query language, corpus language) pairs; only their languages
    are encoded, unless `embeddings` (embed_by_language's pair) are given."""
    langs = coll.languages
    pairs = pairs or [(q, d) for q in langs for d in langs]
    q_emb, d_emb = embeddings or embed_by_language(
        model, coll, batch_size, langs=sorted({lang for pair in pairs for lang in pair}),
        show_progress=show_progress)
    frames = []
    for q_lang, d_lang in tqdm(pairs, desc="language pairs", disable=True if show_progress is False else None):
        topics, docs = coll.topics(q_lang), coll.docs(d_lang)
        run = search(q_emb[q_lang], d_emb[d_lang], topics["query_id"], docs["doc_id"], k)
        per_query = evaluate(coll.qrels_dict(q_lang, d_lang), run, measures)
        frames.append(per_query.assign(query_lang=q_lang, doc_lang=d_lang))
    cols = ["query_lang", "doc_lang", "query_id", "measure", "value"]
    return pd.concat(frames, ignore_index=True)[cols]


def mean_table(per_query: pd.DataFrame) -> pd.DataFrame:
    """Mean of each measure per (query_lang, doc_lang), measures as columns."""
    return (per_query.groupby(["query_lang", "doc_lang", "measure"])["value"].mean()
            .unstack("measure").reset_index())


def pair_matrix(per_query: pd.DataFrame, measure: str = "nDCG@10", order=None) -> pd.DataFrame:
    """query_lang x doc_lang matrix of one measure's mean."""
    m = (per_query[per_query["measure"] == measure]
         .groupby(["query_lang", "doc_lang"])["value"].mean().unstack("doc_lang"))
    if order is not None:
        m = m.reindex(index=order, columns=order)
    return m
