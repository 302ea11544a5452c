"""The recipe probe (sweeps/recipes.py): its variants' hashes beside the committed xquad
grid's, a store that reads the grid's runs and never writes them, resuming, and the table's
verdict rule and choice on hand-made per-query values."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import needs_xquad, needs_xquad_r
from test_run_store import fake_setup

from gradedrel.config import profile_config
from gradedrel.sweeps import grid
from gradedrel.sweeps import recipes as rp
from gradedrel.sweeps.run_store import RunStore

# configurations of the committed xquad store (data/results/xquad/finetune/runs.jsonl)
COMMITTED = {"baseline": "825cf8b71793c123",
             ("en", 3, 2000): "70624aa28ff5fac3", ("ar", 3, 2000): "48f28e3d4fab8fc4",
             ("en", 2, 2000): "fb82f037f2cc9d58", ("ar", 1, 2000): "bc52cc00c3752f05"}


@needs_xquad
@needs_xquad_r
def test_variants_have_their_own_hashes_and_the_grid_keeps_its_own(capsys):
    xquad = profile_config("xquad")
    grid_store = RunStore(grid.store_folder("xquad"))
    before = grid_store.index.read_bytes()
    grid_setup = grid.prepare_sweep(xquad, grid_store, build_checkpoint=False)
    # the xquad profile's hashes are those its committed runs were stored under
    assert grid_setup.config_hash(grid.BASELINE) == COMMITTED["baseline"]
    for spec in grid.study_grid(xquad, "03"):
        if (spec.target, spec.tau, spec.size) in COMMITTED and spec.seed == 0:
            assert grid_setup.config_hash(spec) == COMMITTED[(spec.target, spec.tau, spec.size)]
    specs = list(dict.fromkeys(s for part in grid.STUDY_PARTS for s in grid.study_grid(xquad, part)))
    assert len(specs) == 128
    assert all(grid_store.is_finished(grid_setup.config_hash(s)) for s in specs)

    cfg = profile_config(rp.PROFILE)
    store = rp.probe_store(cfg)
    assert store.folder == grid.store_folder(rp.PROFILE) != grid_store.folder
    assert store.reference.folder == grid_store.folder
    base = grid.prepare_sweep(cfg, store, build_checkpoint=False)
    assert base.config_hash(grid.BASELINE) == COMMITTED["baseline"]      # the same evaluation
    hashes = {}
    for variant in rp.VARIANTS:
        setup = rp.variant_setup(base, cfg, variant)
        for spec in rp.variant_specs(cfg, variant):
            assert spec.tau == 3 and spec.seed == 0
            hashes[(variant.name, spec.target)] = h = setup.config_hash(spec)
            recipe = setup.spec_dict(spec)["recipe"]
            assert recipe["learning_rate"] == variant.recipe.get("finetune_lr", 1e-5)
            assert recipe["epochs"] == variant.recipe.get("finetune_epochs", 2)
            # the control is the grid's own run; no other variant is in the grid's store
            assert grid_store.is_finished(h) == (variant.name == "control")
            assert store.is_finished(h) == (variant.name == "control" or store._own(h))
    assert len(hashes) == 2 * len(rp.VARIANTS) == len(set(hashes.values()))
    assert hashes[("control", "en")] == COMMITTED[("en", 3, 2000)]
    assert hashes[("control", "ar")] == COMMITTED[("ar", 3, 2000)]
    probe = {n: rp.variant_specs(cfg, v)[0] for v in rp.VARIANTS for n in [v.name]}
    assert probe["pool-all"].size == "all" and probe["hardneg"].hard_negatives
    assert probe["lr1e-4"].size == 2000 and not probe["lr1e-4"].hard_negatives
    # the dry run lists them, and where each one is
    assert rp.main(["run", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("finished in the grid's store") == 2 and COMMITTED["baseline"] in listed
    if not store.folder.exists():         # a probe that has not started: all ten to run
        assert listed.count(": to run") == 2 * (len(rp.VARIANTS) - 1)
    assert grid_store.index.read_bytes() == before


def frame(values: dict) -> pd.DataFrame:
    """values[lang] = per-query nDCG@10 of that language's own pair."""
    return pd.DataFrame([(lang, lang, f"{lang}:q{i}", "nDCG@10", v)
                         for lang, vs in values.items() for i, v in enumerate(vs)],
                        columns=["query_lang", "doc_lang", "query_id", "measure", "value"])


def test_read_through_store_reads_the_reference_and_writes_only_its_own(tmp_path):
    reference = RunStore(tmp_path / "grid")
    reference.write_finished({"config_hash": "base", "steps": 0}, frame({"en": [0.5, 0.6]}))
    reference.write_failed({"config_hash": "broken"}, error="boom")
    before = reference.index.read_bytes()
    store = rp.ReadThroughStore(tmp_path / "probe", reference)
    assert store.is_finished("base") and not store._own("base") and not store.is_finished("broken")
    assert store.per_query("base")["value"].tolist() == pytest.approx([0.5, 0.6])
    assert store.latest()["base"]["status"] == "finished" and "broken" not in store.latest()
    assert not store.write_finished({"config_hash": "base"}, frame({"en": [0.0, 0.0]}))
    assert not store.write_failed({"config_hash": "base"}, error="late")
    assert store.write_finished({"config_hash": "new", "steps": 2}, frame({"en": [0.7, 0.8]}))
    assert store._own("new") and not reference.is_finished("new")
    assert store.per_query("new")["value"].tolist() == pytest.approx([0.7, 0.8])
    assert reference.index.read_bytes() == before
    assert sorted(p.name for p in reference.per_query_dir.iterdir()) == ["base.parquet"]


def toy_rows(langs=("en", "ar"), queries=10) -> pd.DataFrame:
    """Graded rows: per question two grade-3 sentences, one 1, two 0 (below tau=3)."""
    return pd.DataFrame([(f"{lang}:q{i}", f"{lang}:d{i}-{j}", lang, score)
                         for lang in langs for i in range(queries)
                         for j, score in enumerate((3, 3, 1, 0, 0))],
                        columns=["query_id", "doc_id", "lang", "score"])


def toy_probe(tmp_path):
    """The xquad-recipes profile at 20 instances on toy rows; a grid store that holds the
    baseline and the control."""
    cfg = {**profile_config(rp.PROFILE), "finetune_sizes": [20]}
    rows = toy_rows()
    docs = pd.Series({d: d.split("-")[0] for d in rows["doc_id"]})   # an article a question
    base = dataclasses.replace(fake_setup(tmp_path), annotations={"A": rows}, doc_group=docs,
                               store=rp.ReadThroughStore(tmp_path / "probe", RunStore(tmp_path / "grid")))
    control = rp.variant_setup(base, cfg, rp.VARIANTS[0])
    for spec in [grid.BASELINE, *rp.variant_specs(cfg, rp.VARIANTS[0])]:
        base.store.reference.write_finished({"config_hash": control.config_hash(spec)},
                                            frame({"en": [0.5, 0.5]}))
    return cfg, base


def test_run_probe_runs_each_variant_once_and_resumes(tmp_path, monkeypatch):
    cfg, base = toy_probe(tmp_path)
    before = base.store.reference.index.read_bytes()
    calls = []

    def fake_run(setup, spec):
        calls.append((setup.recipe.learning_rate, setup.recipe.epochs, spec))
        rows, _ = setup.training_rows(spec)
        return {"config_hash": setup.config_hash(spec), "seconds": 0.1, "n_pairs": len(rows)}, frame({"en": [0.6]})

    monkeypatch.setattr(grid, "run_one", fake_run)
    log = rp.run_probe(cfg, base, log=lambda *_: None)
    # every variant but the control (read from the grid's store), each language once
    assert len(calls) == 2 * (len(rp.VARIANTS) - 1)
    assert not any(spec.is_baseline for *_, spec in calls)
    assert {(lr, ep) for lr, ep, _ in calls} == {(1e-5, 2), (3e-5, 2), (1e-4, 2), (1e-5, 4)}
    assert sum(spec.size == "all" for *_, spec in calls) == 2
    assert sum(spec.hard_negatives for *_, spec in calls) == 2
    assert log["status"].str.startswith("finished").sum() == len(calls)
    assert (log[log["recipe"] == "control"]["status"] == "skipped (finished)").all()
    assert base.store.reference.index.read_bytes() == before
    # resumable: a second call runs nothing
    again = rp.run_probe(cfg, base, log=lambda *_: None)
    assert len(calls) == 2 * (len(rp.VARIANTS) - 1)
    assert again["status"].eq("skipped (finished)").all()


def test_verdict_rule():
    assert rp.verdict(0.01, 0.01) == "beats the baseline"
    assert rp.verdict(-0.01, 0.049) == "hurts"
    assert rp.verdict(0.05, 0.05) == rp.verdict(-0.05, 0.2) == "no significant difference"
    assert rp.verdict(0.0, 0.001) == rp.verdict(0.01, float("nan")) == "no significant difference"


NOISE = np.array([0.0, 0.01, -0.01, 0.02, -0.02, 0.0, 0.015, -0.015])
BASE = 0.6 + NOISE
FLAT = np.array([0.03, -0.04, 0.05, -0.02, 0.01, -0.01, -0.03, 0.01])   # mean 0: p ~ 1


def fill(setup, cfg, changes: dict):
    """changes[(variant, lang)] = per-query differences from the baseline."""
    setup.store.reference.write_finished({"config_hash": setup.config_hash(grid.BASELINE)},
                                         frame({"en": BASE, "ar": BASE}))
    for variant in rp.VARIANTS:
        vs = rp.variant_setup(setup, cfg, variant)
        for spec in rp.variant_specs(cfg, variant):
            if (variant.name, spec.target) in changes:
                vs.store.write_finished(
                    {"config_hash": vs.config_hash(spec), "n_pairs": 400, "steps": 28,
                     "train_seconds": 300.0, "counts": {"instances": {spec.target: 2000}}},
                    frame({spec.target: BASE + changes[(variant.name, spec.target)]}))


def test_table_and_choice_on_hand_made_runs(tmp_path):
    cfg = profile_config(rp.PROFILE)
    setup = dataclasses.replace(fake_setup(tmp_path),
                                store=rp.ReadThroughStore(tmp_path / "probe", RunStore(tmp_path / "grid")))
    fill(setup, cfg, {("control", "en"): FLAT, ("control", "ar"): FLAT,
                      ("lr3e-5", "en"): 0.05 + FLAT / 10, ("lr3e-5", "ar"): 0.04 + FLAT / 10,
                      ("lr1e-4", "en"): -0.10 + FLAT / 10, ("lr1e-4", "ar"): -0.08 + FLAT / 10,
                      ("epochs4", "en"): 0.08 + FLAT / 10, ("epochs4", "ar"): -0.05 + FLAT / 10,
                      ("hardneg", "en"): 0.02 + FLAT / 10, ("hardneg", "ar"): FLAT})
    table = rp.recipe_table(cfg, setup).set_index(["recipe", "language"])
    assert len(table) == 2 * len(rp.VARIANTS)
    assert table["verdict"].to_dict() == {
        ("control", "en"): "no significant difference", ("control", "ar"): "no significant difference",
        ("lr3e-5", "en"): "beats the baseline", ("lr3e-5", "ar"): "beats the baseline",
        ("lr1e-4", "en"): "hurts", ("lr1e-4", "ar"): "hurts",
        ("epochs4", "en"): "beats the baseline", ("epochs4", "ar"): "hurts",
        ("pool-all", "en"): "not run yet", ("pool-all", "ar"): "not run yet",
        ("hardneg", "en"): "beats the baseline", ("hardneg", "ar"): "no significant difference"}
    row = table.loc[("lr3e-5", "en")]
    assert row["delta"] == pytest.approx(0.05, abs=1e-5) and row["n_questions"] == len(BASE)
    assert row["ci_low"] < 0.05 < row["ci_high"] and row["mean"] == pytest.approx(0.65, abs=1e-5)
    assert row["learning_rate"] == 3e-5 and row["train_seconds"] == 300.0 and row["n_pairs"] == 400
    assert table.loc[("epochs4", "en"), "epochs"] == 4
    # q: Benjamini-Hochberg over the ten finished rows, not over each recipe's two
    done = table[table["verdict"] != "not run yet"]
    assert done["q_value"].to_numpy() == pytest.approx(
        rp.bh_q_values(done["p_value"].to_numpy()), rel=1e-9)
    assert table.loc[("pool-all", "en"), ["q_value", "mean"]].isna().all()
    assert ((done["q_value"] >= done["p_value"] - 1e-15)).all()
    name, why = rp.choose_recipe(table.reset_index())
    assert name == "lr3e-5" and "beats the baseline in 2 of 2" in why

    # none that beats without hurting: the one that hurts least is kept, said plainly
    other = dataclasses.replace(fake_setup(tmp_path / "b"), store=rp.ReadThroughStore(
        tmp_path / "b" / "probe", RunStore(tmp_path / "b" / "grid")))
    fill(other, cfg, {(v.name, lang): -0.01 * (i + 1) + FLAT / 10
                      for i, v in enumerate(rp.VARIANTS) for lang in ("en", "ar")})
    table = rp.recipe_table(cfg, other)
    assert set(table["verdict"]) == {"hurts"}
    name, why = rp.choose_recipe(table)
    assert name == "control" and why.startswith("no recipe beats the baseline")
