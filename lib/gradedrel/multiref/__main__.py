"""Run notebook 06's alignment fine-tunes from the command line, one at a time, each
evaluated and stored as soon as it is trained:

    python -m gradedrel.multiref --profile xquad                 # the profile's plan
    python -m gradedrel.multiref --profile xquad --targets zh --variants full no_jsd
    python -m gradedrel.multiref --profile xquad --dry-run

After each run its held-out evaluation is appended to 06_finetune_summary.csv /
06_finetune_per_query.csv / 06_finetune.json, its JSD diagnostic to 06_jsd_diagnostic.csv,
and its weights are released (the tables are all notebook 06 needs), so a run killed
partway loses only the fine-tune in progress, and the notebook redraws from what is stored.
Several of these commands may run at once (say, one per target on a core each): they take
turns to extend the stored tables.
"""
from __future__ import annotations

import argparse
import os
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gradedrel.multiref",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="xquad", choices=("smoke", "xquad", "paper"))
    ap.add_argument("--targets", nargs="+", default=None, help="default: the plan's fine-tune targets")
    ap.add_argument("--variants", nargs="+", default=None, help="default: the plan's loss settings")
    ap.add_argument("--extra-seeds", nargs="*", type=int, default=None,
                    help="default: the plan's; none given: no extra seeds")
    ap.add_argument("--dry-run", action="store_true", help="list the runs; train nothing")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from gradedrel import results
    from gradedrel.multiref import study

    settings = study.resolve_settings(args.profile, finetune_targets=args.targets,
                                      variants=args.variants, extra_seeds=args.extra_seeds)
    coll, split = study.load_study_collection(settings)
    planned = study.planned_runs(settings, split["train"])
    stored = study.stored_evaluations(settings.profile)
    todo = [r for r in planned if (r["target"], r["variant"], r["tag"]) not in stored]
    print(f"{settings.describe()}\n{len(planned)} runs planned, {len(todo)} not yet evaluated",
          flush=True)
    for run in todo:
        print(f"  to run: {run['target']} {run['variant']} seed {run['seed']} ({run['tag']})")
    if args.dry_run or not todo:
        return 0
    study.jsd_scale_table(settings, split["train"])
    for i, run in enumerate(todo, 1):
        key = (run["target"], run["variant"], run["tag"])
        start = time.perf_counter()
        runs = study.train_alignment_runs(settings, split["train"], coll, only=[key])
        with results.tables_locked(settings.profile, "06_finetune"):   # several CLIs may share
            study.evaluate_finetunes(settings, split["test"], runs)
            study.jsd_diagnostic(settings, split["test"], runs)
        print(f"[{i}/{len(todo)}] {' '.join(key)}: trained and evaluated in "
              f"{time.perf_counter() - start:.0f} s; {study.release_models(runs)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
