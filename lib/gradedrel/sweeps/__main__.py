"""Run the study's fine-tuning grids from the command line, into the profile's run store:

    python -m gradedrel.sweeps --profile xquad                  # notebooks 03, 04 and 05's runs
    python -m gradedrel.sweeps --profile xquad-full --workers 8 # the full grid, packed on a GPU
    python -m gradedrel.sweeps --profile smoke --parts 03 --dry-run
    python -m gradedrel.sweeps --profile xquad -p finetune_langs '["ar"]'
    python -m gradedrel.sweeps --profile xquad-full --backend ray --gpus-per-run 0.25
                                                    # each run a Ray task (ray_backend.py)

Finished configurations are skipped, so a killed run continues where it stopped; the
notebooks then redraw from the store. `-p KEY VALUE` overrides a profile key (VALUE is read
as JSON where it parses, else as a string).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gradedrel.config import profile_config
from gradedrel.sweeps import grid
from gradedrel.sweeps.run_store import RunStore


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gradedrel.sweeps",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="xquad")
    ap.add_argument("--parts", nargs="+", default=list(grid.STUDY_PARTS), choices=grid.STUDY_PARTS)
    ap.add_argument("--workers", type=int, default=None,
                    help="local backend: fine-tunes at once (default: the profile's sweep_workers)")
    ap.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="local: this machine's processes (parallel.py); ray: one Ray task a run "
                         "(ray_backend.py; pip install -e .[cluster])")
    ap.add_argument("--address", default=None,
                    help="ray: the cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    ap.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs a run asks for")
    ap.add_argument("--gpus-per-run", type=float, default=0.0,
                    help="ray: GPUs a run asks for (0.25: four fine-tunes share a GPU)")
    ap.add_argument("--store", default=None,
                    help="the run store's folder (default: data/results/PROFILE/finetune)")
    ap.add_argument("--annotations", default=None, metavar="DIR",
                    help="notebook 01's data sets from DIR (default: data/results/ of the "
                         "profile's annotation_profile)")
    ap.add_argument("--order", choices=("longest", "smallest"), default="longest",
                    help="longest first packs a grid that fits its time best; smallest training "
                         "size first fills every curve's small end, for a session that may stop")
    ap.add_argument("--dry-run", action="store_true", help="list the configurations; run nothing")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args(argv)
    if args.backend == "ray" and args.workers:
        ap.error("--workers is the local backend's; with --backend ray use --cpus-per-run / --gpus-per-run")
    return args


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    args = parse_args(argv)
    # one line a run in the log, not trainer progress bars
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cfg = profile_config(args.profile, **{k: _value(v) for k, v in args.p})
    if args.annotations:
        cfg["annotation_dir"] = args.annotations
    workers = args.workers or int(cfg.get("sweep_workers", 1))
    store = RunStore(args.store or grid.store_folder(cfg["profile"]))
    setup = grid.prepare_sweep(cfg, store, build_checkpoint=not args.dry_run)
    specs = list(dict.fromkeys(s for part in args.parts for s in grid.study_grid(cfg, part)))
    runnable, dropped = grid.split_feasible(setup, specs)
    from gradedrel.sweeps.parallel import in_order, run_sweep_parallel
    runnable = in_order(setup, runnable, args.order)
    todo = [s for s in [grid.BASELINE] + runnable if not store.is_finished(setup.config_hash(s))]
    print(f"profile {cfg['profile']}, parts {' '.join(args.parts)}: {len(runnable)} configurations "
          f"(+ baseline), {len(dropped)} dropped, {len(todo)} not yet in {store.folder}; "
          + (f"Ray, {args.cpus_per_run:g} CPU + {args.gpus_per_run:g} GPU a run" if args.backend == "ray"
             else f"{workers} worker(s)"), flush=True)
    for row in dropped.itertuples(index=False):
        print(f"  dropped: {row.configuration}: {row.reason}")
    if args.dry_run:
        for spec in todo:
            print(f"  to run: {spec.label()}")
        return 0
    start = time.perf_counter()
    if args.backend == "ray":
        from gradedrel.sweeps.ray_backend import run_sweep_ray
        log = run_sweep_ray(setup, runnable, cpus_per_run=args.cpus_per_run,
                            gpus_per_run=args.gpus_per_run, address=args.address,
                            log=lambda line: print(line, flush=True))
    elif workers > 1:
        log = run_sweep_parallel(cfg, runnable, workers=workers, setup=setup, order=args.order)
    else:
        log = grid.run_sweep(setup, runnable)
    failed = log["status"].str.startswith("failed") | log["status"].str.startswith("not run")
    print(f"done in {time.perf_counter() - start:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in log["status"].str.split(" ").str[0].value_counts().items()),
          flush=True)
    return 1 if failed.any() else 0


if __name__ == "__main__":
    sys.exit(main())
