#!/bin/bash
# Multicast discovery between two network namespaces joined by a veth pair
# (10.72.0.1 and 10.72.0.2), no --peer anywhere: the two nodes with the
# network key find each other by beacon and link; a third node with
# another network key is heard but refused (its beacons fail the MAC) and
# never linked; a node with MESH_DISCOVERY=off sends no beacons. Then a
# message goes across the discovered link. Two nodes with the default
# links (on their HTTP port) find each other as well. MESH_MULTICAST_PORT moves the
# group's port (set here to keep the test off the real 9999).
# usage: discovery.sh AGENT_MESH NODE
set -u
AM=$1 NODE=$2
T=$(mktemp -d /tmp/am-disc-XXXXXX)
chmod 755 "$T"
NS=amd$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for n in 1 2; do ip netns del "$NS$n" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
fails=0 passes=0
ok()  { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
until_ok() { local n=$1; shift; for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done; return 1; }

if ! ip netns add "${NS}1" 2>/dev/null; then
    echo "SKIP: cannot make network namespaces here (needs root and iproute2)"
    exit 77
fi
ip netns add "${NS}2"
ip link add "${NS}a" netns "${NS}1" type veth peer name "${NS}b" netns "${NS}2"
for i in 1 2; do
    dev=$([ $i = 1 ] && echo "${NS}a" || echo "${NS}b")
    ip netns exec "$NS$i" ip link set lo up
    ip netns exec "$NS$i" ip addr add "10.72.0.$i/24" dev "$dev"
    ip netns exec "$NS$i" ip link set "$dev" up
    ip netns exec "$NS$i" ip route add 224.0.0.0/4 dev "$dev"
done
export MESH_MULTICAST_PORT=19999

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" keygen --network-key --output "$T/other.key" 2>/dev/null
N1=$("$AM" init --store "$T/n1" 2>/dev/null)
N2=$("$AM" init --store "$T/n2" 2>/dev/null)
"$AM" init --store "$T/n3" >/dev/null 2>&1
"$AM" init --store "$T/n4" >/dev/null 2>&1
# the APIs trust one issuing key; its token is used for every call
ISSUER=$("$AM" keygen --output "$T/issuer.pem" 2>/dev/null)
export API_TOKEN; API_TOKEN=$("$AM" token issue --gateway-key "$T/issuer.pem" --role admin --valid 1h)
start() { # NS DIR KEY LISTEN_PORT HTTP_PORT NAME [flags]
    local ns=$1 d=$2 k=$3 lp=$4 hp=$5 name=$6; shift 6
    ip netns exec "$NS$ns" "$NODE" --data "$T/$d" --network-key "@$T/$k" --listen "tcp://0.0.0.0:$lp" \
        --port "$hp" --name "$name" --beacon-every 300ms --trust-key "$ISSUER" "$@" >"$T/$d.log" 2>&1 &
    PIDS+=($!)
}
start 1 n1 net.key 7400 8000 disc-1
start 2 n2 net.key 7400 8000 disc-2
start 2 n3 other.key 7401 8001 stranger
MESH_DISCOVERY=off start 1 n4 net.key 7402 8002 quiet
# and two with the default links, on their HTTP port (ws://...:8010/mesh,
# beacons "AMB2"); on da7c989 these sent no beacons at all
# (a network key of their own, so the scenario above stays as it was)
"$AM" keygen --network-key --output "$T/ws.key" 2>/dev/null
"$AM" init --store "$T/n5" >/dev/null 2>&1
"$AM" init --store "$T/n6" >/dev/null 2>&1
for i in 5 6; do
    ns=$((i - 4))
    ip netns exec "$NS$ns" "$NODE" --data "$T/n$i" --network-key "@$T/ws.key" --host 0.0.0.0 --port 8010 \
        --name "disc-ws-$ns" --beacon-every 300ms --trust-key "$ISSUER" >"$T/n$i.log" 2>&1 &
    PIDS+=($!)
done
get() { ip netns exec "$NS$1" /usr/bin/python3 -c "
import os,sys,urllib.request
r=urllib.request.Request(sys.argv[1]); r.add_header('Authorization', 'Bearer ' + os.environ['API_TOKEN'])
print(urllib.request.urlopen(r, timeout=5).read().decode())" "$2"; }
metric() { get "$1" "http://127.0.0.1:$2/metrics" | awk -v m="$3" '$1 == m {print $2}'; }
up_with() { get "$1" "http://127.0.0.1:$2/v1/mesh_scan" | /usr/bin/python3 -c "
import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(p['name'] == '$3' and p['link'] == 'up' for p in d['peers']) else 1)"; }
check "disc-1 and disc-2 find each other and link" until_ok 75 bash -c "$(declare -f get up_with); NS=$NS; up_with 1 8000 disc-2 && up_with 2 8000 disc-1"
check "two nodes with the default links (no --listen) find each other and link" until_ok 75 bash -c \
    "$(declare -f get up_with); NS=$NS; up_with 1 8010 disc-ws-2 && up_with 2 8010 disc-ws-1"
check "... dialing the ws link on the HTTP port" grep -q 'discovery: "disc-ws-\(1\|2\)" at ws://10.72.0.[12]:8010/mesh' "$T/n5.log" "$T/n6.log"
check "the log says how it was found" grep -q 'discovery: "disc-\(1\|2\)" at tcp://10.72.0.' "$T/n1.log" "$T/n2.log"
check "the link is marked as discovered" bash -c "$(declare -f get); NS=$NS; get 1 http://127.0.0.1:8000/v1/mesh_scan | grep -q '\"via\":\"discovery\"\|\"via\":\"inbound\"'"
refused() { [ "$(metric 1 8000 'am_discovery_beacons_total{result="refused"}')" -ge 2 ]; }
check "the stranger's beacons are refused (another network key)" until_ok 50 refused
check "and it is never linked" bash -c "! grep -q 'stranger' '$T/n1.log'"
check "a node with MESH_DISCOVERY=off sends no beacons" test "$(metric 1 8002 'am_discovery_beacons_total{result="sent"}')" = 0
check "it says so at start" bash -c "! grep -q '^discovery on' '$T/n4.log'"
ip netns exec "${NS}1" /usr/bin/python3 -c "
import json,urllib.request
r=urllib.request.Request('http://127.0.0.1:8000/v1/messages', method='POST', data=json.dumps({'to':'$N2','text':'found you'}).encode(), headers={'Authorization': 'Bearer $API_TOKEN'})
urllib.request.urlopen(r, timeout=30)"
arrived() { get 2 "http://127.0.0.1:8000/v1/inbox" | grep -q "found you"; }
check "a message crosses the discovered link" until_ok 300 arrived
echo "discovery: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
