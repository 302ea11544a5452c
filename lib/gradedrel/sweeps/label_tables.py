"""Tables of the label-source grid (issue 23, items 5 and 7), from its stored ranked lists
(written by label_sources.write_tables).

Takes: the `xquad-labels` run store (sweeps/label_sources.py), whose runs keep their top-100
ranked lists, and XQuAD-R's test articles. Gives, in data/results/xquad-labels/:

  label_source_per_query.parquet  every run's (and the baseline's) per-query nDCG@10 on its
                                  language under the three relevance definitions of
                                  retrieval/ranked_lists.py: "sentence" (XQuAD-R's answer
                                  sentence: tau=3's definition), "graded" (3/2/1 for answer
                                  sentence / its paragraph / its article), "paragraph"
  label_source_points.csv         one row per run x evaluation (threshold runs: objective
                                  "infonce"; graded ones "kl", "kl+infonce"): mean, the baseline's, the
                                  paired difference with its 95% t interval, p, BH q over the
                                  whole table, and a verdict by rule (`verdict`)
  label_source_claims.csv         the claims (claims_rows) at each size, verdicts by gradedrel.claims;
                                  the paper's size findings across sizes (label_findings.py)
  label_source_best_tau.csv       per (source, evaluation, language) at each size, seed 0: the
                                  tau with the highest mean, the runner-up, their paired
                                  difference (interval, p, BH q over the table) and whether the
                                  best tau beats the baseline: "best" means "least harmful"
                                  where no tau does
  label_source_seed_*.csv         what a second seed changes (sweeps/label_seeds.py); its claims
                                  rows ("... mean of seeds 0 and 1") join label_source_claims.csv

The evaluations can disagree with tau=3: "graded" and "paragraph" count as (partly) relevant
what tau=1 and tau=2 train as positives, so a design that favours tau=3 by construction
under "sentence" need not under them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from gradedrel.paths import RESULTS_DIR
from gradedrel.retrieval.metrics import paired_test
from gradedrel.sweeps.analysis import ALPHA, bh_q_values, difference_interval

FOLDER = RESULTS_DIR / "xquad-labels"
MEASURE = "nDCG@10"
BEATS, HURTS, SAME = "beats the baseline", "hurts", "no significant difference"
EVALUATIONS = ("sentence", "graded", "paragraph")
KEYS = ["source", "lang", "tau", "size", "seed", "objective"]


def verdict(delta: float, q: float) -> str:
    """By rule: BH q < ALPHA and a positive change beats the baseline, a negative one hurts;
    anything else is no significant difference."""
    if q < ALPHA:
        return BEATS if delta > 0 else HURTS
    return SAME


def per_query(store, eval_collection, langs, hashes=None) -> pd.DataFrame:
    """Per-query values of every finished run's target pair (the baseline's on each of
    `langs`) under the three relevance definitions; columns KEYS + qrels, query_id, value
    (the baseline's source is "baseline", tau and size 0). `hashes`: only these runs (the
    grid's; a store may hold runs of an earlier recipe)."""
    from gradedrel.retrieval.ranked_lists import evaluate_ranked
    records = store.records()
    if hashes is not None:
        records = records[records["config_hash"].isin(set(hashes))]
    queries, corpus = eval_collection.queries, eval_collection.corpus
    parts = []
    for rec in records.to_dict("records"):
        h = rec["config_hash"]
        if not store.ranked_path(h).exists():
            continue
        ranked = store.ranked(h)
        if rec.get("kind") == "baseline":
            keys = [dict(source="baseline", lang=lang, tau=0, size=0, seed=0, objective="none")
                    for lang in langs]
        else:
            lang = rec["train_langs"][0]
            objective = rec.get("objective")
            keys = [dict(source=rec["annotator"], lang=lang, tau=int(rec["tau"]), size=int(rec["size"]),
                         seed=int(rec["seed"]), objective=objective if isinstance(objective, str) else "infonce")]
        for key in keys:
            pair = ranked[(ranked["query_lang"] == key["lang"]) & (ranked["doc_lang"] == key["lang"])]
            values = evaluate_ranked(pair, queries, corpus, measures=(MEASURE,))
            parts.append(values.assign(**key, config_hash=h))
    if not parts:
        return pd.DataFrame(columns=KEYS + ["qrels", "query_id", "value", "config_hash"])
    out = pd.concat(parts, ignore_index=True)
    return out[KEYS + ["qrels", "query_id", "value", "config_hash"]]


def _paired(a: pd.Series, b: pd.Series) -> tuple[int, float, float, float, float]:
    """(n, mean difference, ci low, ci high, p) of a - b over shared queries. Where every
    difference is the same the t test is undefined: p = 1 if they are all zero, else 0."""
    with warnings.catch_warnings():      # scipy's precision warning on constant differences
        warnings.simplefilter("ignore", RuntimeWarning)
        test = paired_test(a, b)
    low, high = difference_interval(a, b)
    p = test.p_value
    if np.isnan(p) and low == high:
        p = 1.0 if low == 0 else 0.0
    return test.n_queries, test.mean_difference, low, high, p


def _series(values: pd.DataFrame) -> dict:
    return {k: g.set_index("query_id")["value"] for k, g in values.groupby(KEYS + ["qrels"])}


def points(values: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, evaluation) against the baseline on the same queries."""
    series = _series(values)
    rows = []
    for (source, lang, tau, size, seed, objective, qrels), mine in series.items():
        if source == "baseline":
            continue
        base = series.get(("baseline", lang, 0, 0, 0, "none", qrels))
        if base is None:
            continue
        n, delta, low, high, p = _paired(mine, base)
        rows.append(dict(source=source, lang=lang, tau=tau, size=size, seed=seed, objective=objective,
                         evaluation=qrels,
                         n=n, mean=float(mine.mean()), baseline=float(base[mine.index].mean()),
                         delta=delta, ci_low=low, ci_high=high, p=p))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q"] = bh_q_values(out["p"].to_numpy())
    out["verdict"] = [verdict(d, q) for d, q in zip(out["delta"], out["q"])]
    return out.sort_values(["source", "evaluation", "lang", "size", "objective", "tau", "seed"]).reset_index(drop=True)


def best_tau(values: pd.DataFrame, pts: pd.DataFrame) -> pd.DataFrame:
    """Per (source, evaluation, language, size), seed 0, all three taus run: the best and the
    runner-up tau and their paired difference; the best tau's verdict against the baseline."""
    series = _series(values)
    rows = []
    seed0 = pts[(pts["seed"] == 0) & (pts["objective"] == "infonce")]
    for (source, qrels, lang, size), grp in seed0.groupby(["source", "evaluation", "lang", "size"]):
        if len(grp) < 3:
            continue
        ranked = grp.sort_values("mean", ascending=False)
        best, second = ranked.iloc[0], ranked.iloc[1]
        a = series[(source, lang, int(best["tau"]), size, 0, "infonce", qrels)]
        b = series[(source, lang, int(second["tau"]), size, 0, "infonce", qrels)]
        n, delta, low, high, p = _paired(a, b)
        rows.append(dict(source=source, evaluation=qrels, lang=lang, size=size, best_tau=int(best["tau"]),
                         best_mean=best["mean"], runner_up_tau=int(second["tau"]),
                         best_minus_runner_up=delta, ci_low=low, ci_high=high,
                         p=p, n=n, best_vs_baseline=best["delta"],
                         best_verdict=best["verdict"]))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q"] = bh_q_values(out["p"].to_numpy())
    out["reading"] = np.where(out["best_verdict"] == BEATS, "best",
                              np.where(out["best_verdict"] == HURTS, "least harmful (still hurts)",
                                       "least harmful (no tau beats the baseline)"))
    out["tau_distinguished"] = out["q"] < ALPHA
    return out


# --- claims ---------------------------------------------------------------------------------

SOURCE_NAMES = {"A": "rubric", "A_Bnoise": "rubric + B's noise (simulated)", "B_fast": "B"}


def _by_question(values: pd.DataFrame, source: str, tau: int, size: int, evaluation: str,
                 langs, objective: str = "infonce", seed: int = 0) -> pd.DataFrame | None:
    """question base id x language values of one run per language (seed 0 unless `seed` says
    otherwise; a threshold run unless `objective` does), or None where a language lacks it."""
    sel = values[(values["source"] == source) & (values["tau"] == tau) & (values["size"] == size)
                 & (values["seed"] == seed) & (values["objective"] == objective)
                 & (values["qrels"] == evaluation) & values["lang"].isin(langs)]
    if sel["lang"].nunique() < len(langs):
        return None
    return sel.assign(base=sel["query_id"].str.split(":", n=1).str[1]).pivot_table(
        index="base", columns="lang", values="value")


def _shared_languages(values: pd.DataFrame, runs, size: int, evaluation: str,
                      langs) -> tuple[list[str], list[pd.DataFrame]]:
    """`runs`: (source, tau, objective, seed) tuples. The languages of `langs` that have every
    one of them, and each run's question base id x language values over those languages."""
    per_run = [{lang: _by_question(values, source, tau, size, evaluation, [lang], objective, seed)
                for lang in langs} for source, tau, objective, seed in runs]
    have = [lang for lang in langs if all(frames[lang] is not None for frames in per_run)]
    return have, [pd.concat([frames[lang] for lang in have], axis=1) if have else None for frames in per_run]


def claims_rows(values: pd.DataFrame, size: int, langs=("en", "es", "ar", "hi"),
                low_lang: str = "hi", high_lang: str = "en") -> list[dict]:
    """The label-source claims at one size, each over questions (a question is one unit in
    every language: XQuAD's questions are translations, so per-language differences are
    averaged per question first):

    * per source and evaluation, "tau=3 trains better than tau=1" (the paper's Table 2 change),
      over the languages that have both runs; BH over these rows;
    * per source and evaluation, the paper's resource finding: the lower-resource language
      (`low_lang`, Hindi: CC-100 20 GiB) gains less from tau=3 over tau=1 than the
      higher-resource one (`high_lang`, English: 301 GiB); BH over these rows;
    * per evaluation, "B's real errors cost more than the same rates of random errors": B's
      runs minus the simulated-noise runs, averaged over tau and languages; BH over these rows;
    * per source with graded-aware runs (rubric, B) and evaluation, "KL + InfoNCE beats hard
      tau=3 on the same data" (what the KL term adds to tau=3's objective) and "... beats hard
      tau=1" (graded targets instead of the loosest cut), over the languages that have both
      runs; BH over these rows.
    Rows whose runs are missing are "untestable here" with the reason."""
    from gradedrel.claims import mean_test, row, untestable
    out = []
    for source, name in SOURCE_NAMES.items():
        for evaluation in EVALUATIONS:
            have, (tau3, tau1) = _shared_languages(values, [(source, 3, "infonce", 0), (source, 1, "infonce", 0)],
                                                   size, evaluation, langs)
            claim = f"{name} labels, {evaluation} relevance: τ=3 trains better than τ=1 ({size} instances)"
            if not have:
                out.append(untestable(claim, "no language has both runs yet"))
                continue
            diff = (tau3 - tau1).mean(axis=1)
            out.append(row(claim, f"paired t over questions, mean of {', '.join(have)}", direction=1,
                           family="τ=3 vs τ=1 rows", **mean_test(diff)))
    for source, name in SOURCE_NAMES.items():
        for evaluation in EVALUATIONS:
            claim = (f"{name} labels, {evaluation} relevance: {low_lang} (low resource) gains less from "
                     f"τ=3 over τ=1 than {high_lang} (high resource) ({size} instances)")
            frames = [_by_question(values, source, t, size, evaluation, [low_lang, high_lang]) for t in (1, 3)]
            if any(f is None for f in frames):
                out.append(untestable(claim, f"the τ=1 and τ=3 runs of {low_lang} and {high_lang} are not all run yet"))
                continue
            gain = frames[1] - frames[0]
            out.append(row(claim, "paired t over questions of the gain difference", direction=-1,
                           family="resource rows", **mean_test(gain[low_lang] - gain[high_lang])))
    for evaluation in EVALUATIONS:
        claim = f"{evaluation} relevance: B's own errors cost more than the same rates of random errors"
        diffs = []
        for tau in (1, 2, 3):
            for lang in langs:
                b = _by_question(values, "B_fast", tau, size, evaluation, [lang])
                noise = _by_question(values, "A_Bnoise", tau, size, evaluation, [lang])
                if b is not None and noise is not None:
                    diffs.append((b - noise)[lang].rename(f"{lang}{tau}"))
        if not diffs:
            out.append(untestable(claim, "no language has both B and simulated-noise runs yet"))
            continue
        per_question = pd.concat(diffs, axis=1).mean(axis=1)
        out.append(row(claim, f"paired t over questions, mean of {len(diffs)} (τ, language) runs",
                       direction=-1, family="noise-structure rows", **mean_test(per_question)))
    out += graded_aware_rows(values, size, langs)
    return out


def graded_aware_rows(values: pd.DataFrame, size: int, langs=("en", "es", "ar", "hi"),
                      objective: str = "kl+infonce") -> list[dict]:
    """Graded-aware training beside hard tau on the same instances (see `claims_rows`); none
    at a size the grid trains no graded-aware run at (it plans them at the larger size)."""
    from gradedrel.claims import mean_test, row, untestable
    out = []
    if not ((values["objective"] == objective) & (values["size"] == size)).any():
        return out
    for source in ("A", "B_fast"):
        for evaluation in EVALUATIONS:
            for tau in (3, 1):
                claim = (f"{SOURCE_NAMES[source]} labels, {evaluation} relevance: KL + InfoNCE over graded "
                         f"candidates beats hard τ={tau} on the same data ({size} instances)")
                have, (graded, hard) = _shared_languages(
                    values, [(source, 3, objective, 0), (source, tau, "infonce", 0)], size, evaluation, langs)
                if not have:
                    out.append(untestable(claim, "no language has both runs yet"))
                    continue
                diff = (graded - hard).mean(axis=1)
                out.append(row(claim, f"paired t over questions, mean of {', '.join(have)}", direction=1,
                               family="graded-aware rows", **mean_test(diff)))
    return out


# --- the un-fine-tuned model under the three definitions (notebook 08's check) -------------

def baseline_table(values: pd.DataFrame) -> pd.DataFrame:
    """lang x evaluation mean nDCG@10 (and n) of the baseline rows of a per-query table."""
    base = values[values["source"] == "baseline"] if "source" in values else values
    lang_col = "lang" if "lang" in base else "query_lang"
    return (base.groupby([lang_col, "qrels"])["value"].agg(["size", "mean"])
            .rename(columns={"size": "n"}).rename_axis(["lang", "evaluation"]).reset_index())


def fresh_baseline(setup, langs, depth: int = 100) -> pd.DataFrame:
    """`baseline_table` of the un-fine-tuned model computed now: each language's questions
    against its sentences, ranked to `depth`, scored under the three definitions."""
    import dataclasses

    from gradedrel.retrieval.ranked_lists import evaluate_ranked
    from gradedrel.sweeps.grid import RunSpec, evaluate_model
    setup = dataclasses.replace(setup, ranked_depth=depth)
    model = setup.fresh_model()
    frames = []
    for lang in langs:
        ranked: list = []
        evaluate_model(setup, model, RunSpec((lang,), 3, 1), ranked_out=ranked)
        frames.append(evaluate_ranked(ranked[0], setup.eval_collection.queries, setup.eval_collection.corpus,
                                      measures=(MEASURE,)))
    return baseline_table(pd.concat(frames, ignore_index=True))


HEADLINES = (("A", "sentence", "τ=3 trains better than τ=1"), ("A", "graded", "τ=3 trains better than τ=1"),
             ("B_fast", "sentence", "τ=3 trains better than τ=1"), ("B_fast", "graded", "τ=3 trains better than τ=1"),
             ("B_fast", "sentence", "gains less from"),
             ("A", "sentence", "beats hard τ=3"), ("B_fast", "sentence", "beats hard τ=3"),
             ("B_fast", "sentence", "training falls below the baseline"))


def headline(claims: pd.DataFrame, langs=("en", "es", "ar", "hi")) -> pd.DataFrame:
    """The rows the README quotes (HEADLINES), each at the largest size where it is testable;
    a "τ=3 trains better than τ=1" row at the largest size whose test covers every language
    (else the smallest size run), so the four languages' rows are not replaced by fewer
    languages' ones. claims' COLUMNS, no size column."""
    from gradedrel.claims import COLUMNS, UNTESTABLE
    picked = []
    for source, evaluation, text in HEADLINES:
        rows = claims[claims["claim"].str.startswith(f"{SOURCE_NAMES[source]} labels, {evaluation} relevance")
                      & claims["claim"].str.contains(text, regex=False) & (claims["verdict"] != UNTESTABLE)
                      & ~claims["claim"].str.contains("mean of seeds", regex=False)]
        if text.startswith("τ=3 trains better"):
            full = rows[rows["test"].str.endswith(", ".join(langs))]
            rows = full if len(full) else rows[rows["size"] == rows["size"].min()]
        if len(rows):
            picked.append(rows[rows["size"] == rows["size"].max()])
    return (pd.concat(picked) if picked else claims.iloc[:0])[COLUMNS].reset_index(drop=True)
