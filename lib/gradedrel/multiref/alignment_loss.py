"""The Max@R paper's alignment loss (section 4) as a sentence-transformers loss.

Input columns, in this order: (q_en, p_en, p_tgt) -- an English query, its English
passage and the passage's translation into the target language.

    L = E[ L_JSD + L_NCE ]                                           (paper, eq. 2)

    L_JSD = sqrt( JSD( softmax(z_p_en) || softmax(z_p_tgt) ) + eps )   (eq. 6)
        softmax over the embedding's dimensions (eq. 5), JSD in nats (eq. 4),
        one value per triplet, then the batch mean.

    L_NCE = -1/n sum_i log  exp(s(p_tgt_i, q_en_i) / t)
                            / sum_j exp(s(p_tgt_i, q_en_j) / t)         (eq. 7)
        InfoNCE anchored on the target passage, in-batch negatives = the other
        rows' English queries, s = cosine similarity.

What the paper leaves open, and what we pick:
  * temperature: eq. 7 has none (t = 1 on cosines would give a nearly flat softmax);
    we use sentence-transformers' MultipleNegativesRankingLoss default, scale 20
    (t = 0.05), and expose `scale`.
  * epsilon: no value given, and the typesetting of eq. 6 leaves its place open; we
    put it inside the root, where it keeps the gradient finite at JSD = 0 (outside,
    it would be a constant), eps = 1e-8.
  * weighting: eq. 2 adds the two terms with weight 1; weights are exposed for the
    ablations.
  * z: eq. 5 applies the softmax to "the embedding vector z" and does not say whether z
    is normalised. Two readings, `jsd_input`:
      "normalized" (default): the model's output embedding, after e5's own Normalize
        module. On unit vectors softmax is close to uniform, so sqrt(JSD) ~
        |z_en - z_tgt| / sqrt(8 dim) (about 0.01 for me5-small on XQuAD paragraph pairs,
        next to InfoNCE's 1-2): a nearly inert term. `jsd_scale` multiplies z before the
        softmax (a temperature of 1/jsd_scale; 1 = the paper) for a sharper distribution.
      "pooled": the mean-pooled embedding before the Normalize module, as the encoder
        produces it (the model runs with its Normalize module bypassed; InfoNCE is on
        cosines, so its terms do not change).

Ablations (paper, 5.4 / Table 3), as weight settings in `ABLATIONS`:
  full      L_JSD + L_NCE
  no_jsd    L_NCE                       ("w/o L_JSD")
  no_nce    L_JSD                       ("w/o L_NCE")
  nce_psg   InfoNCE between p_tgt and p_en (anchor p_tgt, in-batch English passages),
            alone ("L_NCEpsg"). The paper does not say whether L_NCEpsg replaces the
            whole loss or only L_JSD; we read the row label literally (alone).
            `passage_nce_weight` with `query_nce_weight=1` gives the other reading.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradedrel.multiref.ablations import ABLATION_LABELS, ABLATIONS, COLUMNS  # noqa: F401  (API)

JSD_INPUTS = ("normalized", "pooled")
DEFAULT_SCALE = 20.0
DEFAULT_EPSILON = 1e-8
def info_nce(anchors: Tensor, candidates: Tensor, scale: float = DEFAULT_SCALE) -> Tensor:
    """Mean InfoNCE of row i of `anchors` against row i of `candidates`, the other rows
    being in-batch negatives; cosine similarity times `scale` as logits."""
    logits = scale * F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T
    labels = torch.arange(len(anchors), device=anchors.device)
    return F.cross_entropy(logits, labels)


def jensen_shannon(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """Row-wise JSD (nats) between softmax(logits_p) and softmax(logits_q), eqs. 3-5."""
    log_p = F.log_softmax(logits_p, dim=-1)
    log_q = F.log_softmax(logits_q, dim=-1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - torch.log(
        torch.tensor(2.0, dtype=log_p.dtype, device=log_p.device))
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    # rounding can leave a hair below 0 for identical inputs; the root needs >= 0
    return (0.5 * kl_pm + 0.5 * kl_qm).clamp_min(0.0)


def sqrt_jsd_loss(z_en: Tensor, z_tgt: Tensor, epsilon: float = DEFAULT_EPSILON,
                  scale: float = 1.0) -> Tensor:
    """Mean over the batch of sqrt(JSD(softmax(scale z_en) || softmax(scale z_tgt)) + epsilon),
    eq. 6 at scale 1."""
    return torch.sqrt(jensen_shannon(scale * z_en, scale * z_tgt) + epsilon).mean()


@contextmanager
def unnormalized(model, active: bool = True):
    """Within the block, `model`'s Normalize modules pass their input through: the model
    gives its pooled, un-normalised embedding. Restored on exit, also after an error."""
    from sentence_transformers.base.modules.normalize import Normalize

    modules = [m for m in model.modules() if isinstance(m, Normalize)] if active else []
    if active and not modules:
        raise ValueError("jsd_input='pooled' needs a model with a Normalize module to bypass")
    for m in modules:
        m.forward = _identity
    try:
        yield model
    finally:
        for m in modules:
            del m.forward


def _identity(features):
    return features


class CrossLingualAlignmentLoss(nn.Module):
    def __init__(self, model, scale: float = DEFAULT_SCALE, query_nce_weight: float = 1.0,
                 passage_nce_weight: float = 0.0, jsd_weight: float = 1.0,
                 epsilon: float = DEFAULT_EPSILON, jsd_scale: float = 1.0,
                 jsd_input: str = "normalized") -> None:
        """query_nce_weight * L_NCE(p_tgt, q_en) + passage_nce_weight * L_NCE(p_tgt, p_en)
        + jsd_weight * L_JSD(p_en, p_tgt) on (q_en, p_en, p_tgt) triplets; the
        defaults are the paper's loss (see the module docstring for `jsd_input`)."""
        super().__init__()
        weights = dict(query_nce_weight=query_nce_weight,
                       passage_nce_weight=passage_nce_weight, jsd_weight=jsd_weight)
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {weights}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError("at least one of query_nce_weight, passage_nce_weight, "
                             "jsd_weight must be > 0")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        if not jsd_scale > 0:
            raise ValueError(f"jsd_scale must be > 0, got {jsd_scale}")
        if jsd_input not in JSD_INPUTS:
            raise ValueError(f"jsd_input must be one of {JSD_INPUTS}, got {jsd_input!r}")
        self.model = model
        self.scale = scale
        self.query_nce_weight = query_nce_weight
        self.passage_nce_weight = passage_nce_weight
        self.jsd_weight = jsd_weight
        self.epsilon = epsilon
        self.jsd_scale = jsd_scale
        self.jsd_input = jsd_input

    @classmethod
    def ablation(cls, model, name: str, **kwargs) -> "CrossLingualAlignmentLoss":
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")
        return cls(model, **{**ABLATIONS[name], **kwargs})

    def _needed_columns(self) -> list[int]:
        needed = []
        if self.query_nce_weight > 0:
            needed.append(0)
        if self.jsd_weight > 0 or self.passage_nce_weight > 0:
            needed.append(1)
        return needed + [2]

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
                ) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features = list(sentence_features)
        if len(features) != 3:
            raise ValueError(f"{type(self).__name__} takes (q_en, p_en, p_tgt) columns, "
                             f"got {len(features)} columns")
        needed = self._needed_columns()
        # columns a setting ignores are not embedded (saves a third of a CPU step)
        with unnormalized(self.model, self.jsd_input == "pooled"):
            embedded = embed_columns(self.model, [features[i] for i in needed])
        embeddings: list[Tensor | None] = [None, None, None]
        for i, emb in zip(needed, embedded):
            embeddings[i] = emb
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings, labels=None) -> Tensor:
        q_en, p_en, p_tgt = embeddings
        loss = p_tgt.new_zeros(())
        if self.query_nce_weight > 0:
            loss = loss + self.query_nce_weight * info_nce(p_tgt, q_en, self.scale)
        if self.passage_nce_weight > 0:
            loss = loss + self.passage_nce_weight * info_nce(p_tgt, p_en, self.scale)
        if self.jsd_weight > 0:
            loss = loss + self.jsd_weight * sqrt_jsd_loss(p_en, p_tgt, self.epsilon, self.jsd_scale)
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "query_nce_weight": self.query_nce_weight,
                "passage_nce_weight": self.passage_nce_weight, "jsd_weight": self.jsd_weight,
                "epsilon": self.epsilon, "jsd_scale": self.jsd_scale, "jsd_input": self.jsd_input}

    @property
    def citation(self) -> str:
        return ("Max@R: multi-reference cross-lingual retrieval and JSD + InfoNCE alignment "
                "(ICLR 2026, arXiv 2604.05684)")
