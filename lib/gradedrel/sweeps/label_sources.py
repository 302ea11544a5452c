"""The label-source grid (issue 23, items 4-5): does the best tau depend on where the grades
come from?

Takes: the xquad profile's rubric rows (annotator A), annotator B's grades of the training
pools (annotation/pool_labels.py), profile `xquad-labels` (config.py). Gives: a run store
(data/results/xquad-labels/finetune/) whose runs keep their ranked lists, read by
`tables.py`-style functions in sweeps/label_tables.py.

Three label sources over the *same* instances (per language, the grid's first
pool_labels.POOL train-split rows in seed-0 order, the pool B graded):

  "A"         the XQuAD sentence rubric (3 answer sentence, 2 same paragraph, 1 same article)
  "A_Bnoise"  the rubric with B's noise, SIMULATED: each rubric grade i replaced, with a fixed
              seed, by a draw from row i of the language's confusion matrix P(B = j | rubric =
              i), measured between B's calibrated grades and the rubric on that same pool. Its
              grades therefore share B's error *rates* but not which items B gets wrong: a
              difference between "B" and "A_Bnoise" runs is the structure of an LLM's errors.
              (Issue 23 suggested notebook 02's matrix, that of the chat pipeline on the
              agreement sample; B here is the calibrated last-token grader, whose rates differ,
              so the matrix is the one of the labels the "B" source trains on.)
  "B_fast"    B's calibrated grades (pool_labels.calibrated_grades)

A language enters the B and noise sources once its pool is wholly graded; a run's hash holds
the fingerprint of its own language's rows only (`LabelSourceSetup`), so a language that
completes later leaves the finished runs of the others valid.

    python -m gradedrel.sweeps.label_sources run [--follow] [--dry-run]
    python -m gradedrel.sweeps.label_sources table    # B's snapshot and the tables, from the stores
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradedrel.sweeps import grid
from gradedrel.training import pairs as tp

PROFILE = "xquad-labels"
RANKED_DEPTH = 100
NOISE_SEED = 23
SOURCES = {"A": "rubric", "A_Bnoise": "rubric + B's noise (simulated)", "B_fast": "B (calibrated)"}
GRADES = (0, 1, 2, 3)


def confusion_matrix(rubric, other) -> np.ndarray:
    """Row-normalised 4x4 P(other = j | rubric = i). A rubric grade that never occurs has
    no row to estimate: an error."""
    rubric, other = np.asarray(rubric, dtype=int), np.asarray(other, dtype=int)
    counts = np.zeros((4, 4))
    np.add.at(counts, (rubric, other), 1)
    empty = [g for g in GRADES if counts[g].sum() == 0]
    if empty:
        raise ValueError(f"rubric grade(s) {empty} never occur: their noise rates are unknown")
    return counts / counts.sum(axis=1, keepdims=True)


def simulate_noise(rows: pd.DataFrame, matrices: dict, seed: int = NOISE_SEED) -> pd.DataFrame:
    """`rows` (lang, query_id, doc_id, score) with each score redrawn from its language's
    confusion row; seeded per language, in the rows' (query_id, doc_id) order, so the draw
    does not depend on the order rows arrive in."""
    import zlib
    parts = []
    for lang, part in rows.groupby("lang", sort=True):
        if lang not in matrices:
            raise ValueError(f"no confusion matrix for {lang!r}")
        part = part.sort_values(["query_id", "doc_id"])
        rng = np.random.default_rng([seed, zlib.crc32(lang.encode())])
        cumulative = np.cumsum(np.asarray(matrices[lang])[part["score"].astype(int).to_numpy()], axis=1)
        draws = (rng.random(len(part))[:, None] > cumulative).sum(axis=1)
        parts.append(part.assign(score=np.minimum(draws, 3)))
    return pd.concat(parts).reset_index(drop=True)


def instance_rows(rubric_rows: pd.DataFrame, langs) -> pd.DataFrame:
    """The rubric rows of each language's pool (the instances B graded)."""
    from gradedrel.annotation.pool_labels import POOL, ordered_rows
    return pd.concat([ordered_rows(rubric_rows, lang).iloc[:POOL] for lang in langs],
                     ignore_index=True)[tp.ROW_COLUMNS]


def sources(rubric_rows: pd.DataFrame, b_table: pd.DataFrame | None, langs) -> dict[str, pd.DataFrame]:
    """Annotator key -> rows for the grid. B and the noise simulation only for languages
    whose pool B has wholly graded (`b_table`: pool_labels.table())."""
    from gradedrel.annotation.pool_labels import calibrated_grades, complete_languages
    a = instance_rows(rubric_rows, langs)
    out = {"A": a}
    complete = complete_languages(b_table) if b_table is not None else []
    done = [lang for lang in langs if lang in complete]
    if not done:
        return out
    b = calibrated_grades(b_table[b_table["lang"].isin(done)])
    b = b[["query_id", "doc_id", "lang", "score"]].astype({"score": int}).reset_index(drop=True)
    keyed = a.set_index(["query_id", "doc_id"])["score"]
    missing = b.set_index(["query_id", "doc_id"]).index.difference(keyed.index)
    if len(missing):
        raise ValueError(f"{len(missing)} of B's pool pairs are not rubric pool pairs, e.g. {missing[0]}")
    rubric_of_b = keyed.reindex(b.set_index(["query_id", "doc_id"]).index).to_numpy()
    matrices = {lang: confusion_matrix(rubric_of_b[(b["lang"] == lang).to_numpy()],
                                       b.loc[b["lang"] == lang, "score"]) for lang in done}
    out["A_Bnoise"] = simulate_noise(a[a["lang"].isin(done)], matrices)
    out["B_fast"] = b
    return out


@dataclass
class LabelSourceSetup(grid.SweepSetup):
    """A SweepSetup whose run hashes hold the fingerprint of the run's own languages' rows."""

    def spec_dict(self, spec: grid.RunSpec) -> dict:
        out = super().spec_dict(spec)
        if not spec.is_baseline and spec.annotator in self.annotations:
            rows = self.annotations[spec.annotator]
            out["annotator_rows"] = tp.rows_fingerprint(rows[rows["lang"].isin(spec.train_langs)])
        return out


def prepare(cfg: dict | None = None, build_checkpoint: bool = True, b_table=None) -> LabelSourceSetup:
    from gradedrel.annotation import pool_labels
    from gradedrel.config import profile_config
    cfg = cfg or profile_config(PROFILE)
    base = grid.prepare_sweep(cfg, build_checkpoint=build_checkpoint)
    if b_table is None and pool_labels.STORE.exists():
        b_table = pool_labels.table(base.annotations["A"])
    rows = sources(base.annotations["A"], b_table, cfg["finetune_langs"])
    fields = {f: getattr(base, f) for f in grid.SweepSetup.__dataclass_fields__}
    fields.update(annotations=rows, annotator_names={k: SOURCES[k] for k in rows},
                  fingerprints={k: tp.rows_fingerprint(v) for k, v in rows.items()},
                  ranked_depth=RANKED_DEPTH)
    return LabelSourceSetup(**fields)


GRADED_OBJECTIVES = ("kl", "kl+infonce")
GRADED_SOURCES = ("A", "B_fast")


def graded_specs(cfg: dict) -> list[grid.RunSpec]:
    """Item 6: the graded objectives (training/graded_distill.py) at the larger size, seed 0,
    for the rubric and B, beside hard tau on the same instances; tau=3 names the positives of
    kl+infonce's InfoNCE term (and changes nothing of "kl"'s training)."""
    size = max(int(s) for s in cfg["finetune_sizes"])
    return [grid.RunSpec((lang,), 3, size, cfg["finetune_size_reading"], 0, source, False, objective=o)
            for source in GRADED_SOURCES for lang in cfg["finetune_langs"] for o in GRADED_OBJECTIVES]


def specs(cfg: dict) -> list[grid.RunSpec]:
    """The grid: every source x language x tau x size with seed 1 at the smaller size, and
    the graded objectives (`run` takes them in `priority` order)."""
    return grid.study_grid(cfg, "03") + graded_specs(cfg)


LANG_ORDER = ("en", "hi", "es", "ar")      # pool_labels grades B's pools in this order


def priority(spec: grid.RunSpec) -> tuple:
    """The order runs are taken in, so that a stopped grid leaves whole comparisons: seed 0
    before other seeds, the smaller size first (a language's three sources at 250 cost about a
    quarter of those at 1000), then language in the order B's pools are graded, source, the
    threshold runs before the graded objectives (which sit beside them at the larger size),
    tau."""
    return (spec.seed != 0, int(spec.size),
            LANG_ORDER.index(spec.target) if spec.target in LANG_ORDER else len(LANG_ORDER),
            list(SOURCES).index(spec.annotator), spec.objective != "infonce", spec.tau)


CLAIMS = ".claims"            # beside the run store; not committed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(folder: Path, config_hash: str, young_seconds: float = 60.0) -> bool:
    """Take configuration `config_hash` for this process: a file `<hash>.pid` in `folder`
    holding its pid, created exclusively, so that several `run` processes on one store (one a
    core) never train the same configuration. A claim whose process is gone is taken over; an
    empty one younger than `young_seconds` is another process's claim being written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config_hash}.pid"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                text, age = path.read_text().strip(), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if text.isdigit() and _alive(int(text)) or not text and age < young_seconds:
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(folder: Path, config_hash: str) -> None:
    path = folder / f"{config_hash}.pid"
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except FileNotFoundError:
        pass


def run(follow: bool = False, dry_run: bool = False, log=print) -> None:
    """Run the most urgent pending configuration (`priority`) that no other `run` process has
    claimed (`claim`: start one process a core), then look again: a language whose B pool
    completes meanwhile enters at its place in the order. With `follow`, wait for B while
    nothing can run; without, stop then."""
    from gradedrel.config import profile_config
    cfg = profile_config(PROFILE)
    failed: set = set()          # failed in this process: not tried again until a restart
    while True:
        setup = prepare(cfg, build_checkpoint=not dry_run)
        todo, dropped = grid.split_feasible(setup, specs(cfg))
        _, pending = grid.split_finished(setup, todo)
        pending = [s for s in pending if s not in failed]
        pending = sorted(pending, key=lambda s: (not s.is_baseline, priority(s) if not s.is_baseline else ()))
        log(f"{len(pending)} runs can run now; {len(dropped)} wait for B's labels "
            f"(sources: {sorted(setup.annotations)})")
        if dry_run:
            for s in pending:
                log(f"  {s.label()}")
            return
        claims = Path(setup.store.folder) / CLAIMS
        chosen = next((s for s in pending if claim(claims, setup.config_hash(s))), None)
        if chosen is not None:
            try:
                label, _, status, seconds = grid.run_and_store(setup, chosen)
            finally:
                release(claims, setup.config_hash(chosen))
            if status.startswith("failed"):
                failed.add(chosen)
            log(f"{label}: {status}" + (f", {seconds:.1f} s" if seconds is not None else ""))
            continue
        if not follow or not (len(dropped) or pending):
            return
        time.sleep(300 if not pending else 60)   # B is still grading, or others hold the rest


def write_tables(setup, langs, grid_specs, folder=None) -> dict[str, pd.DataFrame]:
    """Compute and write the grid's tables (sweeps/label_tables.py's list, the seed tables of
    label_seeds.py, the size findings of label_findings.py among the claims) from `setup`'s
    store (`prepare` with build_checkpoint=False: no model is loaded) for the languages
    `langs`, reading the runs of `grid_specs` (the grid's configurations) and the baseline only."""
    from gradedrel.claims import claims_table
    from gradedrel.sweeps import label_findings, label_seeds
    from gradedrel.sweeps import label_tables as lt
    folder = lt.FOLDER if folder is None else folder
    hashes = {setup.config_hash(s) for s in [grid.BASELINE, *grid_specs]}
    values = lt.per_query(setup.store, setup.eval_collection, langs, hashes)
    pts = lt.points(values)
    best = lt.best_tau(values, pts)
    folder.mkdir(parents=True, exist_ok=True)
    values.to_parquet(folder / "label_source_per_query.parquet", index=False, compression="zstd")
    pts.to_csv(folder / "label_source_points.csv", index=False, float_format="%.6g")
    best.to_csv(folder / "label_source_best_tau.csv", index=False, float_format="%.6g")
    sizes = sorted(set(pts["size"])) if len(pts) else []
    claims = pd.concat([claims_table(lt.claims_rows(values, size, langs) + label_seeds.claims_rows(values, size, langs))
                        .assign(size=size) for size in sizes]
                       + [claims_table(label_findings.rows(values, pts, langs)).assign(size=sizes[-1])] if sizes
                       else [claims_table([])])
    claims.to_csv(folder / "label_source_claims.csv", index=False, float_format="%.6g")
    return {"per_query": values, "points": pts, "best_tau": best, "claims": claims,
            **label_seeds.write_tables(values, folder)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gradedrel.sweeps.label_sources", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run what the store lacks")
    r.add_argument("--follow", action="store_true",
                   help="when done, wait for B's next complete language and go on")
    r.add_argument("--dry-run", action="store_true")
    sub.add_parser("table", help="write the label-source tables")
    args = ap.parse_args(argv)
    if args.command == "run":
        run(args.follow, args.dry_run, log=lambda m: print(m, flush=True))
        return 0
    from gradedrel.config import profile_config
    from gradedrel.annotation.pool_labels import inputs, write_snapshot
    cfg = profile_config(PROFILE)
    b_table, _ = write_snapshot(inputs()[0])
    tables = write_tables(prepare(cfg, build_checkpoint=False, b_table=b_table), cfg["finetune_langs"], specs(cfg))
    print(tables["points"].groupby(["source", "evaluation"]).size().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
