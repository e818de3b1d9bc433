#!/bin/bash
# A bounded stress of mixed hostile traffic against a gateway and two
# nodes (run it with the ASan+UBSan build): near-limit envelopes through
# the API, the CLI and links; forged tool results and receipts signed with
# office-1's real key; grants lifted from office-1's store used at the API
# and in forged calls; replayed bundles and replayed link frames; hostile
# link peers; legitimate calls and messages in between, which must still
# work. At the end: every daemon alive, zero sanitizer reports in their
# logs, legitimate traffic delivered, every forged answer refused.
#
# usage: hostile_stress.sh AGENT_MESH NODE GATEWAY LINK_HOSTILE [SECONDS]
#   SECONDS: how long (default 60; CI runs 60, the issue's run is 600).
# Bounded: at most 10 rounds a second and 300 near-limit envelopes
# whatever the time, every request with a timeout, only 127.0.0.1.
set -u
AM=$1 NODE=$2 GW=$3 HOSTILE=$4 SECS=${5:-${STRESS_SECONDS:-60}}
. "$(dirname "$0")/lib.sh"
scratch am-stress
# sanitizers report to the logs and keep going, so one run sees them all
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:halt_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=0}
metric() { req GET "$1" "" "$ADMIN" | awk -v m="$2" '$1 == m {print $2}'; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
C1=$("$AM" init --store "$T/c1" 2>/dev/null)
O1=$("$AM" init --store "$T/o1" 2>/dev/null)
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 2h)
mkdir -p "$T/c1/tools"
cat >"$T/c1/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told",
 "input_schema": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 40}}},
 "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s"}
EOF
GP=$(port) LP=$(port) CP=$(port) OP=$(port)
GU=http://127.0.0.1:$GP
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!); GPID=$!
"$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$CP" --no-discovery --name crane-1 --trust-key "$G" \
    --gateway "tcp://127.0.0.1:$LP" --group cranes >"$T/c1.log" 2>&1 &
PIDS+=($!); CPID=$!
"$NODE" --data "$T/o1" --network-key "@$T/net.key" --port "$OP" --no-discovery --name office-1 --trust-key "$G" \
    --gateway "tcp://127.0.0.1:$LP" >"$T/o1.log" 2>&1 &
PIDS+=($!); OPID=$!
links() { [ "$(req GET "$GU/v1/mesh_scan" "" "$ADMIN" | field "sum(p['link'] == 'up' for p in d['peers'])")" = 2 ]; }
check "gateway and two nodes up and linked" until_ok 300 links

head -c 1040000 /dev/urandom >"$T/near"       # just under the 1 MiB payload limit
head -c 700000 /dev/urandom >"$T/700k"
/usr/bin/python3 -c "
import base64, json
print(json.dumps({'to': '$C1', 'payload_base64': base64.b64encode(open('$T/700k','rb').read()).decode()}))" >"$T/700k.json"
/usr/bin/python3 -c "
import base64, json
print(json.dumps({'broadcast': True, 'payload_base64': base64.b64encode(open('$T/near','rb').read()[:1000000]).decode()}))" >"$T/near.json"

# the CLI is a sanitized build too: its reports go to cli.log
am() { "$AM" "$@" 2>>"$T/cli.log"; }
start=$(date +%s) end=$(( $(date +%s) + SECS )) max_rounds=$(( SECS * 10 )) max_big=$(( SECS <= 60 ? 150 : 300 ))
round=0 big=0 legit_msgs=0 legit_calls=0 forged=0 lifted=0 replays=0
while [ "$(date +%s)" -lt "$end" ] && [ $round -lt $max_rounds ]; do
    round=$((round + 1))
    case $((round % 8)) in
    0) # near-limit envelopes: into the gateway's store while links are live, and via the API
        if [ $big -lt $max_big ]; then
            am send --store "$T/g" --to "$C1" --no-compress --ttl 10m --file "$T/near" >/dev/null &&
                big=$((big + 1))
            req POST "$GU/v1/messages" "@$T/700k.json" "$ADMIN" >/dev/null && big=$((big + 1))
            req POST "$GU/v1/messages" "@$T/near.json" "$ADMIN" >/dev/null && big=$((big + 1))
        fi ;;
    1) # legitimate traffic that must keep working
        req POST "$GU/v1/messages" "{\"to\":\"$C1\",\"text\":\"legit-$round\"}" "$ADMIN" >/dev/null &&
            legit_msgs=$((legit_msgs + 1))
        req POST "$GU/v1/tools/call" "{\"node\":\"crane-1\",\"tool\":\"echo\",\"args\":{\"word\":\"r$round\"},\"wait_ms\":0}" \
            "$ADMIN" >"$T/call.out" && grep -q '^202 ' "$T/call.out" && legit_calls=$((legit_calls + 1))
        J=$(field "d['job_id']" <"$T/call.out") ;;
    2) # forged answers signed with office-1's key
        if [ -n "${J:-}" ]; then
            am send --store "$T/o1" --to "$G" --type tool_result --ref "$J" --content-type application/json \
                --text '{"status":"ok","stdout":"forged"}' >/dev/null && forged=$((forged + 1))
        fi
        MID=$(req POST "$GU/v1/messages" "{\"to\":\"$(/usr/bin/python3 -c 'import os; print(os.urandom(32).hex())')\",\"text\":\"nobody\"}" "$ADMIN" | field "d['id']")
        [ -n "$MID" ] && am send --store "$T/o1" --to "$G" --type receipt --ref "$MID" --text x >/dev/null ;;
    3) # grants lifted from office-1's store (group calls are not sealed)
        out=$(req POST "$GU/v1/tools/call" '{"group":"cranes","tool":"echo","args":{"word":"g"},"ttl":"5s","wait_ms":0}' "$ADMIN")
        GJ=$(field "d['job_id']" <<<"$out")
        if [ -n "$GJ" ] && until_ok 30 am store get --store "$T/o1" --id "$GJ" --output "$T/lift"; then
            GRANT=$(am envelope inspect --json "$T/lift" | grep -o 'amg1\.[A-Za-z0-9_-]*' | head -1)
            if [ -n "$GRANT" ]; then
                lifted=$((lifted + 1))
                req GET "$GU/v1/inbox" "" "$GRANT" | grep -q '^401 ' || bad "a lifted grant was accepted by the API (round $round)"
                am send --store "$T/o1" --to "$C1" --type tool_call --content-type application/json \
                    --text "{\"tool\":\"echo\",\"args\":{\"word\":\"stolen\"},\"grant\":\"$GRANT\"}" >/dev/null
            fi
        fi ;;
    4) # replays: office-1's whole store re-imported into the gateway by bundle, twice
        rm -rf "$T/stick"; mkdir -p "$T/stick"
        am bundle export --store "$T/o1" --output "$T/stick/replay.amb" --max-size 8M >/dev/null
        am bundle import --store "$T/g" "$T/stick/replay.amb" >/dev/null
        am bundle import --store "$T/g" "$T/stick/replay.amb" >/dev/null && replays=$((replays + 1)) ;;
    5) # hostile link peers holding the network key
        for mode in garbage replay oversize truncated; do
            timeout 10 "$HOSTILE" 127.0.0.1 "$LP" "@$T/net.key" "$mode" >/dev/null 2>>"$T/cli.log"
        done ;;
    6) # a peer pushing near-limit envelopes over a one-shot link sync
        if [ $big -lt $max_big ]; then
            rm -rf "$T/p"; am init --store "$T/p" >/dev/null
            for i in 1 2; do
                am send --store "$T/p" --broadcast --no-compress --ttl 10m --file "$T/700k" >/dev/null
            done
            big=$((big + 2))
            timeout 30 "$AM" link sync --store "$T/p" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/net.key" \
                --timeout 20s >/dev/null 2>>"$T/cli.log"
        fi ;;
    7) # bad HTTP bodies
        req POST "$GU/v1/messages" '{"to":' "$ADMIN" >/dev/null
        req POST "$GU/v1/tools/call" '{"node":"crane-1","tool":"echo","args":[1,2]}' "$ADMIN" >/dev/null ;;
    esac
    kill -0 "$GPID" || { bad "the gateway died in round $round"; break; }
done
echo "rounds $round in $(( $(date +%s) - start ))s: near-limit $big, legit messages $legit_msgs, legit calls $legit_calls," \
    "forged results $forged, lifted grants $lifted, bundle replays $replays"
check "the gateway is alive" kill -0 "$GPID"
check "crane-1 is alive" kill -0 "$CPID"
check "office-1 is alive" kill -0 "$OPID"
check "some of every kind of traffic ran" test $legit_msgs -gt 0 -a $forged -gt 0 -a $lifted -gt 0 -a $replays -gt 0
# the legitimate traffic went through
last_legit() { req GET "http://127.0.0.1:$CP/v1/inbox?limit=1000" "" "$ADMIN" | grep -q "legit-"; }
check "legitimate messages reached crane-1" until_ok 300 last_legit
done_jobs=$(req GET "$GU/v1/jobs?limit=1000" "" "$ADMIN" | field "sum(1 for j in d['jobs'] if j['status'] == 'done' and any('heard: r' in (r.get('stdout') or '') for r in j['results']))")
echo "legitimate calls done: ${done_jobs:-0} of $legit_calls"
check "legitimate calls were answered" test "${done_jobs:-0}" -gt 0
check "no forged result in any job" bash -c "! grep -rq '\"stdout\":\"forged\"' '$T/g/jobs'"
check "no stolen call ran on crane-1" bash -c "! grep -rq 'heard: stolen' '$T/c1/calls'"
refused=$(metric "$GU/v1/metrics" 'am_answers_refused_total{kind="tool_result"}')
check "forged results refused and counted (${refused:-0})" test "${refused:-0}" -gt 0
san=$(grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$T"/*.log 2>/dev/null)
check "zero sanitizer reports in the daemons' logs" test -z "$san"
[ -n "$san" ] && grep -h -A20 "ERROR: AddressSanitizer\|runtime error:" $san | head -60
echo "hostile-stress: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
