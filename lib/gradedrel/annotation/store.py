"""A persistent cache of judgements: one JSON line per graded pair, appended and flushed
as each result arrives, so a killed run resumes and loses or repeats nothing.

Key: (annotator, model, prompt version, query id, doc id). Failed requests are not
stored (a rerun asks again); unparsed answers are, with their raw text. A torn last
line (the process died mid-write) is cut off on open, with a warning; a malformed line
anywhere else is an error naming the file and line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from gradedrel import jsonl_log
from gradedrel.annotation.judgement import Judgement

KEY_FIELDS = ("annotator", "model", "prompt_version", "query_id", "doc_id")


CorruptStoreError = jsonl_log.CorruptLogError


class JudgementStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[tuple, dict] = {}
        for _, row in jsonl_log.read(self.path, required=KEY_FIELDS):
            self._rows[tuple(row[f] for f in KEY_FIELDS)] = row
        self._fh = open(self.path, "a", encoding="utf-8")

    def __len__(self):
        return len(self._rows)

    def __contains__(self, key: tuple) -> bool:
        return key in self._rows

    def get(self, key: tuple) -> dict | None:
        return self._rows.get(key)

    def put(self, annotator, judgement: Judgement, **extra) -> dict:
        row = {"annotator": annotator.name, "model": annotator.model,
               "prompt_version": annotator.prompt_version, **judgement.as_dict(), **extra}
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._rows[tuple(row[f] for f in KEY_FIELDS)] = row
        return row

    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def close(self):
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def store_key(annotator, query_id: str, doc_id: str) -> tuple:
    return (annotator.name, annotator.model, annotator.prompt_version, query_id, doc_id)
