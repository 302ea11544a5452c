"""Several fine-tunes at once: worker processes that share one GPU, or the CPU's cores.

A me5-small fine-tune on a few thousand sentence pairs leaves an H200 mostly idle: its
batches are small and its steps short. `run_sweep_parallel` therefore packs the grid onto
the device: `workers` processes each prepare their own `SweepSetup` (their own copy of the
checkpoint), take configurations from one queue, longest first, and run each exactly as
`run_sweep` does (`grid.run_and_store`), writing to the shared run store, whose appends are
serialised by a file lock. A killed worker loses only the run it was on; a rerun skips what
the store holds, as a single-process sweep does. Workers die with the parent, however it
dies (kill -9 included: Linux's PR_SET_PDEATHSIG, and a check of the parent before each
configuration elsewhere), so a restarted sweep never races orphans of the last one; and the
store keeps one finished record a configuration even if two processes run it. On the CPU
each worker gets cores // workers threads, which is how the tests rehearse this code path.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import resource
import time

import pandas as pd

from gradedrel.processes import die_with_parent, parent_alive
from gradedrel.sweeps.grid import (DUPLICATE, OUTCOME_COLUMNS, RunSpec, prepare_sweep, run_and_store,
                                   split_finished)
from gradedrel.sweeps.run_store import RunStore

POLL_SECONDS = 5.0


def estimated_cost(setup, spec: RunSpec) -> float:
    """Training pairs times epochs (0 for the baseline), plus the evaluation's share: the
    order in which the queue hands runs out (longest first packs best)."""
    if spec.is_baseline:
        return 1e12          # the reference every table needs: first
    try:
        pairs, _ = setup.training_rows(spec)
    except ValueError:
        return 0.0
    return len(pairs) * setup.recipe.epochs + (1e4 if spec.eval_scope == "all" else 0)


ORDERS = ("longest", "smallest")


def in_order(setup, specs, order: str) -> list[RunSpec]:
    """The specs in the order a queue should hand them out, the baseline always first.
    "longest": by estimated cost, longest first. "smallest": by training size, then seed,
    then cost, so that a run stopped partway has whole curves' small ends and their seeds."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")

    def key(spec):
        cost = estimated_cost(setup, spec)
        if order == "longest":
            return (not spec.is_baseline, -cost)
        size = spec.size if isinstance(spec.size, (int, float)) else float("inf")
        return (not spec.is_baseline, size if not spec.is_baseline else 0, spec.seed, cost)
    return sorted(specs, key=key)


def _worker(cfg: dict, store_folder: str, tasks, outcomes, threads: int | None, worker: int,
            parent_pid: int) -> None:
    die_with_parent(parent_pid)
    import torch
    if threads:
        torch.set_num_threads(threads)
    setup = prepare_sweep(cfg, RunStore(store_folder))
    while True:
        spec = tasks.get()
        if spec is None or not parent_alive(parent_pid):     # no parent: nobody to report to
            return
        outcomes.put((RUNNING, worker, spec.label()))
        if setup.store.is_finished(setup.config_hash(spec)):      # by another process since
            outcomes.put((DONE, worker, spec.label(), setup.config_hash(spec), DUPLICATE, None))
            continue
        outcomes.put((DONE, worker, *run_and_store(setup, spec)))
        # the worker's peak resident memory so far, in GiB (Linux reports KiB)
        outcomes.put((PEAK_RSS, worker, spec.label(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20))


# what a worker tells the parent: (kind, worker, ...)
RUNNING, DONE, PEAK_RSS = "running", "done", "peak_rss"


def dead_worker_lines(procs, running: dict, reported: set) -> list[str]:
    """One line for each worker that has exited abnormally since the last call (a kill for
    memory shows as exit code -9), naming the configuration it was on: that one is not in
    the store and runs again on the next call, as after any killed run."""
    lines = []
    for i, p in enumerate(procs):
        if i in reported or p.is_alive() or p.exitcode in (0, None):
            continue
        reported.add(i)
        lines.append(f"worker {i} exited with code {p.exitcode} while running "
                     f"{running.get(i, 'nothing')}; it is not stored and runs again next time")
    return lines


def run_sweep_parallel(cfg: dict, specs, workers: int = 2, setup=None, log=print,
                       order: str = "longest") -> pd.DataFrame:
    """`run_sweep` over `workers` processes. `setup`: the parent's (prepared from `cfg` if
    absent; it builds the pruned checkpoint once, before the workers start, so they do not
    race to write it). `order`: "longest" first packs a grid that fits its budget best;
    "smallest" first leaves a session that stops partway with every curve's small end.
    Returns what happened to each configuration."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    setup = setup or prepare_sweep(cfg)
    outcome, todo = split_finished(setup, specs)
    todo = in_order(setup, todo, order)
    if not todo:
        return pd.DataFrame(outcome, columns=OUTCOME_COLUMNS)
    workers = min(workers, len(todo))
    import torch
    threads = None if torch.cuda.is_available() else max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")   # CUDA cannot be used in a forked child
    tasks, outcomes = ctx.Queue(), ctx.Queue()
    for spec in todo:
        tasks.put(spec)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(cfg, str(setup.store.folder), tasks, outcomes, threads, i, os.getpid()))
             for i in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    pending = {setup.config_hash(s): s for s in todo}
    running, reported = {}, set()
    try:
        while pending:
            try:
                kind, worker, *message = outcomes.get(timeout=POLL_SECONDS)
            except queue_module.Empty:
                for line in dead_worker_lines(procs, running, reported):
                    log(line)
                if not any(p.is_alive() for p in procs):
                    for h, spec in pending.items():
                        outcome.append((spec.label(), h, "not run: every worker exited", None))
                    break
                continue
            if kind == RUNNING:
                running[worker] = message[0]
                continue
            if kind == PEAK_RSS:
                log(f"   worker {worker}: peak resident memory {message[1]:.1f} GiB after {message[0]}")
                continue
            label, h, status, seconds = message
            running.pop(worker, None)
            pending.pop(h, None)
            outcome.append((label, h, status, seconds))
            log(f"[{len(todo) - len(pending)}/{len(todo)}, worker {worker}, "
                f"{time.perf_counter() - start:.0f} s] {label}: {status}"
                + (f" ({seconds:.1f} s)" if seconds is not None else ""))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    return pd.DataFrame(outcome, columns=OUTCOME_COLUMNS)
