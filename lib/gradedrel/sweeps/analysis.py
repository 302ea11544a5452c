"""Tables from a sweep's stored per-query metrics: points against the baseline with paired
significance (Figure 5/6), language-mixture changes (Table 1), cross-lingual relative
change from tau=1 to tau=3 (Table 2), and the checks of the paper's claims.

Every function reads a `SweepSetup`'s store and the configurations asked for; those not
finished in the store are simply absent from the result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from gradedrel.retrieval.metrics import paired_test
from gradedrel.sweeps.grid import BASELINE, RunSpec, SweepSetup, mixture_variant

# The paper's resource levels (section 3.1, by MIRACL/Wikipedia size) for the languages
# both studies have, and the threshold its Figure 5 finds each level prefers: "lower-resource
# languages tend to benefit from lower thresholds, whereas higher-resource languages perform
# better with higher thresholds".
PAPER_RESOURCE_LEVEL = {"ar": "low", "ru": "high", "es": "high", "en": "very high"}
PAPER_PREFERS_LOW_TAU = {"low": True, "high": False, "very high": False}

SPEC_COLUMNS = ["train_langs", "target", "tau", "size", "size_reading", "seed", "annotator",
                "hard_negatives", "halves", "eval_scope"]
ALPHA = 0.05


def _per_query_values(setup: SweepSetup, spec: RunSpec, measure: str) -> pd.DataFrame | None:
    h = setup.config_hash(spec)
    if not setup.store.is_finished(h):
        return None
    pq = setup.store.per_query(h)
    return pq[pq["measure"] == measure]


def _pair_series(values: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """(query language, corpus language) -> the per-query values, split in one pass."""
    return {(q_lang, d_lang): g.set_index("query_id")["value"].astype(float)
            for (q_lang, d_lang), g in values.groupby(["query_lang", "doc_lang"], sort=True)}


def spec_columns(spec: RunSpec) -> dict:
    return {"train_langs": "+".join(spec.train_langs), "target": spec.target, "tau": spec.tau,
            "size": spec.size, "size_reading": spec.size_reading, "seed": spec.seed,
            "annotator": spec.annotator, "hard_negatives": spec.hard_negatives,
            "halves": "".join(spec.halves), "eval_scope": spec.eval_scope}


def difference_interval(a: pd.Series, b: pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean paired difference a - b over the shared queries
    (scipy.stats.ttest_rel's confidence interval); NaNs under two shared queries, and the
    zero-width interval where every difference is the same."""
    shared = a.index.intersection(b.index)
    x, y = a[shared].to_numpy(dtype=float), b[shared].to_numpy(dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    diff = x - y
    if np.all(diff == diff[0]):      # scipy warns of precision loss on a constant sample
        return float(diff[0]), float(diff[0])
    ci = stats.ttest_rel(x, y).confidence_interval(confidence_level=level)
    return float(ci.low), float(ci.high)


def compare_to_reference(setup: SweepSetup, specs, pairs="target", measure: str = "nDCG@10",
                         reference=lambda spec: BASELINE, method: str = "t") -> pd.DataFrame:
    """One row per (configuration, query language, corpus language): mean of `measure`,
    the reference run's mean on the same queries, the difference with its 95% t-interval,
    and a paired test over queries (gradedrel.retrieval.metrics.paired_test; two-sided). `pairs`: "target" (the target
    language's monolingual pair), "all" (every evaluated pair) or a list of pairs.
    `reference(spec)` names the run compared against (default: the un-fine-tuned
    baseline; None: the configuration is left out). Adds Benjamini-Hochberg q-values over
    the rows returned."""
    rows = []
    cache: dict = {}
    latest = setup.store.latest()

    def values(spec):
        if spec not in cache:
            found = _per_query_values(setup, spec, measure)
            cache[spec] = None if found is None else _pair_series(found)
        return cache[spec]

    for spec in specs:
        mine, ref_spec = values(spec), reference(spec)
        ref = None if ref_spec is None else values(ref_spec)
        if mine is None or ref is None:
            continue
        if pairs == "target":
            wanted = [(spec.target, spec.target)]
        elif pairs == "all":
            wanted = sorted(mine)
        else:
            wanted = list(pairs)
        record = latest[setup.config_hash(spec)]
        counts = record.get("counts") or {}
        positives = sum(counts.get("positives", {}).values())
        used = counts.get(spec.size_reading, {}).get(spec.target)
        size_value = used if spec.size == "all" else spec.size
        for q_lang, d_lang in wanted:
            empty = pd.Series(dtype=float)
            a, b = mine.get((q_lang, d_lang), empty), ref.get((q_lang, d_lang), empty)
            if len(a) < 2 or len(b) < 2:
                continue
            test = paired_test(a, b, method=method)
            low, high = difference_interval(a, b)
            rows.append({"config_hash": setup.config_hash(spec), **spec_columns(spec),
                         "query_lang": q_lang, "doc_lang": d_lang,
                         "size_value": size_value, "n_positives": positives,
                         "steps": record.get("steps"),
                         "mean": float(a.mean()), "reference": float(b.reindex(a.index).mean()),
                         "delta": test.mean_difference, "ci_low": low, "ci_high": high,
                         "p_value": test.p_value, "n_queries": test.n_queries})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = bh_q_values(out["p_value"].fillna(1.0).to_numpy())
    out["significant"] = out["q_value"] < ALPHA
    return out


def bh_q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control)."""
    return stats.false_discovery_control(p) if len(p) else np.asarray(p, dtype=float)


def baseline_means(setup: SweepSetup, measure: str = "nDCG@10") -> pd.DataFrame:
    """query_lang x doc_lang matrix of the un-fine-tuned model's mean."""
    values = _per_query_values(setup, BASELINE, measure)
    if values is None:
        return pd.DataFrame()
    return values.groupby(["query_lang", "doc_lang"])["value"].mean().unstack("doc_lang")


# --- notebook 03: threshold x size -------------------------------------------------------

def best_tau(points: pd.DataFrame) -> pd.DataFrame:
    """Per (annotator, language): the tau with the highest mean, each tau at its largest
    size (under the positives reading "all" is a different number for each tau)."""
    keys = ["annotator", "target", "tau"]
    largest = points[points["size_value"] == points.groupby(keys)["size_value"].transform("max")]
    means = largest.groupby(["annotator", "target", "tau"])["mean"].mean().reset_index()
    idx = means.groupby(["annotator", "target"])["mean"].idxmax()
    best = means.loc[idx].rename(columns={"tau": "best_tau", "mean": "best_mean"})
    spread = means.groupby(["annotator", "target"])["mean"].agg(lambda s: s.max() - s.min())
    taus = means.groupby(["annotator", "target"])["tau"].nunique()
    return best.set_index(["annotator", "target"]).assign(tau_spread=spread, taus=taus).reset_index()


def check_preferred_tau(best: pd.DataFrame) -> pd.DataFrame:
    """Our best tau beside the one the paper's finding predicts, for the shared languages
    where at least two taus ran (with one, "best" says nothing)."""
    shared = best[best["target"].isin(PAPER_RESOURCE_LEVEL) & (best["taus"] >= 2)].copy()
    shared["paper_resource_level"] = shared["target"].map(PAPER_RESOURCE_LEVEL)
    low = shared["paper_resource_level"].map(PAPER_PREFERS_LOW_TAU)
    shared["paper_predicts"] = np.where(low, "τ=1 best", "τ>1 best")
    shared["agrees"] = np.where(low, shared["best_tau"] == 1, shared["best_tau"] > 1)
    return shared


def seed_variance(points: pd.DataFrame) -> pd.DataFrame:
    """Per (annotator, language, tau, size) run with more than one seed: the seeds' means,
    their standard deviation and range, beside the largest per-point 95% interval half-width
    over queries: how much of a difference between points the seed alone can make."""
    rows = []
    for keys, g in points.groupby(["annotator", "target", "tau", "size_value"]):
        if g["seed"].nunique() < 2:
            continue
        rows.append(dict(zip(["annotator", "target", "tau", "size_value"], keys),
                         seeds=int(g["seed"].nunique()), mean=g["mean"].mean(),
                         seed_sd=g["mean"].std(ddof=1), seed_range=g["mean"].max() - g["mean"].min(),
                         query_ci_half_width=((g["ci_high"] - g["ci_low"]) / 2).max(),
                         delta_signs=f"{int((g['delta'] > 0).sum())}+/{int((g['delta'] < 0).sum())}-"))
    return pd.DataFrame(rows)


def size_trend(points: pd.DataFrame) -> pd.DataFrame:
    """Per (annotator, language, tau) curve, the paper's two size findings: its change
    against the baseline at the smallest and the largest size (means over seeds), whether
    it ends higher than it starts, whether it starts below the baseline and then recovers
    (ends above it), and whether it never reaches the baseline at any size."""
    rows = []
    for (annot, lang, tau), g in points.groupby(["annotator", "target", "tau"]):
        g = g.groupby("size_value")[["delta", "mean"]].mean().sort_index()
        first, last = g["delta"].iloc[0], g["delta"].iloc[-1]
        rows.append({"annotator": annot, "target": lang, "tau": tau,
                     "smallest_size": g.index[0], "delta_smallest": first,
                     "largest_size": g.index[-1], "delta_largest": last,
                     "improves_with_size": bool(g["mean"].iloc[-1] > g["mean"].iloc[0]),
                     "dips_then_recovers": bool(first < 0 < last),
                     "never_reaches_baseline": bool((g["delta"] < 0).all())})
    return pd.DataFrame(rows)


# --- notebook 04: mixtures (Table 1) -----------------------------------------------------

def mixture_table(setup: SweepSetup, specs, measure: str = "nDCG@10", method: str = "t") -> pd.DataFrame:
    """Rows (target, added, variant, tau): the target-only fine-tuned mean ("-" rows carry it
    as `value`) and, for mixtures, the change, the relative change (%) and a paired test of
    the mixture against the target-only model over the target's queries, with BH q over
    the mixtures. `variant`: "same"
    (the added language from the target's articles) or "disjoint" (from other articles)."""
    mono = {(s.target, s.tau, s.seed, s.halves): s for s in specs if len(s.train_langs) == 1}
    mixes = [s for s in specs if len(s.train_langs) == 2]
    alone = compare_to_reference(setup, list(mono.values()), "target", measure)
    vs_alone = compare_to_reference(
        setup, mixes, "target", measure, method=method,
        reference=lambda s: mono.get((s.target, s.tau, s.seed, s.halves[:1])))   # none: no row
    rows = []
    for r in alone.itertuples():
        rows.append({"target": r.target, "added": "-", "variant": "-", "tau": r.tau, "value": r.mean,
                     "change": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "relative_change_pct": np.nan, "p_value": np.nan, "zero_shot": r.reference,
                     "n_queries": r.n_queries})
    variants = {setup.config_hash(s): mixture_variant(s) for s in mixes}
    for r in vs_alone.itertuples():
        rows.append({"target": r.target, "added": r.train_langs.split("+")[1],
                     "variant": variants[r.config_hash], "tau": r.tau,
                     "value": r.mean, "change": r.delta, "ci_low": r.ci_low, "ci_high": r.ci_high,
                     "relative_change_pct": 100 * r.delta / r.reference if r.reference else np.nan,
                     "p_value": r.p_value, "zero_shot": np.nan, "n_queries": r.n_queries})
    out = pd.DataFrame(rows)
    if len(out):      # BH over the mixtures (the target-only rows have no test)
        mixed = out["added"] != "-"
        out["q_value"] = np.nan
        out.loc[mixed, "q_value"] = bh_q_values(out.loc[mixed, "p_value"].fillna(1.0).to_numpy())
    return out


def table1_layout(table: pd.DataFrame, targets, added, taus, variant: str = "disjoint") -> pd.DataFrame:
    """The paper's Table 1 layout for one variant: '-' rows hold the target-only value,
    others '+0.012 (+1.9%)', `*` where the paired test's BH q (over the table's mixtures;
    p where the table has no q) is below 0.05. A table without a `variant` column (the
    paper's) is read as that variant."""
    if "variant" not in table.columns:
        table = table.assign(variant=variant)
    cells = {}
    for r in table.itertuples():
        if r.added == "-":
            text = f"{r.value:.3f}"
        elif r.variant != variant:
            continue
        else:
            star = "*" if getattr(r, "q_value", r.p_value) < ALPHA else ""
            text = f"{r.change:+.3f} ({r.relative_change_pct:+.1f}%){star}"
        cells[(r.target, r.added, r.tau)] = text
    index = [(t, a) for t in targets for a in ["-"] + [x for x in added if x != t]]
    out = pd.DataFrame([[cells.get((t, a, tau), "") for tau in taus] for t, a in index],
                       index=pd.MultiIndex.from_tuples(index, names=["target", "added"]),
                       columns=[f"tau={tau}" for tau in taus])
    return out


def compare_table1(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our mixture changes beside the paper's, for the (target, added, tau) both have;
    `same_sign` says whether the two changes point the same way."""
    cols = ["target", "added", "tau"]
    merged = ours.merge(paper, on=cols, suffixes=("_ours", "_paper"))
    merged = merged[merged["added"] != "-"]
    merged["same_sign"] = np.sign(merged["change_ours"]) == np.sign(merged["change_paper"])
    return merged[cols + ["variant", "change_ours", "relative_change_pct_ours", "change_paper",
                          "relative_change_pct_paper", "same_sign"]]


# --- notebook 05: cross-lingual (Table 2, Figure 7) ---------------------------------------

def crosslingual_points(setup: SweepSetup, specs, measure: str = "nDCG@10",
                        method: str = "t") -> pd.DataFrame:
    """Every evaluated pair of every (monolingual) model, against the baseline."""
    return compare_to_reference(setup, specs, "all", measure, method=method)


def relative_change_matrix(points: pd.DataFrame, low: int = 1, high: int = 3,
                           order=None, columns=None) -> pd.DataFrame:
    """Table 2: 100 x (v(high) - v(low)) / v(low) for each query language (the model's
    training language) x corpus language; v is the mean over seeds of the model trained
    on the query language. `order` orders rows and, unless `columns` is given, columns."""
    own = points[points["target"] == points["query_lang"]]
    v = own.groupby(["query_lang", "doc_lang", "tau"])["mean"].mean().unstack("tau")
    if low not in v.columns or high not in v.columns:
        return pd.DataFrame()
    rel = (100 * (v[high] - v[low]) / v[low]).unstack("doc_lang")
    if order is not None:
        rows = [lang for lang in order if lang in rel.index or lang in rel.columns]
        cols = rows if columns is None else [lang for lang in columns if lang in rel.columns]
        rel = rel.reindex(index=rows, columns=cols)
    return rel


def compare_table2(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Cells both tables have, with whether the sign (which tau wins) agrees; our cells
    without both models (NaN) are not cells we have."""
    long = ours.stack().dropna().rename("ours_pct").reset_index()
    long.columns = ["query_lang", "doc_lang", "ours_pct"]
    merged = long.merge(paper, on=["query_lang", "doc_lang"])
    merged = merged.rename(columns={"relative_change_pct": "paper_pct"})
    merged["same_sign"] = np.sign(merged["ours_pct"]) == np.sign(merged["paper_pct"])
    return merged


def variant_contrast(table: pd.DataFrame) -> pd.DataFrame:
    """Per (target, added, tau): the mixture's change against the target alone when the
    added language comes from the target's own articles ("same": on XQuAD its translations)
    and from other articles ("disjoint"), and same minus disjoint: what parallel content
    adds beyond more data in another language."""
    mixes = table[table["added"] != "-"]
    wide = mixes.pivot_table(index=["target", "added", "tau"], columns="variant", values="change")
    if {"same", "disjoint"} <= set(wide.columns):
        wide["same − disjoint"] = wide["same"] - wide["disjoint"]
    return wide.reset_index()


def mixture_claims(table: pd.DataFrame) -> pd.DataFrame:
    """Per target (and variant, where the table has one): the tau at which the target alone is
    best, the tau at which additions help most (mean change over them), whether that mean
    falls as tau rises (the paper's Arabic pattern), and how many additions help. Works on
    ours (mixture_table) and on the paper's Table 1 (data/paper/threshold_table1.csv)."""
    table = table if "variant" in table else table.assign(variant=np.where(table["added"] == "-", "-", "paper"))
    alone = table[table["added"] == "-"]
    rows = []
    for (target, variant), g in table[table["added"] != "-"].groupby(["target", "variant"]):
        by_tau = g.groupby("tau")["change"].mean()
        own = alone[alone["target"] == target].groupby("tau")["value"].mean()
        rows.append({"target": target, "variant": variant,
                     "best τ alone": int(own.idxmax()) if len(own) else None,
                     "best τ to add": int(by_tau.idxmax()),
                     "mean change per τ": ", ".join(f"τ={t}: {v:+.4f}" for t, v in by_tau.items()),
                     "change falls as τ rises": bool(by_tau.is_monotonic_decreasing and len(by_tau) > 1),
                     "additions that help": f"{int((g['change'] > 0).sum())}/{len(g)}"})
    return pd.DataFrame(rows)


def threshold_findings(points: pd.DataFrame, trend: pd.DataFrame, check: pd.DataFrame,
                       method: str = "t") -> list[str]:
    """The paper's three monolingual findings, each as one line with our numbers."""
    n = len(trend)
    never = trend[trend["never_reaches_baseline"]]
    lines = [
        f"(1) Size, over {n} (language, τ) curves of {trend['smallest_size'].min()}-"
        f"{trend['largest_size'].max()} instances: {int((trend['delta_smallest'] < 0).sum())} start below "
        f"the baseline, {int(trend['dips_then_recovers'].sum())} start below and end above it, "
        f"{int(trend['improves_with_size'].sum())} end higher than they start; mean change "
        f"{trend['delta_smallest'].mean():+.4f} at the smallest size, {trend['delta_largest'].mean():+.4f} "
        "at the largest.",
        f"(2) Never reaching the baseline at any size: {len(never)} of {n} curves"
        + (f" ({', '.join(f'{r.target} τ={r.tau}' for r in never.itertuples())})." if len(never) else "."),
        ("(3) No language of this grid shared with the paper (ar, ru, es, en) has two τ at its "
         "largest size yet: no check." if check.empty
         else f"(3) The paper's resource-level rule holds for {int(check['agrees'].sum())} of "
              f"{len(check)} shared languages here."),
        f"{int(points['significant'].sum())} of {len(points)} runs differ from the baseline at BH q < 0.05 "
        f"({method} test over {int(points['n_queries'].median())} questions a language)."]
    lines.append(scale_line(int(trend["largest_size"].max())))
    return lines


def scale_line(largest: int) -> str:
    """Our largest training set against the paper's sizes."""
    return (f"Scale: our largest training set, {largest:,} instances a language, is "
            f"{50_000 / largest:.0f}x smaller than the paper's smallest (50K) and "
            f"{300_000 / largest:.0f}x smaller than its largest (300K).")


def run_costs(records: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A grid's runs with their seconds, and its totals (training, evaluation, masking)."""
    cols = [c for c in ["label", "steps", "n_pairs", "train_seconds", "seconds_per_step",
                        "eval_seconds", "masked_negatives", "in_batch_negatives", "device", "date"]
            if c in records.columns]
    table = records[cols].sort_values("label").reset_index(drop=True)
    train_s = records["train_seconds"].fillna(0).sum() if "train_seconds" in records else 0.0
    eval_s = records["eval_seconds"].sum()
    lines = [f"the grid: {len(records)} runs, training {train_s:,.0f} s + evaluation {eval_s:,.0f} s = "
             f"{(train_s + eval_s) / 3600:.2f} h of run time on {', '.join(sorted(set(records['device'])))}"]
    if "masked_negatives" in records:
        masked, seen = records["masked_negatives"].sum(), max(records["in_batch_negatives"].sum(), 1)
        lines.append(f"known false negatives masked: {masked:,.0f} of {seen:,.0f} in-batch negatives "
                     f"({masked / seen:.1%})")
    return table, lines


def stored_pair_mean(store, config_hash: str, query_lang: str, doc_lang: str,
                     measure: str = "nDCG@10") -> float:
    """A stored run's mean `measure` on one language pair (NaN when the store lacks the run)."""
    if not store.is_finished(config_hash):
        return float("nan")
    pq = store.per_query(config_hash)
    rows = pq[(pq["query_lang"] == query_lang) & (pq["doc_lang"] == doc_lang) & (pq["measure"] == measure)]
    return float(rows["value"].mean()) if len(rows) else float("nan")
