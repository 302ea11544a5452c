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
import warnings
from pathlib import Path

from gradedrel.annotation.judgement import Judgement

KEY_FIELDS = ("annotator", "model", "prompt_version", "query_id", "doc_id")


class CorruptStoreError(ValueError):
    pass


class JudgementStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: dict[tuple, dict] = {}
        if self.path.exists():
            self._load()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _load(self):
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete = lines[:-1] if not raw.endswith(b"\n") else lines
        if not raw.endswith(b"\n") and lines[-1]:
            warnings.warn(f"{self.path}: dropping a torn last line ({len(lines[-1])} bytes) "
                          "left by an interrupted run; that pair will be graded again")
            with open(self.path, "r+b") as fh:
                fh.truncate(len(raw) - len(lines[-1]))
        for n, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = tuple(row[f] for f in KEY_FIELDS)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise CorruptStoreError(f"{self.path}:{n}: not a judgement row ({err})") from None
            self._rows[key] = row

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
