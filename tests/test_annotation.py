"""Annotation pipeline pieces: the rubric annotator, the judgement store, down-sampling,
the dataset rows, and agreement statistics."""
import json

import numpy as np
import pandas as pd
import pytest

from gradedrel import claims
from gradedrel.annotation import agreement
from gradedrel.annotation.annotators import XQuADRubricAnnotator
from gradedrel.annotation.judgement import Judgement, Pair
from gradedrel.annotation.pipeline import annotation_dataset, downsample, grade_candidates
from gradedrel.annotation.store import CorruptStoreError, JudgementStore, store_key
from gradedrel.data.collection import Collection


def toy_xquad():
    corpus = pd.DataFrame({
        "doc_id": ["en:a0p0", "en:a0p1", "en:a1p0"], "base_id": ["a0p0", "a0p1", "a1p0"],
        "lang": "en", "group": ["A", "A", "B"],
        "text": ["Denver won Super Bowl 50.", "The game was played in 2016 by Denver fans.",
                 "Rhine flows through 6 countries."]})
    queries = pd.DataFrame({
        "query_id": ["en:q1"], "base_id": ["q1"], "lang": "en", "group": ["A"],
        "text": ["Who won Super Bowl 50?"], "gold_doc_id": ["en:a0p0"], "answers": [["Denver"]]})
    qrels = pd.DataFrame({"query_id": ["en:q1"], "doc_id": ["en:a0p0"], "grade": [3]})
    return Collection("toy", corpus, queries, qrels)


def test_rubric_grades_follow_the_four_levels():
    coll = toy_xquad()
    ann = XQuADRubricAnnotator(coll)
    text = coll.corpus.set_index("doc_id")["text"]
    grades = {d: ann.grade_one(Pair("en:q1", d, "en", "Who won?", text[d])).score
              for d in text.index}
    assert grades == {"en:a0p0": 3, "en:a0p1": 2, "en:a1p0": 0}
    # same article without the answer -> 1
    assert ann.grade_one(Pair("en:q1", "en:a0p1", "en", "q", "nothing here")).score == 1


class Named:
    name, model, prompt_version = "ann", "m", "v1"


def test_store_resumes_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "store.jsonl"
    with JudgementStore(path) as store:
        store.put(Named, Judgement("q1", "d1", 2, "ok", "[2]"), lang="en")
        store.put(Named, Judgement("q1", "d2", None, "no_bracket", "two"), lang="en")
    with open(path, "a") as fh:
        fh.write('{"annotator": "ann", "model": "m", "prompt_ver')     # killed mid-write
    with pytest.warns(UserWarning, match="torn last line"):
        store = JudgementStore(path)
    assert len(store) == 2 and store_key(Named, "q1", "d1") in store
    assert store.get(store_key(Named, "q1", "d2"))["raw"] == "two"
    store.put(Named, Judgement("q1", "d3", 0, "ok", "[0]"), lang="en")
    store.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_store_rejects_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "store.jsonl"
    path.write_text('{"annotator": "ann"}\nnot json\n')
    with pytest.raises(CorruptStoreError, match=r"store.jsonl:1"):
        JudgementStore(path)


class CountingRubric(XQuADRubricAnnotator):
    calls = 0

    def grade(self, pairs):
        for p in pairs:
            CountingRubric.calls += 1
            yield self.grade_one(p)


def test_grading_skips_what_the_store_has(tmp_path):
    coll = toy_xquad()
    cands = pd.DataFrame({"query_id": "en:q1", "doc_id": ["en:a0p0", "en:a0p1", "en:a1p0"],
                          "lang": "en", "rank": [1, 2, 3]})
    ann = CountingRubric(coll)
    with JudgementStore(tmp_path / "s.jsonl") as store:
        assert grade_candidates(ann, coll, cands.head(2), store, progress=False)["graded"] == 2
    with JudgementStore(tmp_path / "s.jsonl") as store:
        counts = grade_candidates(ann, coll, cands, store, progress=False)
        rows = annotation_dataset(store, ann, cands)
    assert counts == {"cached": 2, "graded": 1, "failed": 0} and CountingRubric.calls == 3
    assert list(rows["score"]) == [3, 2, 0] and set(rows["annotator"]) == {"xquad-rubric"}


def graded_frame(spec):
    """spec: {lang: (n_nonzero, n_zero)}"""
    rows = []
    for lang, (nz, z) in spec.items():
        rows += [(f"{lang}:q{i}", f"{lang}:d{i}", lang, 1 + i % 3, i) for i in range(nz)]
        rows += [(f"{lang}:z{i}", f"{lang}:e{i}", lang, 0, i) for i in range(z)]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "lang", "score", "rank"])


def test_downsample_follows_appendix_a():
    df = graded_frame({"ar": (10, 50), "en": (30, 50), "fi": (20, 50)})
    df.loc[len(df)] = ["en:x", "en:y", "en", None, 0]           # unparsed rows are left out
    out = downsample(df, target_size=60, seed=1)
    per_lang = out.groupby("lang")["score"].agg(nonzero=lambda s: (s > 0).sum(), total="size")
    assert (per_lang["nonzero"] == 10).all()                      # the rarest language's count
    assert (per_lang["total"] == 20).all() and len(out) == 60
    assert out.equals(downsample(df, target_size=60, seed=1))


def test_downsample_warns_when_zeros_run_out():
    df = graded_frame({"ar": (5, 1), "en": (8, 40)})
    with pytest.warns(UserWarning, match="ar: 1 zero-score rows"):
        out = downsample(df, target_size=20)
    assert (out["lang"] == "ar").sum() == 6 and (out["lang"] == "en").sum() == 10


def test_kappa_and_confusion_worked_example():
    a = [0, 1, 2, 3, 3, 0]
    b = [0, 1, 2, 3, 3, 0]
    assert agreement.quadratic_kappa(a, b) == pytest.approx(1.0)
    # hand computation: observed weighted disagreement vs expected from the marginals
    a2, b2 = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    w = lambda i, j: (i - j) ** 2 / 9                         # noqa: E731
    observed = np.mean([w(i, j) for i, j in zip(a2, b2)])
    expected = np.mean([[w(i, j) for j in b2] for i in a2])
    assert agreement.quadratic_kappa(a2, b2) == pytest.approx(1 - observed / expected)
    cm = agreement.row_normalised_confusion(a2, b2)
    assert cm.loc[0].tolist()[:2] == [0.5, 0.5] and cm.loc[1, 1] == 1.0
    assert cm.loc[3].isna().all()


def qwk_from_moments(a, b, axis=-1):
    """Quadratic-weighted kappa from first principles: 1 - sum(w * observed) / sum(w *
    expected) with w = (i - j)^2 is 2 cov(a, b) / (var a + var b + (mean a - mean b)^2),
    population moments; vectorised over leading axes (scipy.stats.bootstrap's resamples)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma, mb = a.mean(axis, keepdims=True), b.mean(axis, keepdims=True)
    cov = ((a - ma) * (b - mb)).mean(axis)
    return 2 * cov / (a.var(axis) + b.var(axis) + (ma - mb).squeeze(axis) ** 2)


def test_kappa_interval_is_the_95_percent_percentile_bootstrap():
    """The interval against scipy.stats.bootstrap's paired percentile interval of kappa
    computed from moments (an independent resampler and kappa): with 20,000 resamples each,
    the ends agree within 0.1 of kappa's bootstrap standard error, while a 90% interval's
    ends lie 0.31 of it (1.960 - 1.645 normal quantiles) inside the 95% one's."""
    from scipy import stats
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 300)
    b = np.clip(a + rng.integers(-1, 2, 300), 0, 3)
    assert qwk_from_moments(a, b) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))
    ref = stats.bootstrap((a, b), qwk_from_moments, paired=True, vectorized=True,
                          n_resamples=20000, confidence_level=0.95, method="percentile", rng=7)
    se = ref.standard_error
    out = agreement.kappa_with_interval(a, b, n_boot=20000)
    assert out["boot_used"] == 20000
    assert out["kappa"] == pytest.approx(qwk_from_moments(a, b))
    assert out["low"] < out["kappa"] < out["high"]
    assert abs(out["low"] - ref.confidence_interval.low) < 0.1 * se
    assert abs(out["high"] - ref.confidence_interval.high) < 0.1 * se
    # the check can tell the levels apart: the reference 90% ends are > 0.25 se inside
    ref90 = stats.bootstrap((a, b), qwk_from_moments, paired=True, vectorized=True,
                            n_resamples=20000, confidence_level=0.90, method="percentile", rng=7)
    assert ref90.confidence_interval.low - ref.confidence_interval.low > 0.25 * se
    assert ref.confidence_interval.high - ref90.confidence_interval.high > 0.25 * se


def test_vectorised_kappas_equal_scikit_learn_on_every_resample():
    from sklearn.metrics import cohen_kappa_score
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, (200, 17))
    b = np.where(rng.random((200, 17)) < 0.6, a, rng.integers(0, 4, (200, 17)))
    a[0], b[0] = 2, 2                        # undefined: both constant and equal
    a[1], b[1] = 0, 3                        # both constant, different: kappa 0
    got = agreement.quadratic_kappas(a, b)
    assert np.isnan(got[0]) and got[1] == 0.0
    want = [cohen_kappa_score(x, y, weights="quadratic", labels=[0, 1, 2, 3]) for x, y in zip(a[1:], b[1:])]
    np.testing.assert_allclose(got[1:], want, rtol=1e-12, atol=1e-12)


def test_gold_auc():
    pairs = pd.DataFrame({"score_a": [3, 3, 0, 1], "expected_b": [2.5, 2.0, 0.4, 1.0]})
    assert agreement.gold_auc(pairs) == 1.0
    pairs["expected_b"] = [0.1, 0.2, 2.0, 3.0]
    assert agreement.gold_auc(pairs) == 0.0


def toy_xquad_r():
    """Article A: paragraph p0 (s0 answer, s1 holds the answer string again, s2 neither) and
    p1 (s0); article B: p0 (s0, which also holds the answer string)."""
    sentences = [("en:a0p0s0", "a0p0", "A", "Denver won Super Bowl 50."),
                 ("en:a0p0s1", "a0p0", "A", "Fans of Denver celebrated."),
                 ("en:a0p0s2", "a0p0", "A", "The game was in February."),
                 ("en:a0p1s0", "a0p1", "A", "The stadium holds 68,500 people."),
                 ("en:a1p0s0", "a1p0", "B", "Denver is the capital of Colorado.")]
    corpus = pd.DataFrame(sentences, columns=["doc_id", "paragraph_base_id", "group", "text"]).assign(
        base_id=lambda d: d["doc_id"].str[3:], lang="en")
    queries = pd.DataFrame({
        "query_id": ["en:q1"], "base_id": ["q1"], "lang": "en", "group": ["A"],
        "text": ["Who won Super Bowl 50?"], "gold_doc_id": ["en:a0p0s0"], "gold_paragraph": ["a0p0"],
        "answers": [["Denver"]]})
    qrels = pd.DataFrame({"query_id": ["en:q1"], "doc_id": ["en:a0p0s0"], "grade": [1]})
    return Collection("toy-r", corpus, queries, qrels)


def test_sentence_rubric_follows_the_papers_four_levels():
    from gradedrel.annotation.annotators import XQuADSentenceRubricAnnotator, annotator_from_spec
    coll = toy_xquad_r()
    ann = annotator_from_spec("xquad-rubric", coll)
    assert isinstance(ann, XQuADSentenceRubricAnnotator)
    text = coll.corpus.set_index("doc_id")["text"]
    grades = {d: ann.grade_one(Pair("en:q1", d, "en", "Who won?", text[d])).score for d in text.index}
    # the answer sentence and a gold-paragraph sentence holding the answer: 3; the rest of the
    # gold paragraph: 2; the same article: 1; another article, even holding the string: 0
    assert grades == {"en:a0p0s0": 3, "en:a0p0s1": 3, "en:a0p0s2": 2, "en:a0p1s0": 1, "en:a1p0s0": 0}
    assert isinstance(annotator_from_spec("xquad-rubric", toy_xquad()), XQuADRubricAnnotator)
    with pytest.raises(ValueError, match="gold_paragraph"):
        XQuADSentenceRubricAnnotator(toy_xquad())


def test_kappa_interval_skips_and_counts_degenerate_resamples():
    """Three pairs, (0, 0), (0, 0) and (3, 3): a resample drawing only the first two (8 of
    the 27 equally likely draws) or only the third (1 of 27) holds one grade and has no
    kappa, so about 9/27 of the resamples must be skipped, and counted as not used."""
    a, b = np.array([0, 0, 3]), np.array([0, 0, 3])
    out = agreement.kappa_with_interval(a, b, n_boot=2000, seed=1)
    skipped = 2000 - out["boot_used"]
    assert skipped / 2000 == pytest.approx(9 / 27, abs=0.03)
    assert out["kappa"] == 1.0 and out["low"] == out["high"] == 1.0
    out = agreement.kappa_with_interval([0, 0], [0, 0], n_boot=50)
    assert out["boot_used"] == 0 and np.isnan(out["low"]) and np.isnan(out["high"])


def test_annotator_summary_and_fixed_content_kappa_by_hand():
    a = pd.DataFrame({"query_id": list("abcd"), "doc_id": list("ABCD"), "lang": "en", "score": [3, 3, 0, 1]})
    b = pd.DataFrame({"query_id": list("abcd"), "doc_id": list("ABCD"),
                      "score": [3, None, 0, 3], "expected": [2.9, 2.5, 0.2, None]})
    s = agreement.annotator_summary(a, b, seconds=8.0)
    assert s["pairs"] == 4 and s["parsed"] == 0.75 and s["seconds_per_pair"] == 2.0
    assert s["share_answered_3"] == pytest.approx(2 / 3)
    # AUC over the three pairs with an expected grade: both grade-3 pairs above the grade-0 one
    assert s["auc_grade3"] == 1.0
    assert s["kappa"] == pytest.approx(agreement.quadratic_kappa([3, 0, 1], [3, 0, 3]))
    # the same two templates in en and de: de agrees with en on rank 1, not on rank 2
    items = pd.DataFrame({"query_id": ["en:1", "en:2", "en:3", "de:1", "de:2", "de:3"],
                          "doc_id": ["en:s1", "en:s2", "en:s3", "de:s1", "de:s2", "de:s3"],
                          "lang": ["en"] * 3 + ["de"] * 3, "rank": [1, 2, 3] * 2})
    graded = items.assign(score=[3, 0, 2, 3, 2, None])[["query_id", "doc_id", "score"]]
    table = agreement.cross_language_kappa(graded, items)
    assert table.loc["en", "kappa"] == 1.0 and table.loc["de", "n"] == 2
    assert table.loc["de", "kappa"] == pytest.approx(agreement.quadratic_kappa([3, 0], [3, 2]))


def test_the_pilot_choice_needs_parsed_answers_then_the_best_kappa():
    pilot = pd.DataFrame({"parsed": [1.0, 0.95, 0.5], "kappa": [0.1, 0.5, 0.9], "auc_grade3": [0.6, 0.9, 0.99]},
                         index=["small", "larger", "unparseable"])
    assert agreement.choose_annotator(pilot) == "larger"
    with pytest.raises(ValueError, match="parses"):
        agreement.choose_annotator(pilot, min_parsed=1.01)


def test_resource_table_and_trend_claims_by_hand():
    kappas = pd.DataFrame({"n": [100] * 4, "kappa": [0.2, 0.4, 0.6, 0.8], "low": [0.1, 0.3, 0.5, 0.7],
                           "high": [0.3, 0.5, 0.7, 0.9]}, index=pd.Index(["ar", "hi", "de", "en"], name="lang"))
    fixed = pd.DataFrame({"kappa": [0.5, 0.5, 0.9, 1.0], "low": 0.0, "high": 1.0}, index=kappas.index)
    aucs = pd.Series({"ar": 0.9, "hi": 0.8, "de": 0.7, "en": 0.6})
    sizes = pd.DataFrame({"lang": ["ar", "hi", "de", "en"], "size_gib": [28.0, 20.2, 66.6, 300.8]})
    table = agreement.resource_table(kappas, fixed, aucs, sizes)
    assert table.index.tolist() == ["hi", "ar", "de", "en"]               # by size
    # en against itself is 1.0 by construction: out of the table's fits and plots
    assert np.isnan(table.loc["en", "kappa_vs_en"]) and table.loc["de", "kappa_vs_en"] == 0.9
    variants = agreement.trend_variants(table)
    # kappa and AUC with and without en; kappa_vs_en over 3 languages only: no "without en" twin
    assert variants == [("kappa", ["hi", "ar", "de", "en"]), ("kappa", ["hi", "ar", "de"]),
                        ("kappa_vs_en", ["hi", "ar", "de"]),
                        ("auc_grade3", ["hi", "ar", "de", "en"]), ("auc_grade3", ["hi", "ar", "de"])]
    boot = {(c, tuple(langs)): np.linspace(-0.5, 0.9, 101) for c, langs in variants}
    rows = claims.claims_table(agreement.trend_claims(table, boot))
    # kappa by size: hi 0.4, ar 0.2, de 0.6, en 0.8 -> ranks 2,1,3,4 against 1,2,3,4: rho 0.8, p = 0.2
    assert rows["effect"].iloc[0] == pytest.approx(0.8) and rows["p"].iloc[0] == pytest.approx(0.2)
    assert rows["claim"].iloc[0] == "κ(rubric, B) falls with less pre-training text (4 languages)"
    assert rows["claim"].iloc[1].endswith("(3 languages, without en)")
    # hi 0.5, ar 0.5, de 0.9 (ranks 1.5, 1.5, 3) against 1, 2, 3: rho = 0.866
    assert rows["effect"].iloc[2] == pytest.approx(0.8660254)
    assert rows["effect"].iloc[3] == pytest.approx(-0.8)
    assert rows["ci_low"].iloc[0] == pytest.approx(np.quantile(np.linspace(-0.5, 0.9, 101), 0.025))
    assert (rows["correction"] == "BH over the 5 trend tests of agreement against CC-100 size").all()
    assert set(rows["verdict"]) <= {"consistent but not significant", "not supported"}


def test_weighted_kappa_and_auc_are_the_resampled_ones():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    idx = rng.integers(0, 40, (25, 40))
    w = np.stack([np.bincount(i, minlength=40) for i in idx]).astype(float)
    assert agreement.weighted_quadratic_kappas(a, b, w) == pytest.approx(agreement.quadratic_kappas(a[idx], b[idx]))
    gold, score = a >= 3, rng.normal(size=40).round(1)          # rounded: ties count a half
    from sklearn.metrics import roc_auc_score
    assert agreement.weighted_aucs(gold, score, np.ones((1, 40)))[0] == pytest.approx(roc_auc_score(gold, score))
    assert agreement.weighted_aucs(gold, score, w)[4] == pytest.approx(roc_auc_score(gold[idx[4]], score[idx[4]]))


def test_the_pilot_pairs_leave_the_sample(tmp_path):
    pilot = pd.DataFrame({"query_id": ["en:1", "en:2"], "doc_id": ["en:s1", "en:s2"], "score": [3, 0]})
    pilot.to_parquet(tmp_path / "01_pilot_m.parquet")
    pairs = agreement.pilot_pairs(tmp_path, "m")
    assert pairs.columns.tolist() == ["query_id", "doc_id"] and len(pairs) == 2
    assert agreement.pilot_pairs(tmp_path, "other").empty                 # no pilot of that model
    df = pd.DataFrame({"query_id": ["en:1", "en:2", "en:3", "de:1"], "doc_id": ["en:s1", "en:s9", "en:s3", "de:s1"]})
    # en:2 is kept: the same question with another sentence is not a pilot pair
    assert agreement.without_pairs(df, pairs)["query_id"].tolist() == ["en:2", "en:3", "de:1"]


def test_the_template_bootstrap_draws_the_same_templates_in_every_language():
    """Two languages with identical grades get identical kappas in every resample, so a
    trend over them is decided by the third; each resample's rho is Spearman's."""
    rng = np.random.default_rng(0)
    ranks = np.arange(30)
    grades = rng.integers(0, 4, 30)
    rows_a, rows_b, items = [], [], []
    for lang, noise in (("hi", 0), ("ar", 0), ("de", 1)):
        b_grades = np.where(rng.random(30) < 0.3 * noise, rng.integers(0, 4, 30), grades) if noise else \
            np.where(ranks % 3 == 0, (grades + 1) % 4, grades)
        for r in ranks:
            q, d = f"{lang}:{r}", f"{lang}:s{r}"
            items.append({"query_id": q, "doc_id": d, "lang": lang, "rank": r})
            rows_a.append({"query_id": q, "doc_id": d, "lang": lang, "score": grades[r]})
            rows_b.append({"query_id": q, "doc_id": d, "score": b_grades[r], "expected": float(b_grades[r])})
    a, b, items = pd.DataFrame(rows_a), pd.DataFrame(rows_b), pd.DataFrame(items)
    table = pd.DataFrame({"kappa": [0.5, 0.5, 0.6], "kappa_vs_en": np.nan, "auc_grade3": np.nan,
                          "size_gib": [20.0, 28.0, 66.0]}, index=["hi", "ar", "de"])
    boot = agreement.template_bootstrap(a, b, items, table, n_boot=50, seed=1)
    rho = boot[("kappa", ("hi", "ar", "de"))]
    assert len(rho) == 50 and np.isfinite(rho).all()
    # hi and ar tie in every resample (ranks 1.5, 1.5): rho is +0.866 or -0.866 or 0 (all tie)
    assert set(np.round(rho, 4)) <= {0.866, -0.866, 0.0}


@pytest.mark.integration
def test_fixed_content_items_are_balanced_and_never_repeat_a_pair():
    """XQuAD-R: questions that share an answer sentence would give one (question, sentence)
    pair twice (54 of 1,100 items before this was checked); each pair is graded once."""
    from conftest import data_available
    if not data_available("XQUADR_DIR", "xquad-r", "en.json"):
        pytest.skip("XQuAD-R files not found")
    from gradedrel.annotation.annotators import XQuADSentenceRubricAnnotator
    from gradedrel.annotation.pipeline import fixed_content_sample, grade_offline
    from gradedrel.config import profile_config
    from gradedrel.data.load import load_collection
    coll = load_collection({**profile_config("xquad"), "langs": ["en", "de", "th"]}, unit="sentence")
    items = fixed_content_sample(coll, 5, seed=0)
    assert not items.duplicated(["query_id", "doc_id"]).any()
    en = items[items["lang"] == "en"]
    assert en["template_grade"].value_counts().to_dict() == {0: 5, 1: 5, 2: 5, 3: 5}
    graded = grade_offline(XQuADSentenceRubricAnnotator(coll), coll, en)
    assert (graded["score"] == graded["template_grade"]).all()
    assert set(items["rank"]) == set(en["rank"])       # the same templates in every language
