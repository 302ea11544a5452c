"""InfoNCE with in-batch (and hard) negatives, the known false negatives of a
`FalseNegativeMask` (training/false_negatives.py) set to -inf. Apart from the mask so that
reading a sweep's results does not import torch."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradedrel.training.false_negatives import LABEL_COLUMN, FalseNegativeMask


def masked_logits(scores: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """`scores` with the masked entries at -inf."""
    return scores.masked_fill(torch.as_tensor(mask, device=scores.device), float("-inf"))


class MaskedInfoNCELoss(nn.Module):
    """InfoNCE with in-batch (and hard) negatives, known false negatives masked."""

    def __init__(self, model, mask: FalseNegativeMask, scale: float = 20.0):
        super().__init__()
        self.model = model
        self.mask = mask
        self.scale = float(scale)

    def forward(self, sentence_features, labels: torch.Tensor | None) -> torch.Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns
        return self.loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def loss_from_embeddings(self, embeddings, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError(f"MaskedInfoNCELoss needs the row numbers in a {LABEL_COLUMN!r} column")
        queries, docs = embeddings[0], torch.cat(list(embeddings[1:]), dim=0)
        scores = F.normalize(queries, dim=-1) @ F.normalize(docs, dim=-1).T * self.scale
        scores = masked_logits(scores, self.mask.batch_mask(labels.tolist()))
        return F.cross_entropy(scores, torch.arange(len(queries), device=scores.device))

    def get_config_dict(self) -> dict:
        return {"scale": self.scale, "tau": self.mask.tau, "masking": "known false negatives"}
