"""The size of L_JSD next to InfoNCE under each reading (gradedrel.multiref.jsd_scale)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gradedrel.multiref import jsd_scale
from gradedrel.multiref.alignment_loss import COLUMNS, info_nce


def batch():
    q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    p_en = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
    p_tgt = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 2.0]], dtype=torch.float64)
    return q, p_en, p_tgt


def np_sqrt_jsd(a, b):
    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()
    values = []
    for x, y in zip(a, b):
        p, r = softmax(x), softmax(y)
        m = (p + r) / 2
        values.append(math.sqrt(0.5 * (p * np.log(p / m)).sum() + 0.5 * (r * np.log(r / m)).sum() + 1e-8))
    return float(np.mean(values))


def test_term_values_by_hand():
    q, p_en, p_tgt = batch()
    unit = lambda z: (z / z.norm(dim=1, keepdim=True)).numpy()      # noqa: E731
    normalized = jsd_scale.term_values(q, p_en, p_tgt, "normalized", 1.0)
    assert normalized["L_JSD"][0] == pytest.approx(np_sqrt_jsd(unit(p_en), unit(p_tgt)))
    assert jsd_scale.term_values(q, p_en, p_tgt, "normalized", 20.0)["L_JSD"][0] == pytest.approx(
        np_sqrt_jsd(20 * unit(p_en), 20 * unit(p_tgt)))
    pooled = jsd_scale.term_values(q, p_en, p_tgt, "pooled", 1.0)
    assert pooled["L_JSD"][0] == pytest.approx(np_sqrt_jsd(p_en.numpy(), p_tgt.numpy()))
    # InfoNCE is on cosines: the same value in every reading
    for reading in (normalized, pooled):
        assert reading["L_NCE"][0] == pytest.approx(info_nce(p_tgt, q).item())
        assert reading["L_NCEpsg"][0] == pytest.approx(info_nce(p_tgt, p_en).item())


def test_only_the_pooled_reading_lets_the_norm_shrink_the_jsd():
    """Why the ablation softmaxes the normalised embedding: on the pooled one, L_JSD falls
    as the embeddings shrink, which cosine InfoNCE never sees."""
    q, p_en, p_tgt = batch()
    for reading, falls in (("normalized", False), ("pooled", True)):
        full = jsd_scale.term_values(q, p_en, p_tgt, reading, 1.0)
        small = jsd_scale.term_values(q, p_en / 10, p_tgt / 10, reading, 1.0)
        assert (small["L_JSD"][0] < full["L_JSD"][0] / 5) is falls
        assert small["L_NCE"][0] == pytest.approx(full["L_NCE"][0])


def test_the_infonce_pull_on_a_pooled_embedding_is_orthogonal_to_it():
    """A cosine loss cannot change a vector's norm: its gradient is orthogonal to it (a
    check that the gradients are taken with respect to the pooled embedding)."""
    q, p_en, p_tgt = batch()
    z = p_tgt.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(info_nce(z, q), z)
    assert (grad * p_tgt).sum(dim=1).abs().max().item() < 1e-12
    assert jsd_scale.term_values(q, p_en, p_tgt, "pooled", 1.0)["L_NCE"][1] == pytest.approx(
        grad.norm().item())


def test_batches_hold_distinct_passages():
    triplets = pd.DataFrame([(f"q{i}", f"p{i // 3}", f"t{i // 3}") for i in range(30)],
                            columns=list(COLUMNS))
    batches = jsd_scale.distinct_passage_batches(triplets, batch_size=4, n_batches=2)
    passages = [p for b in batches for p in b[COLUMNS[1]]]
    assert len(batches) == 2 and len(passages) == 8 == len(set(passages))
    with pytest.raises(ValueError, match="10 distinct passages, 12 needed"):
        jsd_scale.distinct_passage_batches(triplets, batch_size=4, n_batches=3)


@pytest.mark.integration
def test_term_sizes_on_the_real_model(me5_small):
    from gradedrel.multiref.alignment_loss import sqrt_jsd_loss
    triplets = pd.DataFrame(
        [(f"Who built tower {i}?", f"Tower {i} was built in {1900 + i}.",
          f"Turm {i} wurde {1900 + i} gebaut.") for i in range(4)], columns=list(COLUMNS))
    sizes = jsd_scale.term_sizes(me5_small, triplets, batch_size=2, n_batches=2)
    assert len(sizes) == len(jsd_scale.READINGS) * 3
    assert (sizes.loc[sizes["term"] == "L_NCE", ["value / L_NCE", "grad / L_NCE grad"]] == 1).all().all()
    rows = [b for b in jsd_scale.distinct_passage_batches(triplets, 2, 2)]
    expected = np.mean([sqrt_jsd_loss(*(torch.from_numpy(me5_small.encode(b[c].tolist(), prompt_name="passage"))
                                        for c in COLUMNS[1:])).item() for b in rows])
    got = sizes[(sizes["term"] == "L_JSD") & (sizes["jsd_input"] == "normalized")
                & (sizes["jsd_scale"] == 1.0)]["value"].item()
    assert got == pytest.approx(expected, rel=1e-4)
    # a sharper softmax makes a larger term
    jsd = sizes[(sizes["term"] == "L_JSD") & (sizes["jsd_input"] == "normalized")]
    assert jsd["value"].is_monotonic_increasing
