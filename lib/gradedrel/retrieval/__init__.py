"""Retrieval and evaluation: an encoder and a Collection in, rankings and metrics out.

Takes a SentenceTransformer and a Collection; gives cached embeddings, exact top-k runs
(torch or faiss), and ir_measures metrics per query and pair of languages, plus the
multi-reference measures (Max@R, Complete@K, Max@R-norm) and paired significance tests.

  encode     batched encoding with an embedding cache
  search     exact top-k (torch, faiss), run dicts, TREC run files
  metrics    ir_measures metrics; Max@R, Complete@K, Max@R-norm; paired tests
  evaluate   every query-language x corpus-language pair of a collection
"""
