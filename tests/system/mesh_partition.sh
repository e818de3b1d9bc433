#!/bin/bash
# Multi-hop with partitions, in three network namespaces joined by veth
# pairs: node A (10.71.1.2) -- gateway G (10.71.1.1 | 10.71.2.1) -- node B
# (10.71.2.2); A and B never see each other. The daemons run inside their
# namespaces; their stores are read from here.
#  1. Cut A-G; A takes 1 000 messages for B through its HTTP API; cut G-B;
#     restore A-G: G receives them and holds them; restore G-B: all 1 000
#     reach B's inbox exactly once, receipts go back to A (A tombstones
#     them) and G's copies are purged.
#  2. Link flaps: A sends 5 000 more while G-B goes down 25 times (veth
#     down for 0.1-0.6 s) and B is killed with SIGKILL and restarted 25
#     times, at random moments; then everything is at B exactly once.
# Needs root for `ip netns`; skips (exit 77) with a message where
# namespaces cannot be made.
# (daemons are started with `ip netns exec` itself in the background, not
# through a shell function, so $! is the daemon and kill -9 reaches it)
# usage: mesh_partition.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
T=$(mktemp -d /tmp/am-part-XXXXXX)
chmod 755 "$T"
NS=amp$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for n in a g b; do ip netns del "$NS$n" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
fails=0 passes=0
ok()  { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
until_ok() { local n=$1; shift; for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done; return 1; }
in_ns() { local n=$1; shift; ip netns exec "$NS$n" "$@"; }

if ! ip netns add "${NS}a" 2>/dev/null; then
    echo "SKIP: cannot make network namespaces here (needs root and iproute2)"
    exit 77
fi
ip netns add "${NS}g" && ip netns add "${NS}b" || { echo "FAIL: netns"; exit 1; }
for n in a g b; do in_ns $n ip link set lo up; done
ip link add "${NS}ag" netns "${NS}a" type veth peer name "${NS}ga" netns "${NS}g"
ip link add "${NS}bg" netns "${NS}b" type veth peer name "${NS}gb" netns "${NS}g"
in_ns a ip addr add 10.71.1.2/24 dev "${NS}ag"; in_ns a ip link set "${NS}ag" up
in_ns g ip addr add 10.71.1.1/24 dev "${NS}ga"; in_ns g ip link set "${NS}ga" up
in_ns g ip addr add 10.71.2.1/24 dev "${NS}gb"; in_ns g ip link set "${NS}gb" up
in_ns b ip addr add 10.71.2.2/24 dev "${NS}bg"; in_ns b ip link set "${NS}bg" up
check "A reaches G, B reaches G" bash -c "ip netns exec ${NS}a ping -c1 -W2 10.71.1.1 >/dev/null && ip netns exec ${NS}b ping -c1 -W2 10.71.2.1 >/dev/null"
check "A has no route to B" bash -c "ip netns exec ${NS}a ip route get 10.71.2.2 2>&1 | grep -q unreachable"
link_down() { in_ns "$1" ip link set "$2" down; }
link_up()   { in_ns "$1" ip link set "$2" up; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" init --store "$T/a" >/dev/null 2>&1
"$AM" init --store "$T/g" >/dev/null 2>&1
B=$("$AM" init --store "$T/b" 2>/dev/null)
G=$("$AM" store stats --store "$T/g" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['node_id'])")
export API_TOKEN; API_TOKEN=$("$AM" token issue --gateway-key "$T/g/identity.pem" --role admin --valid 1h)
FLAGS=(--network-key "@$T/net.key" --no-discovery --link-timeout 2s --trust-key "$G")
ip netns exec "${NS}g" "$GW" --data "$T/g" "${FLAGS[@]}" --listen tcp://0.0.0.0:7400 --name gw >"$T/g.log" 2>&1 &
PIDS+=($!)
ip netns exec "${NS}a" "$NODE" --data "$T/a" "${FLAGS[@]}" --gateway tcp://10.71.1.1:7400 --name node-a >"$T/a.log" 2>&1 &
PIDS+=($!)
start_b() {
    ip netns exec "${NS}b" "$NODE" --data "$T/b" "${FLAGS[@]}" --gateway tcp://10.71.2.1:7400 --name node-b >>"$T/b.log" 2>&1 &
    BP=$!
    PIDS+=($BP)
}
start_b
stat_of() { "$AM" store stats --store "$T/$1" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
inbox_check() { # prints the count at B, fails when an id is there twice
    "$AM" inbox --store "$T/b" --json --limit 100000 | /usr/bin/python3 -c "
import json,sys; i=[e['id'] for e in json.load(sys.stdin)]
print(len(i)); sys.exit(0 if len(i) == len(set(i)) else 3)"
}
linked() { grep -c "^link to .*: peer" "$T/$1.log" 2>/dev/null | awk '{exit !($1 >= 1)}'; }
check "A and B linked to G" until_ok 100 bash -c "grep -q '^link to .*: peer' '$T/a.log' && grep -q '^link to .*: peer' '$T/b.log'"

# post N messages to B on A's API (inside A's namespace), from START
post() {
    in_ns a /usr/bin/python3 - "$B" "$1" "$2" <<'PY'
import json, os, sys, urllib.request
b, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(start, start + n):
    r = urllib.request.Request("http://127.0.0.1:8000/v1/messages", method="POST",
        data=json.dumps({"to": b, "text": "part %d" % i}).encode(),
        headers={"Authorization": "Bearer " + os.environ["API_TOKEN"]})
    with urllib.request.urlopen(r, timeout=10) as f:
        assert f.status == 202
PY
}

echo "== 1. partitions"
link_down a "${NS}ag"
post 0 1000 || bad "posting 1000 on A"
check "A holds 1000 for B" test "$(stat_of a outbox)" -ge 1000
link_down b "${NS}bg"
link_up a "${NS}ag"
g_holds() { [ "$(stat_of g outbox)" -ge 1000 ]; }
check "A-G back: G holds the 1000 (B cut off)" until_ok 150 g_holds
check "B has none of them yet" test "$(inbox_check)" -eq 0
link_up b "${NS}bg"
b_has() { [ "$(inbox_check)" -eq "$1" ]; }
check "G-B back: all 1000 at B" until_ok 150 b_has 1000
check "exactly once (no id twice in B's inbox)" inbox_check
a_purged() { [ "$(stat_of a tombstones)" -ge 1000 ]; }
check "receipts back at A: A tombstoned all 1000" until_ok 150 a_purged
# what is left at G are the receipts (high priority, kept until they
# expire so other carriers learn of the delivery); no message is
g_purged() { [ "$(stat_of g tombstones)" -ge 1000 ] && [ "$(stat_of g by_priority | tr -d '[] ' | cut -d, -f2)" = 0 ]; }
check "G's copies purged (G holds no message, only receipts)" until_ok 150 g_purged
echo "  a: $(stat_of a envelopes) envelopes, $(stat_of a tombstones) tombstones; g: $(stat_of g envelopes) (by priority $(stat_of g by_priority)), $(stat_of g tombstones) tombstones"

echo "== 2. 50 link flaps during a 5000-envelope sync"
post 1000 5000 &
POSTER=$!
flaps=0 kills=0
for i in $(seq 1 50); do
    sleep "0.$((RANDOM % 5 + 1))"
    if [ $((i % 2)) -eq 0 ]; then
        link_down b "${NS}bg"; sleep "0.$((RANDOM % 6 + 1))"; link_up b "${NS}bg"
        flaps=$((flaps + 1))
    else
        kill -9 "$BP" 2>/dev/null; wait "$BP" 2>/dev/null
        start_b
        kills=$((kills + 1))
    fi
done
wait "$POSTER" || bad "posting 5000 on A"
echo "  $flaps veth flaps, $kills SIGKILL+restart of B; B has $(inbox_check) so far"
check "after the flaps all 6000 reach B" until_ok 300 b_has 6000
check "exactly once after the flaps" inbox_check
check "A's outbox empties as receipts return" until_ok 150 bash -c "[ \$('$AM' store stats --store '$T/a' --json | /usr/bin/python3 -c \"import json,sys; print(json.load(sys.stdin)['tombstones'])\") -ge 6000 ]"
echo "  B linked $(grep -c '^link to .*: peer' "$T/b.log") times"
echo "mesh_partition: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
