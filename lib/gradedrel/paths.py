"""Where the project keeps things. Override the data root with $GRADEDREL_DATA and the
figures with $GRADEDREL_FIGURES (the main job's test redraws into a temporary copy)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("GRADEDREL_DATA", REPO_ROOT / "data"))
CACHE_DIR = DATA_DIR / "cache"          # embeddings, compiled helpers (not committed)
MODELS_DIR = DATA_DIR / "models"        # converted / pruned checkpoints (not committed)
RESULTS_DIR = DATA_DIR / "results"      # result tables (committed)
FIGURES_DIR = Path(os.environ.get("GRADEDREL_FIGURES", REPO_ROOT / "figures"))
SHARED_DIR = REPO_ROOT.parent / "shared"   # the team's shared folder beside the checkout
