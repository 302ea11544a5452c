"""Stages 3-5 · sweeps: a grid of runs in, a resumable run store and the study's tables out.

Takes a profile's grid (language x tau x size x seed, mixtures); trains and evaluates each
configuration once (training/, retrieval/), keeps one row per finished run, and turns the
store into notebooks 03-05's points against the baseline, mixture and cross-lingual tables
and figures.

  run_store  one row per finished configuration, keyed by a hash; resumes
  grid       run specs, grids, the sweep's setup and its runner
  parallel   several fine-tunes at once (worker processes sharing one GPU)
  ray_backend  the grid's missing runs as Ray tasks (a cluster); the driver writes the store
  __main__   `python -m gradedrel.sweeps`: the grids from a shell
  analysis   tables, paired tests against the baseline, trends
  plots      notebooks 03-05's figures
  recipes    the recipe probe: a few recipes on one cell against the baseline, its table
"""
