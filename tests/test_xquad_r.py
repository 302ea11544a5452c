"""XQuAD-R: checksums, the answer-sentence construction, the real files' shape."""
import shutil

import pandas as pd
import pytest
from conftest import needs_xquad, needs_xquad_r

from gradedrel.data import verified_files, xquad_r
from gradedrel.data.split import split_groups

README_SENTENCES = {"ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215, "hi": 1244,
                    "ru": 1219, "th": 852, "tr": 1167, "vi": 1209, "zh": 1196}


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "en.json").write_text('{"data": []}')
    monkeypatch.setenv("XQUADR_DIR", str(tmp_path))
    with pytest.raises(xquad_r.ChecksumError, match="does not match"):
        xquad_r.xquad_r_file("en")


def test_unknown_language_and_missing_file(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no language 'ro'"):
        xquad_r.xquad_r_file("ro")
    monkeypatch.setenv("XQUADR_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="XQUADR_DIR"):
        xquad_r.xquad_r_file("en")


def test_answer_sentence_index():
    breaks = [[0, 10], [11, 25], [26, 40]]
    assert xquad_r.answer_sentence_index(breaks, 0) == 0
    assert xquad_r.answer_sentence_index(breaks, 24) == 1
    assert xquad_r.answer_sentence_index(breaks, 26) == 2
    with pytest.raises(ValueError, match="lies in 0 sentences"):
        xquad_r.answer_sentence_index(breaks, 10)       # the space between two sentences


@needs_xquad_r
def test_download_is_verified_then_cached(tmp_path, monkeypatch):
    source = xquad_r.xquad_r_file("en")
    fetched = []
    monkeypatch.delenv("XQUADR_DIR", raising=False)
    monkeypatch.setattr(xquad_r, "DATA_DIR", tmp_path)
    monkeypatch.setattr(verified_files.urllib.request, "urlretrieve",
                        lambda url, dest: (fetched.append(url), shutil.copy(source, dest)))
    assert xquad_r.xquad_r_file("en") == tmp_path / "xquad-r" / "en.json"
    xquad_r.xquad_r_file("en")
    assert fetched == [xquad_r.URL.format(lang="en")]


@pytest.fixture(scope="module")
def xquad_r_all():
    return xquad_r.load_xquad_r()


@needs_xquad_r
@pytest.mark.integration
def test_real_files_shape(xquad_r_all):
    coll = xquad_r_all
    assert coll.languages == sorted(README_SENTENCES)
    assert coll.corpus.groupby("lang").size().to_dict() == README_SENTENCES
    assert set(coll.queries.groupby("lang").size()) == {1190}
    assert coll.corpus["group"].nunique() == 48 and coll.queries["group"].nunique() == 48
    assert coll.corpus.groupby("lang")["paragraph_base_id"].nunique().eq(240).all()
    assert (coll.corpus["text"].str.len() > 0).all()


@needs_xquad_r
@pytest.mark.integration
def test_every_question_has_one_answer_sentence_per_language(xquad_r_all):
    coll = xquad_r_all
    doc_lang = coll.qrels["doc_id"].str.split(":").str[0]
    per = coll.qrels.assign(doc_lang=doc_lang).groupby(["query_id", "doc_lang"]).size()
    assert per.eq(1).all() and len(per) == 11 * 11 * 1190
    # the sentence it names is in the same paragraph as the question, in each language
    para = coll.corpus.set_index("doc_id")["paragraph_base_id"]
    en_q = coll.topics("en").set_index("query_id")["gold_doc_id"].map(para)
    for lang in ("de", "th", "zh"):
        qrels = coll.qrels_dict("en", lang)
        assert len(qrels) == 1190
        assert all(para[next(iter(docs))] == en_q[q] for q, docs in qrels.items())
    # its own language's answer sentence holds the answer's start
    ru = coll.topics("ru").iloc[0]
    assert ru["gold_doc_id"] in coll.qrels_dict("ru", "ru")[ru["query_id"]]


@needs_xquad
@needs_xquad_r
@pytest.mark.integration
def test_article_split_matches_xquad(xquad_r_all):
    from gradedrel.data.xquad import load_xquad
    parts = split_groups(xquad_r_all.queries["group"])
    assert parts == split_groups(load_xquad(["en"]).queries["group"])
    assert len(parts["test"]) == 12 and len(parts["train"]) == 36
    test = xquad_r_all.subset(langs=["en", "de"], groups=parts["test"])
    assert isinstance(test, xquad_r.AnswerSentenceCollection)
    assert set(test.corpus["group"]) == set(parts["test"])
    assert all(len(d) == 1 for d in test.qrels_dict("en", "de").values())


@needs_xquad_r
@pytest.mark.integration
def test_the_answer_sentence_holds_the_answer(xquad_r_all):
    """gold_doc_id is derived from answer_start and sentence_breaks; independently, the
    sentence's text should contain the answer string. It does for 99% of questions: the
    rest are answers that cross a sentence break (counted, not hidden)."""
    q = xquad_r_all.queries
    text = xquad_r_all.corpus.set_index("doc_id")["text"]
    holds = pd.Series([a[0].strip().casefold() in text[g].casefold()
                       for a, g in zip(q["answers"], q["gold_doc_id"])], index=q["lang"])
    share = holds.groupby(level=0).mean()
    assert share.min() > 0.98 and share["en"] > 0.995, share.round(4).to_dict()
    paragraph_of = xquad_r_all.corpus.set_index("doc_id")["paragraph_base_id"]
    assert (q["gold_doc_id"].map(paragraph_of) == q["gold_paragraph"]).all()
