#!/bin/bash
# Hostile-load benchmark (issue 11): real gateway and node on 127.0.0.1,
# each figure next to a baseline measured in the same round, ROUNDS rounds
# interleaved (baseline, then the workload), min/median/max printed:
#   rss     gateway RSS before / peak (VmHWM) / after 300 unfinished unauthenticated
#           2 MiB bodies (baseline: RSS before, on the same fresh gateway)
#           target: peak <= baseline + 64 MiB
#   link    time from a node's start to its first live link while 300
#           silent sockets sit on the gateway's link port (baseline: the
#           same node started with no flood)            target: <= 2 s
#   health  /health p99 over 200 requests during 300 idle connections
#           (baseline: the same 200 with none)            target: <= 50 ms
#   audit   bytes the audit log grows by for 5 000 unauthenticated
#           requests (denominator: 5 000 x the first refusal's own line,
#           what a line per refusal would cost)          target: <= 64 KiB
# Prints figures; asserts nothing.
# usage: tests/bench/bench_hostile.sh [BUILD_DIR]   (default build/); ROUNDS=3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
GW=$BUILD/src/gateway/agent-mesh-gateway
NODE=$BUILD/src/node/agent-mesh-node
ROUNDS=${ROUNDS:-3}
for x in "$AM" "$GW" "$NODE"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
T=$(mktemp -d /tmp/am-bench-hostile-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../system/free_port.py" $$; }
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
start_gw() { # -> GPID GP LP, a fresh store each time
    rm -rf "$T/g"; "$AM" init --store "$T/g" >/dev/null 2>&1
    GP=$(port) LP=$(port)
    "$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
        --no-discovery --name site-gw >"$T/g.log" 2>&1 &
    GPID=$!; PIDS+=($GPID)
    for _ in $(seq 1 100); do curl -sf -m 1 "http://127.0.0.1:$GP/health" -o /dev/null && return 0; sleep 0.05; done
    echo "gateway did not start" >&2; exit 1
}
stop_gw() { kill -TERM "$GPID"; wait "$GPID" 2>/dev/null || true; }

# link_ms NAME: a new node started now, ms to its first live link to the
# gateway (a new name each time: TOFU pins a name to its first key)
link_ms() {
    rm -rf "$T/n" "$T/n.log"; "$AM" init --store "$T/n" >/dev/null 2>&1
    local t0 np hp; hp=$(port); : >"$T/n.log"
    t0=$(ms)
    "$NODE" --data "$T/n" --network-key "@$T/net.key" --port "$hp" --no-discovery --name "$1" \
        --gateway "tcp://127.0.0.1:$LP" --link-timeout 3s >>"$T/n.log" 2>&1 &
    np=$!; PIDS+=($np)
    for _ in $(seq 1 1000); do
        grep -q '^link to .*"site-gw".*live' "$T/n.log" && break
        sleep 0.005
    done
    local t1; t1=$(ms)
    grep -q '^link to .*"site-gw".*live' "$T/n.log" || t1=$((t0 + 99999))
    kill -TERM "$np"; wait "$np" 2>/dev/null || true
    echo $((t1 - t0))
}

# flood KIND PORT SECONDS: a background holder of 300 sockets; KIND idle
# (connect, send nothing) or body (an unauthenticated 2 MiB POST, one
# byte short); prints "ready" when all are open. Run it as "flood ... &"
# only: it replaces the subshell, so kill $! ends it
flood() {
    exec /usr/bin/python3 - "$@" <<'PY'
import socket, sys, time, select
kind, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks = []
n = 2 * 1024 * 1024 - 1
for _ in range(300):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        continue
    if kind == "body":
        s.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {n + 1}\r\n\r\n".encode())
        s.setblocking(False)
    socks.append(s)
print("ready", len(socks), flush=True)
sent = {s: 0 for s in socks}
closed = set()
chunk = b"x" * 65536
end = time.time() + secs
while time.time() < end:
    if kind == "body":
        live = [s for s in socks if sent[s] < n and s not in closed]
        if not live:
            break
        _, w, _ = select.select([], live, [], 0.05)
        for s in w:
            try:
                sent[s] += s.send(chunk[:n - sent[s]])
            except OSError:
                closed.add(s)   # the gateway answered and closed
    else:
        time.sleep(0.05)
print("body_bytes_sent_kib", sum(sent.values()) >> 10, "closed_by_gateway", len(closed), flush=True)
PY
}

# health_p99 N: ms, p99 of N sequential GET /health on new connections
health_p99() {
    /usr/bin/python3 - "$GP" "$1" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
t = []
for _ in range(n):
    t0 = time.perf_counter()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
    except OSError:
        ok = False
    t.append((time.perf_counter() - t0) * 1000 if ok else 5000.0)
t.sort()
print("%.2f" % t[min(len(t) - 1, int(len(t) * 0.99))])
PY
}

unauth_5000() {
    /usr/bin/python3 - "$GP" <<'PY'
import http.client, sys, time
port = int(sys.argv[1])
hs = [{}, {"Authorization": "Bearer junk"}, {"Authorization": "Bearer amt1.AAAA"}]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
end = time.time() + 60
for i in range(5000):
    if time.time() > end:
        break
    try:
        c.request("GET", "/v1/inbox", headers=hs[i % 3])
        c.getresponse().read()
    except OSError:
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
PY
}

declare -a R_BASE R_PEAK R_AFTER L_BASE L_FLOOD H_BASE H_IDLE A_GROW A_LINE
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r of $ROUNDS" >&2
    # rss
    start_gw
    sleep 1
    base=$(rss "$GPID") peak=$base
    flood body "$GP" 15 >"$T/fl.out" &
    FP=$!
    wait "$FP" || true
    # the kernel's high-water mark of this gateway's RSS: the true peak,
    # however short (the gateway is new this round)
    peak=$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$GPID/status")
    sleep 2
    R_BASE+=("$base") R_PEAK+=("$peak") R_AFTER+=("$(rss "$GPID")")
    echo "   rss: before $base, peak $peak, after ${R_AFTER[-1]} MiB ($(tr '\n' ' ' <"$T/fl.out"))" >&2
    # link: baseline then during 300 silent sockets on the link port
    L_BASE+=("$(link_ms "crane-$r-alone")")
    flood idle "$LP" 30 >"$T/fl.out" &
    FP=$!
    for _ in $(seq 1 100); do grep -q ready "$T/fl.out" && break; sleep 0.1; done
    L_FLOOD+=("$(link_ms "crane-$r-flood")")
    kill "$FP" 2>/dev/null; wait "$FP" 2>/dev/null || true
    echo "   link: ${L_BASE[-1]} ms alone, ${L_FLOOD[-1]} ms with 300 silent sockets ($(head -1 "$T/fl.out"))" >&2
    # health: baseline then during 300 idle HTTP connections
    H_BASE+=("$(health_p99 200)")
    flood idle "$GP" 60 >"$T/fl.out" &
    FP=$!
    for _ in $(seq 1 100); do grep -q ready "$T/fl.out" && break; sleep 0.1; done
    H_IDLE+=("$(health_p99 200)")
    kill "$FP" 2>/dev/null; wait "$FP" 2>/dev/null || true
    echo "   /health p99: ${H_BASE[-1]} ms alone, ${H_IDLE[-1]} ms among 300 idle connections" >&2
    # audit
    LOG=$T/g/audit/audit.log
    before=$(stat -c %s "$LOG")
    unauth_5000
    after=$(stat -c %s "$LOG")
    A_GROW+=($((after - before)))
    A_LINE+=("$(grep '"event":"token_refused"' "$LOG" | head -1 | wc -c)")
    echo "   audit: +${A_GROW[-1]} bytes for 5000 refusals (one refusal line: ${A_LINE[-1]} bytes)" >&2
    stop_gw
done

stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "min %s  median %s  max %s", v[1], v[int((NR + 1) / 2)], v[NR]}'; }
ratio() { # A[] B[] -> per-round A/B
    local -n a=$1 b=$2; local i out=()
    for i in "${!a[@]}"; do out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {printf "%.2f", (y > 0) ? x / y : 0}')"); done
    stats "${out[@]}"
}
ratio4() { # as ratio, 4 decimals (the audit ratio is far below 0.01)
    local -n a=$1 b=$2; local i out=()
    for i in "${!a[@]}"; do out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {printf "%.4f", (y > 0) ? x / y : 0}')"); done
    stats "${out[@]}"
}
diffs() { local -n a=$1 b=$2; local i out=()
    for i in "${!a[@]}"; do out+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {printf "%.1f", x - y}')"); done
    stats "${out[@]}"
}
echo
echo "== bench_hostile: $ROUNDS rounds, each workload right after its baseline"
echo "gateway RSS before (MiB)            $(stats "${R_BASE[@]}")"
echo "gateway RSS peak, 300 bodies (MiB)  $(stats "${R_PEAK[@]}")"
echo "gateway RSS after (MiB)             $(stats "${R_AFTER[@]}")"
echo "peak - before (MiB)                 $(diffs R_PEAK R_BASE)   target <= 64"
echo "after - before (MiB)                $(diffs R_AFTER R_BASE)"
echo "node link, alone (ms)               $(stats "${L_BASE[@]}")"
echo "node link, 300 silent sockets (ms)  $(stats "${L_FLOOD[@]}")   target <= 2000"
echo "link time flood / alone             $(ratio L_FLOOD L_BASE)"
echo "/health p99, alone (ms)             $(stats "${H_BASE[@]}")"
echo "/health p99, 300 idle conns (ms)    $(stats "${H_IDLE[@]}")   target <= 50"
echo "/health p99 idle-flood / alone      $(ratio H_IDLE H_BASE)"
echo "audit growth, 5000 refusals (bytes) $(stats "${A_GROW[@]}")   target <= 65536"
A_PERLINE=(); for i in "${!A_LINE[@]}"; do A_PERLINE+=($((A_LINE[i] * 5000))); done
echo "audit growth / (5000 x one line)    $(ratio4 A_GROW A_PERLINE)"
