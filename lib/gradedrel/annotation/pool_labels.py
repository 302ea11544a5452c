"""Annotator B's grades for the training pools (issue 23, item 3): the LLM labels that the
label-source grid (profile `xquad-labels`) trains on.

Takes: the xquad profile's rubric rows (notebook 01's 01_downsampled.parquet, train-split
rows only) and the XQuAD sentence collection. Gives, in data/results/xquad-labels/:

  B_pool.jsonl       the judgement store (annotation/store.py): one line per graded pair,
                     appended and fsynced as it arrives, so a killed run resumes
  B_pool.parquet     `table()`: every stored row with its P(0..3), its role ("pool" or
                     "calibration") and position, the rubric grade beside it
  B_pool_calibration.csv   `calibration_table()`: per language, offsets, kappa before and after
                     calibration on the pool, AUC, grade shares beside the rubric's, seconds a pair

Which pairs. For each language, the train-split rows in the order the grid draws them
(`training.pairs._language_order`, seed 0): positions [0, POOL) are the pool (the grid's
instances; size N is the first N of them in every seed's re-ordering of the pool, see
sweeps/label_sources.py), positions [POOL, POOL + CALIBRATION) the calibration set, which is
no pool instance. Work goes in that order: every language's calibration set first (the
offsets), then one language's whole pool after another (`LANGS`' order): the grid trains on a
language's B labels only once its pool is complete (sizes are prefixes of a re-ordering of the
whole pool), so a stopped run leaves the first languages usable.

How B grades. `fast_grader.LastTokenGrader`, zero-shot: the paper's prompt, the answer begun
with "[", P(0..3) read from the last position's logits (bench/RESULTS.md "Annotator B": 3.6x
today's pipeline on English at the same grades). The raw text keeps P(0..3), so the grade a
run trains on is derived afterwards (`calibrated_grades`): argmax of log P(g) + offset(g),
the offsets fitted per language on that language's calibration set (`fast_grader.fit_offsets`:
maximum kappa against the rubric among offsets that keep each grade's share within a factor
SHARE_FACTOR of the rubric's) and applied to its pool. The uncalibrated argmax compresses
B's grades onto 1 (bench: 0% grade 3 on English); English-fitted offsets lowered Hindi's
kappa (0.36 -> 0.19), hence one fit per language.

    python -m gradedrel.annotation.pool_labels run [--langs en es ar hi] [--threads 1]
    python -m gradedrel.annotation.pool_labels table
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from gradedrel.paths import RESULTS_DIR

MODEL = "qwen2.5-coder-1.5b-instruct"
LANGS = ("en", "hi", "es", "ar")      # hi second: the low-resource end of the resource claim
POOL = 1000
CALIBRATION = 60
# calibration keeps every grade's share within this factor of the rubric's: kappa alone
# dropped grade 1 entirely on English (0% of the pool), merging tau=1 and tau=2
SHARE_FACTOR = 2.0
OFFSET_GRID = np.arange(-6.0, 6.01, 0.25)     # finer than fast_grader's default: 60 items a fit
FOLDER = RESULTS_DIR / "xquad-labels"
STORE = FOLDER / "B_pool.jsonl"
TABLE = FOLDER / "B_pool.parquet"


def ordered_rows(rubric_rows: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A language's train-split rubric rows in the grid's seed-0 order, with `position`."""
    from gradedrel.training.pairs import _language_order
    out = _language_order(rubric_rows, lang, 0)
    if len(out) < POOL + CALIBRATION:
        raise ValueError(f"{lang}: {len(out)} train-split rows, fewer than pool {POOL} + "
                         f"calibration {CALIBRATION}")
    return out.assign(position=np.arange(len(out)))


def work_items(rubric_rows: pd.DataFrame, langs=LANGS) -> pd.DataFrame:
    """Every pair to grade, in order: the calibration sets, then each language's pool."""
    ordered = {lang: ordered_rows(rubric_rows, lang) for lang in langs}
    parts = [ordered[lang].iloc[POOL:POOL + CALIBRATION].assign(role="calibration") for lang in langs]
    parts += [ordered[lang].iloc[:POOL].assign(role="pool") for lang in langs]
    return pd.concat(parts, ignore_index=True)


def complete_languages(rows: pd.DataFrame) -> list[str]:
    """Languages whose calibration set and whole pool are graded (`table()` rows)."""
    n = rows.groupby(["lang", "role"]).size()
    return sorted(lang for lang in rows["lang"].unique()
                  if n.get((lang, "pool"), 0) == POOL and n.get((lang, "calibration"), 0) == CALIBRATION)


def inputs():
    """(the xquad profile's train-split rubric rows, query texts, passage texts): notebook 01's
    down-sampled rows of the training articles (queries' and passages' both), as the grid
    reads them (sweeps/grid.load_annotations)."""
    from gradedrel.config import profile_config
    from gradedrel.data.load import load_collection
    from gradedrel.data.split import split_groups
    from gradedrel.training import pairs as tp
    cfg = profile_config("xquad")
    coll = load_collection(cfg, unit=cfg.get("unit", "paragraph"))
    train = split_groups(coll.queries["group"])["train"]
    raw = pd.read_parquet(RESULTS_DIR / "xquad" / "01_downsampled.parquet")
    rows = tp.train_split_rows(tp.parsed_rows(raw), coll.queries.set_index("query_id")["group"],
                               coll.corpus.set_index("doc_id")["group"], train, check_docs=coll.shares_groups)
    return rows, coll.queries.set_index("query_id")["text"], coll.corpus.set_index("doc_id")["text"]


def grader(threads: int):
    from gradedrel.annotation.fast_grader import LastTokenGrader, load_model
    from gradedrel.annotation.packaged_llms import packaged_gguf
    from gradedrel.config import forbid_in_redraw
    forbid_in_redraw("grading the training pools with annotator B")
    llama = load_model(packaged_gguf(MODEL), n_threads=threads, n_ctx=2048)
    return LastTokenGrader(llama, MODEL)


def run(langs=LANGS, threads: int = 1, limit: int | None = None, log=print) -> int:
    """Grade every work item not yet in the store; returns how many were graded now."""
    from gradedrel.annotation.judgement import Pair
    from gradedrel.annotation.store import JudgementStore, store_key

    rubric_rows, query_text, doc_text = inputs()
    items = work_items(rubric_rows, langs)
    b = grader(threads)
    done = 0
    with JudgementStore(STORE) as store:
        todo = items[[store_key(b, q, d) not in store for q, d in zip(items["query_id"], items["doc_id"])]]
        log(f"{len(items) - len(todo)} of {len(items)} pairs stored; {len(todo)} to grade")
        start = time.perf_counter()
        for row in todo.itertuples():
            if limit is not None and done >= limit:
                break
            pair = Pair(row.query_id, row.doc_id, row.lang, query_text[row.query_id], doc_text[row.doc_id])
            began = time.perf_counter()
            (judgement,) = b.grade([pair])
            store.put(b, judgement, lang=row.lang, role=row.role, position=int(row.position),
                      seconds=round(time.perf_counter() - began, 3), threads=threads)
            done += 1
            if done % 50 == 0:
                rate = (time.perf_counter() - start) / done
                log(f"{done}/{len(todo)} graded ({row.lang} {row.role} {row.position}), "
                    f"{rate:.2f} s a pair")
    return done


def table(rubric_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The stored judgements with P(0..3) and the rubric grade (`rubric`)."""
    from gradedrel import jsonl_log
    from gradedrel.annotation.fast_grader import probs_from_raw
    rows = pd.DataFrame([r for _, r in jsonl_log.read(STORE, required=("query_id", "doc_id"))])
    probs = np.array([probs_from_raw(raw) for raw in rows["raw"]])
    rows[[f"p{g}" for g in range(4)]] = probs
    if rubric_rows is None:
        rubric_rows = inputs()[0]
    rubric = rubric_rows.set_index(["query_id", "doc_id"])["score"]
    rows["rubric"] = [int(rubric[(q, d)]) for q, d in zip(rows["query_id"], rows["doc_id"])]
    return rows


def fit_language_offsets(rows: pd.DataFrame) -> dict[str, tuple]:
    """Per language: offsets fitted on its calibration rows (never on pool rows)."""
    from gradedrel.annotation.fast_grader import fit_offsets
    out = {}
    for lang, part in rows[rows["role"] == "calibration"].groupby("lang"):
        out[lang] = fit_offsets(part[[f"p{g}" for g in range(4)]].to_numpy(), part["rubric"].to_numpy(),
                                grid=OFFSET_GRID, share_factor=SHARE_FACTOR)
    return out


def calibrated_grades(rows: pd.DataFrame, offsets: dict[str, tuple] | None = None) -> pd.DataFrame:
    """The pool rows with `score` = B's calibrated grade (per-language offsets) and
    `score_raw` = the uncalibrated argmax; languages without a calibration set are an error."""
    from gradedrel.annotation.fast_grader import grades_with_offsets
    offsets = fit_language_offsets(rows) if offsets is None else offsets
    pool = rows[rows["role"] == "pool"].copy()
    missing = sorted(set(pool["lang"]) - set(offsets))
    if missing:
        raise ValueError(f"no calibration offsets for {missing}")
    probs = pool[[f"p{g}" for g in range(4)]].to_numpy()
    pool["score_raw"] = probs.argmax(1)
    pool["score"] = -1
    for lang in pool["lang"].unique():
        mine = (pool["lang"] == lang).to_numpy()
        pool.loc[mine, "score"] = grades_with_offsets(probs[mine], offsets[lang])
    return pool


def calibration_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per language: the offsets, and on the pool (never used to fit them) B's agreement with
    the rubric before and after calibration (quadratic kappa), the AUC of B's expected grade
    for the rubric's grade 3, B's and the rubric's grade shares, and the median seconds a pair
    (where the store timed them: rows graded after timing was added, one thread, on a machine
    shared with a fine-tuning run)."""
    from gradedrel.annotation.agreement import quadratic_kappa
    from sklearn.metrics import roc_auc_score
    offsets = fit_language_offsets(rows)
    pool = calibrated_grades(rows[rows["lang"].isin(offsets)], offsets)
    out = []
    for lang, g in pool.groupby("lang"):
        shares_b = np.bincount(g["score"].astype(int), minlength=4) / len(g)
        shares_a = np.bincount(g["rubric"], minlength=4) / len(g)
        timed = rows.loc[rows["lang"] == lang, "seconds"].dropna() if "seconds" in rows else pd.Series(dtype=float)
        out.append({"lang": lang, "n_calibration": int(((rows["lang"] == lang) & (rows["role"] == "calibration")).sum()),
                    "offsets": " ".join(f"{o:+g}" for o in offsets[lang]), "n_pool": len(g),
                    "kappa_raw": quadratic_kappa(g["rubric"], g["score_raw"]),
                    "kappa_calibrated": quadratic_kappa(g["rubric"], g["score"]),
                    "auc_grade3": roc_auc_score(g["rubric"] >= 3, g["expected"]) if g["rubric"].nunique() > 1 else np.nan,
                    **{f"B_share_{k}": shares_b[k] for k in range(4)},
                    **{f"rubric_share_{k}": shares_a[k] for k in range(4)},
                    "grade3_share_ratio": shares_b[3] / shares_a[3] if shares_a[3] else np.nan,
                    "median_seconds": float(timed.median()) if len(timed) else np.nan, "n_timed": len(timed)})
    return pd.DataFrame(out)


def write_snapshot(rubric_rows: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store as it is now, as B_pool.parquet and B_pool_calibration.csv: what notebook 08
    and the label-source tables read (the store itself grows while B grades)."""
    t = table(rubric_rows)
    t.to_parquet(TABLE, index=False)
    cal = calibration_table(t)
    cal.to_csv(FOLDER / "B_pool_calibration.csv", index=False, float_format="%.4g")
    return t, cal


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gradedrel.annotation.pool_labels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="grade what the store lacks")
    r.add_argument("--langs", nargs="+", default=list(LANGS))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--limit", type=int, default=None, help="stop after this many pairs")
    sub.add_parser("table", help=f"write {TABLE.name}")
    args = ap.parse_args(argv)
    if args.command == "run":
        n = run(args.langs, args.threads, args.limit, log=lambda m: print(m, flush=True))
        print(f"graded {n} pairs", flush=True)
        return 0
    t, cal = write_snapshot()
    print(t.groupby(["lang", "role"]).size().to_string())
    print(cal.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
