"""Notebook 07's runs: hybrid mono-/cross-lingual batches (training/hybrid_batches.py) at
several alpha (share of monolingual batches), me5-small pruned as the threshold grid uses
it, evaluated with LAReQA's measures (retrieval/lareqa.py) on the held-out XQuAD-R articles.

    python -m gradedrel.sweeps.hybrid run [--profile xquad] [--alphas 0 0.5 1] [--seeds 0 1]
    python -m gradedrel.sweeps.hybrid run --dry-run       # what would run
    python -m gradedrel.sweeps.hybrid tables              # -> data/results/PROFILE/07_*.csv

Defaults live here (`SETTINGS`, one dict a profile, nanoGPT style), not in config.py. The
model, the split, the evaluation collection and the pruned checkpoint are the threshold
grid's (`grid.prepare_sweep` on the same profile), so the zero-shot row is the grid's
baseline model and its embeddings come from the same cache. Training questions: the
training articles of data/split.py, in `train_langs`; evaluation: every language's questions
of the test articles against the test articles' sentences (the grid's "test-articles"
pool), X-X, X-Y and all languages pooled.

Each run is a configuration hashed with everything that determines its numbers and stored
in a RunStore (data/results/PROFILE/07_hybrid_runs/: runs.jsonl + per-query parquet) the
moment it finishes; a killed `run` resumes where it stopped, a failed run is recorded and
retried next time. Runs go one at a time (torch on one thread: the machine is shared).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from gradedrel.paths import RESULTS_DIR
from gradedrel.sweeps.run_store import RunStore

HYBRID_VERSION = 1      # bump when training or evaluation code changes what a hash means
STORE_NAME = "07_hybrid_runs"
EVAL_CUTOFF = 20

# Budget (xquad, measured 2026-12-04 on the shared 2-core CPU, torch on one thread): see
# notebook 07's cost table. 40 steps of 32 pairs = 1,280 pairs a run.
SETTINGS = {
    "xquad": dict(train_langs=("ar", "en", "es", "ru"), alphas=(0.0, 0.25, 0.5, 0.75, 1.0),
                  seeds=(0,), extra_seeds=(1,), extra_seed_alphas=(0.0, 0.5, 1.0),
                  num_batches=40, batch_size=32, learning_rate=1e-4, warmup_ratio=0.05,
                  max_seq_length=256, draw="quota", verify_langs=("en", "ar")),
    "smoke": dict(train_langs=("de", "en"), alphas=(0.0, 0.5, 1.0), seeds=(0,), extra_seeds=(),
                  extra_seed_alphas=(), num_batches=4, batch_size=8, learning_rate=1e-4,
                  warmup_ratio=0.05, max_seq_length=64, draw="quota", verify_langs=("en", "de")),
}


@dataclass(frozen=True)
class HybridSpec:
    alpha: float | None = None      # None: the zero-shot model
    seed: int = 0

    @property
    def is_zero_shot(self) -> bool:
        return self.alpha is None

    def label(self) -> str:
        return "zero-shot" if self.is_zero_shot else f"alpha={self.alpha:g} seed={self.seed}"


ZERO_SHOT = HybridSpec()


def settings_for(profile: str, **overrides) -> dict:
    if profile not in SETTINGS:
        raise ValueError(f"notebook 07 has settings for {sorted(SETTINGS)}, not {profile!r}")
    unknown = set(overrides) - set(SETTINGS[profile])
    if unknown:
        raise ValueError(f"unknown hybrid settings {sorted(unknown)}")
    return {**SETTINGS[profile], **{k: v for k, v in overrides.items() if v is not None}}


def planned_specs(settings: dict) -> list[HybridSpec]:
    """The zero-shot row, every alpha at the first seeds, the extra seeds at their alphas."""
    specs = [ZERO_SHOT] + [HybridSpec(float(a), int(s)) for s in settings["seeds"]
                           for a in settings["alphas"]]
    specs += [HybridSpec(float(a), int(s)) for s in settings["extra_seeds"]
              for a in settings["extra_seed_alphas"]]
    return list(dict.fromkeys(specs))


@dataclass
class HybridSetup:
    profile: str
    settings: dict
    sweep: object                  # grid.SweepSetup: checkpoint, split, evaluation collection
    pairs: pd.DataFrame            # hybrid_pairs: every source's training pairs
    relevance: pd.DataFrame        # parallel_relevance
    store: RunStore
    _fingerprint: str = field(default="", repr=False)

    @property
    def eval_collection(self):
        return self.sweep.eval_collection

    def recipe(self):
        from gradedrel.training.finetune import Recipe
        s = self.settings
        return Recipe(learning_rate=float(s["learning_rate"]), batch_size=int(s["batch_size"]),
                      epochs=1.0, warmup_ratio=float(s["warmup_ratio"]),
                      max_seq_length=int(s["max_seq_length"]))

    def fingerprint(self) -> str:
        if not self._fingerprint:
            key = self.pairs[["source", "query_id", "doc_id"]]
            h = hashlib.sha256(pd.util.hash_pandas_object(key, index=False).to_numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def spec_dict(self, spec: HybridSpec) -> dict:
        base = {"hybrid_version": HYBRID_VERSION, "model": self.sweep.encoder,
                "eval": {**self.sweep.eval_spec, "lareqa_cutoff": EVAL_CUTOFF}}
        if spec.is_zero_shot:
            return {**base, "kind": "zero-shot"}
        s = self.settings
        return {**base, "kind": "hybrid", **asdict(spec), "train_langs": list(s["train_langs"]),
                "num_batches": int(s["num_batches"]), "draw": s["draw"],
                "recipe": self.recipe().as_dict(), "pairs": self.fingerprint()}

    def config_hash(self, spec: HybridSpec) -> str:
        blob = json.dumps(self.spec_dict(spec), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store_folder(profile: str):
    return RESULTS_DIR / profile / STORE_NAME


def prepare(profile: str, build_checkpoint: bool = True, **overrides) -> HybridSetup:
    """The grid's setup on `profile` (model, split, evaluation collection) and the hybrid
    training pairs of its training articles."""
    from gradedrel.config import profile_config
    from gradedrel.data.xquad_r import load_xquad_r
    from gradedrel.sweeps import grid
    from gradedrel.training.hybrid_batches import hybrid_pairs, parallel_relevance

    settings = settings_for(profile, **overrides)
    store = RunStore(store_folder(profile))
    sweep = grid.prepare_sweep(profile_config(profile), store=store, build_checkpoint=build_checkpoint)
    # the grid's training collection (its questions, after a profile's cut-down) in the
    # training articles: the pruned vocabulary covers exactly those texts
    train = load_xquad_r(settings["train_langs"]).subset(
        groups=sweep.train_groups, query_ids=set(sweep.texts_query.index))
    pairs = hybrid_pairs(train, sweep.train_groups, settings["train_langs"])
    return HybridSetup(profile, settings, sweep, pairs, parallel_relevance(train, pairs), store)


# --- one run -----------------------------------------------------------------------------

def evaluate(setup: HybridSetup, model, langs=None) -> pd.DataFrame:
    """Per-query LAReQA measures of `model` on the evaluation collection (every language of
    it, or `langs`)."""
    from gradedrel.retrieval.evaluate import embed_by_language
    from gradedrel.retrieval.lareqa import evaluate_lareqa
    from gradedrel.sweeps.grid import EVAL_MAX_SEQ_LENGTH

    coll = setup.eval_collection
    langs = list(coll.languages if langs is None else langs)
    model.max_seq_length = EVAL_MAX_SEQ_LENGTH
    q_emb, d_emb = embed_by_language(model, coll, setup.sweep.encode_batch_size, langs=langs,
                                     show_progress=False)
    return evaluate_lareqa(coll, q_emb, d_emb, langs, cutoff=EVAL_CUTOFF)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(setup: HybridSetup, spec: HybridSpec) -> tuple[dict, pd.DataFrame]:
    from gradedrel.results import run_record

    record = {"config_hash": setup.config_hash(spec), "label": spec.label(), **setup.spec_dict(spec),
              "profile": setup.profile, "checkpoint": setup.sweep.checkpoint}
    start, cpu0 = time.perf_counter(), cpu_seconds()
    model = setup.sweep.fresh_model()
    if not spec.is_zero_shot:
        from gradedrel.training.hybrid_batches import fine_tune_hybrid, parallel_mask
        from gradedrel.training.masked_infonce import MaskedInfoNCELoss
        mask = parallel_mask(setup.pairs, setup.relevance)
        recipe = setup.recipe()
        loss = MaskedInfoNCELoss(model, mask, scale=recipe.loss_scale)
        outcome, batches = fine_tune_hybrid(model, setup.pairs, recipe, spec.alpha,
                                             int(setup.settings["num_batches"]), loss,
                                             seed=spec.seed, draw=setup.settings["draw"])
        model.model_id = None          # trained weights: no embedding cache
        record.update(steps=outcome.steps, train_seconds=outcome.seconds,
                      train_cpu_seconds=round(cpu_seconds() - cpu0, 1),
                      seconds_per_step=round(outcome.seconds / max(outcome.steps, 1), 3),
                      train_loss=outcome.train_loss, n_pairs=outcome.pairs,
                      realised_alpha=batches.realised_alpha, batch_sources=batches.counts(),
                      batch_sources_read_from=batches.read_from,
                      masked_negatives=mask.masked, in_batch_negatives=mask.candidates)
    eval_start, eval_cpu0 = time.perf_counter(), cpu_seconds()
    per_query = evaluate(setup, model)
    record.update(eval_seconds=round(time.perf_counter() - eval_start, 2),
                  eval_cpu_seconds=round(cpu_seconds() - eval_cpu0, 1),
                  seconds=round(time.perf_counter() - start, 2),
                  cpu_seconds=round(cpu_seconds() - cpu0, 1))
    provenance = run_record()
    record.update({k: v for k, v in provenance.items()
                   if k not in ("packages", "torch", "transformers", "sentence_transformers")},
                  libraries=provenance["packages"])
    return record, per_query


def run_and_store(setup: HybridSetup, spec: HybridSpec) -> str:
    """Run a configuration and store it (finished or failed); returns a status line."""
    h = setup.config_hash(spec)
    start = time.perf_counter()
    try:
        record, per_query = run_one(setup, spec)
    except Exception as exc:  # noqa: BLE001  (recorded; the sweep goes on)
        setup.store.write_failed({"config_hash": h, "label": spec.label(), **setup.spec_dict(spec),
                                  "profile": setup.profile,
                                  "seconds": round(time.perf_counter() - start, 1)},
                                 error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
        return f"failed: {type(exc).__name__}: {exc}"
    if not setup.store.write_finished(record, per_query):
        return "finished meanwhile by another process"
    return (f"finished in {record['seconds']:.0f} s ({record['cpu_seconds']:.0f} CPU s"
            + (f"; {record['steps']} steps, realised alpha {record['realised_alpha']:.3f}"
               if "steps" in record else "") + ")")


def to_run(setup: HybridSetup, specs) -> list[HybridSpec]:
    return [s for s in specs if not setup.store.is_finished(setup.config_hash(s))]


def run_all(setup: HybridSetup, specs, log=print) -> None:
    todo = to_run(setup, specs)
    log(f"{len(specs)} runs planned, {len(todo)} to run")
    for i, spec in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {spec.label()}: {run_and_store(setup, spec)}")


def verify_zero_shot(setup: HybridSetup) -> pd.Series:
    """run_all.sh --verify's cheap part: the zero-shot model's LAReQA means on two
    languages (X-X, X-Y and their two-language pool), encoded again now without the
    embedding cache."""
    from gradedrel.retrieval.lareqa import setting_means
    model = setup.sweep.fresh_model()
    model.model_id = None               # no cache: the model really encodes
    means = setting_means(evaluate(setup, model, setup.settings["verify_langs"]))
    langs = "+".join(setup.settings["verify_langs"])
    return pd.Series({f"zero-shot {setting} {measure} ({langs})": float(v)
                      for (setting, measure), v in means.items()})


def stored_verify_values(setup: HybridSetup) -> pd.Series:
    """The same keys from the stored zero-shot run, restricted to the verify languages
    (the pooled keys only where the verify languages are the whole evaluation pool)."""
    from gradedrel.retrieval.lareqa import setting_means
    h = setup.config_hash(ZERO_SHOT)
    if not setup.store.is_finished(h):
        return pd.Series(dtype=float)
    langs = list(setup.settings["verify_langs"])
    pq = setup.store.per_query(h)
    # the stored pool holds every evaluation language: it is the verify languages' pool
    # only where those are all of them (smoke); otherwise X-X and X-Y alone are comparable
    pooled = set(langs) == set(setup.eval_collection.languages)
    pq = pq[pq["query_lang"].isin(langs) & (pq["doc_lang"].isin(langs)
                                            | (pooled & (pq["doc_lang"] == "pooled")))]
    means = setting_means(pq)
    joined = "+".join(langs)
    return pd.Series({f"zero-shot {s} {m} ({joined})": float(v) for (s, m), v in means.items()})


# --- command line ------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gradedrel.sweeps.hybrid",
                                 description="notebook 07's hybrid-batch runs")
    ap.add_argument("command", choices=("run", "tables"))
    ap.add_argument("--profile", default="xquad", choices=sorted(SETTINGS))
    ap.add_argument("--alphas", nargs="+", type=float, default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--no-extra-seeds", action="store_true", help="only the first seeds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    torch.set_num_threads(args.threads)
    overrides = {"alphas": tuple(args.alphas) if args.alphas else None,
                 "seeds": tuple(args.seeds) if args.seeds else None}
    if args.no_extra_seeds:
        overrides["extra_seeds"] = ()
    setup = prepare(args.profile, build_checkpoint=args.command == "run", **overrides)
    specs = planned_specs(setup.settings)
    if args.command == "tables":
        from gradedrel.sweeps import hybrid_tables
        for name, path in hybrid_tables.write_tables(setup, specs).items():
            print(f"{name}: {path}")
        return 0
    todo = to_run(setup, specs)
    for spec in specs:
        print(f"  {'to run' if spec in todo else 'stored'}: {spec.label()} [{setup.config_hash(spec)}]")
    if args.dry_run:
        return 0
    run_all(setup, specs, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
