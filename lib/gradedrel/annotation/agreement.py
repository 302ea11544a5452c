"""Agreement between two annotators on the same pairs: score distributions, row-normalised
confusion matrices, quadratic weighted kappa (scikit-learn) with a bootstrap interval,
and how well one annotator's continuous grade separates the other's gold pairs (AUC);
the pilot's pairs left out of the sample; agreement against a resource axis (CC-100 size)
as trend tests with a bootstrap over templates paired across languages, as claims rows."""
from __future__ import annotations

from pathlib import Path

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


def pilot_pairs(results_dir, model: str) -> pd.DataFrame:
    """The (query_id, doc_id) pairs of the pilot that measured `model` (notebook 01's
    01_pilot_MODEL.parquet): the pairs the annotator was chosen on. Empty where that pilot
    did not run in this profile (smoke takes the xquad pilot's choice)."""
    path = Path(results_dir) / f"01_pilot_{model}.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["query_id", "doc_id"])
    return pd.read_parquet(path, columns=["query_id", "doc_id"]).drop_duplicates()


def without_pairs(df: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """`df` less the rows whose (query_id, doc_id) is among `pairs`."""
    if pairs.empty:
        return df.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(df[["query_id", "doc_id"]])
    return df[~keys.isin(pd.MultiIndex.from_frame(pairs[["query_id", "doc_id"]]))].reset_index(drop=True)


def resource_table(kappas: pd.DataFrame, fixed: pd.DataFrame, aucs: pd.Series,
                   sizes: pd.DataFrame, reference_lang: str = "en") -> pd.DataFrame:
    """Per language: kappa(A, B) with its interval and n, kappa of B against B in the
    reference language on the same content (NaN for the reference language itself, whose
    1.0 is true by construction: it stays out of every fit and plot), B's AUC for A's
    grade-3 pairs, and the CC-100 size, sorted by size."""
    table = (kappas[["n", "kappa", "low", "high"]].astype(float)
             .join(fixed[["kappa", "low", "high"]].astype(float).add_prefix("vs_en_"), how="left")
             .rename(columns={"vs_en_kappa": "kappa_vs_en", "vs_en_low": "kappa_vs_en_low",
                              "vs_en_high": "kappa_vs_en_high"})
             .join(aucs.rename("auc_grade3"), how="left")
             .join(sizes.set_index("lang")[["size_gib"]], how="left")
             .sort_values("size_gib"))
    if reference_lang in table.index:
        table.loc[reference_lang, ["kappa_vs_en", "kappa_vs_en_low", "kappa_vs_en_high"]] = np.nan
    return table


# --- trend tests: agreement against log pre-training size --------------------------------

TREND_MEASURES = {"kappa": "κ(rubric, B)", "kappa_vs_en": "κ(B in en, B) on the same content",
                  "auc_grade3": "B's AUC for the rubric's grade 3"}


def trend_variants(table: pd.DataFrame, reference_lang: str = "en") -> list[tuple[str, list[str]]]:
    """(measure, languages) of every trend test: each measure over all languages that have
    it and, where the reference language is among them, again without it (the pilot and
    the prompt are English: its point is the one most favoured)."""
    out = []
    for column in TREND_MEASURES:
        langs = [lang for lang in table.index if pd.notna(table.loc[lang, column])]
        if len(langs) > 2:
            out.append((column, langs))
        if reference_lang in langs and len(langs) > 3:
            out.append((column, [lang for lang in langs if lang != reference_lang]))
    return out


def weighted_quadratic_kappas(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """QWK of pairs (a, b) under each row of weights `w` (resamples, pairs): a pair drawn
    k times weighs k; equal to quadratic_kappas on the resampled arrays (tested)."""
    k = len(GRADES)
    onehot = np.zeros((len(a), k * k))
    onehot[np.arange(len(a)), np.asarray(a) * k + np.asarray(b)] = 1.0
    observed = (w @ onehot).reshape(-1, k, k)
    total = observed.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = observed.sum(2)[:, :, None] * observed.sum(1)[:, None, :] / total[:, None, None]
        weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
        den = (weights * expected).sum((1, 2))
        return np.where(den > 0, 1 - (weights * observed).sum((1, 2)) / den, np.nan)


def weighted_aucs(gold: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of `score` for `gold` (0/1) under each row of weights `w` (ties count a half;
    roc_auc_score's value at unit weights, tested); NaN where a class has no weight."""
    gold, score = np.asarray(gold, dtype=bool), np.asarray(score, dtype=float)
    pos, neg = score[gold], score[~gold]
    beats = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    wp, wn = w[:, gold], w[:, ~gold]
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.einsum("bi,ij,bj->b", wp, beats, wn) / den, np.nan)


def _spearman_rows(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of `values` against `x` (average ranks for ties)."""
    from scipy.stats import rankdata
    rv, rx = rankdata(values, axis=1), rankdata(x)
    rv, rx = rv - rv.mean(1, keepdims=True), rx - rx.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rv @ rx) / np.sqrt((rv ** 2).sum(1) * (rx ** 2).sum())


def template_bootstrap(a: pd.DataFrame, b: pd.DataFrame, items: pd.DataFrame, table: pd.DataFrame,
                       n_boot: int = 1000, seed: int = 0, reference_lang: str = "en") -> dict:
    """Spearman's rho of each trend_variants(table) measure against log CC-100 size on
    `n_boot` resamples of the templates (items' `rank`): one draw of templates for every
    language at once, since a template is the same question and sentence in each, so each
    language's kappa moves as it would had the study drawn other templates. Returns
    {(measure, tuple(langs)): array of rho, NaN where a resample leaves one undefined}."""
    rank = items[["query_id", "doc_id", "rank"]]
    templates = np.sort(items["rank"].unique())
    position = {r: i for i, r in enumerate(templates)}
    draws = np.random.default_rng(seed).integers(0, len(templates), (n_boot, len(templates)))
    weights = np.stack([np.bincount(d, minlength=len(templates)) for d in draws]).astype(float)
    pairs = paired_scores(a, b).merge(rank, on=["query_id", "doc_id"])
    expected = expected_pairs(a, b).merge(rank, on=["query_id", "doc_id"])
    graded = items.merge(b[["query_id", "doc_id", "score"]], on=["query_id", "doc_id"]).dropna(subset=["score"])
    reference = graded[graded["lang"] == reference_lang].set_index("rank")["score"]
    per_lang: dict[str, dict[str, np.ndarray]] = {}
    for lang in table.index:
        cols = {}
        g = pairs[pairs["lang"] == lang]
        if len(g):
            w = weights[:, g["rank"].map(position).to_numpy()]
            cols["kappa"] = weighted_quadratic_kappas(g["score_a"].to_numpy(), g["score_b"].to_numpy(), w)
        e = expected[expected["lang"] == lang]
        if len(e):
            w = weights[:, e["rank"].map(position).to_numpy()]
            cols["auc_grade3"] = weighted_aucs(e["score_a"].to_numpy() >= 3, e["expected_b"].to_numpy(), w)
        f = graded[graded["lang"] == lang].set_index("rank")["score"].to_frame("lang").join(
            reference.rename("ref"), how="inner")
        if len(f) and lang != reference_lang:
            w = weights[:, f.index.map(position).to_numpy()]
            cols["kappa_vs_en"] = weighted_quadratic_kappas(f["ref"].astype(int).to_numpy(),
                                                            f["lang"].astype(int).to_numpy(), w)
        per_lang[lang] = cols
    out = {}
    for column, langs in trend_variants(table, reference_lang):
        values = np.column_stack([per_lang[lang].get(column, np.full(n_boot, np.nan)) for lang in langs])
        rho = _spearman_rows(values, np.log(table.loc[langs, "size_gib"].to_numpy(dtype=float)))
        rho[~np.isfinite(values).all(1)] = np.nan
        out[(column, tuple(langs))] = rho
    return out


def trend_claims(table: pd.DataFrame, boot: dict, reference_lang: str = "en",
                 level: float = 0.95) -> list[dict]:
    """The paper's resource-level claim ("agreement is lower for lower-resource languages")
    as claims rows, one per trend_variants(table): Spearman's rho against log CC-100 size
    (its p from scipy, the languages as units), the interval from the template bootstrap,
    all rows one BH family."""
    from scipy import stats

    from gradedrel.claims import row
    rows = []
    for column, langs in trend_variants(table, reference_lang):
        test = stats.spearmanr(np.log(table.loc[langs, "size_gib"].astype(float)), table.loc[langs, column])
        rho = boot[(column, tuple(langs))]
        used = rho[np.isfinite(rho)]
        low, high = (np.quantile(used, [(1 - level) / 2, (1 + level) / 2]) if len(used) else (np.nan, np.nan))
        which = (f"{len(langs)} languages" if reference_lang in langs
                 else f"{len(langs)} languages; {reference_lang} is the reference" if column == "kappa_vs_en"
                 else f"{len(langs)} languages, without {reference_lang}")
        rows.append(row(f"{TREND_MEASURES[column]} falls with less pre-training text ({which})",
                        f"Spearman ρ against log CC-100 size, p over languages; CI: {len(rho)} bootstraps "
                        f"of templates paired across languages ({len(used)} defined)",
                        len(langs), float(test.statistic), float(low), float(high), float(test.pvalue),
                        family="trend tests of agreement against CC-100 size"))
    return rows
