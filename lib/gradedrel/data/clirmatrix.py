"""CLIRMatrix MULTI-8 (Sun & Duh, 2020) as a `Collection`.

Assumed layout under `root`, mirroring the JHU download tree (www.cs.jhu.edu/~shuosun/
clirmatrix/data/); files may be gzipped (`.gz`) or not:

    DOCS/{lang}.tsv.gz                     doc_id<TAB>text, one Wikipedia article a line
    MULTI-8/{q}/{q}.{d}.{split}.jl.gz      queries in language q judged against docs in d

DOCS and the BI-139 names (`BI-139/{base,full}/{q}/{q}.{d}.{split}[.base].jl.gz`) are the
published ones; the MULTI-8 path is assumed by analogy. Each `.jl` line is one query:
`{"src_id": ..., "src_query": ..., "tgt_results": [[doc_id, score], ...]}`, score 0-6
(6 most relevant; 1-5 Jenks-optimised buckets of the source-language BM25 score; 0 not
retrieved in the source language), as read by ir_datasets. Languages: ar de en es fr ja
ru zh; splits: train dev test1 test2; files exist for q != d only.

Grades: 6 -> 3, 3-5 -> 2, 1-2 -> 1, 0 -> 0 (`GRADE_OF_SCORE`). It keeps the data set's own
relevant/not-relevant cut (score >= 1) and its top label; the raw score stays in the qrels
column `raw_grade`.

Ids. `src_id` is the page id of the query's article in the query language's Wikipedia, so
the same query has a different src_id in each language ("Death" is en 8221, "Mort" fr
45187, per ir_datasets' integration tests). The files are aligned by line instead (the same
tests: lines 0, 9 and 9999 of the en and fr train queries are Death/Mort,
Lithuania/Lituanie, Arabic numerals/Chiffres arabes). The query base id is therefore
"{split}/{i}" (also its group) and `src_id` is kept as a column; the loader checks the
alignment (line i of language b is the same article as line i of language a, so a's query
should judge it relevant). Documents are not parallel
and page ids collide across Wikipedias, so a document's base id names its Wikipedia,
"{lang}wiki/{page_id}": base ids never pair unrelated articles across languages, and the
cross-language qrels are the data set's own.
"""
from __future__ import annotations

import gzip
import json
import warnings
from itertools import permutations
from pathlib import Path
from typing import Iterable

import pandas as pd

from gradedrel.data.collection import Collection, make_id

MULTI8_LANGS = ("ar", "de", "en", "es", "fr", "ja", "ru", "zh")
SPLITS = ("train", "dev", "test1", "test2")
GRADE_OF_SCORE = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3}
# Aligned lines are the same article; a much lower hit rate means the files are not aligned.
_MIN_ALIGNMENT = 0.5


def read_judgements(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One `.jl` file as (queries: src_id, src_query in file order;
    judgements: src_id, doc_id, raw_grade)."""
    path = Path(path)
    queries, judgements, line_of = [], [], {}
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                src_id = str(record["src_id"])
                query, results = record["src_query"], record["tgt_results"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: expected a JSON object with src_id, src_query, "
                                 f"tgt_results: {e!r}") from None
            if src_id in line_of:
                raise ValueError(f"{path}:{n}: query {src_id!r} already on line {line_of[src_id]}")
            line_of[src_id] = n
            queries.append((src_id, query))
            for result in results:
                if not (isinstance(result, list) and len(result) == 2
                        and _score(result[1]) in GRADE_OF_SCORE):
                    raise ValueError(f"{path}:{n}: tgt_results entry {result!r} is not "
                                     "[doc_id, score 0-6]")
                judgements.append((src_id, str(result[0]), _score(result[1])))
    judgements = pd.DataFrame(judgements, columns=["src_id", "doc_id", "raw_grade"])
    judgements = judgements.drop_duplicates()
    clash = judgements.duplicated(["src_id", "doc_id"])
    if clash.any():
        src_id, doc_id = judgements.loc[clash, ["src_id", "doc_id"]].iloc[0]
        raise ValueError(f"{path}:{line_of[src_id]}: document {doc_id!r} has two scores")
    return pd.DataFrame(queries, columns=["src_id", "src_query"]), judgements


def read_documents(path, keep: set[str] | None = None) -> pd.DataFrame:
    """A DOCS TSV (`doc_id<TAB>text`) as doc_id, text; only the ids in `keep` if given."""
    path = Path(path)
    rows, line_of = [], {}
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            doc_id, tab, text = line.partition("\t")
            if not tab or not doc_id:
                raise ValueError(f"{path}:{n}: expected 'doc_id<TAB>text', got {line[:80]!r}")
            if keep is not None and doc_id not in keep:
                continue
            if doc_id in line_of:
                raise ValueError(f"{path}:{n}: document {doc_id!r} already on line "
                                 f"{line_of[doc_id]}")
            line_of[doc_id] = n
            rows.append((doc_id, text))
    return pd.DataFrame(rows, columns=["doc_id", "text"])


def load_multi8(root, langs: Iterable[str], split: str = "test1", *,
                corpus: str = "judged") -> Collection:
    """MULTI-8 `split` with queries and documents in `langs` (all ordered pairs).

    `corpus="judged"` keeps the judged documents, the candidate set CLIRMatrix ranks;
    `corpus="full"` reads every article of each language.
    """
    root, langs = Path(root), list(langs)
    unknown = sorted(set(langs) - set(MULTI8_LANGS))
    if unknown or len(langs) < 2:
        raise ValueError(f"need two or more of {MULTI8_LANGS}, got {langs}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if corpus not in ("full", "judged"):
        raise ValueError(f"corpus must be 'full' or 'judged', not {corpus!r}")

    queries, source_of, judgements = {}, {}, []
    for q, d in permutations(langs, 2):
        path = _existing(root / "MULTI-8" / q / f"{q}.{d}.{split}.jl.gz")
        found, judged = read_judgements(path)
        if q not in queries:
            queries[q], source_of[q] = found, path
        elif not found["src_id"].equals(queries[q]["src_id"]):
            raise ValueError(f"{path}: queries differ from those of {source_of[q]}")
        judgements.append(judged.assign(q=q, d=d))
    judgements = pd.concat(judgements, ignore_index=True)
    _check_alignment(queries, judgements, split)

    corpora = []
    for d in langs:
        path = _existing(root / "DOCS" / f"{d}.tsv.gz")
        keep = None if corpus == "full" else set(judgements.loc[judgements["d"] == d, "doc_id"])
        docs = read_documents(path, keep)
        if keep is not None:
            missing = keep - set(docs["doc_id"])
            if missing:
                warnings.warn(f"{path}: {len(missing)} judged documents are missing, "
                              f"e.g. {sorted(missing)[0]!r}", stacklevel=2)
        base_ids = [_doc_base_id(d, doc_id) for doc_id in docs["doc_id"]]
        corpora.append(pd.DataFrame({
            "doc_id": [make_id(d, b) for b in base_ids], "base_id": base_ids, "lang": d,
            "text": docs["text"].to_numpy(), "group": base_ids}))

    query_frames = []
    for q, found in queries.items():
        base_ids = [f"{split}/{i}" for i in range(len(found))]
        query_frames.append(pd.DataFrame({
            "query_id": [make_id(q, b) for b in base_ids], "base_id": base_ids, "lang": q,
            "text": found["src_query"].to_numpy(), "group": base_ids,
            "src_id": found["src_id"].to_numpy()}))
    query_frames = pd.concat(query_frames, ignore_index=True)

    query_id_of = dict(zip(zip(query_frames["lang"], query_frames["src_id"]),
                           query_frames["query_id"]))
    qrels = pd.DataFrame({
        "query_id": [query_id_of[key] for key in zip(judgements["q"], judgements["src_id"])],
        "doc_id": [make_id(d, _doc_base_id(d, doc_id))
                   for d, doc_id in zip(judgements["d"], judgements["doc_id"])],
        "grade": judgements["raw_grade"].map(GRADE_OF_SCORE).to_numpy(),
        "raw_grade": judgements["raw_grade"].to_numpy()})
    return Collection("clirmatrix-multi8", pd.concat(corpora, ignore_index=True),
                      query_frames, qrels)


def _doc_base_id(lang: str, page_id: str) -> str:
    return f"{lang}wiki/{page_id}"


def _check_alignment(queries: dict[str, pd.DataFrame], judgements: pd.DataFrame,
                     split: str) -> None:
    relevant = judgements[judgements["raw_grade"] >= 1]
    relevant = set(zip(relevant["q"], relevant["d"], relevant["src_id"], relevant["doc_id"]))
    for a, b in permutations(queries, 2):
        ids_a, ids_b = queries[a]["src_id"], queries[b]["src_id"]
        if len(ids_a) != len(ids_b):
            raise ValueError(f"MULTI-8 {split}: {len(ids_a)} {a} queries but "
                             f"{len(ids_b)} {b} queries, so lines cannot align")
        hits = sum((a, b, x, y) in relevant for x, y in zip(ids_a, ids_b))
        if hits < _MIN_ALIGNMENT * len(ids_a):
            raise ValueError(f"MULTI-8 {split}: only {hits} of {len(ids_a)} {a} queries judge "
                             f"the article of the {b} query on the same line relevant; the "
                             "query files do not look line-aligned")


def _score(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _existing(path: Path) -> Path:
    """`path`, or the same file without its `.gz`."""
    for candidate in (path, path.with_suffix("")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"neither {path} nor {path.with_suffix('')} exists")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")
