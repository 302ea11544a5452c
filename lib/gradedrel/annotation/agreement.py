"""Agreement between two annotators on the same pairs: score distributions, row-normalised
confusion matrices, quadratic weighted kappa (scikit-learn) with a bootstrap interval,
and how well one annotator's continuous grade separates the other's gold pairs (AUC)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

from gradedrel.annotation.rubric import GRADES


def paired_scores(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Pairs both annotators graded with a parsed score: columns query_id, doc_id, lang,
    score_a, score_b, and expected_b where b has a continuous grade."""
    left = a.loc[a["score"].notna(), ["query_id", "doc_id", "lang", "score"]]
    right = b.loc[b["score"].notna(), ["query_id", "doc_id", "score"]
                  + (["expected"] if "expected" in b else [])]
    merged = left.merge(right, on=["query_id", "doc_id"], suffixes=("_a", "_b"))
    return (merged.rename(columns={"expected": "expected_b"})
            .astype({"score_a": int, "score_b": int}))


def score_distribution(df: pd.DataFrame) -> pd.DataFrame:
    """Share of each grade per (annotator, lang), over parsed rows."""
    parsed = df[df["score"].notna()].astype({"score": int})
    counts = parsed.groupby(["annotator", "lang"])["score"].value_counts(normalize=True)
    return (counts.rename("share").reset_index()
            .pivot_table(index=["annotator", "lang"], columns="score", values="share", fill_value=0)
            .reindex(columns=list(GRADES), fill_value=0))


def row_normalised_confusion(score_a, score_b) -> pd.DataFrame:
    """Rows: annotator A's grade; cells: share of B's grades given A's (rows sum to 1;
    a grade A never gave is a row of NaN)."""
    cm = confusion_matrix(score_a, score_b, labels=list(GRADES)).astype(float)
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(totals > 0, cm / totals, np.nan)
    return pd.DataFrame(norm, index=pd.Index(GRADES, name="A"), columns=pd.Index(GRADES, name="B"))


def quadratic_kappa(score_a, score_b) -> float:
    return float(cohen_kappa_score(score_a, score_b, weights="quadratic", labels=list(GRADES)))


def kappa_with_interval(score_a, score_b, n_boot: int = 1000, alpha: float = 0.05,
                        seed: int = 0) -> dict:
    """QWK and a percentile bootstrap interval over pairs (resampled with replacement).
    Resamples where kappa is undefined (one grade only) are skipped and counted."""
    a, b = np.asarray(score_a), np.asarray(score_b)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        if len(np.unique(np.concatenate([a[idx], b[idx]]))) < 2:
            continue
        k = quadratic_kappa(a[idx], b[idx])
        if np.isfinite(k):
            boots.append(k)
    lo, hi = (np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if boots else (np.nan, np.nan))
    return {"n": len(a), "kappa": quadratic_kappa(a, b), "low": float(lo), "high": float(hi),
            "boot_used": len(boots)}


def kappa_by_language(pairs: pd.DataFrame, order=None, **kwargs) -> pd.DataFrame:
    rows = {lang: kappa_with_interval(g["score_a"], g["score_b"], **kwargs)
            for lang, g in pairs.groupby("lang")}
    table = pd.DataFrame(rows).T.rename_axis("lang")
    return table.reindex(order) if order is not None else table


def gold_auc(pairs: pd.DataFrame, gold_grade: int = 3, column: str = "expected_b") -> float:
    """AUC of B's continuous grade for telling A's `gold_grade` pairs from the rest
    (0.5 = no signal). NaN when only one class is present."""
    y = (pairs["score_a"] >= gold_grade).astype(int)
    if y.nunique() < 2:
        return float("nan")
    return float(roc_auc_score(y, pairs[column]))
