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


def quadratic_kappas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """QWK of each row of two (resamples, pairs) grade arrays at once, as cohen_kappa_score
    computes it (tested against it); NaN where kappa is undefined (both annotators constant
    and equal). The bootstrap's thousands of resamples take milliseconds instead of seconds."""
    k = len(GRADES)
    rows = np.arange(a.shape[0])[:, None] * k * k
    counts = np.bincount((rows + a * k + b).ravel(), minlength=a.shape[0] * k * k)
    observed = counts.reshape(a.shape[0], k, k).astype(float)
    expected = observed.sum(2)[:, :, None] * observed.sum(1)[:, None, :] / a.shape[1]
    weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    den = (weights * expected).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 1 - (weights * observed).sum((1, 2)) / den, np.nan)


def kappa_with_interval(score_a, score_b, n_boot: int = 1000, alpha: float = 0.05,
                        seed: int = 0) -> dict:
    """QWK and a percentile bootstrap interval over pairs (resampled with replacement).
    Resamples where kappa is undefined (one grade only) are skipped and counted."""
    a, b = np.asarray(score_a, dtype=int), np.asarray(score_b, dtype=int)
    idx = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    boots = quadratic_kappas(a[idx], b[idx])
    boots = boots[np.isfinite(boots)]
    lo, hi = (np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if len(boots) else (np.nan, np.nan))
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


def expected_pairs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Pairs where A parsed and B has an expected (probability-weighted) grade, whether or
    not B's answer text parsed."""
    left = a.loc[a["score"].notna(), ["query_id", "doc_id", "lang", "score"]]
    right = b.loc[b["expected"].notna(), ["query_id", "doc_id", "expected"]]
    return (left.merge(right, on=["query_id", "doc_id"])
            .rename(columns={"score": "score_a", "expected": "expected_b"}).astype({"score_a": int}))


def annotator_summary(a: pd.DataFrame, b: pd.DataFrame, seconds: float | None = None,
                      timed_pairs: int | None = None) -> dict:
    """How well B reads the rubric, on the pairs B graded: parse rate, quadratic kappa of
    B's parsed grades against A's, AUC of B's expected grade for A's grade-3 pairs, the
    share of B's parsed answers that are [3], and seconds per pair (`seconds` spent on
    `timed_pairs` of them; all of them when not given)."""
    graded = b[b["query_id"].isin(a["query_id"])]
    parsed = paired_scores(a, graded)
    exp = expected_pairs(a, graded)
    return {"pairs": len(graded), "parsed": float(graded["score"].notna().mean()) if len(graded) else np.nan,
            "kappa": quadratic_kappa(parsed["score_a"], parsed["score_b"]) if len(parsed) > 1 else np.nan,
            "auc_grade3": gold_auc(exp) if len(exp) else np.nan,
            "share_answered_3": float((parsed["score_b"] == 3).mean()) if len(parsed) else np.nan,
            "seconds_per_pair": seconds / (timed_pairs or len(graded)) if seconds and len(graded) else np.nan}


def cross_language_kappa(b: pd.DataFrame, items: pd.DataFrame, reference_lang: str = "en") -> pd.DataFrame:
    """Hold the content fixed: for each language, quadratic kappa between B's grades of the
    same templates (items' `rank`) in `reference_lang` and in that language, n and interval."""
    graded = items.merge(b[["query_id", "doc_id", "score"]], on=["query_id", "doc_id"]).dropna(subset=["score"])
    ref = graded[graded["lang"] == reference_lang].set_index("rank")["score"]
    rows = {}
    for lang, g in graded.groupby("lang"):
        both = g.set_index("rank")["score"].to_frame("lang").join(ref.rename("ref"), how="inner")
        if len(both) >= 2:
            rows[lang] = kappa_with_interval(both["ref"].astype(int), both["lang"].astype(int))
    return pd.DataFrame(rows).T.rename_axis("lang")


def choose_annotator(pilot: pd.DataFrame, min_parsed: float = 0.9) -> str:
    """The pilot's model (index of `pilot`, rows of annotator_summary) with the highest kappa
    against the rubric among those that parse at least `min_parsed` of their answers (AUC
    breaks ties). A ValueError when none parses often enough."""
    usable = pilot[pilot["parsed"] >= min_parsed]
    if usable.empty:
        raise ValueError(f"no pilot model parses {min_parsed:.0%} of its answers:\n{pilot}")
    return str(usable.sort_values(["kappa", "auc_grade3"], ascending=False).index[0])


def resource_table(kappas: pd.DataFrame, fixed: pd.DataFrame, aucs: pd.Series,
                   sizes: pd.DataFrame, reference_lang: str = "en") -> pd.DataFrame:
    """Per language: kappa(A, B) with its interval and n, kappa of B against B in the
    reference language on the same content, B's AUC for A's grade-3 pairs, and the CC-100
    size, sorted by size; plus Spearman's rho of each against log size in `attrs` (for
    kappa_vs_en without the reference language, whose 1.0 is true by construction), and
    the languages each rho rests on in attrs["spearman_n"]."""
    from scipy import stats

    table = (kappas[["n", "kappa", "low", "high"]].astype(float)
             .join(fixed[["kappa", "low", "high"]].astype(float).add_prefix("vs_en_"), how="left")
             .rename(columns={"vs_en_kappa": "kappa_vs_en", "vs_en_low": "kappa_vs_en_low",
                              "vs_en_high": "kappa_vs_en_high"})
             .join(aucs.rename("auc_grade3"), how="left")
             .join(sizes.set_index("lang")[["size_gib"]], how="left")
             .sort_values("size_gib"))
    table.attrs["spearman"], table.attrs["spearman_n"] = {}, {}
    for column in ("kappa", "kappa_vs_en", "auc_grade3"):
        rows = table.drop(index=reference_lang, errors="ignore") if column == "kappa_vs_en" else table
        rows = rows[rows[column].notna()]
        if len(rows) > 2:
            table.attrs["spearman"][column] = stats.spearmanr(np.log(rows["size_gib"]), rows[column])
            table.attrs["spearman_n"][column] = len(rows)
    return table


def agreement_findings(table: pd.DataFrame, reference_lang: str = "en") -> list[str]:
    """The paper's claim (agreement lower in lower-resource languages) checked on `table`
    (resource_table): Spearman's rho of kappa against log pre-training size, its p-value
    and n, and whether the intervals of the lowest- and highest-resource halves overlap."""
    lines = []
    for column, what in (("kappa", "κ(rubric, B)"), ("kappa_vs_en", f"κ(B in {reference_lang}, B)"),
                         ("auc_grade3", "B's AUC for grade 3")):
        rho = table.attrs.get("spearman", {}).get(column)
        if rho is None:
            continue
        n = table.attrs.get("spearman_n", {}).get(column, int(table[column].notna().sum()))
        verdict = ("supports the paper (lower with less data)" if rho.pvalue < 0.05 and rho.statistic > 0
                   else "contradicts it (higher with less data)" if rho.pvalue < 0.05
                   else "neither supports nor contradicts it (no significant trend)")
        lines.append(f"{what} against log CC-100 size over {n} languages: Spearman ρ = "
                     f"{rho.statistic:+.2f} (p = {rho.pvalue:.3f}): {verdict}.")
    half = len(table) // 2
    if half and "low" in table:
        low, high = table.iloc[:half], table.iloc[-half:]
        lines.append(f"Mean κ(rubric, B): {low['kappa'].mean():.3f} in the {half} languages with the least "
                     f"pre-training text ({', '.join(low.index)}), {high['kappa'].mean():.3f} in the {half} "
                     f"with the most ({', '.join(high.index)}); the per-language intervals span "
                     f"{(table['high'] - table['low']).median():.2f} κ at the median.")
    return lines
