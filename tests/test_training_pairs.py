"""Binarisation at tau and the two readings of "training size", on hand-made rows."""
import pandas as pd
import pytest

from gradedrel.training import pairs as tp


def rows(n_queries=10, lang="en", scores=(3, 2, 1, 0, 1)):
    """n_queries queries x 5 candidates with the given scores."""
    return pd.DataFrame([(f"{lang}:q{i}", f"{lang}:d{i}_{j}", lang, s)
                         for i in range(n_queries) for j, s in enumerate(scores)],
                        columns=["query_id", "doc_id", "lang", "score"])


def test_binarise_is_score_at_least_tau():
    r = pd.DataFrame({"query_id": "q", "doc_id": list("abcd"), "lang": "en", "score": [0, 1, 2, 3]})
    assert tp.binarise(r, 1).tolist() == [False, True, True, True]
    assert tp.binarise(r, 2).tolist() == [False, False, True, True]
    assert tp.binarise(r, 3).tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="tau"):
        tp.binarise(r, 0)
    with pytest.raises(ValueError, match="tau"):
        tp.binarise(r, 4)


def test_unparsed_scores_are_never_negatives():
    r = pd.DataFrame({"query_id": "q", "doc_id": ["a", "b"], "lang": "en",
                      "score": pd.array([3, pd.NA], dtype="Int64")})
    with pytest.raises(ValueError, match="no parsed score"):
        tp.binarise(r, 1)
    assert tp.parsed_rows(r)["doc_id"].tolist() == ["a"]


def test_instances_reading_counts_rows_before_the_filter():
    r = rows()                                # 50 rows; positives: tau1 40, tau2 20, tau3 10
    for tau in (1, 2, 3):
        sample = tp.sample_language(r, "en", 20, tau, "instances", seed=0)
        assert len(sample) == 20
    same = [tp.sample_language(r, "en", 20, tau, "instances", seed=0) for tau in (1, 3)]
    pd.testing.assert_frame_equal(same[0], same[1])          # every tau filters the same N
    n_pos = [len(tp.positive_pairs(same[0], tau)) for tau in (1, 2, 3)]
    assert n_pos[0] >= n_pos[1] >= n_pos[2]
    assert n_pos[0] == int((same[0]["score"] >= 1).sum())


def test_positives_reading_gives_n_positives_at_every_tau():
    r = rows()
    for tau in (1, 2, 3):
        sample = tp.sample_language(r, "en", 8, tau, "positives", seed=1)
        assert len(tp.positive_pairs(sample, tau)) == 8
        assert sample["score"].iloc[-1] >= tau     # the sample ends at its 8th positive


def test_sizes_are_nested_and_seeded():
    r = rows(30)
    small = tp.sample_language(r, "en", 10, 1, "instances", seed=3)
    large = tp.sample_language(r, "en", 40, 1, "instances", seed=3)
    pd.testing.assert_frame_equal(small, large.iloc[:10].reset_index(drop=True))
    other_seed = tp.sample_language(r, "en", 10, 1, "instances", seed=4)
    assert not small.equals(other_seed)
    shuffled = r.sample(frac=1, random_state=0)          # input order does not matter
    pd.testing.assert_frame_equal(small, tp.sample_language(shuffled, "en", 10, 1, "instances", seed=3))


def test_size_all_and_too_large():
    r = rows(4)
    assert len(tp.sample_language(r, "en", "all", 3, "instances")) == 20
    assert len(tp.positive_pairs(tp.sample_language(r, "en", "all", 3, "positives"), 3)) == 4
    with pytest.raises(ValueError, match="exceeds the 20 annotated instances"):
        tp.sample_language(r, "en", 21, 1, "instances")
    with pytest.raises(ValueError, match="positives at tau=3"):
        tp.sample_language(r, "en", 5, 3, "positives")
    with pytest.raises(ValueError, match="size_reading"):
        tp.sample_language(r, "en", 5, 3, "pairs")
    with pytest.raises(ValueError, match="no annotated rows"):
        tp.sample_language(r, "de", 5, 3, "instances")


def test_train_split_drops_test_queries_and_test_passages():
    r = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["d1", "d9", "d1"],
                      "lang": "en", "score": [3, 1, 2]})
    query_group = pd.Series({"q1": "A", "q2": "T"})
    doc_group = pd.Series({"d1": "A", "d9": "T"})
    kept = tp.train_split_rows(r, query_group, doc_group, ["A"])
    assert kept[["query_id", "doc_id"]].values.tolist() == [["q1", "d1"]]
    kept = tp.train_split_rows(r, query_group, doc_group, ["A"], check_docs=False)
    assert len(kept) == 2


def test_hard_negatives_come_from_the_same_query_below_tau():
    r = rows(3)
    sample = tp.sample_language(r, "en", "all", 3, "instances")
    pos = tp.positive_pairs(sample, 3)
    doc_group = pd.Series({d: q for q, d in zip(r["query_id"], r["doc_id"])})
    out, counts = tp.add_hard_negatives(pos, sample, 3, doc_group, seed=0)
    assert counts == {"hard": 3, "random_other_article": 0}
    score = r.set_index("doc_id")["score"]
    for qid, neg in zip(out["query_id"], out["negative_id"]):
        assert neg.startswith(qid.replace("en:q", "en:d")) and score[neg] < 3
    # at tau=1 a query whose candidates all pass has no hard negative: another article's
    allpass = rows(3, scores=(3, 2, 1))
    out, counts = tp.add_hard_negatives(tp.positive_pairs(allpass, 1), allpass, 1,
                                        pd.Series({d: q for q, d in zip(allpass["query_id"],
                                                                         allpass["doc_id"])}))
    assert counts == {"hard": 0, "random_other_article": 9}
    assert all(not n.startswith(q.replace("en:q", "en:d") + "_") for q, n in
               zip(out["query_id"], out["negative_id"]))


def test_with_texts_and_fingerprint():
    r = rows(2)
    texts_q = pd.Series({q: f"question {q}" for q in r["query_id"]})
    texts_d = pd.Series({d: f"passage {d}" for d in r["doc_id"]})
    out = tp.with_texts(r, texts_q, texts_d)
    assert out["query"].iloc[0] == "question en:q0" and out["passage"].iloc[0] == "passage en:d0_0"
    with pytest.raises(ValueError, match="not in the collection"):
        tp.with_texts(r, texts_q.iloc[:1], texts_d)
    assert tp.rows_fingerprint(r) == tp.rows_fingerprint(r.iloc[::-1])
    changed = r.copy()
    changed.loc[0, "score"] = 0
    assert tp.rows_fingerprint(r) != tp.rows_fingerprint(changed)


def test_positives_per_tau_counts_what_each_threshold_keeps():
    rows = pd.DataFrame({"query_id": list("abcdefg"), "doc_id": list("ABCDEFG"),
                         "lang": ["en"] * 4 + ["ar"] * 3, "score": [0, 1, 2, 3, 3, 3, None]})
    table = tp.positives_per_tau(rows)
    assert table.loc["en"].tolist() == [4, 3, 0.75, 2, 0.5, 1, 0.25]
    assert table.loc["ar"].tolist() == [2, 2, 1.0, 2, 1.0, 2, 1.0]    # the unparsed row is dropped
