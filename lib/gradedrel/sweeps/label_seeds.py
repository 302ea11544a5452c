"""How far a second seed moves the label-source grid (issue 23, item 4: seeds at one size).

Takes: label_tables' per-query table (KEYS + qrels, query_id, value), whose seed-1 runs repeat
seed-0 configurations at the smaller size (a different shuffle of the same instances, and for
the simulated-noise source a different draw of the noise). Gives, in data/results/xquad-labels/:

  label_source_seed_runs.csv  per threshold configuration run at both seeds and evaluation: each
                              seed's mean nDCG@10, seed 1 - seed 0 paired over questions (95% t
                              interval, p, BH q over the table)
  label_source_seed_tau.csv   per (source, evaluation, language, size) with tau 1, 2 and 3 at both
                              seeds: tau=3 - tau=1 at each seed and on the mean of the two seeds
                              (interval, p, BH q over the table), the best tau at each seed and
                              whether the seeds agree on it and on the sign of tau=3 - tau=1
  seed_summary()              per evaluation: the median |seed 1 - seed 0| beside the median
                              |tau=3 - tau=1|, so a tau effect can be read against seed noise

and claims rows (`claims_rows`): "tau=3 trains better than tau=1" on the mean of the two seeds,
per source and evaluation: label_tables' seed-0 rows replicated with the seed's variance in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradedrel.sweeps import label_tables as lt
from gradedrel.sweeps.analysis import ALPHA, bh_q_values

SEEDS = (0, 1)
RUN_COLUMNS = ["source", "evaluation", "lang", "size", "tau", "n", "seed0", "seed1", "seed1_minus_seed0",
               "ci_low", "ci_high", "p", "q"]
TAU_COLUMNS = ["source", "evaluation", "lang", "size", "n", "tau3_minus_tau1_seed0", "tau3_minus_tau1_seed1",
               "tau3_minus_tau1_both", "ci_low", "ci_high", "p", "best_tau_seed0", "best_tau_seed1",
               "same_best_tau", "same_sign", "q"]


def _threshold_series(values: pd.DataFrame) -> dict:
    return {k: v for k, v in lt._series(values).items() if k[5] == "infonce"}


def seed_runs(values: pd.DataFrame) -> pd.DataFrame:
    """Per threshold configuration with a seed-1 run and a seed-0 twin, per evaluation."""
    series = _threshold_series(values)
    rows = []
    for (source, lang, tau, size, seed, objective, qrels), second in series.items():
        first = series.get((source, lang, tau, size, 0, objective, qrels))
        if seed != 1 or first is None:
            continue
        n, delta, low, high, p = lt._paired(second, first)
        rows.append(dict(source=source, evaluation=qrels, lang=lang, size=size, tau=tau, n=n,
                         seed0=float(first.mean()), seed1=float(second.mean()),
                         seed1_minus_seed0=delta, ci_low=low, ci_high=high, p=p))
    if not rows:              # an empty table keeps its header, so a reader sees no runs, not no file
        return pd.DataFrame(columns=RUN_COLUMNS)
    out = pd.DataFrame(rows)
    out["q"] = bh_q_values(out["p"].to_numpy())
    return out.sort_values(["source", "evaluation", "lang", "size", "tau"]).reset_index(drop=True)[RUN_COLUMNS]


def seed_tau(values: pd.DataFrame) -> pd.DataFrame:
    """Per (source, evaluation, language, size) whose three taus ran at both seeds."""
    series = _threshold_series(values)
    cells = {(k[0], k[6], k[1], k[3]) for k in series if k[4] == 1}
    rows = []
    for source, qrels, lang, size in sorted(cells):
        runs = {(tau, seed): series.get((source, lang, tau, size, seed, "infonce", qrels))
                for tau in (1, 2, 3) for seed in SEEDS}
        if any(v is None for v in runs.values()):
            continue
        best = {seed: max((1, 2, 3), key=lambda t: runs[(t, seed)].mean()) for seed in SEEDS}
        gain = {seed: float((runs[(3, seed)] - runs[(1, seed)]).mean()) for seed in SEEDS}
        mean3 = (runs[(3, 0)] + runs[(3, 1)]) / 2
        mean1 = (runs[(1, 0)] + runs[(1, 1)]) / 2
        n, delta, low, high, p = lt._paired(mean3, mean1)
        rows.append(dict(source=source, evaluation=qrels, lang=lang, size=size, n=n,
                         tau3_minus_tau1_seed0=gain[0], tau3_minus_tau1_seed1=gain[1],
                         tau3_minus_tau1_both=delta, ci_low=low, ci_high=high, p=p,
                         best_tau_seed0=best[0], best_tau_seed1=best[1],
                         same_best_tau=best[0] == best[1],
                         same_sign=bool(np.sign(gain[0]) == np.sign(gain[1]))))
    if not rows:
        return pd.DataFrame(columns=TAU_COLUMNS)
    out = pd.DataFrame(rows)
    out["q"] = bh_q_values(out["p"].to_numpy())
    return out[TAU_COLUMNS]


def seed_summary(runs: pd.DataFrame, tau: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation: how many runs have both seeds, the median and largest |seed 1 - seed 0|,
    the share of them with BH q < ALPHA; over the cells with every tau at both seeds, the median
    |tau=3 - tau=1| (mean of seeds), and the shares of cells whose seeds agree on the best tau
    and on the sign of tau=3 - tau=1."""
    if runs.empty or tau.empty:
        return pd.DataFrame()
    by_run = runs.assign(abs_seed=runs["seed1_minus_seed0"].abs(), sig=runs["q"] < ALPHA).groupby("evaluation")
    by_cell = tau.assign(abs_tau=tau["tau3_minus_tau1_both"].abs()).groupby("evaluation")
    return pd.DataFrame({
        "runs": by_run.size(), "median_abs_seed_change": by_run["abs_seed"].median(),
        "max_abs_seed_change": by_run["abs_seed"].max(), "share_seed_change_q_lt_05": by_run["sig"].mean(),
        "cells": by_cell.size(), "median_abs_tau3_minus_tau1": by_cell["abs_tau"].median(),
        "share_same_best_tau": by_cell["same_best_tau"].mean(), "share_same_sign": by_cell["same_sign"].mean(),
    }).reindex([e for e in lt.EVALUATIONS if e in set(runs["evaluation"])])


def claims_rows(values: pd.DataFrame, size: int, langs=("en", "es", "ar", "hi")) -> list[dict]:
    """Per source and evaluation, "tau=3 trains better than tau=1" on each question's mean over
    the two seeds and over the languages whose four runs (tau 1 and 3, seeds 0 and 1) exist; no
    rows at a size without seed-1 runs. BH over these rows (their own family)."""
    from gradedrel.claims import mean_test, row
    out = []
    if not ((values["seed"] == 1) & (values["size"] == size)).any():
        return out
    for source, name in lt.SOURCE_NAMES.items():
        for evaluation in lt.EVALUATIONS:
            have, (tau3_0, tau3_1, tau1_0, tau1_1) = lt._shared_languages(
                values, [(source, tau, "infonce", seed) for tau in (3, 1) for seed in SEEDS], size, evaluation, langs)
            if not have:
                continue
            diff = ((tau3_0 + tau3_1) / 2 - (tau1_0 + tau1_1) / 2).mean(axis=1)
            out.append(row(f"{name} labels, {evaluation} relevance: τ=3 trains better than τ=1 "
                           f"({size} instances, mean of seeds 0 and 1)",
                           f"paired t over questions, mean of {', '.join(have)}", direction=1,
                           family="τ=3 vs τ=1 rows, two seeds", **mean_test(diff)))
    return out


def write_tables(values: pd.DataFrame, folder=lt.FOLDER) -> dict[str, pd.DataFrame]:
    runs, tau = seed_runs(values), seed_tau(values)
    runs.to_csv(folder / "label_source_seed_runs.csv", index=False, float_format="%.6g")
    tau.to_csv(folder / "label_source_seed_tau.csv", index=False, float_format="%.6g")
    return {"seed_runs": runs, "seed_tau": tau}
