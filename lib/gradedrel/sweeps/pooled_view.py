"""Notebook 05's pooled view in LAReQA's measures (issue 25): the threshold models of notebook
03's largest size, per base question as notebook 07 counts them, beside 07's hybrid-batch rows.

Takes a SweepSetup whose runs evaluated every query x corpus language pair and the pooled
setting (eval_scope "all": RR@10 and nDCG@10 a pair, AP@20 pooled, per query), the specs of
the models, and notebook 07's alpha table (`data/results/PROFILE/07_alpha_table.csv`). Gives:

  `threshold_lareqa`  one row per model (and the un-fine-tuned baseline): X-X RR@10 (a
                      question's 11 monolingual values averaged), X-Y RR@10 (its 110
                      cross-lingual values), pooled mAP@20 (its 11 pooled values), each a mean
                      over base questions with a 95% bootstrap interval, and the pooled
                      difference from the baseline (t interval, paired t-test, BH q).
  `beside_hybrid`     pooled mAP@20 of both studies' models in one table, the one measure both
                      stored the same way; language bias only where a run kept the full pooled
                      ranking (07's), since the threshold runs stored per-query measures only.

With one relevant sentence, AP is the reciprocal rank, so X-X and X-Y RR@10 are AP cut at 10;
07's X-X and X-Y columns are cut at 20 (mAP@20) or not at all (mAP), so those columns are not
set side by side. The threshold baseline's pooled mAP@20 and 07's zero-shot row are the same
model on the same questions and pool: `baseline_agrees` compares them (a check that fails if
either evaluation drifts).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradedrel.retrieval.metrics import mean_with_interval, paired_test
from gradedrel.sweeps.analysis import bh_q_values, difference_interval
from gradedrel.sweeps.evidence import PerQuery, question_key
from gradedrel.sweeps.grid import BASELINE

POOLED = "pooled"
MEASURES = {"X-X RR@10": "RR@10", "X-Y RR@10": "RR@10", "pooled mAP@20": "AP@20"}


def question_means(pq: dict[str, PerQuery], config_hash: str, langs) -> dict[str, pd.Series] | None:
    """Per base question, each setting's mean over its query (x corpus) languages; None if
    the run lacks a pair."""
    parts = {"X-X RR@10": [(q, q) for q in langs],
             "X-Y RR@10": [(q, d) for q in langs for d in langs if d != q],
             "pooled mAP@20": [(q, POOLED) for q in langs]}
    out = {}
    for column, pairs in parts.items():
        series = [pq[MEASURES[column]].values(config_hash, q, d) for q, d in pairs]
        if any(s is None for s in series):
            return None
        frame = pd.concat([s.set_axis(question_key(s.index)) for s in series], axis=1)
        out[column] = frame.mean(axis=1)
    return out


def threshold_lareqa(setup, specs, langs) -> pd.DataFrame:
    pq = {m: PerQuery(setup, m) for m in set(MEASURES.values())}
    base = question_means(pq, setup.config_hash(BASELINE), langs)
    if base is None:
        raise ValueError("the baseline run lacks a pair of the pooled view (eval_scope 'all' needed)")
    rows = []
    for spec in [BASELINE] + list(specs):
        values = question_means(pq, setup.config_hash(spec), langs)
        if values is None:
            continue
        row = {"model": "zero-shot" if spec.is_baseline else f"{spec.target} τ={spec.tau}",
               "target": None if spec.is_baseline else spec.target,
               "tau": None if spec.is_baseline else spec.tau,
               "size": None if spec.is_baseline else spec.size,
               "n_questions": len(values["pooled mAP@20"])}
        for column, series in values.items():
            row[column], row[f"{column} low"], row[f"{column} high"] = mean_with_interval(series.to_numpy())
        if not spec.is_baseline:
            a, b = values["pooled mAP@20"], base["pooled mAP@20"]
            row["pooled Δ"] = float((a - b).mean())
            row["pooled Δ low"], row["pooled Δ high"] = difference_interval(a, b)
            row["p_value"] = paired_test(a, b).p_value
        rows.append(row)
    table = pd.DataFrame(rows)
    tested = table["p_value"].notna() if "p_value" in table else pd.Series(False, index=table.index)
    table["q_value"] = np.nan
    if tested.any():
        table.loc[tested, "q_value"] = bh_q_values(table.loc[tested, "p_value"].to_numpy())
    return table


def baseline_agrees(threshold: pd.DataFrame, hybrid: pd.DataFrame, tolerance: float = 1e-4) -> float:
    """The difference between the two studies' un-fine-tuned pooled mAP@20; raises beyond
    `tolerance` (same model, questions and pool: they must agree)."""
    ours = float(threshold.loc[threshold["model"] == "zero-shot", "pooled mAP@20"].iloc[0])
    theirs = float(hybrid.loc[hybrid["model"] == "zero-shot", "pooled mAP@20"].iloc[0])
    if not abs(ours - theirs) <= tolerance:
        raise ValueError(f"the zero-shot pooled mAP@20 differs between notebook 05 ({ours:.6f}) and "
                         f"07 ({theirs:.6f}): the two evaluations no longer measure the same thing")
    return ours - theirs


def training_language_view(pooled: pd.DataFrame, low: int, high: int, n_langs: int) -> tuple[pd.DataFrame, str]:
    """Notebook 05's first pooled table (analysis.compare_to_reference rows, queries in the
    training language): mean, reference and change per query language and tau, and a note."""
    view = pooled.pivot_table(index="query_lang", columns="tau", values=["reference", "mean", "delta"])
    beats = int((view["mean"][high] > view["mean"][low]).sum()) if {low, high} <= set(view["mean"]) else 0
    note = (f"mAP@20 over the pooled {n_langs}-language sentences, queries in the training language "
            f"(n = {int(pooled['n_queries'].median())} questions a language); reference = the un-fine-tuned "
            f"model. {int(pooled['significant'].sum())} of {len(pooled)} differ from the baseline at BH "
            f"q < 0.05; τ={high} beats τ={low} for {beats} of {len(view)} query languages.")
    return view, note


def beside_hybrid(threshold: pd.DataFrame, hybrid: pd.DataFrame) -> pd.DataFrame:
    """Pooled mAP@20 (with intervals) of the threshold models and 07's hybrid runs, and
    language bias where stored; first checks that both zero-shot rows agree
    (`baseline_agrees`)."""
    baseline_agrees(threshold, hybrid)
    cols = ["pooled mAP@20", "pooled mAP@20 low", "pooled mAP@20 high"]
    ours = threshold[threshold["model"] != "zero-shot"].assign(
        study="05 threshold (one language, τ)", **{"language bias": np.nan})
    theirs = hybrid.assign(study=np.where(hybrid["model"] == "zero-shot", "un-fine-tuned",
                                          "07 hybrid batches (ar, en, es, ru; α)"))
    keep = ["study", "model", "n_questions"] + cols + ["language bias"]
    return pd.concat([theirs[keep], ours[keep]], ignore_index=True)
