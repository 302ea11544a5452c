"""Stages 1-2 · annotation and agreement: queries and candidates in, graded labels out.

Takes a Collection, a baseline encoder and an annotator (an OpenAI-compatible chat
endpoint, a local causal LM, or the XQuAD rubric); gives top-k candidates, 0-3 grades in a
resumable store, the annotated data set, the language-balancing down-sample, and the
agreement statistics between annotators.

  judgement   Pair in, Judgement out: what every annotator takes and gives
  rubric      the threshold paper's prompts; the strict grade parser
  annotators  the XQuAD rubric annotator; an annotator from a spec string
  llm_chat    OpenAI-compatible chat endpoints as annotator and query generator
  causal_lm   a local causal LM's next-token grades (transformers)
  fast_grader  llama.cpp in process: the grade digit read at the last position, a cached
              few-shot prefix (training articles only), calibration offsets
  local_llm   a GGUF model from PyPI on llama.cpp's server, on loopback
  llama_cpu   llama.cpp on any x86-64 CPU (no AMX buffers where they crash), self-check
  packaged_llms  instruction models from PyPI chunk wheels, joined and verified
  store       the persistent, resumable judgement store
  pipeline    queries, candidates, grades, data set, down-sampling (file to file)
  verification  notebook 01's recomputed numbers, independent of the stored run
  agreement   distributions, confusion, quadratic kappa with intervals, AUC, the pilot
  plots       notebook 02's figures (confusion grid with n, agreement vs pre-training data)
"""
