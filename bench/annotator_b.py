"""Annotator B (Qwen2.5-Coder-1.5B-Instruct): today's pipeline against faster prompt variants,
on the same pairs, in one run on one machine.

    python bench/annotator_b.py [--per-grade 10] [--hi-per-grade 5] [--threads 1]

Pairs (all from the training split's articles, annotation/fast_grader.disjoint_sample): a pilot
of `per_grade` English (question, answer sentence) templates per rubric grade, and the Hindi
versions of the first `hi_per_grade` of each (the per-language cost: Qwen's tokenizer splits
Devanagari finely); a calibration set of as many other English templates; four few-shot
examples. No question or sentence of one is in another, nor in notebook 02's agreement sample
(01_annotations_B_items.parquet, every language) or notebook 01's pilot (01_pilot_*.parquet).

Variants (all the same model file, `n_threads` threads, each preceded by one untimed warm-up
pair from the calibration set):
  today          LlamaCppServer + ChatAnnotator as pipeline.grade_with_chat_model runs them
                 (one request at a time, top_logprobs=10, max_tokens=8): grade parsed from the
                 answer, expected grade from the digit's top log-probabilities
  zs-all         in process (fast_grader.LastTokenGrader): today's prompt, answer begun with
                 "[", the digit read from the last position, logits_all=True (every position's
                 logits computed and copied, as llama-cpp-python's logprobs path needs)
  zs-last        the same with logits_all=False (the last position only)
  fs-last        four few-shot examples (one per rubric grade) in the cached prefix, the
                 pair last, logits_all=False
  zs-last-cal, fs-last-cal   the same readings with per-grade offsets fitted on the
                 calibration set (fast_grader.fit_offsets; never on the pilot); same cost
Reported per variant: grade shares, quadratic kappa and AUC (expected grade vs rubric grade 3)
against the XQuAD sentence rubric on the English pilot (and kappa on Hindi), mean and median
seconds a pair per language, and the speed-up (today's mean / the variant's). Record:
bench/results/DATE-annotator-b-(amx|no-amx).json; a markdown table is printed.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from gradedrel.annotation import fast_grader as fg  # noqa: E402
from gradedrel.annotation.agreement import gold_auc, quadratic_kappa  # noqa: E402
from gradedrel.annotation.judgement import Pair  # noqa: E402

MODEL = "qwen2.5-coder-1.5b-instruct"


def pairs_of(df: pd.DataFrame) -> list[Pair]:
    return [Pair(r.query_id, r.doc_id, r.lang, r.query, r.passage) for r in df.itertuples()]


def timed(annotator, pairs: list[Pair]) -> list[dict]:
    """Grade one pair after another; each row with the seconds since the previous answer."""
    rows, last = [], time.perf_counter()
    for j in annotator.grade(pairs):
        now = time.perf_counter()
        rows.append({"query_id": j.query_id, "doc_id": j.doc_id, "score": j.score, "status": j.status,
                     "expected": j.expected, "raw": j.raw, "seconds": now - last})
        last = now
    return rows


def graders(stack, path, variants, examples, threads) -> dict:
    """Each variant's annotator, all loaded at once: today's server (stopped when `stack`
    closes) and one in-process model per in-process variant (so that none evicts another's
    cached prefix)."""
    from gradedrel.annotation.llm_chat import ChatAnnotator, ChatSettings
    from gradedrel.annotation.local_llm import LlamaCppServer
    from gradedrel.annotation.packaged_llms import PACKAGED_LLMS

    out = {}
    for name in variants:
        if name == "today":
            server = stack.enter_context(LlamaCppServer(path, alias=MODEL, n_threads=threads,
                                                        chat_format=PACKAGED_LLMS[MODEL].chat_format))
            out[name] = ChatAnnotator(server.endpoint, ChatSettings(concurrency=1, top_logprobs=10, max_tokens=8))
        else:
            llama = fg.load_model(path, n_threads=threads, logits_all=name.endswith("-all"))
            builder = fg.PromptBuilder(examples if name.startswith("fs") else ())
            out[name] = fg.LastTokenGrader(llama, MODEL, builder)
    return out


def interleaved(annotators: dict, pilot: list[Pair], block: int) -> dict[str, list[dict]]:
    """Every variant grades the same block of `block` pairs (one language) in turn, the order
    rotated from block to block, so that a change in the machine's load falls on all alike."""
    rows = {name: [] for name in annotators}
    names = list(annotators)
    blocks = [[p for p in pilot if p.lang == lang][i:i + block] for lang in ("en", "hi")
              for i in range(0, sum(p.lang == lang for p in pilot), block)]
    for b, pairs in enumerate(blocks):
        for name in names[b % len(names):] + names[:b % len(names)]:
            rows[name] += timed(annotators[name], pairs)
        print(f"block {b + 1}/{len(blocks)} ({pairs[0].lang}) done", flush=True)
    for name, r in rows.items():
        if isinstance(annotators[name], fg.LastTokenGrader):
            for row in r:
                row["probs"] = fg.probs_from_raw(row["raw"])
    return rows


def with_offsets(rows: list[dict], offsets) -> list[dict]:
    out = []
    for r in rows:
        grade = int(fg.grades_with_offsets(np.array([r["probs"]]), offsets)[0])
        out.append({**r, "score": grade if r["status"] == "ok" else None})
    return out


def summary(rows: list[dict], rubric: pd.DataFrame) -> dict:
    df = pd.DataFrame(rows).merge(rubric, on=["query_id", "doc_id"])
    out = {}
    for lang, g in df.groupby("lang"):
        parsed = g.dropna(subset=["score"])
        exp = g.dropna(subset=["expected"]).rename(columns={"expected": "expected_b"})
        out[lang] = {
            "pairs": len(g), "parsed": float(len(parsed) / len(g)),
            "shares": [float((parsed["score"] == k).mean()) for k in range(4)],
            "rubric_shares": [float((g["score_a"] == k).mean()) for k in range(4)],
            "kappa": quadratic_kappa(parsed["score_a"], parsed["score"].astype(int)),
            "auc_grade3": gold_auc(exp) if len(exp) else float("nan"),
            "mean_s": float(g["seconds"].mean()), "median_s": float(g["seconds"].median())}
    return out


def markdown(table: dict) -> str:
    base = table["today"]
    lines = ["| variant | grade shares 0/1/2/3 (en) | κ en | AUC en | κ hi | s/pair en (median) | "
             "s/pair hi (median) | speed-up en | speed-up hi |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in table.items():
        en, hi = s["en"], s["hi"]
        shares = "/".join(f"{x:.0%}" for x in en["shares"])
        lines.append(f"| {name} | {shares} | {en['kappa']:.2f} | {en['auc_grade3']:.2f} | {hi['kappa']:.2f} | "
                     f"{en['mean_s']:.2f} ({en['median_s']:.2f}) | {hi['mean_s']:.2f} ({hi['median_s']:.2f}) | "
                     f"{base['en']['mean_s'] / en['mean_s']:.1f}× | {base['hi']['mean_s'] / hi['mean_s']:.1f}× |")
    rub = table["today"]["en"]["rubric_shares"]
    lines.append(f"| rubric (A) | {'/'.join(f'{x:.0%}' for x in rub)} | | | | | | | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-grade", type=int, default=10)
    ap.add_argument("--hi-per-grade", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--block", type=int, default=10, help="pairs a variant grades before the next takes them")
    ap.add_argument("--variants", default="today,zs-all,zs-last,fs-last")
    args = ap.parse_args()

    from gradedrel.annotation.annotators import XQuADSentenceRubricAnnotator
    from gradedrel.annotation.llama_cpu import amx_flags
    from gradedrel.annotation.packaged_llms import packaged_gguf
    from gradedrel.annotation.pipeline import grade_offline
    from gradedrel.config import profile_config
    from gradedrel.data.load import load_collection

    cfg = profile_config("xquad", {})
    coll = load_collection(cfg, unit=cfg["unit"]).subset(langs=["en", "hi"])
    out_dir = REPO / "data" / "results" / "xquad"
    taken = pd.concat([pd.read_parquet(out_dir / "01_annotations_B_items.parquet")]
                      + [pd.read_parquet(p) for p in sorted(out_dir.glob("01_pilot_*.parquet"))])
    questions, sentences = set(taken["query_id"].map(fg.base_of)), set(taken["doc_id"].map(fg.base_of))
    train = fg.training_groups(coll)

    examples_df = fg.disjoint_sample(coll, 1, 0, train, ("en",), questions, sentences)
    examples = fg.few_shot_examples(coll, seed=0, exclude_questions=questions, exclude_sentences=sentences)
    questions |= set(examples_df["query_id"].map(fg.base_of))
    sentences |= set(examples_df["doc_id"].map(fg.base_of))
    pilot_df = fg.disjoint_sample(coll, args.per_grade, 1, train, ("en", "hi"), questions, sentences)
    first = pilot_df[pilot_df["lang"] == "en"].groupby("template_grade")["rank"].apply(
        lambda r: set(r.nsmallest(args.hi_per_grade)))
    hi_ranks = set().union(*first)
    pilot_df = pilot_df[(pilot_df["lang"] == "en") | pilot_df["rank"].isin(hi_ranks)].reset_index(drop=True)
    questions |= set(pilot_df["query_id"].map(fg.base_of))
    sentences |= set(pilot_df["doc_id"].map(fg.base_of))
    cal_df = fg.disjoint_sample(coll, args.per_grade, 2, train, ("en",), questions, sentences)
    fg.check_disjoint(zip(cal_df["query_id"], cal_df["doc_id"]), zip(pilot_df["query_id"], pilot_df["doc_id"]))

    rubric_annotator = XQuADSentenceRubricAnnotator(coll)
    rubric = grade_offline(rubric_annotator, coll, pd.concat([pilot_df, cal_df]))[["query_id", "doc_id", "lang", "score"]]
    rubric = rubric.rename(columns={"score": "score_a"})
    pilot, cal = pairs_of(pilot_df), pairs_of(cal_df)
    warm = cal[:1]
    print(f"pilot: {pilot_df.groupby('lang').size().to_dict()} pairs, calibration {len(cal)}, "
          f"few-shot {len(examples)}", flush=True)

    path = packaged_gguf(MODEL)
    variants = args.variants.split(",")
    from contextlib import ExitStack

    from gradedrel.annotation.rubric import GRADING_PROMPT_VERSION
    with ExitStack() as stack:
        annotators = graders(stack, path, variants, examples, args.threads)
        versions = {name: GRADING_PROMPT_VERSION if name == "today" else a.builder.version
                    for name, a in annotators.items()}
        for a in annotators.values():
            list(a.grade(warm))
        start = time.perf_counter()
        rows = interleaved(annotators, pilot, args.block)
        print(f"pilot graded in {time.perf_counter() - start:.0f} s", flush=True)
        cal_rows, offsets = {}, {}
        for name in variants:
            if name.endswith("-last"):
                cal_rows[name] = timed(annotators[name], cal[1:])
                for row in cal_rows[name]:
                    row["probs"] = fg.probs_from_raw(row["raw"])
    for name in list(cal_rows):
        graded = pd.DataFrame(cal_rows[name]).merge(rubric, on=["query_id", "doc_id"])
        offsets[name] = fg.fit_offsets(np.array(graded["probs"].tolist()), graded["score_a"])
        rows[f"{name}-cal"] = with_offsets(rows[name], offsets[name])
        versions[f"{name}-cal"] = versions[name] + "+o" + ",".join(f"{o:g}" for o in offsets[name])

    table = {name: summary(r, rubric) for name, r in rows.items()}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    record = {"date": date.today().isoformat(), "cpu": cpu, "amx_flags": amx_flags(), "model": MODEL,
              "threads": args.threads, "prompt_versions": versions, "offsets": offsets,
              "few_shot": [e.__dict__ for e in examples],
              "pilot_pairs": pilot_df[["query_id", "doc_id", "lang", "template_grade"]].to_dict("records"),
              "calibration_pairs": cal_df[["query_id", "doc_id"]].to_dict("records"),
              "summary": table, "rows": rows, "calibration_rows": cal_rows}
    out = REPO / "bench" / "results" / f"{record['date']}-annotator-b-{'amx' if amx_flags() else 'no-amx'}.json"
    out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(markdown(table))
    print(f"offsets (fitted on the calibration set): {offsets}")
    print(f"record: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
