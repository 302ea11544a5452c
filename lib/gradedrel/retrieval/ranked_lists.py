"""Stored ranked lists, and the relevance judgements they can be scored against afterwards.

Takes a run ({query_id: {doc_id: score}}) and gives a compact frame (query_lang, doc_lang,
query_id, doc_id, rank), stored by a sweep beside its per-query metrics (RunStore "ranked");
and back. Scores are not kept: every measure used here reads only the order.

Three relevance definitions over XQuAD-R's sentences (sentence ids LANG:aNNpNsN; a query's
gold answer sentence is `gold_doc_id`, its paragraph `gold_paragraph`, its article `group`),
for a query in one language against the sentences of another (or the same):

  "sentence"   the answer sentence only, grade 1 (XQuAD-R's own qrels: what the threshold
               grid's nDCG@10 scores, and tau=3's definition of relevant)
  "graded"     gain 3 the answer sentence, 2 another sentence of its paragraph, 1 another
               sentence of its article (the rubric's grades as gains: nDCG@10 then rewards
               near misses as tau=1 and tau=2 define them)
  "paragraph"  every sentence of the gold paragraph, grade 1 (paragraph-level retrieval: a
               sentence counts when it lies in the paragraph that answers)

`evaluate_ranked` scores stored lists with ir_measures under any of them.
"""
from __future__ import annotations

import pandas as pd

RANKED_COLUMNS = ["query_lang", "doc_lang", "query_id", "doc_id", "rank"]
QRELS_KINDS = ("sentence", "graded", "paragraph")


def ranked_frame(run: dict, query_lang: str, doc_lang: str) -> pd.DataFrame:
    """A run as rows, rank 1 = highest score (ties in trec_eval's order, metrics.rank_documents)."""
    from gradedrel.retrieval.metrics import rank_documents
    rows = []
    for qid, docs in run.items():
        rows += [(query_lang, doc_lang, qid, did, r) for r, did in enumerate(rank_documents(docs), 1)]
    frame = pd.DataFrame(rows, columns=RANKED_COLUMNS)
    return frame.astype({"query_lang": "category", "doc_lang": "category", "rank": "int16"})


def run_of(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """A stored frame (one language pair) back as a run; score = -rank."""
    out: dict[str, dict[str, float]] = {}
    for qid, did, rank in zip(frame["query_id"], frame["doc_id"], frame["rank"]):
        out.setdefault(str(qid), {})[str(did)] = -float(rank)
    return out


def _paragraph(doc_base: str) -> str:
    """"a00p1s3" -> "a00p1"."""
    return doc_base.rsplit("s", 1)[0]


def qrels_for(queries: pd.DataFrame, corpus: pd.DataFrame, doc_lang: str, kind: str) -> dict:
    """{query_id: {doc_id: grade}} of `queries` against `corpus`'s `doc_lang` sentences.
    `queries` needs query_id, gold_doc_id, group; `corpus` doc_id, base_id, lang, group."""
    if kind not in QRELS_KINDS:
        raise ValueError(f"qrels kind must be one of {QRELS_KINDS}, got {kind!r}")
    docs = corpus[corpus["lang"] == doc_lang]
    by_group = docs.groupby("group")["base_id"].apply(list).to_dict()
    out = {}
    for qid, gold, group in zip(queries["query_id"], queries["gold_doc_id"], queries["group"]):
        gold_base = gold.split(":", 1)[1]
        gold_par = _paragraph(gold_base)
        grades = {}
        for base in by_group.get(group, []):
            if base == gold_base:
                grade = 3 if kind == "graded" else 1
            elif _paragraph(base) == gold_par:
                grade = {"graded": 2, "paragraph": 1}.get(kind, 0)
            else:
                grade = 1 if kind == "graded" else 0
            if grade:
                grades[f"{doc_lang}:{base}"] = grade
        out[qid] = grades
    return out


def evaluate_ranked(frame: pd.DataFrame, queries: pd.DataFrame, corpus: pd.DataFrame,
                    kinds=QRELS_KINDS, measures=("nDCG@10",)) -> pd.DataFrame:
    """Per-query values of `measures` under each relevance definition, for every language
    pair in `frame`: columns query_lang, doc_lang, qrels, query_id, measure, value. Only the
    frame's queries are scored (each judged under every kind: its answer sentence exists)."""
    from gradedrel.retrieval.metrics import evaluate

    parts = []
    for (q_lang, d_lang), pair in frame.groupby(["query_lang", "doc_lang"], observed=True):
        run = run_of(pair)
        mine = queries[queries["query_id"].isin(run)]
        for kind in kinds:
            per_query = evaluate(qrels_for(mine, corpus, d_lang, kind), run, measures)
            parts.append(per_query.assign(query_lang=q_lang, doc_lang=d_lang, qrels=kind))
    cols = ["query_lang", "doc_lang", "qrels", "query_id", "measure", "value"]
    return pd.concat(parts, ignore_index=True)[cols]
