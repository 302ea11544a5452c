"""A fast in-process grader for a small chat model: the grade digit's probabilities at one
position, with an optional few-shot prefix that llama.cpp's prefix cache reuses.

The prompt is the chat model's turn as llama.cpp's server formats it (ChatML: an empty system
turn, the user turn, the assistant turn), with the answer begun by "[" so that the next token
is the grade digit:

    <|im_start|>system\\n<|im_end|>\\n<|im_start|>user\\n
    INSTRUCTIONS (the paper's grading prompt up to its pair) [+ EXAMPLES, one per grade]
    Query: ... Passage: ...            <- the pair, always last
    <|im_end|>\\n<|im_start|>assistant\\n[

Everything before the pair is identical for every pair (`PromptBuilder.prefix`), so the model
evaluates it once and then only the pair's tokens. The reader takes the last position's logits
(llama.cpp computes no others with logits_all=False), P(0..3) = softmax over the four digit
tokens (their share of the whole vocabulary is kept as `mass`), expected grade = sum g*P(g),
and the grade = argmax of log P(g) + offset(g): offsets are zero unless fitted on a calibration
set (`fit_offsets`) disjoint from the pairs measured (`check_disjoint`).

Few-shot examples (`few_shot_examples`) come from the training split's articles only
(data/split.py), one per rubric grade, seeded, never a question or sentence of a given
exclusion set (the pairs measured, notebook 02's agreement sample).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from gradedrel.annotation.judgement import Judgement, Pair
from gradedrel.annotation.rubric import GRADES, GRADING_PROMPT, prompt_version

CHATML = "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
ANSWER_PREFIX = "["
PAIR_TEMPLATE = "Query:\n\n{query}\n\nPassage:\n\n{passage}"
# the paper's instructions: its grading prompt up to the pair
INSTRUCTIONS = GRADING_PROMPT[:GRADING_PROMPT.index("Query:")]
EXAMPLES_HEAD = "Examples of graded pairs:\n\n"
EXAMPLE_TEMPLATE = PAIR_TEMPLATE + "\n\nScore: [{grade}]\n\n"
TASK_HEAD = "Now grade this pair; answer with its score in brackets only.\n\n"


@dataclass(frozen=True)
class Example:
    query: str
    passage: str
    grade: int


@dataclass(frozen=True)
class PromptBuilder:
    """The grading prompt: fixed prefix (instructions, examples) + the pair + the answer's "["."""
    examples: tuple[Example, ...] = ()

    @property
    def prefix(self) -> str:
        user = INSTRUCTIONS
        if self.examples:
            user += EXAMPLES_HEAD + "".join(EXAMPLE_TEMPLATE.format(query=e.query, passage=e.passage,
                                                                    grade=e.grade) for e in self.examples)
            user += TASK_HEAD
        return CHATML.split("{user}")[0] + user

    @property
    def suffix_template(self) -> str:
        return PAIR_TEMPLATE + CHATML.split("{user}")[1] + ANSWER_PREFIX

    def prompt(self, query: str, passage: str) -> str:
        return self.prefix + self.suffix_template.format(query=query, passage=passage)

    @property
    def version(self) -> str:
        """Hash of the whole template, examples included: enters every stored row."""
        return prompt_version(self.prefix + self.suffix_template)


# --- reading the grade ----------------------------------------------------------------

@dataclass(frozen=True)
class GradeReading:
    probs: tuple[float, float, float, float]    # P(0..3), renormalised over the digits
    mass: float                                 # the digits' share of the whole vocabulary
    expected: float                             # sum g * P(g)
    grade: int                                  # argmax of log P(g) + offset(g)


def read_grade(logits: np.ndarray, digit_ids, offsets=None) -> GradeReading:
    """The grade from one position's logits over the vocabulary; `digit_ids` are the token
    ids of "0", "1", "2", "3"; `offsets` (4 values, default zeros) are added to log P(g)
    before the argmax only (the expected grade is the model's own)."""
    logits = np.asarray(logits, dtype=np.float64)
    log_p = logits[list(digit_ids)] - logsumexp(logits)
    mass = float(np.exp(log_p).sum())
    log_q = log_p - logsumexp(log_p)
    probs = np.exp(log_q)
    shifted = log_q + (np.zeros(4) if offsets is None else np.asarray(offsets, dtype=float))
    return GradeReading(tuple(float(p) for p in probs), mass, float(np.dot(GRADES, probs)),
                        int(np.argmax(shifted)))


def grades_with_offsets(probs: np.ndarray, offsets) -> np.ndarray:
    """Argmax grades of (n, 4) probabilities after adding `offsets` to their logs."""
    return np.argmax(np.log(np.clip(probs, 1e-300, None)) + np.asarray(offsets, dtype=float), axis=1)


def fit_offsets(probs, grades, grid=np.arange(-4.0, 4.01, 0.5),
                share_factor: float | None = None) -> tuple[float, float, float, float]:
    """Per-grade offsets (grade 0's fixed at 0) that maximise quadratic kappa between the
    offset argmax and `grades` (the rubric's) on a calibration set's (n, 4) probabilities;
    among equal kappas the smallest offsets (L1). Fit only on pairs that are not measured.
    `share_factor` f: only offsets whose grade shares all lie within a factor f of the
    rubric's shares on the set (kappa alone may drop a grade entirely, which merges two
    thresholds); ValueError if no offsets on the grid satisfy it."""
    from gradedrel.annotation.agreement import quadratic_kappas

    probs, grades = np.asarray(probs, dtype=float), np.asarray(grades, dtype=int)
    mesh = np.array(np.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1).T
    combos = np.hstack([np.zeros((len(mesh), 1)), mesh])                 # (R, 4)
    log_p = np.log(np.clip(probs, 1e-300, None))
    predicted = np.argmax(log_p[None, :, :] + combos[:, None, :], axis=2)   # (R, n)
    kappas = np.nan_to_num(quadratic_kappas(np.broadcast_to(grades, predicted.shape), predicted), nan=-1.0)
    if share_factor is not None:
        target = np.bincount(grades, minlength=4) / len(grades)
        shares = np.stack([(predicted == g).mean(axis=1) for g in range(4)], axis=1)      # (R, 4)
        ok = np.all((shares >= target / share_factor) & (shares <= target * share_factor), axis=1)
        if not ok.any():
            raise ValueError(f"no offsets on the grid keep every grade's share within a factor "
                             f"{share_factor} of the rubric's {np.round(target, 3).tolist()}")
        kappas = np.where(ok, kappas, -2.0)
    best = np.flatnonzero(kappas >= kappas.max() - 1e-12)
    pick = best[np.argmin(np.abs(combos[best]).sum(1))]
    return tuple(float(x) for x in combos[pick])


def check_disjoint(calibration_keys: Iterable, measured_keys: Iterable) -> None:
    """ValueError unless no calibration pair is a measured pair."""
    shared = set(calibration_keys) & set(measured_keys)
    if shared:
        raise ValueError(f"calibration set shares {len(shared)} pairs with the measured set, "
                         f"e.g. {sorted(shared)[0]}")


# --- few-shot examples and disjoint samples -----------------------------------------

def base_of(prefixed_id: str) -> str:
    """"en:a00p1s1" -> "a00p1s1" (ids are LANG:BASE)."""
    return prefixed_id.split(":", 1)[1]


def disjoint_sample(coll, per_grade: int, seed: int, groups, langs=("en",),
                    exclude_questions=(), exclude_sentences=(), reference_lang: str = "en") -> pd.DataFrame:
    """pipeline.fixed_content_sample restricted to the articles `groups`, without any question
    in `exclude_questions` or sentence in `exclude_sentences` (base ids, so a pair excluded in
    one language is excluded in all), instantiated in `langs`. Adds query and passage texts."""
    from gradedrel.annotation.pipeline import fixed_content_sample

    exclude_questions, exclude_sentences = set(exclude_questions), set(exclude_sentences)
    part = coll.subset(langs=sorted(set(langs) | {reference_lang}), groups=list(groups))
    keep = part.queries.loc[~part.queries["base_id"].isin(exclude_questions), "query_id"]
    # the excluded sentences' own questions go too: their answer sentences are what a template
    # takes as the passage
    gold_base = part.queries["gold_doc_id"].map(base_of)
    keep = keep[~keep.isin(part.queries.loc[gold_base.isin(exclude_sentences), "query_id"])]
    part = part.subset(query_ids=set(keep))
    items = fixed_content_sample(part, per_grade, seed=seed, reference_lang=reference_lang)
    items = items[items["lang"].isin(langs)].reset_index(drop=True)
    assert not items["query_id"].map(base_of).isin(exclude_questions).any()
    assert not items["doc_id"].map(base_of).isin(exclude_sentences).any()
    q_text = coll.queries.set_index("query_id")["text"]
    d_text = coll.corpus.set_index("doc_id")["text"]
    return items.assign(query=items["query_id"].map(q_text), passage=items["doc_id"].map(d_text))


def training_groups(coll) -> list:
    from gradedrel.data.split import split_groups
    return split_groups(coll.queries["group"])["train"]


def few_shot_examples(coll, seed: int = 0, per_grade: int = 1, lang: str = "en",
                      exclude_questions=(), exclude_sentences=()) -> tuple[Example, ...]:
    """`per_grade` examples of each rubric grade from the training split's articles, seeded,
    none with an excluded question or sentence (base ids); in a seeded order."""
    items = disjoint_sample(coll, per_grade, seed, training_groups(coll), (lang,),
                            exclude_questions, exclude_sentences, reference_lang=lang)
    order = np.random.default_rng(seed).permutation(len(items))
    return tuple(Example(items["query"].iat[i], items["passage"].iat[i], int(items["template_grade"].iat[i]))
                 for i in order)


# --- the grader -----------------------------------------------------------------------

def load_model(model_path, n_threads: int = 1, n_ctx: int = 2048, logits_all: bool = False):
    """The GGUF model in this process, through llama_cpu.load_llama (no AMX buffers where
    they crash, after the self-check)."""
    from gradedrel.annotation.llama_cpu import load_llama
    return load_llama(model_path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                      logits_all=logits_all, verbose=False)


@dataclass
class LastTokenGrader:
    """Grades pairs in process from the digit after "[" (one forward pass over the pair's
    tokens; the prefix stays in llama.cpp's cache between pairs). Judgement.raw holds the
    grade, P(0..3) and the digits' vocabulary mass; a mass under `min_mass` gives status
    "no_bracket" (the model would not have written a grade) and no score."""
    llama: object
    model: str
    builder: PromptBuilder = field(default_factory=PromptBuilder)
    offsets: tuple | None = None
    min_mass: float = 0.5
    name: str = ""

    def __post_init__(self):
        self.prompt_version = self.builder.version + ("" if self.offsets is None else
                                                      "+o" + ",".join(f"{o:g}" for o in self.offsets))
        self.name = self.name or f"last-token:{self.model}"
        self.digit_ids = [self._single_token(str(g)) for g in GRADES]

    def _single_token(self, text: str) -> int:
        ids = self.llama.tokenize(text.encode(), add_bos=False, special=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens for this model; the reader needs one")
        return ids[0]

    def logits(self, prompt: str) -> np.ndarray:
        """The last position's logits, evaluating only the tokens after the cached prefix."""
        import llama_cpp

        llama = self.llama
        tokens = llama.tokenize(prompt.encode(), add_bos=True, special=True)
        same = llama.longest_token_prefix(llama.input_ids[:llama.n_tokens], tokens)
        llama.n_tokens = min(same, len(tokens) - 1)        # at least one token to evaluate
        llama.eval(tokens[llama.n_tokens:])
        row = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(llama.n_vocab(),)).copy()

    def reading(self, pair: Pair) -> GradeReading:
        return read_grade(self.logits(self.builder.prompt(pair.query, pair.passage)), self.digit_ids,
                          self.offsets)

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]:
        for pair in pairs:
            r = self.reading(pair)
            raw = f"[{r.grade}] p={','.join(f'{p:.4f}' for p in r.probs)} mass={r.mass:.4f}"
            if r.mass < self.min_mass:
                yield Judgement(pair.query_id, pair.doc_id, None, "no_bracket", raw, r.expected)
            else:
                yield Judgement(pair.query_id, pair.doc_id, r.grade, "ok", raw, r.expected)


def probs_from_raw(raw: str) -> list[float]:
    """P(0..3) back from a LastTokenGrader judgement's raw text."""
    return [float(x) for x in raw.split("p=", 1)[1].split()[0].split(",")]
