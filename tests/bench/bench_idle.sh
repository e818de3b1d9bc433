#!/bin/bash
# Idle memory benchmark: agent-mesh-node started on a store holding N
# envelopes (default 100 000 x 1 KiB), its resident set read from /proc
# after it has settled, next to the same daemon on an empty store (the
# baseline, measured in the same run). Prints figures; asserts nothing.
#
# usage: tests/bench/bench_idle.sh [BUILD_DIR]      (default build/)
#   N=100000 SETTLE=3 (seconds to wait before reading /proc)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
NODE=$BUILD/src/node/agent-mesh-node
FILL=$BUILD/tests/system/fill_store
N=${N:-100000}
SETTLE=${SETTLE:-3}
T=$(mktemp -d /tmp/am-bench-idle-XXXXXX)
NP=
trap '[ -n "$NP" ] && kill -9 "$NP" 2>/dev/null; rm -rf "$T"' EXIT
for x in "$AM" "$NODE" "$FILL"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../system/free_port.py" $$; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
measure() { # STORE -> "VmRSS_kB VmHWM_kB RssAnon_kB RssFile_kB"
    local hp; hp=$(port)
    rm -f "$1/dev-token"
    NODE_PORT=$hp "$NODE" --data "$1" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$(port)" \
        --sync-every 1h --no-discovery --dev-token >"$T/node.log" 2>&1 &
    NP=$!
    for _ in $(seq 1 100); do
        [ -f "$1/dev-token" ] && /usr/bin/python3 -c "
import sys,urllib.request
r=urllib.request.Request(sys.argv[1]); r.add_header('Authorization', 'Bearer ' + open(sys.argv[2]).read())
urllib.request.urlopen(r, timeout=1)" "http://127.0.0.1:$hp/metrics" "$1/dev-token" 2>/dev/null && break
        sleep 0.05
    done
    sleep "$SETTLE"
    awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ { v[$1] = $2 } END { print v["VmRSS:"], v["VmHWM:"], v["RssAnon:"], v["RssFile:"] }' \
        "/proc/$NP/status"
    kill -TERM "$NP"; wait "$NP" || true; NP=
}
"$AM" init --store "$T/empty" >/dev/null 2>&1
"$AM" init --store "$T/full" >/dev/null 2>&1
B=$("$AM" init --store "$T/dest" 2>/dev/null)
"$FILL" "$T/full" "$N" 1024 "$B"
read -r e_rss e_hwm e_anon e_file < <(measure "$T/empty")
read -r f_rss f_hwm f_anon f_file < <(measure "$T/full")
echo "== agent-mesh-node idle, $SETTLE s after start"
awk -v n="$N" -v er="$e_rss" -v eh="$e_hwm" -v ea="$e_anon" -v ef="$e_file" \
    -v fr="$f_rss" -v fh="$f_hwm" -v fa="$f_anon" -v ff="$f_file" 'BEGIN {
    printf "%-30s RSS %6.1f MiB (anon %5.1f, file %5.1f), peak %6.1f MiB  (baseline)\n", "empty store", er/1024, ea/1024, ef/1024, eh/1024
    printf "%-30s RSS %6.1f MiB (anon %5.1f, file %5.1f), peak %6.1f MiB\n", sprintf("%d envelopes stored", n), fr/1024, fa/1024, ff/1024, fh/1024
    printf "%-30s %.2f x the empty store; %.1f MiB (target <= 16 MiB)\n", "idle RSS with the store", fr/er, fr/1024
}'
