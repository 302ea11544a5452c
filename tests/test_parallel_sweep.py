"""The packed runner (sweeps/parallel.py), the GPU code path, rehearsed on the CPU with the
smoke grid: several worker processes, one store, the same numbers as one process."""
import numpy as np
import pandas as pd
import pytest
from conftest import needs_xquad_r, wait_for_a_stored_run

from gradedrel.annotation.annotators import XQuADSentenceRubricAnnotator
from gradedrel.annotation.judgement import pairs_from_candidates
from gradedrel.config import profile_config
from gradedrel.data.load import load_collection
from gradedrel.sweeps import grid
from gradedrel.sweeps.parallel import run_sweep_parallel
from gradedrel.sweeps.run_store import RunStore

pytestmark = [pytest.mark.integration, needs_xquad_r]


def rubric_rows(coll, per_query: int = 5, seed: int = 0) -> pd.DataFrame:
    """Notebook 01's data set without its encoder: each question's answer sentence and four
    others of its language (two from its article, two from anywhere), graded by the rubric."""
    rng = np.random.default_rng(seed)
    docs = coll.corpus
    rows = []
    for q in coll.queries.itertuples():
        mine = docs[docs["lang"] == q.lang]
        same = mine[(mine["group"] == q.group) & (mine["doc_id"] != q.gold_doc_id)]["doc_id"].to_numpy()
        other = mine[mine["doc_id"] != q.gold_doc_id]["doc_id"].to_numpy()
        picked = [q.gold_doc_id, *rng.choice(same, 2, replace=False), *rng.choice(other, 2, replace=False)]
        rows += [(q.query_id, d, q.lang, r) for r, d in enumerate(dict.fromkeys(picked), 1)][:per_query]
    candidates = pd.DataFrame(rows, columns=["query_id", "doc_id", "lang", "rank"])
    annotator = XQuADSentenceRubricAnnotator(coll)
    grades = {(j.query_id, j.doc_id): j.score for j in annotator.grade(pairs_from_candidates(coll, candidates))}
    return candidates.assign(score=[grades[k] for k in zip(candidates["query_id"], candidates["doc_id"])],
                             annotator=annotator.name)


@pytest.fixture
def one_thread():
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)          # as each of two workers on two cores
    yield
    torch.set_num_threads(before)


def test_packed_workers_give_the_serial_numbers(tmp_path, one_thread):
    cfg = profile_config("smoke")
    folder = tmp_path / "annotations"
    folder.mkdir()
    rubric_rows(load_collection(cfg, unit="sentence")).to_parquet(folder / grid.ANNOTATION_FILES["A"])
    cfg = {**cfg, "annotation_dir": str(folder)}
    specs = [grid.RunSpec(("en",), 1, 16, annotator="A"), grid.RunSpec(("de",), 2, 16, annotator="A"),
             grid.RunSpec(("en", "de"), 1, 8, annotator="A", halves=("A", "B"))]

    serial = grid.prepare_sweep(cfg, RunStore(tmp_path / "serial"))
    serial_log = grid.run_sweep(serial, specs, log=lambda *_: None)
    packed = grid.prepare_sweep(cfg, RunStore(tmp_path / "packed"))
    packed_log = run_sweep_parallel(cfg, specs, workers=2, setup=packed, log=lambda *_: None)

    assert serial_log["status"].str.startswith("finished").all()
    assert set(packed_log["config_hash"]) == set(serial_log["config_hash"])
    assert packed_log["status"].str.startswith("finished").all()
    for spec in [grid.BASELINE, *specs]:
        h = serial.config_hash(spec)
        assert h == packed.config_hash(spec)
        a, b = serial.store.per_query(h), packed.store.per_query(h)
        pd.testing.assert_frame_equal(a, b)          # same runs, same numbers
        assert serial.store.latest()[h].get("steps") == packed.store.latest()[h].get("steps")
    # the packed store is a store like any other: a second call skips every configuration
    again = run_sweep_parallel(cfg, specs, workers=2, setup=packed, log=lambda *_: None)
    assert again["status"].eq("skipped (finished)").all()


def test_prepare_sweep_keeps_the_train_split_and_split_feasible_says_why(tmp_path):
    cfg = profile_config("smoke")
    coll = load_collection(cfg, unit="sentence")
    rows = rubric_rows(coll)
    folder = tmp_path / "annotations"
    folder.mkdir()
    rows.to_parquet(folder / grid.ANNOTATION_FILES["A"])
    setup = grid.prepare_sweep({**cfg, "annotation_dir": str(folder)}, RunStore(tmp_path / "store"),
                               build_checkpoint=False)
    # the smoke profile's four articles, split by the fixed seed: stated here, not recomputed
    train, test = {"Nikola_Tesla", "Normans", "Super_Bowl_50"}, {"Warsaw"}
    assert sorted(coll.queries["group"].unique()) == sorted(train | test)
    assert (set(setup.train_groups), set(setup.test_groups)) == (train, test)
    kept = setup.annotations["A"]
    # load_annotations: only rows whose question and sentence are both in training articles,
    # the articles read from the collection's own tables; counted by hand: of the 396 rows,
    # the 40 of Warsaw's questions go, and 49 more whose sentence is from Warsaw
    q_article = dict(zip(coll.queries["query_id"], coll.queries["group"]))
    d_article = dict(zip(coll.corpus["doc_id"], coll.corpus["group"]))
    expected = {(q, d) for q, d in zip(rows["query_id"], rows["doc_id"])
                if q_article[q] in train and d_article[d] in train}
    assert len(rows) == 396 and len(expected) == 307
    assert set(zip(kept["query_id"], kept["doc_id"])) == expected and len(kept) == 307
    assert kept["lang"].value_counts().to_dict() == {"en": 155, "de": 152}
    assert set(kept["query_id"].map(setup.query_group)) <= train
    assert set(kept["doc_id"].map(setup.doc_group)) <= train
    halves = setup.article_halves
    assert set(halves["A"]) | set(halves["B"]) == train and not set(halves["A"]) & set(halves["B"])
    # the evaluation holds the test articles' questions only
    assert set(setup.eval_collection.queries["group"]) <= test
    en_pool = int((kept["lang"] == "en").sum())
    fits = grid.RunSpec(("en",), 1, en_pool, annotator="A")
    too_big = grid.RunSpec(("en",), 1, en_pool + 1, annotator="A")
    no_data = grid.RunSpec(("en",), 1, 8, annotator="B_chat")
    keep, dropped = grid.split_feasible(setup, [fits, too_big, no_data])
    assert keep == [fits]
    reasons = dict(zip(dropped["configuration"], dropped["reason"]))
    assert f"exceeds the {en_pool} annotated instances" in reasons[too_big.label()]
    assert "no dataset for annotator 'B_chat'" in reasons[no_data.label()]


def test_the_queue_orders_longest_first_or_smallest_size_first():
    """"longest" packs a budget that fits; "smallest" leaves a stopped session with whole
    curves' small ends (every language and tau at a size, seeds included) before larger sizes."""
    from types import SimpleNamespace

    from gradedrel.sweeps.parallel import in_order
    positives = {1: 0.75, 3: 0.2}
    setup = SimpleNamespace(recipe=SimpleNamespace(epochs=2.0),
                            training_rows=lambda s: (pd.DataFrame(index=range(int(s.size * positives[s.tau]))), {}))
    specs = [grid.RunSpec(("en",), tau, size, seed=seed, annotator="A")
             for tau in (1, 3) for size in (250, 1000) for seed in ((0, 1) if size == 250 else (0,))]
    specs.append(grid.BASELINE)
    longest = in_order(setup, specs, "longest")
    assert longest[0] == grid.BASELINE
    assert [(s.tau, s.size) for s in longest[1:3]] == [(1, 1000), (3, 1000)]
    smallest = in_order(setup, specs, "smallest")
    assert smallest[0] == grid.BASELINE
    assert [(s.size, s.seed, s.tau) for s in smallest[1:]] == [
        (250, 0, 3), (250, 0, 1), (250, 1, 3), (250, 1, 1), (1000, 0, 3), (1000, 0, 1)]
    with pytest.raises(ValueError, match="order"):
        in_order(setup, specs, "random")


def test_a_worker_killed_midway_is_named_once_with_its_configuration():
    from types import SimpleNamespace

    from gradedrel.sweeps.parallel import dead_worker_lines

    def proc(alive, code):
        return SimpleNamespace(is_alive=lambda: alive, exitcode=code)

    procs = [proc(True, None), proc(False, -9), proc(False, 0)]   # running, killed, finished
    reported = set()
    lines = dead_worker_lines(procs, {1: "ru+en tau=3 instances=250"}, reported)
    assert lines == ["worker 1 exited with code -9 while running ru+en tau=3 instances=250; "
                     "it is not stored and runs again next time"]
    assert dead_worker_lines(procs, {}, reported) == []          # reported once


# a packed sweep on the smoke grid, as `python -m gradedrel.sweeps --workers 2` runs one
SWEEP = """
import sys
from gradedrel.config import profile_config
from gradedrel.sweeps import grid
from gradedrel.sweeps.parallel import run_sweep_parallel
from gradedrel.sweeps.run_store import RunStore
cfg = {**profile_config("smoke"), "annotation_dir": sys.argv[1]}
specs = [grid.RunSpec((lang,), tau, 16, annotator="A") for lang in ("en", "de") for tau in (1, 2, 3)]
setup = grid.prepare_sweep(cfg, RunStore(sys.argv[2]))
run_sweep_parallel(cfg, specs, workers=2, setup=setup, log=lambda line: print(line, flush=True))
"""


def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path):
    """kill -9 of the sweep takes its workers with it (they used to finish the grid alone,
    and a restarted sweep ran and stored every configuration a second time)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    folder = tmp_path / "annotations"
    folder.mkdir()
    rubric_rows(load_collection(profile_config("smoke"), unit="sentence")).to_parquet(
        folder / grid.ANNOTATION_FILES["A"])
    store = RunStore(tmp_path / "store")
    parent = subprocess.Popen([sys.executable, "-c", SWEEP, str(folder), str(store.folder)],
                              env={**os.environ, "TQDM_DISABLE": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        wait_for_a_stored_run(store, parent, timeout=900)
        workers = [p for p in psutil.Process(parent.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2                      # both busy with the grid's other runs
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        def alive():
            out = []
            for p in workers:
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        out.append(p.pid)
                except psutil.NoSuchProcess:
                    pass
            return out
        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive() == []
    finally:                                          # whatever failed, leave no process behind
        leftover = list(workers)
        if parent.poll() is None:
            leftover += psutil.Process(parent.pid).children(recursive=True)
            parent.kill()
            parent.wait()
        for p in leftover:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
