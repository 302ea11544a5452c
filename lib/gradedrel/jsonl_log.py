"""Append-only JSON-lines logs, as the judgement store and the run store keep them.

Each record is one line, appended under an exclusive file lock (several processes may write
at once) and fsync'd before the call returns. Reading repairs what a killed writer can leave
behind and nothing else:

  a torn last line (no newline at the end)   cut off, with a warning; the record it held
                                             was never acknowledged, so its work reruns
  a line that is not a JSON object elsewhere  an error naming the file and the line: that
                                             is corruption, not an interrupted write
"""
from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path


class CorruptLogError(ValueError):
    pass


def append(path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read(path, required=()) -> list[tuple[int, dict]]:
    """(line number, record) for every line, oldest first, after cutting a torn last line.
    A record lacking a `required` field is corrupt too."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "r+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            raw = fh.read()
            if raw and not raw.endswith(b"\n"):
                torn = raw[raw.rfind(b"\n") + 1:]
                warnings.warn(f"{path}: dropping a torn last line ({len(torn)} bytes) left by an "
                              "interrupted write; its work will run again")
                raw = raw[:len(raw) - len(torn)]
                fh.truncate(len(raw))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    out = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorruptLogError(f"{path}:{n}: not a JSON line ({err})") from None
        if not isinstance(record, dict) or any(f not in record for f in required):
            raise CorruptLogError(f"{path}:{n}: not a record with fields {list(required)}")
        out.append((n, record))
    return out
