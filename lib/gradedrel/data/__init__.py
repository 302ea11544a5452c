"""Stage 0 · data: public files or hub datasets in, one `Collection` shape out.

Takes XQuAD, XQuAD-R, MIRACL, Belebele or CLIRMatrix (local folder, cache, or a verified
download); gives a `Collection` (corpus, queries, graded qrels) with ids parallel across
languages, and a deterministic article-level train/test split.

  collection      the normalised shape (corpus, queries, graded qrels)
  languages       the embedded data sets' languages, importable without pandas
  xquad, xquad_r, miracl, belebele, clirmatrix   loaders into that shape
  verified_files  data files checked against their SHA-256 (env folder, cache, download)
  split           deterministic article-level train/test split
  load            a profile's collection, optionally cut down
"""
