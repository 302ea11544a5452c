"""Stage 3 · training: graded rows and a threshold in, a fine-tuned encoder out.

Takes annotated (query, passage, grade) rows; binarises them at tau, draws the training
sizes, and fine-tunes with sentence-transformers' InfoNCE over in-batch negatives in
length-bucketed batches that never hold a text twice.

  pairs             binarisation at tau, training sizes, hard negatives
  length_bucketing  the batch sampler (length buckets, no duplicate texts)
  false_negatives   InfoNCE with the annotations' known false negatives masked
  finetune          the InfoNCE recipe, speed settings, the trainer
"""
