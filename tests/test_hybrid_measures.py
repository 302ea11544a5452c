"""LAReQA's measures (retrieval/lareqa.py) on hand-made rankings with worked values, and
against ir_measures on the same scores."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.data.xquad_r import AnswerSentenceCollection
from gradedrel.retrieval import lareqa
from gradedrel.retrieval.metrics import evaluate


def test_ranks_follow_scores_and_trec_eval_ties():
    scores = np.array([[0.9, 0.5, 0.7, 0.1],
                       [0.5, 0.5, 0.2, 0.5]])
    ids = ["x:a", "x:b", "x:c", "x:d"]
    # query 0: b (0.5) is behind a (0.9) and c (0.7): rank 3
    # query 1: a, b, d tie at 0.5; trec_eval puts the larger id first: d, b, a -> a is 3rd
    ranks = lareqa.ranks_of(scores, ids, np.array([[1], [0]]))
    assert ranks.tolist() == [[3], [3]]
    assert lareqa.ranks_of(scores, ids, np.array([[3], [3]])).tolist() == [[4], [1]]


def test_average_precision_worked_example():
    # relevant at ranks 1, 3, 6 (R = 3): AP = (1/1 + 2/3 + 3/6) / 3 = 0.7222...
    ranks = np.array([[6, 1, 3]])
    assert lareqa.average_precision(ranks)[0] == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    # cut at 5: the one at rank 6 adds 0, still divided by R = 3: (1 + 2/3) / 3
    assert lareqa.average_precision(ranks, cutoff=5)[0] == pytest.approx((1 + 2 / 3) / 3)
    # one relevant document: AP is its reciprocal rank
    assert lareqa.average_precision(np.array([[4]]))[0] == pytest.approx(0.25)
    assert lareqa.average_precision(np.array([[4]]), cutoff=3)[0] == 0.0


def test_language_bias_is_the_largest_rank_distance():
    ranks = np.array([[1, 2, 3], [2, 40, 7], [5, 5 + 1, 5 + 2]])
    assert lareqa.language_bias(ranks).tolist() == [2.0, 38.0, 2.0]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="share a rank"):
        lareqa.average_precision(np.array([[2, 2]]))
    with pytest.raises(ValueError, match="start at 1"):
        lareqa.average_precision(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="NaN"):
        lareqa.ranks_of(np.array([[np.nan, 1.0]]), ["a", "b"], np.array([[0]]))
    with pytest.raises(ValueError, match=">= 2 relevant"):
        lareqa.language_bias(np.array([[3]]))
    with pytest.raises(ValueError, match="outside"):
        lareqa.ranks_of(np.array([[0.1, 0.2]]), ["a", "b"], np.array([[2]]))


@pytest.mark.parametrize("n_relevant", [1, 3, 11])
def test_average_precision_matches_ir_measures(n_relevant):
    """The numpy AP / AP@20 from ranks equal ir_measures' AP / AP@20 on the same scores,
    ties included (scores rounded to two digits)."""
    rng = np.random.default_rng(n_relevant)
    n_q, n_d = 12, 60
    scores = np.round(rng.random((n_q, n_d)), 2)
    ids = [f"d{j:03d}" for j in range(n_d)]
    rel = np.stack([rng.choice(n_d, n_relevant, replace=False) for _ in range(n_q)])
    ranks = lareqa.ranks_of(scores, ids, rel)
    ours = {"AP": lareqa.average_precision(ranks), "AP@20": lareqa.average_precision(ranks, 20)}
    run = {f"q{i}": {ids[j]: float(scores[i, j]) for j in range(n_d)} for i in range(n_q)}
    qrels = {f"q{i}": {ids[j]: 1 for j in rel[i]} for i in range(n_q)}
    theirs = evaluate(qrels, run, ["AP", "AP@20"]).pivot(index="query_id", columns="measure",
                                                         values="value")
    for m in ("AP", "AP@20"):
        got = pd.Series(ours[m], index=[f"q{i}" for i in range(n_q)])
        assert np.allclose(got.sort_index(), theirs[m].sort_index(), atol=1e-12), m


def _tiny_collection():
    """Two languages, two parallel questions, three sentences a language; question 1's
    answer is sentence s0, question 2's is s2 in both languages."""
    corpus = pd.DataFrame({
        "doc_id": ["en:s0", "en:s1", "en:s2", "es:s0", "es:s1", "es:s2"],
        "base_id": ["s0", "s1", "s2"] * 2, "lang": ["en"] * 3 + ["es"] * 3,
        "text": list("abcdef"), "group": "A", "paragraph_base_id": "p"})
    queries = pd.DataFrame({
        "query_id": ["en:q1", "en:q2", "es:q1", "es:q2"], "base_id": ["q1", "q2"] * 2,
        "lang": ["en", "en", "es", "es"], "text": list("wxyz"), "group": "A",
        "gold_doc_id": ["en:s0", "en:s2", "es:s0", "es:s2"], "gold_paragraph": "p",
        "answers": [["a"]] * 4})
    qrels = pd.DataFrame({"query_id": ["en:q1"], "doc_id": ["en:s0"], "grade": [1]})
    return AnswerSentenceCollection("tiny", corpus, queries, qrels)


def test_evaluate_lareqa_worked_example():
    """Hand-set embeddings (already unit length). Sentence vectors e0, e1, e2 in each
    language, the Spanish ones pushed towards a 'Spanish' direction e3.
    en:q1 = e0 -> en scores (1, 0, 0): s0 first, X-X AP 1.
    en:q1 against es: es:s0 = 0.6 e0 + 0.8 e3 scores 0.6, es:s1 = 0.8 e3 scores 0, es:s2 = 0.6 e2 + 0.8 e3 scores 0 -> rank 1.
    Pooled for en:q1: en:s0 1.0, es:s0 0.6, then zeros -> ranks 1, 2: AP 1, bias 1."""
    coll = _tiny_collection()
    e = np.eye(4)
    d_emb = {"en": np.stack([e[0], e[1], e[2]]),
             "es": np.stack([0.6 * e[0] + 0.8 * e[3], 0.8 * e[3] + 0.6 * e[1], 0.6 * e[2] + 0.8 * e[3]])}
    # en:q2 = e1: its answer is s2 but s1 scores 1.0 (rank 2 in en, X-X AP 1/2);
    # es:q1 = e3: every es sentence scores 0.8 (a tie: trec_eval's order es:s2, es:s1, es:s0 puts
    # its answer es:s0 third: AP 1/3); against en all score 0 (tie: en:s2, en:s1, en:s0 -> rank 3)
    q_emb = {"en": np.stack([e[0], e[1]]), "es": np.stack([e[3], 0.6 * e[2] + 0.8 * e[3]])}
    pq = lareqa.evaluate_lareqa(coll, q_emb, d_emb, ["en", "es"], cutoff=2)
    value = pq.set_index(["query_id", "doc_lang", "measure"])["value"]
    assert value[("en:q1", "en", "AP")] == 1.0
    assert value[("en:q2", "en", "AP")] == 0.5
    assert value[("en:q1", "es", "AP")] == 1.0
    assert value[("es:q1", "es", "AP")] == pytest.approx(1 / 3)
    assert value[("es:q1", "es", "AP@2")] == 0.0
    assert value[("es:q1", "en", "AP")] == pytest.approx(1 / 3)
    assert value[("en:q1", "pooled", "AP")] == 1.0
    assert value[("en:q1", "pooled", "LangBias")] == 1.0
    # es:q2 = 0.6 e2 + 0.8 e3: es:s2 1.0, es:s0 0.64, es:s1 0.64, en:s2 0.6, en:s0 0, en:s1 0
    # pooled relevant (en:s2, es:s2) at ranks 4 and 1: AP (1/1 + 2/4) / 2 = 0.75, bias 3;
    # AP@2 counts only rank 1: 0.5
    assert value[("es:q2", "pooled", "AP")] == pytest.approx(0.75)
    assert value[("es:q2", "pooled", "AP@2")] == pytest.approx(0.5)
    assert value[("es:q2", "pooled", "LangBias")] == 3.0
    means = lareqa.setting_means(pq)
    xx = np.mean([np.mean([1.0, 0.5]), np.mean([1 / 3, 1.0])])
    assert means[("X-X", "AP")] == pytest.approx(xx)
    per_q = lareqa.per_question(pq, coll.queries.set_index("query_id")["base_id"])
    bias = per_q[(per_q["setting"] == "pooled") & (per_q["measure"] == "LangBias")]
    assert bias.set_index("base_id")["value"]["q2"] == pytest.approx(
        np.mean([value[("en:q2", "pooled", "LangBias")], 3.0]))


def test_missing_answer_sentence_is_an_error():
    coll = _tiny_collection()
    e = np.eye(3)
    with pytest.raises(ValueError, match="no answer sentence"):
        lareqa._gold_columns(coll.topics("en"), coll.docs("en").iloc[:2],
                             coll.queries[coll.queries["lang"] == "en"])
    with pytest.raises(ValueError, match="two languages"):
        lareqa.evaluate_lareqa(coll, {"en": e[:2]}, {"en": e}, ["en"])
