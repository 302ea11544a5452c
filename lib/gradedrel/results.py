"""Result tables, figures and expected numbers, one folder per profile.

data/results/PROFILE/NAME.csv    tables a notebook computed (committed for `xquad`)
data/results/PROFILE/NAME.json   what a run recorded about itself (device, time, model)
data/expected/PROFILE/NAME.csv   numbers a rerun must reproduce (pyserini-2CR style)
figures/PROFILE/NAME.{png,pdf}   figures, redrawn from the tables in seconds
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone

import pandas as pd

from gradedrel.paths import DATA_DIR, FIGURES_DIR, REPO_ROOT, RESULTS_DIR


def table_path(profile: str, name: str):
    return RESULTS_DIR / profile / f"{name}.csv"


def have_table(profile: str, name: str) -> bool:
    return table_path(profile, name).exists()


def save_table(df: pd.DataFrame, profile: str, name: str, index: bool = False):
    path = table_path(profile, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=index, float_format="%.6g")
    return path


def load_table(profile: str, name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(table_path(profile, name), **kwargs)


def save_figure(fig, profile: str, name: str):
    folder = FIGURES_DIR / profile
    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", bbox_inches="tight", dpi=150)
    return folder / f"{name}.png"


def git_commit() -> str | None:
    """This checkout's short commit; a copy of the tree without .git (an air-gapped GPU node)
    is told it by $GRADEDREL_GIT_COMMIT."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return commit or os.environ.get("GRADEDREL_GIT_COMMIT") or None


def run_record(**extra) -> dict:
    """Provenance of a run: when, where, which code and libraries."""
    import sentence_transformers
    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else (
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device, "git_commit": git_commit(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__, **extra}


def save_record(record: dict, profile: str, name: str):
    path = RESULTS_DIR / profile / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_record(profile: str, name: str) -> dict:
    return json.loads((RESULTS_DIR / profile / f"{name}.json").read_text())


def check_expected(observed: pd.Series, profile: str, name: str, tolerance: float = 0.01):
    """Compare observed values (indexed like the expected file's `key` column) with
    data/expected/PROFILE/NAME.csv; returns the comparison table, or None when no
    expectations are stored for this profile. Raises if any value is off by more
    than `tolerance`."""
    path = DATA_DIR / "expected" / profile / f"{name}.csv"
    if not path.exists():
        return None
    expected = pd.read_csv(path, dtype={"key": str}).set_index("key")["expected"]
    table = pd.DataFrame({"expected": expected, "observed": observed.reindex(expected.index)})
    table["diff"] = table["observed"] - table["expected"]
    table["status"] = ["OK" if abs(d) <= tolerance else "FAIL" for d in table["diff"].fillna(1e9)]
    failed = table[table["status"] == "FAIL"]
    if len(failed):
        raise AssertionError(f"{len(failed)} values differ from {path} by more than "
                             f"{tolerance}:\n{failed}")
    return table
