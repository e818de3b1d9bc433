#!/bin/bash
# agent-mesh-node as a real, long-running process: /health and /metrics over
# HTTP on 127.0.0.1, link sessions from several peers one after another,
# receipts that reach the sender on its next sync, a peer with the wrong
# network key refused while the node keeps serving, and a clean SIGTERM.
# usage: node_daemon.sh PATH/TO/agent-mesh PATH/TO/agent-mesh-node
set -u
AM=$1 NODE=$2
T=$(mktemp -d /tmp/am-node-XXXXXX)
NP=
trap '[ -n "$NP" ] && kill -9 "$NP" 2>/dev/null; rm -rf "$T"' EXIT
fails=0 passes=0
ok()  { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
port() { /usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1]); s.close()"; }
get() { /usr/bin/python3 -c "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$1"; }
json() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" keygen --network-key --output "$T/other.key" 2>/dev/null
A=$("$AM" init --store "$T/a" 2>/dev/null)
B=$("$AM" init --store "$T/b" 2>/dev/null)
C=$("$AM" init --store "$T/c" 2>/dev/null)
AB=$("$AM" send --store "$T/a" --to "$B" --text "a->b")
"$AM" send --store "$T/c" --to "$B" --text "c->b" >/dev/null
HP=$(port) LP=$(port)
NODE_PORT=$HP "$NODE" --data "$T/b" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" >"$T/node.log" 2>&1 &
NP=$!
for _ in $(seq 1 100); do get "http://127.0.0.1:$HP/health" >/dev/null 2>&1 && break; sleep 0.05; done
H=$(get "http://127.0.0.1:$HP/health")
check "health: status ok" test "$(echo "$H" | json "['status']")" = ok
check "health: names the node" test "$(echo "$H" | json "['node_id']")" = "$B"

"$AM" link sync --store "$T/a" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/net.key" >/dev/null
check "a's session ok" test $? -eq 0
"$AM" link sync --store "$T/c" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/net.key" >/dev/null
check "c's session ok" test $? -eq 0
"$AM" link sync --store "$T/c" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/other.key" >/dev/null 2>&1
check "a wrong network key is refused" test $? -ne 0
H=$(get "http://127.0.0.1:$HP/health")
check "the node stays up and counts it" test "$(echo "$H" | json "['links_failed']")" -ge 1
check "b holds both messages" test "$(echo "$H" | json "['inbox_unacked']")" = 2
M=$(get "http://127.0.0.1:$HP/metrics")
check "metrics: received 2" grep -q '^am_envelopes_received_total 2$' <<<"$M"
check "metrics: links ok 2" grep -q '^am_links_total{result="ok"} 2$' <<<"$M"
check "metrics: Prometheus types" grep -q '^# TYPE am_links_total counter$' <<<"$M"

# the receipt b made goes back to a on a's next sync; a purges
"$AM" link sync --store "$T/a" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/net.key" >/dev/null
check "a no longer holds what b received" bash -c "! '$AM' store get --store '$T/a' --id $AB --output '$T/x' 2>/dev/null"

kill -TERM "$NP"
for _ in $(seq 1 60); do kill -0 "$NP" 2>/dev/null || break; sleep 0.05; done
wait "$NP"; rc=$?; NP=
check "SIGTERM: clean exit" test "$rc" -eq 0
check "the log says it stopped" grep -q "stopping (SIGTERM)" "$T/node.log"
"$NODE" --data "$T/nowhere" --network-key "@$T/net.key" >/dev/null 2>"$T/err"
check "a missing node folder is named" grep -q "agent-mesh init" "$T/err"

echo "node_daemon: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
