"""A result store for fine-tuning sweeps: one record per configuration, per-query metrics
beside it.

  FOLDER/runs.jsonl                 one JSON line per attempt: the configuration (model,
                                    languages, tau, size, size reading, seed, annotator,
                                    recipe, evaluation), its hash, status "finished" or
                                    "failed" (with the error), git commit, library
                                    versions, device, timings
  FOLDER/per_query/HASH.parquet     the finished run's per-query metrics (query_lang,
                                    doc_lang, query_id, measure, value)

A record is appended only when its run ends, after its per-query file is in place, so an
interrupted sweep leaves no half-written configuration behind; the latest line per hash
wins. A sweep skips hashes whose latest status is "finished" and retries failed ones. A
torn last line is repaired on reading; a corrupt line elsewhere is an error that names it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradedrel import jsonl_log
from gradedrel.paths import written_aside

FINISHED, FAILED = "finished", "failed"
PER_QUERY_COLUMNS = ["query_lang", "doc_lang", "query_id", "measure", "value"]


class RunStore:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.index = self.folder / "runs.jsonl"
        self.per_query_dir = self.folder / "per_query"

    def __repr__(self) -> str:
        return f"RunStore({str(self.folder)!r})"

    # --- reading ---------------------------------------------------------------------

    def attempts(self) -> list[dict]:
        """Every record, oldest first. A torn last line (a killed writer) is cut off with a
        warning, and its configuration runs again; a malformed line elsewhere is an error
        naming the file and line (jsonl_log)."""
        return [record for _, record in jsonl_log.read(self.index, required=("config_hash", "status"))]

    def latest(self) -> dict[str, dict]:
        """The latest record of each configuration hash."""
        return {r["config_hash"]: r for r in self.attempts()}

    def status(self, config_hash: str) -> str | None:
        record = self.latest().get(config_hash)
        return record["status"] if record else None

    def is_finished(self, config_hash: str) -> bool:
        return (self.status(config_hash) == FINISHED
                and self.per_query_path(config_hash).exists())

    def records(self, status: str | None = FINISHED) -> pd.DataFrame:
        """Latest records as a table, configuration fields flattened into columns."""
        rows = [r for r in self.latest().values() if status is None or r["status"] == status]
        if not rows:
            return pd.DataFrame(columns=["config_hash", "status"])
        return pd.json_normalize(rows, sep=".")

    def per_query_path(self, config_hash: str) -> Path:
        return self.per_query_dir / f"{config_hash}.parquet"

    def per_query(self, config_hash: str) -> pd.DataFrame:
        path = self.per_query_path(config_hash)
        if not path.exists():
            raise KeyError(f"no per-query metrics stored for configuration {config_hash}")
        return pd.read_parquet(path).astype({"query_lang": str, "doc_lang": str,
                                             "query_id": str, "measure": str})

    # --- writing ---------------------------------------------------------------------

    def _append(self, record: dict) -> None:
        jsonl_log.append(self.index, record)   # locked: several workers may append at once

    def write_finished(self, record: dict, per_query: pd.DataFrame) -> None:
        missing = [c for c in PER_QUERY_COLUMNS if c not in per_query.columns]
        if missing:
            raise ValueError(f"per-query metrics lack columns {missing}")
        if "config_hash" not in record:
            raise ValueError("a record needs its config_hash")
        path = self.per_query_path(record["config_hash"])
        frame = per_query[PER_QUERY_COLUMNS].astype(
            {"query_lang": "category", "doc_lang": "category", "measure": "category",
             "value": "float32"})
        with written_aside(path) as part:
            frame.to_parquet(part, index=False, compression="zstd")
        self._append({**record, "status": FINISHED})

    def write_failed(self, record: dict, error: str) -> None:
        if "config_hash" not in record:
            raise ValueError("a record needs its config_hash")
        self._append({**record, "status": FAILED, "error": error})
