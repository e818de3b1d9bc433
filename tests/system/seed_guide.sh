#!/bin/bash
# The deployment guide's commands as it writes them (issue 12), on
# loopback with real daemons; the ports are substituted (GATEWAY_PORT
# tells the node where the guide's 8787 went). So far: step 1 (the
# development model from a plain folder, no other flag: default data
# folders, keys made at the first start, the node's development join, the
# guide's monitoring lines) and step 3 (links on the daemons' own HTTP
# ports), step 2 (a join with a pairing code), step 4 (the guide's .env),
# step 5 (the PKI lines), step 6 (backup and restore), step 8 (--version,
# --check-config). The other steps have scripts of their own, named
# here so the map is whole: step 2 across two namespaced machines
# (pair_join.sh), step 7 (units.sh: meson install, systemd-analyze verify
# and security; audit_rotate.sh: logrotate, SIGHUP, the chain across
# files), step 9 (tools/dev cross: the arm64 release build, the unit
# tests under qemu-user, in CI), step 10 (audit_siem.sh: real rsyslog
# over UDP, TCP, TLS), the deployment models (seed_models.sh). On 95dd03e the gateway's line exited
# 2: "--data DIR and --network-key ... are required".
# usage: seed_guide.sh PATH/TO/agent-mesh PATH/TO/agent-mesh-node PATH/TO/agent-mesh-gateway
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") NODE=$(realpath "$2") GW=$(realpath "$3") # the test cds into plain folders
KIT=$(cd "$(dirname "$0")/../../field-kit" && pwd)
scratch am-seed
GP=$(port) NP=$(port) XP=$(port)
# discovery stays on as the guide has it, on a group port of this test's own
export MESH_MULTICAST_PORT=$(port)
code() { curl -s -o /dev/null -w '%{http_code}' -m 5 "$1"; }
said() { [ "$rc" -eq "$1" ] && grep -q "$2" <<<"$out"; } # rc and out as a command left them

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

# ---- step 2: a node joins with the code the gateway prints ----
# (across two network namespaces, as two machines: pair_join.sh)
cd "$T/site" || exit 1
J=$("$AM" pair --gateway "http://127.0.0.1:$GP" --name edge_node_2 | sed -n 's/^ *agent-mesh-node --join \(.*\)$/\1/p')
mkdir -p "$T/second" && cd "$T/second" || exit 1
"$NODE" --join "$J" --port "$XP" >"$T/second.log" 2>&1 &
SPID=$!; PIDS+=($SPID)
check "step 2: agent-mesh pair, then agent-mesh-node --join CODE: joined, the same network key" \
    until_ok 200 grep -q "fingerprint $GFP" "$T/second.log"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null

# ---- step 4: the guide's .env verbatim (addresses and ports substituted) ----
mkdir -p "$T/envsite" && cd "$T/envsite" || exit 1
printf '%s\n' "GATEWAY_HOST=127.0.0.1" "GATEWAY_PORT=$XP" "DEV_TOKEN_ENABLED=false" "TRUST_MODE=pki  # or 'tofu'" \
    "AUDIT_LOG_PATH=$T/envsite/log/audit.log" "MESH_MULTICAST_IP=239.255.42.99" \
    "MESH_MULTICAST_PORT=$MESH_MULTICAST_PORT" >.env
out=$("$GW" --check-config 2>&1); rc=$?
check "step 4: the guide's .env is read (--check-config: trust pki, port $XP)" said 0 "HTTP 127.0.0.1:$XP, trust pki"
"$GW" >"$T/envgw.log" 2>&1 &
EPID=$!; PIDS+=($EPID)
check "... and a start with it serves on GATEWAY_PORT" wait_http "http://127.0.0.1:$XP/health"
check "... writing its audit log at AUDIT_LOG_PATH" until_ok 100 test -s "$T/envsite/log/audit.log"
kill -TERM "$EPID"; wait "$EPID" 2>/dev/null
printf 'GATEWAY_PORT=8787\nTRUST_MODE=pki # or tofu\nthis line is not KEY=VALUE\n' >.env
out=$("$GW" --check-config 2>&1); rc=$?
check "... a bad line is named as file:line" said 2 '\.env:3: '
rm -f .env

# ---- step 8: --version on all three ----
for b in "$AM" "$NODE" "$GW"; do
    check "step 8: $(basename "$b") --version" bash -c "'$b' --version | grep -Eq '^$(basename "$b") [0-9]+\.[0-9]+'"
done

# ---- step 5: PKI as the guide writes it, from a plain folder ----
# (on da7c989 provision exited 2 wanting --network-key, and the gateway
# with --identity wanted an `agent-mesh init` first)
kill -TERM "$NPID" "$GPID"; wait "$NPID" "$GPID" 2>/dev/null
mkdir -p "$T/pki/edge_node_1" && cd "$T/pki" || exit 1
"$AM" keygen --output gateway_identity.pem >"$T/keygen.out" 2>&1
check "keygen --output gateway_identity.pem" test "$(stat -c %a gateway_identity.pem 2>/dev/null)" = 600
"$AM" provision --gateway-key gateway_identity.pem --node-id edge_node_1 --output bundle.json >"$T/prov.out" 2>&1; rc=$?
check "provision with the guide's three flags: a bundle, 0600" bash -c \
    "[ $rc = 0 ] && [ \"\$(stat -c %a bundle.json)\" = 600 ]"
PFP=$(sed -n 's/^made the network key network.key (fingerprint \([0-9a-f]*\)).*/\1/p' "$T/prov.out")
check "... the network key made beside the gateway key (0600), its fingerprint printed" bash -c \
    "[ ${#PFP} = 16 ] && [ \"\$(stat -c %a network.key)\" = 600 ]"
"$GW" --trust-mode pki --identity gateway_identity.pem --port "$GP" >"$T/gpki.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
check "the gateway with --trust-mode pki --identity: starts, no init" wait_http "http://127.0.0.1:$GP/health"
check "... with the same network key as the bundle (fingerprint)" grep -q "using the network key network.key, fingerprint $PFP" "$T/gpki.log"
KID=$(grep -Eo '^[0-9a-f]{64}$' "$T/keygen.out")
check "... as that key (its store made for it)" grep -q "^agent-mesh-gateway $KID " "$T/gpki.log"
cd "$T/pki/edge_node_1" || exit 1
"$NODE" --provision ../bundle.json --gateway "ws://127.0.0.1:$GP/mesh" --port "$NP" >"$T/npki.log" 2>&1 &
NPID=$!; PIDS+=($NPID)
check "a node with the bundle, in a plain folder, starts" wait_http "http://127.0.0.1:$NP/health"
check "... and the PKI gateway takes its certificate" until_ok 200 grep -q 'certificate accepted for "edge_node_1"' "$T/gpki.log"
kill -TERM "$NPID" "$GPID"; wait "$NPID" "$GPID" 2>/dev/null

# ---- step 6: backup as the guide writes it, and a restore that starts ----
# (on da7c989 the backup held no network key: a restored node could not
# link; the guide's script had nothing of ours to run)
printf "TRUST_MODE=tofu  # or 'pki'\n" >"$T/site/edge_node/.env"
chmod 644 "$T/site/edge_node/.env"
(cd "$ND" && BACKUP_ROOT=$T/backup "$KIT/backup.sh") >"$T/kit.out" 2>&1; rc=$?
ARCH=$(ls "$T"/backup/*.tar.gz 2>/dev/null | head -1)
check "the guide's script, run in the data folder: an archive, 0600" bash -c \
    "[ $rc = 0 ] && [ -n '$ARCH' ] && [ \"\$(stat -c %a '$ARCH')\" = 600 ]"
check "... holding the guide's trust store, keys/, audit log and .env" bash -c \
    "tar -tzf '$ARCH' | grep -qx './keys/identity.pem' && tar -tzf '$ARCH' | grep -qx './audit/audit.log' &&
     tar -tzf '$ARCH' | grep -qx './.env' && tar -tzf '$ARCH' | grep -qx './trust/trust_store.json'"
(cd "$T/site/edge_node" && "$AM" backup --data agent-mesh-data/node --output "$T/node.tar.gz") >"$T/bk.out" 2>&1
check "agent-mesh backup from the folder the node runs in takes its ./.env and network key" bash -c \
    "grep -q 'with ./.env' '$T/bk.out' && tar -tzf '$T/node.tar.gz' | grep -qx network.key"
cd "$T/site" || exit 1
"$GW" --host 127.0.0.1 --port "$GP" --dev-token >"$T/g3.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
wait_http "http://127.0.0.1:$GP/health" || bad "the development gateway restarts"
for a in "$ARCH" "$T/node.tar.gz"; do
    R=$T/restored-$(basename "$a" .tar.gz)
    mkdir -p "$R"
    "$AM" restore --input "$a" --data "$R/agent-mesh-data/node" >"$R.out" 2>&1; rc=$?
    check "restore $(basename "$a"): .env and keys come back 0600" bash -c \
        "[ $rc = 0 ] && [ \"\$(stat -c %a '$R/agent-mesh-data/node/.env')\" = 600 ] &&
         [ \"\$(stat -c %a '$R/agent-mesh-data/node/network.key')\" = 600 ]"
    cd "$R" || exit 1
    NODE_PORT=$NP "$NODE" >"$R.log" 2>&1 &
    NPID=$!; PIDS+=($NPID)
    check "... the restored node starts as itself (the same node id)" until_ok 200 grep -q "^agent-mesh-node $N " "$R.log"
    check "... and links to its gateway again" until_ok 200 linked
    kill -TERM "$NPID"; wait "$NPID" 2>/dev/null
done
kill -TERM "$GPID"; wait "$GPID" 2>/dev/null

# ---- what stays explicit ----
cd "$T/site" || exit 1
"$GW" --host 127.0.0.1 --port "$XP" --data "$GD" >"$T/prod.log" 2>&1 &
XPID=$!; PIDS+=($XPID)
wait_http "http://127.0.0.1:$XP/health" || bad "a gateway without --dev-token starts"
check "a gateway without --dev-token has no join (404)" test "$(code "http://127.0.0.1:$XP/v1/join")" = 404
kill -TERM "$XPID"; wait "$XPID" 2>/dev/null
mkdir -p "$T/alone" && cd "$T/alone" || exit 1
# (rc and out as the daemon left them; its words hold an apostrophe: said)
out=$(GATEWAY_PORT=$XP NODE_PORT=$XP timeout 60 "$NODE" 2>&1); rc=$?
check "a node with no key and no development gateway: exit 2, saying what to give" \
    said 2 'no network key: .*--network-key @FILE'
out=$("$NODE" --data "$T/typo" 2>&1); rc=$?
check "an explicit --data that holds nothing is not made into a new identity" \
    bash -c "[ $rc -eq 1 ] && [ ! -e '$T/typo' ]"
check "... the start says how to make it" said 1 'agent-mesh init --store'

finish seed-guide
