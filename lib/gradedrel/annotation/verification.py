"""Notebook 01's verification: numbers a fresh run must reproduce, independent of what the
run being checked stored.

Takes a collection, candidate tables (query_id, doc_id) and annotator A (the rubric); gives
plain numbers for `results.compare_expected`:
  seeded_query_ids    the questions checked (seeded, the same every run)
  share_found_again   of the stored candidates of those questions, the share a fresh
                      retrieval finds again (checks the store against the code)
  candidate_quality   the share of questions whose top-k holds a grade-3 sentence (the answer
                      sentence) and the candidates' mean rubric grade: absolute numbers, so
                      data/expected/ can hold them, and a changed encoder, tokenizer, data split
                      or rubric moves them whatever the store holds
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def seeded_query_ids(coll, lang: str, n_queries: int, seed: int = 0) -> list[str]:
    topics = coll.topics(lang)
    return topics.sample(min(n_queries, len(topics)), random_state=seed)["query_id"].tolist()


def share_found_again(stored: pd.DataFrame, fresh: pd.DataFrame) -> float:
    key = ["query_id", "doc_id"]
    return float(len(stored[key].merge(fresh[key], on=key)) / max(len(stored), 1))


def candidate_quality(annotator, coll, candidates: pd.DataFrame, lang: str, k: int) -> dict[str, float]:
    """{"answer sentence in top-k LANG": share of questions with a grade-3 candidate,
    "mean rubric grade of top-k LANG": mean grade over all candidates}, graded by `annotator`."""
    from gradedrel.annotation.judgement import pairs_from_candidates
    if candidates.empty:
        return {}
    grades = {(j.query_id, j.doc_id): j.score for j in annotator.grade(pairs_from_candidates(coll, candidates))}
    graded = candidates.assign(grade=[grades.get((q, d)) for q, d in
                                      candidates[["query_id", "doc_id"]].itertuples(index=False)])
    if graded["grade"].isna().any():
        raise ValueError(f"{int(graded['grade'].isna().sum())} candidates got no rubric grade")
    found = graded.groupby("query_id")["grade"].max().eq(3)
    return {f"answer sentence in top-{k} {lang}": float(found.mean()),
            f"mean rubric grade of top-{k} {lang}": float(np.mean(graded["grade"].astype(float)))}
