#!/bin/bash
# The deployment guide's commands as it writes them (issue 12), on
# loopback with real daemons; the ports are substituted (GATEWAY_PORT
# tells the node where the guide's 8787 went). So far: step 1 (the
# development model from a plain folder, no other flag: default data
# folders, keys made at the first start, the node's development join, the
# guide's monitoring lines) and step 3 (links on the daemons' own HTTP
# ports). On 95dd03e the gateway's line exited 2: "--data DIR and
# --network-key ... are required".
# usage: seed_guide.sh PATH/TO/agent-mesh PATH/TO/agent-mesh-node PATH/TO/agent-mesh-gateway
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") NODE=$(realpath "$2") GW=$(realpath "$3") # the test cds into plain folders
scratch am-seed
GP=$(port) NP=$(port) XP=$(port)
# discovery stays on as the guide has it, on a group port of this test's own
export MESH_MULTICAST_PORT=$(port)
code() { curl -s -o /dev/null -w '%{http_code}' -m 5 "$1"; }

# ---- step 1: Terminal 1, the gateway ----
mkdir -p "$T/site/edge_node"
cd "$T/site" || exit 1
"$GW" --host 127.0.0.1 --port "$GP" --dev-token >"$T/g.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
check "the gateway starts with the guide's flags only" wait_http "http://127.0.0.1:$GP/health"
GD=$T/site/agent-mesh-data/gateway
check "... in the default folder, with a key and a store made" test -f "$GD/identity.pem" -a -d "$GD/store"
check "... and a network key, mode 0600" test "$(stat -c %a "$GD/network.key" 2>/dev/null)" = 600
GFP=$(sed -n 's/.*network key .* (fingerprint \([0-9a-f]*\)).*/\1/p' "$T/g.log")
check "... whose fingerprint it prints" test "${#GFP}" = 16

# ---- step 1: Terminal 2, the node ----
cd "$T/site/edge_node" || exit 1
GATEWAY_PORT=$GP NODE_PORT=$NP "$NODE" >"$T/n.log" 2>&1 &
NPID=$!; PIDS+=($NPID)
check "the node starts with NODE_PORT only" wait_http "http://127.0.0.1:$NP/health"
ND=$T/site/edge_node/agent-mesh-data/node
check "... joins the development gateway: the same network key (fingerprint in its log)" \
    grep -q "joined the development gateway.*fingerprint $GFP" "$T/n.log"
check "... kept 0600" test "$(stat -c %a "$ND/network.key" 2>/dev/null)" = 600
G=$(sed -n 's/^agent-mesh-gateway \([0-9a-f]\{64\}\) .*/\1/p' "$T/g.log")
N=$(sed -n 's/^agent-mesh-node \([0-9a-f]\{64\}\) .*/\1/p' "$T/n.log")
linked() { req GET "http://127.0.0.1:$GP/v1/mesh_scan" "" - | field "[p['link'] for p in d['peers'] if p['id'] == '$N'][0]" | grep -qx up; }
check "... and links to it (mesh_scan: up)" until_ok 200 linked

# the guide's monitoring lines, as written (ports substituted), no token
for u in "http://127.0.0.1:$GP/health" "http://127.0.0.1:$GP/v1/mesh_scan" "http://127.0.0.1:$GP/v1/metrics" \
    "http://127.0.0.1:$NP/metrics"; do
    check "curl $u: 200" test "$(code "$u")" = 200
done
check "the inbox still needs a token" test "$(code "http://127.0.0.1:$NP/v1/inbox")" = 401

# messages both ways; the node trusts its gateway's tokens with no --trust-key
export API_TOKEN; API_TOKEN=$("$AM" token issue --data "$GD" --role admin --valid 1h)
req POST "http://127.0.0.1:$GP/v1/messages" "{\"to\":\"$N\",\"text\":\"gateway to node\"}" >/dev/null
check "gateway -> node: in the node's inbox (read with a gateway token)" \
    until_ok 100 answers "gateway to node" GET "http://127.0.0.1:$NP/v1/inbox"
req POST "http://127.0.0.1:$NP/v1/messages" "{\"to\":\"$G\",\"text\":\"node to gateway\"}" >/dev/null
check "node -> gateway" until_ok 100 answers "node to gateway" GET "http://127.0.0.1:$GP/v1/inbox"

# ---- step 3: links on the daemons' own HTTP ports ----
check "the gateway's links are on its HTTP port (ws://...:$GP/mesh)" \
    grep -q "listening for links on ws://127.0.0.1:$GP/mesh" "$T/g.log"
check "the node dialed the gateway there" grep -q "link to ws://127.0.0.1:$GP/mesh: .*live" "$T/n.log"
check "the node's links are on NODE_PORT" grep -q "listening for links on ws://127.0.0.1:$NP/mesh" "$T/n.log"

# a second start: the same keys, no join, relinked
kill -TERM "$NPID" "$GPID"; wait "$NPID" "$GPID" 2>/dev/null
cd "$T/site" || exit 1
"$GW" --host 127.0.0.1 --port "$GP" --dev-token >"$T/g2.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
wait_http "http://127.0.0.1:$GP/health" || bad "the gateway restarts"
cd "$T/site/edge_node" || exit 1
GATEWAY_PORT=$GP NODE_PORT=$NP "$NODE" >"$T/n2.log" 2>&1 &
NPID=$!; PIDS+=($NPID)
wait_http "http://127.0.0.1:$NP/health" || bad "the node restarts"
check "restarted: the same identities, nothing made again" bash -c \
    "grep -q '^agent-mesh-gateway $G ' '$T/g2.log' && grep -q '^agent-mesh-node $N ' '$T/n2.log' && ! grep -q 'first start\|made the network key\|joined' '$T/g2.log' '$T/n2.log'"
check "... and linked again" until_ok 200 linked

# ---- what stays explicit ----
cd "$T/site" || exit 1
"$GW" --host 127.0.0.1 --port "$XP" --data "$GD" >"$T/prod.log" 2>&1 &
XPID=$!; PIDS+=($XPID)
wait_http "http://127.0.0.1:$XP/health" || bad "a gateway without --dev-token starts"
check "a gateway without --dev-token has no join (404)" test "$(code "http://127.0.0.1:$XP/v1/join")" = 404
kill -TERM "$XPID"; wait "$XPID" 2>/dev/null
mkdir -p "$T/alone" && cd "$T/alone" || exit 1
# (rc and out as the daemon left them; its words hold an apostrophe)
said() { [ "$rc" -eq "$1" ] && grep -q "$2" <<<"$out"; }
out=$(GATEWAY_PORT=$XP NODE_PORT=$XP timeout 60 "$NODE" 2>&1); rc=$?
check "a node with no key and no development gateway: exit 2, saying what to give" \
    said 2 'no network key: .*--network-key @FILE'
out=$("$NODE" --data "$T/typo" 2>&1); rc=$?
check "an explicit --data that holds nothing is not made into a new identity" \
    bash -c "[ $rc -eq 1 ] && [ ! -e '$T/typo' ]"
check "... the start says how to make it" said 1 'agent-mesh init --store'

finish seed-guide
