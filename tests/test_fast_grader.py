"""annotation/fast_grader.py: the prompt's fixed prefix, few-shot examples from training
articles only, the grade read from one position's logits, calibration offsets."""
import math

import numpy as np
import pandas as pd
import pytest

from gradedrel.annotation import fast_grader as fg
from gradedrel.annotation.judgement import Pair
from gradedrel.annotation.rubric import grading_prompt
from gradedrel.data.collection import Collection
from gradedrel.data.split import split_groups

EXAMPLES = (fg.Example("Who won?", "Denver won.", 3), fg.Example("Who won?", "It rained.", 0),
            fg.Example("Who won?", "The game was long.", 1), fg.Example("Who won?", "Fans sang.", 2))


def test_prefix_is_the_same_for_every_pair_and_the_pair_comes_last():
    builder = fg.PromptBuilder(EXAMPLES)
    a, b = builder.prompt("Where is Paris?", "Paris is in France."), builder.prompt("Why?", "Because.")
    assert a.startswith(builder.prefix) and b.startswith(builder.prefix)
    assert fg.INSTRUCTIONS in builder.prefix
    assert all(f"Passage:\n\n{e.passage}\n\nScore: [{e.grade}]" in builder.prefix for e in EXAMPLES)
    # the pair after everything fixed; the prompt ends where the grade digit comes next
    assert a[len(builder.prefix):].startswith("Query:\n\nWhere is Paris?\n\nPassage:\n\nParis is in France.")
    assert "Paris" not in builder.prefix
    assert a.endswith("<|im_end|>\n<|im_start|>assistant\n[")
    assert a.index(fg.INSTRUCTIONS) < a.index("Score: [3]") < a.index("Where is Paris?")


def test_zero_shot_prompt_is_the_projects_prompt_as_the_server_formats_it():
    q, p = "Who won Super Bowl 50?", "Denver won Super Bowl 50."
    prompt = fg.PromptBuilder().prompt(q, p)
    assert prompt == fg.CHATML.format(user=grading_prompt(q, p)) + "["
    chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
    served = chat_format.format_chatml([{"role": "user", "content": grading_prompt(q, p)}]).prompt
    assert prompt == served + "["


def test_version_names_the_examples():
    assert fg.PromptBuilder(EXAMPLES).version == fg.PromptBuilder(EXAMPLES).version
    assert fg.PromptBuilder(EXAMPLES).version != fg.PromptBuilder().version
    assert fg.PromptBuilder(EXAMPLES).version != fg.PromptBuilder(EXAMPLES[::-1]).version


def test_reading_a_hand_made_logits_vector():
    logits = np.full(10, -2.0)
    digits = [3, 4, 5, 6]
    logits[digits] = [math.log(1), math.log(2), math.log(3), math.log(4)]   # P ∝ 1:2:3:4
    logits[9] = math.log(10)                                                # a non-digit token
    r = fg.read_grade(logits, digits)
    assert np.allclose(r.probs, [0.1, 0.2, 0.3, 0.4])
    assert r.expected == pytest.approx(0 * .1 + 1 * .2 + 2 * .3 + 3 * .4)
    assert r.grade == 3
    z = 10 + 10 + 5 * math.exp(-2)                  # every token's exp(logit)
    assert r.mass == pytest.approx(10 / z)
    shifted = fg.read_grade(logits, digits, offsets=(0, 0, 0, -1.0))       # log .4 - 1 < log .3
    assert shifted.grade == 2 and shifted.expected == pytest.approx(r.expected)


def test_low_digit_mass_is_not_a_grade(monkeypatch):
    grader = fg.LastTokenGrader.__new__(fg.LastTokenGrader)
    grader.builder, grader.offsets, grader.min_mass, grader.digit_ids = fg.PromptBuilder(), None, 0.5, [0, 1, 2, 3]
    logits = np.array([0.0, 0.0, 0.0, 0.0, 5.0])           # most mass on a non-digit token
    monkeypatch.setattr(grader, "logits", lambda prompt: logits, raising=False)
    (j,) = grader.grade([Pair("q", "d", "en", "Q?", "P.")])
    assert j.score is None and j.status == "no_bracket" and j.expected == pytest.approx(1.5)
    assert fg.probs_from_raw(j.raw) == pytest.approx([0.25] * 4, abs=1e-4)


def test_offsets_are_fitted_on_the_calibration_set_and_lift_the_compressed_grade():
    # a model that compresses onto 1: grade-3 pairs get P(1) > P(3)
    by_grade = {0: [.6, .3, .05, .05], 1: [.2, .6, .1, .1], 2: [.1, .5, .3, .1], 3: [.05, .5, .1, .35]}
    grades = np.repeat([0, 1, 2, 3], 5)
    probs = np.array([by_grade[g] for g in grades])
    before = fg.grades_with_offsets(probs, (0, 0, 0, 0))
    assert (before == 3).sum() == 0
    offsets = fg.fit_offsets(probs, grades)
    assert offsets[0] == 0
    after = fg.grades_with_offsets(probs, offsets)
    assert (after == grades).all()
    # the fit sees only what it is given: the same calibration set gives the same offsets
    assert fg.fit_offsets(probs.copy(), grades.copy()) == offsets
    # offsets need not move when the model already agrees: the smallest are chosen
    assert fg.fit_offsets(np.eye(4)[grades] * .9 + .025, grades) == (0.0, 0.0, 0.0, 0.0)


def test_calibration_must_be_disjoint_from_the_measured_pairs():
    fg.check_disjoint([("en:q1", "en:d1")], [("en:q2", "en:d1")])
    with pytest.raises(ValueError, match="shares 1 pairs"):
        fg.check_disjoint([("en:q1", "en:d1"), ("en:q3", "en:d3")], [("en:q1", "en:d1")])


def toy_collection(n_articles=8):
    """XQuAD-R-like: each article two paragraphs of three sentences, two questions a
    paragraph answered by its sentences 0 and 1 (the answer string only there)."""
    sentences, queries = [], []
    for a in range(n_articles):
        for p in range(2):
            for s in range(3):
                sentences.append((f"en:a{a}p{p}s{s}", f"a{a}p{p}", f"G{a}",
                                  f"Sentence {s} of paragraph {p} of article {a}, answer x{a}{p}{s}."))
            for k in range(2):
                queries.append((f"en:q{a}{p}{k}", f"q{a}{p}{k}", "en", f"G{a}", f"Question {k} on {a}-{p}?",
                                f"en:a{a}p{p}s{k}", f"a{a}p{p}", [f"x{a}{p}{k}"]))
    corpus = pd.DataFrame(sentences, columns=["doc_id", "paragraph_base_id", "group", "text"]).assign(
        base_id=lambda d: d["doc_id"].str[3:], lang="en")
    queries = pd.DataFrame(queries, columns=["query_id", "base_id", "lang", "group", "text", "gold_doc_id",
                                             "gold_paragraph", "answers"])
    qrels = pd.DataFrame({"query_id": queries["query_id"], "doc_id": queries["gold_doc_id"], "grade": 1})
    return Collection("toy-r", corpus, queries, qrels)


def test_few_shot_examples_come_from_training_articles_one_per_grade():
    coll = toy_collection()
    split = split_groups(coll.queries["group"])
    examples = fg.few_shot_examples(coll, seed=0)
    assert sorted(e.grade for e in examples) == [0, 1, 2, 3]
    text_group = dict(zip(coll.corpus["text"], coll.corpus["group"]))
    query_group = dict(zip(coll.queries["text"], coll.queries["group"]))
    for e in examples:
        assert text_group[e.passage] in split["train"] and query_group[e.query] in split["train"]
    assert fg.few_shot_examples(coll, seed=0) == examples           # seeded
    items = fg.disjoint_sample(coll, 1, 0, split["train"])
    assert set(items["query"]) == {e.query for e in examples}


def test_few_shot_examples_avoid_the_excluded_pairs():
    coll = toy_collection()
    train = split_groups(coll.queries["group"])["train"]
    measured = fg.disjoint_sample(coll, 1, 0, train)
    questions = set(measured["query_id"].map(fg.base_of))
    sentences = set(measured["doc_id"].map(fg.base_of))
    for seed in range(4):
        other = fg.disjoint_sample(coll, 1, seed, train, exclude_questions=questions, exclude_sentences=sentences)
        assert not set(other["query_id"].map(fg.base_of)) & questions
        assert not set(other["doc_id"].map(fg.base_of)) & sentences
        examples = fg.few_shot_examples(coll, seed=seed, exclude_questions=questions, exclude_sentences=sentences)
        assert sorted(e.grade for e in examples) == [0, 1, 2, 3]
        assert not {e.query for e in examples} & set(measured["query"])
        assert not {e.passage for e in examples} & set(measured["passage"])


@pytest.mark.integration
def test_cached_prefix_reads_the_same_probabilities_as_a_fresh_prompt():
    """The 0.5B model in process: a pair graded after another (prefix from the cache) reads
    what it reads from an empty cache, and the grade digit follows '['."""
    from gradedrel.annotation.packaged_llms import packaged_gguf
    try:
        path = packaged_gguf("qwen2.5-coder-0.5b-instruct")
    except Exception as err:  # noqa: BLE001 - no wheel cache, no network
        pytest.skip(f"packaged model not available: {err}")
    llama = fg.load_model(path, n_threads=1, n_ctx=1024)
    grader = fg.LastTokenGrader(llama, "qwen2.5-coder-0.5b-instruct", fg.PromptBuilder(EXAMPLES))
    pairs = [Pair("q1", "d1", "en", "Who won Super Bowl 50?", "The Denver Broncos won Super Bowl 50."),
             Pair("q2", "d2", "en", "Where is Paris?", "Bananas are yellow.")]
    cached = [grader.reading(p) for p in pairs]
    assert llama.n_tokens > len(llama.tokenize(grader.builder.prefix.encode(), special=True)) - 2
    llama.reset()
    fresh = grader.reading(pairs[1])
    # the same reading up to kernel rounding: llama.cpp evaluates the prefix in one batch and the
    # suffix in another here, in one batch there, and its quantized matmuls differ by batch shape
    # and CPU (measured: < 2e-3 on the Intel Xeon, up to 0.012 on AMD EPYC); the grade read
    # must not change.
    assert np.allclose(cached[1].probs, fresh.probs, atol=0.02)
    assert int(np.argmax(cached[1].probs)) == int(np.argmax(fresh.probs))
    assert all(r.mass > 0.5 for r in cached)


def test_fit_offsets_share_constraint_keeps_every_grade():
    """Kappa alone may drop grades: on these noisy probabilities (10 items a rubric grade,
    seed 9 of a search for such a case) the unconstrained fit never says 1 or 3; with shares
    held within a factor 2 of the rubric's (25% each) every grade keeps 12.5-50%."""
    grades = np.repeat([0, 1, 2, 3], 10)
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(40, 4))
    logits[np.arange(40), grades] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    free = np.bincount(fg.grades_with_offsets(probs, fg.fit_offsets(probs, grades)), minlength=4)
    assert free[1] == 0 and free[3] == 0
    held = np.bincount(fg.grades_with_offsets(probs, fg.fit_offsets(probs, grades, share_factor=2.0)),
                       minlength=4) / 40
    assert np.all(held >= 0.125) and np.all(held <= 0.5), held
    with pytest.raises(ValueError, match="within a factor"):
        fg.fit_offsets(np.tile([0.7, 0.1, 0.1, 0.1], (40, 1)), grades, share_factor=2.0)
