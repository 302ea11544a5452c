"""Graded-aware training instead of a threshold (issue 23, item 6): each question's graded
candidates as a soft target, with sentence-transformers' `DistillKLDivLoss`.

Takes a run's sample (the N annotated instances it draws, grades 0-3, below-tau ones
included: `training.pairs.sample_language`). Gives training rows, one per question of the
sample (`graded_rows`): the question, its candidates best grade first (`passage`,
`candidate_2`, ... `candidate_{n_way}`), their grades, and a `label` column of row numbers that
reaches the loss (as the false-negative mask's does). A question with fewer than `n_way`
graded candidates is padded with passages of other articles drawn with the seed, grade 0:
on XQuAD's rubric that is their true grade; for an LLM's labels it is an assumption (stated
where runs are reported).

The loss (`GradedDistillLoss`):
  "kl"          KL(teacher || student) over each question's candidates: teacher =
                softmax(grades / T_teacher), student = softmax(cos(q, c) / T_student)
                (DistillKLDivLoss with pairwise cosine). T_student = 0.05, InfoNCE's own
                temperature (scale 20) in every other run, so the student's scores live on
                the scale the model trains at anyway; T_teacher = 1: one grade step is a
                factor e in the target (grades 3/2/1/0 -> 0.64/0.24/0.09/0.03), so the top
                grade leads without the target collapsing onto it (T = 0.5 would give 0.86 to
                grade 3 over grade 2's 0.12: close to tau=3's hard target) or flattening (T = 2).
                DistillKLDivLoss multiplies by T_student^2 (Hinton's gradient scaling for
                T >= 1); below 1 that shrinks the gradient 400-fold at 0.05, so the loss is
                divided by T_student^2 again: its gradient on a cosine is (p_s - p_t) / T_student,
                InfoNCE's scale.
  "kl+infonce"  the same plus InfoNCE on the top-grade pair (grade 3) with in-batch
                negatives, known false negatives masked (training/false_negatives.py at
                tau=3), averaged over the batch's questions that have a grade-3 candidate.

The candidates are embedded length-sorted (`embed_sorted`): sentence-transformers merges a
batch's candidate columns into one forward padded to the longest candidate of all of them, so
one long sentence widened 128 rows, and an English run cost 41 s a step against 4.8 s for a
threshold run. Sorting the rows by length and embedding them in chunks of the batch size,
each at its own width, gives the same embeddings (right padding under an attention mask; a
test compares them) for a fraction of the tokens. The extra columns are named `candidate_i`,
not `passage_i`: the trainer gathers a column's features by its name as a prefix
(`collect_features`), so `passage_2_input_ids` would also land in `passage`'s features, the
columns' key sets would differ, and sentence-transformers would refuse to merge them
(falling back to one forward a column: the first graded runs ran that way, 36-38 s a step).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

OBJECTIVES = ("kl", "kl+infonce")
N_WAY = 4
STUDENT_TEMPERATURE = 0.05
TEACHER_TEMPERATURE = 1.0


CANDIDATE_PREFIX = "candidate_"      # not "passage_": see the module's last paragraph


def passage_columns(n_way: int) -> list[str]:
    return ["passage"] + [f"{CANDIDATE_PREFIX}{i}" for i in range(2, n_way + 1)]


def graded_rows(sample: pd.DataFrame, doc_group: pd.Series, n_way: int = N_WAY,
                seed: int = 0) -> pd.DataFrame:
    """One row per question of `sample` (query_id, doc_id, score): `doc_id` its best-graded
    candidate, `candidates` and `grades` lists of length `n_way` (best grade first, ties by
    doc id; beyond the question's own candidates, other articles' passages at grade 0)."""
    if n_way < 2:
        raise ValueError(f"n_way must be at least 2 (a softmax over one candidate is constant), got {n_way}")
    rng = np.random.default_rng(seed)
    docs = np.array(sorted(set(sample["doc_id"].astype(str))))
    groups = np.array([doc_group.get(d) for d in docs], dtype=object)
    rows = []
    for qid, part in sample.sort_values(["query_id"]).groupby("query_id", sort=True):
        part = part.sort_values(["score", "doc_id"], ascending=[False, True]).iloc[:n_way]
        cands, grades = part["doc_id"].astype(str).tolist(), part["score"].astype(int).tolist()
        own = doc_group.get(cands[0])
        others = docs[(groups != own) & ~np.isin(docs, cands)]
        if len(cands) < n_way:
            if len(others) < n_way - len(cands):
                raise ValueError(f"too few passages of other articles to pad question {qid}")
            cands += rng.choice(others, n_way - len(cands), replace=False).tolist()
            grades += [0] * (n_way - len(grades))
        rows.append({"query_id": qid, "doc_id": cands[0], "candidates": cands, "grades": grades})
    return pd.DataFrame(rows)


def with_candidate_texts(rows: pd.DataFrame, query_text: pd.Series, doc_text: pd.Series) -> pd.DataFrame:
    """`query`, `passage`, `candidate_2`, ... texts and `label` (row numbers) for the trainer."""
    n_way = len(rows["candidates"].iat[0])
    out = rows.assign(query=rows["query_id"].map(query_text).to_numpy())
    for i, col in enumerate(passage_columns(n_way)):
        out[col] = [doc_text[c[i]] for c in rows["candidates"]]
    if out["query"].isna().any():
        raise ValueError("a question of the graded rows is not in the collection")
    return out.assign(label=range(len(out))).reset_index(drop=True)


class GradedDistillLoss:
    """Built lazily as a torch module (`module()`), so reading results imports no torch."""

    def __init__(self, model, grades: np.ndarray, objective: str = "kl", mask=None,
                 student_temperature: float = STUDENT_TEMPERATURE,
                 teacher_temperature: float = TEACHER_TEMPERATURE, scale: float = 20.0):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "kl+infonce" and mask is None:
            raise ValueError("kl+infonce needs the false-negative mask of its InfoNCE term")
        self.args = dict(model=model, grades=np.asarray(grades, dtype=np.float32), objective=objective,
                         mask=mask, student_temperature=student_temperature,
                         teacher_temperature=teacher_temperature, scale=scale)

    def module(self):
        return _module(**self.args)


def embed_sorted(model, features_list, chunk: int | None = None) -> list:
    """Sentence embeddings of each column of `features_list` (tokenised batches, right-padded,
    same keys): the first column in its own forward, the rest pooled, sorted by length and
    embedded `chunk` rows at a time (default: one column's rows), each chunk trimmed to its
    longest row. Returns one (rows, dim) tensor per column, in the input order."""
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns, merge_feature_batches

    features_list = list(features_list)
    first = model(features_list[0])["sentence_embedding"]
    rest = features_list[1:]
    merged = merge_feature_batches(rest) if len(rest) > 1 else None
    if merged is None or "attention_mask" not in merged or merged["attention_mask"].ndim != 2:
        return [first, *embed_columns(model, rest, separate_first=False)]
    mask = merged["attention_mask"]
    rows = mask.shape[0]
    if bool((mask[:, 0] == 0).any()):          # left padding: trimming the right would cut text
        return [first, *embed_columns(model, rest, separate_first=False)]
    lengths = mask.sum(1)
    order = torch.argsort(lengths, stable=True)
    chunk = chunk or rows // len(rest)
    parts = []
    for begin in range(0, rows, chunk):
        idx = order[begin:begin + chunk]
        width = int(lengths[idx].max())
        feats = {k: (v[idx][:, :width] if torch.is_tensor(v) and v.ndim == 2 and v.shape[0] == rows
                     else v[idx] if torch.is_tensor(v) and v.ndim >= 1 and v.shape[0] == rows and k != "prompt_length"
                     else v) for k, v in merged.items()}
        parts.append(model(feats)["sentence_embedding"])
    embeddings = torch.cat(parts)[torch.argsort(order)]
    return [first, *embeddings.reshape(len(rest), -1, embeddings.shape[-1]).unbind(0)]


def _module(model, grades, objective, mask, student_temperature, teacher_temperature, scale):
    import torch
    import torch.nn.functional as F
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss
    from sentence_transformers.util import pairwise_cos_sim
    from torch import nn

    from gradedrel.training.masked_infonce import masked_logits

    class _Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.kl = DistillKLDivLoss(model, similarity_fct=pairwise_cos_sim,
                                       student_temperature=student_temperature,
                                       teacher_temperature=teacher_temperature)

        def forward(self, sentence_features, labels):
            return self.loss_from_embeddings(embed_sorted(self.model, sentence_features), labels)

        def loss_from_embeddings(self, embeddings, labels):
            rows = labels.tolist()
            teacher = torch.as_tensor(grades[rows], device=embeddings[0].device)
            loss = self.kl.compute_loss_from_embeddings(embeddings, teacher) / student_temperature ** 2
            if objective == "kl+infonce":
                top = teacher[:, 0] >= 3
                if bool(top.any()):
                    q, p = F.normalize(embeddings[0], dim=-1), F.normalize(embeddings[1], dim=-1)
                    scores = masked_logits(q @ p.T * scale, mask.batch_mask(rows))
                    per_row = F.cross_entropy(scores, torch.arange(len(q), device=q.device), reduction="none")
                    loss = loss + per_row[top].mean()
            return loss

        def get_config_dict(self):
            return {"objective": objective, "student_temperature": student_temperature,
                    "teacher_temperature": teacher_temperature, "kl_weight": 1 / student_temperature ** 2}

    return _Loss()
