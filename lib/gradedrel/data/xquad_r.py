"""XQuAD-R (Roy et al., 2020, LAReQA): XQuAD turned into answer-sentence retrieval.

Each XQuAD paragraph is split into its sentences; a question's relevant document is the
sentence that contains its answer (the answer's `answer_start` falls within that
sentence's `sentence_breaks` span). 48 articles, 240 paragraphs, 1190 questions in each of
eleven languages (XQuAD's twelve without Romanian).

As a retrieval collection:
  corpus   one row per sentence: doc_id `LANG:aAApPsS` (article, paragraph, sentence
           index), group = the article title (the same titles as XQuAD, so XQuAD's
           article split applies unchanged)
  queries  the questions; base_id = the SQuAD question id (parallel across languages);
           gold_doc_id = the answer sentence, gold_paragraph = its paragraph's base id,
           answers = the gold answer strings (XQuAD-R keeps one a question)
  qrels    grade 1 for the answer sentence, in *every* loaded language

Sentence counts differ across languages (th 852 ... de 1276: translators split and merge
sentences), so sentence base ids are NOT parallel; a question's relevant sentence in
another language is that language's own answer sentence. The qrels therefore hold one row
per (query, corpus language), and `qrels_dict(query_lang, doc_lang)` filters them by the
documents' language instead of mapping base ids as `Collection` does.

Files come from $XQUADR_DIR if set, else the cache `data/xquad-r/`, else the public
repository (then cached); every file is checked against its known SHA-256.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradedrel.data.collection import Collection, make_id
from gradedrel.data.languages import XQUAD_R
from gradedrel.data.verified_files import ChecksumError, fetch_verified  # noqa: F401  (ChecksumError: API)
from gradedrel.paths import DATA_DIR

LANGS = XQUAD_R
URL = "https://github.com/google-research-datasets/lareqa/raw/master/xquad-r/{lang}.json"
SHA256 = {
    "ar": "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
    "de": "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
    "el": "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
    "en": "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
    "es": "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
    "hi": "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
    "ru": "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
    "th": "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
    "tr": "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
    "vi": "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
    "zh": "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
}
ANSWER_GRADE = 1


def xquad_r_file(lang: str) -> Path:
    if lang not in SHA256:
        raise ValueError(f"XQuAD-R has no language {lang!r}; it has {', '.join(LANGS)}")
    return fetch_verified(f"{lang}.json", SHA256[lang], "XQUADR_DIR", DATA_DIR / "xquad-r",
                          URL.format(lang=lang))


def answer_sentence_index(sentence_breaks, answer_start: int) -> int:
    """Index of the sentence whose [start, end) span holds `answer_start`."""
    hits = [i for i, (start, end) in enumerate(sentence_breaks) if start <= answer_start < end]
    if len(hits) != 1:
        raise ValueError(f"answer_start {answer_start} lies in {len(hits)} sentences "
                         f"of {sentence_breaks}")
    return hits[0]


def _records(lang: str) -> tuple[tuple, tuple]:
    return _parsed(lang, xquad_r_file(lang), SHA256[lang])


# Keyed by the verified checksum, so a cached parse is always of these bytes; a notebook
# loads the training and the evaluation view of the same files.
@functools.lru_cache(maxsize=None)
def _parsed(lang: str, path: Path, sha256: str) -> tuple[tuple, tuple]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    docs, queries = [], []
    for a, article in enumerate(data):
        group = article["title"]
        for p, para in enumerate(article["paragraphs"]):
            if len(para["sentences"]) != len(para["sentence_breaks"]):
                raise ValueError(f"{lang} a{a:02d}p{p}: sentences and sentence_breaks differ")
            for s, sentence in enumerate(para["sentences"]):
                base = f"a{a:02d}p{p}s{s}"
                docs.append((make_id(lang, base), base, lang, sentence.strip(), group,
                             f"a{a:02d}p{p}"))
            for qa in para["qas"]:
                s = answer_sentence_index(para["sentence_breaks"], qa["answers"][0]["answer_start"])
                queries.append((make_id(lang, qa["id"]), qa["id"], lang, qa["question"].strip(),
                                group, make_id(lang, f"a{a:02d}p{p}s{s}"), f"a{a:02d}p{p}",
                                [ans["text"] for ans in qa["answers"]]))
    return tuple(docs), tuple(queries)


@dataclass
class AnswerSentenceCollection(Collection):
    """A Collection whose qrels already name the relevant document in every language."""

    def qrels_dict(self, query_lang: str | None = None, doc_lang: str | None = None,
                   min_grade: int = 1) -> dict[str, dict[str, int]]:
        rel = self.qrels[self.qrels["grade"] >= min_grade]
        if query_lang is not None:
            rel = rel[rel["query_id"].isin(self.topics(query_lang)["query_id"])]
        if doc_lang is not None:
            rel = rel[rel["doc_id"].isin(self.docs(doc_lang)["doc_id"])]
        out: dict[str, dict[str, int]] = {}
        for qid, did, grade in rel[["query_id", "doc_id", "grade"]].itertuples(index=False):
            out.setdefault(qid, {})[did] = int(grade)
        return out

    def subset(self, **kwargs) -> "AnswerSentenceCollection":
        c = super().subset(**kwargs)
        return AnswerSentenceCollection(c.name, c.corpus, c.queries, c.qrels)


def load_xquad_r(langs=LANGS) -> AnswerSentenceCollection:
    docs, queries = [], []
    for lang in langs:
        d, q = _records(lang)
        docs += d
        queries += q
    corpus = pd.DataFrame(docs, columns=["doc_id", "base_id", "lang", "text", "group",
                                         "paragraph_base_id"])
    queries = pd.DataFrame(queries, columns=["query_id", "base_id", "lang", "text", "group",
                                             "gold_doc_id", "gold_paragraph", "answers"])
    per_lang = queries.groupby("lang")["base_id"].apply(frozenset)
    if per_lang.nunique() > 1:
        raise ValueError(f"XQuAD-R files are not parallel: question ids differ across {list(per_lang.index)}")
    # every query is relevant to its question's answer sentence in each loaded language
    gold_by_base = queries[["base_id", "gold_doc_id"]].rename(columns={"gold_doc_id": "doc_id"})
    qrels = (queries[["query_id", "base_id"]].merge(gold_by_base, on="base_id")
             [["query_id", "doc_id"]].assign(grade=ANSWER_GRADE))
    return AnswerSentenceCollection("xquad-r", corpus, queries, qrels.reset_index(drop=True))
