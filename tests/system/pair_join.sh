#!/bin/bash
# A second machine joins in one step (issue 12, point 2): the gateway in
# one network namespace (10.72.1.1), the new node in another (10.72.1.2),
# joined by a veth pair, so the node's only way to the gateway is the LAN.
# On the gateway's machine `agent-mesh pair` prints a code and the one
# command; on the node's machine that command joins, links, and takes the
# gateway's tokens with no --trust-key. The code is single use, expires,
# is refused mistyped, and never travels: a claim made here in Python
# (an implementation of PROTOCOL.md §20 of its own) gets a grant that does
# not hold the network key in the clear. Then the same with a PKI gateway:
# the grant carries the node's certificate. On da7c989 the node's
# `--join` was "unrecognized option" and `agent-mesh pair` "unknown
# command"; and a link to a daemon's HTTP port (the default) from any
# other address than loopback failed ("Protocol error": the relay passed
# the client's Host on to nng's loopback listener, which answers 404 to a
# host it does not listen on). Needs root for `ip netns`; skips (exit 77) where namespaces
# cannot be made.
# usage: pair_join.sh AGENT_MESH NODE GATEWAY
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") NODE=$(realpath "$2") GW=$(realpath "$3")
scratch am-pair
chmod 755 "$T"
NS=ampj$$
AT_EXIT='ip netns del ${NS}s 2>/dev/null; ip netns del ${NS}f 2>/dev/null'
in_ns() { local n=$1; shift; ip netns exec "$NS$n" "$@"; }
if ! ip netns add "${NS}s" 2>/dev/null; then
    echo "SKIP: cannot make network namespaces here (needs root and iproute2)"
    exit 77
fi
ip netns add "${NS}f" || { echo "FAIL: netns"; exit 1; }
for n in s f; do in_ns $n ip link set lo up; done
ip link add "${NS}sf" netns "${NS}s" type veth peer name "${NS}fs" netns "${NS}f"
in_ns s ip addr add 10.72.1.1/24 dev "${NS}sf"; in_ns s ip link set "${NS}sf" up
in_ns f ip addr add 10.72.1.2/24 dev "${NS}fs"; in_ns f ip link set "${NS}fs" up
check "the node's machine reaches the gateway's over the veth" in_ns f ping -c1 -W2 10.72.1.1
GP=8787 NP=8000 PP=8788 # each namespace has its own ports: the guide's
export MESH_DISCOVERY=off
code_of() { sed -n 's/^pairing code \([0-9a-f-]*\) .*/\1/p'; }

# ---- the site: a gateway on all addresses (no --dev-token) ----
mkdir -p "$T/site" "$T/far"
cd "$T/site" || exit 1
ip netns exec "${NS}s" "$GW" --host 0.0.0.0 --port $GP >"$T/g.log" 2>&1 &
PIDS+=($!)
check "the gateway starts" until_ok 300 in_ns s curl -s -o /dev/null -m 2 "http://127.0.0.1:$GP/health"
GD=$T/site/agent-mesh-data/gateway
GFP=$(sed -n 's/.*network key .* (fingerprint \([0-9a-f]*\)).*/\1/p' "$T/g.log")
G=$(sed -n 's/^agent-mesh-gateway \([0-9a-f]\{64\}\) .*/\1/p' "$T/g.log")

# ---- on the gateway's machine: one command ----
in_ns s "$AM" pair --name edge_node_1 >"$T/pair.out" 2>&1
check "agent-mesh pair prints a code" grep -Eq '^pairing code [0-9a-f]{4}(-[0-9a-f]{4}){5} \(single use' "$T/pair.out"
JOIN=$(sed -n 's/^ *agent-mesh-node --join \(.*\)$/\1/p' "$T/pair.out")
check "... and the node's command, on an address the other machine reaches ($JOIN)" \
    bash -c "[[ '$JOIN' == 10.72.1.1:$GP/* ]]"
check "... and the network key's fingerprint to compare" grep -q "fingerprint: $GFP" "$T/pair.out"

# ---- on the node's machine: one command, in a plain folder ----
cd "$T/far" || exit 1
ip netns exec "${NS}f" "$NODE" --join "$JOIN" --host 0.0.0.0 --port $NP >"$T/n.log" 2>&1 &
NPID=$!; PIDS+=($NPID)
check "the node starts with --join only" until_ok 300 in_ns f curl -s -o /dev/null -m 2 "http://127.0.0.1:$NP/health"
ND=$T/far/agent-mesh-data/node
check "... holds the site's network key (the same fingerprint), 0600" bash -c \
    "grep -q 'fingerprint $GFP' '$T/n.log' && test \"\$(stat -c %a '$ND/network.key')\" = 600"
N=$(sed -n 's/^agent-mesh-node \([0-9a-f]\{64\}\) .*/\1/p' "$T/n.log")
export API_TOKEN; API_TOKEN=$("$AM" token issue --data "$GD" --role admin --valid 1h)
linked() { in_ns s bash -c "$(declare -f req field); req GET http://127.0.0.1:$GP/v1/mesh_scan" |
    field "[p['link'] + ' ' + p['name'] for p in d['peers'] if p['id'] == '$N'][0]" | grep -qx "up edge_node_1"; }
check "... links to the gateway over the LAN, under the name the code gave (mesh_scan)" until_ok 300 linked
check "the gateway pinned it at the pairing (agent-mesh trust list)" bash -c \
    "'$AM' trust list --data '$GD' | grep -q edge_node_1"
nreq() { in_ns f bash -c "$(declare -f req); req $*"; }
inbox_open() { nreq GET "http://127.0.0.1:$NP/v1/inbox" | grep -q '^200 '; }
check "the node takes the gateway's tokens with no --trust-key" inbox_open
in_ns s bash -c "$(declare -f req); req POST http://127.0.0.1:$GP/v1/messages '{\"to\":\"$N\",\"text\":\"over the LAN\"}'" >/dev/null
inbox_has() { nreq GET "http://127.0.0.1:$NP/v1/inbox" | grep -q "over the LAN"; }
check "a message from the gateway reaches it" until_ok 300 inbox_has
check "the pairing is audited on the gateway (pair)" grep -q '"event":"pair"' "$GD/audit/audit.log"

# ---- what is refused ----
mkdir -p "$T/far2" && cd "$T/far2" || exit 1
in_ns f "$NODE" --join "$JOIN" --port 8001 >"$T/reuse.out" 2>&1; rc=$?
check "the code again, from another node: exit 2, used up" bash -c \
    "[ $rc = 2 ] && grep -q 'no such pairing code: expired, used or mistyped' '$T/reuse.out'"
in_ns f "$NODE" --join "10.72.1.1:$GP/12-34" --port 8001 >"$T/typo.out" 2>&1; rc=$?
check "a mistyped code: exit 2, saying what a code is" bash -c "[ $rc = 2 ] && grep -q '24 hex digits' '$T/typo.out'"
in_ns f "$NODE" --join "10.72.1.1:$GP/$(head -c12 /dev/urandom | od -An -tx1 | tr -d ' \n')" --port 8001 >"$T/guess.out" 2>&1; rc=$?
check "a guessed code: exit 2, refused" bash -c "[ $rc = 2 ] && grep -q 'no such pairing code' '$T/guess.out'"
(cd "$T/site" && in_ns s "$AM" pair --valid 1s) >"$T/short.out" 2>&1
SHORT=$(sed -n 's/^ *agent-mesh-node --join \(.*\)$/\1/p' "$T/short.out")
sleep 2
in_ns f "$NODE" --join "$SHORT" --port 8001 >"$T/late.out" 2>&1; rc=$?
check "an expired code (--valid 1s, 2 s later): exit 2, refused" bash -c "[ $rc = 2 ] && grep -q 'no such pairing code' '$T/late.out'"
check "refused claims are audited (pair_refused)" grep -q '"event":"pair_refused"' "$GD/audit/audit.log"
in_ns s "$AM" pair --data "$T/nowhere" >"$T/nodata.out" 2>&1; rc=$?
check "pair with a folder that holds no gateway key: exit 1, naming it" bash -c \
    "[ $rc = 1 ] && grep -q 'nowhere/identity.pem' '$T/nodata.out'"

# ---- the code never travels: a claim made by this test (PROTOCOL.md §20) ----
(cd "$T/site" && in_ns s "$AM" pair) >"$T/p2.out" 2>&1
CODE=$(code_of <"$T/p2.out")
claim() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import hashlib, json, os, struct, sys, urllib.request, urllib.error
code = bytes.fromhex(sys.argv[2].replace("-", ""))
master = hashlib.blake2b(code, digest_size=32).digest()
ck = hashlib.blake2b(b"", key=master, salt=struct.pack("<Q", 1), person=b"ampair01", digest_size=32).digest()
pk = os.urandom(32)
proof = hashlib.blake2b(b"agent-mesh pair claim v1" + pk, key=ck, digest_size=32).hexdigest()
body = json.dumps({"node": pk.hex(), "name": "probe", "proof": proof}).encode()
r = urllib.request.Request(sys.argv[1], data=body, method="POST")
try:
    with urllib.request.urlopen(r, timeout=10) as f:
        print(f.status, f.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}
NK=$(tr -d '\n' <"$GD/network.key")
in_ns f bash -c "$(declare -f claim); claim http://10.72.1.1:$GP/v1/pair/claim $CODE" >"$T/claim1.out"
check "a claim with the right proof: 200 and a sealed grant" grep -Eq '^200 \{"grant": ?"[0-9a-f]+"\}' "$T/claim1.out"
check "... in which the network key is not to be read" bash -c "! grep -qi '$NK' '$T/claim1.out'"
in_ns f bash -c "$(declare -f claim); claim http://10.72.1.1:$GP/v1/pair/claim $CODE" >"$T/claim2.out"
check "... and the same code claimed again: 403" grep -q '^403 ' "$T/claim2.out"
BAD=$(in_ns f curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -d '{"node":"zz"}' "http://10.72.1.1:$GP/v1/pair/claim")
check "a malformed claim: 400" test "$BAD" = 400

# ---- the node restarts: no code needed, the same key, linked again ----
kill -TERM $NPID; wait $NPID 2>/dev/null
cd "$T/far" || exit 1
ip netns exec "${NS}f" "$NODE" --join "$JOIN" --host 0.0.0.0 --port $NP >"$T/n2.log" 2>&1 &
NPID=$!; PIDS+=($NPID)
check "restarted with --join still in its command line: told it is not needed, the same key" \
    until_ok 100 bash -c "grep -q 'joined its gateway before' '$T/n2.log' && grep -q '^agent-mesh-node $N ' '$T/n2.log'"
check "... and linked again" until_ok 300 linked

# ---- a PKI gateway: the grant carries the node's certificate ----
mkdir -p "$T/pki" "$T/farpki"
cd "$T/pki" || exit 1
ip netns exec "${NS}s" "$GW" --host 0.0.0.0 --port $PP --trust-mode pki >"$T/gp.log" 2>&1 &
PIDS+=($!)
check "a PKI gateway starts" until_ok 300 in_ns s curl -s -o /dev/null -m 2 "http://127.0.0.1:$PP/health"
in_ns s "$AM" pair --gateway "http://127.0.0.1:$PP" --name crane_1 --roles sensor >"$T/pp.out" 2>&1
PJOIN=$(sed -n 's/^ *agent-mesh-node --join \(.*\)$/\1/p' "$T/pp.out")
cd "$T/farpki" || exit 1
ip netns exec "${NS}f" "$NODE" --join "$PJOIN" --host 0.0.0.0 --port 8002 >"$T/np.log" 2>&1 &
PIDS+=($!)
check "a node joins it" until_ok 300 in_ns f curl -s -o /dev/null -m 2 "http://127.0.0.1:8002/health"
check "... keeps its certificate (provision.json, 0600)" bash -c \
    "test \"\$(stat -c %a '$T/farpki/agent-mesh-data/node/provision.json' 2>/dev/null)\" = 600"
check "... for its own key and name" bash -c \
    "grep -q 'crane_1' '$T/farpki/agent-mesh-data/node/provision.json' && ! grep -q PRIVATE '$T/farpki/agent-mesh-data/node/provision.json'"
check "... and the PKI gateway accepts the certificate on the link" \
    until_ok 300 grep -q 'certificate accepted for "crane_1"' "$T/gp.log"
finish pair-join
