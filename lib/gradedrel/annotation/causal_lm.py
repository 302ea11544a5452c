"""A local causal LM as an annotator, through transformers (Gemma-class models on a GPU;
small ones on the CPU).

The grading prompt goes through the model's chat template (plain text where it has none),
followed by the opening bracket of the answer, "[". The grade is read from the next-token
distribution restricted to the four digits '0'..'3': the most likely digit is the grade,
and the probability-weighted mean is kept as `expected` (a continuous grade, useful for
agreement and AUC). `raw` keeps the four probabilities and the share of the whole
next-token mass they hold (low where the model would rather say something else).
"""
from __future__ import annotations

import json
from typing import Iterable, Iterator

from gradedrel.annotation.judgement import Judgement, Pair
from gradedrel.annotation.rubric import GRADES, GRADING_PROMPT_VERSION, grading_prompt


class CausalLMAnnotator:
    prompt_version = GRADING_PROMPT_VERSION

    def __init__(self, model_name_or_path: str, gguf_file: str | None = None,
                 device: str | None = None, batch_size: int = 4, name: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from gradedrel.config import forbid_in_redraw
        forbid_in_redraw(f"loading the causal LM {model_name_or_path!r}")

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=dtype,
                                                       **kwargs).to(self.device).eval()
        self.batch_size = batch_size
        self.model = f"{model_name_or_path}{'/' + gguf_file if gguf_file else ''}"
        self.name = name or f"causal-lm:{self.model.rsplit('/', 1)[-1]}"
        self.digit_ids = [self._single_token_id(str(g)) for g in GRADES]

    def _single_token_id(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{self.model}: '{text}' is not one token ({ids}); "
                             "grades cannot be read from next-token probabilities")
        return ids[0]

    def prompt(self, pair: Pair) -> str:
        content = grading_prompt(pair.query, pair.passage)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
        else:
            text = content + "\n\nScore: "
        return text + "["

    def grade(self, pairs: Iterable[Pair]) -> Iterator[Judgement]:
        import torch

        pairs = list(pairs)
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start:start + self.batch_size]
            # no truncation: cutting either end would lose the rubric or the answer slot
            enc = self.tokenizer([self.prompt(p) for p in batch], return_tensors="pt",
                                 padding=True, add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                logits = self.lm(**enc).logits[:, -1, :].float()
            full = torch.softmax(logits, dim=-1)[:, self.digit_ids]
            probs = full / full.sum(dim=-1, keepdim=True)
            for pair, p, mass in zip(batch, probs.tolist(), full.sum(dim=-1).tolist()):
                grade = max(GRADES, key=lambda g: p[g])
                expected = sum(g * p[g] for g in GRADES)
                raw = json.dumps({"p": [round(x, 5) for x in p], "digit_mass": round(mass, 5)})
                yield Judgement(pair.query_id, pair.doc_id, grade, "ok", raw, expected)
