#!/usr/bin/env bash
# Unpack what bench/device_run.sh left in a device call's $OUT into this checkout:
#
#   bench/device_unpack.sh DIR      DIR: the folder the call's files came back to
#
# DIR holds results.tar.gz (or results.tar.gz.partNN), summary.txt and device_run.log. Only
# paths under data/results/, figures/, notebooks/rendered/ and bench/ are accepted; files
# there are replaced by the device's versions (the run store's runs.jsonl included: the
# device appended to the copy it was sent).
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
    echo "device_unpack: no results.tar.gz in $dir (see $dir/device_run.log)" >&2
    exit 1
fi
list="$(cat "${parts[@]}" | tar -tzf -)"
bad="$(grep -Ev '^(data/results|figures|notebooks/rendered|bench)/' <<<"$list" || true)"
bad+="$(grep -E '(^|/)\.\.(/|$)' <<<"$list" || true)"
if [ -n "$bad" ]; then
    echo "device_unpack: refusing paths outside the result folders:" >&2
    echo "$bad" >&2
    exit 1
fi
cat "${parts[@]}" | tar -xzf - -C "$root" --no-same-owner
echo "-- unpacked $(wc -l <<<"$list") files into $root"
sed "s|/[^/]*$||" <<<"$list" | sort | uniq -c
