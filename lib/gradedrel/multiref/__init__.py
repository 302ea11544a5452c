"""Stage 6 · multi-reference retrieval (Max@R): a parallel Collection in, scenario tables out.

Takes XQuAD's parallel English + target-language documents; builds the scenarios Multi,
Multi-1, Mono-Same and Mono-Cross, evaluates Complete@K, Max@R, Max@R-norm, nDCG@1 and MRR,
and fine-tunes with the JSD + InfoNCE alignment loss and its ablations.

  scenarios       pools, scenarios, per-query evaluation, summaries, language gaps
  alignment_loss  the JSD + InfoNCE loss (a sentence-transformers loss) and ablations
  jsd_scale       how large L_JSD is next to InfoNCE under each reading of the paper's z
  alignment_train triplets and the alignment fine-tune (SentenceTransformerTrainer)
  study           notebook 06 step by step: the plan per profile, the oracle, the zero-shot
                  study, training and evaluating the fine-tunes, diagnostics, paired tests
  tables          the paper-shaped tables (Tables 1-3), the paper's numbers and checks,
                  the summary lines
  plots           the language-gap figure (the paper's Figure 2 shape)
  __main__        `python -m gradedrel.multiref`: the plan's fine-tunes one at a time, each
                  evaluated and stored as it finishes (resumable)
"""
