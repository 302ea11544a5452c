"""Retrieval metrics: standard ones through ir_measures, the Max@R family by hand,
and a paired significance test.

Shapes (the ones ir_measures and ranx take):
    run   = {query_id: {doc_id: score}}   higher score = better
    qrels = {query_id: {doc_id: grade}}   integer grades 0-3

Which queries count
    A query is evaluated when its qrels hold at least one document with grade >= 1
    (a "relevant" document, a "reference" for Max@R). Every mean is over exactly
    those queries:
      * queries in the run but absent from qrels are ignored (as trec_eval does);
      * queries whose judgements are all grade 0 are dropped, because every metric
        here is 0/0 for them (trec_eval would count them as 0);
      * queries with relevant documents but absent from the run (or with an empty
        ranking) score 0 on the standard metrics (trec_eval -c), and Max@R = |D|,
        Max@R-norm = 0, Complete@K = 0.

Ties
    All metrics use one ranking: score descending, equal scores broken by doc id
    descending -- trec_eval's order (`comp_sim_docno` in trec_eval's
    form_res_rels.c: `strcmp (ptr2->docno, ptr1->docno)`). ir_measures' pytrec_eval
    backend (nDCG@k, R@k, RR without cutoff) runs trec_eval's code and so uses it,
    but ir_measures serves RR@10 from its msmarco backend, which breaks ties by doc
    id *ascending*. So the two would disagree on a tied run; `evaluate` therefore
    first rewrites each query's scores as strictly decreasing integers in trec_eval
    order (`untie`), which every backend then reads identically.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple

import ir_measures
import numpy as np
import pandas as pd
from scipy import stats

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100", "nDCG@1")
TIDY_COLUMNS = ["query_id", "measure", "value"]


# --- ranking -----------------------------------------------------------------

def rank_documents(doc_scores: Mapping[str, float]) -> list[str]:
    """Doc ids best first: score descending, ties by doc id descending (trec_eval)."""
    for doc_id, score in doc_scores.items():
        if math.isnan(score):
            raise ValueError(f"NaN score for document {doc_id!r}")
    return sorted(doc_scores, key=lambda doc_id: (doc_scores[doc_id], doc_id), reverse=True)


def untie(run: Run) -> dict[str, dict[str, float]]:
    """The same rankings with scores n, n-1, ..., 1 in trec_eval order (no ties left)."""
    untied = {}
    for query_id, doc_scores in run.items():
        ranking = rank_documents(doc_scores)
        untied[query_id] = {doc_id: float(len(ranking) - i) for i, doc_id in enumerate(ranking)}
    return untied


def judged_queries(qrels: Qrels, min_grade: int = 1) -> dict[str, dict[str, int]]:
    """Qrels of the queries with at least one document of grade >= min_grade."""
    return {query_id: dict(grades) for query_id, grades in qrels.items()
            if any(grade >= min_grade for grade in grades.values())}


# --- standard metrics through ir_measures ------------------------------------

def _ir_measures_inputs(qrels: Qrels, run: Run, measures: Iterable):
    parsed = [ir_measures.parse_measure(m) for m in measures]
    judged = judged_queries(qrels)
    # Empty rankings are left out; ir_measures then gives those queries the
    # measure's default (0), the same as for queries missing from the run.
    kept_run = {q: docs for q, docs in run.items() if q in judged and docs}
    return parsed, judged, untie(kept_run)


def evaluate(qrels: Qrels, run: Run, measures: Iterable = DEFAULT_MEASURES) -> pd.DataFrame:
    """Per-query values of ir_measures measures: a DataFrame (query_id, measure, value).

    One row per (judged query, measure); see the module docstring for which queries
    count and for ties. Graded nDCG is trec_eval's: gain = grade (linear, not
    2^grade - 1), discount 1/log2(rank + 1), ideal ranking from the qrels.
    Binary measures (RR, R) count grade >= 1 as relevant.
    """
    parsed, judged, untied_run = _ir_measures_inputs(qrels, run, measures)
    rows = [(m.query_id, str(m.measure), float(m.value))
            for m in ir_measures.iter_calc(parsed, judged, untied_run)]
    measure_order = {str(m): i for i, m in enumerate(parsed)}
    frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    frame = frame.assign(order=frame["measure"].map(measure_order))
    return (frame.sort_values(["order", "query_id"]).drop(columns="order")
            .reset_index(drop=True))


def aggregate(qrels: Qrels, run: Run, measures: Iterable = DEFAULT_MEASURES) -> pd.Series:
    """Mean of each measure over the judged queries (ir_measures.calc_aggregate)."""
    parsed, judged, untied_run = _ir_measures_inputs(qrels, run, measures)
    means = ir_measures.calc_aggregate(parsed, judged, untied_run)
    return pd.Series({str(m): float(means[m]) for m in parsed}, name="mean")


def mean_by_measure(per_query: pd.DataFrame) -> pd.Series:
    """Mean value per measure of a tidy (query_id, measure, value) frame, in frame order."""
    return per_query.groupby("measure", sort=False)["value"].mean().rename("mean")


# --- Max@R family (Max@R paper, sections 3 and 5.1) --------------------------

def reference_sets(qrels: Qrels, min_grade: int = 1) -> dict[str, set[str]]:
    """R_q: the documents with grade >= min_grade, for queries that have any."""
    return {query_id: {d for d, grade in grades.items() if grade >= min_grade}
            for query_id, grades in judged_queries(qrels, min_grade).items()}


def reference_ranks(doc_scores: Mapping[str, float], references: set[str],
                    pool_size: int) -> dict[str, int]:
    """1-based rank of each reference in the ranking of the whole pool D.

    Scored documents take ranks 1..n in trec_eval order. Documents of the pool
    missing from the run come after all of them, in an unknown order; we take the
    worst case, so the m missing references hold the last ranks |D|-m+1 .. |D|.
    """
    ranking = rank_documents(doc_scores)
    rank_of = {doc_id: i + 1 for i, doc_id in enumerate(ranking)}
    missing = sorted(references - rank_of.keys())
    if len(ranking) + len(missing) > pool_size:
        raise ValueError(f"pool_size {pool_size} is smaller than the {len(ranking)} scored "
                         f"documents plus {len(missing)} unscored references")
    ranks = {doc_id: rank_of[doc_id] for doc_id in references if doc_id in rank_of}
    first_missing_rank = pool_size - len(missing) + 1
    ranks.update({doc_id: first_missing_rank + i for i, doc_id in enumerate(missing)})
    return ranks


def max_at_r(qrels: Qrels, run: Run, pool_size: int, min_grade: int = 1) -> pd.Series:
    """Per-query Max@R (lower is better).

    Paper, eq. (1): Max@R = max({i | d'_i in R_q}) -- the worst 1-based rank of any
    reference in the ranking of the whole pool, i.e. the cutoff needed to retrieve
    all of R_q. It lies in [|R_q|, |D|]; a reference missing from the run makes it
    |D| (see `reference_ranks`).
    """
    values = {query_id: max(reference_ranks(run.get(query_id, {}), refs, pool_size).values())
              for query_id, refs in reference_sets(qrels, min_grade).items()}
    return pd.Series(values, name="Max@R", dtype=float).sort_index()


def complete_at_k(qrels: Qrels, run: Run, k: int, min_grade: int = 1) -> pd.Series:
    """Per-query Complete@K: 1 if every reference is among the top K of the run, else 0.

    Paper, 5.1 (after Qu et al., 2024): "considers an answer correct only if all
    relevant documents are included within the top-k results", reported as a
    percentage (see `aggregate_max_at_r`). A reference missing from the run is not
    in the top K, so this equals [Max@R <= K] whenever K < |D|.
    """
    values = {}
    for query_id, refs in reference_sets(qrels, min_grade).items():
        top_k = set(rank_documents(run.get(query_id, {}))[:k])
        values[query_id] = float(refs <= top_k)
    return pd.Series(values, name=f"Complete@{k}", dtype=float).sort_index()


def log_normalised_max_at_r(max_rank: float, pool_size: int, n_references: int) -> float:
    """100 * (log2|D| - log2 Max@R) / (log2|D| - log2|R|): 100 at Max@R = |R|, 0 at |D|."""
    if pool_size <= n_references:
        raise ValueError(f"Max@R-norm needs |D| > |R| (got |D|={pool_size}, |R|={n_references})")
    return 100 * (math.log2(pool_size) - math.log2(max_rank)) / (
        math.log2(pool_size) - math.log2(n_references))


def max_at_r_norm(qrels: Qrels, run: Run, pool_size: int, min_grade: int = 1) -> pd.Series:
    """Per-query Max@R-norm (0-100, higher is better), whose mean is the paper's metric.

    Paper, 5.1: "Max@Rnorm = 1/|Q| sum_{q in Q} [100 x (log2(|D|) - log2(Max@R)) /
    (log2(|D|) - log2(|R|))], where |D| is the size of the document pool, and |R| is
    the number of ground-truth documents for each query."

    Note: the paper's tables are reproduced (to rounding) by applying the bracket to
    the *mean* Max@R instead, with |D| = 2 x questions; see `max_at_r_norm_of_mean`.
    By Jensen's inequality the per-query mean is >= that value.
    """
    refs_by_query = reference_sets(qrels, min_grade)
    per_query_max = max_at_r(qrels, run, pool_size, min_grade)
    values = {query_id: log_normalised_max_at_r(per_query_max[query_id], pool_size,
                                                 len(refs_by_query[query_id]))
              for query_id in per_query_max.index}
    return pd.Series(values, name="Max@R-norm", dtype=float).sort_index()


def max_at_r_norm_of_mean(mean_max_at_r: float, pool_size: int, n_references: int) -> float:
    """The normalisation applied to a mean Max@R: what the paper's tables report.

    E.g. Table 1, XQuAD, multilingual-e5-base, En+Zh, Zh queries: Max@R 650.95 ->
    Max@R-norm 18.31 with |D| = 2380 (2 x 1190 question-context pairs), |R| = 2.
    Not the per-query mean written in the paper's formula (`max_at_r_norm`).
    """
    return log_normalised_max_at_r(mean_max_at_r, pool_size, n_references)


def evaluate_max_at_r(qrels: Qrels, run: Run, pool_size: int, ks: Iterable[int] = (10,),
                      min_grade: int = 1) -> pd.DataFrame:
    """Per-query Complete@K (0/1), Max@R and Max@R-norm as a tidy (query_id, measure, value) frame."""
    series = [complete_at_k(qrels, run, k, min_grade) for k in ks]
    series += [max_at_r(qrels, run, pool_size, min_grade),
               max_at_r_norm(qrels, run, pool_size, min_grade)]
    frames = [s.rename_axis("query_id").reset_index(name="value").assign(measure=s.name)
              for s in series]
    return pd.concat(frames, ignore_index=True)[TIDY_COLUMNS]


def aggregate_max_at_r(qrels: Qrels, run: Run, pool_size: int, ks: Iterable[int] = (10,),
                       min_grade: int = 1) -> pd.Series:
    """Means over queries with references, on the paper's scales.

    Complete@K as a percentage (mean of 0/1 x 100, as the paper reports it), Max@R
    as a mean rank, Max@R-norm as the mean of per-query values (paper's formula).
    """
    means = mean_by_measure(evaluate_max_at_r(qrels, run, pool_size, ks, min_grade))
    is_complete = means.index.str.startswith("Complete@")
    means[is_complete] *= 100
    return means


# --- paired significance -----------------------------------------------------

class PairedTestResult(NamedTuple):
    n_queries: int
    mean_difference: float   # mean of a - b over the shared queries
    statistic: float
    p_value: float


def mean_with_interval(values, confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-query values and its percentile bootstrap interval
    over queries (scipy.stats.bootstrap). A constant sample has the zero-width interval."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"need at least two values, got {len(x)}")
    mean = float(x.mean())
    if np.all(x == x[0]):
        return mean, mean, mean
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=seed)
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean_difference(a, b, axis=-1):
    return np.mean(np.asarray(a) - np.asarray(b), axis=axis)


def paired_test(per_query_a: Mapping[str, float], per_query_b: Mapping[str, float],
                method: str = "t", n_resamples: int = 9999, seed: int = 0) -> PairedTestResult:
    """Two-sided paired test of a vs b over the queries both have.

    method "t": scipy.stats.ttest_rel; "wilcoxon": scipy.stats.wilcoxon (signed
    rank; zero differences dropped, scipy's default); "randomization":
    scipy.stats.permutation_test with permutation_type="samples", i.e. swapping a
    and b within each query, statistic = mean difference (exact when
    2^n <= n_resamples). Inputs are {query_id: value} mappings or Series.
    """
    a, b = pd.Series(per_query_a, dtype=float), pd.Series(per_query_b, dtype=float)
    shared = a.index.intersection(b.index).sort_values()
    if len(shared) < 2:
        raise ValueError(f"need at least two shared queries, got {len(shared)}")
    a, b = a[shared].to_numpy(), b[shared].to_numpy()
    if method == "t":
        result = stats.ttest_rel(a, b)
    elif method == "wilcoxon":
        result = stats.wilcoxon(a, b)
    elif method == "randomization":
        result = stats.permutation_test((a, b), _mean_difference, permutation_type="samples",
                                        vectorized=True, n_resamples=n_resamples,
                                        alternative="two-sided", rng=seed)
    else:
        raise ValueError(f"unknown method {method!r}: use 't', 'wilcoxon' or 'randomization'")
    return PairedTestResult(len(shared), float(np.mean(a - b)),
                            float(result.statistic), float(result.pvalue))
