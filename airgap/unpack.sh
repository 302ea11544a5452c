#!/usr/bin/env bash
# Unpack what airgap/run.sh left in its $OUT, copied back from the node, into this checkout:
#
#   airgap/unpack.sh DIR      DIR: the folder the node's $OUT was copied back to
#
# DIR holds results.tar.gz (or results.tar.gz.partNN), summary.txt and airgap_run.log. Only
# paths under data/results/, figures/, notebooks/rendered/ and bench/ are accepted; files
# there are replaced by the node's versions (the run store's runs.jsonl included: the
# node appended to the copy it was sent).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then sed -n '2,9p' "$0"; exit 2; fi
dir="$(cd "$dir" && pwd)"

[ -f "$dir/summary.txt" ] && { echo "-- summary.txt"; cat "$dir/summary.txt"; }
shopt -s nullglob
parts=("$dir"/results.tar.gz.part*)
if [ -f "$dir/results.tar.gz" ]; then
    parts=("$dir/results.tar.gz")
elif [ ${#parts[@]} -eq 0 ]; then
    echo "airgap unpack: no results.tar.gz in $dir (see $dir/airgap_run.log)" >&2
    exit 1
fi
list="$(cat "${parts[@]}" | tar -tzf -)"
bad="$(grep -Ev '^(data/results|figures|notebooks/rendered|bench)/' <<<"$list" || true)"
bad+="$(grep -E '(^|/)\.\.(/|$)' <<<"$list" || true)"
if [ -n "$bad" ]; then
    echo "airgap unpack: refusing paths outside the result folders:" >&2
    echo "$bad" >&2
    exit 1
fi
cat "${parts[@]}" | tar -xzf - -C "$root" --no-same-owner
echo "-- unpacked $(wc -l <<<"$list") files into $root"
sed "s|/[^/]*$||" <<<"$list" | sort | uniq -c
