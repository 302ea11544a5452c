"""Belebele (Bandarkar et al., 2023) as a retrieval `Collection`.

The construction of Max@R and mteb's BelebeleRetrieval: queries are the questions, the
corpus is the distinct FLORES passages, and a question's one relevant document is its own
passage (grade 3). Rows come from HF `facebook/belebele`, one config per FLORES code with
the split "test" (fields link, question_number, flores_passage, question, ...), read with
`datasets.load_dataset(source, code, split="test")`; `source` may be a local folder in
the hub layout.

Belebele is parallel: every language variant has the same 900 questions on the same 488
passages. A passage is identified by its `link`, a question by `link` and
`question_number`; both are checked to be unique and identical across the loaded languages.
The group is the link.
"""
from __future__ import annotations

from typing import Iterable

import datasets
import pandas as pd

from gradedrel.data.collection import Collection, make_id

SOURCE = "facebook/belebele"
GOLD_GRADE = 3

FLORES_CODES = {
    "en": "eng_Latn", "ar": "arb_Arab", "zh": "zho_Hans", "es": "spa_Latn",
    "th": "tha_Thai", "vi": "vie_Latn", "de": "deu_Latn", "el": "ell_Grek",
    "hi": "hin_Deva", "ro": "ron_Latn", "ru": "rus_Cyrl", "tr": "tur_Latn",
    "fi": "fin_Latn", "ja": "jpn_Jpan",
}

_FIELDS = ["link", "question_number", "flores_passage", "question"]


def load_belebele(langs: Iterable[str], *, source: str = SOURCE) -> Collection:
    rows = {lang: _read(source, lang) for lang in langs}
    if not rows:
        raise ValueError("no languages given")
    first, *others = rows
    expected = set(rows[first]["base_id"])
    for lang in others:
        differ = expected ^ set(rows[lang]["base_id"])
        if differ:
            raise ValueError(f"belebele {FLORES_CODES[lang]} is not parallel to "
                             f"{FLORES_CODES[first]}: {len(differ)} questions differ, "
                             f"e.g. {sorted(differ)[0]!r}")
    corpora, queries, qrels = [], [], []
    for lang, frame in rows.items():
        passages = frame.drop_duplicates("link")
        corpora.append(pd.DataFrame({
            "doc_id": [make_id(lang, link) for link in passages["link"]],
            "base_id": passages["link"].to_numpy(), "lang": lang,
            "text": passages["flores_passage"].to_numpy(), "group": passages["link"].to_numpy()}))
        query_ids = [make_id(lang, b) for b in frame["base_id"]]
        queries.append(pd.DataFrame({
            "query_id": query_ids, "base_id": frame["base_id"].to_numpy(), "lang": lang,
            "text": frame["question"].to_numpy(), "group": frame["link"].to_numpy()}))
        qrels.append(pd.DataFrame({
            "query_id": query_ids,
            "doc_id": [make_id(lang, link) for link in frame["link"]], "grade": GOLD_GRADE}))
    return Collection("belebele", pd.concat(corpora, ignore_index=True),
                      pd.concat(queries, ignore_index=True), pd.concat(qrels, ignore_index=True))


def _read(source: str, lang: str) -> pd.DataFrame:
    """One language's rows with a `base_id` per question, checked for uniqueness."""
    if lang not in FLORES_CODES:
        raise ValueError(f"no FLORES code for {lang!r}; known: {', '.join(FLORES_CODES)}")
    code = FLORES_CODES[lang]
    frame = datasets.load_dataset(source, code, split="test").select_columns(_FIELDS).to_pandas()
    frame["base_id"] = frame["link"] + "#" + frame["question_number"].astype(str)
    dup = frame["base_id"].duplicated()
    if dup.any():
        raise ValueError(f"belebele {code}: question {frame['base_id'][dup].iloc[0]!r} "
                         "appears twice")
    texts = frame.groupby("link")["flores_passage"].nunique()
    ambiguous = texts[texts > 1]
    if len(ambiguous):
        raise ValueError(f"belebele {code}: link {ambiguous.index[0]!r} has "
                         f"{ambiguous.iloc[0]} different passages, so it cannot identify one")
    return frame
