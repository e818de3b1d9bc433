#!/bin/bash
# `agent-mesh link sync` between two real processes on 127.0.0.1 (tcp) and
# over a unix socket (ipc): messages both ways, nothing twice on a second
# sync, a third node reached through a carrier, and a wrong network key
# refused by name on both ends.
# usage: link_sync.sh PATH/TO/agent-mesh
set -u
. "$(dirname "$0")/lib.sh"
AM=$1
T=$(mktemp -d /tmp/am-link-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
fails=0 passes=0
count() { "$AM" inbox --store "$T/$1" --json --limit 100000 | /usr/bin/python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }

# sync LISTENER DIALER URL [KEY_L [KEY_D]]: run both, wait, report both exits
sync_pair() {
    local kl=${4:-$T/net.key} kd=${5:-${4:-$T/net.key}}
    "$AM" link sync --store "$T/$1" --listen "$3" --network-key "@$kl" --timeout 10s >"$T/l.out" 2>"$T/l.err" &
    local lp=$!; PIDS+=("$lp")
    for _ in $(seq 1 50); do sleep 0.05; "$AM" link sync --store "$T/$2" --dial "$3" --network-key "@$kd" --timeout 10s \
        >"$T/d.out" 2>"$T/d.err" && { DRC=0; break; } || DRC=$?; grep -q "refused\|Connection refused\|nobody" "$T/d.err" || break; done
    wait "$lp"; LRC=$?
}

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" keygen --network-key --output "$T/other.key" 2>/dev/null
A=$("$AM" init --store "$T/a" 2>/dev/null)
B=$("$AM" init --store "$T/b" 2>/dev/null)
C=$("$AM" init --store "$T/c" 2>/dev/null)
for i in $(seq 1 50); do "$AM" send --store "$T/a" --to "$B" --text "a->b $i" >/dev/null; done
for i in $(seq 1 20); do "$AM" send --store "$T/b" --to "$A" --text "b->a $i" >/dev/null; done
"$AM" send --store "$T/a" --to "$C" --text "a->c via b" >/dev/null

URL=tcp://127.0.0.1:$(port)
sync_pair a b "$URL"
check "tcp: listener exits 0" test "$LRC" -eq 0
check "tcp: dialer exits 0" test "$DRC" -eq 0
check "tcp: B got 50" test "$(count b)" = 50
check "tcp: A got 20" test "$(count a)" = 20
check "the report names the peer" grep -q "linked with $A" "$T/d.out"

# again: only the receipts each side made travel; then nothing at all
sync_pair a b tcp://127.0.0.1:$(port)
check "second sync: only the receipt comes back" grep -q "received 1 " "$T/d.out"
check "second sync: B still 50" test "$(count b)" = 50
check "second sync: A purged what B received" test "$("$AM" store stats --store "$T/a" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tombstones'])")" -ge 50
sync_pair a b tcp://127.0.0.1:$(port)
check "third sync: nothing moves" grep -q "sent 0, received 0" "$T/d.out"

# B carries a->c on to C, over a unix socket
sync_pair b c "ipc://$T/link.sock"
check "ipc: C got the message A gave B to carry" test "$(count c)" = 1

# and over a websocket
"$AM" send --store "$T/c" --broadcast --text "over a websocket" >/dev/null
sync_pair b c "ws://127.0.0.1:$(port)/mesh"
check "ws: both exit 0" test "$LRC" -eq 0 -a "$DRC" -eq 0
check "ws: b got c's broadcast" bash -c "'$AM' inbox --store '$T/b' --json --limit 1000 | grep -q 'over a websocket'"

# a wrong network key: refused on both ends, by name
before=$(count b)
sync_pair a b tcp://127.0.0.1:$(port) "$T/net.key" "$T/other.key"
check "wrong key: listener exits 1" test "$LRC" -eq 1
check "wrong key: dialer exits 1" test "$DRC" -eq 1
check "wrong key: listener says why" grep -q "network's key" "$T/l.err"
check "wrong key: dialer says why" grep -q "network key" "$T/d.err"
check "wrong key: nothing moved" test "$(count b)" = "$before"

# the push scheduler: most urgent first, then oldest. 300 bulk then one
# urgent, made last: pushed in batches of 256, the urgent one must ride
# the first batch (within a batch the store commits in time order, so it
# is the first batch's last), not the second
D=$("$AM" init --store "$T/d" 2>/dev/null)
E=$("$AM" init --store "$T/e" 2>/dev/null)
for i in $(seq 1 300); do "$AM" send --store "$T/d" --to "$E" --priority 0 --text "bulk $i" >/dev/null; done
"$AM" send --store "$T/d" --to "$E" --priority 3 --text "urgent" >/dev/null
sync_pair d e tcp://127.0.0.1:$(port)
at=$("$AM" inbox --store "$T/e" --json --limit 1000 | /usr/bin/python3 -c "import json,sys; t=[m['text'] for m in json.load(sys.stdin)]; print(t.index('urgent') if 'urgent' in t and len(t) == 301 else -1)")
check "push order: the urgent one made last arrives in the first batch (at $at of 301)" test "$at" -ge 0 -a "$at" -lt 256

# bad arguments
"$AM" link sync --store "$T/a" --dial tcp://127.0.0.1:1 --network-key 1234 >/dev/null 2>"$T/err"
check "short network key refused" grep -q "64 hex" "$T/err"
"$AM" link sync --store "$T/a" --network-key "@$T/net.key" >/dev/null 2>"$T/err"
check "needs --listen or --dial" grep -q "one of --listen" "$T/err"

echo "link_sync: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
