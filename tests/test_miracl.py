"""MIRACL readers on the real dev topic/qrel files, the loader on small fixtures written
in the real layouts (anserini TSVs, miracl-corpus JSONL shards, miracl/miracl records)."""
import gzip
import json
import os
from pathlib import Path

import datasets
import pytest

from gradedrel.data import miracl

REAL_DIR = Path(os.environ.get("MIRACL_TOPICS_DIR") or Path(__file__).resolve().parents[2]
                / "shared" / "data" / "miracl-dev-topics-qrels")

# From the folder's README: dev queries, judgements, positive judgements.
README_COUNTS = {"ar": (2896, 29197, 5658), "en": (799, 8350, 2326), "es": (648, 6443, 2987),
                 "fi": (1271, 12008, 2447), "ja": (860, 8354, 1790), "ru": (1252, 13100, 3560)}


@pytest.fixture(autouse=True)
def offline_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("MIRACL_TOPICS_DIR", raising=False)


# --- the real files ------------------------------------------------------------

@pytest.mark.parametrize("lang", sorted(README_COUNTS))
def test_real_dev_files_match_the_readme(lang):
    if not REAL_DIR.is_dir():
        pytest.skip(f"{REAL_DIR} not found (the shared MIRACL dev topics/qrels)")
    topics = miracl.read_topics(REAL_DIR / f"topics.miracl-v1.0-{lang}-dev.tsv")
    qrels = miracl.read_qrels(REAL_DIR / f"qrels.miracl-v1.0-{lang}-dev.tsv")
    assert (len(topics), len(qrels), int((qrels["rel"] > 0).sum())) == README_COUNTS[lang]
    assert set(qrels["rel"]) == {0, 1}
    assert set(qrels["query_id"]) == set(topics["query_id"])
    assert qrels["doc_id"].str.fullmatch(r"\d+#\d+").all()


# --- readers -------------------------------------------------------------------

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_topics_keeps_quotes_and_skips_blank_lines(tmp_path):
    path = write(tmp_path / "t.tsv", '0\t"Quoted" query?\n\n10036600#0\tanother\n')
    topics = miracl.read_topics(path)
    assert topics.to_dict("list") == {"query_id": ["0", "10036600#0"],
                                      "query": ['"Quoted" query?', "another"]}


@pytest.mark.parametrize("text, message", [
    ("0\tok\n1 no tab\n", "t.tsv:2: expected 'qid<TAB>query'"),
    ("0\tok\n1\ta\tb\n", "t.tsv:2: expected 'qid<TAB>query'"),
    ("0\tok\n0\tagain\n", "t.tsv:2: query '0' already on line 1"),
])
def test_read_topics_names_the_bad_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        miracl.read_topics(write(tmp_path / "t.tsv", text))


def test_read_qrels_accepts_tabs_and_spaces(tmp_path):
    path = write(tmp_path / "q.tsv", "0\tQ0\t151236#1\t1\n0 Q0 151236#0 0\n")
    assert miracl.read_qrels(path).values.tolist() == [["0", "151236#1", 1], ["0", "151236#0", 0]]


@pytest.mark.parametrize("text, message", [
    ("0 Q0 1#1 1\n0 Q0 1#2\n", "q.tsv:2: expected 'qid Q0 docid rel'"),
    ("0 Q0 1#1 yes\n", "q.tsv:1: relevance 'yes' is not an integer"),
    ("0 Q0 1#1 1\n0 Q0 1#1 0\n", r"q.tsv:2: \(0, 1#1\) already judged on line 1"),
])
def test_read_qrels_names_the_bad_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        miracl.read_qrels(write(tmp_path / "q.tsv", text))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        miracl.read_topics(tmp_path / "absent.tsv")


# --- the loader on fixtures ------------------------------------------------------

PASSAGES = {  # lang -> (docid, title, text); "7#0" exists in both languages, unrelated
    "en": [("7#0", "Water", "Water is a liquid."), ("7#1", "Water", "It boils at 100 C."),
           ("9#0", "Ice", "Ice is frozen water."), ("12#0", "Steam", "Unjudged passage.")],
    "fi": [("7#0", "Kuu", "Kuu kiertää Maata."), ("8#0", "", "Ei otsikkoa.")],
}
TOPICS = {"en": [("0", "what is water"), ("1", "what is ice")], "fi": [("0", "mikä on kuu")]}
QRELS = {"en": [("0", "7#0", 1), ("0", "7#1", 0), ("1", "9#0", 1)],
         "fi": [("0", "7#0", 1), ("0", "8#0", 0)]}


def write_tsvs(folder, hub_layout=False):
    for lang in TOPICS:
        sub = folder / f"miracl-v1.0-{lang}" if hub_layout else folder
        write(sub / ("topics" if hub_layout else "") / f"topics.miracl-v1.0-{lang}-dev.tsv",
              "".join(f"{q}\t{t}\n" for q, t in TOPICS[lang]))
        write(sub / ("qrels" if hub_layout else "") / f"qrels.miracl-v1.0-{lang}-dev.tsv",
              "".join(f"{q}\tQ0\t{d}\t{r}\n" for q, d, r in QRELS[lang]))
    return folder


def write_corpus(root):
    for lang, rows in PASSAGES.items():
        shard = root / f"miracl-corpus-v1.0-{lang}" / "docs-0.jsonl.gz"
        shard.parent.mkdir(parents=True)
        with gzip.open(shard, "wt", encoding="utf-8") as f:
            for docid, title, text in rows:
                f.write(json.dumps({"docid": docid, "title": title, "text": text}) + "\n")
    return str(root)


def check_common(coll):
    assert coll.languages == ["en", "fi"]
    q = coll.queries.set_index("query_id")
    assert q.loc["en:0", ["base_id", "lang", "text", "group"]].tolist() == \
        ["0", "en", "what is water", "0"]
    d = coll.corpus.set_index("doc_id")
    assert d.loc["en:enwiki/7#0", ["base_id", "lang", "text", "group"]].tolist() == \
        ["enwiki/7#0", "en", "Water Water is a liquid.", "enwiki/7"]
    assert d.loc["fi:fiwiki/8#0", "text"] == "Ei otsikkoa."
    assert coll.qrels_dict("en", min_grade=0) == {
        "en:0": {"en:enwiki/7#0": 1, "en:enwiki/7#1": 0}, "en:1": {"en:enwiki/9#0": 1}}
    # "7#0" is a different passage in each Wikipedia: no relevance carries across.
    assert coll.qrels_dict("en", "fi") == {}
    assert coll.qrels_dict("fi", "fi") == {"fi:0": {"fi:fiwiki/7#0": 1}}


def test_load_from_topics_dir_with_judged_corpus(tmp_path):
    coll = miracl.load_miracl(["en", "fi"], topics_dir=write_tsvs(tmp_path / "topics"),
                              corpus="judged", corpus_root=write_corpus(tmp_path / "corpus"))
    check_common(coll)
    assert sorted(coll.corpus["doc_id"]) == ["en:enwiki/7#0", "en:enwiki/7#1", "en:enwiki/9#0",
                                             "fi:fiwiki/7#0", "fi:fiwiki/8#0"]


def test_load_full_corpus_from_env_dir_in_hub_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRACL_TOPICS_DIR", str(write_tsvs(tmp_path / "topics", hub_layout=True)))
    coll = miracl.load_miracl(["en", "fi"], corpus_root=write_corpus(tmp_path / "corpus"))
    check_common(coll)
    assert "en:enwiki/12#0" in set(coll.corpus["doc_id"])
    assert len(coll.corpus) == 6


def test_load_from_records_takes_judged_passages_from_the_lists(tmp_path):
    text_of = {lang: {d: (t, x) for d, t, x in rows} for lang, rows in PASSAGES.items()}
    for lang in TOPICS:
        with write(tmp_path / f"{lang}.jsonl", "").open("w", encoding="utf-8") as f:
            for qid, query in TOPICS[lang]:
                lists = {1: [], 0: []}
                for q, docid, rel in QRELS[lang]:
                    if q == qid:
                        title, text = text_of[lang][docid]
                        lists[rel].append({"docid": docid, "title": title, "text": text})
                f.write(json.dumps({"query_id": qid, "query": query,
                                    "positive_passages": lists[1],
                                    "negative_passages": lists[0]}) + "\n")

    def load_split(lang, split):
        assert split == "dev"
        return datasets.load_dataset("json", data_files=str(tmp_path / f"{lang}.jsonl"),
                                     split="train")

    coll = miracl.load_miracl(["en", "fi"], corpus="judged", load_split=load_split,
                              corpus_root=str(tmp_path / "no-corpus-needed"))
    check_common(coll)
    assert len(coll.corpus) == 5


def test_records_in_another_layout_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="record 0: not in miracl/miracl layout"):
        miracl.load_miracl(["en"], corpus="judged",
                           load_split=lambda lang, split: [{"query_id": "0", "query": "q"}])


def test_missing_topics_and_corpus_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="topics.miracl-v1.0-en-dev.tsv"):
        miracl.load_miracl(["en"], topics_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no MIRACL corpus shards"):
        miracl.load_miracl(["en"], topics_dir=write_tsvs(tmp_path / "topics"),
                           corpus_root=str(tmp_path / "empty"))


def test_passages_missing_from_the_corpus_warn(tmp_path):
    topics = write_tsvs(tmp_path / "topics")
    write(topics / "qrels.miracl-v1.0-en-dev.tsv", "0 Q0 7#0 1\n0 Q0 404#0 1\n")
    with pytest.warns(UserWarning, match="1 judged passages are not in the corpus"):
        miracl.load_miracl(["en"], topics_dir=topics, corpus="judged",
                           corpus_root=write_corpus(tmp_path / "corpus"))
