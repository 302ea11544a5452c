import pytest

from gradedrel.annotation.rubric import (
    GRADING_PROMPT_VERSION,
    STATUSES,
    grading_prompt,
    parse_grade,
    query_generation_prompt,
)

CASES = [
    ("[3]", 3, "ok"),
    ("[0]", 0, "ok"),
    ("Score: [2]", 2, "ok"),
    ("[ 1 ]", 1, "ok"),
    ("The passage answers it. [3]\nFinal answer: [3]", 3, "ok"),
    ("", None, "empty"),
    ("   \n", None, "empty"),
    (None, None, "empty"),
    ("2", None, "no_bracket"),
    ("Relevance score: 3", None, "no_bracket"),
    ("(3)", None, "no_bracket"),
    ("I'm sorry, but I can't help with that.", None, "refusal"),
    ("As an AI, I cannot rate this.", None, "refusal"),
    ("[2] or [3]", None, "ambiguous"),
    ("[3] = Highly relevant ... [0] = Irrelevant", None, "rubric_echo"),
    ("Score: 0.5 points\n\n[3] = Highly relevant: The passage is", None, "rubric_echo"),
    ("[4]", None, "out_of_range"),
    ("[-1]", None, "out_of_range"),
    ("[10]", None, "out_of_range"),
    ("[2.5]", None, "not_integer"),
    ("[2,5]", None, "not_integer"),
    ("[two]", None, "no_bracket"),
    # a refusal, a denied grade or a second grade is a failure, never a grade
    ("Sorry, I can't. [0]", None, "refusal"),
    ("Definitely not [0]. Score: 3", None, "negated"),
    ("This is not [3].", None, "negated"),
    ("According to [1], the score is 0", None, "ambiguous"),
    ("[2]\nScore: 3", None, "ambiguous"),
    ("Score: 2 [2]", 2, "ok"),
    ("The passage contains no answer: [0]", 0, "ok"),
    # a written-out grade that contradicts the bracket, however it is phrased
    ("The score is: 3. [1]", None, "ambiguous"),
    ("score 3 [1]", None, "ambiguous"),
    ("[3] The passage names the winner. So 1.", None, "ambiguous"),
    ("[2]\nTherefore, it's a 0", None, "ambiguous"),
    ("[1]\nFinal answer: 3", None, "ambiguous"),
    # ... and ones that agree with it, or are no grade at all
    ("The score is: 3. [3]", 3, "ok"),
    ("[3] The passage names the winner. So 3.", 3, "ok"),
    ("[3] It says so 1912, the year asked for.", 3, "ok"),
    ("[2] So 2.5 of the facts match.", 2, "ok"),
]


@pytest.mark.parametrize("raw,score,status", CASES)
def test_parser_is_strict_and_total(raw, score, status):
    parsed = parse_grade(raw)
    assert (parsed.score, parsed.status) == (score, status)
    assert parsed.status in STATUSES
    assert (parsed.score is not None) == parsed.ok


def test_prompts_are_the_papers():
    text = grading_prompt("who won?", "Denver won.")
    assert text.startswith("You are a search quality rater")
    assert "[2] = Relevant: The passage provides a partial answer" in text
    assert text.endswith("Query:\n\nwho won?\n\nPassage:\n\nDenver won.")
    assert "write a German query" in query_generation_prompt("Text.", "de")
    assert len(GRADING_PROMPT_VERSION) == 10
