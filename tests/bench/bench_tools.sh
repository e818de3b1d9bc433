#!/bin/bash
# Tool round-trip benchmark: a gateway and a node linked live on 127.0.0.1;
# the node has the tool `true` (/bin/true). N calls (default 1000) one after
# another through POST /v1/tools/call with wait_ms, then N through the MCP
# server's tools/call: calls/s and p50/p99 latency of each, next to the
# baseline of the same HTTP client doing GET /health on the gateway in the
# same run. Prints figures; asserts nothing but that every call succeeded.
#
# usage: tests/bench/bench_tools.sh [BUILD_DIR]     (default build/)
#   N=1000
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
NODE=$BUILD/src/node/agent-mesh-node
GW=$BUILD/src/gateway/agent-mesh-gateway
N=${N:-1000}
T=$(mktemp -d /tmp/am-bench-tools-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
for x in "$AM" "$NODE" "$GW"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../system/free_port.py" $$; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
"$AM" init --store "$T/n" >/dev/null 2>&1
mkdir -p "$T/n/tools"
echo '{"name": "true", "description": "does nothing, successfully", "command": ["/bin/true"], "timeout": "5s"}' \
    >"$T/n/tools/true.json"
export API_TOKEN; API_TOKEN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
GP=$(port) LP=$(port) MP=$(port) NP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --mcp-port "$MP" \
    --no-discovery >"$T/g.log" 2>&1 &
PIDS+=($!)
"$NODE" --data "$T/n" --network-key "@$T/net.key" --gateway "tcp://127.0.0.1:$LP" --port "$NP" --no-discovery \
    --name bench-node --trust-key "$G" >"$T/n.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 150); do ls "$T/g/catalogs/"*.json >/dev/null 2>&1 && break; sleep 0.1; done

echo "== tool round trip: $N calls of /bin/true on a linked node, one at a time, loopback"
/usr/bin/python3 - "$GP" "$MP" "$N" <<'PY'
import http.client, json, os, sys, time
gp, mp, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
h = {"Authorization": "Bearer " + os.environ["API_TOKEN"], "Content-Type": "application/json"}
g = http.client.HTTPConnection("127.0.0.1", gp, timeout=30)
m = http.client.HTTPConnection("127.0.0.1", mp, timeout=30)
def call(c, method, path, body=None):
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
def run(label, one):
    lat = []
    t0 = time.perf_counter()
    deadline = time.time() + 300
    for i in range(n):
        if time.time() > deadline:
            print("  stopped at the time bound after %d calls" % i)
            break
        t = time.perf_counter()
        one(i)
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    print("%-34s %7.1f calls/s   p50 %6.2f ms   p99 %6.2f ms   (%d calls)" % (label, len(lat) / wall, pct(lat, 50), pct(lat, 99), len(lat)))
    return pct(lat, 50), pct(lat, 99)
def health(i):
    st, _ = call(g, "GET", "/health")
    assert st == 200
def http_call(i):
    st, b = call(g, "POST", "/v1/tools/call", json.dumps({"node": "bench-node", "tool": "true", "wait_ms": 10000}))
    d = json.loads(b)
    assert st == 200 and d["results"][0]["status"] == "ok", (i, st, b[:200])
mcp_init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-03-26",
    "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
assert call(m, "POST", "/mcp", mcp_init)[0] == 200
def mcp_call(i):
    st, b = call(m, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
        "params": {"name": "bench-node__true", "arguments": {}}}))
    d = json.loads(b)
    assert st == 200 and d["result"]["isError"] is False, (st, b[:200])
b50, b99 = run("baseline GET /health (gateway)", health)
h50, h99 = run("HTTP POST /v1/tools/call", http_call)
m50, m99 = run("MCP tools/call", mcp_call)
print("HTTP call = %.1fx / %.1fx the baseline round trip (p50 / p99); MCP = %.1fx / %.1fx" % (h50 / b50, h99 / b99, m50 / b50, m99 / b99))
PY
