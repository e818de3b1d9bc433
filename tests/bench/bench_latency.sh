#!/bin/bash
# Live latency benchmark: a gateway and a node on 127.0.0.1, the node
# linked live to the gateway. For each of N messages (default 1000): POST
# /v1/messages on the gateway, then GET /v1/inbox?wait_ms=...&ack=1 on the
# node until the message is there; the time between the POST going out and
# the message being in hand. Baseline measured in the same run: a plain
# HTTP round trip (GET /health) to the node, the floor any such client
# pays twice. Also: time until the gateway's GET /v1/messages/{id} says
# delivered (the receipt back) for every 10th message. Prints figures;
# asserts nothing.
#
# usage: tests/bench/bench_latency.sh [BUILD_DIR]     (default build/)
#   N=1000
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh
NODE=$BUILD/src/node/agent-mesh-node
GW=$BUILD/src/gateway/agent-mesh-gateway
N=${N:-1000}
T=$(mktemp -d /tmp/am-bench-lat-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
for x in "$AM" "$NODE" "$GW"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../system/free_port.py" $$; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
GID=$("$AM" init --store "$T/g" 2>/dev/null)
NID=$("$AM" init --store "$T/n" 2>/dev/null)
# one capability token from the gateway's key; the node trusts that key
export API_TOKEN; API_TOKEN=$("$AM" token issue --gateway-key "$T/g/identity.pem" --role admin --valid 1h)
GP=$(port) LP=$(port) NP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --no-discovery \
    >"$T/g.log" 2>&1 &
PIDS+=($!)
"$NODE" --data "$T/n" --network-key "@$T/net.key" --gateway "tcp://127.0.0.1:$LP" --port "$NP" --no-discovery --trust-key "$GID" \
    >"$T/n.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "^link to .*: peer" "$T/n.log" && break; sleep 0.1; done
grep -q "^link to .*: peer" "$T/n.log" || { echo "the node did not link" >&2; cat "$T/n.log" >&2; exit 1; }

echo "== live latency: POST on the gateway -> in the node's inbox, $N messages, 1 KiB-ish text, loopback"
/usr/bin/python3 - "$GP" "$NP" "$NID" "$N" <<'PY'
import http.client, json, os, statistics, sys, time
gp, np_, nid, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
g = http.client.HTTPConnection("127.0.0.1", gp, timeout=30)
nd = http.client.HTTPConnection("127.0.0.1", np_, timeout=30)
def call(c, method, path, body=None):
    h = {"Authorization": "Bearer " + os.environ["API_TOKEN"]}
    if body:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]
# baseline: an HTTP round trip to the node
base = []
for _ in range(n):
    t = time.perf_counter(); call(nd, "GET", "/health"); base.append((time.perf_counter() - t) * 1000)
lat, rcpt = [], []
text = "x" * 1000
deadline = time.time() + 300
for i in range(n):
    if time.time() > deadline:
        print("stopped at the time bound after %d messages" % i); break
    body = json.dumps({"to": nid, "text": "%d %s" % (i, text)}).encode()
    t0 = time.perf_counter()
    st, b = call(g, "POST", "/v1/messages", body)
    assert st == 202, (st, b)
    mid = json.loads(b)["id"]
    got = False
    while not got:
        st, b = call(nd, "GET", "/v1/inbox?wait_ms=2000&ack=1")
        got = any(m["id"] == mid for m in json.loads(b)["messages"])
        if time.perf_counter() - t0 > 10:
            raise SystemExit("message %d did not arrive in 10 s" % i)
    lat.append((time.perf_counter() - t0) * 1000)
    if i % 10 == 0:
        while True:
            st, b = call(g, "GET", "/v1/messages/" + mid)
            if json.loads(b).get("delivered"):
                break
            if time.perf_counter() - t0 > 10:
                raise SystemExit("no receipt for message %d in 10 s" % i)
            time.sleep(0.0005)
        rcpt.append((time.perf_counter() - t0) * 1000)
b50, b99 = pct(base, 50), pct(base, 99)
p50, p99, mx = pct(lat, 50), pct(lat, 99), max(lat)
print("baseline HTTP round trip to the node: p50 %.2f ms  p99 %.2f ms" % (b50, b99))
print("POST -> node inbox over the live link: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d messages)" % (p50, p99, mx, len(lat)))
print("  = %.1fx / %.1fx the baseline round trip (p50 / p99); target p99 < 10 ms: %s" % (p50 / b50, p99 / b99, "met" if p99 < 10 else "NOT met"))
r50, r99 = pct(rcpt, 50), pct(rcpt, 99)
print("POST -> receipt back, gateway says delivered: p50 %.2f ms  p99 %.2f ms  (%d samples)" % (r50, r99, len(rcpt)))
PY
