#!/usr/bin/env bash
# The one GPU call behind RESULTS.md's GPU section: airgap/run.sh bench twice, on a node with
# .airgap/ beside the tree (airgap/pack.sh made it), under one deadline:
#
#   OUT=DIR bench/gpu_run.sh
#
#   phase 1  every setting but ours+compile, both models, training and encoding:
#            bench/results/<date>-<tag>.json                       (DIR/a: airgap/run.sh's output)
#   phase 2  ours+compile, training only, large shape first, in what is left of the deadline:
#            bench/results/<date>-<tag>-compile.json               (DIR/b)
#
# Compiling costs minutes before the first timed step and would be paid per model; run in the
# same call as phase 1 it could leave no time for the settings that need none. The benchmark
# rewrites its record after every row, so a phase stopped at its budget keeps what it measured.
#
# Environment: BENCH_DEADLINE (seconds for both phases, default 470), BENCH_PHASE1 (phase 1's
# budget, default 300), BENCH_TAG (default NVIDIA_H200), BENCH_EXTRA (appended to both phases'
# arguments; the last of a repeated option wins: a CPU rehearsal passes tiny sizes here).
# airgap/unpack.sh DIR/a and DIR/b bring the records into a checkout.
set -u
cd "$(dirname "$0")/.."
: "${OUT:?OUT: where the results go}"
t0=$(date +%s)
deadline=${BENCH_DEADLINE:-470}
day=$(date +%F)
tag=${BENCH_TAG:-NVIDIA_H200}
extra=${BENCH_EXTRA:-}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv

OUT="$OUT/a" AIRGAP_BUDGET=${BENCH_PHASE1:-300} \
    BENCH_ARGS="--settings plain,bf16,bf16+bucketed,ours --out bench/results/$day-$tag.json $extra" \
    airgap/run.sh bench
rc1=$?

left=$(( deadline - ($(date +%s) - t0) ))
echo "== gpu_run: phase 1 exit $rc1 after $(( $(date +%s) - t0 ))s; phase 2 gets ${left}s"
OUT="$OUT/b" AIRGAP_BUDGET=$left AIRGAP_MIN_STAGE=60 \
    BENCH_ARGS="--models large,small --settings ours+compile --tasks train --out bench/results/$day-$tag-compile.json $extra" \
    airgap/run.sh bench
rc2=$?
echo "== gpu_run: phase 2 exit $rc2; $(( $(date +%s) - t0 ))s in all"
exit $(( rc1 || rc2 ))
