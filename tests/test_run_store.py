"""The fine-tuning result store and a sweep's skip / resume / failure handling."""
import pandas as pd
import pytest

from gradedrel.jsonl_log import CorruptLogError
from gradedrel.sweeps import grid as sweep
from gradedrel.sweeps.grid import BASELINE, RunSpec, SweepSetup
from gradedrel.sweeps.run_store import RunStore
from gradedrel.training.finetune import Recipe


def per_query(value=0.5):
    return pd.DataFrame({"query_lang": "en", "doc_lang": "en", "query_id": ["en:q1", "en:q2"],
                         "measure": "nDCG@10", "value": [value, 1.0]})


def test_store_finished_failed_latest_wins(tmp_path):
    store = RunStore(tmp_path / "store")
    assert store.status("h1") is None and store.records().empty
    store.write_failed({"config_hash": "h1", "tau": 1}, error="boom")
    assert store.status("h1") == "failed" and not store.is_finished("h1")
    store.write_finished({"config_hash": "h1", "tau": 1, "model": "m"}, per_query(0.25))
    assert store.is_finished("h1")
    got = store.per_query("h1")
    assert got["value"].tolist() == [0.25, 1.0] and got["query_id"].tolist() == ["en:q1", "en:q2"]
    assert len(store.attempts()) == 2 and len(store.records()) == 1
    assert store.records(status=None)["status"].tolist() == ["finished"]
    with pytest.raises(KeyError):
        store.per_query("h2")
    with pytest.raises(ValueError, match="lack columns"):
        store.write_finished({"config_hash": "h3"}, per_query().drop(columns="measure"))


def test_store_repairs_a_torn_last_line_so_the_next_record_is_kept(tmp_path):
    store = RunStore(tmp_path)
    store.write_finished({"config_hash": "h1"}, per_query())
    with open(store.index, "a") as fh:
        fh.write('{"config_hash": "h2", "sta')       # a writer killed mid-line
    with pytest.warns(UserWarning, match="torn last line"):
        assert list(store.latest()) == ["h1"]
    # before the repair, this record was glued onto the torn line and lost
    store.write_finished({"config_hash": "h3"}, per_query())
    assert list(store.latest()) == ["h1", "h3"]
    assert store.index.read_text().count("\n") == 2


def test_store_names_a_corrupt_line(tmp_path):
    store = RunStore(tmp_path)
    store.write_finished({"config_hash": "h1"}, per_query())
    with open(store.index, "a") as fh:
        fh.write('garbage\n{"config_hash": "h2", "status": "finished"}\n')
    with pytest.raises(CorruptLogError, match=r"runs.jsonl:2"):
        store.latest()
    before = store.index.read_bytes()
    with pytest.raises(CorruptLogError, match=r"runs.jsonl:2"):   # a write checks the store first
        store.write_finished({"config_hash": "h3"}, per_query())
    assert store.index.read_bytes() == before and not store.per_query_path("h3").exists()
    store.index.write_text('{"status": "finished"}\n')          # JSON, but not a record
    with pytest.raises(CorruptLogError, match=r"runs.jsonl:1: not a record"):
        store.latest()


# one writer process: waits for the go file, then stores configuration h1 as finished
WRITER = """
import json, sys, time
from pathlib import Path
import pandas as pd
from gradedrel.sweeps.run_store import RunStore
folder, go, writer = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
(folder.parent / f"ready-{writer}").touch()
while not go.exists():
    time.sleep(0.005)
per_query = pd.DataFrame({"query_lang": "en", "doc_lang": "en", "query_id": ["en:q1"],
                          "measure": "nDCG@10", "value": [writer / 4]})
print(json.dumps(RunStore(folder).write_finished({"config_hash": "h1", "writer": writer}, per_query)))
"""


def test_two_writers_of_one_configuration_leave_one_record(tmp_path):
    """Processes that ran the same configuration (a sweep restarted while the last one's
    workers still ran) store it once: the check and the writes hold the log's lock."""
    import json
    import subprocess
    import sys
    import time
    folder, go = tmp_path / "store", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(go), str(w)],
                              stdout=subprocess.PIPE, text=True) for w in (1, 2, 3)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{w}").exists() for w in (1, 2, 3)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()                                       # all three write at once
    stored = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    store = RunStore(folder)
    writers = [r["writer"] for r in store.attempts()]
    assert len(writers) == 1                         # one line, not three
    assert stored == [w == writers[0] for w in (1, 2, 3)]   # the writer was told so, the others not
    assert store.per_query("h1")["value"].tolist() == [writers[0] / 4]   # its own numbers


def test_a_finished_configuration_is_final(tmp_path):
    store = RunStore(tmp_path)
    assert store.write_finished({"config_hash": "h1", "run": 1}, per_query(0.25))
    assert not store.write_finished({"config_hash": "h1", "run": 2}, per_query(0.75))
    assert not store.write_failed({"config_hash": "h1", "run": 3}, error="a late duplicate failed")
    assert [r["run"] for r in store.attempts()] == [1]
    assert store.per_query("h1")["value"].tolist() == [0.25, 1.0]
    # a store written before the lock: a finished record outlives later lines of its hash,
    # and a configuration finished twice is named
    import json
    with open(store.index, "a") as fh:
        for record in ({"config_hash": "h1", "status": "failed", "run": 4},
                       {"config_hash": "h2", "status": "finished", "run": 5},
                       {"config_hash": "h2", "status": "finished", "run": 6}):
            fh.write(json.dumps(record) + "\n")
    with pytest.warns(UserWarning, match=r"1 configuration\(s\) finished more than once \(e.g. h2\)"):
        latest = store.latest()
    assert {h: r["run"] for h, r in latest.items()} == {"h1": 1, "h2": 6}


def fake_setup(tmp_path) -> SweepSetup:
    empty = pd.Series(dtype=object)
    return SweepSetup(profile="test", encoder="fake", checkpoint="fake", recipe=Recipe(),
                      texts_query=empty, texts_doc=empty, query_group=empty, doc_group=empty,
                      train_groups=[], test_groups=[], article_halves={"A": [], "B": []},
                      annotations={}, annotator_names={},
                      fingerprints={"A": "rows-v1"}, eval_collection=None,
                      eval_spec={"dataset": "fake"}, store=RunStore(tmp_path / "store"))


def test_sweep_skips_finished_records_failures_and_resumes(tmp_path, monkeypatch):
    setup = fake_setup(tmp_path)
    specs = [RunSpec(("en",), tau, 8, annotator="A") for tau in (1, 2, 3)]
    calls = []

    def flaky(setup_, spec):
        calls.append(spec)
        if spec.tau == 2 and len([c for c in calls if c.tau == 2]) == 1:
            raise RuntimeError("out of memory")      # fails the first time only
        return {"config_hash": setup_.config_hash(spec), "seconds": 0.1}, per_query()

    monkeypatch.setattr(sweep, "run_one", flaky)
    first = sweep.run_sweep(setup, specs, log=lambda *_: None)
    assert first["configuration"].iloc[0] == "baseline"          # the baseline comes first
    assert first["status"].str.startswith("failed").tolist() == [False, False, True, False]
    assert "out of memory" in setup.store.latest()[setup.config_hash(specs[1])]["error"]
    assert len(calls) == 4

    second = sweep.run_sweep(setup, specs, log=lambda *_: None)
    assert second["status"].tolist() == ["skipped (finished)", "skipped (finished)",
                                         "finished", "skipped (finished)"]
    assert calls[4:] == [specs[1]]                               # only the failed one reran
    assert all(setup.store.is_finished(setup.config_hash(s)) for s in [BASELINE, *specs])


def test_config_hash_tracks_what_changes_results(tmp_path):
    setup = fake_setup(tmp_path)
    spec = RunSpec(("en",), 1, 8, annotator="A")
    h = setup.config_hash(spec)
    assert h == setup.config_hash(RunSpec(("en",), 1, 8, annotator="A"))
    assert h != setup.config_hash(RunSpec(("en",), 3, 8, annotator="A"))
    assert h != setup.config_hash(RunSpec(("en",), 1, 8, size_reading="positives", annotator="A"))
    assert h != setup.config_hash(RunSpec(("en", "de"), 1, 8, annotator="A"))
    assert h != setup.config_hash(RunSpec(("en",), 1, 8, seed=1, annotator="A"))
    setup.fingerprints["A"] = "rows-v2"                           # re-annotated data
    assert h != setup.config_hash(spec)
    setup.fingerprints["A"] = "rows-v1"
    setup.recipe = Recipe(learning_rate=2e-5)
    assert h != setup.config_hash(spec)


def test_grids():
    grid = sweep.threshold_grid(["en", "de"], [1, 3], [8, "all"])
    assert len(grid) == 8 and {s.size for s in grid} == {8, "all"}
    assert {s.eval_scope for s in grid} == {"target"}
    # seed variance at one size, the cross-lingual scope at the largest size's tau 1 and 3
    grid = sweep.threshold_grid(["en"], [1, 2, 3], [8, 16], seeds=[0], seed_size=8,
                                extra_seeds=[1, 2], crosslingual_taus=[1, 3])
    assert len(grid) == 3 * (3 + 1)
    assert sorted(s.seed for s in grid if s.size == 8 and s.tau == 2) == [0, 1, 2]
    assert sorted((s.tau, s.size) for s in grid if s.eval_scope == "all") == [(1, 16), (3, 16)]
    mix = sweep.mixture_grid(["en", "de"], ["en", "de", "ar"], [1], 8)
    assert [(s.train_langs, s.halves) for s in mix] == [
        (("en",), ("A",)), (("en", "de"), ("A", "A")), (("en", "ar"), ("A", "A")),
        (("en", "de"), ("A", "B")), (("en", "ar"), ("A", "B")),
        (("de",), ("A",)), (("de", "en"), ("A", "A")), (("de", "ar"), ("A", "A")),
        (("de", "en"), ("A", "B")), (("de", "ar"), ("A", "B"))]
    assert [sweep.mixture_variant(s) for s in mix[:5]] == [None, "same", "same", "disjoint", "disjoint"]
    assert len(sweep.mixture_grid(["en"], ["de"], [1, 3], 8, variants=["disjoint"])) == 4
    with pytest.raises(ValueError, match="halves"):
        RunSpec(("en", "de"), 1, 8, halves=("A",))
    with pytest.raises(ValueError, match="eval_scope"):
        RunSpec(("en",), 1, 8, eval_scope="everything")


def test_study_grid_reads_the_profile():
    from gradedrel.config import profile_config
    cfg = profile_config("xquad")
    g03, g04, g05 = (sweep.study_grid(cfg, part) for part in ("03", "04", "05"))
    langs, taus, sizes = cfg["finetune_langs"], cfg["finetune_taus"], cfg["finetune_sizes"]
    extra = len(langs) * len(taus) * len(cfg["finetune_extra_seeds"])
    assert len(g03) == len(langs) * len(taus) * len(sizes) + extra
    assert set(g05) <= set(g03) and len(g05) == len(langs) * len(cfg["crosslingual_taus"])
    assert {s.size for s in g05} == {sizes[-1]}
    n_mix = len(cfg["mixture_targets"]) * len(cfg["mixture_taus"]) * (
        1 + len(cfg["mixture_variants"]) * (len(cfg["mixture_added"]) - 1))
    assert len(g04) == n_mix
    with pytest.raises(ValueError, match="part"):
        sweep.study_grid(cfg, "06")
