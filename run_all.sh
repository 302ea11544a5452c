#!/usr/bin/env bash
# Run the study's notebooks with papermill (./run_all.sh --help).
set -euo pipefail
cd "$(dirname "$0")"
command_line="./run_all.sh${*:+ $*}"

usage() {
    cat <<'EOF'
Usage: ./run_all.sh [--profile NAME] [--recompute | --verify] [--only NN[,NN...]] [--keep-going]
                    [-p KEY VALUE]... [-y YAML]...

Runs the study's notebooks (notebooks/NN_*.ipynb) in order with papermill.

  (no option)       redraw every table and figure of the xquad profile from its stored
                    results: no model is loaded, no server started, nothing trained
  --profile NAME    smoke | xquad | xquad-full | paper (default xquad)
  --recompute       recompute what the notebooks store, instead of reading it
  --verify          recompute a cheap subset of each notebook's numbers and compare them
                    with data/expected/PROFILE/ within stated tolerances; exits non-zero
                    on a difference
  --only NN[,NN]    these notebooks only, by exact two-digit number (e.g. --only 03 or
                    --only 00,06)
  -p KEY VALUE      a notebook parameter, or any profile key (passed in `config`); a key
                    that sets a profile key only with --recompute or --verify (a redraw
                    draws what the profile's runs stored)
  -y YAML           several at once, e.g. -y 'langs: [en, de]'
  --keep-going      after a notebook fails, run the others, then name every one that failed
  -h, --help        this text

Rendered notebooks go to notebooks/rendered/PROFILE/ (a verification's to
notebooks/rendered/verify-PROFILE/), tables to data/results/PROFILE/,
figures to figures/PROFILE/; the rendered notebooks also as a static HTML site in
site/PROFILE/ (index.html; ignored by git), and on the xquad profile the README's results
table from the claims tables. Makes .venv and installs what it needs on first use.
EOF
}

fail() { echo "run_all.sh: $*" >&2; exit 2; }
profile=xquad
mode=redraw
only=""
only_set=""
checks=()
keep_going=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) [ $# -ge 2 ] || fail "--profile needs a name (see --help)"; profile="$2"; shift 2 ;;
        --recompute) mode=recompute; shift ;;
        --verify) mode=verify; shift ;;
        --keep-going) keep_going=1; shift ;;
        --only) [ $# -ge 2 ] || fail "--only needs notebook numbers (see --help)"; only="$2"; only_set=1; shift 2 ;;
        -p) [ $# -ge 3 ] || fail "-p needs a KEY and a VALUE (see --help)"; checks+=(-p "$2" "$3"); shift 3 ;;
        -y) [ $# -ge 2 ] || fail "-y needs a YAML mapping (see --help)"; checks+=(-y "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) fail "unknown argument $1 (see --help)" ;;
    esac
done

check() {   # python [extra arguments]: the notebooks to run, or a message and exit 2
    "$1" -m gradedrel.config check --profile "$profile" --mode "$mode" ${only_set:+--only "$only"} \
        ${checks[@]+"${checks[@]}"} "${@:2}"
}
# Before anything is installed or written: the argument check needs only the standard library.
first_plan="$(PYTHONPATH="$PWD/lib" check python3 --lenient-yaml)" || exit 2
# notebook 01 recomputing starts the local LLM: only then is llama.cpp built (env.sh)
if [ "$mode" = recompute ] && grep -q '/01_annotation.ipynb' <<<"$first_plan"; then
    export GRADEDREL_EXTRAS="${GRADEDREL_EXTRAS:+$GRADEDREL_EXTRAS,}llm"
fi
source ./env.sh
plan="$(check python)" || exit 2

# Progress bars would fill the rendered notebooks with carriage returns; the kernel's notices
# below are not errors (the TCP notice is jupyter_client's on every start; KeyboardInterrupt
# is how papermill stops a finished kernel).
export TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 GRADEDREL_COMMAND="$command_line"
quiet() {
    grep -v -e 'Kernel is running over TCP without encryption' \
            -e 'KeyboardInterrupt caught in kernel' -e '^\s*$' >&2 || true
}
out_dir="notebooks/rendered/$profile"
# a verification renders beside the committed renderings, not over them (ignored by git)
[ "$mode" = verify ] && out_dir="notebooks/rendered/verify-$profile"
start=$(date +%s)
# one process runs every notebook in turn (papermill's API), each in its own kernel;
# PAPERMILL_LOG_OUTPUT=1: cell outputs to stderr as they come (airgap/run.sh)
python -m gradedrel.results render --out-dir "$out_dir" --profile "$profile" --mode "$mode" \
    ${PAPERMILL_LOG_OUTPUT:+--log-output} ${keep_going:+--keep-going} <<<"$plan" 2> >(quiet) || exit $?
echo "rendered notebooks in $out_dir ($(( $(date +%s) - start )) s)" >&2
# the rendered notebooks as static HTML, one page each and an index (site/ is ignored by git)
python -m gradedrel.site "$out_dir" "site/${out_dir##*/}" "data/results/$profile" 2> >(quiet) || exit $?
# the README's results table reads the xquad claims tables (data/results/xquad/NN_claims.csv)
if [ "$profile" = xquad ] && [ "$mode" != verify ]; then
    python -m gradedrel.claims readme xquad 2> >(quiet) || exit $?
fi
