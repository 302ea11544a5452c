"""The CLIRMatrix MULTI-8 loader on a small copy in the download layout
(DOCS/{lang}.tsv.gz, MULTI-8/{q}/{q}.{d}.{split}.jl.gz), three languages, two queries."""
import gzip
import json
from itertools import permutations

import pytest

from gradedrel.data import clirmatrix

# Line i of every language is the same query; its id is the article's page id in that
# language's Wikipedia, so ids differ across languages (as in the real data).
QUERIES = {"en": [("8221", "Death"), ("17675", "Lithuania")],
           "fr": [("45187", "Mort"), ("2000", "Lituanie")],
           "de": [("5204", "Tod"), ("3000", "Litauen")]}
# Page ids repeat across Wikipedias: en 45187 and fr 8221 are unrelated articles.
DOCS = {"en": {"8221": "Death is the end of life.", "17675": "Lithuania is a country.",
               "45187": "An unrelated English article.", "999": "Never judged."},
        "fr": {"45187": "La mort est la fin de la vie.", "2000": "La Lituanie est un pays.",
               "8221": "Un article sans rapport.", "777": "Jamais jugé."},
        "de": {"5204": "Der Tod ist das Ende des Lebens.", "3000": "Litauen ist ein Staat."}}
# A weaker hit for each query: (line, doc language) -> (doc id, score).
EXTRA = {(0, "en"): ("17675", 3), (0, "fr"): ("8221", 1), (0, "de"): ("3000", 2),
         (1, "en"): ("45187", 0), (1, "fr"): ("45187", 0), (1, "de"): ("5204", 5)}


def judgements(q, d, order=(0, 1)):
    lines = []
    for i in order:
        src_id, query = QUERIES[q][i]
        extra_doc, extra_score = EXTRA[i, d]
        lines.append({"src_id": src_id, "src_query": query,
                      "tgt_results": [[QUERIES[d][i][0], 6], [extra_doc, extra_score]]})
    return lines


def write_jl(path, records, compress=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.with_suffix("").write_text(text, encoding="utf-8")


def write_copy(root, split="test1"):
    for lang, docs in DOCS.items():
        path = root / "DOCS" / f"{lang}.tsv.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{doc_id}\t{text}\n" for doc_id, text in docs.items())
        if lang == "de":  # an uncompressed file is accepted too
            path.with_suffix("").write_text(text, encoding="utf-8")
        else:
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.write(text)
    for q, d in permutations(QUERIES, 2):
        write_jl(root / "MULTI-8" / q / f"{q}.{d}.{split}.jl.gz", judgements(q, d),
                 compress=(q, d) != ("de", "en"))
    return root


def test_queries_align_by_line_and_grades_follow_the_mapping(tmp_path):
    coll = clirmatrix.load_multi8(write_copy(tmp_path), ["en", "fr", "de"])
    assert coll.languages == ["de", "en", "fr"]
    q = coll.queries.set_index("query_id")
    assert q.loc["fr:test1/0", ["base_id", "lang", "text", "group", "src_id"]].tolist() == \
        ["test1/0", "fr", "Mort", "test1/0", "45187"]
    assert q.groupby("base_id")["src_id"].apply(list).to_dict() == {
        "test1/0": ["8221", "45187", "5204"], "test1/1": ["17675", "2000", "3000"]}
    assert coll.qrels_dict("en", "fr", min_grade=0) == {
        "en:test1/0": {"fr:frwiki/45187": 3, "fr:frwiki/8221": 1},
        "en:test1/1": {"fr:frwiki/2000": 3, "fr:frwiki/45187": 0}}
    assert coll.qrels_dict("en", "de") == {
        "en:test1/0": {"de:dewiki/5204": 3, "de:dewiki/3000": 1},
        "en:test1/1": {"de:dewiki/3000": 3, "de:dewiki/5204": 2}}
    raw_to_grade = dict(zip(coll.qrels["raw_grade"], coll.qrels["grade"]))
    assert raw_to_grade == {6: 3, 5: 2, 3: 2, 2: 1, 1: 1, 0: 0}


def test_colliding_page_ids_carry_no_relevance_across_languages(tmp_path):
    coll = clirmatrix.load_multi8(write_copy(tmp_path), ["en", "fr"])
    # en doc 45187 is judged (for fr queries) and shares its page id with the French
    # "Mort", but it is another article: the en->en cell has no qrels at all.
    assert "en:enwiki/45187" in set(coll.corpus["doc_id"])
    assert coll.qrels_dict("en", "en") == {}
    assert coll.qrels_dict("fr", "fr") == {}


def test_judged_and_full_corpus(tmp_path):
    root = write_copy(tmp_path)
    judged = clirmatrix.load_multi8(root, ["en", "fr"])
    assert sorted(judged.corpus["doc_id"]) == [
        "en:enwiki/17675", "en:enwiki/45187", "en:enwiki/8221",
        "fr:frwiki/2000", "fr:frwiki/45187", "fr:frwiki/8221"]
    doc = judged.corpus.set_index("doc_id").loc["fr:frwiki/45187"]
    assert doc[["base_id", "lang", "text", "group"]].tolist() == \
        ["frwiki/45187", "fr", "La mort est la fin de la vie.", "frwiki/45187"]
    full = clirmatrix.load_multi8(root, ["en", "fr"], corpus="full")
    assert len(full.corpus) == 8 and "fr:frwiki/777" in set(full.corpus["doc_id"])


def test_lines_that_do_not_align_are_rejected(tmp_path):
    root = write_copy(tmp_path)
    for d in ("en", "de"):
        write_jl(root / "MULTI-8" / "fr" / f"fr.{d}.test1.jl.gz", judgements("fr", d, (1, 0)))
    with pytest.raises(ValueError, match="only 0 of 2 en queries .* not look line-aligned"):
        clirmatrix.load_multi8(root, ["en", "fr", "de"])


def test_one_languages_files_must_hold_the_same_queries(tmp_path):
    root = write_copy(tmp_path)
    write_jl(root / "MULTI-8" / "fr" / "fr.de.test1.jl.gz", judgements("fr", "de", (1, 0)))
    with pytest.raises(ValueError, match="fr.de.test1.jl.gz: queries differ from those of .*fr.en"):
        clirmatrix.load_multi8(root, ["en", "fr", "de"])


def test_query_counts_must_match(tmp_path):
    root = write_copy(tmp_path)
    write_jl(root / "MULTI-8" / "fr" / "fr.en.test1.jl.gz", judgements("fr", "en", (0,)))
    with pytest.raises(ValueError, match="2 en queries but 1 fr queries"):
        clirmatrix.load_multi8(root, ["en", "fr"])


@pytest.mark.parametrize("line, message", [
    ("not json", "en.fr.test1.jl.gz:2: expected a JSON object"),
    ('{"src_id": "1", "src_query": "q"}', "en.fr.test1.jl.gz:2: expected a JSON object"),
    ('{"src_id": "1", "src_query": "q", "tgt_results": [["45187", 7]]}',
     r"en.fr.test1.jl.gz:2: tgt_results entry \['45187', 7\] is not \[doc_id, score 0-6\]"),
    ('{"src_id": "8221", "src_query": "q", "tgt_results": []}',
     "en.fr.test1.jl.gz:2: query '8221' already on line 1"),
])
def test_malformed_judgement_lines_are_named(tmp_path, line, message):
    path = tmp_path / "MULTI-8" / "en" / "en.fr.test1.jl.gz"
    write_jl(path, judgements("en", "fr", (0,)))
    with gzip.open(path, "at", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(ValueError, match=message):
        clirmatrix.read_judgements(path)


def test_conflicting_scores_are_rejected(tmp_path):
    path = tmp_path / "x.jl"
    write_jl(path.with_suffix(".jl.gz"), [{"src_id": "1", "src_query": "q",
                                           "tgt_results": [["5", 2], ["5", 2], ["5", 4]]}])
    with pytest.raises(ValueError, match="x.jl.gz:1: document '5' has two scores"):
        clirmatrix.read_judgements(path.with_suffix(".jl.gz"))


def test_malformed_document_line_is_named(tmp_path):
    path = tmp_path / "fr.tsv"
    path.write_text("1\tfine\n2 no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="fr.tsv:2: expected 'doc_id<TAB>text'"):
        clirmatrix.read_documents(path)


def test_missing_files_and_documents(tmp_path):
    root = write_copy(tmp_path)
    (root / "MULTI-8" / "en" / "en.fr.dev.jl.gz").parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(FileNotFoundError, match="en.fr.dev.jl.gz nor .*en.fr.dev.jl exists"):
        clirmatrix.load_multi8(root, ["en", "fr"], split="dev")
    (root / "DOCS" / "fr.tsv.gz").unlink()
    with gzip.open(root / "DOCS" / "fr.tsv.gz", "wt", encoding="utf-8") as f:
        f.write("45187\tLa mort.\n8221\tSans rapport.\n")
    with pytest.warns(UserWarning, match="fr.tsv.gz: 1 judged documents are missing, e.g. '2000'"):
        clirmatrix.load_multi8(root, ["en", "fr"])


@pytest.mark.parametrize("langs, split", [(["en"], "test1"), (["en", "xx"], "test1"),
                                          (["en", "fr"], "test")])
def test_bad_arguments(tmp_path, langs, split):
    with pytest.raises(ValueError):
        clirmatrix.load_multi8(tmp_path, langs, split)
