"""Append-only JSON-lines logs, as the judgement store and the run store keep them.

Each record is one line, appended under an exclusive lock (filelock.FileLock on a hidden
`.NAME.lock` beside the log: several processes may write at once) and fsync'd before the
call returns. A log that ends with a newline is read without the lock (an append is one
write of one line: a reader sees whole lines, or a tail without its newline). Reading and
appending repair what a killed writer can leave behind, under the lock, and nothing else:

  a torn last line (no newline at the end)   cut off, with a warning; the record it held
                                             was never acknowledged, so its work reruns
  a line that is not a JSON object elsewhere  an error naming the file and the line: that
  (invalid UTF-8 and NUL bytes included)     is corruption, not an interrupted write
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from filelock import FileLock


class CorruptLogError(ValueError):
    pass


def lock(path) -> FileLock:
    """The log's lock: reentrant, one instance per path in a process, so a caller may hold
    it around a read-check-append (RunStore.write_finished) that takes it again inside."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(f".{path.name}.lock"), is_singleton=True)


def _cut_torn_tail(fh, path: Path) -> None:
    """Under the lock, on a file opened for reading and writing: truncate a last line that
    has no newline (a writer killed mid-line), with a warning that shows what is dropped."""
    size = fh.seek(0, os.SEEK_END)
    if not size:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    raw = fh.read()
    keep = raw.rfind(b"\n") + 1
    torn, line_number = raw[keep:], raw.count(b"\n") + 1
    warnings.warn(f"{path}:{line_number}: dropping a torn last line ({len(torn)} bytes, "
                  f"starting {torn[:80]!r}) left by an interrupted write; its work will run again")
    fh.truncate(keep)
    fh.flush()
    os.fsync(fh.fileno())


def append(path, record: dict) -> None:
    """Append `record` as one line, after cutting a torn last line (else the record would
    be glued onto the fragment and the log would no longer load)."""
    path = Path(path)
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode("utf-8")
    with lock(path), open(path, "a+b") as fh:
        _cut_torn_tail(fh, path)
        fh.write(line)          # "a" mode: at the end, whatever the position
        fh.flush()
        os.fsync(fh.fileno())


def read(path, required=()) -> list[tuple[int, dict]]:
    """(line number, record) for every line, oldest first, after cutting a torn last line.
    A record lacking a `required` field is corrupt too."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):      # torn, or an append under way: look again, locked
        with lock(path), open(path, "r+b") as fh:
            _cut_torn_tail(fh, path)
            fh.seek(0)
            raw = fh.read()
    out = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise CorruptLogError(f"{path}:{n}: not UTF-8 text ({err.reason} at byte {err.start}: "
                                  f"{line[:80]!r})") from None
        except json.JSONDecodeError as err:
            raise CorruptLogError(f"{path}:{n}: not a JSON line ({err})") from None
        if not isinstance(record, dict) or any(f not in record for f in required):
            raise CorruptLogError(f"{path}:{n}: not a record with fields {list(required)}")
        out.append((n, record))
    return out
