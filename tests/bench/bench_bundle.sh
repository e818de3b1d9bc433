#!/bin/bash
# Sneakernet benchmark: the NNCP baseline's workload carried A -> folder -> B
# by `agent-mesh bundle sync`, and, where the Debian package nncp is
# installed, NNCP's own xfer + toss on the same workload in the same run
# (../shared/bench/nncp_baseline.sh). Prints figures; asserts nothing.
#
# usage: tests/bench/bench_bundle.sh [BUILD_DIR]     (default build/)
#   N_SMALL=2000 N_BIG=200 (the baseline's workload); NNCP=0 to skip NNCP
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
FILL=$BUILD/tests/system/fill_store
CORE=$BUILD/tests/bench/bench_core
N_SMALL=${N_SMALL:-2000}
N_BIG=${N_BIG:-200}
NNCP=${NNCP:-1}
T=$(mktemp -d /tmp/am-bench-bundle-XXXXXX)
trap 'rm -rf "$T"' EXIT
for x in "$AM" "$FILL" "$CORE"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done

read -r RAW CORES < <("$CORE" --raw-verify)
echo "== agent_mesh bundle benchmark: $N_SMALL x 1 KiB and $N_BIG x 1 MiB, A -> folder -> B, $CORES cores"
printf '%-40s %10.0f /s  (baseline, one core)\n' "raw libsodium verify, 1 KiB body" "$RAW"

declare -A RES
run() { # NAME N SIZE
    local name=$1 n=$2 size=$3 d=$T/$1
    mkdir -p "$d/stick"
    "$AM" init --store "$d/a" >/dev/null 2>&1
    local b; b=$("$AM" init --store "$d/b" 2>/dev/null)
    "$FILL" "$d/a" "$n" "$size" "$b"
    sync
    local t0 t1 t2 t3
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$d/t.export" "$AM" bundle sync --store "$d/a" "$d/stick" >/dev/null
    t1=$EPOCHREALTIME
    sync
    t2=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$d/t.import" "$AM" bundle sync --store "$d/b" --import-only "$d/stick" >"$d/import.out"
    t3=$EPOCHREALTIME
    local got; got=$("$AM" store stats --store "$d/b" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['inbox_unacked'])")
    [ "$got" -eq "$n" ] || { echo "ERROR: B received $got of $n" >&2; exit 1; }
    local ew er iw ir bytes tw
    er=$(tail -n 1 "$d/t.export"); ir=$(tail -n 1 "$d/t.import")
    ew=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    iw=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.4f", b - a }')
    tw=$(awk -v a="$ew" -v b="$iw" 'BEGIN { printf "%.4f", a + b }')
    bytes=$(find "$d/stick/AGENTMESH/bundles" -name '*.amb' -printf '%s\n' | awk '{s+=$1} END {print s}')
    awk -v name="$name" -v n="$n" -v size="$size" -v ew="$ew" -v iw="$iw" -v er="$er" -v ir="$ir" \
        -v bytes="$bytes" -v raw="$RAW" -v cores="$CORES" 'BEGIN {
        mb = n * size / 1e6; tw = ew + iw
        printf "%-7s export  %7.3f s %9.0f msg/s %8.1f MB/s   peak RSS %6.1f MiB\n", name, ew, n/ew, mb/ew, er/1024
        printf "%-7s import  %7.3f s %9.0f msg/s %8.1f MB/s   peak RSS %6.1f MiB\n", name, iw, n/iw, mb/iw, ir/1024
        printf "%-7s total   %7.3f s %9.0f msg/s %8.1f MB/s   %.0f bytes on the stick per message (payload %d)\n", name, tw, n/tw, mb/tw, bytes/n, size
        if (size <= 4096) printf "%-7s import = %.2f x cores x raw verify (target >= 0.80; includes the receipts for all %d)\n", name, (n/iw)/(raw*cores), n
    }'
    RES[$name]="$n $size $tw"
}
run small "$N_SMALL" 1024
run big "$N_BIG" 1048576

BASELINE=$ROOT/../shared/bench/nncp_baseline.sh
if [ "$NNCP" = 1 ] && command -v nncp-xfer >/dev/null && [ -f "$BASELINE" ]; then
    echo "== NNCP $(nncp-xfer -version 2>&1 | head -n 1) on the same workload (nncp_baseline.sh, one rep)"
    BASE=/tmp/nncp-bench-am REPS=1 MICRO_K=2 N_SMALL="$N_SMALL" N_BIG="$N_BIG" WORKLOADS="file1k file1m" \
        bash "$BASELINE" > "$T/nncp.log" 2>&1 || { echo "nncp baseline failed:"; tail -n 20 "$T/nncp.log"; exit 1; }
    for w in file1k:small file1m:big; do
        nw=${w%%:*} ours=${w##*:}
        read -r n size tw <<<"${RES[$ours]}"
        awk -F'\t' -v w="$nw" -v n="$n" -v size="$size" -v tw="$tw" -v ours="$ours" '
            $1 == w && ($2 == "xfer-tx" || $2 == "xfer-rx" || $2 == "toss(xfer)") { t += $4 }
            END {
                mb = n * size / 1e6
                printf "%-7s NNCP xfer-tx + xfer-rx + toss %7.3f s %9.0f msg/s %8.1f MB/s\n", ours, t, n/t, mb/t
                printf "%-7s agent_mesh / NNCP: %.1f x messages/s, %.2f x MB/s (targets: >= 10 x msg/s for 1 KiB, >= 1 x MB/s for 1 MiB)\n", ours, (n/tw)/(n/t), (mb/tw)/(mb/t)
            }' /tmp/nncp-bench-am/results.tsv
    done
    rm -rf /tmp/nncp-bench-am
else
    echo "== NNCP not run (NNCP=0, nncp not installed, or $BASELINE missing)"
fi
