#!/bin/bash
# The guide's deployment models as docs/OPERATIONS.md "Deployment models"
# writes them (issue 12), on loopback with real daemons, the addresses
# substituted (127.0.0.1 for the LAN's, the test's own ports). The
# development model and the PKI and backup steps are seed_guide.sh's; a
# second machine over a real (namespaced) LAN is pair_join.sh's.
#  * small team: a gateway, nodes joined with pairing codes (TOFU), one
#    shared operator token that every node takes;
#  * field: a node with a position and a zone, an area message from the
#    gateway reaches it; a node never linked gets it by USB stick;
#  * air-gapped: a node with no network at all; a bundle file carried each
#    way: the message in, the receipt back (the gateway marks it delivered);
#  * enterprise (what this release has of it; HA pairs are issue 13): a
#    PKI gateway, nodes paired with roles (certificates in the grant), the
#    audit records forwarded over TCP to a collector.
# usage: seed_models.sh AGENT_MESH NODE GATEWAY
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") NODE=$(realpath "$2") GW=$(realpath "$3")
scratch am-models
export MESH_DISCOVERY=off
GP=$(port) NP1=$(port) NP2=$(port) NP3=$(port) PP=$(port) NP4=$(port) SP=$(port)
joincmd() { sed -n 's/^ *agent-mesh-node --join \(.*\)$/\1/p'; }
node_id() { sed -n 's/^agent-mesh-node \([0-9a-f]\{64\}\) .*/\1/p' "$1"; }

# ---- small team ----
mkdir -p "$T/office" "$T/mac-1" "$T/rpi-1"
cd "$T/office" || exit 1
"$GW" --host 127.0.0.1 --port "$GP" --name office-gw >"$T/gw.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$GP/health" || bad "the team's gateway starts"
GD=$T/office/agent-mesh-data/gateway
for n in mac-1:$NP1 rpi-1:$NP2; do
    name=${n%%:*} p=${n##*:}
    J=$("$AM" pair --gateway "http://127.0.0.1:$GP" --name "$name" | joincmd)
    (cd "$T/$name" && exec "$NODE" --join "$J" --port "$p" >"$T/$name.log" 2>&1) &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$p/health" || bad "$name starts"
done
"$AM" token issue --data "$GD" --role operator --valid 30d >"$T/team.token"
export API_TOKEN; API_TOKEN=$(cat "$T/team.token")
check "small team: both nodes joined with a code and take the one team token" bash -c \
    "$(declare -f req); req GET http://127.0.0.1:$NP1/v1/inbox | grep -q '^200 ' && req GET http://127.0.0.1:$NP2/v1/inbox | grep -q '^200 '"
M1=$(node_id "$T/mac-1.log")
req POST "http://127.0.0.1:$NP2/v1/messages" "{\"to\":\"$M1\",\"text\":\"from the pi\"}" >/dev/null
check "... a node's message reaches another through the gateway" until_ok 300 answers "from the pi" GET "http://127.0.0.1:$NP1/v1/inbox"
check "... the gateway pinned both (TOFU)" bash -c "'$AM' trust list --data '$GD' | grep -q mac-1 && '$AM' trust list --data '$GD' | grep -q rpi-1"
check "... and audited each decision (local audit log verifies)" "$AM" audit verify "$GD/audit/audit.log"

# ---- field: positions, areas, a USB stick ----
mkdir -p "$T/crane-3"
J=$("$AM" pair --gateway "http://127.0.0.1:$GP" --name crane-3 | joincmd)
(cd "$T/crane-3" && exec "$NODE" --join "$J" --port "$NP3" --position 52.5210,13.4070 --zone crane-3 >"$T/crane.log" 2>&1) &
PIDS+=($!)
wait_http "http://127.0.0.1:$NP3/health" || bad "crane-3 starts"
ADMIN=$("$AM" token issue --data "$GD" --role admin --valid 1h)
until_ok 300 bash -c "$(declare -f req field); API_TOKEN=$ADMIN req GET http://127.0.0.1:$GP/v1/mesh_scan | grep -q 'crane-3'"
API_TOKEN=$ADMIN req POST "http://127.0.0.1:$GP/v1/messages" \
    '{"broadcast":true,"geo":"circle:52.5205,13.4060,500","text":"wind above 15 m/s"}' >/dev/null
check "field: an area message from the gateway reaches the crane inside it" \
    until_ok 300 answers "wind above 15 m/s" GET "http://127.0.0.1:$NP3/v1/inbox"
FAR=$("$AM" init --store "$T/far" 2>/dev/null)    # a node that never sees the gateway's network
API_TOKEN=$ADMIN req POST "http://127.0.0.1:$GP/v1/messages" "{\"to\":\"$FAR\",\"text\":\"by stick\"}" >/dev/null
mkdir -p "$T/usb"
"$AM" bundle sync --store "$GD" "$T/usb" >"$T/stick1.out" 2>&1
"$AM" bundle sync --store "$T/far" "$T/usb" >"$T/stick2.out" 2>&1
check "... a node out of reach gets its message by USB stick" bash -c "'$AM' inbox --store '$T/far' | grep -q 'by stick'"

# ---- air-gapped: one bundle file each way ----
V=$("$AM" init --store "$T/vault" 2>/dev/null)
OUT=$(API_TOKEN=$ADMIN req POST "http://127.0.0.1:$GP/v1/messages" "{\"to\":\"$V\",\"text\":\"into the vault\"}")
MID=$(field "d['id']" <<<"$OUT")
"$AM" bundle export --store "$GD" --to "$V" --output "$T/in.amb" >/dev/null 2>&1
"$AM" bundle import --store "$T/vault" "$T/in.amb" >/dev/null 2>&1
check "air-gapped: the message arrives by a bundle file" bash -c "'$AM' inbox --store '$T/vault' --ack | grep -q 'into the vault'"
"$AM" bundle export --store "$T/vault" --output "$T/out.amb" >/dev/null 2>&1
"$AM" bundle import --store "$GD" "$T/out.amb" >/dev/null 2>&1
check "... and its receipt comes back the same way: delivered at the gateway" \
    until_ok 100 answers '"state": *"delivered"' GET "http://127.0.0.1:$GP/v1/messages/$MID" "" "$ADMIN"

# ---- enterprise: PKI, roles, SIEM ----
/usr/bin/python3 -c "
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(4)
f=open(sys.argv[2],'ab')
while True:
    c,_=s.accept()
    while True:
        d=c.recv(65536)
        if not d: break
        f.write(d); f.flush()" "$SP" "$T/siem.txt" &
PIDS+=($!)
mkdir -p "$T/hq" "$T/plant-1"
cd "$T/hq" || exit 1
"$AM" keygen --output gateway_identity.pem >/dev/null 2>&1
AUDIT_SYSLOG=tcp://127.0.0.1:$SP "$GW" --trust-mode pki --identity gateway_identity.pem --host 127.0.0.1 --port "$PP" \
    --name hq-gw >"$T/hq.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PP/health" || bad "the PKI gateway starts"
J=$("$AM" pair --gateway-key gateway_identity.pem --gateway "http://127.0.0.1:$PP" --name plant-1 --roles sensor | joincmd)
(cd "$T/plant-1" && exec "$NODE" --join "$J" --port "$NP4" >"$T/plant.log" 2>&1) &
PIDS+=($!)
wait_http "http://127.0.0.1:$NP4/health" || bad "plant-1 starts"
check "enterprise: the node paired into PKI: its certificate (role sensor) accepted on the link" \
    until_ok 300 grep -q 'certificate accepted for "plant-1"' "$T/hq.log"
check "... the pairing went to the SIEM (RFC 6587 over TCP)" until_ok 100 grep -q '[0-9]* <85>1 .* pair - {' "$T/siem.txt"
# ---- garbage collection in the daemon (what a unit relies on, step 7) ----
CP=$(port)
"$AM" init --store "$T/gc" >/dev/null 2>&1
"$AM" keygen --network-key --output "$T/gc.key" >/dev/null 2>&1
MESH_GC_EVERY=1s "$GW" --data "$T/gc" --network-key @"$T/gc.key" --port "$CP" --listen off --dev-token >"$T/gcgw.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$CP/health" || bad "the gc gateway starts"
NOBODY=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
API_TOKEN=$(cat "$T/gc/dev-token") req POST "http://127.0.0.1:$CP/v1/messages" \
    "{\"to\":\"$NOBODY\",\"text\":\"short-lived\",\"ttl\":1}" >/dev/null
check "MESH_GC_EVERY=1s: an expired envelope goes by itself, and the log says so" \
    until_ok 100 grep -q 'gc: 1 expired envelopes removed' "$T/gcgw.log"
finish seed-models
