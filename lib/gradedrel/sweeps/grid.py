"""Fine-tuning sweeps: which configurations, their hashes, running them into a RunStore.

A configuration (`RunSpec`) is: training languages (one: monolingual; two: a mixture,
`size` instances of each), tau, size, size reading, seed, annotator, hard-negative flag.
The empty spec `BASELINE` is the un-fine-tuned encoder. The recipe, the model, the
annotation rows' fingerprint and the evaluation are shared by a sweep (`SweepSetup`) and
enter every configuration's hash, so a changed recipe or re-annotated data never reuses a
stale result.

Each run trains a fresh copy of the checkpoint, evaluates it at once on every
query-language x corpus-language pair of the evaluation collection, and is discarded:
notebooks 04 and 05 read the stored per-query metrics, so no fine-tuned weights are kept.

Evaluation (`eval_dataset="xquad-r"`): XQuAD-R answer-sentence retrieval. Queries are the
questions of the held-out test articles (data/split.py, on the profile's articles); with
`eval_pool="test-articles"` (default) each corpus language's pool is the sentences of those
same articles (xquad: about 330 a language); with "all-articles" it is all of the
language's sentences (about 1200; training articles' sentences as distractors).
"""
from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from gradedrel.data.collection import Collection
from gradedrel.data.split import split_groups
from gradedrel.paths import DATA_DIR, RESULTS_DIR
from gradedrel.sweeps.run_store import RunStore
from gradedrel.training import pairs as tp
from gradedrel.training.finetune import Recipe, fine_tune

RECIPE_VERSION = 1        # bump when training or evaluation code changes what a hash means
EVAL_MEASURES = ("nDCG@10", "RR@10")
EVAL_DEPTH = 10       # ranks kept per query: both measures stop at 10, so the values are exact
EVAL_MAX_SEQ_LENGTH = 512
# annotator key -> the dataset notebook 01 writes for it (A: the paper's down-sampled pool)
ANNOTATION_FILES = {
    "A": "01_downsampled.parquet",
    "B_chat": "01_annotations_B_chat.parquet",
    "B_nexttoken": "01_annotations_B_nexttoken.parquet",
}


@dataclass(frozen=True)
class RunSpec:
    train_langs: tuple = ()
    tau: int | None = None
    size: int | str | None = None        # per training language; "all" = whole train pool
    size_reading: str = "instances"
    seed: int = 0
    annotator: str | None = None
    hard_negatives: bool = False

    @property
    def is_baseline(self) -> bool:
        return not self.train_langs

    @property
    def target(self) -> str | None:
        return self.train_langs[0] if self.train_langs else None

    def label(self) -> str:
        if self.is_baseline:
            return "baseline"
        hn = " +hardneg" if self.hard_negatives else ""
        return (f"{'+'.join(self.train_langs)} tau={self.tau} {self.size_reading}={self.size} "
                f"seed={self.seed} annot={self.annotator}{hn}")


BASELINE = RunSpec()


# --- grids -------------------------------------------------------------------------------

def _size(s):
    return tp.ALL if s == tp.ALL else int(s)


def threshold_grid(langs, taus, sizes, annotators=("A",), size_reading="instances",
                   seeds=(0,), hard_negatives=False) -> list[RunSpec]:
    """Monolingual runs: every language x tau x size (notebook 03)."""
    return [RunSpec((lang,), int(tau), _size(size), size_reading, int(seed), annot, bool(hard_negatives))
            for annot in annotators for lang in langs for tau in taus for size in sizes
            for seed in seeds]


def mixture_grid(targets, added, taus, size, annotator="A", size_reading="instances",
                 seeds=(0,), hard_negatives=False) -> list[RunSpec]:
    """For each target: `size` target instances alone, and with `size` of each other
    language added (notebook 04, the paper's Table 1)."""
    specs = []
    for target in targets:
        for tau in taus:
            for seed in seeds:
                specs.append(RunSpec((target,), int(tau), _size(size), size_reading, int(seed),
                                     annotator, bool(hard_negatives)))
                specs += [RunSpec((target, other), int(tau), _size(size), size_reading,
                                  int(seed), annotator, bool(hard_negatives))
                          for other in added if other != target]
    return specs


# --- setup -------------------------------------------------------------------------------

@dataclass
class SweepSetup:
    profile: str
    encoder: str                   # the model's identity (enters hashes)
    checkpoint: str                # the load_encoder spec actually used (maybe pruned)
    recipe: Recipe
    texts_query: pd.Series         # query_id -> text (training queries)
    texts_doc: pd.Series           # doc_id -> text (training passages)
    query_group: pd.Series
    doc_group: pd.Series
    train_groups: list
    test_groups: list
    annotations: dict              # annotator key -> parsed train-split rows
    annotator_names: dict
    fingerprints: dict
    eval_collection: Collection
    eval_spec: dict
    store: RunStore
    encode_batch_size: int = 64
    _base_model: object = field(default=None, repr=False)

    def fresh_model(self):
        """A private copy of the checkpoint: loaded once, deep-copied for each run (loading
        from disk costs seconds a run on the CPU)."""
        import copy

        from gradedrel.models.encoders import load_encoder
        if self.checkpoint is None:
            raise RuntimeError("this setup was prepared with build_checkpoint=False; it can "
                               "read results but not run")
        if self._base_model is None:
            self._base_model = load_encoder(self.checkpoint)
        model = copy.deepcopy(self._base_model)
        model.model_id = self._base_model.model_id
        return model

    def spec_dict(self, spec: RunSpec) -> dict:
        """Everything that determines a run's numbers."""
        base = {"recipe_version": RECIPE_VERSION, "model": self.encoder, "eval": self.eval_spec}
        if spec.is_baseline:
            return {**base, "kind": "baseline"}
        return {**base, "kind": "finetune", **asdict(spec),
                "train_langs": list(spec.train_langs), "recipe": self.recipe.as_dict(),
                "annotator_rows": self.fingerprints.get(spec.annotator)}

    def config_hash(self, spec: RunSpec) -> str:
        blob = json.dumps(self.spec_dict(spec), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recipe_from_config(cfg: dict) -> Recipe:
    return Recipe(learning_rate=float(cfg["finetune_lr"]), batch_size=int(cfg["finetune_batch_size"]),
                  epochs=float(cfg["finetune_epochs"]), warmup_ratio=float(cfg["finetune_warmup_ratio"]),
                  max_seq_length=int(cfg["finetune_max_seq_length"]),
                  batching=cfg["finetune_batching"])


def store_folder(profile: str) -> Path:
    return RESULTS_DIR / profile / "finetune"


def _training_collection(cfg: dict) -> Collection:
    from gradedrel.data.load import load_collection
    coll = load_collection(cfg)
    if cfg.get("query_source") == "llm":
        from gradedrel.annotation.pipeline import read_jsonl, with_generated_queries
        path = DATA_DIR / "annotation" / cfg["profile"] / "generated_queries.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: run notebook 01 first (query_source='llm')")
        coll = with_generated_queries(coll, read_jsonl(path))
    return coll


def evaluation_collection(cfg: dict, training: Collection, test_groups) -> tuple[Collection, dict]:
    dataset, pool = cfg["eval_dataset"], cfg["eval_pool"]
    if dataset == "xquad-r":
        from gradedrel.data.xquad_r import load_xquad_r
        full = load_xquad_r(cfg["eval_langs"])
        test_queries = full.queries.loc[full.queries["group"].isin(test_groups), "query_id"]
        if pool == "test-articles":
            coll = full.subset(groups=test_groups)
        elif pool == "all-articles":
            coll = full.subset(query_ids=test_queries)
        else:
            raise ValueError(f"eval_pool must be 'test-articles' or 'all-articles', got {pool!r}")
    elif dataset == "profile":
        coll = training.subset(groups=test_groups)
    else:
        raise ValueError(f"eval_dataset must be 'xquad-r' or 'profile', got {dataset!r}")
    if coll.queries.empty:
        raise ValueError(f"the evaluation collection ({dataset}, {pool}) has no queries")
    spec = {"dataset": dataset, "pool": pool, "langs": sorted(coll.languages),
            "test_groups": sorted(test_groups), "measures": list(EVAL_MEASURES),
            "max_seq_length": EVAL_MAX_SEQ_LENGTH, "depth": EVAL_DEPTH}
    return coll, spec


def load_annotations(profile: str, query_group, doc_group, train_groups, check_docs: bool):
    """Annotator key -> (parsed train-split rows, annotator display name), for every
    dataset notebook 01 has written for the profile."""
    out = {}
    for key, name in ANNOTATION_FILES.items():
        path = RESULTS_DIR / profile / name
        if not path.exists():
            continue
        raw = pd.read_parquet(path)
        rows = tp.train_split_rows(tp.parsed_rows(raw), query_group, doc_group, train_groups,
                                   check_docs=check_docs)
        display = str(raw["annotator"].iloc[0]) if len(raw) and "annotator" in raw else key
        out[key] = (rows, display)
    return out


def prepare_sweep(cfg: dict, store: RunStore | None = None, build_checkpoint: bool = True) -> SweepSetup:
    """Everything a sweep needs, from a profile config (see config.py's finetune keys).
    `build_checkpoint=False` skips making the pruned checkpoint (reading results only)."""
    training = _training_collection(cfg)
    parts = split_groups(training.queries["group"])
    query_group = training.queries.set_index("query_id")["group"]
    doc_group = training.corpus.set_index("doc_id")["group"]
    annotations = load_annotations(cfg["profile"], query_group, doc_group, parts["train"],
                                   check_docs=training.shares_groups)
    eval_coll, eval_spec = evaluation_collection(cfg, training, parts["test"])
    choice = cfg["finetune_encoder"]
    # the model's identity: pruning changes no embedding of the sweep's texts
    encoder = cfg["encoder"] if choice in ("pruned", "profile") else choice
    if choice == "pruned":
        checkpoint = None
        if build_checkpoint:
            from gradedrel.models.pruned_checkpoint import pruned_e5_for
            texts = pd.concat([training.queries["text"], training.corpus["text"],
                               eval_coll.queries["text"], eval_coll.corpus["text"]])
            checkpoint = pruned_e5_for(texts, cfg["encoder"])
    else:
        checkpoint = encoder
    return SweepSetup(
        profile=cfg["profile"], encoder=encoder, checkpoint=checkpoint, recipe=recipe_from_config(cfg),
        texts_query=training.queries.set_index("query_id")["text"],
        texts_doc=training.corpus.set_index("doc_id")["text"],
        query_group=query_group, doc_group=doc_group,
        train_groups=parts["train"], test_groups=parts["test"],
        annotations={k: v[0] for k, v in annotations.items()},
        annotator_names={k: v[1] for k, v in annotations.items()},
        fingerprints={k: tp.rows_fingerprint(v[0]) for k, v in annotations.items()},
        eval_collection=eval_coll, eval_spec=eval_spec,
        store=store or RunStore(store_folder(cfg["profile"])),
        encode_batch_size=int(cfg["batch_size"]))


def split_feasible(setup: SweepSetup, specs) -> tuple[list[RunSpec], pd.DataFrame]:
    """(specs that can run, a table of the dropped ones and why): an annotator without
    data, or a size beyond a language's train-split pool."""
    keep, dropped = [], []
    for spec in specs:
        if spec.is_baseline:
            keep.append(spec)
            continue
        if spec.annotator not in setup.annotations:
            dropped.append((spec.label(), f"no dataset for annotator {spec.annotator!r}"))
            continue
        rows, reason, n_pos = setup.annotations[spec.annotator], None, 0
        for lang in spec.train_langs:
            try:
                sample = tp.sample_language(rows, lang, spec.size, spec.tau, spec.size_reading,
                                            spec.seed)
            except ValueError as exc:
                reason = str(exc)
                break
            n_pos += int(tp.binarise(sample, spec.tau).sum())
        if reason is None and n_pos < 2:
            reason = f"{n_pos} positive pair(s) at tau={spec.tau}; in-batch negatives need 2"
        if reason:
            dropped.append((spec.label(), reason))
        else:
            keep.append(spec)
    return keep, pd.DataFrame(dropped, columns=["configuration", "reason"])


# --- running -----------------------------------------------------------------------------

def training_pairs(setup: SweepSetup, spec: RunSpec) -> tuple[pd.DataFrame, dict]:
    """The positive (query, passage[, negative]) texts of a configuration, and counts."""
    rows = setup.annotations[spec.annotator]
    parts, counts = [], {"instances": {}, "positives": {}}
    for lang in spec.train_langs:
        sample = tp.sample_language(rows, lang, spec.size, spec.tau, spec.size_reading, spec.seed)
        positives = tp.positive_pairs(sample, spec.tau)
        if spec.hard_negatives:
            positives, neg_counts = tp.add_hard_negatives(positives, sample, spec.tau,
                                                          setup.doc_group, seed=spec.seed)
            for k, v in neg_counts.items():
                counts.setdefault(f"negatives_{k}", {})[lang] = v
        counts["instances"][lang] = len(sample)
        counts["positives"][lang] = len(positives)
        parts.append(positives)
    pairs = tp.with_texts(pd.concat(parts, ignore_index=True), setup.texts_query, setup.texts_doc)
    if spec.hard_negatives:
        pairs["negative"] = pairs["negative_id"].map(setup.texts_doc).to_numpy()
    return pairs, counts


def evaluate_model(setup: SweepSetup, model) -> pd.DataFrame:
    """Per-query metrics on every query-language x corpus-language pair of the evaluation
    collection (retrieval.evaluate.evaluate_pairs' computation, without progress bars)."""
    from gradedrel.retrieval.encode import encode
    from gradedrel.retrieval.metrics import evaluate
    from gradedrel.retrieval.search import search

    model.max_seq_length = EVAL_MAX_SEQ_LENGTH
    coll, frames = setup.eval_collection, []
    langs = coll.languages
    q_emb = {lang: encode(model, coll.topics(lang)["text"], "query", setup.encode_batch_size,
                          show_progress=False) for lang in langs}
    d_emb = {lang: encode(model, coll.docs(lang)["text"], "passage", setup.encode_batch_size,
                          show_progress=False) for lang in langs}
    for q_lang in langs:
        for d_lang in langs:
            topics, docs = coll.topics(q_lang), coll.docs(d_lang)
            run = search(q_emb[q_lang], d_emb[d_lang], topics["query_id"], docs["doc_id"], EVAL_DEPTH)
            per_query = evaluate(coll.qrels_dict(q_lang, d_lang), run, EVAL_MEASURES)
            frames.append(per_query.assign(query_lang=q_lang, doc_lang=d_lang))
    return pd.concat(frames, ignore_index=True)[["query_lang", "doc_lang", "query_id", "measure", "value"]]


def run_one(setup: SweepSetup, spec: RunSpec) -> tuple[dict, pd.DataFrame]:
    from gradedrel.results import run_record

    record = {"config_hash": setup.config_hash(spec), "label": spec.label(),
              **setup.spec_dict(spec), "profile": setup.profile, "checkpoint": setup.checkpoint,
              "annotator_name": setup.annotator_names.get(spec.annotator)}
    start = time.perf_counter()
    model = setup.fresh_model()
    if not spec.is_baseline:
        pairs, counts = training_pairs(setup, spec)
        outcome = fine_tune(model, pairs, setup.recipe, seed=spec.seed)
        # the trained weights are no longer the checkpoint's: no embedding cache for them
        model.model_id = None
        record.update(counts=counts, steps=outcome.steps, train_seconds=outcome.seconds,
                      seconds_per_step=round(outcome.seconds / max(outcome.steps, 1), 3),
                      train_loss=outcome.train_loss, n_pairs=outcome.pairs)
    eval_start = time.perf_counter()
    per_query = evaluate_model(setup, model)
    record.update(eval_seconds=round(time.perf_counter() - eval_start, 2),
                  seconds=round(time.perf_counter() - start, 2))
    provenance = run_record()
    record.update(date=provenance.pop("date"), device=provenance.pop("device"),
                  git_commit=provenance.pop("git_commit"), libraries=provenance)
    return record, per_query


def _release_accelerator_memory() -> None:
    import gc
    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def run_sweep(setup: SweepSetup, specs, log=print) -> pd.DataFrame:
    """Run every configuration not yet finished in the store (the baseline first); a
    failure is recorded and the sweep goes on. Returns what happened to each."""
    specs = [BASELINE] + [s for s in dict.fromkeys(specs) if not s.is_baseline]
    outcome = []
    for i, spec in enumerate(specs, 1):
        config_hash = setup.config_hash(spec)
        if setup.store.is_finished(config_hash):
            outcome.append((spec.label(), config_hash, "skipped (finished)", None))
            continue
        start = time.perf_counter()
        try:
            record, per_query = run_one(setup, spec)
        except Exception as exc:  # noqa: BLE001 -- one bad configuration must not stop a sweep
            seconds = round(time.perf_counter() - start, 1)
            _release_accelerator_memory()   # e.g. after a CUDA out-of-memory error
            setup.store.write_failed(
                {"config_hash": config_hash, "label": spec.label(), **setup.spec_dict(spec),
                 "profile": setup.profile, "seconds": seconds},
                error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
            outcome.append((spec.label(), config_hash, f"failed: {type(exc).__name__}: {exc}", seconds))
            log(f"[{i}/{len(specs)}] FAILED {spec.label()}: {type(exc).__name__}: {exc}")
            continue
        setup.store.write_finished(record, per_query)
        outcome.append((spec.label(), config_hash, "finished", record["seconds"]))
        log(f"[{i}/{len(specs)}] {spec.label()}: {record['seconds']:.1f} s"
            + (f" ({record['steps']} steps, train {record['train_seconds']:.1f} s, "
               f"eval {record['eval_seconds']:.1f} s)" if "steps" in record else ""))
    return pd.DataFrame(outcome, columns=["configuration", "config_hash", "status", "seconds"])
