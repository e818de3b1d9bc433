#!/bin/bash
# The state a gateway pair shares, in a real Redis (redis-server from
# Debian, started here on a loopback port, with a password):
#  - both gateways say shared_state up in /health, without the password
#  - a job made through gateway A is served by gateway B (GET /v1/jobs),
#    pending, then done when its result reaches A
#  - Redis killed: A says down, keeps serving what it holds (a call through
#    A completes), and queues its writes; Redis back on the same port: A
#    reconnects by itself, replays them, and B serves that job too
#  - a bad --shared-state: refused at start with a message; a node refuses
#    the flag, naming the gateway's
# usage: shared_state.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-shared
command -v redis-server >/dev/null || { echo "FAIL: redis-server is not installed (tools/dev deps)"; exit 1; }

RP=$(port)
redis_up() {
    redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --requirepass s3cret-pw --dir "$T" \
        >>"$T/redis.log" 2>&1 &
    RPID=$!
    PIDS+=($RPID)
    until_ok 100 bash -c "redis-cli -p $RP -a s3cret-pw --no-auth-warning ping 2>/dev/null | grep -q PONG"
}
check "redis-server starts on a loopback port" redis_up
URL="redis://:s3cret-pw@127.0.0.1:$RP/3"

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
GA=$("$AM" init --store "$T/ga" 2>/dev/null)
"$AM" init --store "$T/gb" >/dev/null 2>&1
"$AM" init --store "$T/c1" >/dev/null 2>&1
TA=$("$AM" token issue --data "$T/ga" --role admin --valid 1h)
TB=$("$AM" token issue --data "$T/gb" --role admin --valid 1h)
mkdir -p "$T/c1/tools"
cat >"$T/c1/tools/long.json" <<'EOF'
{"name": "long", "description": "sleeps, then says so", "command": ["/bin/sh", "-c", "sleep \"$1\"; echo slept", "sh", "{secs}"],
 "timeout": "30s", "input_schema": {"type": "object", "properties": {"secs": {"type": "integer", "minimum": 0, "maximum": 20}}}}
EOF
PA=$(port) LA=$(port) PB=$(port) LB=$(port) CP=$(port)
"$GW" --data "$T/ga" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LA" --port "$PA" --no-discovery --name gw-a \
    --shared-state "$URL" >"$T/ga.log" 2>&1 &
PIDS+=($!)
SHARED_STATE="$URL" "$GW" --data "$T/gb" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LB" --port "$PB" \
    --no-discovery --name gw-b >"$T/gb.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PA/health" || bad "gateway A answers /health"
wait_http "http://127.0.0.1:$PB/health" || bad "gateway B answers /health"
"$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$CP" --no-discovery --name crane-1 --trust-key "$GA" \
    --gateway "tcp://127.0.0.1:$LA" >"$T/c1.log" 2>&1 &
PIDS+=($!)
catalog() { [ "$(ls "$T/ga/catalogs" 2>/dev/null | grep -c json)" -ge 1 ]; }
check "crane-1 linked to gateway A" until_ok 300 catalog

health() { req GET "http://127.0.0.1:$1/health" | field "d.get('$2')"; }
check "A: /health says shared_state up" test "$(health "$PA" shared_state)" = up
check "B (SHARED_STATE from the environment): up too" test "$(health "$PB" shared_state)" = up
check "... and the URL shown has no password" bash -c '[[ "$1" = "redis://***@127.0.0.1:'"$RP"'/3" ]]' _ "$(health "$PA" shared_state_url)"

call() { req POST "http://127.0.0.1:$PA/v1/tools/call" "{\"node\":\"crane-1\",\"tool\":\"long\",\"args\":{\"secs\":$1},\"wait_ms\":0}" "$TA"; }
out=$(call 2)
JOB=$(field "d['job_id']" <<<"$out")
check "a call through A: 202 with a job id ($out)" grep -q '^202 ' <<<"$out"
jobb() { req GET "http://127.0.0.1:$PB/v1/jobs/$1" "" "$TB"; }
check "B serves A's job (pending): $(jobb "$JOB" | head -c 120)" grep -q '^200 .*"status":"pending"' <<<"$(jobb "$JOB")"
done_on_b() { jobb "$JOB" | grep -q '^200 .*"status":"done".*slept'; }
check "... and done once the result reached A" until_ok 200 done_on_b

kill -9 "$RPID"
down() { [ "$(health "$PA" shared_state)" = down ]; }
check "Redis killed: A's /health says shared_state down" until_ok 100 down
out=$(req POST "http://127.0.0.1:$PA/v1/tools/call" '{"node":"crane-1","tool":"long","args":{"secs":0},"wait_ms":10000}' "$TA")
JOB2=$(field "d['job_id']" <<<"$out")
check "... A still serves: a call completes ($(head -c 100 <<<"$out"))" grep -q '^200 .*slept' <<<"$out"
check "... its writes are queued ($(health "$PA" shared_state_queued))" test "$(health "$PA" shared_state_queued)" -ge 1
check "... B does not have that job yet" grep -q '^404 ' <<<"$(jobb "$JOB2")"
redis_up >/dev/null
up() { [ "$(health "$PA" shared_state)" = up ] && [ "$(health "$PA" shared_state_queued)" = 0 ]; }
check "Redis back on the same port: A reconnects by itself and replays its queue" until_ok 100 up
check "... A's log says the writes were replayed" grep -q "writes made while it was down replayed" "$T/ga.log"
check "... and B now serves the job made while Redis was down" grep -q '^200 .*"status":"done"' <<<"$(jobb "$JOB2")"

# refusals at start
"$GW" --data "$T/gx" --port "$(port)" --shared-state http://127.0.0.1:6379 >"$T/bad1" 2>&1
check "a non-redis --shared-state: rc 2, naming it" bash -c '[ $1 = 2 ] && grep -q "not a redis:// URL" "$2"' _ $? "$T/bad1"
"$GW" --data "$T/gx" --port "$(port)" --shared-state redis://127.0.0.1:99999 >"$T/bad2" 2>&1
check "a bad port: rc 2, naming it" bash -c '[ $1 = 2 ] && grep -q "port must be 1..65535" "$2"' _ $? "$T/bad2"
"$NODE" --data "$T/nx" --port "$(port)" --shared-state "$URL" >"$T/bad3" 2>&1
check "a node refuses --shared-state, naming the gateway's flag" bash -c '[ $1 = 2 ] && grep -q "agent-mesh-gateway --shared-state" "$2"' _ $? "$T/bad3"
check "no log line shows the password" bash -c '! grep -q s3cret-pw "$1"/ga.log "$1"/gb.log "$1"/bad2' _ "$T"
finish shared-state
