"""The length-bucketed sampler's end-of-epoch tail on the xquad sweep's own training sets:
batches beyond ceil(pairs / batch), and batches of one or two rows, with the greedy fill
(the stored grid's) and the rebalanced one (the default), over two epochs of every seed-0
configuration of notebook 03. Needs only the annotations (no model, no training).

    python bench/batch_tail.py [--profile xquad]

Lengths are passage characters (the batch counts do not depend on the cost measure's
scale; the padding share is in characters).
"""
from __future__ import annotations

import argparse

import pandas as pd
from datasets import Dataset

from gradedrel.config import profile_config
from gradedrel.sweeps import grid
from gradedrel.training.length_bucketing import TAILS, LengthBucketedBatchSampler, padding_share


def tail_rows(setup, spec, batch_size: int, epochs: int = 2) -> list[dict]:
    pairs, _ = grid.training_pairs(setup, spec)
    data = Dataset.from_pandas(pairs[["query", "passage"]].reset_index(drop=True), preserve_index=False)
    lengths = pairs["passage"].str.len().to_numpy()
    rows = []
    for tail in TAILS:
        sampler = LengthBucketedBatchSampler(data, batch_size, False, lengths=lengths, seed=spec.seed,
                                             tail=tail)
        for epoch in range(epochs):
            batches = sampler.epoch_batches(epoch)
            sizes = [len(b) for b in batches]
            rows.append(dict(configuration=spec.label(), tail=tail, epoch=epoch, pairs=len(pairs),
                             batches=len(batches), extra=len(batches) - -(-len(pairs) // batch_size),
                             tiny=sum(n <= 2 for n in sizes), padding=padding_share(batches, lengths)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="xquad")
    args = ap.parse_args()
    cfg = profile_config(args.profile)
    setup = grid.prepare_sweep(cfg, build_checkpoint=False)
    specs = [s for s in grid.study_grid(cfg, "03") if s.seed == 0]
    table = pd.DataFrame([r for spec in specs
                          for r in tail_rows(setup, spec, setup.recipe.batch_size)])
    summary = table.groupby("tail").agg(
        epochs=("epoch", "size"), extra_batches=("extra", "sum"), most_extra=("extra", "max"),
        epochs_with_tiny_batch=("tiny", lambda t: int((t > 0).sum())), tiny_batches=("tiny", "sum"),
        padding=("padding", "mean"))
    print(f"{len(specs)} configurations of {args.profile}, batch {setup.recipe.batch_size}")
    print(summary.round(3).to_string())
    worst = table[table["tail"] == "greedy"].nlargest(3, "extra")
    print(worst[["configuration", "epoch", "pairs", "batches", "extra", "tiny"]].to_string(index=False))


if __name__ == "__main__":
    main()
