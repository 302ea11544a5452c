"""A result store for fine-tuning sweeps: one record per configuration, per-query metrics
beside it.

  FOLDER/runs.jsonl                 one JSON line per attempt: the configuration (model,
                                    languages, tau, size, size reading, seed, annotator,
                                    recipe, evaluation), its hash, status "finished" or
                                    "failed" (with the error), git commit, library
                                    versions, device, timings
  FOLDER/per_query/HASH.parquet     the finished run's per-query metrics (query_lang,
                                    doc_lang, query_id, measure, value)
  FOLDER/ranked/HASH.parquet        where the sweep asks for them (SweepSetup.ranked_depth):
                                    its ranked lists (query_lang, doc_lang, query_id, doc_id,
                                    rank), so new relevance judgements need no retraining

A record is appended only when its run ends, after its per-query file is in place, so an
interrupted sweep leaves no half-written configuration behind. A finished configuration is
final: its per-query file and record are written under the log's lock, only if the store
does not hold it finished already (two processes that ran the same configuration leave one
record), and a failure recorded after it is refused too. Otherwise the latest line per hash
wins; reading keeps a finished record over any later line of its hash, and warns of hashes
finished more than once (a store written before the lock). A sweep skips hashes whose
status is "finished" and retries failed ones. A torn last line is repaired on reading and
before each append; a corrupt line elsewhere is an error that names it.
"""
from __future__ import annotations

import warnings
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
        """One record per configuration hash: its latest finished record if it has one (a
        finished run is final), else its latest record."""
        out, finished = {}, {}
        for r in self.attempts():
            h = r["config_hash"]
            if r["status"] == FINISHED:
                finished[h] = finished.get(h, 0) + 1
            elif finished.get(h):
                continue
            out[h] = r
        twice = sorted(h for h, n in finished.items() if n > 1)
        if twice:
            warnings.warn(f"{self.index}: {len(twice)} configuration(s) finished more than once "
                          f"(e.g. {twice[0]}): a run that ran twice; the latest of each is used")
        return out

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

    def ranked_path(self, config_hash: str) -> Path:
        return self.folder / "ranked" / f"{config_hash}.parquet"

    @staticmethod
    def _read(path: Path, what: str, config_hash: str, text_columns) -> pd.DataFrame:
        if not path.exists():
            raise KeyError(f"no {what} stored for configuration {config_hash}")
        return pd.read_parquet(path).astype({c: str for c in text_columns})

    def ranked(self, config_hash: str) -> pd.DataFrame:
        return self._read(self.ranked_path(config_hash), "ranked lists", config_hash,
                          ("query_lang", "doc_lang", "query_id", "doc_id"))

    def per_query(self, config_hash: str) -> pd.DataFrame:
        return self._read(self.per_query_path(config_hash), "per-query metrics", config_hash,
                          ("query_lang", "doc_lang", "query_id", "measure"))

    # --- writing ---------------------------------------------------------------------

    def write_finished(self, record: dict, per_query: pd.DataFrame,
                       ranked: pd.DataFrame | None = None) -> bool:
        """Store a finished run: its per-query file (and ranked lists), then its record. False, and nothing
        written, when the store already holds the configuration finished (another process
        ran it too); the check and the writes hold the log's lock."""
        missing = [c for c in PER_QUERY_COLUMNS if c not in per_query.columns]
        if missing:
            raise ValueError(f"per-query metrics lack columns {missing}")
        if "config_hash" not in record:
            raise ValueError("a record needs its config_hash")
        path = self.per_query_path(record["config_hash"])
        frame = per_query[PER_QUERY_COLUMNS].astype(
            {"query_lang": "category", "doc_lang": "category", "measure": "category",
             "value": "float32"})
        with jsonl_log.lock(self.index):     # reentrant: append takes it again
            if self.is_finished(record["config_hash"]):
                return False
            if ranked is not None:      # written_aside makes the folder
                with written_aside(self.ranked_path(record["config_hash"])) as part:
                    ranked.to_parquet(part, index=False, compression="zstd")
            with written_aside(path) as part:
                frame.to_parquet(part, index=False, compression="zstd")
            jsonl_log.append(self.index, {**record, "status": FINISHED})
        return True

    def write_failed(self, record: dict, error: str) -> bool:
        """Record a failed attempt; False, and nothing written, when the configuration is
        finished in the store already (another process ran it)."""
        if "config_hash" not in record:
            raise ValueError("a record needs its config_hash")
        with jsonl_log.lock(self.index):
            if self.is_finished(record["config_hash"]):
                return False
            jsonl_log.append(self.index, {**record, "status": FAILED, "error": error})
        return True
