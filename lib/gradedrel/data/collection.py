"""The one normalised shape every data set takes: corpus, queries, graded qrels.

corpus   columns: doc_id, base_id, lang, text, group
queries  columns: query_id, base_id, lang, text, group
qrels    columns: query_id, doc_id, grade   (int, 0-3; 0 rows may be absent)

`base_id` is the id of a paragraph or question before translation. On parallel data
(XQuAD) the same base id appears in every language, so relevance across languages is
exact: a query's relevant documents in another language are the documents whose base
id is relevant in its own. `group` is the unit of the train/test split (the article).
Language-specific ids are `make_id(lang, base_id)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

CORPUS_COLUMNS = ["doc_id", "base_id", "lang", "text", "group"]
QUERY_COLUMNS = ["query_id", "base_id", "lang", "text", "group"]
QREL_COLUMNS = ["query_id", "doc_id", "grade"]


def make_id(lang: str, base_id: str) -> str:
    return f"{lang}:{base_id}"


@dataclass
class Collection:
    name: str
    corpus: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame

    def __post_init__(self):
        for frame, cols, what in ((self.corpus, CORPUS_COLUMNS, "corpus"),
                                  (self.queries, QUERY_COLUMNS, "queries"),
                                  (self.qrels, QREL_COLUMNS, "qrels")):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"{self.name}: {what} lacks columns {missing}")
        for frame, key in ((self.corpus, "doc_id"), (self.queries, "query_id")):
            dup = frame[key].duplicated()
            if dup.any():
                raise ValueError(f"{self.name}: duplicate {key} {frame[key][dup].iloc[0]!r}")
        self.qrels = self.qrels.astype({"grade": int})

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.corpus["lang"]) | set(self.queries["lang"]))

    @property
    def shares_groups(self) -> bool:
        """True where queries and documents come from the same groups (XQuAD's articles);
        false where a query's group is its own (MIRACL, CLIRMatrix)."""
        return set(self.queries["group"]) <= set(self.corpus["group"])

    def subset(self, *, langs=None, groups=None, query_ids=None) -> "Collection":
        """Rows restricted to languages, groups and/or query ids. Groups cut the corpus
        only where queries and documents share groups; otherwise the corpus stays whole
        (a MIRACL query's test split still searches the full corpus)."""
        corpus, queries = self.corpus, self.queries
        if langs is not None:
            corpus = corpus[corpus["lang"].isin(langs)]
            queries = queries[queries["lang"].isin(langs)]
        if groups is not None:
            if self.shares_groups:
                corpus = corpus[corpus["group"].isin(groups)]
            queries = queries[queries["group"].isin(groups)]
        if query_ids is not None:
            queries = queries[queries["query_id"].isin(query_ids)]
        qrels = self.qrels[self.qrels["query_id"].isin(queries["query_id"])
                           & self.qrels["doc_id"].isin(corpus["doc_id"])]
        return Collection(self.name, corpus.reset_index(drop=True),
                          queries.reset_index(drop=True), qrels.reset_index(drop=True))

    def docs(self, lang: str) -> pd.DataFrame:
        return self.corpus[self.corpus["lang"] == lang].reset_index(drop=True)

    def topics(self, lang: str) -> pd.DataFrame:
        return self.queries[self.queries["lang"] == lang].reset_index(drop=True)

    def qrels_dict(self, query_lang: str | None = None, doc_lang: str | None = None,
                   min_grade: int = 1) -> dict[str, dict[str, int]]:
        """Qrels as {query_id: {doc_id: grade}}, the shape ir_measures and ranx take.

        With `doc_lang` different from the query's language, relevance is carried
        across languages through base ids (exact on parallel data; empty otherwise).
        """
        q = self.queries if query_lang is None else self.topics(query_lang)
        rel = self.qrels[(self.qrels["grade"] >= min_grade)
                         & self.qrels["query_id"].isin(q["query_id"])]
        if doc_lang is not None:
            base_of_doc = self.corpus.set_index("doc_id")["base_id"]
            target = self.docs(doc_lang).set_index("base_id")["doc_id"]
            rel = rel.assign(doc_id=rel["doc_id"].map(base_of_doc).map(target)).dropna()
        out: dict[str, dict[str, int]] = {}
        for qid, did, grade in rel[["query_id", "doc_id", "grade"]].itertuples(index=False):
            out.setdefault(qid, {})[did] = int(grade)
        return out
