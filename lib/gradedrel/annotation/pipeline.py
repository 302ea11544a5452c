"""The annotation pipeline of the threshold paper (section 3), one stage a function, each
reading and writing files so any stage can be rerun alone:

  1. queries      the data set's own questions, or LLM-generated from sampled passages
  2. candidates   top-k passages per query from the baseline encoder, own-language corpus
  3. grades       an annotator grades each (query, passage) pair, into a JudgementStore
  4. dataset      rows (query_id, doc_id, lang, score, annotator, prompt_version, raw, ...)
  5. downsample   Appendix A: balance the non-zero scores across languages
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from gradedrel import jsonl_log
from gradedrel.annotation.judgement import pairs_from_candidates
from gradedrel.annotation.store import JudgementStore, store_key
from gradedrel.data.collection import Collection, make_id
from gradedrel.retrieval.encode import encode
from gradedrel.retrieval.search import search

DATASET_COLUMNS = ["query_id", "doc_id", "lang", "rank", "score", "status", "expected",
                   "annotator", "model", "prompt_version", "raw"]


# --- 1. queries ------------------------------------------------------------------------

def sample_passages(coll: Collection, per_lang: int, seed: int = 0) -> pd.DataFrame:
    """`per_lang` passages a language, seeded, for query generation."""
    return _sample_per_language(coll.corpus, per_lang, seed).reset_index(drop=True)


def _sample_per_language(df: pd.DataFrame, per_lang: int, seed: int) -> pd.DataFrame:
    return pd.concat([d.sample(min(per_lang, len(d)), random_state=seed)
                      for _, d in df.groupby("lang")])


GENERATED_COLUMNS = ["doc_id", "lang", "query", "status", "raw"]


class QueryGenerationError(RuntimeError):
    pass


def generate_llm_queries(coll: Collection, passages: pd.DataFrame, endpoint, path, settings=None,
                         max_failed_share: float = 0.5) -> pd.DataFrame:
    """Generate one query per passage with the paper's prompt, appending each to the
    JSONL file at `path` as it arrives (jsonl_log: locked, fsync'd, a torn last line cut);
    passages already there are skipped (resume). Failed requests are not written, so a
    rerun asks again; they are counted by cause and warned of, and when more than
    `max_failed_share` of the requests fail (all of them included) QueryGenerationError
    names how many failed and the first message of each cause. No file is written until a
    query arrives. `settings`: llm_chat.ChatSettings (default: generate_queries')."""
    from gradedrel.annotation.llm_chat import generate_queries

    path = Path(path)
    done = {row["doc_id"] for _, row in jsonl_log.read(path, required=("doc_id",))}
    todo = passages[~passages["doc_id"].isin(done)]
    items = list(todo[["doc_id", "lang", "text"]].itertuples(index=False, name=None))
    failures = _FailureCount()
    for row in tqdm(generate_queries(endpoint, items, settings), total=len(items), desc="queries"):
        if row["status"] == "request_failed":
            failures.add(row["raw"])
        else:
            jsonl_log.append(path, row)
    if failures.n:
        message = (f"query generation: {failures.n} of {len(items)} requests failed after retries "
                   f"({failures.describe()}); {len(items) - failures.n} answers written to {path}, "
                   "and a rerun asks again for the failed ones")
        if failures.n > max_failed_share * len(items):
            raise QueryGenerationError(message)
        warnings.warn(message)
    return pd.DataFrame([row for _, row in jsonl_log.read(path)], columns=GENERATED_COLUMNS)


class _FailureCount:
    """Failed requests counted by error kind (the text before the first colon of
    llm_chat.describe_error's message), with each kind's first message."""

    def __init__(self):
        self.n, self.causes = 0, {}

    def add(self, raw: str) -> None:
        self.n += 1
        self.causes.setdefault(raw.split(":", 1)[0], [0, raw])[0] += 1

    def summary(self) -> dict:
        return {kind: {"count": n, "first": first} for kind, (n, first) in self.causes.items()}

    def describe(self) -> str:
        return "; ".join(f"{n} x {first[:200]}" for n, first in self.causes.values())


def with_generated_queries(coll: Collection, generated: pd.DataFrame) -> Collection:
    """The collection with generated queries in place of its own; each query's source
    passage stands as its gold document (grade 3 in qrels)."""
    ok = generated[generated["status"] == "ok"]
    doc = coll.corpus.set_index("doc_id")
    base = "gen-" + doc.loc[ok["doc_id"], "base_id"].to_numpy()
    queries = pd.DataFrame({
        "query_id": [make_id(lang, b) for lang, b in zip(ok["lang"], base)],
        "base_id": base, "lang": ok["lang"].to_numpy(), "text": ok["query"].to_numpy(),
        "group": doc.loc[ok["doc_id"], "group"].to_numpy(), "gold_doc_id": ok["doc_id"].to_numpy(),
        "answers": [[] for _ in range(len(ok))]})
    qrels = pd.DataFrame({"query_id": queries["query_id"], "doc_id": queries["gold_doc_id"],
                          "grade": 3})
    return Collection(f"{coll.name}+generated", coll.corpus, queries, qrels)


# --- 2. candidates ---------------------------------------------------------------------

def retrieve_candidates(model, coll: Collection, k: int = 5, batch_size: int = 64) -> pd.DataFrame:
    """Top-k passages of the query's own language for every query: columns query_id,
    doc_id, lang, rank (1 = best), retrieval_score."""
    frames = []
    for lang in coll.languages:
        topics, docs = coll.topics(lang), coll.docs(lang)
        if topics.empty or docs.empty:
            continue
        run = search(encode(model, topics["text"], "query", batch_size),
                     encode(model, docs["text"], "passage", batch_size),
                     topics["query_id"], docs["doc_id"], k)
        frames += [pd.DataFrame({"query_id": qid, "doc_id": list(ranked), "lang": lang,
                                 "rank": range(1, len(ranked) + 1),
                                 "retrieval_score": list(ranked.values())})
                   for qid, ranked in run.items()]
    return pd.concat(frames, ignore_index=True)


# --- 3. grades -------------------------------------------------------------------------

def grade_candidates(annotator, coll: Collection, candidates: pd.DataFrame,
                     store: JudgementStore, progress: bool = True) -> dict:
    """Grade every candidate pair not yet in the store, writing each judgement as it
    arrives. Returns counts: cached, graded, failed (failed requests are not stored)."""
    todo = [p for p in pairs_from_candidates(coll, candidates)
            if store_key(annotator, p.query_id, p.doc_id) not in store]
    counts = {"cached": len(candidates) - len(todo), "graded": 0, "failed": 0}
    failures = _FailureCount()
    lang_of = {p.query_id: p.lang for p in todo}
    for j in tqdm(annotator.grade(todo), total=len(todo), disable=None if progress else True,
                  desc=annotator.name):
        if j.status == "request_failed":
            failures.add(j.raw)
            continue
        store.put(annotator, j, lang=lang_of[j.query_id])
        counts["graded"] += 1
    if failures.n:
        counts.update(failed=failures.n, failure_causes=failures.summary())
        warnings.warn(f"{annotator.name}: {failures.n} requests failed after retries ("
                      f"{failures.describe()}); rerun the stage to grade them")
    return counts


# --- 4. dataset ------------------------------------------------------------------------

def annotation_dataset(store: JudgementStore, annotator, candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate pair the annotator has graded (unparsed ones included, with
    score NaN and their status and raw text)."""
    rows = pd.DataFrame([r for r in store.rows()
                         if (r["annotator"], r["model"], r["prompt_version"])
                         == (annotator.name, annotator.model, annotator.prompt_version)])
    if rows.empty:
        return pd.DataFrame(columns=DATASET_COLUMNS)
    merged = candidates[["query_id", "doc_id", "lang", "rank"]].merge(
        rows.drop(columns=["lang"], errors="ignore"), on=["query_id", "doc_id"], how="inner")
    return merged[DATASET_COLUMNS].astype({"score": "Int64"})


def write_dataset(df: pd.DataFrame, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def read_jsonl(path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)


# --- 5. down-sampling ------------------------------------------------------------------

def downsample(df: pd.DataFrame, target_size: int, seed: int = 0) -> pd.DataFrame:
    """Appendix A of the threshold paper, on parsed rows (score not NaN):
    1. the language with the fewest non-zero scores sets the count m;
    2. m non-zero rows are sampled in every language;
    3. rows scoring 0 are sampled in each language until the total reaches `target_size`
       (target_size / number of languages a language).
    Where a language lacks zeros to fill its share, all its zeros are kept (warned)."""
    parsed = df[df["score"].notna()]
    langs = sorted(parsed["lang"].unique())
    if not langs:
        return parsed.copy()
    nonzero = {lang: parsed[(parsed["lang"] == lang) & (parsed["score"] > 0)] for lang in langs}
    zeros = {lang: parsed[(parsed["lang"] == lang) & (parsed["score"] == 0)] for lang in langs}
    per_lang = target_size // len(langs)
    m = min(len(d) for d in nonzero.values())
    if m > per_lang:
        warnings.warn(f"the rarest language has {m} non-zero rows, more than the "
                      f"{per_lang} a language the target allows; sampling {per_lang}")
        m = per_lang
    rng = np.random.default_rng(seed)
    parts = []
    for lang in langs:
        parts.append(nonzero[lang].iloc[rng.permutation(len(nonzero[lang]))[:m]])
        want = per_lang - m
        if want > len(zeros[lang]):
            warnings.warn(f"{lang}: {len(zeros[lang])} zero-score rows, fewer than the {want} "
                          "needed to fill its share; keeping all of them")
        parts.append(zeros[lang].iloc[rng.permutation(len(zeros[lang]))[:want]])
    return pd.concat(parts).sort_values(["lang", "query_id", "rank"]).reset_index(drop=True)


def sample_candidates(candidates: pd.DataFrame, per_lang: int | None, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of `per_lang` candidate pairs a language (all when None)."""
    if per_lang is None:
        return candidates
    return (_sample_per_language(candidates, per_lang, seed)
            .sort_values(["lang", "query_id", "rank"]).reset_index(drop=True))


# --- verification (run_all.sh --verify): cheap recomputations of stored stages ------------

def verify_grades(annotator, coll: Collection, stored: pd.DataFrame, n_pairs: int,
                  seed: int = 0) -> float:
    """Grade `n_pairs` seeded stored pairs again; the share that get the stored grade."""
    parsed = stored[stored["score"].notna()]
    sample = parsed.sample(min(n_pairs, len(parsed)), random_state=seed)
    fresh = {(j.query_id, j.doc_id): j.score for j in annotator.grade(pairs_from_candidates(coll, sample))}
    same = [fresh.get((q, d)) == int(s) for q, d, s in sample[["query_id", "doc_id", "score"]].itertuples(index=False)]
    return float(np.mean(same)) if same else float("nan")


# --- annotator B's sample: the same content in every language ------------------------------

def fixed_content_sample(coll: Collection, per_grade: int, seed: int = 0,
                         reference_lang: str = "en") -> pd.DataFrame:
    """Pairs for annotator B that hold the content fixed across languages. XQuAD-R's
    sentences are not aligned across languages, but every question's answer sentence is, so
    an item is a (question, answer sentence of a question) template: the question's own
    (rubric grade 3), another question's of the same paragraph (2 unless it holds the answer),
    of another paragraph of the same article (1), of another article (0). `per_grade`
    templates of each grade in `reference_lang`, seeded, instantiated in every language of
    `coll` (a pair that two templates give in some language is kept once there); columns
    query_id, doc_id, lang, rank (the template's number), template_grade."""
    from gradedrel.annotation.annotators import XQuADSentenceRubricAnnotator
    from gradedrel.annotation.judgement import Pair

    rng = np.random.default_rng(seed)
    q = coll.topics(reference_lang)
    gold = q.set_index("base_id")["gold_doc_id"]
    para = q.set_index("base_id")["gold_paragraph"]
    group = q.set_index("base_id")["group"]
    text = coll.corpus.set_index("doc_id")["text"]
    rubric = XQuADSentenceRubricAnnotator(coll)
    bases = q["base_id"].to_numpy()
    templates = {g: [] for g in (0, 1, 2, 3)}
    taken = set()
    for b in rng.permutation(bases):
        same_para = [o for o in bases if para[o] == para[b] and o != b]
        same_art = [o for o in bases if group[o] == group[b] and para[o] != para[b]]
        other = [o for o in bases if group[o] != group[b]]
        for pool in ([b], same_para, same_art, other):
            if not pool:
                continue
            o = pool[rng.integers(len(pool))]
            qid = make_id(reference_lang, b)
            grade = rubric.grade_one(Pair(qid, gold[o], reference_lang, "", text[gold[o]])).score
            # two questions may share an answer sentence: one template per (question, sentence)
            if len(templates[grade]) < per_grade and (b, gold[o]) not in taken:
                templates[grade].append((b, o))
                taken.add((b, gold[o]))
        if all(len(t) == per_grade for t in templates.values()):
            break
    rows = []
    for grade, items in templates.items():
        for b, o in items:
            rows.append((b, o, grade))
    items = pd.DataFrame(rows, columns=["question", "sentence_of", "template_grade"])
    items["rank"] = range(1, len(items) + 1)
    out = []
    for lang in coll.languages:
        gold_l = coll.topics(lang).set_index("base_id")["gold_doc_id"]
        out.append(pd.DataFrame({"query_id": [make_id(lang, b) for b in items["question"]],
                                 "doc_id": items["sentence_of"].map(gold_l).to_numpy(), "lang": lang,
                                 "rank": items["rank"].to_numpy(),
                                 "template_grade": items["template_grade"].to_numpy()}))
    # where another language's sentences join two answers, keep the pair once
    return pd.concat(out, ignore_index=True).drop_duplicates(["query_id", "doc_id"], ignore_index=True)


def annotator_spec(model: str) -> str:
    """The endpoint spec of a pilot model name: "gemma-3-270m" (the base model from PyPI, the
    negative control), a key of packaged_llms.PACKAGED_LLMS, or an endpoint spec as is."""
    from gradedrel.annotation.packaged_llms import PACKAGED_LLMS
    if model == "gemma-3-270m":
        return "local-gemma"
    if model in PACKAGED_LLMS:
        return f"packaged:{model}"
    return model


@dataclass(frozen=True)
class AnnotatorIdentity:
    """What keys an annotator's judgements in a store (name, model, prompt version)."""
    name: str
    model: str
    prompt_version: str


def grade_with_chat_model(model: str, coll: Collection, items: pd.DataFrame, store_path,
                          top_logprobs: int = 10, max_tokens: int = 8) -> tuple[pd.DataFrame, float, int]:
    """Grade `items` (query_id, doc_id, lang, rank) with a chat model served for the call
    (llama.cpp on loopback for local ones), one request at a time so the server reuses the
    rubric's prompt prefix; at most `max_tokens` answer tokens ("[2]" takes three); every judgement goes to the store at `store_path` as it arrives,
    and the server starts only if some pair is not stored yet. Returns the annotated rows,
    the seconds spent grading and the number of pairs graded in them (0, 0 when all were
    stored: a resumed call times only what it graded)."""
    import time
    from contextlib import ExitStack

    from gradedrel.annotation.llm_chat import ChatAnnotator, ChatSettings
    from gradedrel.annotation.local_llm import endpoint_for

    who = AnnotatorIdentity(f"{model} (chat)", model, ChatAnnotator.prompt_version)
    with JudgementStore(store_path) as store:
        todo = [k for k in zip(items["query_id"], items["doc_id"]) if store_key(who, *k) not in store]
        start = time.perf_counter()
        if todo:
            with ExitStack() as stack:
                annotator = ChatAnnotator(endpoint_for(annotator_spec(model), stack),
                                          ChatSettings(concurrency=1, top_logprobs=top_logprobs,
                                                       max_tokens=max_tokens),
                                          name=who.name)
                annotator.model = who.model
                grade_candidates(annotator, coll, items, store)
        seconds = round(time.perf_counter() - start, 1) if todo else 0.0
        return annotation_dataset(store, who, items), seconds, len(todo)


def grade_offline(annotator, coll: Collection, items: pd.DataFrame) -> pd.DataFrame:
    """An offline annotator's grades (the rubric) of `items`, as annotated rows."""
    judgements = {(j.query_id, j.doc_id): j for j in annotator.grade(pairs_from_candidates(coll, items))}
    return items.assign(score=[judgements[k].score for k in zip(items["query_id"], items["doc_id"])],
                        annotator=annotator.name)


def run_pilot(models, reference, coll: Collection, items: pd.DataFrame, out: Path, work: Path,
              timings: dict, recompute: bool = False) -> pd.DataFrame:
    """Each model grades the pilot `items` (its rows stored as out/01_pilot_MODEL.parquet,
    its judgements in work/, its seconds in `timings`), and is scored against the
    `reference` annotator (agreement.annotator_summary): one row per model."""
    from gradedrel.annotation.agreement import annotator_summary

    ref = grade_offline(reference, coll, items)
    rows = {}
    for model in models:
        path = Path(out) / f"01_pilot_{model}.parquet"
        if recompute or not path.exists():
            graded, timings[f"pilot_{model}"], timings[f"pilot_{model}_pairs"] = grade_with_chat_model(
                model, coll, items, Path(work) / f"judgements_pilot_{model}.jsonl")
            graded.to_parquet(path, index=False)
        rows[model] = annotator_summary(ref, pd.read_parquet(path), timings.get(f"pilot_{model}") or None,
                                        timings.get(f"pilot_{model}_pairs") or None)
    return pd.DataFrame(rows).T
