# Sourced by run_all.sh and run_tests.sh: make .venv if missing, install the project
# into it whenever pyproject.toml changed, and activate it.
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
    _stamp="$_venv/.gradedrel-installed-$(sha256sum "$_root/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$_stamp" ]; then
        echo "installing gradedrel and its requirements into $_venv ..." >&2
        _pip install -q --upgrade pip
        # torch first, pinned: on these machines 2.13.0 is a CPU build that pip takes from disk.
        # On a GPU machine install a CUDA build of torch into .venv first (see README).
        "$_venv/bin/python" -c "import torch" 2>/dev/null || _pip install -q "torch==2.13.0"
        _pip install -q -e "$_root[test]"
        rm -f "$_venv"/.gradedrel-installed-*
        touch "$_stamp"
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
