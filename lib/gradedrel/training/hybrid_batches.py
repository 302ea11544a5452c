"""Hybrid mono-/cross-lingual batches (arXiv 2408.10536, seed 004): every training batch is
drawn from one source, either a monolingual one (question and answer sentence in the same
language; one source a language) or the cross-lingual one (question in l, the parallel
answer sentence in l' != l); alpha is the share of monolingual batches.

  hybrid_pairs             XQuAD-R training articles -> the pairs of every source
  parallel_relevance       which sentences answer each training question, in every language
  parallel_mask            a FalseNegativeMask from it: a parallel copy of a positive (the
                           same question's answer sentence in another language) is never an
                           in-batch negative, whichever batch the sampler builds
  HybridBatchSampler       sentence-transformers' MultiDatasetDefaultBatchSampler, one source
                           a batch, alpha the share of monolingual batches
  source_batch_sampler     inside each source: the project's length-bucketed batches without
                           duplicate texts (training/length_bucketing.py)
  fine_tune_hybrid         the trainer on a DatasetDict of sources with both samplers

With `draw="quota"` (default) an epoch holds exactly round(alpha * n) monolingual batches
in a seeded random order, so the realised alpha is the asked one to 1/n; with "bernoulli"
each batch is monolingual with probability alpha (the paper's wording), realised alpha
binomial. A monolingual batch picks its language uniformly. A source whose batches run out
starts a fresh pass (the next inner epoch), so any alpha can fill `num_batches` steps.
"""
from __future__ import annotations

import tempfile
import time
from functools import partial
from itertools import accumulate

import numpy as np
import pandas as pd

from gradedrel.training.false_negatives import LABEL_COLUMN, FalseNegativeMask

CROSS = "cross"
MONO_PREFIX = "mono_"
DRAWS = ("quota", "bernoulli")
DATASET_NAME_COLUMN = "dataset_name"      # the trainer's column naming a row's source


def mono_source(lang: str) -> str:
    return f"{MONO_PREFIX}{lang}"


def source_kind(name: str) -> str:
    """"mono" or "cross" for a source name (mono_LANG or cross)."""
    if name == CROSS:
        return "cross"
    if name.startswith(MONO_PREFIX) and len(name) > len(MONO_PREFIX):
        return "mono"
    raise ValueError(f"a source is {MONO_PREFIX}LANG or {CROSS!r}, not {name!r}")


# --- training pairs ----------------------------------------------------------------------

def hybrid_pairs(coll, train_groups, langs) -> pd.DataFrame:
    """Every training pair of every source, from an XQuAD-R collection's training articles:
    for each question (language l in `langs`, article in `train_groups`) its answer
    sentence in l (source mono_l) and in every other l' of `langs` (source "cross").
    Columns: source, query_id, doc_id, query_lang, doc_lang, base_id, query, passage,
    label (row number: the false-negative mask's index)."""
    langs = sorted(set(langs))
    if len(langs) < 2:
        raise ValueError(f"cross-lingual pairs need at least two languages, got {langs}")
    missing = sorted(set(langs) - set(coll.languages))
    if missing:
        raise ValueError(f"the collection has no {missing}")
    train_groups = set(train_groups)
    q = coll.queries[coll.queries["lang"].isin(langs) & coll.queries["group"].isin(train_groups)]
    if q.empty:
        raise ValueError("no training questions in those articles and languages")
    gold = q[["base_id", "lang", "gold_doc_id"]].rename(columns={"lang": "doc_lang",
                                                                  "gold_doc_id": "doc_id"})
    pairs = (q[["query_id", "lang", "base_id", "text"]].rename(columns={"lang": "query_lang",
                                                                        "text": "query"})
             .merge(gold, on="base_id"))
    doc_text = coll.corpus.set_index("doc_id")["text"]
    pairs["passage"] = pairs["doc_id"].map(doc_text)
    if pairs["passage"].isna().any():
        raise ValueError("answer sentences missing from the corpus")
    pairs["source"] = np.where(pairs["query_lang"] == pairs["doc_lang"],
                               MONO_PREFIX + pairs["query_lang"], CROSS)
    pairs = pairs.sort_values(["source", "query_id", "doc_lang"]).reset_index(drop=True)
    pairs[LABEL_COLUMN] = np.arange(len(pairs))
    return pairs[["source", "query_id", "doc_id", "query_lang", "doc_lang", "base_id",
                  "query", "passage", LABEL_COLUMN]]


def parallel_relevance(coll, pairs: pd.DataFrame) -> pd.DataFrame:
    """(query_id, doc_id, score=1) for every training question of `pairs` and the answer
    sentence of its base question in every language of the collection: its positive and
    the positive's parallel copies, which must never be its negatives. A sentence that
    answers two questions (in some language) is relevant to both, so neither sees it as a
    negative; sentences that merely sit beside a copy are not masked."""
    gold = coll.queries[["base_id", "gold_doc_id"]].rename(columns={"gold_doc_id": "doc_id"})
    rel = pairs[["query_id", "base_id"]].drop_duplicates().merge(gold, on="base_id")
    return rel[["query_id", "doc_id"]].drop_duplicates().assign(score=1).reset_index(drop=True)


def parallel_mask(pairs: pd.DataFrame, relevance: pd.DataFrame) -> FalseNegativeMask:
    """The batches' mask: a row's query never sees a sentence relevant to it (any language)
    as a negative. No article rule: other sentences of the question's article stay
    negatives, as in the paper's plain in-batch InfoNCE."""
    empty = pd.Series(dtype=object)
    return FalseNegativeMask(pairs, relevance, tau=1, query_group=empty, doc_group=empty)


# --- samplers ----------------------------------------------------------------------------

def source_batch_sampler(lengths_by_label, tail: str = "rebalanced"):
    """The `batch_sampler` callable for each source: length-bucketed batches without
    duplicate texts (LengthBucketedBatchSampler), each row's length looked up by its label
    (global row number). The trainer's dataset-name column is not a text of the row."""
    from gradedrel.training.length_bucketing import LengthBucketedBatchSampler

    lengths_by_label = np.asarray(lengths_by_label)

    def make(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        labels = np.asarray(dataset[LABEL_COLUMN])
        excluded = list(valid_label_columns or []) + [DATASET_NAME_COLUMN]
        return LengthBucketedBatchSampler(dataset, batch_size, drop_last, excluded, generator,
                                          seed, lengths=lengths_by_label[labels], tail=tail)
    return make


def _base_sampler():
    from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler
    return MultiDatasetDefaultBatchSampler


class HybridBatchSampler(_base_sampler()):
    """One source a batch: monolingual with share alpha, cross-lingual otherwise.
    `kinds[i]` is "mono" or "cross" for the i-th dataset of the ConcatDataset (the
    DatasetDict's order); `num_batches` batches an epoch (default: all the sources'
    batches once). Every epoch is a fixed function of (seed, epoch)."""

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, *, kinds,
                 alpha: float, num_batches: int | None = None, draw: str = "quota"):
        super().__init__(dataset, batch_samplers, generator=generator, seed=seed)
        kinds = list(kinds)
        if len(kinds) != len(batch_samplers):
            raise ValueError(f"{len(kinds)} source kinds for {len(batch_samplers)} sources")
        if set(kinds) - {"mono", "cross"}:
            raise ValueError(f"source kinds are 'mono' or 'cross', got {sorted(set(kinds))}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha is a share of batches in [0, 1], got {alpha!r}")
        if draw not in DRAWS:
            raise ValueError(f"draw must be one of {DRAWS}, got {draw!r}")
        if alpha > 0 and "mono" not in kinds:
            raise ValueError(f"alpha={alpha} asks for monolingual batches and there is no mono source")
        if alpha < 1 and "cross" not in kinds:
            raise ValueError(f"alpha={alpha} asks for cross-lingual batches and there is no cross source")
        self.kinds, self.alpha, self.draw = kinds, float(alpha), draw
        self.num_batches = int(num_batches) if num_batches is not None else sum(
            len(s) for s in batch_samplers)
        if self.num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {self.num_batches}")
        self.offsets = [0] + list(accumulate(len(d) for d in dataset.datasets))

    def __len__(self) -> int:
        return self.num_batches

    def plan(self, epoch: int | None = None) -> list[int]:
        """The source index of each batch of an epoch."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, 7])
        n = self.num_batches
        if self.draw == "quota":
            mono = np.zeros(n, dtype=bool)
            mono[:int(round(self.alpha * n))] = True
            mono = rng.permutation(mono)
        else:
            mono = rng.random(n) < self.alpha
        mono_sources = [i for i, k in enumerate(self.kinds) if k == "mono"]
        cross_sources = [i for i, k in enumerate(self.kinds) if k == "cross"]
        return [int(rng.choice(mono_sources)) if m else int(rng.choice(cross_sources)) for m in mono]

    def _batches(self, i: int):
        """Source i's batches, pass after pass (each pass a fresh inner epoch)."""
        sampler = self.batch_samplers[i]
        for p in range(10_000):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch * 10_000 + p)
            got = False
            for batch in sampler:
                got = True
                yield [int(r) + self.offsets[i] for r in batch]
            if not got:
                raise ValueError(f"source {i} yields no batch")

    def __iter__(self):
        streams = {}
        for i in self.plan():
            if i not in streams:
                streams[i] = self._batches(i)
            yield next(streams[i])


def hybrid_batch_sampler(kinds, alpha: float, num_batches: int | None = None, draw: str = "quota"):
    """The `multi_dataset_batch_sampler` callable for SentenceTransformerTrainingArguments."""
    return partial(HybridBatchSampler, kinds=list(kinds), alpha=alpha, num_batches=num_batches,
                   draw=draw)


def batch_sources(batches, sizes) -> list[int]:
    """The source of each batch (indices into a ConcatDataset of datasets of `sizes`);
    ValueError naming the batch where one mixes sources."""
    bounds = np.cumsum([0] + list(sizes))
    out = []
    for b, batch in enumerate(batches):
        src = set(np.searchsorted(bounds, np.asarray(batch), side="right") - 1)
        if len(src) != 1:
            raise ValueError(f"batch {b} mixes sources {sorted(int(s) for s in src)}")
        out.append(int(src.pop()))
    return out


# --- the trainer -------------------------------------------------------------------------

def fine_tune_hybrid(model, pairs: pd.DataFrame, recipe, alpha: float, num_batches: int,
                     loss, seed: int = 0, draw: str = "quota"):
    """Train `model` in place on the sources of `pairs` (hybrid_pairs' columns) for
    `num_batches` steps (one epoch of the hybrid sampler), `recipe` (training.finetune.
    Recipe: lr, batch size, warm-up, max length, loss scale) and `loss` (e.g. MaskedInfoNCELoss
    with parallel_mask). Returns (TrainingOutcome, BatchLog): the batches the loss saw,
    read from its mask's calls (a loss with a `mask`, as MaskedInfoNCELoss), else the
    sampler's plan. A batch that mixes sources is an error (it cannot happen by design)."""
    from gradedrel.config import forbid_in_redraw
    forbid_in_redraw("training a model")
    import torch
    from datasets import Dataset, DatasetDict
    from sentence_transformers.sentence_transformer import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback

    from gradedrel.training.finetune import TrainingOutcome, set_checkpointing, training_prompts
    from gradedrel.training.length_bucketing import token_lengths

    if not (pairs[LABEL_COLUMN].to_numpy() == np.arange(len(pairs))).all():
        raise ValueError(f"the {LABEL_COLUMN!r} column must be the row numbers 0..n-1")
    names = sorted(pairs["source"].unique())
    kinds = [source_kind(n) for n in names]
    dataset = DatasetDict({n: Dataset.from_pandas(
        pairs.loc[pairs["source"] == n, ["query", "passage", LABEL_COLUMN]].reset_index(drop=True),
        preserve_index=False) for n in names})
    model.max_seq_length = recipe.max_seq_length
    lengths = token_lengths(model.tokenizer, pairs["passage"], recipe.max_seq_length)
    cuda = torch.cuda.is_available()
    set_checkpointing(model, False)
    model.model_card_data.generate_widget_examples = False
    sampler = hybrid_batch_sampler(kinds, alpha, num_batches, draw)
    with tempfile.TemporaryDirectory(prefix="gradedrel-hybrid-") as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, per_device_train_batch_size=recipe.batch_size, num_train_epochs=1,
            learning_rate=recipe.learning_rate, warmup_steps=recipe.warmup_ratio,
            lr_scheduler_type=recipe.scheduler, weight_decay=recipe.weight_decay,
            batch_sampler=source_batch_sampler(lengths, recipe.batch_tail),
            multi_dataset_batch_sampler=sampler, prompts=training_prompts(model),
            bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0, seed=seed, data_seed=seed,
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        trainer.remove_callback(PrinterCallback)
        seen = _record_batches(loss)
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    model.eval()
    if seen is not None:
        log = BatchLog.of(seen, pairs["source"].to_numpy(), source="the loss's batches")
    else:
        plan = _planned_sources(kinds, alpha, num_batches, draw, seed, [len(dataset[n]) for n in names])
        log = BatchLog([names[i] for i in plan], source="the sampler's plan")
    outcome = TrainingOutcome(steps=int(trainer.state.global_step), seconds=round(seconds, 2),
                              pairs=int(trainer.state.global_step) * recipe.batch_size,
                              train_loss=float(result.training_loss)
                              if result.training_loss is not None else None)
    return outcome, log


def _record_batches(loss):
    """Wrap the loss's mask so that each batch's rows (labels) are kept; None without one."""
    mask = getattr(loss, "mask", None)
    if mask is None or not hasattr(mask, "batch_mask"):
        return None
    seen, inner = [], mask.batch_mask

    def batch_mask(rows):
        rows = [int(r) for r in rows]
        seen.append(rows)
        return inner(rows)
    mask.batch_mask = batch_mask
    return seen


class BatchLog:
    """The source of each training batch and the realised share of monolingual ones."""

    def __init__(self, sources, source: str):
        self.sources, self.read_from = list(sources), source

    @classmethod
    def of(cls, batches, row_sources, source: str) -> "BatchLog":
        out = []
        for b, rows in enumerate(batches):
            kinds = set(row_sources[rows])
            if len(kinds) != 1:
                raise ValueError(f"training batch {b} mixes sources {sorted(kinds)}")
            out.append(kinds.pop())
        return cls(out, source)

    @property
    def realised_alpha(self) -> float:
        return float(np.mean([source_kind(s) == "mono" for s in self.sources])) if self.sources else float("nan")

    def counts(self) -> dict:
        return {str(k): int(v) for k, v in pd.Series(self.sources).value_counts().sort_index().items()}


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _planned_sources(kinds, alpha, num_batches, draw, seed, sizes) -> list[int]:
    """The source index of each batch in epoch 0 of the sampler the trainer used (its plan
    depends only on kinds, alpha, num_batches, draw and seed)."""
    from torch.utils.data import ConcatDataset
    stub = HybridBatchSampler(ConcatDataset([_Sized(n) for n in sizes]),
                              [_StubSampler() for _ in sizes], seed=seed, kinds=kinds,
                              alpha=alpha, num_batches=num_batches, draw=draw)
    return stub.plan(0)


class _StubSampler:
    batch_size, drop_last = 1, False

    def __len__(self):
        return 1
