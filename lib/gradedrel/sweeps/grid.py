"""Fine-tuning sweeps: which configurations, their hashes, running them into a RunStore.

A configuration (`RunSpec`) is: training languages (one: monolingual; two: a mixture,
`size` instances of each), tau, size, size reading, seed, annotator, hard-negative flag,
the half of the training articles each language draws from (`halves`: notebook 04's
mixtures from the same or from disjoint articles; empty = all training articles), and what
the run is evaluated on (`eval_scope`). The spec `BASELINE` is the un-fine-tuned encoder.
The recipe, the model, the annotation rows' fingerprint and the evaluation are shared by a
sweep (`SweepSetup`) and enter every configuration's hash, so a changed recipe or
re-annotated data never reuses a stale result.

Each run trains a fresh copy of the checkpoint with InfoNCE whose known false negatives are
masked (`training.false_negatives`), evaluates it at once and is discarded: notebooks 03-05
read the stored per-query metrics, so no fine-tuned weights are kept. `eval_scope`
"target": the training target's own language pair (notebooks 03, 04); "all": every
query-language x sentence-language pair and the pooled all-language retrieval of LAReQA
(notebook 05; the baseline and the largest runs the cross-lingual table needs).

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

import numpy as np
import pandas as pd

from gradedrel.data.collection import Collection
from gradedrel.data.split import halve_groups, split_groups
from gradedrel.paths import DATA_DIR, RESULTS_DIR
from gradedrel.sweeps.run_store import RunStore
from gradedrel.training import pairs as tp
from gradedrel.training.false_negatives import LABEL_COLUMN, FalseNegativeMask
from gradedrel.training.finetune import Recipe, fine_tune

RECIPE_VERSION = 2        # bump when training or evaluation code changes what a hash means
EVAL_MEASURES = ("nDCG@10", "RR@10")
EVAL_DEPTH = 10       # ranks kept per query: both measures stop at 10, so the values are exact
POOLED = "pooled"     # doc_lang of LAReQA's all-language retrieval (eval_scope "all")
POOLED_MEASURES = ("AP@20",)   # LAReQA's mAP@20: a question's answer sentence in every language
POOLED_DEPTH = 20
EVAL_SCOPES = ("target", "all")
OUTCOME_COLUMNS = ["configuration", "config_hash", "status", "seconds"]
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
    halves: tuple = ()          # per training language "A" or "B" (article halves); () = all
    eval_scope: str = "target"  # "target": the target's own pair; "all": every pair + pooled
    # "infonce": the threshold's positives; "kl", "kl+infonce": graded candidates as a soft
    # target (training/graded_distill.py), tau then only names the InfoNCE term's positives
    objective: str = "infonce"

    def __post_init__(self):
        if self.eval_scope not in EVAL_SCOPES:
            raise ValueError(f"eval_scope must be one of {EVAL_SCOPES}, got {self.eval_scope!r}")
        if self.objective not in ("infonce", "kl", "kl+infonce"):
            raise ValueError(f"objective must be 'infonce', 'kl' or 'kl+infonce', got {self.objective!r}")
        if self.halves and len(self.halves) != len(self.train_langs):
            raise ValueError(f"halves {self.halves} do not match training languages {self.train_langs}")

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
        halves = f" halves={''.join(self.halves)}" if self.halves else ""
        scope = " eval=all" if self.eval_scope == "all" else ""
        objective = "" if self.objective == "infonce" else f" objective={self.objective}"
        return (f"{'+'.join(self.train_langs)} tau={self.tau} {self.size_reading}={self.size} "
                f"seed={self.seed} annot={self.annotator}{hn}{halves}{scope}{objective}")


BASELINE = RunSpec(eval_scope="all")


# --- grids -------------------------------------------------------------------------------

def _size(s):
    return tp.ALL if s == tp.ALL else int(s)


def threshold_grid(langs, taus, sizes, annotators=("A",), size_reading="instances",
                   seeds=(0,), hard_negatives=False, seed_size=None, extra_seeds=(),
                   crosslingual_taus=(), crosslingual_size=None) -> list[RunSpec]:
    """Monolingual runs: every language x tau x size x seed (notebook 03). At `seed_size`
    the `extra_seeds` run too (seed variance); at `crosslingual_size` (default: the largest
    size) the first seed's runs at `crosslingual_taus` are evaluated on every language pair
    (notebook 05 reads them), the others on their own language."""
    sizes = [_size(s) for s in sizes]
    crosslingual_size = _size(crosslingual_size) if crosslingual_size is not None else sizes[-1]
    specs = []
    for annot in annotators:
        for lang in langs:
            for tau in taus:
                for size in sizes:
                    run_seeds = list(seeds) + ([s for s in extra_seeds if s not in seeds]
                                               if seed_size is not None and size == _size(seed_size) else [])
                    for seed in run_seeds:
                        scope = ("all" if int(tau) in {int(t) for t in crosslingual_taus}
                                 and size == crosslingual_size and seed == seeds[0] else "target")
                        specs.append(RunSpec((lang,), int(tau), size, size_reading, int(seed), annot,
                                             bool(hard_negatives), eval_scope=scope))
    return specs


MIXTURE_VARIANTS = {"same": ("A", "A"), "disjoint": ("A", "B")}


def mixture_grid(targets, added, taus, size, annotator="A", size_reading="instances",
                 seeds=(0,), hard_negatives=False, variants=("same", "disjoint")) -> list[RunSpec]:
    """For each target: `size` target instances alone, and with `size` of each other
    language added (notebook 04, the paper's Table 1). The target draws from half A of the
    training articles in every run; the added language from the same half ("same": on
    XQuAD, translations of the same articles, i.e. parallel augmentation) or from the other
    half ("disjoint": independent articles, as the paper's corpora are)."""
    unknown = set(variants) - set(MIXTURE_VARIANTS)
    if unknown:
        raise ValueError(f"unknown mixture variants {sorted(unknown)}; {sorted(MIXTURE_VARIANTS)}")
    specs = []
    common = dict(size=_size(size), size_reading=size_reading, annotator=annotator,
                  hard_negatives=bool(hard_negatives))
    for target in targets:
        for tau in taus:
            for seed in seeds:
                specs.append(RunSpec((target,), int(tau), seed=int(seed), halves=("A",), **common))
                specs += [RunSpec((target, other), int(tau), seed=int(seed),
                                  halves=MIXTURE_VARIANTS[variant], **common)
                          for variant in variants for other in added if other != target]
    return specs


def mixture_variant(spec: RunSpec) -> str | None:
    """"same" / "disjoint" for a mixture, None otherwise."""
    for name, halves in MIXTURE_VARIANTS.items():
        if len(spec.train_langs) == 2 and spec.halves == halves:
            return name
    return None


STUDY_PARTS = ("03", "04", "05")


def study_grid(cfg: dict, part: str, annotators=None) -> list[RunSpec]:
    """The configurations notebook `part` reads, from a profile config: "03" the threshold x
    size grid (seeds and cross-lingual scopes included), "04" the mixtures, "05" the runs
    evaluated on every language pair (a subset of 03's, the same configurations)."""
    if part in ("03", "05"):
        specs = threshold_grid(
            cfg["finetune_langs"], cfg["finetune_taus"], cfg["finetune_sizes"],
            annotators or cfg["finetune_annotators"], cfg["finetune_size_reading"],
            cfg["finetune_seeds"], cfg["finetune_hard_negatives"],
            seed_size=cfg.get("finetune_seed_size"), extra_seeds=cfg.get("finetune_extra_seeds", ()),
            crosslingual_taus=cfg.get("crosslingual_taus", ()))
        return specs if part == "03" else [s for s in specs if s.eval_scope == "all"]
    if part == "04":
        return mixture_grid(cfg["mixture_targets"], cfg["mixture_added"], cfg["mixture_taus"],
                            cfg["mixture_size"], (annotators or ["A"])[0], cfg["finetune_size_reading"],
                            cfg["finetune_seeds"], cfg["finetune_hard_negatives"],
                            variants=cfg.get("mixture_variants", ("same", "disjoint")))
    raise ValueError(f"part must be one of {STUDY_PARTS}, got {part!r}")


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
    article_halves: dict           # "A" / "B" -> training articles (mixtures)
    annotations: dict              # annotator key -> parsed train-split rows
    annotator_names: dict
    fingerprints: dict
    eval_collection: Collection
    eval_spec: dict
    store: RunStore
    encode_batch_size: int = 64
    ranked_depth: int = 0          # > 0: each run also stores its top-k ranked lists (RunStore)
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
        fields = asdict(spec)
        if fields["objective"] == "infonce":     # stored runs were hashed without the key
            del fields["objective"]
        return {**base, "kind": "finetune", **fields,
                "train_langs": list(spec.train_langs), "recipe": self.recipe.as_dict(),
                "annotator_rows": self.fingerprints.get(spec.annotator)}

    def config_hash(self, spec: RunSpec) -> str:
        blob = json.dumps(self.spec_dict(spec), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def language_rows(self, spec: RunSpec, lang: str, half: str | None) -> pd.DataFrame:
        """The annotated rows a language of `spec` draws from: all train-split rows, or
        those whose query's article is in the given half."""
        rows = self.annotations[spec.annotator]
        if half is not None:
            rows = rows[rows["query_id"].map(self.query_group).isin(self.article_halves[half])]
        return rows

    def training_rows(self, spec: RunSpec) -> tuple[pd.DataFrame, dict]:
        """The positive (query_id, doc_id[, negative_id]) rows of a configuration, and
        counts per language (instances drawn, positives kept). Raises ValueError where the
        pool is too small."""
        parts, counts = [], {"instances": {}, "positives": {}}
        for i, lang in enumerate(spec.train_langs):
            pool = self.language_rows(spec, lang, spec.halves[i] if spec.halves else None)
            sample = tp.sample_language(pool, lang, spec.size, spec.tau, spec.size_reading, spec.seed)
            positives = tp.positive_pairs(sample, spec.tau)
            if spec.hard_negatives:
                positives, neg_counts = tp.add_hard_negatives(positives, sample, spec.tau,
                                                              self.doc_group, seed=spec.seed)
                for k, v in neg_counts.items():
                    counts.setdefault(f"negatives_{k}", {})[lang] = v
            counts["instances"][lang] = len(sample)
            counts["positives"][lang] = len(positives)
            parts.append(positives)
        return pd.concat(parts, ignore_index=True), counts


def recipe_from_config(cfg: dict) -> Recipe:
    return Recipe(learning_rate=float(cfg["finetune_lr"]), batch_size=int(cfg["finetune_batch_size"]),
                  epochs=float(cfg["finetune_epochs"]), warmup_ratio=float(cfg["finetune_warmup_ratio"]),
                  max_seq_length=int(cfg["finetune_max_seq_length"]),
                  batching=cfg["finetune_batching"],
                  batch_tail=cfg.get("finetune_batch_tail", "rebalanced"))


def store_folder(profile: str) -> Path:
    return RESULTS_DIR / profile / "finetune"


def _training_collection(cfg: dict) -> Collection:
    from gradedrel.data.load import load_collection
    coll = load_collection(cfg, unit=cfg.get("unit", "paragraph"))
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
            "max_seq_length": EVAL_MAX_SEQ_LENGTH, "depth": EVAL_DEPTH,
            "pooled": {"measures": list(POOLED_MEASURES), "depth": POOLED_DEPTH}}
    return coll, spec


def annotation_folder(cfg: dict) -> Path:
    """Where notebook 01's data sets for this sweep are: `annotation_dir` if the config
    names one, else the results folder of `annotation_profile` (default: the profile)."""
    if cfg.get("annotation_dir"):
        return Path(cfg["annotation_dir"])
    return RESULTS_DIR / cfg.get("annotation_profile", cfg["profile"])


def load_annotations(folder: Path, query_group, doc_group, train_groups, check_docs: bool):
    """Annotator key -> (parsed train-split rows, annotator display name), for every
    data set notebook 01 has written into `folder`."""
    out = {}
    for key, name in ANNOTATION_FILES.items():
        path = Path(folder) / name
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
    annotations = load_annotations(annotation_folder(cfg), query_group, doc_group, parts["train"],
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
        article_halves=halve_groups(parts["train"]),
        annotations={k: v[0] for k, v in annotations.items()},
        annotator_names={k: v[1] for k, v in annotations.items()},
        fingerprints={k: tp.rows_fingerprint(v[0]) for k, v in annotations.items()},
        eval_collection=eval_coll, eval_spec=eval_spec,
        store=store or RunStore(store_folder(cfg["profile"])),
        encode_batch_size=int(cfg["batch_size"]))


def split_feasible(setup: SweepSetup, specs) -> tuple[list[RunSpec], pd.DataFrame]:
    """(specs that can run, a table of the dropped ones and why): an annotator without
    data, a size beyond a language's pool (its train-split rows, or its article half), or
    fewer than two positives."""
    keep, dropped = [], []
    for spec in specs:
        if spec.is_baseline:
            keep.append(spec)
            continue
        if spec.annotator not in setup.annotations:
            dropped.append((spec.label(), f"no dataset for annotator {spec.annotator!r}"))
            continue
        try:
            positives, _ = setup.training_rows(spec)
        except ValueError as exc:
            dropped.append((spec.label(), str(exc)))
            continue
        if len(positives) < 2:
            dropped.append((spec.label(), f"{len(positives)} positive pair(s) at tau={spec.tau}; "
                                          "in-batch negatives need 2"))
        else:
            keep.append(spec)
    return keep, pd.DataFrame(dropped, columns=["configuration", "reason"])


# --- running -----------------------------------------------------------------------------

def training_pairs(setup: SweepSetup, spec: RunSpec) -> tuple[pd.DataFrame, dict]:
    """The positive (query, passage[, negative]) texts of a configuration, with their ids
    and a `label` column of row numbers (the false-negative mask's index), and counts."""
    rows, counts = setup.training_rows(spec)
    pairs = tp.with_texts(rows, setup.texts_query, setup.texts_doc)
    if spec.hard_negatives:
        pairs["negative"] = pairs["negative_id"].map(setup.texts_doc).to_numpy()
    return pairs.assign(**{LABEL_COLUMN: range(len(pairs))}), counts


def false_negative_mask(setup: SweepSetup, spec: RunSpec, pairs: pd.DataFrame) -> FalseNegativeMask:
    """The mask of the run's batches: every grade the annotator gave on the training pool,
    the run's tau, and the articles of queries and passages."""
    return FalseNegativeMask(pairs, setup.annotations[spec.annotator], spec.tau,
                             setup.query_group, setup.doc_group)


def evaluate_model(setup: SweepSetup, model, spec: RunSpec = BASELINE, ranked_out: list | None = None) -> pd.DataFrame:
    """Per-query metrics of `spec`'s evaluation scope: "target", the target language's
    questions against its sentences; "all", every query-language x corpus-language pair of
    the evaluation collection and, per query language, the pooled retrieval over every
    language's sentences at once (LAReQA; doc_lang "pooled": all answer sentences relevant)."""
    from gradedrel.retrieval.evaluate import embed_by_language, evaluate_pairs
    from gradedrel.retrieval.metrics import evaluate
    from gradedrel.retrieval.search import search

    model.max_seq_length = EVAL_MAX_SEQ_LENGTH
    coll = setup.eval_collection
    if spec.eval_scope == "all":
        langs = coll.languages
        pairs = [(q, d) for q in langs for d in langs]
    else:
        if spec.target not in coll.languages:
            raise ValueError(f"the evaluation collection has no {spec.target!r}")
        langs, pairs = [spec.target], [(spec.target, spec.target)]
    q_emb, d_emb = embed_by_language(model, coll, setup.encode_batch_size, langs=langs,
                                     show_progress=False)
    frames = [evaluate_pairs(model, coll, pairs, k=EVAL_DEPTH, measures=EVAL_MEASURES,
                             embeddings=(q_emb, d_emb), show_progress=False)]
    if ranked_out is not None and setup.ranked_depth:
        from gradedrel.retrieval.ranked_lists import ranked_frame
        ranked_out.append(pd.concat([ranked_frame(search(q_emb[q], d_emb[d], coll.topics(q)["query_id"],
                                                coll.docs(d)["doc_id"], setup.ranked_depth), q, d)
                                     for q, d in pairs], ignore_index=True))
    if spec.eval_scope == "all":
        all_docs = pd.concat([coll.docs(lang)["doc_id"] for lang in langs], ignore_index=True)
        all_emb = np.concatenate([d_emb[lang] for lang in langs])
        for q_lang in langs:
            topics = coll.topics(q_lang)
            run = search(q_emb[q_lang], all_emb, topics["query_id"], all_docs, POOLED_DEPTH)
            per_query = evaluate(coll.qrels_dict(q_lang), run, POOLED_MEASURES)
            frames.append(per_query.assign(query_lang=q_lang, doc_lang=POOLED))
    return pd.concat(frames, ignore_index=True)[["query_lang", "doc_lang", "query_id", "measure", "value"]]


def run_one(setup: SweepSetup, spec: RunSpec) -> tuple[dict, pd.DataFrame]:
    from gradedrel.results import run_record

    record = {"config_hash": setup.config_hash(spec), "label": spec.label(),
              **setup.spec_dict(spec), "profile": setup.profile, "checkpoint": setup.checkpoint,
              "annotator_name": setup.annotator_names.get(spec.annotator)}
    start = time.perf_counter()
    model = setup.fresh_model()
    if not spec.is_baseline:
        if spec.objective != "infonce":
            from gradedrel.sweeps.graded_runs import graded_fine_tune
            outcome, extra = graded_fine_tune(setup, spec, model)
        else:
            pairs, counts = training_pairs(setup, spec)
            mask = false_negative_mask(setup, spec, pairs)
            from gradedrel.training.masked_infonce import MaskedInfoNCELoss
            loss = MaskedInfoNCELoss(model, mask, scale=setup.recipe.loss_scale)
            outcome = fine_tune(model, pairs, setup.recipe, seed=spec.seed, loss=loss)
            extra = dict(counts=counts, masked_negatives=mask.masked, in_batch_negatives=mask.candidates)
        # the trained weights are no longer the checkpoint's: no embedding cache for them
        model.model_id = None
        record.update(extra, steps=outcome.steps, train_seconds=outcome.seconds,
                      seconds_per_step=round(outcome.seconds / max(outcome.steps, 1), 3),
                      train_loss=outcome.train_loss, n_pairs=outcome.pairs,
                      gradient_checkpointing=outcome.gradient_checkpointing)
    eval_start = time.perf_counter()
    ranked: list = []
    per_query = evaluate_model(setup, model, spec, ranked_out=ranked)
    if ranked:      # the store's writer takes it out of the record (RunStore "ranked")
        record["ranked"] = ranked[0]
    record.update(eval_seconds=round(time.perf_counter() - eval_start, 2),
                  seconds=round(time.perf_counter() - start, 2))
    provenance = run_record()
    record.update({k: v for k, v in provenance.items()
                   if k not in ("packages", "torch", "transformers", "sentence_transformers")},
                  libraries=provenance["packages"])
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


# what run_and_store says of a run another process finished (and stored) first
DUPLICATE = "skipped (finished meanwhile by another process; not stored again)"


def run_and_store(setup: SweepSetup, spec: RunSpec) -> tuple[str, str, str, float | None]:
    """Run one configuration and write its record (finished or failed) to the store:
    (label, config hash, status, seconds). A failure is recorded, not raised: one bad
    configuration must not stop a sweep. The store keeps one finished record a
    configuration: a run that another process finished first is not stored again."""
    config_hash = setup.config_hash(spec)
    start = time.perf_counter()
    try:
        record, per_query = run_one(setup, spec)
    except Exception as exc:  # noqa: BLE001
        seconds = round(time.perf_counter() - start, 1)
        _release_accelerator_memory()   # e.g. after a CUDA out-of-memory error
        setup.store.write_failed(
            {"config_hash": config_hash, "label": spec.label(), **setup.spec_dict(spec),
             "profile": setup.profile, "seconds": seconds},
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
        return spec.label(), config_hash, f"failed: {type(exc).__name__}: {exc}", seconds
    if not setup.store.write_finished(record, per_query, ranked=record.pop("ranked", None)):
        return spec.label(), config_hash, DUPLICATE, record["seconds"]
    detail = (f" ({record['steps']} steps, train {record['train_seconds']:.1f} s, "
              f"eval {record['eval_seconds']:.1f} s)" if "steps" in record else "")
    return spec.label(), config_hash, "finished" + detail, record["seconds"]


def split_finished(setup: SweepSetup, specs) -> tuple[list[tuple], list[RunSpec]]:
    """The baseline and `specs` (deduplicated, in order) split into the outcome rows of those
    the store has finished ("skipped (finished)") and the specs still to run."""
    outcome, todo = [], []
    for spec in [BASELINE] + [s for s in dict.fromkeys(specs) if not s.is_baseline]:
        h = setup.config_hash(spec)
        if setup.store.is_finished(h):
            outcome.append((spec.label(), h, "skipped (finished)", None))
        else:
            todo.append(spec)
    return outcome, todo


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
        label, config_hash, status, seconds = run_and_store(setup, spec)
        outcome.append((label, config_hash, status, seconds))
        log(f"[{i}/{len(specs)}] {label}: {status}" + (f", {seconds:.1f} s" if seconds is not None else ""))
    return pd.DataFrame(outcome, columns=OUTCOME_COLUMNS)


def verify_run(setup: SweepSetup, spec: RunSpec) -> tuple[float, float | None]:
    """(fresh, stored): the mean nDCG@10 on the spec's target pair of the configuration
    trained again now, and of its run in the store (None if the store lacks it). Nothing is
    written: run_all.sh --verify's check that the training path still gives its numbers."""
    record, per_query = run_one(setup, spec)
    pair = (per_query["query_lang"] == spec.target) & (per_query["doc_lang"] == spec.target)
    fresh = float(per_query[pair & (per_query["measure"] == "nDCG@10")]["value"].mean())
    h = setup.config_hash(spec)
    stored = None
    if setup.store.is_finished(h):
        pq = setup.store.per_query(h)
        stored = float(pq[(pq["query_lang"] == spec.target) & (pq["doc_lang"] == spec.target)
                          & (pq["measure"] == "nDCG@10")]["value"].mean())
    return fresh, stored


def verify_baseline_pair(setup: SweepSetup, query_lang: str, doc_lang: str) -> float:
    """The un-fine-tuned model's mean nDCG@10 on one language pair, computed again now."""
    from gradedrel.retrieval.evaluate import evaluate_pairs

    model = setup.fresh_model()
    model.max_seq_length = EVAL_MAX_SEQ_LENGTH
    per_query = evaluate_pairs(model, setup.eval_collection, [(query_lang, doc_lang)], k=EVAL_DEPTH,
                               measures=["nDCG@10"], batch_size=setup.encode_batch_size,
                               show_progress=False)
    return float(per_query["value"].mean())
