"""Issue 23's label sources: the noise simulation, B's pool and calibration, the stored ranked
lists and the relevance definitions they are scored against."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.annotation import pool_labels as pl
from gradedrel.retrieval import ranked_lists as rl
from gradedrel.sweeps import label_sources as ls
from gradedrel.sweeps.run_store import RunStore


# --- noise simulation -------------------------------------------------------------------

def test_confusion_matrix_worked_example():
    rubric = [0, 0, 1, 1, 1, 1, 2, 3, 3, 3]
    other = [0, 1, 1, 1, 2, 0, 2, 3, 1, 1]
    m = ls.confusion_matrix(rubric, other)
    np.testing.assert_allclose(m[0], [.5, .5, 0, 0])
    np.testing.assert_allclose(m[1], [.25, .5, .25, 0])
    np.testing.assert_allclose(m[2], [0, 0, 1, 0])
    np.testing.assert_allclose(m[3], [0, 2 / 3, 0, 1 / 3])
    with pytest.raises(ValueError, match=r"grade\(s\) \[2\]"):
        ls.confusion_matrix([0, 1, 3], [0, 1, 3])


def test_simulated_noise_reproduces_its_confusion_rates():
    matrix = np.array([[.7, .2, .1, 0], [.1, .6, .2, .1], [0, .3, .5, .2], [.05, .15, .3, .5]])
    n = 20000
    rows = pd.DataFrame({"query_id": [f"q{i}" for i in range(n)], "doc_id": "d", "lang": "xx",
                         "score": np.arange(n) % 4})
    noisy = ls.simulate_noise(rows, {"xx": matrix}, seed=1)
    got = ls.confusion_matrix(noisy.sort_values("query_id")["score"].pipe(
        lambda s: rows.set_index("query_id").loc[noisy["query_id"], "score"]), noisy["score"])
    # each rate within 4 binomial standard errors (5000 draws a row)
    se = np.sqrt(matrix * (1 - matrix) / (n / 4))
    assert np.all(np.abs(got - matrix) <= 4 * se + 1e-12), got
    # fixed seed: the same draw again, whatever order the rows come in
    again = ls.simulate_noise(rows.sample(frac=1, random_state=0), {"xx": matrix}, seed=1)
    pd.testing.assert_frame_equal(noisy, again)
    assert not noisy["score"].equals(ls.simulate_noise(rows, {"xx": matrix}, seed=2)["score"])
    with pytest.raises(ValueError, match="no confusion matrix"):
        ls.simulate_noise(rows.assign(lang="yy"), {"xx": matrix})


def test_identity_noise_changes_nothing():
    rows = pd.DataFrame({"query_id": list("abcd"), "doc_id": "d", "lang": "xx", "score": [3, 1, 0, 2]})
    assert ls.simulate_noise(rows, {"xx": np.eye(4)})["score"].tolist() == [3, 1, 0, 2]


# --- B's pool and calibration -------------------------------------------------------------

def _rubric_rows(langs=("en", "hi"), n=pl.POOL + pl.CALIBRATION + 15):
    return pd.DataFrame([{"query_id": f"{lang}:q{i}", "doc_id": f"{lang}:d{i}", "lang": lang,
                          "score": i % 4} for lang in langs for i in range(n)])


def test_work_items_calibration_first_then_each_pool_disjoint_and_in_grid_order():
    from gradedrel.training.pairs import _language_order
    rows = _rubric_rows()
    items = pl.work_items(rows, ("en", "hi"))
    roles = list(zip(items["role"], items["lang"]))
    first = [roles.index(k) for k in [("calibration", "en"), ("calibration", "hi"), ("pool", "en"), ("pool", "hi")]]
    assert first == sorted(first) and first[0] == 0
    assert (items["role"] == "calibration").sum() == 2 * pl.CALIBRATION
    for lang in ("en", "hi"):
        mine = items[items["lang"] == lang]
        pool, cal = mine[mine["role"] == "pool"], mine[mine["role"] == "calibration"]
        assert not set(pool["doc_id"]) & set(cal["doc_id"])
        # the pool is the grid's first POOL instances of seed 0's order
        assert pool["doc_id"].tolist() == _language_order(rows, lang, 0)["doc_id"].iloc[:pl.POOL].tolist()


def _b_table(rows, squeezed="hi"):
    """Pool and calibration rows with P(0..3): en's model ranks the rubric grade first; hi's
    squeezes every grade towards 1 (the argmax says 1; per-language offsets must undo it)."""
    items = pl.work_items(rows, ("en", "hi"))
    g = items["score"].to_numpy()
    probs = np.full((len(items), 4), 0.1)
    probs[np.arange(len(items)), g] = 0.7
    hi = (items["lang"] == squeezed).to_numpy() & (g != 1)
    probs[hi] = 0.1
    probs[hi, 1] = 0.45
    probs[np.flatnonzero(hi), g[hi]] = 0.35
    return items.assign(rubric=g, **{f"p{k}": probs[:, k] for k in range(4)})


def test_calibrated_grades_fit_each_language_on_its_calibration_rows():
    table = _b_table(_rubric_rows())
    out = pl.calibrated_grades(table)
    assert set(out["role"]) == {"pool"}
    assert (out["score"] == out["rubric"]).all()                # offsets undo hi's squeeze
    hi = out[out["lang"] == "hi"]
    assert (hi["score_raw"] == 1).all() and set(hi["rubric"]) == {0, 1, 2, 3}   # the raw argmax
    offsets = pl.fit_language_offsets(table)
    assert offsets["en"] == (0.0, 0.0, 0.0, 0.0) and offsets["hi"] != offsets["en"]
    with pytest.raises(ValueError, match=r"no calibration offsets for \['hi'\]"):
        pl.calibrated_grades(table[~((table["lang"] == "hi") & (table["role"] == "calibration"))])
    assert pl.complete_languages(table) == ["en", "hi"]
    assert pl.complete_languages(table.iloc[1:]) == ["hi"]


def test_sources_share_instances_and_enter_only_complete_languages():
    rows = _rubric_rows()
    table = _b_table(rows)
    partial = table[~((table["lang"] == "hi") & (table["position"] == 5))]
    out = ls.sources(rows, partial, ["en", "hi"])
    assert set(out) == {"A", "A_Bnoise", "B_fast"}
    assert set(out["B_fast"]["lang"]) == {"en"} == set(out["A_Bnoise"]["lang"])
    a_en = out["A"][out["A"]["lang"] == "en"]
    for key in ("A_Bnoise", "B_fast"):
        assert sorted(out[key]["doc_id"]) == sorted(a_en["doc_id"])
    # B agrees with the rubric here, so its confusion is the identity and so is the noise
    merged = out["A_Bnoise"].merge(a_en, on=["query_id", "doc_id"])
    assert (merged["score_x"] == merged["score_y"]).all()
    assert set(ls.sources(rows, None, ["en", "hi"])) == {"A"}


# --- ranked lists and relevance definitions ---------------------------------------------

def _xquad_like():
    corpus = pd.DataFrame({"doc_id": [f"de:a01p{p}s{s}" for p, s in [(0, 0), (0, 1), (1, 0), (1, 1)]]
                           + ["de:a02p0s0"],
                           "lang": "de", "group": ["A1"] * 4 + ["A2"]})
    corpus["base_id"] = corpus["doc_id"].str.split(":").str[1]
    queries = pd.DataFrame({"query_id": ["en:q1"], "gold_doc_id": ["en:a01p1s0"], "group": ["A1"]})
    return queries, corpus


def test_qrels_kinds_on_a_hand_made_article():
    queries, corpus = _xquad_like()
    assert rl.qrels_for(queries, corpus, "de", "sentence") == {"en:q1": {"de:a01p1s0": 1}}
    assert rl.qrels_for(queries, corpus, "de", "paragraph") == {"en:q1": {"de:a01p1s0": 1, "de:a01p1s1": 1}}
    assert rl.qrels_for(queries, corpus, "de", "graded") == {
        "en:q1": {"de:a01p0s0": 1, "de:a01p0s1": 1, "de:a01p1s0": 3, "de:a01p1s1": 2}}
    with pytest.raises(ValueError, match="qrels kind"):
        rl.qrels_for(queries, corpus, "de", "article")


def test_evaluate_ranked_worked_values():
    queries, corpus = _xquad_like()
    # ranking: same-paragraph sentence, other article, answer sentence, same-article sentence
    run = {"en:q1": {"de:a01p1s1": 4.0, "de:a02p0s0": 3.0, "de:a01p1s0": 2.0, "de:a01p0s0": 1.0}}
    frame = rl.ranked_frame(run, "en", "de")
    assert frame["rank"].tolist() == [1, 2, 3, 4]
    assert rl.run_of(frame) == {"en:q1": {"de:a01p1s1": -1.0, "de:a02p0s0": -2.0,
                                          "de:a01p1s0": -3.0, "de:a01p0s0": -4.0}}
    got = rl.evaluate_ranked(frame, queries, corpus).set_index("qrels")["value"]
    log2 = np.log2
    assert got["sentence"] == pytest.approx(1 / log2(4))
    assert got["paragraph"] == pytest.approx((1 + 1 / log2(4)) / (1 + 1 / log2(3)))
    dcg = 2 + 3 / log2(4) + 1 / log2(5)
    ideal = 3 + 2 / log2(3) + 1 / log2(4) + 1 / log2(5)
    assert got["graded"] == pytest.approx(dcg / ideal)


def test_run_store_keeps_ranked_lists_beside_metrics(tmp_path):
    store = RunStore(tmp_path)
    per_query = pd.DataFrame({"query_lang": ["en"], "doc_lang": ["en"], "query_id": ["q"],
                              "measure": ["nDCG@10"], "value": [1.0]})
    ranked = rl.ranked_frame({"q": {"d1": 1.0, "d2": 2.0}}, "en", "en")
    assert store.write_finished({"config_hash": "h1"}, per_query, ranked=ranked)
    assert store.ranked("h1")[["doc_id", "rank"]].values.tolist() == [["d2", 1], ["d1", 2]]
    assert store.write_finished({"config_hash": "h2"}, per_query)
    with pytest.raises(KeyError, match="no ranked lists"):
        store.ranked("h2")


# --- the tables from stored ranked lists ---------------------------------------------------

def test_label_tables_from_a_store_of_hand_made_rankings(tmp_path):
    """Three taus and a baseline on 40 questions: tau=3 ranks the answer sentence first,
    tau=1 its paragraph neighbour first (answer second), the baseline the answer third, tau=2
    as the baseline. Under "sentence" tau=3 is best and beats the baseline, tau=2 differs in one question only; under
    "paragraph" tau=1 and tau=3 tie (both put the two paragraph sentences on top)."""
    from types import SimpleNamespace

    from gradedrel.sweeps import label_tables as lt
    n = 40
    corpus = pd.DataFrame([{"doc_id": f"en:a{i:02d}p{p}s{s}", "base_id": f"a{i:02d}p{p}s{s}", "lang": "en",
                            "group": f"A{i}"} for i in range(n) for p in (0, 1) for s in (0, 1)])
    queries = pd.DataFrame({"query_id": [f"en:q{i}" for i in range(n)],
                            "gold_doc_id": [f"en:a{i:02d}p0s0" for i in range(n)],
                            "group": [f"A{i}" for i in range(n)]})
    orders = {  # per run: the order of (p0s0 answer, p0s1 paragraph, p1s0 article, p1s1 article)
        "baseline": ["p1s0", "p1s1", "p0s0", "p0s1"], 1: ["p0s1", "p0s0", "p1s0", "p1s1"],
        2: ["p1s0", "p1s1", "p0s0", "p0s1"], 3: ["p0s0", "p0s1", "p1s0", "p1s1"]}
    store = RunStore(tmp_path)
    dummy = pd.DataFrame({"query_lang": ["en"], "doc_lang": ["en"], "query_id": ["x"],
                          "measure": ["nDCG@10"], "value": [0.0]})
    for key, order in orders.items():
        run = {f"en:q{i}": {f"en:a{i:02d}{o}": float(10 - r) for r, o in enumerate(order)} for i in range(n)}
        ranked = rl.ranked_frame(run, "en", "en")
        record = ({"config_hash": "base", "kind": "baseline"} if key == "baseline" else
                  {"config_hash": f"t{key}", "kind": "finetune", "train_langs": ["en"], "annotator": "A",
                   "tau": key, "size": 100, "seed": 0})
        store.write_finished(record, dummy, ranked=ranked)
    values = lt.per_query(store, SimpleNamespace(queries=queries, corpus=corpus), ["en"])
    assert set(values["qrels"]) == {"sentence", "graded", "paragraph"}
    # perturb one question per run so that differences are not constant (t tests need spread)
    values.loc[(values["query_id"] == "en:q0") & (values["source"] != "baseline"), "value"] -= 0.01
    pts = lt.points(values)
    sent = pts[pts["evaluation"] == "sentence"].set_index("tau")
    assert sent.loc[3, "mean"] == pytest.approx(1 - 0.01 / n)
    assert sent.loc[3, "baseline"] == pytest.approx(0.5)
    assert sent.loc[3, "verdict"] == lt.BEATS and sent.loc[2, "verdict"] == lt.SAME
    best = lt.best_tau(values, pts).set_index("evaluation")
    assert best.loc["sentence", "best_tau"] == 3 and best.loc["sentence", "runner_up_tau"] == 1
    assert bool(best.loc["sentence", "tau_distinguished"])
    assert best.loc["sentence", "reading"] == "best"
    assert best.loc["paragraph", "best_minus_runner_up"] == pytest.approx(0)
    assert not bool(best.loc["paragraph", "tau_distinguished"])
    assert lt.verdict(-0.1, 0.2) == lt.SAME
    # the same store through the writer the `table` command calls: every table, and the claims
    # with the size findings (untestable across sizes: one size here) and no seed rows (no seed 1)
    from gradedrel.sweeps import grid
    setup = SimpleNamespace(store=store, eval_collection=SimpleNamespace(queries=queries, corpus=corpus),
                            config_hash=lambda spec: "base" if spec is grid.BASELINE else spec)
    out = tmp_path / "tables"
    tables = ls.write_tables(setup, ["en"], ["t1", "t2", "t3"], folder=out)
    assert {p.name for p in out.iterdir()} == {
        "label_source_per_query.parquet", "label_source_points.csv", "label_source_best_tau.csv",
        "label_source_claims.csv", "label_source_seed_runs.csv", "label_source_seed_tau.csv"}
    written = pd.read_csv(out / "label_source_claims.csv")
    assert len(written) == len(tables["claims"]) and set(written["size"]) == {100}
    growth = written[written["claim"].str.contains("the runs gain")]
    assert len(growth) == 9 and (growth["verdict"] == "untestable here").all()
    assert not written["claim"].str.contains("mean of seeds").any() and tables["seed_runs"].empty


def test_label_source_figure_draws_without_overlaps():
    import matplotlib
    matplotlib.use("Agg")
    from gradedrel.figure_check import text_overlaps
    from gradedrel.sweeps import label_plots
    rows = [dict(source=s, lang=lang, tau=t, size=250, seed=0, objective="infonce", evaluation=e, n=289,
                 delta=0.01 * t - 0.02, ci_low=0.01 * t - 0.03, ci_high=0.01 * t - 0.01, q=0.01 if t == 3 else 0.5)
            for s in label_plots.SOURCE_STYLE for lang in ("en", "hi") for t in (1, 2, 3)
            for e in label_plots.EVALUATIONS]
    pts = pd.DataFrame(rows)
    graded = pts[pts["tau"] == 3].assign(objective="kl")
    assert len(label_plots.tau_by_source(pts, 250, ["en"], graded=graded.assign(size=1000)).axes[0].get_xticks()) == 3
    fig = label_plots.tau_by_source(pts, 250, ["en", "es", "hi"], graded=graded)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6        # es has no runs: no column
    assert "n=289" in fig.axes[0].get_title()
    assert text_overlaps(fig) == []


def test_label_source_claims_on_made_up_per_question_values():
    """English gains 0.2 from tau=3 over tau=1, Hindi 0.05 (questions parallel across the two):
    tau=3 > tau=1 is supported (0.125), the resource claim too (-0.15); the noise-structure
    claim is untestable without B runs; B - noise = -0.1 once they exist."""
    from gradedrel.claims import SUPPORTED, UNTESTABLE, claims_table
    from gradedrel.sweeps import label_tables as lt
    rng = np.random.default_rng(0)
    n = 60
    rows = []
    for lang, gain in (("en", 0.2), ("hi", 0.05)):
        base = rng.uniform(0.3, 0.6, n)
        for tau in (1, 3):
            for evaluation in lt.EVALUATIONS:
                value = base + (gain if tau == 3 else 0) + rng.normal(0, 0.01, n)
                rows += [dict(source="A", lang=lang, tau=tau, size=250, seed=0, objective="infonce",
                              qrels=evaluation, query_id=f"{lang}:q{i}", value=v) for i, v in enumerate(value)]
    values = pd.DataFrame(rows)
    table = claims_table(lt.claims_rows(values, 250, langs=("en", "hi"))).set_index("claim")
    tau_row = table.loc["rubric labels, sentence relevance: τ=3 trains better than τ=1 (250 instances)"]
    assert tau_row["effect"] == pytest.approx(0.125, abs=0.005) and tau_row["verdict"] == SUPPORTED
    assert tau_row["n"] == n
    resource = table.loc["rubric labels, graded relevance: hi (low resource) gains less from τ=3 over τ=1 "
                         "than en (high resource) (250 instances)"]
    assert resource["effect"] == pytest.approx(-0.15, abs=0.005) and resource["verdict"] == SUPPORTED
    noise = table.loc["sentence relevance: B's own errors cost more than the same rates of random errors"]
    assert noise["verdict"] == UNTESTABLE
    b = values.assign(source="B_fast", value=values["value"] - 0.1)
    sim = values.assign(source="A_Bnoise")
    table = claims_table(lt.claims_rows(pd.concat([values, b, sim]), 250, langs=("en", "hi"))).set_index("claim")
    noise = table.loc["sentence relevance: B's own errors cost more than the same rates of random errors"]
    assert noise["effect"] == pytest.approx(-0.1) and noise["verdict"] == SUPPORTED
    graded = ("rubric labels, graded relevance: KL + InfoNCE over graded candidates beats hard τ=3 on the "
              "same data (250 instances)")
    assert graded not in table.index                     # no graded-aware run at this size: no rows
    # a graded-aware run: 0.03 above tau=3 in English, Hindi without one (left out of the mean)
    kl = values[(values["tau"] == 3) & (values["lang"] == "en")].assign(
        objective="kl+infonce", value=lambda v: v["value"] + 0.03 + rng.normal(0, 0.005, len(v)))
    table = claims_table(lt.claims_rows(pd.concat([values, kl]), 250, langs=("en", "hi"))).set_index("claim")
    row = table.loc[graded]
    assert row["effect"] == pytest.approx(0.03, abs=0.003) and row["verdict"] == SUPPORTED
    assert row["test"].endswith("mean of en")
    versus_1 = table.loc[graded.replace("hard τ=3", "hard τ=1")]
    assert versus_1["effect"] == pytest.approx(0.23, abs=0.006)        # en's tau=3 gain 0.2 + 0.03


def test_baseline_table_means_per_language_and_evaluation():
    from gradedrel.sweeps import label_tables as lt
    values = pd.DataFrame({"source": ["baseline"] * 4 + ["A"], "lang": ["en", "en", "en", "hi", "en"],
                           "qrels": ["sentence", "sentence", "graded", "sentence", "sentence"],
                           "value": [1.0, 0.5, 0.2, 0.4, 0.0]})
    got = lt.baseline_table(values).set_index(["lang", "evaluation"])
    assert got.loc[("en", "sentence"), "mean"] == 0.75 and got.loc[("en", "sentence"), "n"] == 2
    assert got.loc[("hi", "sentence"), "mean"] == 0.4 and len(got) == 3


def test_headline_rows_at_the_largest_size_covering_every_language():
    from gradedrel.claims import COLUMNS, claims_table
    from gradedrel.sweeps import label_tables as lt

    def table(size, langs):
        rows = []
        for source, name in lt.SOURCE_NAMES.items():
            for evaluation in lt.EVALUATIONS:
                rows.append(dict(claim=f"{name} labels, {evaluation} relevance: τ=3 trains better than τ=1 ({size} instances)",
                                 test=f"paired t over questions, mean of {', '.join(langs)}", n=9, effect=0.1,
                                 ci_low=0.05, ci_high=0.15, p=0.01, correction="none", q=0.01, verdict="supported"))
                rows.append(dict(claim=f"{name} labels, {evaluation} relevance: hi (low resource) gains less from "
                                       f"τ=3 over τ=1 than en (high resource) ({size} instances)", test="t", n=9,
                                 effect=-0.1, ci_low=-0.15, ci_high=-0.05, p=0.01, correction="none", q=0.01,
                                 verdict="supported" if "hi" in langs else "untestable here"))
                if size == 1000 and source != "A_Bnoise":
                    rows.append(dict(claim=f"{name} labels, {evaluation} relevance: KL + InfoNCE over graded candidates "
                                           f"beats hard τ=3 on the same data ({size} instances)", test="t", n=9,
                                     effect=0.1, ci_low=0.05, ci_high=0.15, p=0.01, correction="none", q=0.01,
                                     verdict="supported"))
        return pd.DataFrame(rows).assign(size=size)
    both = pd.concat([table(250, ["en", "es", "ar", "hi"]), table(1000, ["en", "hi"])])
    got = lt.headline(both)
    assert list(got.columns) == COLUMNS and len(got) == 7          # no size-finding row in this table
    assert got["claim"].str.contains("(250 instances)", regex=False).iloc[:4].all()   # not every language at 1000
    assert got["claim"].iloc[1].startswith("rubric labels, graded")
    assert got["claim"].iloc[3].startswith("B labels, graded")
    assert got["claim"].iloc[4].startswith("B labels, sentence relevance: hi")
    assert got["claim"].iloc[4].endswith("(1000 instances)")                           # testable at 1000: there
    assert got["claim"].iloc[5:].str.contains("KL + InfoNCE", regex=False).all()
    without_hi = lt.headline(pd.concat([table(250, ["en", "es", "ar", "hi"]), table(1000, ["en", "es"])]))
    assert without_hi["claim"].iloc[4].endswith("(250 instances)")                     # untestable at 1000
    full = lt.headline(pd.concat([table(250, ["en", "es", "ar", "hi"]), table(1000, ["en", "es", "ar", "hi"])]))
    assert len(full) == 7 and full["claim"].iloc[0].endswith("(1000 instances)")
    below = dict(claim="B labels, sentence relevance: at 250 instances training falls below the baseline",
                 test="t", n=9, effect=-0.1, ci_low=-0.15, ci_high=-0.05, p=0.01, correction="none", q=0.01,
                 verdict="supported", size=1000)
    with_size = lt.headline(pd.concat([table(250, ["en", "es", "ar", "hi"]), pd.DataFrame([below])]))
    assert len(with_size) == 6 and with_size["claim"].iloc[-1] == below["claim"]


def test_a_claimed_configuration_is_not_taken_twice_and_a_dead_claim_is_taken_over(tmp_path):
    """Two `run` processes on one store: the second cannot claim what the first holds; a claim
    left by a process that has exited (and an abandoned empty one) is taken over."""
    import os
    import subprocess
    import sys

    from gradedrel.sweeps import label_sources as ls

    folder = tmp_path / ".claims"
    assert ls.claim(folder, "aaaa")
    assert not ls.claim(folder, "aaaa")                 # held by a live process (this one)
    ls.release(folder, "aaaa")
    assert ls.claim(folder, "aaaa")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (folder / "bbbb.pid").write_text(gone)
    assert ls.claim(folder, "bbbb")                     # its process has exited
    assert (folder / "bbbb.pid").read_text() == str(os.getpid())
    (folder / "cccc.pid").write_text("")
    assert not ls.claim(folder, "cccc")                 # being written by someone
    assert ls.claim(folder, "cccc", young_seconds=0.0)  # abandoned
    (folder / "dddd.pid").write_text("1")               # another user's live process (init)
    assert not ls.claim(folder, "dddd")
    ls.release(folder, "dddd")                          # not ours: left alone
    assert (folder / "dddd.pid").exists()
