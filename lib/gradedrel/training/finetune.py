"""Contrastive fine-tuning of a SentenceTransformer on positive (query, passage) pairs.

The threshold paper's recipe (Appendix A) as defaults: InfoNCE with in-batch negatives
(sentence-transformers' MultipleNegativesRankingLoss, scale 20 = temperature 0.05),
batch 32, 5% linear warm-up then linear decay, two epochs, the same schedule for every
configuration. The learning rate is the one knob the paper sets per model (1e-6 for
multilingual-e5-large); for me5-small we default to 1e-5 (see `ME5_SMALL_LR`).

Batches never hold the same text twice: with several positives per query at low
thresholds, a query's other positive passage would otherwise sit in its own batch as a
false in-batch negative. By default they are also length-bucketed (`length_bucketing`:
similar-length pairs share a batch, so little of a step is padding); `batching=
"no_duplicates"` is sentence-transformers' own random no-duplicates sampler. e5's
`query: ` / `passage: ` prefixes are training-argument prompts, per column.

`Speed` holds what changes the speed but not the recipe: bf16 autocast and TF32 (CUDA
only: bf16 autocast on CPU is several times slower), fused AdamW, data-loader workers
that tokenise the next batch while the GPU works, torch.compile, gradient checkpointing.
One seed fixes sampling, shuffling and dropout.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass

import pandas as pd

PAPER_ME5_LARGE_LR = 1e-6
# me5-small: the paper's 1e-6 was set for me5-large and thousands of steps (up to 300K
# instances a language, batch 32); an XQuAD language gives about 10-200 steps, where 1e-6
# would leave the weights almost where they were (lr x steps ~100x below the paper's). The
# transformers / sentence-transformers default, 5e-5, would let a few hundred pairs overwrite
# the pre-trained relevance structure whose interaction with tau is the object of study.
# 1e-5 sits between: 10x the paper's rate for a model ~1/5 its size (118M vs 560M
# parameters; smaller encoders are usually fine-tuned at higher rates). A parameter of
# every notebook (`learning_rate`); worth a {1e-6, 1e-5, 3e-5} check on one language on a GPU.
ME5_SMALL_LR = 1e-5


# "random" is sentence-transformers' plain sampler (a text may repeat in a batch)
BATCHINGS = ("length_bucketed", "no_duplicates", "random")

# Attention's backward keeps every layer's batch x heads x L x L scores on the CPU: one
# step on 32 pairs of 355-token passages (the longest Russian XQuAD-R sentences) peaked at
# 12.7 GB, 4.1 GB with gradient checkpointing, whose gradients are bit-identical (tests) for
# about a third more compute. So it is a speed setting, on by default on the CPU where a
# training text is longer than this (English XQuAD-R sentences stop at 131 tokens).
CHECKPOINT_ABOVE_TOKENS = 256


@dataclass(frozen=True)
class Recipe:
    learning_rate: float = ME5_SMALL_LR
    batch_size: int = 32
    epochs: float = 2.0
    warmup_ratio: float = 0.05
    scheduler: str = "linear"
    max_seq_length: int = 512     # training truncation (prompt included)
    weight_decay: float = 0.0
    loss_scale: float = 20.0      # MultipleNegativesRankingLoss default (temperature 0.05)
    batching: str = "length_bucketed"   # or "no_duplicates" (random), "random" (may repeat texts)
    batch_tail: str = "rebalanced"      # length_bucketed's end-of-epoch fill (length_bucketing.TAILS)

    def __post_init__(self):
        if self.learning_rate <= 0 or self.batch_size < 2 or self.epochs <= 0:
            raise ValueError(f"bad recipe {self}: learning_rate > 0, batch_size >= 2 "
                             "(in-batch negatives need a batch), epochs > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, got {self.batching!r}")
        if self.batch_tail not in ("rebalanced", "greedy"):
            raise ValueError(f"batch_tail must be 'rebalanced' or 'greedy', got {self.batch_tail!r}")

    def as_dict(self) -> dict:
        # the runs stored before the tail could be rebalanced were greedy and hashed
        # without the key; they keep their hashes
        d = asdict(self)
        if d["batch_tail"] == "greedy":
            del d["batch_tail"]
        return d


@dataclass
class TrainingOutcome:
    steps: int
    seconds: float
    pairs: int
    train_loss: float | None
    gradient_checkpointing: bool = False


def training_prompts(model) -> dict[str, str]:
    """Column -> prefix, from the model's own prompts (e5: query: / passage: )."""
    prompts = getattr(model, "prompts", None) or {}
    query = prompts.get("query", "")
    passage = prompts.get("passage", prompts.get("document", ""))
    return {"query": query, "passage": passage, "negative": passage}


@dataclass(frozen=True)
class Speed:
    """Settings that change the speed, not the recipe; None means "on where it pays"
    (CUDA). `plain()` is sentence-transformers' defaults, the benchmark's reference."""
    bf16: bool | None = None
    tf32: bool | None = None
    fused_adamw: bool | None = True     # None: transformers' default optimizer
    dataloader_workers: int | None = None
    torch_compile: bool = False
    gradient_checkpointing: bool | None = None    # None: on the CPU for texts > CHECKPOINT_ABOVE_TOKENS

    @classmethod
    def plain(cls) -> "Speed":
        return cls(bf16=False, tf32=False, fused_adamw=None, dataloader_workers=0)

    def resolved(self, cuda: bool) -> "Speed":
        return Speed(bf16=cuda if self.bf16 is None else self.bf16 and cuda,
                     tf32=cuda if self.tf32 is None else self.tf32 and cuda,
                     fused_adamw=self.fused_adamw,
                     dataloader_workers=(2 if cuda else 0) if self.dataloader_workers is None
                     else self.dataloader_workers,
                     torch_compile=self.torch_compile,
                     gradient_checkpointing=self.gradient_checkpointing)

    def checkpointing(self, cuda: bool, longest_tokens: int) -> bool:
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return not cuda and longest_tokens > CHECKPOINT_ABOVE_TOKENS


def _passage_lengths(recipe: Recipe, model, dataset):
    """Token counts of each row's passage and (if any) negative, capped at max_seq_length."""
    from gradedrel.training.length_bucketing import token_lengths
    lengths = [token_lengths(model.tokenizer, dataset["passage"], recipe.max_seq_length)]
    if "negative" in dataset.column_names:
        lengths.append(token_lengths(model.tokenizer, dataset["negative"], recipe.max_seq_length))
    return lengths


def set_checkpointing(model, on: bool) -> bool:
    """Switch the transformer's gradient (activation) checkpointing; returns whether it was
    on. transformers 5 renamed the methods; older releases have only the gradient_ names."""
    transformer = model[0].auto_model
    new_api = hasattr(transformer, "activation_checkpointing_enable")
    was_on = bool(transformer.is_activation_checkpointing if new_api
                  else transformer.is_gradient_checkpointing)
    if on and not was_on:
        (transformer.activation_checkpointing_enable if new_api
         else transformer.gradient_checkpointing_enable)()
    elif was_on and not on:
        (transformer.activation_checkpointing_disable if new_api
         else transformer.gradient_checkpointing_disable)()
    return was_on


def batch_sampler(batching: str, lengths, tail: str = "rebalanced"):
    """The `batch_sampler` SentenceTransformerTrainingArguments takes for a batching name
    (one of BATCHINGS). `lengths` is each row's cost, or a function returning it, called
    only for "length_bucketed" (so the other two never tokenise); `tail` is that sampler's
    end-of-epoch fill."""
    from sentence_transformers.base.sampler import BatchSamplers

    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {BATCHINGS}, got {batching!r}")
    if batching == "random":
        return BatchSamplers.BATCH_SAMPLER
    if batching == "no_duplicates":
        return BatchSamplers.NO_DUPLICATES
    from gradedrel.training.length_bucketing import length_bucketed_sampler
    return length_bucketed_sampler(lengths() if callable(lengths) else lengths, tail=tail)


def build_trainer(model, pairs: pd.DataFrame, recipe: Recipe, output_dir, seed: int = 0,
                  speed: Speed = Speed(), max_steps: int = -1, loss=None):
    """The SentenceTransformerTrainer `fine_tune` runs (`max_steps` > 0 overrides the
    epochs; `loss` defaults to InfoNCE with in-batch negatives)."""
    from gradedrel.config import forbid_in_redraw
    forbid_in_redraw("training a model")
    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers.trainer_callback import PrinterCallback

    # a `label` column (row numbers) reaches the loss as `labels`, as sentence-transformers'
    # collator hands it over: training.false_negatives' mask reads it
    # candidate_2, candidate_3, ...: more candidates a row (training/graded_distill.py; not
    # "passage_2": the trainer gathers a column's features by name prefix)
    from gradedrel.training.graded_distill import CANDIDATE_PREFIX
    more = sorted((c for c in pairs.columns if c.startswith(CANDIDATE_PREFIX)),
                  key=lambda c: int(c[len(CANDIDATE_PREFIX):]))
    columns = (["query", "passage"] + more + (["negative"] if "negative" in pairs.columns else [])
               + (["label"] if "label" in pairs.columns else []))
    missing = [c for c in ("query", "passage") if c not in pairs.columns]
    if missing:
        raise ValueError(f"training pairs lack columns {missing}")
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 positive pairs for in-batch negatives, got {len(pairs)}")
    dataset = Dataset.from_pandas(pairs[columns].reset_index(drop=True), preserve_index=False)
    cuda = torch.cuda.is_available()
    speed = speed.resolved(cuda)
    if speed.dataloader_workers:
        # the workers fork after the tokenizer ran here; they tokenise one batch each anyway
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model.max_seq_length = recipe.max_seq_length
    lengths = _passage_lengths(recipe, model, dataset)
    prompts = training_prompts(model)
    prompts.update({c: prompts["passage"] for c in more})
    checkpointing = speed.checkpointing(cuda, max(int(n.max()) for n in lengths))
    set_checkpointing(model, checkpointing)
    # the model card's widget examples draw from Python's global random state: off
    model.model_card_data.generate_widget_examples = False
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=recipe.batch_size,
        num_train_epochs=recipe.epochs, max_steps=max_steps, learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_ratio, lr_scheduler_type=recipe.scheduler,
        weight_decay=recipe.weight_decay,
        batch_sampler=batch_sampler(recipe.batching, sum(lengths), recipe.batch_tail),
        prompts=prompts,
        bf16=speed.bf16, tf32=speed.tf32 if cuda else None,
        **({} if speed.fused_adamw is None
           else {"optim": "adamw_torch_fused" if speed.fused_adamw else "adamw_torch"}),
        torch_compile=speed.torch_compile, use_cpu=not cuda,
        dataloader_num_workers=speed.dataloader_workers,
        seed=seed, data_seed=seed, report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True)
    loss = loss or MultipleNegativesRankingLoss(model, scale=recipe.loss_scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    # with tqdm off, transformers prints every log dict instead; the outcome says enough
    trainer.remove_callback(PrinterCallback)
    return trainer


def fine_tune(model, pairs: pd.DataFrame, recipe: Recipe = Recipe(), seed: int = 0,
              speed: Speed = Speed(), loss=None) -> TrainingOutcome:
    """Train `model` in place on `pairs` (columns `query`, `passage`, optionally
    `negative`: texts without prefixes; `label`: row numbers for a loss that reads them).
    `loss` defaults to InfoNCE with in-batch negatives. Nothing is written to disk but a
    temporary trainer folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gradedrel-train-") as out:
        trainer = build_trainer(model, pairs, recipe, out, seed=seed, speed=speed, loss=loss)
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    model.eval()
    checkpointed = set_checkpointing(model, False)
    return TrainingOutcome(steps=int(trainer.state.global_step), seconds=round(seconds, 2),
                           pairs=len(pairs), train_loss=float(result.training_loss)
                           if result.training_loss is not None else None,
                           gradient_checkpointing=checkpointed)
