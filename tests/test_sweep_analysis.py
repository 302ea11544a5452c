"""Tables of notebooks 03-05 from a store filled with hand-made per-query values."""
import numpy as np
import pandas as pd
import pytest
from test_run_store import fake_setup

from gradedrel.paths import DATA_DIR
from gradedrel.sweeps import analysis as sa
from gradedrel.sweeps.grid import BASELINE, RunSpec

QUERIES = {lang: [f"{lang}:q{i}" for i in range(6)] for lang in ("en", "de")}
NOISE = np.array([0.0, 0.01, -0.01, 0.02, -0.02, 0.0])


def per_query(level: dict) -> pd.DataFrame:
    """level[(query_lang, doc_lang)] = mean nDCG@10, spread over six queries."""
    rows = []
    for (q, d), mean in level.items():
        for qid, noise in zip(QUERIES[q], NOISE):
            rows.append((q, d, qid, "nDCG@10", mean + noise))
    return pd.DataFrame(rows, columns=["query_lang", "doc_lang", "query_id", "measure", "value"])


def put(setup, spec, level, positives=4):
    record = {"config_hash": setup.config_hash(spec), "steps": 2}
    if not spec.is_baseline:
        record["counts"] = {"instances": {lang: 8 for lang in spec.train_langs},
                            "positives": {lang: positives for lang in spec.train_langs}}
    setup.store.write_finished(record, per_query(level))


@pytest.fixture
def filled(tmp_path):
    setup = fake_setup(tmp_path)
    pairs = [("en", "en"), ("en", "de"), ("de", "de"), ("de", "en")]
    put(setup, BASELINE, {p: 0.5 for p in pairs})
    specs = {}
    for lang in ("en", "de"):
        for tau, shift in ((1, 0.10), (3, -0.05)):
            spec = RunSpec((lang,), tau, 8, annotator="A")
            put(setup, spec, {p: 0.5 + shift for p in pairs})
            specs[(lang, tau)] = spec
    alone = RunSpec(("en",), 1, 8, annotator="A", halves=("A",))
    put(setup, alone, {p: 0.60 for p in pairs})
    specs["alone"] = alone
    mix = RunSpec(("en", "de"), 1, 8, annotator="A", halves=("A", "B"))
    put(setup, mix, {p: 0.62 for p in pairs}, positives=4)
    specs["mix"] = mix
    return setup, specs


def test_points_against_the_baseline(filled):
    setup, specs = filled
    mono = [specs[(lang, tau)] for lang in ("en", "de") for tau in (1, 3)]
    points = sa.compare_to_reference(setup, mono, "target")
    assert len(points) == 4 and set(points["query_lang"]) == {"en", "de"}
    en1 = points[(points["target"] == "en") & (points["tau"] == 1)].iloc[0]
    assert en1["delta"] == pytest.approx(0.10, abs=1e-6)
    assert en1["reference"] == pytest.approx(0.5, abs=1e-6)
    assert en1["size_value"] == 8 and en1["n_positives"] == 4 and en1["n_queries"] == 6
    # every toy point differs from the baseline by a constant (up to float32 rounding), so
    # p is ~0, and q, BH's p * m / rank, stays ~0; the 95% interval is the delta itself
    assert (points["p_value"] < 1e-20).all() and (points["q_value"] < 1e-20).all()
    assert points["significant"].all()
    assert (points["ci_high"] - points["ci_low"] < 1e-5).all()
    best = sa.best_tau(points)
    assert best.set_index("target")["best_tau"].to_dict() == {"de": 1, "en": 1}
    check = sa.check_preferred_tau(best)
    assert check["target"].tolist() == ["en"] and not check["agrees"].iloc[0]  # en: paper says τ>1
    # a reference that is not in the store, or None, leaves the configuration out
    assert sa.compare_to_reference(setup, mono, "target", reference=lambda s: None).empty


def test_significant_means_bh_q_below_005_not_p(tmp_path):
    """Four runs against the baseline, with per-query differences made so that one run has
    p = 0.029 but, among four tests, BH's q = p * 4 / 2 = 0.059: it is not significant; a
    run with a near-constant difference (p ~ 4e-9) is. p, q and the 95% intervals are
    worked here with scipy (a 90% interval, or `significant` read from p, fails)."""
    from scipy import stats

    setup = fake_setup(tmp_path)
    base = 0.5 + NOISE
    diffs = {("en", 1): np.array([0.05, 0.051, 0.049, 0.05, 0.052, 0.048]),  # p ~ 4e-9
             ("en", 3): np.array([0.04, 0.01, 0.06, 0.0, 0.03, 0.02]),      # p ~ 0.03
             ("de", 1): np.array([0.03, -0.04, 0.05, -0.02, 0.01, -0.01]),  # p ~ 0.82
             ("de", 3): np.array([0.02, -0.05, 0.06, -0.06, 0.01, 0.0])}    # p ~ 0.86

    def frame(values):
        return pd.DataFrame([(lang, lang, qid, "nDCG@10", v) for lang in values
                             for qid, v in zip(QUERIES[lang], values[lang])],
                            columns=["query_lang", "doc_lang", "query_id", "measure", "value"])

    setup.store.write_finished({"config_hash": setup.config_hash(BASELINE), "steps": 0},
                               frame({"en": base, "de": base}))
    specs = {}
    for (lang, tau), d in diffs.items():
        spec = specs[(lang, tau)] = RunSpec((lang,), tau, 8, annotator="A")
        setup.store.write_finished({"config_hash": setup.config_hash(spec), "steps": 2},
                                   frame({lang: base + d}))
    points = sa.compare_to_reference(setup, list(specs.values()), "target")
    points = points.set_index([points["target"], points["tau"]])
    # by hand: two-sided one-sample t-tests of the differences (the store keeps float32),
    # then Benjamini-Hochberg over the four, q_(i) = min over j >= i of p_(j) * m / j
    stored = {k: ((base + d).astype(np.float32) - base.astype(np.float32)).astype(float)
              for k, d in diffs.items()}
    p = {k: stats.ttest_1samp(d, 0.0).pvalue for k, d in stored.items()}
    order = sorted(p, key=p.get)
    q, running = {}, 1.0
    for rank in range(len(order), 0, -1):
        running = min(running, p[order[rank - 1]] * len(order) / rank)
        q[order[rank - 1]] = running
    assert p[("en", 3)] < 0.05 <= q[("en", 3)] < 0.1          # the case the test is about
    assert p[("en", 1)] < 1e-6 and min(p[("de", 1)], p[("de", 3)]) > 0.5
    for key, d in stored.items():
        assert points.loc[key, "p_value"] == pytest.approx(p[key], rel=1e-3, abs=1e-12)
        assert points.loc[key, "q_value"] == pytest.approx(q[key], rel=1e-3, abs=1e-12)
        # the 95% Student-t interval of the mean difference, 5 degrees of freedom
        half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / np.sqrt(6)
        assert (points.loc[key, "ci_low"], points.loc[key, "ci_high"]) == (
            pytest.approx(d.mean() - half, abs=1e-7), pytest.approx(d.mean() + half, abs=1e-7))
    assert points["significant"].to_dict() == {("en", 1): True, ("en", 3): False,
                                               ("de", 1): False, ("de", 3): False}


def test_mixture_table_changes_against_the_target_alone(filled):
    setup, specs = filled
    table = sa.mixture_table(setup, [specs["alone"], specs["mix"]])
    alone = table[table["added"] == "-"].iloc[0]
    mixed = table[table["added"] == "de"].iloc[0]
    assert mixed["variant"] == "disjoint"
    assert mixed["ci_low"] < 0.02 < mixed["ci_high"]
    assert alone["value"] == pytest.approx(0.60, abs=1e-6)
    assert alone["zero_shot"] == pytest.approx(0.50, abs=1e-6)
    assert mixed["change"] == pytest.approx(0.02, abs=1e-6)
    assert mixed["relative_change_pct"] == pytest.approx(100 * 0.02 / 0.60, rel=1e-4)
    layout = sa.table1_layout(table, ["en"], ["en", "de"], [1])
    assert layout.loc[("en", "-"), "tau=1"] == "0.600"
    assert layout.loc[("en", "de"), "tau=1"].startswith("+0.020 (+3.3%)")
    paper = pd.DataFrame({"target": ["en"], "added": ["de"], "tau": [1], "value": [np.nan],
                          "change": [-0.01], "relative_change_pct": [-2.0]})
    both = sa.compare_table1(table, paper)
    assert both["same_sign"].tolist() == [False]


def test_relative_change_matrix_is_table2(filled):
    setup, specs = filled
    points = sa.crosslingual_points(setup, [specs[(lang, tau)] for lang in ("en", "de")
                                            for tau in (1, 3)])
    assert len(points) == 4 * 4
    rel = sa.relative_change_matrix(points, 1, 3, order=["en", "de"])
    assert rel.shape == (2, 2)
    assert rel.loc["en", "de"] == pytest.approx(100 * (0.45 - 0.60) / 0.60, rel=1e-4)
    paper = pd.DataFrame({"query_lang": ["en"], "doc_lang": ["en"], "relative_change_pct": [7.23]})
    both = sa.compare_table2(rel, paper)
    assert both["same_sign"].tolist() == [False]
    # a cell without both taus' models is not compared (nor counted)
    paper = pd.DataFrame({"query_lang": ["en", "de"], "doc_lang": ["en", "en"], "relative_change_pct": [7.2, 1.0]})
    assert sa.compare_table2(rel.assign(en=[rel.loc["en", "en"], np.nan]), paper)["query_lang"].tolist() == ["en"]
    assert sa.baseline_means(setup).loc["en", "de"] == pytest.approx(0.5, abs=1e-6)


def test_figures_draw(filled):
    import matplotlib
    matplotlib.use("Agg")
    from gradedrel.sweeps import plots as sp

    setup, specs = filled
    mono = [specs[(lang, tau)] for lang in ("en", "de") for tau in (1, 3)]
    baseline = sa.baseline_means(setup)
    fig = sp.threshold_curves(sa.compare_to_reference(setup, mono, "target"), baseline,
                              ["en", "de"], "test")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    points = sa.crosslingual_points(setup, mono)
    rel = sa.relative_change_matrix(points, 1, 3, order=["en", "de"])
    assert sp.relative_change_heatmap(rel, "test") is not None
    assert len(sp.pair_curves(points, baseline, ["en", "de"], "test").axes) == 1


def test_variant_contrast_sets_same_beside_disjoint(filled):
    setup, specs = filled
    same = RunSpec(("en", "de"), 1, 8, annotator="A", halves=("A", "A"))
    put(setup, same, {p: 0.65 for p in [("en", "en"), ("en", "de"), ("de", "de"), ("de", "en")]})
    table = sa.mixture_table(setup, [specs["alone"], specs["mix"], same])
    contrast = sa.variant_contrast(table).iloc[0]
    assert contrast["same"] == pytest.approx(0.05, abs=1e-6)
    assert contrast["disjoint"] == pytest.approx(0.02, abs=1e-6)
    assert contrast["same − disjoint"] == pytest.approx(0.03, abs=1e-6)
    layout = sa.table1_layout(table, ["en"], ["de"], [1], variant="same")
    assert layout.loc[("en", "de"), "tau=1"].startswith("+0.050")


def test_table1_layout_reads_the_papers_table_without_variants():
    paper = pd.read_csv(DATA_DIR / "paper" / "threshold_table1.csv")
    paper = paper[paper["target"].isin(["ar"]) & paper["added"].isin(["-", "ru"])]
    layout = sa.table1_layout(paper.assign(p_value=1.0), ["ar"], ["ru"], [1, 3])
    row = paper.set_index(["added", "tau"])
    assert layout.loc[("ar", "-"), "tau=1"] == f"{row.loc[('-', 1), 'value']:.3f}"
    assert layout.loc[("ar", "ru"), "tau=3"] == (f"{row.loc[('ru', 3), 'change']:+.3f} "
                                                  f"({row.loc[('ru', 3), 'relative_change_pct']:+.1f}%)")


def test_mixture_claims_on_a_hand_made_table():
    table = pd.DataFrame({
        "target": ["ar"] * 5, "added": ["-", "-", "ru", "ru", "es"], "variant": ["-", "-", "disjoint", "disjoint", "disjoint"],
        "tau": [1, 3, 1, 3, 1], "value": [0.6, 0.5, np.nan, np.nan, np.nan],
        "change": [np.nan, np.nan, 0.02, -0.03, 0.01]})
    claims = sa.mixture_claims(table).iloc[0]
    assert claims["best τ alone"] == 1 and claims["best τ to add"] == 1
    assert claims["change falls as τ rises"] and claims["additions that help"] == "2/3"
    from gradedrel.paths import DATA_DIR
    paper = sa.mixture_claims(pd.read_csv(DATA_DIR / "paper" / "threshold_table1.csv")).set_index("target")
    # the paper's Arabic: no addition helps, and more so as tau rises (its §5)
    assert paper.loc["ar", "additions that help"] == "0/12" and paper.loc["ar", "change falls as τ rises"]
    assert paper.loc["es", "additions that help"] == "12/12"


def test_size_trend_reads_the_papers_two_size_findings():
    points = pd.DataFrame({
        "annotator": "A", "target": "ar", "tau": [1, 1, 1, 3, 3, 3],
        "size_value": [250, 500, 1000] * 2, "mean": [0.5, 0.6, 0.7, 0.4, 0.45, 0.5],
        "delta": [-0.05, 0.02, 0.1, -0.2, -0.1, -0.01]})
    trend = sa.size_trend(points).set_index("tau")
    assert trend.loc[1, "dips_then_recovers"] and not trend.loc[1, "never_reaches_baseline"]
    assert trend.loc[3, "never_reaches_baseline"] and not trend.loc[3, "dips_then_recovers"]
    assert trend.loc[1, "delta_largest"] == pytest.approx(0.1)
    assert trend["improves_with_size"].all()


def test_seed_variance_only_where_several_seeds_ran():
    points = pd.DataFrame({
        "annotator": "A", "target": "en", "tau": 1, "size_value": [500, 500, 500, 1000],
        "seed": [0, 1, 2, 0], "mean": [0.60, 0.62, 0.64, 0.7], "delta": [0.01, 0.03, -0.01, 0.1],
        "ci_low": [-0.01, 0.0, -0.03, 0.08], "ci_high": [0.03, 0.06, 0.01, 0.12]})
    var = sa.seed_variance(points)
    assert len(var) == 1 and var["seeds"].iloc[0] == 3
    assert var["seed_sd"].iloc[0] == pytest.approx(0.02)
    assert var["seed_range"].iloc[0] == pytest.approx(0.04)
    assert var["query_ci_half_width"].iloc[0] == pytest.approx(0.03)
    assert var["delta_signs"].iloc[0] == "2+/1-"


def test_bh_q_values_by_hand():
    # sorted p: 0.01, 0.03, 0.04, 0.5 (m = 4); q_(i) = min over j >= i of p_(j) m / j:
    # 0.5 * 4/4 = 0.5; 0.04 * 4/3 = 0.0533; 0.03 * 4/2 = 0.06 -> 0.0533; 0.01 * 4/1 = 0.04
    q = sa.bh_q_values(np.array([0.01, 0.04, 0.03, 0.5]))
    assert q == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_findings_and_costs_say_what_the_tables_hold():
    points = pd.DataFrame({
        "annotator": "A", "target": "ar", "tau": [1, 1, 3, 3], "seed": 0,
        "size_value": [250, 2000, 250, 2000], "mean": [0.5, 0.7, 0.4, 0.45],
        "delta": [-0.05, 0.1, -0.2, -0.01], "significant": [False, True, True, False],
        "n_queries": 300})
    trend = sa.size_trend(points)
    check = sa.check_preferred_tau(sa.best_tau(points))
    lines = sa.threshold_findings(points, trend, check)
    assert lines[0].startswith("(1) Size, over 2 (language, τ) curves of 250-2000 instances: 2 start below")
    assert "1 start below and end above it" in lines[0]
    assert lines[1] == "(2) Never reaching the baseline at any size: 1 of 2 curves (ar τ=3)."
    assert lines[2] == "(3) The paper's resource-level rule holds for 1 of 1 shared languages here."
    one_tau = points[points["tau"] == 1]          # with one tau, "best" says nothing
    assert sa.check_preferred_tau(sa.best_tau(one_tau)).empty
    assert sa.threshold_findings(one_tau, sa.size_trend(one_tau), sa.check_preferred_tau(
        sa.best_tau(one_tau)))[2].startswith("(3) No language of this grid shared with the paper")
    assert lines[3].startswith("2 of 4 runs differ") and "25x smaller" in lines[4]
    records = pd.DataFrame({"label": ["b", "a"], "train_seconds": [None, 3600.0], "eval_seconds": [1800.0, 0.0],
                            "masked_negatives": [0, 5], "in_batch_negatives": [0, 100], "device": "cpu"})
    table, totals = sa.run_costs(records)
    assert table["label"].tolist() == ["a", "b"]
    assert totals == ["the grid: 2 runs, training 3,600 s + evaluation 1,800 s = 1.50 h of run time on cpu",
                      "known false negatives masked: 5 of 100 in-batch negatives (5.0%)"]


def test_difference_interval_is_the_textbook_paired_t_interval():
    """scipy.stats.ttest_rel's interval, checked against one worked by hand: differences
    0.2, 0.1, -0.2, 0.4, 0.3 on the five shared queries; mean 0.16, s^2 = 0.212 / 4 = 0.053,
    se = sqrt(0.053 / 5) = 0.1029563; t(0.975, 4) = 2.7764451, t(0.95, 4) = 2.1318468."""
    import warnings
    queries = ["q1", "q2", "q3", "q4", "q5"]
    a = pd.Series([0.5, 0.7, 0.2, 0.9, 0.4, 0.99], index=queries + ["only_in_a"])
    b = pd.Series([0.1, 0.5, 0.4, 0.6, 0.3, 0.0], index=queries[::-1] + ["only_in_b"])   # another order
    low, high = sa.difference_interval(a, b)
    assert low == pytest.approx(0.16 - 2.7764451052 * 0.1029563014, abs=1e-9)   # -0.1258525
    assert high == pytest.approx(0.16 + 2.7764451052 * 0.1029563014, abs=1e-9)  # 0.4458525
    low, high = sa.difference_interval(a, b, level=0.90)
    assert (low, high) == pytest.approx((0.16 - 0.2194871, 0.16 + 0.2194871), abs=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no precision-loss warning either
        assert sa.difference_interval(a, a - 0.25) == pytest.approx((0.25, 0.25))
    assert np.isnan(sa.difference_interval(a, pd.Series({"q1": 0.1}))).all()
