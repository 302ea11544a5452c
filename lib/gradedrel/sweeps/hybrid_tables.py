"""Notebook 07's tables from the hybrid runs' store (sweeps/hybrid.py): the alpha table
(three mAPs and language bias with intervals), paired tests between alpha values, the
published rows beside ours, the run costs, and the figure.

The unit of every interval and test is the base question (XQuAD-R's parallel question):
its 11 monolingual values, 110 cross-lingual values and 11 pooled values are averaged
first (retrieval/lareqa.per_question), since translations of one question are not
independent. Intervals: 95% percentile bootstrap over questions (metrics.mean_with_interval)
for means, Student-t for paired differences (analysis.difference_interval); p from a paired
t-test (metrics.paired_test); q: Benjamini-Hochberg over all rows of the tests table.
Tests between alpha values use the first seed (every alpha has it); a second seed at some
alpha values is set against the first in its own table, the yardstick for those differences.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from gradedrel.paths import DATA_DIR
from gradedrel.retrieval.lareqa import BIAS, per_question
from gradedrel.retrieval.metrics import mean_with_interval, paired_test
from gradedrel.sweeps.analysis import ALPHA, bh_q_values, difference_interval

# (setting, measure) -> column name, in table order
COLUMNS = {("X-X", "AP"): "X-X mAP", ("X-Y", "AP"): "X-Y mAP", ("pooled", "AP"): "pooled mAP",
           ("X-X", "AP@20"): "X-X mAP@20", ("X-Y", "AP@20"): "X-Y mAP@20",
           ("pooled", "AP@20"): "pooled mAP@20", ("pooled", BIAS): "language bias"}
TESTED = [("X-X", "AP"), ("X-Y", "AP"), ("pooled", "AP"), ("pooled", BIAS)]
PAPER_DIR = DATA_DIR / "paper"


def _base_of(setup) -> pd.Series:
    return setup.eval_collection.queries.set_index("query_id")["base_id"]


def stored_per_query(setup, specs) -> dict:
    """The finished runs' per-query frames, by spec (unfinished ones left out)."""
    out = {}
    for spec in specs:
        h = setup.config_hash(spec)
        if setup.store.is_finished(h):
            out[spec] = setup.store.per_query(h)
    return out


def progress_line(setup, specs) -> str:
    """How many of the planned runs the store holds, and which are missing."""
    missing = [s.label() for s in specs if not setup.store.is_finished(setup.config_hash(s))]
    line = f"{len(specs) - len(missing)} of {len(specs)} planned runs stored"
    return line + (f"; not yet run: {', '.join(missing)}" if missing else "")


def question_values(setup, specs) -> dict:
    """{model label: per-question frame (setting, measure, base_id, value)}: each finished
    zero-shot / alpha run; an alpha with several finished seeds also as "alpha=A (mean of
    N seeds)", its per-question values averaged over the seeds."""
    base_of = _base_of(setup)
    per_spec = {spec: per_question(pq, base_of) for spec, pq in stored_per_query(setup, specs).items()}
    out = {spec.label(): v for spec, v in per_spec.items()}
    by_alpha: dict = {}
    for spec, v in per_spec.items():
        if not spec.is_zero_shot:
            by_alpha.setdefault(spec.alpha, []).append(v)
    for alpha, frames in by_alpha.items():
        if len(frames) > 1:
            mean = (pd.concat(frames).groupby(["setting", "measure", "base_id"])["value"].mean()
                    .reset_index())
            out[f"alpha={alpha:g} (mean of {len(frames)} seeds)"] = mean
    return out


def alpha_table(setup, specs) -> pd.DataFrame:
    """One row per model: alpha, seed, questions, each measure's mean with its 95% bootstrap
    interval over questions, and the run's steps / realised alpha / CPU seconds."""
    records = setup.store.latest()
    values = question_values(setup, specs)
    rows = []
    for spec in specs:
        label = spec.label()
        if label not in values:
            continue
        rec = records[setup.config_hash(spec)]
        rows.append(_row(label, spec.alpha, spec.seed if not spec.is_zero_shot else None,
                         values[label], rec))
    for label, v in values.items():
        if "seeds)" in label:
            alpha = float(label.split("=")[1].split(" ")[0])
            rows.append(_row(label, alpha, "mean", v, {}))
    return pd.DataFrame(rows)


def _row(label, alpha, seed, values: pd.DataFrame, record: dict) -> dict:
    row = {"model": label, "alpha": alpha, "seed": seed,
           "n_questions": int(values["base_id"].nunique())}
    for (setting, measure), name in COLUMNS.items():
        x = values[(values["setting"] == setting) & (values["measure"] == measure)]["value"]
        mean, low, high = mean_with_interval(x.to_numpy())
        row.update({name: mean, f"{name} low": low, f"{name} high": high})
    row.update({k: record.get(k) for k in ("steps", "realised_alpha", "train_cpu_seconds",
                                           "eval_cpu_seconds", "cpu_seconds", "seconds")})
    return row


def _series(values: pd.DataFrame, setting: str, measure: str) -> pd.Series:
    v = values[(values["setting"] == setting) & (values["measure"] == measure)]
    return v.set_index("base_id")["value"].astype(float)


def first_seed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The alpha rows of the first seed (the seed every alpha has), one an alpha."""
    rows = table[table["alpha"].notna() & (table["seed"].astype(str) != "mean")]
    first = min(int(x) for x in rows["seed"]) if len(rows) else 0
    return rows[rows["seed"].astype(int) == first].sort_values("alpha")


def paired_tests(setup, specs) -> pd.DataFrame:
    """Every alpha against the zero-shot model and every pair of alpha values, on X-X, X-Y
    and pooled mAP and on language bias, at the first seed (the one every alpha has; the
    second seeds are the yardstick in `seed_table`): the mean difference a - b over
    questions, its 95% t-interval, the paired t-test's p and BH q over the table's rows."""
    values = question_values(setup, specs)
    fine = [sp for sp in specs if not sp.is_zero_shot and sp.label() in values]
    first = min((sp.seed for sp in fine), default=0)
    models = sorted((sp.alpha, sp.label()) for sp in fine if sp.seed == first)
    pairs = [((a, la), (None, "zero-shot")) for a, la in models if "zero-shot" in values]
    pairs += [((a, la), (b, lb)) for (a, la), (b, lb) in itertools.combinations(models, 2)]
    return _tests(values, pairs)


def seed_table(setup, specs) -> pd.DataFrame:
    """For each alpha with more than one finished seed: every other seed minus the first,
    the same measures, intervals and tests (BH over this table's rows): how far a second
    seed moves a run, the yardstick for differences between alpha values."""
    values = question_values(setup, specs)
    fine = [sp for sp in specs if not sp.is_zero_shot and sp.label() in values]
    first = min((sp.seed for sp in fine), default=0)
    by_alpha: dict = {}
    for sp in fine:
        by_alpha.setdefault(sp.alpha, []).append(sp)
    pairs = []
    for alpha, runs in sorted(by_alpha.items()):
        base = [r for r in runs if r.seed == first]
        pairs += [((alpha, r.label()), (alpha, base[0].label())) for r in runs if r.seed != first and base]
    return _tests(values, pairs)


def _tests(values: dict, pairs) -> pd.DataFrame:
    rows = []
    for (a, la), (b, lb) in pairs:
        for setting, measure in TESTED:
            x, y = _series(values[la], setting, measure), _series(values[lb], setting, measure)
            test = paired_test(x, y)
            low, high = difference_interval(x, y)
            rows.append({"a": la, "b": lb, "alpha_a": a, "alpha_b": b, "setting": setting,
                         "measure": COLUMNS[(setting, measure)], "n_questions": test.n_queries,
                         "mean_a": float(x.mean()), "mean_b": float(y.mean()),
                         "delta": test.mean_difference, "ci_low": low, "ci_high": high,
                         "p_value": test.p_value})
    out = pd.DataFrame(rows)
    if len(out):
        out["q_value"] = bh_q_values(out["p_value"].fillna(1.0).to_numpy())
        out["significant"] = out["q_value"] < ALPHA
    return out


def paper_rows() -> pd.DataFrame:
    """The published XQuAD-R rows (data/paper/): the hybrid paper's XLM-R and LaBSE, and
    LAReQA's mBERT baselines (multilingual mAP only), with their source."""
    hybrid = pd.read_csv(PAPER_DIR / "hybrid_batches_xquad_r.csv")
    lareqa = pd.read_csv(PAPER_DIR / "lareqa_mbert_xquad_r.csv")
    out = pd.concat([hybrid, lareqa], ignore_index=True)
    return out.rename(columns={"mono_map": "X-X mAP", "cross_map": "X-Y mAP",
                               "multi_map": "pooled mAP"})[
        ["model", "training", "batches", "X-X mAP", "X-Y mAP", "pooled mAP", "source"]]


# how our rows line up with the published training strategies
STRATEGY = {1.0: "X-X (mono batches; LAReQA's X-X-mono)", 0.0: "X-Y (cross batches)",
            0.5: "hybrid (alpha 0.5)"}


def beside_paper(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our zero-shot row and our alpha = 1 / 0 / 0.5 rows (the mean of the seeds where an
    alpha has several, as the claims take it; else the first seed) beside the published
    rows, on the three mAPs."""
    ours = []
    zero = table[table["model"] == "zero-shot"]
    if len(zero):
        ours.append(("me5-small (4-bit, pruned)", "zero-shot", zero.iloc[0]))
    first = first_seed_rows(table).set_index("alpha")
    means = table[table["seed"].astype(str) == "mean"].set_index("alpha")
    for alpha, name in STRATEGY.items():
        if alpha in means.index:
            row = means.loc[alpha]
            ours.append(("me5-small (4-bit, pruned)", f"{name}, {row['model'].split('(')[1].rstrip(')')}", row))
        elif alpha in first.index:
            ours.append(("me5-small (4-bit, pruned)", name, first.loc[alpha]))
    mine = pd.DataFrame([{"model": m, "training": t, "X-X mAP": r["X-X mAP"], "X-Y mAP": r["X-Y mAP"],
                          "pooled mAP": r["pooled mAP"], "source": "this study (notebook 07)"}
                         for m, t, r in ours])
    return pd.concat([mine, paper.drop(columns="batches")], ignore_index=True)


def cost_table(setup, specs) -> pd.DataFrame:
    """Per finished run: steps, pairs, wall and CPU seconds (training, evaluation, total)."""
    records = setup.store.latest()
    rows = []
    for spec in specs:
        rec = records.get(setup.config_hash(spec))
        if rec and rec["status"] == "finished":
            rows.append({"model": spec.label(), **{k: rec.get(k) for k in (
                "steps", "n_pairs", "train_seconds", "train_cpu_seconds", "eval_seconds",
                "eval_cpu_seconds", "seconds", "cpu_seconds", "device")}})
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame, tests: pd.DataFrame) -> list[str]:
    """The seed's claim, checked: is alpha around 0.5 best on all three mAPs, and its
    language bias the lowest? Read from the first seed's rows and the paired
    tests' BH q."""
    rows = first_seed_rows(table)
    if rows.empty:
        return ["No fine-tuned run is stored yet."]
    lines = []
    for col, best in (("X-X mAP", "max"), ("X-Y mAP", "max"), ("pooled mAP", "max"),
                      ("language bias", "min")):
        idx = rows[col].idxmax() if best == "max" else rows[col].idxmin()
        top = rows.loc[idx]
        line = (f"{col}: best at alpha={top['alpha']:g} ({top[col]:.4f}; range over alpha "
                f"{rows[col].min():.4f}-{rows[col].max():.4f})")
        if len(tests):
            t = tests[(tests["measure"] == col) & (tests["alpha_b"].notna())
                      & ((tests["alpha_a"] == top["alpha"]) | (tests["alpha_b"] == top["alpha"]))]
            sig = int(t["significant"].sum())
            line += f"; {sig} of {len(t)} paired tests against the other alpha values have BH q < {ALPHA}"
        lines.append(line)
    mid = rows[rows["alpha"].between(0.25, 0.75)]
    if len(mid):
        holds = all(
            (rows.loc[rows[c].idxmax(), "alpha"] if c != "language bias"
             else rows.loc[rows[c].idxmin(), "alpha"]) in set(mid["alpha"])
            for c in ("X-X mAP", "X-Y mAP", "pooled mAP", "language bias"))
        lines.append("The seed's finding (alpha around 0.5 best on all three mAPs and lowest bias): "
                     + ("the point estimates agree" if holds else "not reproduced by the point estimates")
                     + " (read with the tests: a best point estimate inside its neighbours' "
                       "intervals is not a finding).")
    return lines


PURE = {0.0: "cross-lingual-only batches (α=0)", 1.0: "monolingual-only batches (α=1)"}


def _model_for(values: dict, alpha: float) -> str | None:
    """The label to test alpha by: the mean of its seeds where it has several, else its
    first seed's run."""
    mean = [k for k in values if k.startswith(f"alpha={alpha:g} (mean of")]
    if mean:
        return mean[0]
    runs = sorted(k for k in values if k.startswith(f"alpha={alpha:g} seed="))
    return runs[0] if runs else None


def claim_rows(values: dict, hybrid: float = 0.5) -> list[dict]:
    """The seed's finding as claims rows (gradedrel.claims): hybrid batches (alpha = `hybrid`)
    against each pure strategy on X-X, X-Y and pooled mAP (higher claimed) and on language
    bias (lower claimed), per base question, each alpha the mean of its seeds' per-question
    values (BH over these rows); then "best on all of them" as an intersection-union row: p the
    largest p, effect the weakest comparison's standardised difference (d_z, the mean paired
    difference over its standard deviation, signed so that the claimed direction is
    positive), so one comparison the other way makes the row "not supported" (or
    "contradicted" when every comparison is significant). The seeds' own spread is not in
    these intervals: 07_seed_tests is its yardstick."""
    from gradedrel import claims
    h = _model_for(values, hybrid)
    rows, dz = [], []
    for other, name in PURE.items():
        o = _model_for(values, other)
        if h is None or o is None:
            continue
        for setting, measure in TESTED:
            col = COLUMNS[(setting, measure)]
            x, y = _series(values[h], setting, measure), _series(values[o], setting, measure)
            test = paired_test(x, y)
            low, high = difference_interval(x, y)
            direction = -1 if measure == BIAS else 1
            claim = (f"Hybrid batches (α={hybrid:g}) give a lower language bias than {name} (effect in ranks)"
                     if measure == BIAS else f"Hybrid batches (α={hybrid:g}) beat {name} on {col}")
            rows.append(claims.row(
                claim,
                f"paired t over base questions: {h} − {o}", test.n_queries, test.mean_difference,
                low, high, test.p_value, direction=direction, family="hybrid-against-pure rows"))
            d = (x - y).dropna()
            dz.append(direction * float(d.mean() / d.std(ddof=1)) if d.std(ddof=1) > 0
                      else direction * float(np.sign(d.mean())))
    if rows:
        rows.append(claims.row(
            f"The seed's finding: α={hybrid:g} best on all three mAPs with the lowest bias, against "
            f"α=0 and α=1 ({sum(z > 0 for z in dz)} of {len(dz)} comparisons in the claimed direction; "
            "effect: the weakest one's d_z)",
            "intersection-union over the rows above: the largest p; effect signed so that + is claimed",
            len(dz), min(dz), p=claims.all_of([r["p"] for r in rows])))
    return rows


def claims_table(setup, specs) -> pd.DataFrame:
    """Notebook 07's claims table (07_claims.csv) from the stored runs."""
    from gradedrel import claims
    return claims.claims_table(claim_rows(question_values(setup, specs)))


def alpha_figure(table: pd.DataFrame, profile: str):
    """Two panels against alpha (the first seed's runs, with 95% intervals; crosses: other
    seeds): the three mAPs, and language bias; the zero-shot values as dashed lines."""
    import matplotlib.pyplot as plt
    rows = first_seed_rows(table)
    others = table[table["alpha"].notna() & (table["seed"].astype(str) != "mean")
                   & ~table["model"].isin(rows["model"])]
    zero = table[table["model"] == "zero-shot"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for col, color in (("X-X mAP", "C0"), ("X-Y mAP", "C1"), ("pooled mAP", "C2")):
        err = np.vstack([rows[col] - rows[f"{col} low"], rows[f"{col} high"] - rows[col]])
        ax1.errorbar(rows["alpha"], rows[col], yerr=err, marker="o", capsize=3, color=color, label=col)
        ax1.scatter(others["alpha"], others[col], marker="x", color=color, zorder=3)
        if len(zero):
            ax1.axhline(zero.iloc[0][col], color=color, linestyle="--", linewidth=0.8)
    ax1.set_xlabel("alpha (share of monolingual batches)")
    ax1.set_ylabel("mAP (dashed: zero-shot)")
    ax1.legend(fontsize=8, loc="lower left")
    col = "language bias"
    err = np.vstack([rows[col] - rows[f"{col} low"], rows[f"{col} high"] - rows[col]])
    ax2.errorbar(rows["alpha"], rows[col], yerr=err, marker="o", capsize=3, color="C3")
    ax2.scatter(others["alpha"], others[col], marker="x", color="C3", zorder=3)
    if len(zero):
        ax2.axhline(zero.iloc[0][col], color="C3", linestyle="--", linewidth=0.8)
    ax2.set_xlabel("alpha (share of monolingual batches)")
    ax2.set_ylabel("max - min rank of the 11 answers (pooled)")
    n = int(rows["n_questions"].max()) if len(rows) else 0
    fig.suptitle(f"Hybrid batches, me5-small, XQuAD-R test articles ({profile}); 95% intervals over "
                 f"n = {n} base questions (11 languages each); x: a second seed",
                 fontsize=10)
    fig.tight_layout()
    return fig


def write_tables(setup, specs) -> dict:
    """Write 07_alpha_table, 07_paired_tests, 07_seed_tests, 07_beside_paper, 07_run_costs and 07_claims for the
    setup's profile; returns their paths."""
    from gradedrel import results
    table = alpha_table(setup, specs)
    tests = paired_tests(setup, specs)
    out = {"07_alpha_table": results.save_table(table, setup.profile, "07_alpha_table"),
           "07_paired_tests": results.save_table(tests, setup.profile, "07_paired_tests"),
           "07_seed_tests": results.save_table(seed_table(setup, specs), setup.profile, "07_seed_tests"),
           "07_beside_paper": results.save_table(beside_paper(table, paper_rows()), setup.profile,
                                                 "07_beside_paper"),
           "07_run_costs": results.save_table(cost_table(setup, specs), setup.profile, "07_run_costs"),
           "07_claims": results.save_table(claims_table(setup, specs), setup.profile, "07_claims")}
    return out
