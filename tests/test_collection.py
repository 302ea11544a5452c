import pandas as pd
import pytest

from gradedrel.data.collection import Collection, make_id
from gradedrel.data.split import split_collection, split_groups


def parallel_collection():
    """Two articles, two paragraphs each, one question per paragraph, in en and de."""
    corpus, queries, qrels = [], [], []
    for lang in ("en", "de"):
        for art in ("A", "B"):
            for p in (0, 1):
                base = f"{art}{p}"
                corpus.append((make_id(lang, base), base, lang, f"{lang} text {base}", art))
                queries.append((make_id(lang, "q" + base), "q" + base, lang, f"{lang} q {base}", art))
                qrels.append((make_id(lang, "q" + base), make_id(lang, base), 3))
    return Collection("toy",
                      pd.DataFrame(corpus, columns=["doc_id", "base_id", "lang", "text", "group"]),
                      pd.DataFrame(queries, columns=["query_id", "base_id", "lang", "text", "group"]),
                      pd.DataFrame(qrels, columns=["query_id", "doc_id", "grade"]))


def test_cross_lingual_qrels_follow_base_ids():
    c = parallel_collection()
    assert c.qrels_dict("en", "en")["en:qA0"] == {"en:A0": 3}
    assert c.qrels_dict("en", "de")["en:qA0"] == {"de:A0": 3}
    assert c.qrels_dict("de", "en")["de:qB1"] == {"en:B1": 3}
    assert len(c.qrels_dict("en", "de")) == 4


def test_min_grade_filters():
    c = parallel_collection()
    c.qrels.loc[0, "grade"] = 1
    assert "en:qA0" not in c.qrels_dict("en", min_grade=2)


def test_missing_columns_and_duplicates_are_errors():
    c = parallel_collection()
    with pytest.raises(ValueError, match="lacks columns"):
        Collection("bad", c.corpus.drop(columns="group"), c.queries, c.qrels)
    with pytest.raises(ValueError, match="duplicate doc_id"):
        Collection("bad", pd.concat([c.corpus, c.corpus.head(1)]), c.queries, c.qrels)


def test_subset_keeps_consistent_qrels():
    c = parallel_collection().subset(langs=["de"], groups=["B"])
    assert set(c.corpus["doc_id"]) == {"de:B0", "de:B1"}
    assert set(c.qrels["query_id"]) == {"de:qB0", "de:qB1"}


def test_split_is_deterministic_disjoint_and_sized():
    groups = [f"article{i:02d}" for i in range(48)]
    a, b = split_groups(groups), split_groups(list(reversed(groups)))
    assert a == b
    assert (len(a["train"]), len(a["test"])) == (36, 12)
    assert not set(a["train"]) & set(a["test"])
    assert set(a["train"]) | set(a["test"]) == set(groups)
    assert split_groups(groups, seed=14) != a


def test_split_collection_by_article():
    parts = split_collection(parallel_collection(), test_fraction=0.5)
    assert set(parts["train"].corpus["group"]).isdisjoint(parts["test"].corpus["group"])
    assert len(parts["train"].queries) + len(parts["test"].queries) == 8


def test_subset_by_group_keeps_the_whole_corpus_where_queries_have_their_own_groups():
    """MIRACL-like data: a query's group is its own, documents have none in common. The
    leakage guard must not cut the corpus by the queries' groups (every test query still
    searches all of it), while on XQuAD-like data a group cut removes the documents too."""
    corpus = pd.DataFrame({"doc_id": ["en:d1", "en:d2"], "base_id": ["d1", "d2"], "lang": "en",
                           "text": ["a", "b"], "group": ["doc-group", "doc-group"]})
    queries = pd.DataFrame({"query_id": ["en:q1", "en:q2"], "base_id": ["q1", "q2"], "lang": "en",
                            "text": ["x", "y"], "group": ["q1", "q2"]})
    qrels = pd.DataFrame({"query_id": ["en:q1", "en:q2"], "doc_id": ["en:d1", "en:d2"], "grade": [1, 1]})
    coll = Collection("miracl-like", corpus, queries, qrels)
    assert not coll.shares_groups
    sub = coll.subset(groups=["q2"])
    assert sub.queries["query_id"].tolist() == ["en:q2"]
    assert sub.corpus["doc_id"].tolist() == ["en:d1", "en:d2"]          # the corpus stays whole
    assert sub.qrels["doc_id"].tolist() == ["en:d2"]
    shared = Collection("xquad-like", corpus.assign(group=["q1", "q2"]), queries, qrels)
    assert shared.shares_groups
    assert shared.subset(groups=["q2"]).corpus["doc_id"].tolist() == ["en:d2"]
