"""Intervals, size-matched gaps and the outlier factors of notebook 06, on the hand-made
collection of test_multiref (p0 holds q0 and q1; translations score half)."""
import numpy as np
import pandas as pd
import pytest
from test_multiref import pair_id, tiny_collection

from gradedrel.data.collection import Collection, make_id
from gradedrel.multiref import scenarios as mr
from gradedrel.multiref import zero_shot_checks as zc

P3 = np.array([[0.3, 0.3, 0.3]], dtype=np.float32)


@pytest.fixture
def embeddings():
    queries = np.array([[1, 0, 0.2], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0, 1]], dtype=np.float32)
    return {"en": queries, "xx": queries}, {"en": np.eye(3, dtype=np.float32),
                                            "xx": 0.5 * np.eye(3, dtype=np.float32)}


@pytest.fixture
def four_paragraphs(embeddings):
    """The tiny collection plus p3, a paragraph without questions in article B, so that each
    half of the articles has a pool larger than a query's two references."""
    coll = tiny_collection()
    extra = pd.DataFrame([(make_id(l, "p3"), "p3", l, f"{l} text of p3", "B") for l in ("en", "xx")],
                         columns=coll.corpus.columns)
    coll = Collection("tiny4", pd.concat([coll.corpus, extra], ignore_index=True), coll.queries, coll.qrels)
    queries, paragraphs = embeddings
    return coll, queries, {"en": np.vstack([paragraphs["en"], P3]),
                           "xx": np.vstack([paragraphs["xx"], 0.5 * P3])}


def test_tie_order_moves_only_tied_references(embeddings):
    coll = tiny_collection()
    sc = mr.build_scenario(coll, "Multi", "en", "xx", "pair")
    run = mr.scenario_run(sc, coll, *embeddings)
    # by hand (test_multiref): Max@R 4, 3, 2, 2 with trec_eval's tie order; q0's own copies
    # first among p0's -> 1st and 3rd (Max@R 3); q1's last -> 2nd and 4th (Max@R 4)
    assert zc.nudged_means(sc, run)["Max@R"] == pytest.approx(2.75)
    assert zc.nudged_means(sc, run, zc.TIE_NUDGE)["Max@R"] == pytest.approx((3 + 3 + 2 + 2) / 4)
    assert zc.nudged_means(sc, run, -zc.TIE_NUDGE)["Max@R"] == pytest.approx((4 + 4 + 2 + 2) / 4)
    assert run["en:q0"][pair_id("en", "q0")] == run["en:q0"][pair_id("en", "q1")]   # untouched


def test_centring_removes_each_languages_mean_score(embeddings):
    queries, paragraphs = embeddings
    c = zc.centred(paragraphs)
    for lang in ("en", "xx"):
        expected = queries["en"] @ paragraphs[lang].T - (queries["en"] @ paragraphs[lang].T).mean(
            axis=1, keepdims=True)
        np.testing.assert_allclose(queries["en"] @ c[lang].T, expected, atol=1e-6)


def test_half_pools_evaluate_every_question_once(four_paragraphs):
    coll, queries, paragraphs = four_paragraphs
    assert zc.article_halves(coll) == (["A"], ["B"])
    per_query = zc.per_query(coll, "xx", queries, paragraphs)
    half = per_query[per_query["pool"] == zc.HALF_POOL]
    assert set(half["scenario"]) == {"Multi"}
    counts = half[half["measure"] == "Max@R"].groupby("query_lang")["query_id"].nunique()
    assert counts.to_dict() == {"en": 4, "xx": 4}
    # article B holds p2 and p3: q3's pool is those two in two languages, its references on top
    q3 = half[(half["query_id"] == "en:q3") & (half["measure"] == "Max@R")]
    assert q3["value"].tolist() == [2] and q3["pool_size"].tolist() == [4]


def test_matched_gaps_pair_questions_across_languages():
    rows = []
    for lang, maxr, complete in (("en", (2, 4), (1, 1)), ("xx", (6, 4), (0, 1))):
        for q, m, c in zip(("q0", "q1"), maxr, complete):
            for measure, value in (("Max@R", m), ("Complete@10", c)):
                rows.append(dict(target="xx", pool="paragraph", scenario="Multi", query_lang=lang,
                                 pool_size=6, n_refs=2, query_id=f"{lang}:{q}", measure=measure,
                                 value=value))
    gaps = zc.matched_gaps(pd.DataFrame(rows)).set_index("measure")
    assert gaps["pool"].unique().tolist() == ["Multi, paragraph pool"]
    # Max@R: -(2 - 6) = 4 and -(4 - 4) = 0 -> English ahead by 2 ranks on average
    assert gaps.loc["Max@R", "gap"] == pytest.approx(2.0)
    assert gaps.loc["Complete@10", "gap"] == pytest.approx(50.0)      # percent points
    assert gaps.loc["Max@R", "n_questions"] == 2
    assert gaps.loc["Max@R", "ci_low"] <= 2.0 <= gaps.loc["Max@R", "ci_high"]


def test_intervals_in_the_tables_units(four_paragraphs):
    coll, queries, paragraphs = four_paragraphs
    table = zc.intervals(zc.per_query(coll, "xx", queries, paragraphs))
    row = table.query("pool == 'pair' and scenario == 'Multi' and query_lang == 'en'").set_index("measure")
    assert row.loc["Max@R", "mean"] == pytest.approx(2.75) and row.loc["Max@R", "n"] == 4
    assert row.loc["Max@R", "ci_low"] <= 2.75 <= row.loc["Max@R", "ci_high"]
    assert row.loc["Complete@10", "mean"] == 100          # |D| = 8: everything is in the top 10
    assert row.loc["Complete@10", "ci_low"] == row.loc["Complete@10", "ci_high"] == 100
    assert set(zip(table["pool"], table["scenario"])) == set(zc.INTERVAL_ROWS)


def test_outlier_factors_row(embeddings):
    coll = tiny_collection()
    row = zc.outlier_factors(coll, "xx", *embeddings)
    assert row["pair pool, refs first in ties"] >= row["pair pool"] >= row["pair pool, refs last in ties"]
    assert row["Mono-Cross nDCG@1 (%)"] == 100              # each query's own translation first
    # en queries score English paragraphs twice their translations: mean over queries of
    # q . (mean en paragraph) - q . (mean xx paragraph) = 0.5 * mean(sum(q)) / 3
    q = embeddings[0]["en"]
    assert row["score offset (en - target docs)"] == pytest.approx(0.5 * q.sum(axis=1).mean() / 3)
    # a query's scores on the xx paragraphs are half its coordinates: SD = 0.5 * std(q)
    assert row["target score SD"] == pytest.approx(0.5 * q.std(axis=1).mean(), rel=1e-5)
    assert row["offset in target SDs"] == pytest.approx(
        np.mean(0.5 * q.sum(axis=1) / 3 / (0.5 * q.std(axis=1))), rel=1e-5)


def test_outlier_findings_follow_the_numbers():
    from gradedrel.multiref import tables as mt
    cols = ["pair pool", "pair pool, refs first in ties", "pair pool, refs last in ties", "paragraph pool",
            "paragraph pool, language offset removed", "score offset (en - target docs)",
            "target score SD", "offset in target SDs", "paragraph tokens (median)",
            "paragraphs over 512 tokens (%)"]
    rows = {"aa": [30, 33, 28, 80, 95, 0.03, 0.021, 1.4, 190, 1.2],
            "bb": [20, 22, 18, 70, 94, 0.03, 0.021, 1.5, 200, 1.3],
            "zh": [2, 3, 1, 26, 88, 0.044, 0.017, 2.6, 155, 0.8]}
    factors = pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("target").reset_index()
    lines = mt.outlier_findings(factors, "zh")
    assert "ties do not explain the outlier" in lines[0]
    assert "still 44.0 points below" in lines[1]
    assert "(6.0 points below the lowest other pair, against 44.0 points below the lowest other pair before)" in lines[2]
    assert "the largest is zh's (2.60)" in lines[3]
    assert lines[4].endswith("truncation is not the cause.")
    # refs-first above the lowest other pair: then ties could explain it
    factors.loc[factors["target"] == "zh", "pair pool, refs first in ties"] = 25
    assert mt.outlier_findings(factors, "zh")[0].endswith("could explain it.")
    assert mt.outlier_findings(factors, "xx") == []


def test_intervals_by_model_and_the_view(four_paragraphs):
    from gradedrel.multiref import tables as mt
    coll, queries, paragraphs = four_paragraphs
    per_query = zc.per_query(coll, "xx", queries, paragraphs)
    both = pd.concat([per_query.assign(model="base"), per_query.assign(model="ft", value=per_query["value"] * 2)])
    table = zc.intervals(both, rows=[("pair", "Multi")], measures=("Max@R",), by=("model",))
    means = table.set_index(["model", "query_lang"])["mean"]
    assert means[("ft", "en")] == pytest.approx(2 * means[("base", "en")]) == pytest.approx(5.5)
    view = mt.interval_view(table, index=("target", "model", "query_lang"))
    assert list(view.columns) == ["Max@R", "n"]                # measures it lacks are left out
    assert view.loc[("xx", "base", "en"), "Max@R"].startswith("2.8 [")
