"""Known false negatives kept out of InfoNCE's in-batch negatives.

With in-batch negatives, every other row's passage is a negative for a query. At a low
threshold one passage is relevant to several queries (on XQuAD's rubric, at tau=1 every
sentence of a question's own article is a positive), so a batch can hold a query's
positive as its negative. `FalseNegativeMask` knows from the annotations of the training
pool which (query, passage) pairs must not be negatives:

  graded >= tau for the query                      never a negative
  graded <  tau for the query                      a negative (a known one)
  not graded, from the query's own article         never a negative: its grade is unknown,
                                                   and the rubric grades it at least 1
  not graded, from another article                 a negative

`MaskedInfoNCELoss` (training/masked_infonce.py) is InfoNCE as sentence-transformers' MultipleNegativesRankingLoss
computes it (cosine similarity times `scale`, cross-entropy over the batch's passages and
hard negatives), with the logits of those pairs set to -inf. Each training row carries its
row number in a `label` column, which sentence-transformers' collator hands to the loss as
`labels`; the loss looks the batch's rows up in the mask. A batch in which a known false
negative counts as a negative therefore cannot occur, whatever the sampler drew.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

LABEL_COLUMN = "label"


class FalseNegativeMask:
    """Which rows' passages (and hard negatives) may serve as negatives for which rows'
    queries. `rows`: the training table (query_id, doc_id, optionally negative_id), in
    the order the trainer sees it; `annotations`: every graded (query_id, doc_id, score)
    known for the training pool (not only the run's sample: a grade is knowledge wherever
    it was drawn); `query_group` / `doc_group`: id -> article."""

    def __init__(self, rows: pd.DataFrame, annotations: pd.DataFrame, tau: int,
                 query_group: pd.Series, doc_group: pd.Series):
        if tau not in (1, 2, 3):
            raise ValueError(f"tau must be 1, 2 or 3, got {tau!r}")
        self.tau = int(tau)
        self.query_ids = rows["query_id"].astype(str).tolist()
        self.doc_ids = rows["doc_id"].astype(str).tolist()
        self.negative_ids = (rows["negative_id"].astype(str).tolist()
                             if "negative_id" in rows.columns else None)
        graded = annotations.dropna(subset=["score"])
        self.grades = {(str(q), str(d)): int(s) for q, d, s
                       in graded[["query_id", "doc_id", "score"]].itertuples(index=False)}
        self.query_group = query_group.to_dict()
        self.doc_group = doc_group.to_dict()
        self.masked = 0          # in-batch candidates masked so far, and seen so far
        self.candidates = 0

    def __len__(self) -> int:
        return len(self.query_ids)

    def forbidden(self, query_id: str, doc_id: str) -> bool:
        """True where `doc_id` must not be a negative for `query_id`."""
        grade = self.grades.get((query_id, doc_id))
        if grade is not None:
            return grade >= self.tau
        group = self.query_group.get(query_id)
        return group is not None and group == self.doc_group.get(doc_id)

    def columns(self, rows: Iterable[int]) -> list[str]:
        """The batch's candidate passages in the loss's column order: every row's passage,
        then every row's hard negative (where there are any)."""
        rows = list(rows)
        cols = [self.doc_ids[r] for r in rows]
        if self.negative_ids is not None:
            cols += [self.negative_ids[r] for r in rows]
        return cols

    def batch_mask(self, rows: Iterable[int]) -> np.ndarray:
        """Boolean (batch, candidates): True where the row's query must not see that
        candidate as a negative. A row's own positive is never masked (it is the target),
        nor its own hard negative (graded below tau by construction)."""
        rows = [int(r) for r in rows]
        cols = self.columns(rows)
        n = len(rows)
        mask = np.zeros((n, len(cols)), dtype=bool)
        for i, r in enumerate(rows):
            q = self.query_ids[r]
            for j, doc in enumerate(cols):
                if j % n == i:          # own positive (j == i) or own hard negative (j == n + i)
                    continue
                mask[i, j] = self.forbidden(q, doc)
        self.masked += int(mask.sum())
        self.candidates += n * (len(cols) - (2 if self.negative_ids is not None else 1))
        return mask

    def known_false_negatives(self, rows: Iterable[int]) -> list[tuple[str, str]]:
        """(query, passage) pairs of a batch that plain InfoNCE would use as negatives
        although they are forbidden: what the mask removes."""
        rows = [int(r) for r in rows]
        cols = self.columns(rows)
        n = len(rows)
        return [(self.query_ids[r], doc) for i, r in enumerate(rows) for j, doc in enumerate(cols)
                if j % n != i and self.forbidden(self.query_ids[r], doc)]
