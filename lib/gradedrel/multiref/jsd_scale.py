"""How large L_JSD is next to InfoNCE, under each reading of the paper's z (issue 12).

Eq. 5 softmaxes "the embedding vector z" over its dimensions and does not say whether z is
L2-normalised or how sharp the softmax is. `term_sizes` measures, on real training
triplets and the base model, each term's value and the norm of its gradient with respect
to the target passage's embedding (the pull it exerts), for:

  normalized x s   softmax(s z / |z|): e5's output embedding, at temperature 1/s
  pooled x s       softmax(s z): the mean-pooled embedding before e5's Normalize module

InfoNCE (against the English queries, L_NCE, and against the English passages, L_NCEpsg)
is on cosines, so its value does not depend on the reading; its gradient is taken in the
same space as the JSD's, so the ratio of the two pulls is comparable within a reading.
One encoding serves every reading: the normalised embedding is the pooled one divided by
its norm.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gradedrel.multiref.alignment_loss import (
    COLUMNS,
    DEFAULT_EPSILON,
    DEFAULT_SCALE,
    info_nce,
    sqrt_jsd_loss,
    unnormalized,
)

READINGS = (("normalized", 1.0), ("normalized", 20.0), ("normalized", 100.0),
            ("pooled", 1.0), ("pooled", 20.0))
TERMS = ("L_JSD", "L_NCE", "L_NCEpsg")


def distinct_passage_batches(triplets: pd.DataFrame, batch_size: int, n_batches: int,
                             seed: int = 0) -> list[pd.DataFrame]:
    """`n_batches` batches of `batch_size` rows, one row per English passage (as the
    training's no-duplicates batches are), drawn with `seed`."""
    one_each = triplets.drop_duplicates(COLUMNS[1])
    need = batch_size * n_batches
    if len(one_each) < need:
        raise ValueError(f"{len(one_each)} distinct passages, {need} needed "
                         f"({n_batches} batches of {batch_size})")
    rows = one_each.sample(need, random_state=seed).reset_index(drop=True)
    return [rows.iloc[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


def pooled_embeddings(model, batch: pd.DataFrame, batch_size: int) -> list[torch.Tensor]:
    """The three columns' mean-pooled (un-normalised) embeddings, float64."""
    prompts = ("query", "passage", "passage")
    with unnormalized(model), torch.no_grad():
        return [torch.from_numpy(model.encode(batch[c].tolist(), prompt_name=p,
                                              batch_size=batch_size, convert_to_numpy=True,
                                              normalize_embeddings=False)).double()
                for c, p in zip(COLUMNS, prompts)]


def term_values(q_en: torch.Tensor, p_en: torch.Tensor, p_tgt: torch.Tensor, jsd_input: str,
                jsd_scale: float, nce_scale: float = DEFAULT_SCALE,
                epsilon: float = DEFAULT_EPSILON) -> dict[str, tuple[float, float]]:
    """{term: (value, norm of its gradient with respect to p_tgt)} for one batch of pooled
    embeddings, under the reading (`jsd_input`, `jsd_scale`)."""
    out = {}
    for term in TERMS:
        z_tgt = p_tgt.clone().requires_grad_(True)
        z = F.normalize(z_tgt, dim=-1) if jsd_input == "normalized" else z_tgt
        z_en = F.normalize(p_en, dim=-1) if jsd_input == "normalized" else p_en
        if term == "L_JSD":
            value = sqrt_jsd_loss(z_en, z, epsilon, jsd_scale)
        else:
            value = info_nce(z, q_en if term == "L_NCE" else p_en, nce_scale)
        (grad,) = torch.autograd.grad(value, z_tgt)
        out[term] = (value.item(), grad.norm().item())
    return out


def term_sizes(model, triplets: pd.DataFrame, batch_size: int = 32, n_batches: int = 3,
               readings=READINGS, seed: int = 0) -> pd.DataFrame:
    """Mean over `n_batches` training batches of each term's value and gradient norm, a row
    per (reading, term), with both as a share of L_NCE's in the same reading."""
    batches = [pooled_embeddings(model, b, batch_size)
               for b in distinct_passage_batches(triplets, batch_size, n_batches, seed)]
    rows = []
    for jsd_input, jsd_scale in readings:
        per_batch = [term_values(*emb, jsd_input, jsd_scale) for emb in batches]
        for term in TERMS:
            value, grad = np.mean([b[term] for b in per_batch], axis=0)
            rows.append(dict(jsd_input=jsd_input, jsd_scale=jsd_scale, term=term, value=value,
                             grad_norm=grad, batches=n_batches, batch_size=batch_size))
    sizes = pd.DataFrame(rows)
    nce = sizes[sizes["term"] == "L_NCE"].set_index(["jsd_input", "jsd_scale"])
    key = pd.MultiIndex.from_frame(sizes[["jsd_input", "jsd_scale"]])
    sizes["value / L_NCE"] = sizes["value"].to_numpy() / nce["value"].reindex(key).to_numpy()
    sizes["grad / L_NCE grad"] = sizes["grad_norm"].to_numpy() / nce["grad_norm"].reindex(key).to_numpy()
    return sizes
