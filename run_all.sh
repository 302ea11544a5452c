#!/usr/bin/env bash
# Execute the study's notebooks (notebooks/NN_*.ipynb) in order with papermill.
#
#   ./run_all.sh                       the default profile (xquad), reusing stored results
#   ./run_all.sh --profile smoke       CPU minutes: en+de, a few dozen queries
#   ./run_all.sh --recompute           recompute instead of redrawing from data/results/
#   ./run_all.sh --only 00 -p max_queries 100 -y 'langs: [en, de]'
#                                      one notebook; -p KEY VALUE / -y YAML set parameters
#
# Rendered notebooks go to notebooks/rendered/PROFILE/, tables to data/results/PROFILE/,
# figures to figures/PROFILE/. Makes .venv and installs what it needs on first use.
set -euo pipefail
cd "$(dirname "$0")"

profile=xquad
recompute=False
only=""
params=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --recompute) recompute=True; shift ;;
        --only) only="$2"; shift 2 ;;
        -p) params+=(-p "$2" "$3"); shift 3 ;;
        -y) params+=(-y "$2"); shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

source ./env.sh
# progress bars would fill the rendered notebooks with carriage-return lines
export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
out_dir="notebooks/rendered/$profile"
mkdir -p "$out_dir"
shopt -s nullglob
for nb in notebooks/[0-9][0-9]_*.ipynb; do
    name="$(basename "$nb")"
    [ -n "$only" ] && [[ "$name" != "$only"* ]] && continue
    echo "== $name [$profile]" >&2
    # PAPERMILL_LOG_OUTPUT=1: cell outputs to stderr as they come (airgap/run.sh)
    if ! papermill "$nb" "$out_dir/$name" --cwd notebooks --kernel python3 \
            ${PAPERMILL_LOG_OUTPUT:+--log-output} \
            -p profile "$profile" -p recompute "$recompute" "${params[@]}"; then
        echo "run_all.sh: notebook $name failed (profile $profile); see $out_dir/$name" >&2
        exit 1
    fi
done
echo "rendered notebooks in $out_dir" >&2
