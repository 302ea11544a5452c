"""A run of the sweep whose objective is graded (RunSpec.objective "kl" or "kl+infonce",
training/graded_distill.py): its sample's questions with their graded candidates, trained with
the graded loss. Takes a SweepSetup and a spec; gives (TrainingOutcome, record fields)."""
from __future__ import annotations

import numpy as np

from gradedrel.training import pairs as tp
from gradedrel.training.false_negatives import LABEL_COLUMN, FalseNegativeMask
from gradedrel.training.finetune import fine_tune


def graded_fine_tune(setup, spec, model):
    """Train `model` on the graded candidates of `spec`'s sample (one language)."""
    from gradedrel.training import graded_distill as gd
    if len(spec.train_langs) != 1 or spec.halves or spec.hard_negatives:
        raise ValueError("graded objectives take one language, all articles, no hard negatives")
    lang = spec.target
    sample = tp.sample_language(setup.language_rows(spec, lang, None), lang, spec.size, spec.tau,
                                spec.size_reading, spec.seed)
    rows = gd.with_candidate_texts(gd.graded_rows(sample, setup.doc_group, seed=spec.seed),
                                   setup.texts_query, setup.texts_doc)
    grades = np.array(rows["grades"].tolist())
    mask = (FalseNegativeMask(rows, setup.annotations[spec.annotator], spec.tau, setup.query_group,
                              setup.doc_group) if spec.objective == "kl+infonce" else None)
    loss = gd.GradedDistillLoss(model, grades, spec.objective, mask).module()
    columns = ["query"] + gd.passage_columns(grades.shape[1]) + [LABEL_COLUMN]
    outcome = fine_tune(model, rows[columns], setup.recipe, seed=spec.seed, loss=loss)
    extra = {"counts": {"instances": {lang: len(sample)}, "questions": {lang: len(rows)},
                        "grade_3_questions": {lang: int((grades[:, 0] >= 3).sum())}},
             "loss_config": loss.get_config_dict()}
    if mask is not None:
        extra.update(masked_negatives=mask.masked, in_batch_negatives=mask.candidates)
    return outcome, extra
