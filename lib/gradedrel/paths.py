"""Where the project keeps things. Override the data root with $GRADEDREL_DATA and the
figures with $GRADEDREL_FIGURES (the main job's test redraws into a temporary copy)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("GRADEDREL_DATA", REPO_ROOT / "data"))
CACHE_DIR = DATA_DIR / "cache"          # embeddings, compiled helpers (not committed)
MODELS_DIR = DATA_DIR / "models"        # converted / pruned checkpoints (not committed)
RESULTS_DIR = DATA_DIR / "results"      # result tables (committed)
FIGURES_DIR = Path(os.environ.get("GRADEDREL_FIGURES", REPO_ROOT / "figures"))
SHARED_DIR = REPO_ROOT.parent / "shared"   # the team's shared folder beside the checkout


@contextlib.contextmanager
def written_aside(target, suffix: str = ""):
    """Yield a path beside `target`, private to this process, to write the file to; when
    the block ends it is renamed onto `target` (atomic on one file system), and removed if
    the block raised. Concurrent writers (test workers, packed sweep workers) never collide
    and no reader ever sees a half-written `target`. `suffix` ends the private name, for
    writers that insist on one (numpy's .npy)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.part-{os.getpid()}{suffix}")
    try:
        yield part
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
