"""XQuAD (Artetxe et al., 2020): 240 paragraphs and 1190 questions, human-translated
into twelve languages, fully parallel.

As a retrieval collection: queries are the questions, the corpus is the paragraphs,
and a question's relevant document (grade 3) is the paragraph it was written for.
Paragraph base ids (`a07p3`: article 7, paragraph 3) and question ids (SQuAD's) are the
same in every language. Texts are stripped of surrounding whitespace.

Files come from $XQUAD_DIR if set, else the cache `data/xquad/`, else the public
repository (then cached); every file is checked against its known SHA-256.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from gradedrel.data.collection import Collection, make_id
from gradedrel.data.languages import XQUAD
from gradedrel.data.verified_files import ChecksumError, fetch_verified  # noqa: F401  (ChecksumError: API)
from gradedrel.paths import DATA_DIR

LANGS = XQUAD
URL = "https://github.com/google-deepmind/xquad/raw/master/xquad.{lang}.json"
SHA256 = {
    "ar": "abdabd7afed5c635d99cca0f3f0d0c9d9ed0bc77451e963c2e4e0638c29e486d",
    "de": "990b5d746746ed65ed4702ea5f35f99ffa4e2f1c390c07d003642acd937916f9",
    "el": "821cf0f88e73fa258fd2f548b19b6ec39f7025059e16f6f9fc8cd797c9c3663e",
    "en": "e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29",
    "es": "dcbae93ec3a9f4b9e78fd834a171d6f96c1a875e10e15b7530b7e4ef4971e37e",
    "hi": "df2cce3532b37e9beb8979704b5c9a4bf874358f105395a298b89427b43b9d24",
    "ro": "94f8d54e93ad2b7dd2e76dd921a666b5b8eff2d4379df9f179c42b445f09643f",
    "ru": "208d5b1aa154c52b1b5c5eda16281e455e8fd198cdb9af3f469f0d6037d973bf",
    "th": "5cdda11d0e1e075f7872abf4e6ae830388ce7f617964d542308e9ae4257e0f43",
    "tr": "92179a564774b7696100d144c1e10870d0a966b6fccbdd254a65b9d2ab1971cc",
    "vi": "f619a1eb11fb42d3ab0834259e488a65f585447ef6154437bfb7199d85161a04",
    "zh": "691d0b3359bc6b8faa8de931dfdfe21d50a65861ae348e32a0d1a0190b0c8835",
}
GOLD_GRADE = 3


def xquad_file(lang: str) -> Path:
    if lang not in SHA256:
        raise ValueError(f"XQuAD has no language {lang!r}; it has {', '.join(LANGS)}")
    return fetch_verified(f"xquad.{lang}.json", SHA256[lang], "XQUAD_DIR", DATA_DIR / "xquad",
                          URL.format(lang=lang))


def _records(lang: str):
    data = json.loads(xquad_file(lang).read_text(encoding="utf-8"))["data"]
    docs, queries = [], []
    for a, article in enumerate(data):
        group = article["title"]
        for p, para in enumerate(article["paragraphs"]):
            base = f"a{a:02d}p{p}"
            docs.append((make_id(lang, base), base, lang, para["context"].strip(), group))
            for qa in para["qas"]:
                queries.append((make_id(lang, qa["id"]), qa["id"], lang,
                                qa["question"].strip(), group, make_id(lang, base),
                                [ans["text"] for ans in qa["answers"]]))
    return docs, queries


def load_xquad(langs=LANGS) -> Collection:
    docs, queries = [], []
    for lang in langs:
        d, q = _records(lang)
        docs += d
        queries += q
    corpus = pd.DataFrame(docs, columns=["doc_id", "base_id", "lang", "text", "group"])
    queries = pd.DataFrame(queries, columns=["query_id", "base_id", "lang", "text", "group",
                                             "gold_doc_id", "answers"])
    _check_parallel(corpus, queries)
    qrels = pd.DataFrame({"query_id": queries["query_id"], "doc_id": queries["gold_doc_id"],
                          "grade": GOLD_GRADE})
    return Collection("xquad", corpus, queries, qrels)


def _check_parallel(corpus: pd.DataFrame, queries: pd.DataFrame) -> None:
    for frame in (corpus, queries):
        per_lang = frame.groupby("lang")["base_id"].apply(frozenset)
        if per_lang.nunique() > 1:
            raise ValueError("XQuAD files are not parallel: base ids differ across "
                             f"languages {list(per_lang.index)}")
