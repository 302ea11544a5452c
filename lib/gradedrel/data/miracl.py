"""MIRACL (Zhang et al., 2023) as a `Collection`.

Topics and qrels come from one of two places:

* a folder of anserini-style files (argument `topics_dir` or env `MIRACL_TOPICS_DIR`):
  `topics.miracl-v1.0-{lang}-{split}.tsv` (`qid<TAB>query`) and
  `qrels.miracl-v1.0-{lang}-{split}.tsv` (`qid Q0 docid rel`, whitespace separated), either
  directly in the folder or in the hub repo's layout `miracl-v1.0-{lang}/{topics,qrels}/`;
* records in the layout of HF `miracl/miracl` (query_id, query, positive_passages,
  negative_passages; each passage a dict with docid, title, text), from `load_split(lang,
  split)`. The default calls `datasets.load_dataset("miracl/miracl", lang, split=split)`.

Passages come from the JSONL shards of HF `miracl/miracl-corpus`
(`miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz`, fields docid, title, text) under
`corpus_root`: the hub repo by default, or a local copy in the same layout. They are read
with the generic json builder because `datasets` >= 4 no longer runs the repo's loading
script. `corpus="judged"` keeps only judged passages (the full corpora hold millions); with
records it takes them from the positive/negative lists and reads no corpus at all.

Passage text is "title text", as pyserini encodes MIRACL. Grades are MIRACL's binary 0/1,
kept as given. MIRACL is not parallel, and its passage ids (`{page id}#{n}`) repeat across
Wikipedias for unrelated passages (93 judged dev ids are each shared by two of ar en es fi
ja ru). A bare id as base id would make `Collection.qrels_dict` carry relevance to those
unrelated passages in other languages, so a passage's base id names its Wikipedia,
`{lang}wiki/{docid}`, and its group is the article, `{lang}wiki/{page id}`. A query's base
id and group are its query id.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping

import datasets
import pandas as pd

from gradedrel.data.collection import Collection, make_id

CORPUS_REPO = "hf://datasets/miracl/miracl-corpus"


def passage_base_id(lang: str, docid: str) -> str:
    return f"{lang}wiki/{docid}"


def read_topics(path) -> pd.DataFrame:
    """Anserini topic TSV (`qid<TAB>query` a line) as columns query_id, query."""
    path = Path(path)
    rows, line_of = [], {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0] or not fields[1].strip():
                raise ValueError(f"{path}:{n}: expected 'qid<TAB>query', got {line!r}")
            qid, query = fields
            if qid in line_of:
                raise ValueError(f"{path}:{n}: query {qid!r} already on line {line_of[qid]}")
            line_of[qid] = n
            rows.append((qid, query))
    return pd.DataFrame(rows, columns=["query_id", "query"])


def read_qrels(path) -> pd.DataFrame:
    """TREC qrels (`qid iter docid rel`, whitespace separated) as query_id, doc_id, rel."""
    path = Path(path)
    rows, line_of = [], {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rel', got {line.rstrip()!r}")
            qid, _, docid, rel = fields
            try:
                rel = int(rel)
            except ValueError:
                raise ValueError(f"{path}:{n}: relevance {rel!r} is not an integer") from None
            if (qid, docid) in line_of:
                raise ValueError(f"{path}:{n}: ({qid}, {docid}) already judged on line "
                                 f"{line_of[qid, docid]}")
            line_of[qid, docid] = n
            rows.append((qid, docid, rel))
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "rel"])


def load_miracl(langs: Iterable[str], split: str = "dev", *, topics_dir=None,
                corpus: str = "full", corpus_root: str = CORPUS_REPO,
                load_split: Callable[[str, str], Iterable[Mapping]] | None = None) -> Collection:
    """MIRACL `split` for `langs`; see the module docstring for sources and options."""
    if corpus not in ("full", "judged"):
        raise ValueError(f"corpus must be 'full' or 'judged', not {corpus!r}")
    topics_dir = topics_dir or os.environ.get("MIRACL_TOPICS_DIR")
    load_split = load_split or _hub_split
    corpora, queries, qrels = [], [], []
    for lang in langs:
        if topics_dir:
            topics, judgements, passages = _from_tsv(Path(topics_dir), lang, split)
        else:
            topics, judgements, passages = _from_records(load_split(lang, split), lang, split)
        bad = judgements[~judgements["rel"].isin([0, 1])]
        if len(bad):
            raise ValueError(f"MIRACL {lang} {split}: relevance {bad['rel'].iloc[0]} is not 0/1")
        if corpus == "full":
            passages = read_corpus(corpus_root, lang)
        elif passages is None:
            passages = read_corpus(corpus_root, lang, keep=set(judgements["doc_id"]))
        _warn_missing_passages(judgements, passages, f"MIRACL {lang} {split}")
        corpora.append(_corpus_frame(lang, passages))
        queries.append(pd.DataFrame({
            "query_id": [make_id(lang, q) for q in topics["query_id"]],
            "base_id": topics["query_id"].to_numpy(), "lang": lang,
            "text": topics["query"].to_numpy(), "group": topics["query_id"].to_numpy()}))
        qrels.append(pd.DataFrame({
            "query_id": [make_id(lang, q) for q in judgements["query_id"]],
            "doc_id": [make_id(lang, passage_base_id(lang, d)) for d in judgements["doc_id"]],
            "grade": judgements["rel"].to_numpy()}))
    return Collection("miracl", pd.concat(corpora, ignore_index=True),
                      pd.concat(queries, ignore_index=True), pd.concat(qrels, ignore_index=True))


def read_corpus(root: str, lang: str, keep: set[str] | None = None) -> pd.DataFrame:
    """Passages (docid, title, text) of one language; only the ids in `keep` if given."""
    pattern = f"miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz"
    if not str(root).startswith("hf://") and not list(Path(root).glob(pattern)):
        raise FileNotFoundError(f"no MIRACL corpus shards match {root}/{pattern}")
    shards = datasets.load_dataset("json", data_files=f"{root}/{pattern}", split="train")
    if keep is not None:
        shards = shards.filter(lambda ids: [i in keep for i in ids], input_columns="docid",
                               batched=True)
    return shards.select_columns(["docid", "title", "text"]).to_pandas()


def _hub_split(lang: str, split: str):
    try:
        return datasets.load_dataset("miracl/miracl", lang, split=split)
    except RuntimeError as e:
        if "scripts are no longer supported" not in str(e):
            raise
        raise RuntimeError(f"{e}; point MIRACL_TOPICS_DIR at the anserini topic/qrel TSVs "
                           "instead (see gradedrel.data.miracl)") from e


def _from_tsv(folder: Path, lang: str, split: str):
    found = {}
    for kind in ("topics", "qrels"):
        name = f"{kind}.miracl-v1.0-{lang}-{split}.tsv"
        candidates = [folder / name, folder / f"miracl-v1.0-{lang}" / kind / name]
        found[kind] = next((p for p in candidates if p.is_file()), None)
        if found[kind] is None:
            raise FileNotFoundError(f"MIRACL {kind} for {lang} {split}: none of "
                                    f"{', '.join(map(str, candidates))}")
    topics, judgements = read_topics(found["topics"]), read_qrels(found["qrels"])
    unknown = sorted(set(judgements["query_id"]) - set(topics["query_id"]))
    if unknown:
        raise ValueError(f"{found['qrels']}: query {unknown[0]!r} is not in {found['topics']}")
    return topics, judgements, None


def _from_records(records: Iterable[Mapping], lang: str, split: str):
    topics, judgements, passages = [], [], {}
    for i, record in enumerate(records):
        try:
            qid, query = str(record["query_id"]), record["query"]
            judged = [(p, 1) for p in record["positive_passages"]]
            judged += [(p, 0) for p in record["negative_passages"]]
            judged = [(str(p["docid"]), p["title"], p["text"], rel) for p, rel in judged]
        except (KeyError, TypeError) as e:
            raise ValueError(f"MIRACL {lang} {split} record {i}: not in miracl/miracl layout "
                             f"(query_id, query, positive_passages, negative_passages with "
                             f"docid/title/text): {e!r}") from None
        topics.append((qid, query))
        for docid, title, text, rel in judged:
            judgements.append((qid, docid, rel))
            passages.setdefault(docid, (docid, title, text))
    topics = pd.DataFrame(topics, columns=["query_id", "query"])
    judgements = pd.DataFrame(judgements, columns=["query_id", "doc_id", "rel"])
    for frame, key, what in ((topics, ["query_id"], "query"),
                             (judgements, ["query_id", "doc_id"], "judgement")):
        dup = frame.duplicated(key)
        if dup.any():
            raise ValueError(f"MIRACL {lang} {split}: duplicate {what} "
                             f"{tuple(frame.loc[dup, key].iloc[0])}")
    return topics, judgements, pd.DataFrame(list(passages.values()),
                                            columns=["docid", "title", "text"])


def _corpus_frame(lang: str, passages: pd.DataFrame) -> pd.DataFrame:
    text = passages["title"].fillna("").str.cat(passages["text"].fillna(""), sep=" ").str.strip()
    base_ids = [passage_base_id(lang, d) for d in passages["docid"]]
    return pd.DataFrame({
        "doc_id": [make_id(lang, b) for b in base_ids], "base_id": base_ids, "lang": lang,
        "text": text.to_numpy(), "group": [b.split("#")[0] for b in base_ids]})


def _warn_missing_passages(judgements: pd.DataFrame, passages: pd.DataFrame, what: str) -> None:
    missing = set(judgements["doc_id"]) - set(passages["docid"])
    if missing:
        warnings.warn(f"{what}: {len(missing)} judged passages are not in the corpus, "
                      f"e.g. {sorted(missing)[0]!r}", stacklevel=3)
