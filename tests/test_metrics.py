"""Worked examples for gradedrel.retrieval.metrics; expected values computed by hand in comments."""
import math
import sys
from pathlib import Path

import ir_measures
import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from gradedrel.retrieval import metrics  # noqa: E402

approx = pytest.approx


def per_query(frame, measure):
    rows = frame[frame["measure"] == measure]
    return dict(zip(rows["query_id"], rows["value"]))


# --- ranking and ties --------------------------------------------------------

def test_rank_documents_breaks_ties_by_doc_id_descending():
    # trec_eval: score descending, then strcmp(ptr2->docno, ptr1->docno).
    assert metrics.rank_documents({"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.9}) == ["d", "c", "b", "a"]


def test_untie_keeps_the_order_and_removes_ties():
    untied = metrics.untie({"q": {"a": 0.5, "b": 0.5, "c": 0.1}})
    assert untied == {"q": {"b": 3.0, "a": 2.0, "c": 1.0}}


def test_ir_measures_backends_disagree_on_ties_which_is_why_we_untie():
    # Documents the raw libraries: pytrec_eval (trec_eval code) puts "b" before "a";
    # ir_measures' msmarco backend, which serves RR@10, puts "a" first.
    qrels, run = {"q": {"a": 1}}, {"q": {"a": 1.0, "b": 1.0}}
    assert ir_measures.pytrec_eval.calc_aggregate([ir_measures.RR], qrels, run)[ir_measures.RR] == 0.5
    assert ir_measures.msmarco.calc_aggregate([ir_measures.RR @ 10], qrels, run)[ir_measures.RR @ 10] == 1.0


def test_evaluate_uses_trec_eval_order_for_every_measure_on_ties():
    # Tied a, b (then c): order b, a, c. Relevant a sits at rank 2:
    # RR@10 = 1/2, nDCG@1 = 0, nDCG@10 = (1/log2 3) / 1 = 0.6309.
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}
    values = metrics.aggregate(qrels, run, ("RR@10", "RR", "nDCG@1", "nDCG@10"))
    assert values["RR@10"] == approx(0.5)
    assert values["RR"] == approx(0.5)
    assert values["nDCG@1"] == approx(0.0)
    assert values["nDCG@10"] == approx(1 / math.log2(3))


# --- standard metrics --------------------------------------------------------

def test_graded_ndcg_uses_the_grade_as_gain():
    # Grades d1=3, d2=1, d3=2, d4=0; ranking d2, d1, d4, d3.
    # DCG@10  = 1/log2 2 + 3/log2 3 + 0/log2 4 + 2/log2 5 = 1 + 1.892789 + 0 + 0.861353 = 3.754142
    # IDCG@10 = 3/log2 2 + 2/log2 3 + 1/log2 4          = 3 + 1.261860 + 0.5          = 4.761860
    # nDCG@10 = 0.788377; nDCG@1 = 1/3; RR@10 = 1 (d2 has grade 1); R@100 = 3/3.
    # (With gain 2^g - 1 nDCG@10 would be 0.7142 and nDCG@1 1/7.)
    qrels = {"q": {"d1": 3, "d2": 1, "d3": 2, "d4": 0}}
    run = {"q": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6}}
    dcg = 1 + 3 / math.log2(3) + 2 / math.log2(5)
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    values = metrics.aggregate(qrels, run)
    assert values["nDCG@10"] == approx(dcg / ideal) == approx(0.788377, abs=1e-6)
    assert values["nDCG@1"] == approx(1 / 3)
    assert values["RR@10"] == approx(1.0)
    assert values["R@100"] == approx(1.0)


def test_evaluate_is_tidy_and_in_measure_order():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {"a": 1.0}, "q2": {"x": 1.0, "b": 0.5}}
    frame = metrics.evaluate(qrels, run)
    assert list(frame.columns) == ["query_id", "measure", "value"]
    assert list(frame["measure"].unique()) == list(metrics.DEFAULT_MEASURES)
    assert per_query(frame, "RR@10") == {"q1": 1.0, "q2": 0.5}


def test_which_queries_count_in_the_mean():
    # q1 retrieved at rank 1 -> 1; q2 relevant but absent from the run -> 0 and counted;
    # q3 judged only grade 0 -> dropped; q4 only in the run -> ignored. Mean = 1/2.
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {"c": 0}}
    run = {"q1": {"a": 1.0}, "q3": {"c": 1.0}, "q4": {"z": 1.0}}
    frame = metrics.evaluate(qrels, run)
    assert set(frame["query_id"]) == {"q1", "q2"}
    assert per_query(frame, "nDCG@10") == {"q1": 1.0, "q2": 0.0}
    means = metrics.aggregate(qrels, run)
    assert means["nDCG@10"] == approx(0.5)
    assert means.to_dict() == approx(metrics.mean_by_measure(frame).to_dict())


def test_empty_ranking_counts_as_zero():
    assert metrics.aggregate({"q": {"a": 1}}, {"q": {}})["RR@10"] == 0.0


# --- Max@R, Complete@K, Max@R-norm ------------------------------------------

def test_all_references_at_the_top():
    # R = {r1, r2} at ranks 1, 2: Max@R = 2 = |R|; norm = 100 (log2 16 - log2 2)/(log2 16 - log2 2) = 100.
    qrels = {"q": {"r1": 1, "r2": 1, "x": 0}}
    run = {"q": {"r1": 0.9, "r2": 0.8, "x": 0.1, "y": 0.05}}
    assert metrics.max_at_r(qrels, run, pool_size=16)["q"] == 2
    assert metrics.max_at_r_norm(qrels, run, pool_size=16)["q"] == approx(100.0)
    assert metrics.complete_at_k(qrels, run, k=1)["q"] == 0.0
    assert metrics.complete_at_k(qrels, run, k=2)["q"] == 1.0


def test_references_apart():
    # Ranking r1, x, y, r2, z: ranks {1, 4}, Max@R = 4.
    # norm = 100 (log2 16 - log2 4)/(log2 16 - log2 2) = 100 (4 - 2)/(4 - 1) = 66.667.
    qrels = {"q": {"r1": 1, "r2": 1}}
    run = {"q": {"r1": 0.9, "x": 0.8, "y": 0.7, "r2": 0.6, "z": 0.5}}
    assert metrics.max_at_r(qrels, run, pool_size=16)["q"] == 4
    assert metrics.max_at_r_norm(qrels, run, pool_size=16)["q"] == approx(200 / 3)
    assert metrics.complete_at_k(qrels, run, k=3)["q"] == 0.0
    assert metrics.complete_at_k(qrels, run, k=4)["q"] == 1.0


def test_reference_missing_from_the_run_is_ranked_last_in_the_pool():
    # |D| = 8, scored r1, x, y; r2 unscored -> rank 8 = |D|; Max@R = 8, norm = 0.
    qrels = {"q": {"r1": 1, "r2": 1}}
    run = {"q": {"r1": 0.9, "x": 0.8, "y": 0.7}}
    assert metrics.reference_ranks(run["q"], {"r1", "r2"}, 8) == {"r1": 1, "r2": 8}
    assert metrics.max_at_r(qrels, run, pool_size=8)["q"] == 8
    assert metrics.max_at_r_norm(qrels, run, pool_size=8)["q"] == approx(0.0)
    assert metrics.complete_at_k(qrels, run, k=3)["q"] == 0.0


def test_query_absent_from_the_run():
    # Both references unscored: they hold the last two places, 7 and 8 of |D| = 8.
    qrels = {"q": {"r1": 1, "r2": 1}}
    assert metrics.reference_ranks({}, {"r1", "r2"}, 8) == {"r1": 7, "r2": 8}
    assert metrics.max_at_r(qrels, {}, pool_size=8)["q"] == 8
    assert metrics.complete_at_k(qrels, {}, k=10)["q"] == 0.0


def test_single_reference():
    # Ranking x, y, r: Max@R = 3; |R| = 1, |D| = 32:
    # norm = 100 (5 - log2 3)/(5 - 0) = 20 (5 - 1.5849625) = 68.30075; RR@10 = 1/3.
    qrels = {"q": {"r": 2}}
    run = {"q": {"x": 0.9, "y": 0.8, "r": 0.7}}
    assert metrics.max_at_r(qrels, run, pool_size=32)["q"] == 3
    assert metrics.max_at_r_norm(qrels, run, pool_size=32)["q"] == approx(68.30075, abs=1e-5)
    assert metrics.aggregate(qrels, run)["RR@10"] == approx(1 / 3)


def test_single_reference_at_rank_one_is_the_best_norm():
    # Max@R = 1 = |R|: 100 (log2 D - 0)/(log2 D - 0) = 100.
    qrels = {"q": {"r": 1}}
    assert metrics.max_at_r_norm(qrels, {"q": {"r": 1.0, "x": 0.0}}, pool_size=10)["q"] == approx(100.0)


def test_ties_follow_trec_eval_order():
    # a, b, c tied, d below: order c, b, a, d.
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.1}}
    assert metrics.max_at_r({"q": {"a": 1}}, run, pool_size=8)["q"] == 3
    assert metrics.max_at_r({"q": {"c": 1}}, run, pool_size=8)["q"] == 1
    # R = {a, c}: ranks {3, 1}, Max@R = 3; norm = 100 (3 - log2 3)/(3 - 1) = 70.75187.
    qrels = {"q": {"a": 1, "c": 1}}
    assert metrics.max_at_r(qrels, run, pool_size=8)["q"] == 3
    assert metrics.max_at_r_norm(qrels, run, pool_size=8)["q"] == approx(70.75187, abs=1e-5)
    # Same order as ir_measures sees after untie: a single reference a has RR = 1/3.
    assert metrics.aggregate({"q": {"a": 1}}, run)["RR@10"] == approx(1 / 3)


def test_min_grade_chooses_the_references():
    # Ranking a (3), x, b (1): all grades >= 1 -> Max@R 3; only grade 3 -> Max@R 1.
    qrels = {"q": {"a": 3, "b": 1}}
    run = {"q": {"a": 0.9, "x": 0.8, "b": 0.7}}
    assert metrics.max_at_r(qrels, run, pool_size=8)["q"] == 3
    assert metrics.max_at_r(qrels, run, pool_size=8, min_grade=3)["q"] == 1


def test_queries_without_references_are_left_out():
    qrels = {"q1": {"r": 1}, "q2": {"x": 0}}
    run = {"q1": {"r": 1.0}, "q2": {"x": 1.0}, "q3": {"r": 1.0}}
    assert list(metrics.max_at_r(qrels, run, pool_size=4).index) == ["q1"]


def test_invalid_pool_sizes_raise():
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7}}
    with pytest.raises(ValueError):  # 3 scored + 1 unscored reference do not fit in 3
        metrics.max_at_r({"q": {"r": 1}}, run, pool_size=3)
    with pytest.raises(ValueError):  # |D| = |R|: the normalisation is 0/0
        metrics.max_at_r_norm({"q": {"a": 1, "b": 1}}, {"q": {"a": 1.0, "b": 0.5}}, pool_size=2)


def test_means_over_queries():
    # |D| = 16. q1: R = {r1, r2} at ranks {1, 4}: Max@R 4, norm 100 (4 - 2)/(4 - 1) = 66.667.
    #           q2: R = {s} at rank 2:            Max@R 2, norm 100 (4 - 1)/(4 - 0) = 75.
    # Means: Max@R 3, norm 70.833; Complete@3 = (0 + 1)/2 = 50 %, Complete@10 = 100 %.
    qrels = {"q1": {"r1": 1, "r2": 1}, "q2": {"s": 1}}
    run = {"q1": {"r1": 0.9, "x": 0.8, "y": 0.7, "r2": 0.6},
           "q2": {"x": 0.9, "s": 0.8}}
    means = metrics.aggregate_max_at_r(qrels, run, pool_size=16, ks=(3, 10))
    assert means.to_dict() == approx({"Complete@3": 50.0, "Complete@10": 100.0,
                                      "Max@R": 3.0, "Max@R-norm": (200 / 3 + 75) / 2})
    frame = metrics.evaluate_max_at_r(qrels, run, pool_size=16, ks=(3,))
    assert per_query(frame, "Complete@3") == {"q1": 0.0, "q2": 1.0}
    assert per_query(frame, "Max@R") == {"q1": 4.0, "q2": 2.0}


def test_norm_of_mean_reproduces_the_paper_tables():
    # Table 1 rows, |R| = 2, |D| = 2 x questions (XQuAD 1190 -> 2380, Belebele 900 -> 1800).
    assert metrics.max_at_r_norm_of_mean(650.95, 2380, 2) == approx(18.31, abs=0.01)
    assert metrics.max_at_r_norm_of_mean(12.12, 2380, 2) == approx(74.56, abs=0.01)
    assert metrics.max_at_r_norm_of_mean(187.78, 1800, 2) == approx(33.23, abs=0.01)


def test_norm_of_mean_differs_from_mean_of_norms():
    # |D| = 64, |R| = 2, Max@R 2 and 32: per-query norms 100 and 100 (6 - 5)/(6 - 1) = 20,
    # mean 60 (paper's formula); norm of the mean Max@R 17 = 100 (6 - log2 17)/5 = 38.25.
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"a": 1, "b": 1}}
    filler = {f"x{i}": 0.5 for i in range(30)}
    run = {"q1": {"a": 1.0, "b": 0.9}, "q2": {"a": 1.0, **filler, "b": 0.1}}
    per_query_max = metrics.max_at_r(qrels, run, pool_size=64)
    assert per_query_max.to_dict() == {"q1": 2, "q2": 32}
    assert metrics.max_at_r_norm(qrels, run, pool_size=64).mean() == approx(60.0)
    assert metrics.max_at_r_norm_of_mean(per_query_max.mean(), 64, 2) == approx(38.25, abs=0.01)


def test_agrees_with_ir_measures_on_random_tied_runs():
    # Complete@10 = [R@10 == 1]; for one reference, Max@R = 1/RR (pytrec_eval RR, no cutoff).
    rng = np.random.default_rng(7)
    docs = [f"d{i:02d}" for i in range(40)]
    qrels, single_qrels, run = {}, {}, {}
    for q in range(30):
        query_id = f"q{q}"
        refs = rng.choice(docs, size=2, replace=False)
        qrels[query_id] = {refs[0]: 1, refs[1]: 2}
        single_qrels[query_id] = {refs[0]: 1}
        run[query_id] = {d: float(rng.integers(0, 5)) for d in docs}  # many ties
    frame = metrics.evaluate(qrels, run, ("R@10",))
    recall = per_query(frame, "R@10")
    complete = metrics.complete_at_k(qrels, run, k=10)
    assert complete.to_dict() == {q: float(recall[q] == 1.0) for q in qrels}
    rr = per_query(metrics.evaluate(single_qrels, run, ("RR",)), "RR")
    max_rank = metrics.max_at_r(single_qrels, run, pool_size=40)
    assert max_rank.to_dict() == approx({q: 1 / rr[q] for q in single_qrels})


# --- paired tests ------------------------------------------------------------

A = {"q1": 3.0, "q2": 5.0, "q3": 7.0, "only_a": 100.0}
B = {"q3": 4.0, "q1": 2.0, "q2": 3.0, "only_b": -1.0}


def test_paired_t_test_over_shared_queries():
    # Shared q1..q3, differences 1, 2, 3: mean 2, sd 1, t = 2 / (1/sqrt 3) = 3.4641, df 2.
    result = metrics.paired_test(A, B, method="t")
    assert result.n_queries == 3
    assert result.mean_difference == approx(2.0)
    assert result.statistic == approx(2 * math.sqrt(3))
    assert result.p_value == approx(2 * stats.t.sf(2 * math.sqrt(3), df=2))


def test_paired_randomization_and_wilcoxon_exact():
    # Differences 1..5, all positive. Randomization (sign flips, 2^5 = 32, exact):
    # only all-plus and all-minus reach |mean| >= 3, p = 2/32. Wilcoxon: W = min(T+, T-) = 0,
    # exact p = 2/32 as well.
    a = {f"q{i}": float(i) for i in range(1, 6)}
    b = {f"q{i}": 0.0 for i in range(1, 6)}
    randomized = metrics.paired_test(a, b, method="randomization")
    assert randomized.mean_difference == approx(3.0)
    assert randomized.statistic == approx(3.0)
    assert randomized.p_value == approx(2 / 32)
    wilcoxon = metrics.paired_test(a, b, method="wilcoxon")
    assert wilcoxon.statistic == 0.0
    assert wilcoxon.p_value == approx(2 / 32)


def test_paired_test_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.paired_test(A, B, method="sign")
    with pytest.raises(ValueError):
        metrics.paired_test({"q1": 1.0}, {"q1": 0.0})


def test_mean_with_interval_by_hand():
    """A constant sample has no spread. For 13 ones and 13 zeros the bootstrap distribution
    is known exactly: a resample of 26 holds Binomial(26, 1/2) ones, so the 95% percentile
    interval is [binom.ppf(0.025), binom.ppf(0.975)] / 26 = [8/26, 18/26]. The 90% one
    is [9/26, 17/26]; the sample is chosen so that no binomial CDF step lies within 0.01 of
    0.025, 0.05, 0.95 or 0.975, which 20,000 resamples resolve (sd of a tail share 0.0015)."""
    import numpy as np
    from scipy import stats

    from gradedrel.retrieval.metrics import mean_with_interval
    assert mean_with_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    n = 26
    exact = {level: stats.binom.ppf([(1 - level) / 2, (1 + level) / 2], n, 0.5) / n
             for level in (0.95, 0.90)}
    assert exact[0.95].tolist() == [8 / 26, 18 / 26] and exact[0.90].tolist() == [9 / 26, 17 / 26]
    mean, low, high = mean_with_interval(np.r_[np.ones(13), np.zeros(13)], n_resamples=20000)
    assert mean == 0.5
    assert (low, high) == (pytest.approx(8 / 26, abs=1e-9), pytest.approx(18 / 26, abs=1e-9))
    # the level is a parameter: 0.90 gives the 90% interval
    assert mean_with_interval(np.r_[np.ones(13), np.zeros(13)], confidence=0.90,
                              n_resamples=20000)[1:] == (pytest.approx(9 / 26), pytest.approx(17 / 26))
    with pytest.raises(ValueError, match="two values"):
        mean_with_interval([1.0])
