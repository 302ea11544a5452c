"""Annotators grade (query, passage) pairs 0-3 behind one interface (`judgement.py`).

  XQuADRubricAnnotator   grades paragraphs from XQuAD's human annotations (offline, exact)
  XQuADSentenceRubricAnnotator  the same for XQuAD-R's sentences
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


class XQuADSentenceRubricAnnotator:
    """Grades (question, sentence) pairs of XQuAD-R from XQuAD's human annotations, on the
    four levels of the paper's grading prompt (Appendix A):

      3 highly relevant, "contains the exact answer": the answer sentence, or another
        sentence of the question's own paragraph that holds one of its gold answer strings
      2 relevant, "a partial answer ... lacks the exact information": another sentence of
        the question's own paragraph, the context the answer was written in
      1 related, "does not answer": a sentence of another paragraph of the same article
      0 irrelevant: a sentence of another article

    Answer matching is a case-insensitive substring test, within the question's paragraph
    only (a short answer such as a number recurs elsewhere by chance)."""

    name = "xquad-sentence-rubric"
    model = "xquad-annotations"
    prompt_version = "sentence-rubric-v1"

    def __init__(self, coll: Collection):
        needed_q = {"gold_doc_id", "answers", "gold_paragraph"}
        if not needed_q <= set(coll.queries) or "paragraph_base_id" not in coll.corpus:
            raise ValueError("the sentence rubric needs XQuAD-R queries (gold_doc_id, answers, "
                             "gold_paragraph) and sentences (paragraph_base_id)")
        q = coll.queries.set_index("query_id")
        self.gold = q["gold_doc_id"].to_dict()
        self.gold_paragraph = q["gold_paragraph"].to_dict()
        self.answers = {k: [a.casefold() for a in v if a.strip()] for k, v in q["answers"].items()}
        self.query_group = q["group"].to_dict()
        c = coll.corpus.set_index("doc_id")
        self.doc_group = c["group"].to_dict()
        self.doc_paragraph = c["paragraph_base_id"].to_dict()

    def grade_one(self, pair: Pair) -> Judgement:
        q, d = pair.query_id, pair.doc_id
        in_paragraph = self.doc_paragraph[d] == self.gold_paragraph[q]
        if d == self.gold[q]:
            score, why = 3, "answer sentence"
        elif in_paragraph and any(a in pair.passage.casefold() for a in self.answers[q]):
            score, why = 3, "holds a gold answer, own paragraph"
        elif in_paragraph:
            score, why = 2, "own paragraph, no answer"
        elif self.doc_group[d] == self.query_group[q]:
            score, why = 1, "same article"
        else:
            score, why = 0, "other article"
        return Judgement(q, d, score, "ok", f"[{score}] {why}")

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]:
        for pair in pairs:
            yield self.grade_one(pair)


def annotator_from_spec(spec: str, coll: Collection):
    """"xquad-rubric", or "env:PREFIX" for the chat endpoint configured in PREFIX_* variables
    (the local Gemma pair is started by the notebook, which owns the server's lifetime)."""
    if spec == "xquad-rubric":
        if "paragraph_base_id" in coll.corpus:       # XQuAD-R sentences
            return XQuADSentenceRubricAnnotator(coll)
        return XQuADRubricAnnotator(coll)
    if spec.startswith("env:"):
        return ChatAnnotator(ChatEndpoint.from_env(spec[4:]))
    raise ValueError(f"unknown annotator {spec!r}: 'xquad-rubric' or 'env:PREFIX'")
