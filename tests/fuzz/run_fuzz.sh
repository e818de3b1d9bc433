#!/bin/sh
# run_fuzz.sh FUZZER CORPUS SECONDS: a time-bounded libFuzzer run that
# starts from the checked-in corpus and writes new finds to a scratch
# folder (the checked-in corpus is never modified).
set -eu
fuzzer=$1 corpus=$2 secs=$3
scratch=$(mktemp -d /tmp/am-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/new"
# the fuzzer's own status decides (a pipe into tail would hide a crash)
rc=0
"$fuzzer" -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$scratch/" "$scratch/new" "$corpus" >"$scratch/log" 2>&1 || rc=$?
tail -n 5 "$scratch/log"
if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|SUMMARY|#[0-9]+ 0x.* in (am_|LLVMFuzzer)" "$scratch/log" | head -20
    for f in "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-*; do
        [ -f "$f" ] && { echo "input ($f):"; od -An -tx1 "$f" | head -8; }
    done
fi
# libFuzzer reports a crash with status 77, which meson reads as "skipped":
# every failure is a 1 here (a crash hidden as a skip on b04ebd1)
[ "$rc" -eq 0 ] || exit 1
exit 0
