"""What every annotator takes and gives: a (query, passage) `Pair` in, a `Judgement` out.

An annotator has a `name`, the `model` it runs and the `prompt_version` it uses (these
three, with the pair's ids, key the judgement store), and `grade(pairs)`, which yields one
`Judgement` per pair as each is ready, in any order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Protocol

from gradedrel.data.collection import Collection


@dataclass(frozen=True)
class Pair:
    query_id: str
    doc_id: str
    lang: str
    query: str
    passage: str


@dataclass
class Judgement:
    query_id: str
    doc_id: str
    score: int | None          # None unless status == "ok"
    status: str                # rubric.STATUSES, or "request_failed" (not cached)
    raw: str                   # the annotator's raw output, kept for every pair
    expected: float | None = None   # probability-weighted grade, where the annotator has one

    def as_dict(self) -> dict:
        return asdict(self)


class Annotator(Protocol):
    name: str
    model: str
    prompt_version: str

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]: ...


def pairs_from_candidates(coll: Collection, candidates) -> list[Pair]:
    """Pairs with their texts from a candidates table (query_id, doc_id, ...)."""
    q_text = coll.queries.set_index("query_id")["text"]
    q_lang = coll.queries.set_index("query_id")["lang"]
    d_text = coll.corpus.set_index("doc_id")["text"]
    return [Pair(q, d, q_lang[q], q_text[q], d_text[d])
            for q, d in candidates[["query_id", "doc_id"]].itertuples(index=False)]
