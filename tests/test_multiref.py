"""Multi-reference scenarios on a tiny hand-made parallel collection.

Three paragraphs (p0 with two questions q0 and q1, p1 with q2, p2 with q3) in English and
a second language "xx". Embeddings are chosen so every ranking can be worked out by hand.
"""
import math

import numpy as np
import pandas as pd
import pytest

from gradedrel.data.collection import Collection, make_id
from gradedrel.multiref import scenarios as mr

LANGS = ("en", "xx")
PARAGRAPH_OF = {"q0": "p0", "q1": "p0", "q2": "p1", "q3": "p2"}


def tiny_collection(langs=LANGS, paragraph_of=PARAGRAPH_OF) -> Collection:
    corpus, queries, qrels = [], [], []
    for lang in langs:
        for p in ("p0", "p1", "p2"):
            corpus.append((make_id(lang, p), p, lang, f"{lang} text of {p}", "A" if p != "p2" else "B"))
        for q, p in paragraph_of.items():
            queries.append((make_id(lang, q), q, lang, f"{lang} question {q}", "A" if p != "p2" else "B"))
            qrels.append((make_id(lang, q), make_id(lang, p), 3))
    return Collection("tiny",
                      pd.DataFrame(corpus, columns=["doc_id", "base_id", "lang", "text", "group"]),
                      pd.DataFrame(queries, columns=["query_id", "base_id", "lang", "text", "group"]),
                      pd.DataFrame(qrels, columns=["query_id", "doc_id", "grade"]))


@pytest.fixture
def coll():
    return tiny_collection()


@pytest.fixture
def embeddings():
    # English paragraphs score twice as high as their translations: an English bias
    en_paragraphs = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 0, 0.2], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0, 1]], dtype=np.float32)
    query_emb = {"en": queries, "xx": queries}
    paragraph_emb = {"en": en_paragraphs, "xx": 0.5 * en_paragraphs}
    return query_emb, paragraph_emb


def pair_id(lang, q):
    return make_id(lang, f"{PARAGRAPH_OF[q]}/{q}")


# --- pools and references ----------------------------------------------------------------

@pytest.mark.parametrize("pool, scenario, size", [
    ("pair", "Multi", 8), ("pair", "Multi-1", 7), ("pair", "Mono-Same", 4), ("pair", "Mono-Cross", 4),
    ("paragraph", "Multi", 6), ("paragraph", "Multi-1", 5), ("paragraph", "Mono-Same", 3),
    ("paragraph", "Mono-Cross", 3),
])
def test_pool_sizes(coll, pool, scenario, size):
    sc = mr.build_scenario(coll, scenario, "en", "xx", pool)
    assert sc.pool_size == size
    assert sc.n_refs == (2 if scenario == "Multi" else 1)


def test_pair_pool_has_one_document_per_question_and_language(coll):
    docs = mr.pool_documents(coll, ["en", "xx"], "pair")
    assert len(docs) == 2 * len(PARAGRAPH_OF)
    assert set(docs["doc_id"]) == {pair_id(l, q) for l in LANGS for q in PARAGRAPH_OF}
    # both copies of p0 carry p0's text
    assert set(docs.loc[docs["paragraph"] == "p0", "para_doc_id"]) == {"en:p0", "xx:p0"}


def test_references_per_scenario(coll):
    pair = {name: mr.build_scenario(coll, name, "xx", "en", "pair") for name in mr.SCENARIOS}
    assert pair["Multi"].qrels["xx:q1"] == {pair_id("xx", "q1"): 1, pair_id("en", "q1"): 1}
    assert pair["Multi-1"].qrels["xx:q1"] == {pair_id("en", "q1"): 1}
    assert pair["Multi-1"].excluded == {f"xx:{q}": pair_id("xx", q) for q in PARAGRAPH_OF}
    assert pair["Mono-Same"].qrels["xx:q1"] == {pair_id("xx", "q1"): 1}
    assert pair["Mono-Cross"].qrels["xx:q1"] == {pair_id("en", "q1"): 1}
    assert pair["Mono-Cross"].doc_langs == ("en",)
    para = mr.build_scenario(coll, "Multi", "en", "xx", "paragraph")
    assert para.qrels["en:q1"] == {"en:p0": 1, "xx:p0": 1}
    assert not para.excluded


def test_multi_minus_one_removes_only_the_querys_own_reference(coll, embeddings):
    sc = mr.build_scenario(coll, "Multi-1", "en", "xx", "pair")
    run = mr.scenario_run(sc, coll, *embeddings)
    for qid, ranking in run.items():
        assert len(ranking) == sc.pool_size == 7
        assert sc.excluded[qid] not in ranking
    # q0's sibling copy of p0 (the q1 pair) stays in q0's pool
    assert pair_id("en", "q1") in run["en:q0"]


def test_paragraph_without_questions_is_in_the_paragraph_pool_only(coll, embeddings):
    part = coll.subset(query_ids=[q for q in coll.queries["query_id"] if not q.endswith("q3")])
    query_emb = {l: e[:3] for l, e in embeddings[0].items()}
    pair = mr.build_scenario(part, "Multi", "en", "xx", "pair")
    run = mr.scenario_run(pair, part, query_emb, embeddings[1])
    assert pair.pool_size == 6 and all(len(r) == 6 for r in run.values())
    assert mr.build_scenario(part, "Multi", "en", "xx", "paragraph").pool_size == 6


# --- runs and metrics, worked out by hand -----------------------------------------------------

def test_pair_pool_multi_by_hand(coll, embeddings):
    sc = mr.build_scenario(coll, "Multi", "en", "xx", "pair")
    run = mr.scenario_run(sc, coll, *embeddings)
    assert all(len(r) == 8 for r in run.values())
    # copies of a paragraph tie exactly
    assert run["en:q0"][pair_id("en", "q0")] == run["en:q0"][pair_id("en", "q1")]
    per_query = mr.evaluate_scenario(sc, run, complete_k=3)
    values = per_query.pivot(index="query_id", columns="measure", values="value")
    # q0: en p0 copies (1.0) ranks 1-2, ties by doc id descending: ".../q1" first, so
    # q0's own English copy is 2nd; xx p0 copies (0.5) ranks 3-4, its own is 4th
    assert values.loc["en:q0", "Max@R"] == 4
    assert values.loc["en:q1", "Max@R"] == 3
    assert values.loc["en:q2", "Max@R"] == 2
    assert values.loc["en:q3", "Max@R"] == 2
    assert values["Complete@3"].to_dict() == {"en:q0": 0.0, "en:q1": 1.0, "en:q2": 1.0, "en:q3": 1.0}
    norm = lambda m: 100 * (3 - math.log2(m)) / (3 - 1)          # |D| = 8, |R| = 2
    assert values.loc["en:q1", "Max@R-norm"] == pytest.approx(norm(3))
    summary = mr.summarise(per_query.assign(target="xx", pool="pair", scenario="Multi",
                                            query_lang="en", pool_size=8, n_refs=2))
    row = summary.iloc[0]
    assert row["Max@R"] == pytest.approx(2.75)
    assert row["Max@R-norm (per-query mean)"] == pytest.approx(np.mean([norm(m) for m in (4, 3, 2, 2)]))
    assert row[mr.PAPER_NORM] == pytest.approx(norm(2.75))
    assert row["Complete@3 (%)"] == pytest.approx(75)


def test_single_reference_metrics_by_hand(coll, embeddings):
    sc = mr.build_scenario(coll, "Multi-1", "en", "xx", "pair")
    per_query = mr.evaluate_scenario(sc, mr.scenario_run(sc, coll, *embeddings))
    values = per_query.pivot(index="query_id", columns="measure", values="value")
    # q0 without its own English copy: en:p0/q1 (1.0), xx:p0/q1 (0.5), xx:p0/q0 (0.5) -> rank 3
    assert values.loc["en:q0", "nDCG@1"] == 0
    assert values.loc["en:q0", "RR"] == pytest.approx(1 / 3)
    assert values.loc["en:q0", "Max@R"] == 3
    # q2: en p1 (its own) removed; xx p1 (0.5) is then first
    assert values.loc["en:q2", "RR"] == 1
    mono = mr.build_scenario(coll, "Mono-Cross", "en", "xx", "paragraph")
    values = mr.evaluate_scenario(mono, mr.scenario_run(mono, coll, *embeddings)).pivot(
        index="query_id", columns="measure", values="value")
    assert values["nDCG@1"].tolist() == [1, 1, 1, 1]


def test_evaluate_scenarios_and_language_gap(coll, embeddings):
    query_emb, paragraph_emb = embeddings
    # xx queries: weaker, pointing half-way to the wrong paragraph
    query_emb = dict(query_emb, xx=query_emb["en"] + 0.8 * np.roll(query_emb["en"], 1, axis=1))
    per_query = mr.evaluate_scenarios(coll, "xx", query_emb, paragraph_emb)
    assert set(per_query.columns) == set(mr.PER_QUERY_COLUMNS)
    assert per_query.groupby(["pool", "scenario", "query_lang"]).ngroups == 16
    summary = mr.summarise(per_query)
    gap = mr.language_gap(summary)
    en = summary.query("pool == 'pair' and scenario == 'Multi' and query_lang == 'en'").iloc[0]
    xx = summary.query("pool == 'pair' and scenario == 'Multi' and query_lang == 'xx'").iloc[0]
    row = gap.query("pool == 'pair' and scenario == 'Multi'").iloc[0]
    assert row["Max@R"] == pytest.approx(xx["Max@R"] - en["Max@R"])      # sign: English advantage
    assert row["Complete@10 (%)"] == pytest.approx(en["Complete@10 (%)"] - xx["Complete@10 (%)"])


def test_oracle_is_perfect_on_the_paragraph_pool_and_capped_by_ties_on_the_pair_pool(coll):
    per_query = mr.evaluate_scenarios(coll, "xx", *mr.oracle_embeddings(coll, ["en", "xx"]))
    summary = mr.summarise(per_query).set_index(["pool", "scenario", "query_lang"])
    assert summary.loc[("paragraph", "Multi", "en"), "Max@R"] == 2
    assert summary.loc[("paragraph", "Multi-1", "xx"), "nDCG@1 (%)"] == 100
    # p0's four copies tie: for q0 and q1 the last own copy lands at rank 3 or 4
    assert summary.loc[("pair", "Multi", "en"), "Max@R"] > 2


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_rejected(coll):
    with pytest.raises(ValueError, match="unknown scenario"):
        mr.build_scenario(coll, "Multi-2", "en", "xx")
    with pytest.raises(ValueError, match="unknown pool"):
        mr.pool_documents(coll, ["en", "xx"], "sentence")
    with pytest.raises(ValueError, match="two different languages"):
        mr.build_scenario(coll, "Multi", "en", "en")
    with pytest.raises(ValueError, match="no 'de' queries"):
        mr.build_scenario(coll, "Multi", "en", "de")


def test_non_parallel_collection_is_rejected():
    en = tiny_collection(("en",))
    xx = tiny_collection(("xx",), dict(PARAGRAPH_OF, q1="p1"))
    both = Collection("mixed", pd.concat([en.corpus, xx.corpus], ignore_index=True),
                      pd.concat([en.queries, xx.queries], ignore_index=True),
                      pd.concat([en.qrels, xx.qrels], ignore_index=True))
    with pytest.raises(ValueError, match="not parallel"):
        mr.build_scenario(both, "Multi", "en", "xx")


def test_query_with_two_relevant_paragraphs_is_rejected(coll):
    extra = pd.DataFrame([("en:q0", "en:p1", 2)], columns=["query_id", "doc_id", "grade"])
    two = Collection("two", coll.corpus, coll.queries, pd.concat([coll.qrels, extra], ignore_index=True))
    with pytest.raises(ValueError, match="exactly one"):
        mr.build_scenario(two, "Multi", "en", "xx")


def test_embedding_count_mismatch_is_rejected(coll, embeddings):
    query_emb, paragraph_emb = embeddings
    sc = mr.build_scenario(coll, "Multi", "en", "xx")
    with pytest.raises(ValueError, match="embeddings for"):
        mr.scenario_run(sc, coll, {"en": query_emb["en"][:3]}, paragraph_emb)
