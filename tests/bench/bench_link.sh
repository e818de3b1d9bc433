#!/bin/bash
# Online throughput benchmark: node A pushes N x 1 KiB envelopes to node B
# over one authenticated tcp:// loopback link session (`agent-mesh link
# sync`, both ends real processes). Prints envelopes/s received and verified
# as a ratio to the raw libsodium verify rate measured in the same run (times
# the cores), and, where the Debian package nncp is installed, to NNCP's
# online transfer (nncp-daemon + nncp-call + toss, ../shared/bench/
# nncp_baseline.sh) in the same run. Prints figures; asserts only that
# everything arrived.
#
# usage: tests/bench/bench_link.sh [BUILD_DIR]      (default build/)
#   N=20000 (envelopes), NNCP_N=2000 (NNCP's workload: it enqueues one
#   process per message, so the full N would take many minutes); NNCP=0 skips it;
#   FILL_PRIORITY=0..3 puts every envelope at one priority (default: four in turn)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
FILL=$BUILD/tests/system/fill_store
CORE=$BUILD/tests/bench/bench_core
N=${N:-20000}
NNCP_N=${NNCP_N:-2000}
NNCP=${NNCP:-1}
T=$(mktemp -d /tmp/am-bench-link-XXXXXX)
LPID=
trap '[ -n "$LPID" ] && kill -9 "$LPID" 2>/dev/null; rm -rf "$T"' EXIT
for x in "$AM" "$FILL" "$CORE"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../system/free_port.py" $$; }

read -r RAW CORES < <("$CORE" --raw-verify)
echo "== agent_mesh online benchmark: $N x 1 KiB, A -> B over one tcp loopback link session, $CORES cores"
printf '%-44s %10.0f /s  (baseline, one core)\n' "raw libsodium verify, 1 KiB body" "$RAW"

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" init --store "$T/a" >/dev/null 2>&1
B=$("$AM" init --store "$T/b" 2>/dev/null)
"$FILL" "$T/a" "$N" 1024 "$B"
sync
P=$(port)
/usr/bin/time -f '%M' -o "$T/t.listen" "$AM" link sync --store "$T/b" --listen "tcp://127.0.0.1:$P" \
    --network-key "@$T/net.key" --timeout 300s --json >"$T/listen.json" 2>"$T/listen.err" &
LPID=$!
# wait for the listening socket without connecting: the listener serves
# exactly one session, and a probe would be it
for _ in $(seq 1 100); do ss -Hltn "sport = :$P" | grep -q . && break; sleep 0.05; done
t0=$EPOCHREALTIME
/usr/bin/time -f '%M' -o "$T/t.dial" "$AM" link sync --store "$T/a" --dial "tcp://127.0.0.1:$P" \
    --network-key "@$T/net.key" --timeout 300s --json >"$T/dial.json"
wait "$LPID"; LPID=
t1=$EPOCHREALTIME
got=$("$AM" store stats --store "$T/b" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['inbox_unacked'])")
[ "$got" -eq "$N" ] || { echo "ERROR: B received $got of $N" >&2; cat "$T/listen.err" >&2; exit 1; }
W=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
awk -v n="$N" -v w="$W" -v raw="$RAW" -v cores="$CORES" -v rl="$(tail -n 1 "$T/t.listen")" -v rd="$(tail -n 1 "$T/t.dial")" 'BEGIN {
    printf "%-44s %7.3f s %9.0f env/s %8.1f MB/s\n", "link session (dial to both ends done)", w, n/w, n*1024/1e6/w
    printf "%-44s %.2f x cores x raw verify (target >= 0.80)\n", "received and verified", (n/w)/(raw*cores)
    printf "%-44s receiver %.1f MiB, sender %.1f MiB\n", "peak RSS", rl/1024, rd/1024
}'
/usr/bin/python3 - "$T/listen.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keys = [k for k in ("received", "inboxed", "refused", "reconcile_bytes_out", "reconcile_bytes_in", "reconcile_rounds") if k in r]
print("%-44s %s" % ("receiver's report", ", ".join("%s %s" % (k, r[k]) for k in keys)))
PY

BASELINE=$ROOT/../shared/bench/nncp_baseline.sh
if [ "$NNCP" = 1 ] && command -v nncp-call >/dev/null && [ -f "$BASELINE" ]; then
    echo "== NNCP $(nncp-call -version 2>&1 | head -n 1) online, $NNCP_N x 1 KiB (nncp_baseline.sh, one rep)"
    BASE=/tmp/nncp-bench-am-link REPS=1 MICRO_K=2 N_SMALL="$NNCP_N" WORKLOADS="file1k" \
        bash "$BASELINE" >"$T/nncp.log" 2>&1 || { echo "nncp baseline failed:"; tail -n 20 "$T/nncp.log"; exit 1; }
    eff=$(awk -F'\t' '$1 == "file1k" { print $4 }' /tmp/nncp-bench-am-link/online.tsv | tail -n 1)
    toss=$(awk -F'\t' '$1 == "file1k" && $2 == "toss(online)" { print $4 }' /tmp/nncp-bench-am-link/results.tsv | tail -n 1)
    awk -v n="$NNCP_N" -v eff="$eff" -v toss="$toss" -v ours="$N" -v w="$W" 'BEGIN {
        t = eff + toss
        printf "%-44s %7.3f s %9.0f env/s  (call to last ack %.3f s + toss %.3f s)\n", "NNCP daemon + call + toss", t, n/t, eff, toss
        printf "%-44s %.1f x envelopes/s (target >= 10 x)\n", "agent_mesh / NNCP online", (ours/w)/(n/t)
    }'
    rm -rf /tmp/nncp-bench-am-link
else
    echo "== NNCP not run (NNCP=0, nncp not installed, or $BASELINE missing)"
fi
