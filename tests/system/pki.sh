#!/bin/bash
# PKI mode with real daemons: `agent-mesh provision` makes bundles with the
# gateway's key; a provisioned node links and exchanges messages; an
# unprovisioned node, a node provisioned by another gateway, one whose
# certificate has expired and one whose key was revoked are each refused,
# with the reason in the gateway's log, its metrics and its audit log.
# usage: pki.sh AGENT_MESH NODE GATEWAY
set -u
. "$(dirname "$0")/lib.sh"
AM=$1 NODE=$2 GW=$3
T=$(mktemp -d /tmp/am-pki-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
fails=0 passes=0

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" keygen --output "$T/gateway_identity.pem" 2>/dev/null)
"$AM" keygen --output "$T/other_gateway.pem" >/dev/null 2>&1
mkdir -p "$T/g"
"$AM" init --store "$T/g" --identity "$T/gateway_identity.pem" >/dev/null 2>&1 || cp "$T/gateway_identity.pem" "$T/g/identity.pem"
LP=$(port) GP=$(port) SP=$(port)
# a syslog collector (RFC 5424 over UDP) for the gateway's audit records
/usr/bin/python3 -c "
import socket,sys
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', int(sys.argv[1])))
f=open(sys.argv[2], 'ab', buffering=0)
while True:
    d,_=s.recvfrom(65536); f.write(d + b'\n')" "$SP" "$T/syslog.txt" &
PIDS+=($!)
AUDIT_SYSLOG=127.0.0.1:$SP "$GW" --data "$T/g" --trust-mode pki --identity "$T/gateway_identity.pem" --network-key "@$T/net.key" \
    --listen "tcp://127.0.0.1:$LP" --port "$GP" --no-discovery >"$T/g.log" 2>&1 &
PIDS+=($!)
until_ok 50 grep -q "listening for links" "$T/g.log" || bad "gateway up"

"$AM" provision --gateway-key "$T/gateway_identity.pem" --node-id edge_node_1 --network-key "@$T/net.key" \
    --roles sensor,camera --valid 365d --output "$T/bundle.json" >"$T/prov.out"
check "provision writes a bundle" grep -q "provisioned edge_node_1" "$T/prov.out"
check "the bundle is mode 0600" test "$(stat -c %a "$T/bundle.json")" = 600
check "the bundle names node, gateway, roles and holds a certificate" /usr/bin/python3 -c "
import json,sys; b=json.load(open('$T/bundle.json'))
assert b['node_id']=='edge_node_1' and b['gateway_pubkey']=='$G' and b['roles']==['sensor','camera']
assert b['certificate'].startswith('amt1.') and len(b['network_key'])==64 and 'BEGIN PRIVATE KEY' in b['node_key_pem']"
start_node() { # DIR BUNDLE|- [flags]
    local d=$1 b=$2; shift 2
    local extra=()
    [ "$b" != - ] && extra=(--provision "$b")
    "$NODE" --data "$T/$d" "${extra[@]}" --gateway "tcp://127.0.0.1:$LP" --port "$(port)" --no-discovery \
        --link-timeout 3s "$@" >"$T/$d.log" 2>&1 &
    PIDS+=($!)
}
mkdir -p "$T/n1/tools"
echo '{"name": "echo", "description": "echo", "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s"}' \
    >"$T/n1/tools/echo.json"
start_node n1 "$T/bundle.json" --group sensors
check "the provisioned node links" until_ok 100 grep -qs '^link to .*: peer .* "gateway-' "$T/n1.log"
check "the gateway accepted its certificate" until_ok 50 grep -q 'certificate accepted for "edge_node_1"' "$T/g.log"
N1=$(/usr/bin/python3 -c "import json; print(json.load(open('$T/bundle.json'))['node_pubkey'])")
"$AM" send --store "$T/g" --to "$N1" --text "pki hello" >/dev/null
check "messages flow to it" until_ok 100 bash -c "'$AM' inbox --store '$T/n1' --json | grep -q 'pki hello'"
# tool results count in PKI mode only with the node's certificate: it
# rides in the (sealed) result, checked by the gateway
ADMIN=$("$AM" token issue --gateway-key "$T/gateway_identity.pem" --role admin --valid 1h)
call() { curl -s -m 30 -H "Authorization: Bearer $ADMIN" -d "$1" "http://127.0.0.1:$GP/v1/tools/call"; }
check "PKI: a call to the provisioned node, answered with its certificate" \
    grep -q '"status":"ok".*heard: by-node' <<<"$(call "{\"node\":\"$N1\",\"tool\":\"echo\",\"args\":{\"word\":\"by-node\"},\"wait_ms\":15000}")"
check "PKI: a group call, answered by the certified member" \
    grep -q '"node_name":"edge_node_1".*heard: by-group' <<<"$(call '{"group":"sensors","tool":"echo","args":{"word":"by-group"},"ttl":"3s","wait_ms":15000}')"

# refusals
"$AM" init --store "$T/n2" >/dev/null 2>&1
start_node n2 - --network-key "@$T/net.key" --trust-mode pki --trust-key "$G" --name rogue-1
check "unprovisioned: refused (no certificate)" until_ok 100 grep -q 'refused: pki: "rogue-1" has no certificate' "$T/g.log"
check "... and told why" until_ok 50 grep -q "the peer refused the link: pki" "$T/n2.log"
"$AM" provision --gateway-key "$T/other_gateway.pem" --node-id edge_node_2 --network-key "@$T/net.key" \
    --output "$T/other_bundle.json" >/dev/null
start_node n3 "$T/other_bundle.json" --trust-key "$G"
check "provisioned by another gateway: refused" until_ok 100 grep -q 'refused: pki: "edge_node_2": certificate from a gateway this node does not trust' "$T/g.log"
"$AM" provision --gateway-key "$T/gateway_identity.pem" --node-id edge_node_3 --network-key "@$T/net.key" \
    --valid 2s --output "$T/short_bundle.json" >/dev/null
sleep 2.2
start_node n4 "$T/short_bundle.json"
check "expired certificate: refused" until_ok 100 grep -q 'refused: pki: "edge_node_3": certificate expired' "$T/g.log"
"$AM" provision --gateway-key "$T/gateway_identity.pem" --node-id edge_node_4 --network-key "@$T/net.key" \
    --output "$T/bundle4.json" >/dev/null
N4=$(/usr/bin/python3 -c "import json; print(json.load(open('$T/bundle4.json'))['node_pubkey'])")
"$AM" token revoke --gateway-key "$T/gateway_identity.pem" --store "$T/g" --node "$N4" >/dev/null
start_node n5 "$T/bundle4.json"
check "revoked key: refused" until_ok 100 grep -q 'refused: pki: "edge_node_4" is revoked' "$T/g.log"
A=$T/g/audit/audit.log
for why in "has no certificate" "does not trust" "certificate expired" "is revoked"; do
    check "audit log: refusal '$why'" grep -q "\"event\":\"link_refused\".*$why" "$A"
done
check "audit log: the pairing of edge_node_1" grep -q '"event":"pairing".*"subject":"edge_node_1".*"mode":"pki"' "$A"
check "audit log verifies" "$AM" audit verify "$A"
check "each record also went to syslog as RFC 5424 (a refusal at warning: authpriv.warning, <84>)" grep -q '^<84>1 [0-9T:.Z-]* [^ ]* agent-mesh [0-9]* link_refused - {' "$T/syslog.txt"
check "the provisioned node still linked after all that" grep -q '^link to .*: peer' "$T/n1.log"
"$AM" provision --gateway-key "$T/gateway_identity.pem" --node-id "bad name" --network-key "@$T/net.key" --output "$T/x.json" 2>"$T/err"
check "a bad node id is refused by name" grep -q "node-id" "$T/err"
echo '{"version":1}' >"$T/broken.json"
"$NODE" --data "$T/n9" --provision "$T/broken.json" >/dev/null 2>"$T/err"
check "a broken bundle is refused naming the field" grep -q 'broken.json: provisioning bundle: "node_id"' "$T/err"
/usr/bin/python3 -c "
import json; b=json.load(open('$T/bundle.json')); b['roles']=['admin']; json.dump(b, open('$T/altered.json','w'))"
"$NODE" --data "$T/n8" --provision "$T/altered.json" >/dev/null 2>"$T/err"
check "an altered bundle is refused (signature)" grep -q "signature does not verify" "$T/err"
echo "pki: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
