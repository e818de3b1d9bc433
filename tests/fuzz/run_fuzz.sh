#!/bin/sh
# run_fuzz.sh FUZZER CORPUS SECONDS: a time-bounded libFuzzer run that
# starts from the checked-in corpus and writes new finds to a scratch
# folder (the checked-in corpus is never modified).
set -eu
fuzzer=$1 corpus=$2 secs=$3
scratch=$(mktemp -d /tmp/am-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
"$fuzzer" -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$scratch/" "$scratch" "$corpus" 2>&1 | tail -n 5
