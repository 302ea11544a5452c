"""The threshold paper's size findings per label source and evaluation (issue 23, item 7).

Notebook 03 tests the paper's three findings (§4.1, Figure 5) on the rubric and answer-sentence
relevance (sweeps/evidence.threshold_claims). label_tables.claims_rows tests the third (resource
level) per source and evaluation; this module the other two, on the same grid:

  (1) size: small training sets fall below the un-fine-tuned model, then recover as data grows:
      "at the smaller size training falls below the baseline" (every tau, every language with
      its three taus run, averaged per question) and "from the smaller to the larger size the
      runs gain" (the same pairs of runs at both sizes);
  (2) a poorly chosen tau may never reach the baseline: per (language, tau) curve over the
      sizes, the largest p of its points against the baseline where every point is below it
      (1 where one is above: an intersection-union test), BH over all curves of the table; a
      row per source and evaluation quotes its lowest curve (smallest q, then the lowest
      best point) and that curve's point closest to the baseline.

Takes label_tables' per-query table and points table (seed 0, threshold runs); gives claims rows
(gradedrel.claims.row); finding (1)'s two families are each BH-corrected over sources x
evaluations.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradedrel.sweeps import label_tables as lt
from gradedrel.sweeps.analysis import ALPHA, bh_q_values

TAUS = (1, 2, 3)
PER_Q = "paired t over questions, the difference averaged per question over"


def _runs(values: pd.DataFrame, source: str, evaluation: str, sizes, langs) -> dict:
    return {(lang, tau, size): lt._by_question(values, source, tau, size, evaluation, [lang])
            for lang in langs for tau in TAUS for size in sizes}


def size_rows(values: pd.DataFrame, langs=("en", "es", "ar", "hi")) -> list[dict]:
    """Finding (1) per source and evaluation at the grid's smallest and largest sizes."""
    from gradedrel.claims import mean_test, row, untestable
    thr = values[(values["objective"] == "infonce") & (values["seed"] == 0) & (values["source"] != "baseline")]
    sizes = sorted(set(thr["size"]))
    out = []
    if not sizes:
        return out
    small, large = sizes[0], sizes[-1]
    for source, name in lt.SOURCE_NAMES.items():
        for evaluation in lt.EVALUATIONS:
            runs = _runs(values, source, evaluation, {small, large}, langs)
            base = {lang: lt._by_question(values, "baseline", 0, 0, evaluation, [lang], objective="none")
                    for lang in langs}
            whole = [lang for lang in langs if base[lang] is not None
                     and all(runs[(lang, t, small)] is not None for t in TAUS)]
            claim = f"{name} labels, {evaluation} relevance: at {small} instances training falls below the baseline"
            if whole:
                diff = pd.concat([(runs[(lang, t, small)] - base[lang])[lang].rename(f"{lang}{t}")
                                  for lang in whole for t in TAUS], axis=1).mean(axis=1)
                out.append(row(claim, f"{PER_Q} τ 1-3 of {', '.join(whole)}", direction=-1,
                               family="size rows (below the baseline)", **mean_test(diff)))
            else:
                out.append(untestable(claim, f"no language has its three τ at {small} instances yet"))
            claim = f"{name} labels, {evaluation} relevance: from {small} to {large} instances the runs gain"
            pairs = [(lang, t) for lang in langs for t in TAUS
                     if runs[(lang, t, small)] is not None and runs[(lang, t, large)] is not None]
            if large != small and pairs:
                diff = pd.concat([(runs[(lang, t, large)] - runs[(lang, t, small)])[lang].rename(f"{lang}{t}")
                                  for lang, t in pairs], axis=1).mean(axis=1)
                out.append(row(claim, f"{PER_Q} {len(pairs)} (language, τ) runs at both sizes", direction=1,
                               family="size rows (growth)", **mean_test(diff)))
            else:
                out.append(untestable(claim, "no run at both sizes yet"))
    return out


def never_reaches_rows(points: pd.DataFrame) -> list[dict]:
    """Finding (2) per source and evaluation over its (language, tau) curves with two or more
    sizes (seed 0, threshold runs); BH over every curve of every source and evaluation."""
    from gradedrel.claims import all_of, row, untestable
    thr = points[(points["objective"] == "infonce") & (points["seed"] == 0)]
    curves = []
    for (source, evaluation, lang, tau), g in thr.groupby(["source", "evaluation", "lang", "tau"]):
        if g["size"].nunique() >= 2:
            p = all_of(g["p"]) if (g["delta"] < 0).all() else 1.0
            curves.append(dict(source=source, evaluation=evaluation, curve=f"{lang} τ={tau}", p=p,
                               point=g.loc[g["delta"].idxmax()]))
    if curves:
        for c, q in zip(curves, bh_q_values(np.array([c["p"] for c in curves]))):
            c["q"] = q
    out = []
    for source, name in lt.SOURCE_NAMES.items():
        for evaluation in lt.EVALUATIONS:
            claim_head = f"{name} labels, {evaluation} relevance: a poorly chosen τ never reaches the baseline"
            mine = [c for c in curves if c["source"] == source and c["evaluation"] == evaluation]
            if not mine:
                out.append(untestable(claim_head, "no curve has two sizes yet"))
                continue
            k = sum(c["q"] < ALPHA for c in mine)
            top = min(mine, key=lambda c: (c["q"], c["point"]["delta"]))    # ties: the lowest curve
            point = top["point"]
            out.append(row(f"{claim_head} ({k} of {len(mine)} curves below it at every size; "
                           f"lowest: {top['curve']})",
                           "per curve, the largest p over its sizes (intersection-union; 1 where a point is "
                           "above); effect: that curve's point closest to the baseline",
                           int(point["n"]), float(point["delta"]), float(point["ci_low"]), float(point["ci_high"]),
                           float(top["p"]), f"BH over the {len(curves)} curves of every source and evaluation",
                           float(top["q"]), direction=-1))
    return out


def rows(values: pd.DataFrame, points: pd.DataFrame, langs=("en", "es", "ar", "hi")) -> list[dict]:
    return size_rows(values, langs) + never_reaches_rows(points)
