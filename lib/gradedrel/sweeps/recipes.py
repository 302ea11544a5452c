"""The recipe probe (issue 23, item 1): a recipe where fine-tuning can help, measured before
any new grid.

The threshold grid (profile `xquad`) trained every run with one recipe (lr 1e-5, 2 epochs)
and no run beat the un-fine-tuned model. The probe (profile `xquad-recipes`) trains a few
recipes on the grid's largest cell at its least harmful threshold (en and ar, tau=3, 2000
instances, seed 0), each changing one thing of the grid's recipe (`VARIANTS`), so each
difference from the control is that one thing's; and tabulates each against the baseline
(`recipe_table`): mean nDCG@10, the change with its 95% paired t interval over questions,
Benjamini-Hochberg q over the table's rows, a verdict by rule (`verdict`), training seconds,
steps and pairs. `choose_recipe` picks from the table by rule and says why.

Runs go to the profile's own store (data/results/xquad-recipes/finetune/). A configuration
the grid's store holds finished is read from there and not run again (`ReadThroughStore`):
the baseline, and the control, which is the grid's own run (same configuration, same hash,
evaluated on every language pair there; the table reads its own pair). Nothing is ever
written to the grid's store. Run the probe with this module, not `python -m gradedrel.sweeps
--profile xquad-recipes`, whose plain store would not see the grid's runs:

    python -m gradedrel.sweeps.recipes run --dry-run     # what would run, and where each run is
    python -m gradedrel.sweeps.recipes run [--workers 2] [--only lr3e-5 hardneg]
    python -m gradedrel.sweeps.recipes table             # -> data/results/xquad-recipes/recipe_table.csv

`run` skips what is finished (a killed probe continues where it stopped) and writes the
table when it ends.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gradedrel.sweeps import grid
from gradedrel.sweeps.analysis import ALPHA, bh_q_values, compare_to_reference
from gradedrel.sweeps.run_store import FINISHED, RunStore

PROFILE = "xquad-recipes"
TABLE = "recipe_table.csv"


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    recipe: dict = field(default_factory=dict)   # profile keys of the recipe (finetune_lr, ...)
    spec: dict = field(default_factory=dict)     # RunSpec fields (size, hard_negatives, ...)


# Each changes one thing of the control, so all run at once and each change is read alone.
# Four epochs at 1e-5 rather than at "the better lr": the better lr is not known before the
# probe has run, and doubling the steps at the grid's lr says whether the grid trained too
# little at it; more epochs at a winning lr is a follow-up variant of one line.
VARIANTS = (
    Variant("control", "the grid's recipe: lr 1e-5, 2 epochs, 2000 instances",
            spec={"eval_scope": "all"}),      # the grid's own run (its hash): not run again
    Variant("lr3e-5", "learning rate 3e-5", recipe={"finetune_lr": 3e-5}),
    Variant("lr1e-4", "learning rate 1e-4", recipe={"finetune_lr": 1e-4}),
    Variant("epochs4", "4 epochs at lr 1e-5", recipe={"finetune_epochs": 4}),
    Variant("pool-all", "the whole training pool (every train-split instance)",
            spec={"size": "all"}),
    Variant("hardneg", "a below-tau candidate of the same question as each pair's negative",
            spec={"hard_negatives": True}),
)
BEATS, HURTS, SAME, NOT_RUN = ("beats the baseline", "hurts", "no significant difference",
                               "not run yet")
COLUMNS = ["language", "recipe", "what", "learning_rate", "epochs", "instances", "n_pairs",
           "steps", "train_seconds", "n_questions", "mean", "baseline", "delta", "ci_low",
           "ci_high", "p_value", "q_value", "verdict", "config_hash"]


class ReadThroughStore(RunStore):
    """A run store that also counts a configuration finished in `reference` (another
    profile's store) as finished, and reads its record and per-query metrics from there.
    Writes go to its own folder only; one that `reference` holds finished is refused as
    RunStore refuses any finished configuration."""

    def __init__(self, folder, reference: RunStore):
        super().__init__(folder)
        self.reference = reference

    def __repr__(self) -> str:
        return f"ReadThroughStore({str(self.folder)!r}, reference={self.reference!r})"

    def latest(self) -> dict[str, dict]:
        out = super().latest()
        for h, record in self.reference.latest().items():
            if record["status"] == FINISHED and out.get(h, {}).get("status") != FINISHED:
                out[h] = record
        return out

    def _own(self, config_hash: str) -> bool:
        return RunStore.is_finished(self, config_hash)

    def is_finished(self, config_hash: str) -> bool:
        return self._own(config_hash) or self.reference.is_finished(config_hash)

    def per_query(self, config_hash: str) -> pd.DataFrame:
        if self._own(config_hash) or not self.reference.is_finished(config_hash):
            return super().per_query(config_hash)
        return self.reference.per_query(config_hash)


def probe_store(cfg: dict) -> ReadThroughStore:
    """The profile's store, reading through to the grid it probes: the profile whose
    annotation rows it trains on (`annotation_profile`), whose store holds the baseline
    and the control."""
    reference = cfg.get("annotation_profile", cfg["profile"])
    return ReadThroughStore(grid.store_folder(cfg["profile"]), RunStore(grid.store_folder(reference)))


def variant_config(cfg: dict, variant: Variant) -> dict:
    unknown = sorted(set(variant.recipe) - {k for k in cfg if k.startswith("finetune_")})
    if unknown:
        raise ValueError(f"variant {variant.name!r}: {unknown} are not finetune keys of the profile")
    return {**cfg, **variant.recipe}


def variant_specs(cfg: dict, variant: Variant) -> list[grid.RunSpec]:
    """One configuration per language x tau of the profile, at its largest size and first
    seed, with the variant's changes."""
    sizes = [grid._size(s) for s in cfg["finetune_sizes"]]
    largest = grid.tp.ALL if grid.tp.ALL in sizes else max(sizes)
    return [dataclasses.replace(
                grid.RunSpec((lang,), int(tau), largest, cfg["finetune_size_reading"],
                             int(cfg["finetune_seeds"][0]), cfg["finetune_annotators"][0],
                             bool(cfg["finetune_hard_negatives"])), **variant.spec)
            for lang in cfg["finetune_langs"] for tau in cfg["finetune_taus"]]


def variant_setup(base: grid.SweepSetup, cfg: dict, variant: Variant) -> grid.SweepSetup:
    """`base` with the variant's recipe (the loaded checkpoint is shared)."""
    return dataclasses.replace(base, recipe=grid.recipe_from_config(variant_config(cfg, variant)))


def run_probe(cfg: dict, base: grid.SweepSetup, variants=VARIANTS, workers: int = 1,
              log=print) -> pd.DataFrame:
    """Run every variant's configurations not yet finished (in the probe's store or the
    grid's), one variant after another; a failure is recorded and the probe goes on."""
    logs = []
    for variant in variants:
        setup = variant_setup(base, cfg, variant)
        specs, dropped = grid.split_feasible(setup, variant_specs(cfg, variant))
        for row in dropped.itertuples(index=False):
            log(f"{variant.name}: dropped {row.configuration}: {row.reason}")

        def say(line, name=variant.name):
            log(f"{name}: {line}")
        if workers > 1:
            from gradedrel.sweeps.parallel import run_sweep_parallel
            out = run_sweep_parallel(variant_config(cfg, variant), specs, workers=workers,
                                     setup=setup, log=say)
        else:
            out = grid.run_sweep(setup, specs, log=say)
        logs.append(out.assign(recipe=variant.name))
    return pd.concat(logs, ignore_index=True)


def verdict(delta: float, q: float, alpha: float = ALPHA) -> str:
    """"beats the baseline" where q < alpha and the change is up, "hurts" where q < alpha
    and it is down, else "no significant difference" (a NaN q is never significant)."""
    if q < alpha and delta > 0:
        return BEATS
    if q < alpha and delta < 0:
        return HURTS
    return SAME


def recipe_table(cfg: dict, base: grid.SweepSetup, variants=VARIANTS,
                 measure: str = "nDCG@10") -> pd.DataFrame:
    """One row per (language, variant): the run against the baseline on the language's own
    pair (compare_to_reference: paired t over questions), q-values over the table's finished
    rows, the verdict, and the run's cost; a configuration not finished has its row with
    verdict "not run yet"."""
    rows = []
    for variant in variants:
        setup = variant_setup(base, cfg, variant)
        specs = variant_specs(cfg, variant)
        latest = setup.store.latest()
        points = compare_to_reference(setup, specs, "target", measure)
        found = points.set_index("config_hash") if len(points) else pd.DataFrame()
        for spec in specs:
            h = setup.config_hash(spec)
            record = latest.get(h, {}) if latest.get(h, {}).get("status") == FINISHED else {}
            row = {"language": spec.target, "recipe": variant.name, "what": variant.what,
                   "learning_rate": setup.recipe.learning_rate, "epochs": setup.recipe.epochs,
                   "instances": ((record.get("counts") or {}).get("instances") or {}).get(spec.target),
                   "n_pairs": record.get("n_pairs"), "steps": record.get("steps"),
                   "train_seconds": record.get("train_seconds"), "config_hash": h}
            if h in found.index:
                p = found.loc[h]
                row.update(n_questions=int(p["n_queries"]), mean=p["mean"], baseline=p["reference"],
                           delta=p["delta"], ci_low=p["ci_low"], ci_high=p["ci_high"],
                           p_value=p["p_value"])
            rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    done = table["n_questions"].notna()
    table["q_value"] = np.nan
    if done.any():
        table.loc[done, "q_value"] = bh_q_values(table.loc[done, "p_value"].fillna(1.0).to_numpy())
    table["verdict"] = [verdict(d, q) if ok else NOT_RUN
                        for d, q, ok in zip(table["delta"], table["q_value"], done)]
    return table


def choose_recipe(table: pd.DataFrame) -> tuple[str | None, str]:
    """(recipe, why), by rule, among the recipes finished in every language of the table:
    one that beats the baseline somewhere and hurts nowhere, the highest mean change first;
    else, said plainly, none beats it, and the one whose mean change hurts least is kept."""
    langs = table["language"].nunique()
    done = table[table["verdict"] != NOT_RUN]
    per = done.groupby("recipe").agg(languages=("language", "nunique"),
                                     beats=("verdict", lambda v: int((v == BEATS).sum())),
                                     hurts=("verdict", lambda v: int((v == HURTS).sum())),
                                     mean_delta=("delta", "mean"))
    per = per[per["languages"] == langs].sort_values("mean_delta", ascending=False)
    if per.empty:
        return None, "no recipe has finished in every language yet"

    def deltas(name):
        rows = done[done["recipe"] == name]
        return ", ".join(f"{r.language} {r.delta:+.4f} (q={r.q_value:.3g}, {r.verdict})"
                         for r in rows.itertuples())
    winners = per[(per["beats"] > 0) & (per["hurts"] == 0)]
    if len(winners):
        name = winners.index[0]
        return name, (f"{name} beats the baseline in {winners.loc[name, 'beats']} of {langs} "
                      f"languages and hurts in none, the highest mean change of those that do: "
                      f"{deltas(name)}")
    name = per.index[0]
    return name, (f"no recipe beats the baseline in a language without hurting in another; "
                  f"{name} is kept, the one that hurts least (the highest mean change, "
                  f"{per.loc[name, 'mean_delta']:+.4f}): {deltas(name)}")


def write_table(cfg: dict, base: grid.SweepSetup, log=print) -> pd.DataFrame:
    from gradedrel.paths import RESULTS_DIR, written_aside
    table = recipe_table(cfg, base)
    target = RESULTS_DIR / cfg["profile"] / TABLE
    with written_aside(target) as part:
        table.to_csv(part, index=False, float_format="%.6g")
    shown = table[["language", "recipe", "n_questions", "mean", "delta", "ci_low", "ci_high",
                   "q_value", "verdict", "train_seconds", "n_pairs"]]
    log(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    name, why = choose_recipe(table)
    log(f"choice: {name}: {why}\nwritten: {target}")
    return table


def main(argv=None) -> int:
    from gradedrel.config import profile_config
    ap = argparse.ArgumentParser(prog="python -m gradedrel.sweeps.recipes",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("run", "table"))
    ap.add_argument("--profile", default=PROFILE)
    ap.add_argument("--only", nargs="+", choices=[v.name for v in VARIANTS], default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="list the configurations; run nothing")
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cfg = profile_config(args.profile)
    variants = [v for v in VARIANTS if args.only is None or v.name in args.only]
    store = probe_store(cfg)
    run = args.command == "run" and not args.dry_run
    base = grid.prepare_sweep(cfg, store, build_checkpoint=run)
    if args.command == "table":
        write_table(cfg, base)
        return 0
    if args.dry_run:
        print(f"profile {cfg['profile']}: store {store.folder}, reading through {store.reference.folder}")
        h = base.config_hash(grid.BASELINE)
        print(f"  baseline  {'':48s} {h}  " + ("finished" if store.is_finished(h) else "to run"))
        for variant in variants:
            setup = variant_setup(base, cfg, variant)
            for spec in variant_specs(cfg, variant):
                h = setup.config_hash(spec)
                where = ("finished here" if store._own(h) else "finished in the grid's store"
                         if store.reference.is_finished(h) else "to run")
                pairs, _ = setup.training_rows(spec)
                print(f"  {variant.name:9s} {spec.label():48s} {h}  {len(pairs)} pairs x "
                      f"{setup.recipe.epochs:g} epochs, lr {setup.recipe.learning_rate:g}: {where}")
        return 0
    print(f"recipe probe: {', '.join(v.name for v in variants)} on {', '.join(cfg['finetune_langs'])} "
          f"into {store.folder} (the grid's runs read from {store.reference.folder}); "
          f"{args.workers} worker(s)", flush=True)
    log = run_probe(cfg, base, variants, workers=args.workers,
                    log=lambda line: print(line, flush=True))
    write_table(cfg, base)
    failed = log["status"].str.startswith(("failed", "not run"))
    return 1 if failed.any() else 0


if __name__ == "__main__":
    sys.exit(main())
