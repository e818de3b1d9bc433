#!/bin/bash
# Carriers need no trust (issue 10), tried as an attacker would with real
# daemons on 127.0.0.1: a gateway, crane-1 (a tool, group "cranes"), and
# office-1, an ordinary node whose key and store the attacker holds.
#  1. three ~1 MiB envelopes stored while a link is live: the gateway
#     lives and all three arrive (heap overflow in the live batch)
#  2. two 600 KB messages and a small one behind them: every one arrives
#     (a batch past the frame limit jammed the link for a week)
#  3. a call's authority, lifted from office-1's store: no bearer token in
#     any call; a group call's grant is refused by the gateway's API and by
#     crane-1 inside office-1's own envelope; a call to one node is sealed
#  4. a tool result and a receipt forged with office-1's real key: the job
#     stays pending, the message is not "delivered"; counted and audited
#  5. a call by node id (64 hex) to a node never met, carried by a stick,
#     with a token naming that id: it runs and the result comes back
# Every point failed on ee90c10 (the commit before this test).
# usage: carriers.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
. "$(dirname "$0")/lib.sh"
scratch am-carriers
metric() { req GET "$1" "" "$ADMIN" | awk -v m="$2" '$1 == m {print $2}'; }
alive() { kill -0 "$GPID" 2>/dev/null; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
C1=$("$AM" init --store "$T/c1" 2>/dev/null)
O1=$("$AM" init --store "$T/o1" 2>/dev/null)
F1=$("$AM" init --store "$T/f1" 2>/dev/null)
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
for d in c1 f1; do mkdir -p "$T/$d/tools"; cat >"$T/$d/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told",
 "input_schema": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 20}}},
 "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s"}
EOF
done
GP=$(port) LP=$(port) CP=$(port) OP=$(port) FP=$(port)
GU=http://127.0.0.1:$GP
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
    --no-discovery --name site-gw --dev-token >"$T/g.log" 2>&1 &
PIDS+=($!); GPID=$!
start_node() { # DIR NAME PORT [flags]
    local d=$1 n=$2 p=$3; shift 3
    "$NODE" --data "$T/$d" --network-key "@$T/net.key" --port "$p" --no-discovery --name "$n" --trust-key "$G" \
        "$@" >>"$T/$d.log" 2>&1 &
    PIDS+=($!)
}
start_node c1 crane-1 "$CP" --gateway "tcp://127.0.0.1:$LP" --group cranes
C1PID=$!
start_node o1 office-1 "$OP" --gateway "tcp://127.0.0.1:$LP"
O1PID=$!
links() { [ "$(req GET "$GU/v1/mesh_scan" "" "$ADMIN" | field "sum(p['link'] == 'up' for p in d['peers'])")" = "$1" ]; }
check "both nodes linked live" until_ok 150 links 2
inbox_has() { # PORT TEXT COUNT
    [ "$(req GET "http://127.0.0.1:$1/v1/inbox?limit=100" "" "$ADMIN" | grep -o "$2" | wc -l)" -ge "$3" ]; }

# (CARRIERS_SKIP_BIG=1 skips 1 and 2: to see 3-5 fail on a build where 1 crashes the gateway)
if [ -z "${CARRIERS_SKIP_BIG:-}" ]; then
# 1. near-limit envelopes while the link is live
head -c 1000000 /dev/urandom >"$T/1mb"
for i in 1 2 3; do
    "$AM" send --store "$T/g" --to "$C1" --no-compress --content-type application/octet-stream --file "$T/1mb" \
        >/dev/null || bad "send 1 MB #$i"
done
"$AM" send --store "$T/g" --to "$C1" --text "after-the-big-ones" >/dev/null
check "three 1 MB envelopes stored while live: the gateway lives" until_ok 30 alive
check "... and the small one behind them reaches crane-1 live" until_ok 300 inbox_has "$CP" after-the-big-ones 1
count_big() { [ "$("$AM" store stats --store "$T/c1" --json | field_stats)" -ge 3 ]; }
field_stats() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['inbox_unacked'])"; }
check "... and all three big ones with it" count_big
check "the gateway is alive after the live push" alive

# 2. two 600 KB messages and a small one for a node that is offline,
# then reconciled in one session: the batch must split
kill -TERM "$O1PID"; wait "$O1PID" 2>/dev/null
until_ok 100 links 1 || bad "office-1 went offline"
head -c 600000 /dev/urandom >"$T/600k"
for i in 1 2; do
    "$AM" send --store "$T/g" --to "$O1" --no-compress --content-type application/octet-stream --file "$T/600k" \
        >/dev/null || bad "send 600 KB #$i"
done
"$AM" send --store "$T/g" --to "$O1" --text "behind-two-600k" >/dev/null
start_node o1 office-1 "$OP" --gateway "tcp://127.0.0.1:$LP"
O1PID=$!
check "two 600 KB messages and a small one: all reach office-1 (reconciled)" until_ok 300 inbox_has "$OP" behind-two-600k 1
check "... the two big ones too" test "$("$AM" store stats --store "$T/o1" --json | field_stats)" -ge 3
check "no session failed on the frame limit" bash -c "! grep -q 'limit 11' '$T/g.log' '$T/o1.log'"
check "the gateway is alive" alive
until_ok 150 links 2 || bad "office-1 linked again"
fi

# 3. lifted authority
out=$(req POST "$GU/v1/tools/call" '{"node":"crane-1","tool":"echo","args":{"word":"sealed"},"wait_ms":10000}' "$ADMIN")
check "a call to crane-1 answers ($(head -c 200 <<<"$out"))" grep -q '^200 .*heard: sealed' <<<"$out"
J1=$(field "d['job_id']" <<<"$out")
in_o1() { "$AM" store get --store "$T/o1" --id "$1" --output "$T/lifted-$1" 2>/dev/null; }
check "the call reached office-1 (a carrier)" until_ok 100 in_o1 "$J1"
"$AM" envelope inspect --json "$T/lifted-$J1" >"$T/lifted-$J1.json" 2>&1
check "the call to one node is sealed: office-1 cannot read it" grep -q '"sealed":true' "$T/lifted-$J1.json"
check "... and no token or grant text is visible in it" bash -c "! grep -aq 'amt1\.\|amg1\.' '$T/lifted-$J1' '$T/lifted-$J1.json'"
out=$(req POST "$GU/v1/tools/call" '{"group":"cranes","tool":"echo","args":{"word":"all"},"ttl":"3s","wait_ms":10000}' "$ADMIN")
J2=$(field "d['job_id']" <<<"$out")
check "a group call: crane-1 answers as a member" grep -q '"node_name":"crane-1"' <<<"$out"
check "the group call reached office-1" until_ok 100 in_o1 "$J2"
"$AM" envelope inspect --json "$T/lifted-$J2" >"$T/lifted-$J2.json" 2>&1
check "no bearer token (amt1.) in the group call" bash -c "! grep -q 'amt1\.' '$T/lifted-$J2.json'"
GRANT=$(grep -o 'amg1\.[A-Za-z0-9_-]*' "$T/lifted-$J2.json" | head -1)
check "the group call carries a grant instead" test -n "$GRANT"
out=$(req GET "$GU/v1/inbox" "" "$GRANT")
check "the lifted grant at the gateway's API: 401 naming why" grep -q '^401 .*grant is not a bearer token' <<<"$out"
out=$(req POST "$GU/v1/messages" '{"broadcast":true,"text":"lifted"}' "$GRANT")
check "... broadcast with it: 401" grep -q '^401 ' <<<"$out"
check "... at a node's API: 401" grep -q '^401 ' <<<"$(req GET "http://127.0.0.1:$CP/v1/inbox" "" "$GRANT")"
# office-1 puts the lifted grant into a call of its own to crane-1
CALL="{\"tool\":\"echo\",\"args\":{\"word\":\"stolen\"},\"grant\":\"$GRANT\",\"deadline_ms\":$(( $(date +%s) * 1000 + 600000 ))}"
FORGED=$("$AM" send --store "$T/o1" --to "$C1" --type tool_call --content-type application/json --text "$CALL")
refused_call() { grep -q '"state":"done"' "$T/c1/calls/$FORGED.json" 2>/dev/null; }
check "crane-1 answers office-1's call with the lifted grant" until_ok 150 refused_call
check "... refused: bound to another key" grep -q '"reason":"grant: bound to another key.*"status":"refused"' "$T/c1/calls/$FORGED.json"
check "... and it never ran" bash -c "! grep -q 'heard: stolen' '$T/c1/calls/$FORGED.json'"
check "... audited on crane-1" bash -c "jq -r 'select(.event == \"tool_refused\") | .reason' '$T/c1/audit/audit.log' | grep -q 'bound to another key'"
# an old-style call carrying a bearer token is refused by name
OLD="{\"tool\":\"echo\",\"args\":{\"word\":\"old\"},\"token\":\"$ADMIN\"}"
OLDID=$("$AM" send --store "$T/o1" --to "$C1" --type tool_call --content-type application/json --text "$OLD")
old_done() { grep -q '"state":"done"' "$T/c1/calls/$OLDID.json" 2>/dev/null; }
check "a call carrying a bearer token is refused by name" until_ok 150 old_done
check "... naming the bearer token" grep -q 'bearer token' "$T/c1/calls/$OLDID.json"

# 4. forged answers, signed with office-1's real key
kill -TERM "$C1PID"; wait "$C1PID" 2>/dev/null
until_ok 100 links 1 || bad "crane-1 went offline"
out=$(req POST "$GU/v1/tools/call" '{"node":"crane-1","tool":"echo","args":{"word":"wind"},"wait_ms":0}' "$ADMIN")
J3=$(field "d['job_id']" <<<"$out")
"$AM" send --store "$T/o1" --to "$G" --type tool_result --ref "$J3" --content-type application/json \
    --text '{"status":"ok","stdout":"wind 3 m/s: safe to lift","node_name":"crane-1"}' >/dev/null
refused_metric() { [ "$(metric "$GU/v1/metrics" "am_answers_refused_total{kind=\"$1\"}")" -ge 1 ] 2>/dev/null; }
check "a forged tool result is refused and counted" until_ok 100 refused_metric tool_result
check "... the job stays pending" grep -q '"status":"pending"' <<<"$(req GET "$GU/v1/jobs/$J3" "" "$ADMIN")"
check "... and the forged text is nowhere in it" bash -c "! grep -q 'safe to lift' <<<'$(req GET "$GU/v1/jobs/$J3" "" "$ADMIN")'"
check "... audited with the signer" bash -c "jq -r 'select(.event == \"tool_result_refused\") | .signer' '$T/g/audit/audit.log' | grep -q '$O1'"
# a forged result for a group job without membership is refused too
out=$(req POST "$GU/v1/tools/call" '{"group":"cranes","tool":"echo","args":{"word":"g"},"ttl":"2s","wait_ms":0}' "$ADMIN")
J4=$(field "d['job_id']" <<<"$out")
"$AM" send --store "$T/o1" --to "$G" --type tool_result --ref "$J4" --content-type application/json \
    --text '{"status":"ok","stdout":"forged","node_name":"crane-1"}' >/dev/null
two_refused() { [ "$(metric "$GU/v1/metrics" 'am_answers_refused_total{kind="tool_result"}')" -ge 2 ]; }
check "a result for a group job from a non-member is refused" until_ok 100 two_refused
start_node c1 crane-1 "$CP" --gateway "tcp://127.0.0.1:$LP" --group cranes
C1PID=$!
real_done() { req GET "$GU/v1/jobs/$J3" "" "$ADMIN" | grep -q '"status":"done".*heard: wind'; }
check "crane-1 back: its own result completes the job" until_ok 200 real_done
# a forged receipt for a message to a node that does not exist
GHOST=$(/usr/bin/python3 -c "import os; print(os.urandom(32).hex())")
MID=$(req POST "$GU/v1/messages" "{\"to\":\"$GHOST\",\"text\":\"to nobody\"}" "$ADMIN" | field "d['id']")
"$AM" send --store "$T/o1" --to "$G" --type receipt --ref "$MID" --text x >/dev/null
check "a forged receipt is counted" until_ok 100 refused_metric receipt
out=$(req GET "$GU/v1/messages/$MID" "" "$ADMIN")
check "... and the message is not delivered ($(head -c 300 <<<"$out"))" grep -q '"delivered":false' <<<"$out"
check "... the ignored receipt is listed with its signer" grep -q "\"receipts_ignored\":\[{\"node\":\"$O1\"" <<<"$out"
check "... audited" bash -c "jq -r '.event' '$T/g/audit/audit.log' | grep -q receipt_refused"
# a group message lists its receivers one by one
GMID=$(req POST "$GU/v1/messages" '{"group":"cranes","text":"to the cranes"}' "$ADMIN" | field "d['id']")
received_by() { req GET "$GU/v1/messages/$GMID" "" "$ADMIN" | grep -q "\"received_by\":\[{\"node\":\"$C1\""; }
check "a group message: received_by lists crane-1 (its own receipt)" until_ok 150 received_by
check "... with no single delivered flag" bash -c "! grep -q '\"delivered\"' <<<'$(req GET "$GU/v1/messages/$GMID" "" "$ADMIN")'"

# 5. by node id, over a stick: with a token for exactly that id, and with
# the development token (the gateway mints the right for the call)
start_node f1 far-1 "$FP"
BYID=$("$AM" token issue --data "$T/g" --right "call:$F1:echo" --valid 1h)
DEV=$(sed -n 's/^DEVELOPMENT TOKEN.*: \([0-9a-f]*\)$/\1/p' "$T/g.log")
check "the gateway printed its development token" test -n "$DEV"
mkdir -p "$T/stick"
for who in token dev; do
    tok=$BYID; [ $who = dev ] && tok=$DEV
    out=$(req POST "$GU/v1/tools/call" "{\"node\":\"$F1\",\"tool\":\"echo\",\"args\":{\"word\":\"by-id-$who\"},\"wait_ms\":0}" "$tok")
    J5=$(field "d['job_id']" <<<"$out")
    check "$who: a call by id to a node never met: queued" grep -q '^202 ' <<<"$out"
    "$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
    "$AM" bundle sync --store "$T/f1" "$T/stick" >/dev/null 2>&1
    ran() { grep -q '"state":"done"' "$T/f1/calls/$J5.json" 2>/dev/null; }
    check "$who: far-1 took the call from the stick" until_ok 100 ran
    check "$who: ... and ran it (the right names its full id)" grep -q "heard: by-id-$who" "$T/f1/calls/$J5.json"
    "$AM" bundle sync --store "$T/f1" "$T/stick" >/dev/null 2>&1
    "$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
    stick_done() { req GET "$GU/v1/jobs/$J5" "" "$ADMIN" | grep -q "\"status\":\"done\".*heard: by-id-$who"; }
    check "$who: the result came back on the stick" until_ok 100 stick_done
done
check "the gateway lived through all of it" alive
echo "carriers: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
