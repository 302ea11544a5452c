"""Known false negatives never count as in-batch negatives (training/false_negatives.py)."""
import numpy as np
import pandas as pd
import pytest
import torch

from gradedrel.training.false_negatives import FalseNegativeMask
from gradedrel.training.masked_infonce import MaskedInfoNCELoss
from gradedrel.training.length_bucketing import LengthBucketedBatchSampler

# two articles: q1, q2 and sentences s1-s4 in article X; q3, s5, s6 in article Y
QUERY_GROUP = pd.Series({"q1": "X", "q2": "X", "q3": "Y"})
DOC_GROUP = pd.Series({"s1": "X", "s2": "X", "s3": "X", "s4": "X", "s5": "Y", "s6": "Y"})
GRADES = pd.DataFrame([("q1", "s1", 3), ("q1", "s2", 2), ("q1", "s5", 0),
                       ("q2", "s3", 3), ("q2", "s1", 1),
                       ("q3", "s5", 3), ("q3", "s6", 1), ("q3", "s1", 0)],
                      columns=["query_id", "doc_id", "score"])


def mask_at(tau, rows):
    return FalseNegativeMask(pd.DataFrame(rows, columns=["query_id", "doc_id"]), GRADES, tau,
                             QUERY_GROUP, DOC_GROUP)


def test_the_four_rules():
    m = mask_at(2, [("q1", "s1")])
    assert m.forbidden("q1", "s2")          # graded 2 >= tau: never a negative
    assert not m.forbidden("q2", "s1")      # graded 1 < tau: a known negative, same article or not
    assert m.forbidden("q1", "s3")          # not graded, own article: unknown, kept out
    assert not m.forbidden("q1", "s6")      # not graded, other article: a negative
    assert not m.forbidden("q3", "s1")      # graded 0, other article
    assert mask_at(1, [("q1", "s1")]).forbidden("q2", "s1")   # the same grade 1 at tau=1


def test_a_batch_mask_by_hand():
    # rows: (q1, s1) (q2, s3) (q3, s5) at tau=1: q1 must not see s3 (own article, ungraded);
    # q2 must not see s1 (graded 1 >= 1); q3 sees both; nobody is masked from its own target
    m = mask_at(1, [("q1", "s1"), ("q2", "s3"), ("q3", "s5")])
    expected = np.array([[False, True, False],
                         [True, False, False],
                         [False, False, False]])
    assert (m.batch_mask([0, 1, 2]) == expected).all()
    assert m.known_false_negatives([0, 1, 2]) == [("q1", "s3"), ("q2", "s1")]
    # at tau=3, q2's grade 1 for s1 makes s1 a known negative; s3 stays out for q1 (ungraded)
    m3 = mask_at(3, [("q1", "s1"), ("q2", "s3"), ("q3", "s5")])
    assert m3.known_false_negatives([0, 1, 2]) == [("q1", "s3")]
    assert (m3.masked, m3.candidates) == (0, 0)    # known_false_negatives does not count
    m3.batch_mask([0, 1, 2])
    assert (m3.masked, m3.candidates) == (1, 6)


def test_hard_negative_columns_follow_the_positives():
    rows = pd.DataFrame([("q1", "s1", "s5"), ("q2", "s3", "s1")],
                        columns=["query_id", "doc_id", "negative_id"])
    m = FalseNegativeMask(rows, GRADES, 1, QUERY_GROUP, DOC_GROUP)
    assert m.columns([0, 1]) == ["s1", "s3", "s5", "s1"]
    # q1: s3 (own article, ungraded) masked; s5, its own hard negative, kept; s1 as q2's
    # hard negative is q1's graded-3 passage: masked
    # q2: s1 as q1's positive is graded 1 >= 1: masked; s5 (other article) kept; its own
    # hard negative is never masked (the loss's target row owns it)
    expected = np.array([[False, True, False, True],
                         [True, False, False, False]])
    assert (m.batch_mask([0, 1]) == expected).all()


def test_the_loss_equals_sentence_transformers_infonce_when_nothing_is_masked():
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    q, d = torch.randn(3, 8), torch.randn(3, 8)
    rows = [("q1", "s1"), ("q3", "s5"), ("q2", "s6")]      # at tau=3 nothing is forbidden
    assert not mask_at(3, rows).batch_mask([0, 1, 2]).any()
    ours = MaskedInfoNCELoss(None, mask_at(3, rows), scale=20.0)
    theirs = MultipleNegativesRankingLoss(None, scale=20.0)
    assert torch.allclose(ours.loss_from_embeddings([q, d], torch.tensor([0, 1, 2])),
                          theirs.compute_loss_from_embeddings([q, d], None))


def test_a_masked_passage_does_not_move_the_loss_of_the_row_it_is_masked_for():
    torch.manual_seed(0)
    q, d = torch.randn(3, 8), torch.randn(3, 8)
    rows = [("q1", "s1"), ("q2", "s3"), ("q3", "s5")]       # tau=1: (q1, s3) and (q2, s1) masked
    loss = MaskedInfoNCELoss(None, mask_at(1, rows), scale=20.0)
    labels = torch.tensor([0, 1, 2])
    moved = d.clone()
    moved[1] = torch.randn(8) * 5                            # s3 changes: rows 2 (its own) and 3 see it

    def row_terms(docs):
        logits = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(docs, dim=-1).T * 20
        logits = logits.masked_fill(torch.tensor([[False, True, False], [True, False, False],
                                                  [False, False, False]]), float("-inf"))
        return torch.nn.functional.cross_entropy(logits, torch.arange(3), reduction="none")

    assert torch.allclose(loss.loss_from_embeddings([q, d], labels), row_terms(d).mean())
    assert torch.allclose(loss.loss_from_embeddings([q, moved], labels), row_terms(moved).mean())
    assert torch.allclose(row_terms(d)[0], row_terms(moved)[0])        # q1 never saw s3
    assert not torch.allclose(row_terms(d)[2], row_terms(moved)[2])    # q3 did


def test_no_batch_the_sampler_draws_lets_a_known_false_negative_through():
    """Real sampler, many epochs, a pool where most rows share an article: every batch's
    known false negatives are exactly the entries the loss masks."""
    rng = np.random.default_rng(0)
    n_q, n_d = 40, 60
    qg = pd.Series({f"q{i}": f"A{i % 3}" for i in range(n_q)})
    dg = pd.Series({f"d{j}": f"A{j % 3}" for j in range(n_d)})
    grades = pd.DataFrame([(f"q{i}", f"d{j}", int(rng.integers(0, 4)))
                           for i in range(n_q) for j in rng.choice(n_d, 6, replace=False)],
                          columns=["query_id", "doc_id", "score"]).drop_duplicates(["query_id", "doc_id"])
    known = {(q, d): g for q, d, g in grades.itertuples(index=False)}
    for tau in (1, 2, 3):
        rows = grades[grades["score"] >= tau].reset_index(drop=True)
        mask = FalseNegativeMask(rows, grades, tau, qg, dg)
        data = pd.DataFrame({"query": rows["query_id"], "passage": rows["doc_id"], "label": range(len(rows))})
        from datasets import Dataset
        sampler = LengthBucketedBatchSampler(Dataset.from_pandas(data), batch_size=8, drop_last=False,
                                             valid_label_columns=["label"], lengths=np.ones(len(rows)))
        checked, labels_of = 0, data["label"].to_numpy()
        for epoch in range(5):
            for batch in sampler.epoch_batches(epoch):
                labels = [int(labels_of[i]) for i in batch]
                m = mask.batch_mask(labels)
                cols = mask.columns(labels)
                for i, r in enumerate(labels):
                    for j, doc in enumerate(cols):
                        if j == i:
                            continue
                        q = rows["query_id"][r]
                        grade = known.get((q, doc))
                        relevant = grade >= tau if grade is not None else qg[q] == dg[doc]
                        assert m[i, j] == relevant
                        checked += 1
        assert checked > 500
        assert mask.masked > 0


def test_the_loss_refuses_rows_without_labels():
    with pytest.raises(ValueError, match="label"):
        MaskedInfoNCELoss(None, mask_at(1, [("q1", "s1")])).loss_from_embeddings(
            [torch.zeros(1, 4), torch.zeros(1, 4)], None)
