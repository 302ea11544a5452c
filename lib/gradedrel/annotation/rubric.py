"""The threshold paper's prompts (Appendix A) and a strict, total parser for grades.

Every raw answer maps to exactly one status; only `ok` carries a score. Nothing
malformed is ever read as a 0: it stays unparsed, with its raw text, and is counted.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

GRADES = (0, 1, 2, 3)

QUERY_GENERATION_PROMPT = (
    "Your task is to write a {language} query that seeks information existing in a given "
    "context passage. The query should be relevant to the passage but does not need to cover "
    "the entire scope of the passage. The query should be in {language}, short, simple and in "
    "the style of web search query such as question-based or keyword-based.\n\n"
    "The passage is:\n{passage}"
)

GRADING_PROMPT = (
    "You are a search quality rater evaluating the relevance of passages. Given a query and a "
    "passage, you must provide a score on an integer scale of 0 to 3 within brackets [] with "
    "the following meanings:\n\n"
    "[3] = Highly relevant: The passage is dedicated to the query and contains the exact "
    "answer.\n\n"
    "[2] = Relevant: The passage provides a partial answer to the query, but it lacks the "
    "exact information needed, so it cannot be considered highly relevant.\n\n"
    "[1] = Related: The passage seems related to the query but does not answer it.\n\n"
    "[0] = Irrelevant: The passage has nothing to do with the query.\n\n"
    "Query:\n\n{query}\n\nPassage:\n\n{passage}"
)

LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "fi": "Finnish", "hi": "Hindi", "ja": "Japanese", "ro": "Romanian", "ru": "Russian",
    "th": "Thai", "tr": "Turkish", "vi": "Vietnamese", "zh": "Chinese",
}


def prompt_version(template: str) -> str:
    """Short hash of a prompt template: part of every cache key and data row."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:10]


GRADING_PROMPT_VERSION = prompt_version(GRADING_PROMPT)


def grading_prompt(query: str, passage: str) -> str:
    return GRADING_PROMPT.format(query=query, passage=passage)


def query_generation_prompt(passage: str, lang: str) -> str:
    return QUERY_GENERATION_PROMPT.format(language=LANGUAGE_NAMES.get(lang, lang), passage=passage)


# --- parsing -------------------------------------------------------------------------

STATUSES = ("ok", "empty", "no_bracket", "refusal", "negated", "ambiguous", "out_of_range",
            "not_integer", "rubric_echo")
_BRACKETED = re.compile(r"\[\s*([-+]?\d+(?:[.,]\d+)?)\s*\]")
_RUBRIC_LINE = re.compile(r"\[\s*\d\s*\]\s*=")
_REFUSAL = re.compile(r"\b(I can(?:no|')t|I am (?:not able|unable)|I'm (?:not able|unable)|"
                      r"I won't|as an AI|I apologi[sz]e|sorry)\b", re.IGNORECASE)
# "not [3]", "definitely not [0]", "never a [2]": a grade named in order to deny it
_NEGATED = re.compile(r"\b(?:not|never|no|isn't|is not|cannot be)\s+(?:an?\s+|the\s+)?\[\s*\d", re.IGNORECASE)
# a grade written out without brackets: "score: 3", "the score is 0", "the score is: 3",
# "score 3", "rating of 2"
_UNBRACKETED = re.compile(r"\b(?:score|grade|rating|relevance)\b(?:\s+(?:is|of|would be|should be))?"
                          r"\s*[:=]?\s*(\d+)\b(?!\s*\])", re.IGNORECASE)
# a conclusion that states a bare grade: "So 1.", "Therefore, 2", "so it's a 0", "Answer: 1"
_CONCLUSION = re.compile(r"\b(?:so|thus|therefore|hence|(?:final\s+)?answer\s*:)[\s,:]*"
                         r"(?:(?:it|this)(?:'s|\s+is)\s+(?:an?\s+)?)?(\d)\b(?![.,]\d)(?!\s*\])",
                         re.IGNORECASE)


@dataclass(frozen=True)
class ParsedGrade:
    score: int | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_grade(raw: str | None) -> ParsedGrade:
    """The grade in brackets, e.g. "[2]". Repeats of one value are fine ("[2] ... [2]").
    Everything else is unparsed, each with its own status, never read as a grade: an empty
    answer; lines of the scale repeated back ("[3] = Highly relevant"); a refusal, even one
    that ends with a bracket ("Sorry, I can't. [0]"); a grade named to deny it ("Definitely
    not [0]"); two different grades, bracketed or one written out beside the bracket
    ("According to [1], the score is 0", "The score is: 3. [1]", "score 3 [1]", "[3] ...
    So 1."), all `ambiguous`; no bracket at all; an out-of-range or fractional value."""
    if raw is None or not raw.strip():
        return ParsedGrade(None, "empty")
    if _RUBRIC_LINE.search(raw):
        return ParsedGrade(None, "rubric_echo")
    if _REFUSAL.search(raw):
        return ParsedGrade(None, "refusal")
    found = _BRACKETED.findall(raw)
    if not found:
        return ParsedGrade(None, "no_bracket")
    if _NEGATED.search(raw):
        return ParsedGrade(None, "negated")
    written = set(_UNBRACKETED.findall(raw)) | set(_CONCLUSION.findall(raw))
    if len(set(found)) > 1 or (written and written != set(found)):
        return ParsedGrade(None, "ambiguous")
    value = found[0]
    if "." in value or "," in value:
        return ParsedGrade(None, "not_integer")
    score = int(value)
    if score not in GRADES:
        return ParsedGrade(None, "out_of_range")
    return ParsedGrade(score, "ok")
