#!/bin/bash
# A gateway and two nodes as real processes on 127.0.0.1, linked live
# (the nodes dial the gateway and the links stay open): messages both ways
# and node to node through the gateway, group, broadcast and geo-targeted
# delivery, receipts back to the sender, mesh_scan, TOFU (a changed key
# under a known name is refused, logged and counted), hostile frames after
# a good handshake (garbage, replayed, oversize, truncated), and the
# gateway serving the others throughout.
# usage: mesh_live.sh AGENT_MESH NODE GATEWAY LINK_HOSTILE
set -u
. "$(dirname "$0")/lib.sh"
AM=$1 NODE=$2 GW=$3 HOSTILE=$4
T=$(mktemp -d /tmp/am-mesh-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; [ "$fails" -eq 0 ] || show_logs; rm -rf "$T"' EXIT
fails=0 passes=0
js() { /usr/bin/python3 -c "import json,sys; d=json.loads(sys.stdin.read().split(' ',1)[1]); print($1)"; }
metric() { req GET "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# wait until CMD succeeds (up to N tenths of a second)

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
N1=$("$AM" init --store "$T/n1" 2>/dev/null)
N2=$("$AM" init --store "$T/n2" 2>/dev/null)
# one capability token, issued with the gateway's key, for all three APIs
# (the nodes trust the gateway's key)
export API_TOKEN; API_TOKEN=$("$AM" token issue --gateway-key "$T/g/identity.pem" --role admin --valid 1h)
GP=$(port) LP=$(port) P1=$(port) P2=$(port)
GU=http://127.0.0.1:$GP U1=http://127.0.0.1:$P1 U2=http://127.0.0.1:$P2
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --name site-gw \
    --no-discovery >"$T/g.log" 2>&1 &
PIDS+=($!); GPID=$!
start_node() { # DIR PORT NAME [more flags]
    local d=$1 p=$2 name=$3; shift 3
    "$NODE" --data "$T/$d" --network-key "@$T/net.key" --gateway "tcp://127.0.0.1:$LP" --port "$p" --name "$name" \
        --no-discovery --trust-key "$G" "$@" >>"$T/$d.log" 2>&1 &
    PIDS+=($!)
}
start_node n1 "$P1" crane-1 --position 52.52,13.405 --zone north-yard --group cranes
N1PID=$!
start_node n2 "$P2" office-1 --position 48.85,2.35 --group office
N2PID=$!
links_up() { [ "$(req GET "$GU/v1/mesh_scan" | js "sum(p['link'] == 'up' for p in d['peers'])")" = 2 ]; }
check "both nodes linked to the gateway within 10 s" until_ok 100 links_up
S=$(req GET "$GU/v1/mesh_scan")
check "mesh_scan: crane-1 by name, with position and zone" test "$(echo "$S" | js "[p for p in d['peers'] if p['name'] == 'crane-1'][0]['position']['lat']")" = 52.52
check "mesh_scan: crane-1's zone and group" test "$(echo "$S" | js "[(p['zones'], p['groups']) for p in d['peers'] if p['name'] == 'crane-1'][0]")" = "(['north-yard'], ['cranes'])"
check "mesh_scan: addresses and queue depth" test "$(echo "$S" | js "all('addresses' in p and 'queue_depth' in p and 'last_seen_ms' in p for p in d['peers'])")" = True
check "gateway: two links open at once" test "$(metric "$GU/v1" am_links_open)" = 2
check "trust store pinned both names" test "$(/usr/bin/python3 -c "import json; print(sorted(json.load(open('$T/g/trust/trust_store.json'))['peers']))")" = "['crane-1', 'office-1']"

# gateway -> node: live, no new session needed
before=$(metric "$GU/v1" am_links_total | head -1)
out=$(req POST "$GU/v1/messages" "{\"to\":\"$N1\",\"text\":\"lift plan approved\"}")
MID=$(echo "$out" | js "d['id']")
IN=$(req GET "$U1/v1/inbox?wait_ms=5000")
check "gateway -> crane-1 over the open link" grep -q "lift plan approved" <<<"$IN"
delivered() { req GET "$GU/v1/messages/$MID" | grep -q '"delivered":true'; }
check "the receipt comes back live: delivered on the gateway" until_ok 50 delivered
check "gateway dropped its copy after the receipt" bash -c "! '$AM' store get --store '$T/g' --id $MID --output '$T/x' 2>/dev/null"
# node -> node through the gateway
out=$(req POST "$U1/v1/messages" "{\"to\":\"$N2\",\"text\":\"crane-1 to office-1\"}")
check "crane-1 -> office-1 through the gateway" grep -q "crane-1 to office-1" <<<"$(req GET "$U2/v1/inbox?wait_ms=5000")"
out=$(req POST "$U2/v1/messages" "{\"to\":\"$G\",\"text\":\"office-1 to the gateway\"}")
check "office-1 -> gateway" until_ok 50 answers "office-1 to the gateway" GET "$GU/v1/inbox"
# group: only members' inboxes
out=$(req POST "$GU/v1/messages" '{"group":"cranes","text":"to every crane"}')
GRP=$(echo "$out" | js "d['id']")
check "group cranes: crane-1 gets it" until_ok 50 answers "to every crane" GET "$U1/v1/inbox"
# not a fixed wait: once office-1 holds the envelope (it carries it on)
# it has decided about its inbox
held_grp() { req GET "$U2/v1/messages/$GRP" | grep -q '"held":true'; }
check "group cranes: office-1 carries it" until_ok 50 held_grp
check "group cranes: office-1's inbox does not get it" bash -c "! grep -q 'to every crane' <<<'$(req GET "$U2/v1/inbox")'"
# broadcast: everyone
req POST "$GU/v1/messages" '{"broadcast":true,"text":"site closes at 18:00"}' >/dev/null
check "broadcast: crane-1" until_ok 50 answers "site closes" GET "$U1/v1/inbox"
check "broadcast: office-1" until_ok 50 answers "site closes" GET "$U2/v1/inbox"
# geo: a 5 km circle around crane-1 (Berlin); office-1 (Paris) carries it but its inbox does not get it
out=$(req POST "$GU/v1/messages" '{"broadcast":true,"geo":"circle:52.52,13.405,5000","text":"storm warning north yard"}')
GEO=$(echo "$out" | js "d['id']")
check "geo: crane-1 inside the circle gets it" until_ok 50 answers "storm warning" GET "$U1/v1/inbox"
held2() { req GET "$U2/v1/messages/$GEO" | grep -q '"held":true'; }
check "geo: office-1 outside still carries it" until_ok 50 held2
fwd_both() { [ "$(req GET "$GU/v1/messages/$GEO" | js "sorted(f['name'] for f in d['forwarded_to'])")" = "['crane-1', 'office-1']" ]; }
check "GET /v1/messages/ID on the gateway: forwarded to crane-1 and office-1, by name" until_ok 50 fwd_both
check "geo: office-1's inbox does not get it" bash -c "! grep -q 'storm warning' <<<'$(req GET "$U2/v1/inbox")'"

# TOFU: another key calling itself office-1 is refused, logged and counted
"$AM" init --store "$T/impostor" >/dev/null 2>&1
IP=$(port)
"$NODE" --data "$T/impostor" --network-key "@$T/net.key" --gateway "tcp://127.0.0.1:$LP" --port "$IP" --name office-1 \
    --no-discovery --trust-key "$G" >"$T/impostor.log" 2>&1 &
PIDS+=($!); IMP=$!
trust_refused() { [ "$(req GET "$GU/v1/metrics" | awk '$1 == "am_link_refused_total{reason=\"trust\"}" {print $2}')" -ge 1 ]; }
check "a changed key for office-1: refused and counted (reason trust)" until_ok 100 trust_refused
check "the gateway log names it" grep -q 'refused: trust: "office-1" presented key' "$T/g.log"
# audited by the failure's kind (AM_EKEYCHANGED), not by the log's words
check "the gateway audits it as key_change_refused" \
    bash -c "jq -c 'select(.event == \"key_change_refused\")' '$T/g/audit/audit.log' | grep -q office-1"
check "the impostor's log says why" until_ok 50 grep -q "the peer refused the link: trust" "$T/impostor.log"
kill "$IMP" 2>/dev/null; wait "$IMP" 2>/dev/null
check "a fresh key posing as office-1 on the raw protocol: refused (trust)" grep -q "^refused: trust" \
    <<<"$("$HOSTILE" 127.0.0.1 "$LP" "@$T/net.key" hello office-1)"

# hostile frames after a good handshake: each refused by name and counted
refused_total() { req GET "$GU/v1/metrics" | awk '/^am_link_refused_total/ {n += $2} END {print n + 0}'; }
before=$(refused_total)
for mode in garbage replay oversize truncated; do "$HOSTILE" 127.0.0.1 "$LP" "@$T/net.key" "$mode" >/dev/null 2>&1; done
four_more() { [ "$(refused_total)" -ge $((before + 4)) ]; }
check "four bad frames: four refusals counted" until_ok 50 four_more
check "garbage: refused as an altered frame" grep -q "refused: .*did not authenticate\|refused: link: frame" "$T/g.log"
check "oversize: refused naming the limit" grep -q "refused: link: peer sent a frame of .* bytes (limit" "$T/g.log"
grep "refused: " "$T/g.log" | sed "s/^/  gateway log: /" | tail -6
check "the links to both nodes stayed up through it" test "$(metric "$GU/v1" am_links_open)" = 2
out=$(req POST "$GU/v1/messages" "{\"to\":\"$N2\",\"text\":\"still serving\"}")
check "and the gateway still delivers" until_ok 50 answers "still serving" GET "$U2/v1/inbox"

# a node restarts: it relinks by itself and what was sent meanwhile arrives
kill -TERM "$N1PID"; wait "$N1PID" 2>/dev/null
req POST "$GU/v1/messages" "{\"to\":\"$N1\",\"text\":\"while you were away\"}" >/dev/null
start_node n1 "$P1" crane-1
N1PID=$!
# (up to 60 s: under ThreadSanitizer a restart and its first dial are
# slow; on 5c4e9c5 this check asked once, through <(req ...), and failed
# in two of four TSan CI runs: the node synced after that one answer)
check "after a restart crane-1 gets what was sent while it was down" until_ok 600 answers "while you were away" GET "$U1/v1/inbox"
[ "$fails" -eq 0 ] || echo "crane-1's inbox answered: $(req GET "$U1/v1/inbox" 2>&1 | cut -c1-600)" >&2

kill -TERM "$GPID" "$N1PID" "$N2PID"
for p in "$GPID" "$N1PID" "$N2PID"; do wait "$p"; rc=$?; [ "$rc" -eq 0 ] || bad "a daemon exited $rc on SIGTERM"; done
check "SIGTERM with open links: the gateway stops cleanly" grep -q "stopping (SIGTERM)" "$T/g.log"
# links over a websocket on the gateway's own HTTP port (one port to open
# in a firewall): nng serves both on it
WP=$(port)
"$AM" init --store "$T/g2" >/dev/null 2>&1
"$AM" init --store "$T/n3" >/dev/null 2>&1
"$GW" --data "$T/g2" --network-key "@$T/net.key" --listen "ws://127.0.0.1:$WP/mesh" --port "$WP" --no-discovery \
    >"$T/g2.log" 2>&1 &
PIDS+=($!); G2PID=$!
"$NODE" --data "$T/n3" --network-key "@$T/net.key" --gateway "ws://127.0.0.1:$WP/mesh" --port "$(port)" \
    --no-discovery --name yard-3 >"$T/n3.log" 2>&1 &
PIDS+=($!); N3PID=$!
check "a link over ws:// on the gateway's HTTP port" until_ok 100 grep -q "^link to ws://127.0.0.1:$WP/mesh: peer" "$T/n3.log"
check "... and HTTP on that same port" grep -q '^200 ' <<<"$(req GET "http://127.0.0.1:$WP/health" "" -)"
# a replaced device: its new key is refused under the pinned name until
# `agent-mesh trust forget`, which the running gateway picks up (on
# 0de8afd there was no such command; the pin had to be edited by hand
# with the gateway stopped)
check "trust list shows the pin" bash -c "'$AM' trust list --data '$T/g2' | grep -q '^yard-3 '"
kill -TERM "$N3PID"; wait "$N3PID" 2>/dev/null
"$AM" init --store "$T/n4" >/dev/null 2>&1
"$NODE" --data "$T/n4" --network-key "@$T/net.key" --gateway "ws://127.0.0.1:$WP/mesh" --port "$(port)" \
    --no-discovery --name yard-3 --link-timeout 2s >"$T/n4.log" 2>&1 &
PIDS+=($!); N4PID=$!
check "the replacement is refused under the pinned name" until_ok 100 grep -q 'refused: trust: "yard-3" presented key' "$T/g2.log"
check "trust forget yard-3" bash -c "'$AM' trust forget --data '$T/g2' yard-3 | grep -q 'forgot \"yard-3\"'"
check "... then the running gateway pins the replacement and links" until_ok 150 grep -q "^link to ws://127.0.0.1:$WP/mesh: peer" "$T/n4.log"
N4=$("$AM" store stats --store "$T/n4" | awk '$1 == "node" {print $2}')
check "trust list shows the new key for yard-3" bash -c "'$AM' trust list --data '$T/g2' | grep -q '^yard-3 *$N4'"
check "forgetting what is not pinned names the problem" bash -c "! '$AM' trust forget --data '$T/g2' nobody 2>&1 | grep -q . || '$AM' trust forget --data '$T/g2' nobody 2>&1 | grep -q 'nothing pinned as \"nobody\"'"
kill -TERM "$G2PID" "$N4PID"; wait "$G2PID" "$N4PID" 2>/dev/null

echo "mesh_live: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
