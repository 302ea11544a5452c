"""Annotators grade (query, passage) pairs 0-3 behind one interface (`judgement.py`).

  XQuADRubricAnnotator   grades from XQuAD's human annotations (offline, exact)
  ChatAnnotator          any OpenAI-compatible chat endpoint     (llm_chat.py)
  CausalLMAnnotator      a local causal LM's next-token grades   (causal_lm.py)
"""
from __future__ import annotations

from typing import Iterable, Iterator

from gradedrel.annotation.judgement import Judgement, Pair
from gradedrel.annotation.llm_chat import ChatAnnotator, ChatEndpoint
from gradedrel.data.collection import Collection


class XQuADRubricAnnotator:
    """Grades from XQuAD's own annotations, following the paper's four levels:
    3 the paragraph the question was written for; 2 another paragraph containing one of
    the question's gold answer strings; 1 another paragraph of the same article;
    0 otherwise. Answer matching is a case-insensitive substring test."""

    name = "xquad-rubric"
    model = "xquad-annotations"
    prompt_version = "rubric-v1"

    def __init__(self, coll: Collection):
        if "gold_doc_id" not in coll.queries or "answers" not in coll.queries:
            raise ValueError("the rubric annotator needs XQuAD queries (gold_doc_id, answers)")
        q = coll.queries.set_index("query_id")
        self.gold = q["gold_doc_id"].to_dict()
        self.answers = {k: [a.casefold() for a in v if a.strip()] for k, v in q["answers"].items()}
        self.query_group = q["group"].to_dict()
        self.doc_group = coll.corpus.set_index("doc_id")["group"].to_dict()

    def grade_one(self, pair: Pair) -> Judgement:
        if pair.doc_id == self.gold[pair.query_id]:
            score, why = 3, "gold paragraph"
        elif any(a in pair.passage.casefold() for a in self.answers[pair.query_id]):
            score, why = 2, "contains a gold answer"
        elif self.doc_group[pair.doc_id] == self.query_group[pair.query_id]:
            score, why = 1, "same article"
        else:
            score, why = 0, "other article"
        return Judgement(pair.query_id, pair.doc_id, score, "ok", f"[{score}] {why}")

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]:
        for pair in pairs:
            yield self.grade_one(pair)


def annotator_from_spec(spec: str, coll: Collection):
    """"xquad-rubric", or "env:PREFIX" for the chat endpoint configured in PREFIX_* variables
    (the local Gemma pair is started by the notebook, which owns the server's lifetime)."""
    if spec == "xquad-rubric":
        return XQuADRubricAnnotator(coll)
    if spec.startswith("env:"):
        return ChatAnnotator(ChatEndpoint.from_env(spec[4:]))
    raise ValueError(f"unknown annotator {spec!r}: 'xquad-rubric' or 'env:PREFIX'")
