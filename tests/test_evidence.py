"""sweeps.evidence: points as the mean of their seeds, per-question contrasts across
languages, and the claims rows built on them, on a store of hand-made per-query values."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_run_store import fake_setup

from gradedrel import claims
from gradedrel.sweeps import analysis as sa
from gradedrel.sweeps import evidence
from gradedrel.sweeps.grid import BASELINE, RunSpec

LANGS = ("en", "de")
BASE = np.array([0.5, 0.6, 0.4, 0.7, 0.3, 0.5])


def put(setup, spec, values: dict):
    """values[lang] = six per-query nDCG@10 values of the lang->lang pair."""
    rows = [(lang, lang, f"{lang}:q{i}", "nDCG@10", float(v))
            for lang, vs in values.items() for i, v in enumerate(vs)]
    record = {"config_hash": setup.config_hash(spec), "steps": 2}
    if not spec.is_baseline:
        record["counts"] = {"instances": {lang: 8 for lang in spec.train_langs},
                            "positives": {lang: 4 for lang in spec.train_langs}}
    setup.store.write_finished(record, pd.DataFrame(rows, columns=["query_lang", "doc_lang", "query_id",
                                                                   "measure", "value"]))


@pytest.fixture
def grid(tmp_path):
    setup = fake_setup(tmp_path)
    put(setup, BASELINE, {lang: BASE for lang in LANGS})
    specs = []
    # tau=1: two seeds that disagree (seed 0 +0.04 on q0-q2 only, seed 1 -0.02 on q3-q5);
    # tau=3: one seed, +0.01 everywhere in en, -0.01 everywhere in de
    shifts = {(1, 0): np.array([0.04, 0.04, 0.04, 0, 0, 0]), (1, 1): np.array([0, 0, 0, -0.02, -0.02, -0.02])}
    for lang in LANGS:
        for (tau, seed), shift in shifts.items():
            spec = RunSpec((lang,), tau, 8, seed=seed, annotator="A")
            put(setup, spec, {lang: BASE + shift})
            specs.append(spec)
        spec = RunSpec((lang,), 3, 8, annotator="A")
        put(setup, spec, {lang: BASE + (0.01 if lang == "en" else -0.01) + np.array([0, 1e-3, 0, -1e-3, 0, 0])})
        specs.append(spec)
    return setup, specs


def test_a_point_is_the_mean_of_its_seeds_with_its_own_test(grid):
    setup, specs = grid
    points = sa.compare_to_reference(setup, specs, "target")
    tests = evidence.seed_mean_points(evidence.PerQuery(setup), points)
    assert len(points) == 6 and len(tests) == 4
    en1 = tests[(tests["target"] == "en") & (tests["tau"] == 1)].iloc[0]
    # per question the seeds' mean: +0.02 on q0-q2, -0.01 on q3-q5 -> mean +0.005
    diffs = np.array([0.02, 0.02, 0.02, -0.01, -0.01, -0.01])
    assert en1["seeds"] == 2 and en1["delta"] == pytest.approx(0.005, abs=1e-6)
    assert en1["p_value"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue, rel=1e-3)
    # the runs' own tests are of another estimate: seed 1 alone is -0.01 on average
    seed1 = points[(points["target"] == "en") & (points["tau"] == 1) & (points["seed"] == 1)].iloc[0]
    assert seed1["delta"] == pytest.approx(-0.01, abs=1e-6)
    # BH over the four points
    assert tests["q_value"].to_numpy() == pytest.approx(sa.bh_q_values(tests["p_value"].to_numpy()))


def test_a_contrast_averages_each_question_over_the_languages(grid):
    setup, specs = grid
    pq = evidence.PerQuery(setup)
    h = {(s.target, s.tau, s.seed): setup.config_hash(s) for s in specs}
    # tau=3 against the baseline: en +0.01, de -0.01 per question: the mean per question is ~0
    diffs = evidence.question_contrast(pq, [(lang, lang, [h[(lang, 3, 0)]], None) for lang in LANGS])
    assert diffs.index.tolist() == [f"q{i}" for i in range(6)]
    assert diffs.to_numpy() == pytest.approx(np.array([0, 1e-3, 0, -1e-3, 0, 0]), abs=1e-6)
    # tau=3 against tau=1 (two seeds averaged) in en alone: 0.01 - (+0.02 | -0.01)
    diffs = evidence.question_contrast(pq, [("en", "en", [h[("en", 3, 0)]], [h[("en", 1, 0)], h[("en", 1, 1)]])])
    assert diffs.to_numpy() == pytest.approx([-0.01, -0.009, -0.01, 0.019, 0.02, 0.02], abs=1e-6)
    row = evidence.contrast_row("tau=3 beats tau=1 in en", "t", diffs, 1)
    assert row["n"] == 6 and row["effect"] == pytest.approx(diffs.mean())
    assert claims.claims_table([row])["verdict"].item() == "consistent but not significant"


def test_best_tau_is_least_harmful_unless_it_beats_the_baseline():
    best = pd.DataFrame({"annotator": ["A", "A"], "target": ["en", "de"], "best_tau": [3, 1]})
    tests = pd.DataFrame({"annotator": "A", "target": ["en", "en", "de", "de"], "tau": [3, 3, 1, 1],
                          "size_value": [8, 16, 8, 16], "delta": [0.02, -0.001, -0.01, 0.03],
                          "significant": [True, False, True, True]})
    # judged at the largest size: en's tau=3 is not significant there, de's tau=1 is above
    labels = evidence.least_harmful(best, tests).set_index("target")["label"].to_dict()
    assert labels == {"en": "least harmful", "de": "best"}


def test_table1_stars_follow_the_corrected_q_not_p():
    table = pd.DataFrame({"target": ["ru", "ru", "ru"], "added": ["-", "ar", "es"], "variant": ["-", "disjoint", "disjoint"],
                          "tau": 1, "value": [0.86, 0.85, 0.85], "change": [np.nan, -0.017, -0.004],
                          "relative_change_pct": [np.nan, -1.9, -0.5], "p_value": [np.nan, 0.001, 0.03],
                          "q_value": [np.nan, 0.002, 0.06]})
    cells = sa.table1_layout(table, ["ru"], ["ar", "es"], [1])["tau=1"].to_dict()
    assert cells[("ru", "ar")].endswith("*") and not cells[("ru", "es")].endswith("*")   # p 0.03, q 0.06
    # a table without q (the paper's) is starred by p
    assert sa.table1_layout(table.drop(columns="q_value"), ["ru"], ["ar", "es"], [1])["tau=1"][("ru", "es")].endswith("*")


def test_threshold_claims_on_the_toy_grid(grid):
    setup, specs = grid
    pq = evidence.PerQuery(setup)
    points = sa.compare_to_reference(setup, specs, "target")
    tests = evidence.seed_mean_points(pq, points)
    table = claims.claims_table(evidence.threshold_claims(pq, points, tests))
    by_claim = table.set_index("claim")
    # tau=3 at the (one) size: en +0.01, de -0.01 -> per question ~0: not supported
    t3 = by_claim.loc["τ=3 at 8 instances beats the baseline"]
    assert t3["effect"] == pytest.approx(0.0, abs=1e-3) and t3["verdict"] == "not supported"
    # never reaching the baseline: de tau=3 is below it at its only size, significantly
    never = table[table["claim"].str.startswith("A poorly chosen τ never reaches")].iloc[0]
    assert "1 of 4 curves" in never["claim"] and "closest: de τ=3" in never["claim"]
    assert never["effect"] == pytest.approx(-0.01, abs=1e-3) and never["verdict"] == "supported"
    assert never["correction"] == "BH over the 4 curves"
    # en (high-resource in the paper) prefers tau>1: tau=3 (+0.01) against tau=1 (+0.005 mean)
    high = table[table["claim"].str.startswith("Higher-resource en")].iloc[0]
    assert high["effect"] == pytest.approx(0.005, abs=1e-3)
