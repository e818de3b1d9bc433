#!/bin/bash
# Failover of a gateway pair behind nginx (the guide's upstream block),
# under a bounded load of messages to crane-1 and tool calls on it
# (tests/system/ha_load.py: 120 requests, 4 at a time), crane-1 linked to
# both gateways:
#  - gateway A killed (-9) in the middle: at most the 4 requests in flight
#    then fail; A restarted links again, and then every message answered
#    202 reaches crane-1's inbox (what A acknowledged just before it died
#    goes out from its store), every call answered 200/202 completes, and
#    A serves the jobs B made while it was down
#  - Redis killed and restarted in the middle: no request fails, and the
#    same holds for every answer
# usage: ha_failover.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-hafail
. "$HERE/ha_lib.sh"
# the Redis restarted mid-load is not a child of this script: shut it down
# by its port at the end, however the test ends (redis renames its process,
# so pkill -f on the command line does not find it)
AT_EXIT='redis-cli -p "$RP" shutdown nosave >/dev/null 2>&1'

check "redis-server starts" ha_redis
ha_keys
ha_gateway a || bad "gateway A answers"
ha_gateway b || bad "gateway B answers"
check "crane-1 links to both gateways; its catalog reached both" ha_node both
check "nginx starts with the guide's upstream block" ha_nginx
NU="http://127.0.0.1:$NP"

# what every answer promised: messages in crane-1's inbox, calls done
verify() { # LABEL
    local label=$1
    /usr/bin/python3 - "$T/answers.json" "http://127.0.0.1:$CP" "$NU" "$TOKEN" >"$T/verify.out" 2>&1 <<'PY'
import json, sys, time, urllib.request
answers, node, lb, token = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
def get(u):
    r = urllib.request.Request(u)
    r.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(r, timeout=10) as f:
            return f.status, f.read().decode()
    except Exception as e:
        return 0, repr(e)
want = {f"load message {a['i']}" for a in answers if a["kind"] == "message" and a["status"] == 202}
ids = {f"load message {a['i']}": a["id"] for a in answers if a["kind"] == "message"}
calls = [a for a in answers if a["kind"] == "call" and a["status"] in (200, 202)]
missing, pending = set(want), [a for a in calls if not a["done"]]
for _ in range(120):
    if missing:
        st, body = get(f"{node}/v1/inbox?limit=1000")
        if st == 200:
            texts = {m.get("text") for m in json.loads(body).get("messages", [])}
            missing -= texts
    still = []
    for a in pending:
        st, body = get(f"{lb}/v1/jobs/{a['id']}")
        if not (st == 200 and '"status":"done"' in body and f"heard: c{a['i']}" in body):
            still.append(a)
    pending = still
    if not missing and not pending:
        break
    time.sleep(0.5)
print(f"verify: {len(want)} messages answered 202, {len(missing)} not in crane-1's inbox; "
      f"{len(calls)} calls answered, {len(pending)} not completed")
for m in sorted(missing)[:5]:
    print("  missing:", m, ids.get(m), "held by the node:", get(f"{node}/v1/messages/{ids.get(m)}")[1][:300])
for a in pending[:5]:
    print("  pending:", a)
sys.exit(1 if missing or pending else 0)
PY
}

# 1. gateway A dies in the middle of the load
out=$(cd "$T" && timeout 200 python3 "$HERE/ha_load.py" "$NU" "$TOKEN" "$C1" 120 50 "kill -9 $APID" 2>&1)
echo "$out" | sed 's/^/  /' | head -12
failed=$(sed -n 's/^load: .*), \([0-9]*\) failed.*/\1/p' <<<"$out")
check "A killed mid-load: at most the 4 requests in flight failed ($failed)" test "${failed:-99}" -le 4
ha_gateway a || bad "A restarts"
relinked() { grep -c 'peer .* "site-gw" .*live' "$T/gb.log" | grep -qv '^[01]$'; }
check "A restarted: the pair links again" until_ok 300 relinked
# what A acknowledged just before it died is in its store (committed
# before the answer): it goes out now that A is back
check "... every answered message reached crane-1, every answered call completed" verify A
sed 's/^/  /' "$T/verify.out"
cp "$T/answers.json" "$T/answers-A.json"
JOBS=$(jq -r '[.[] | select(.kind == "call" and (.status == 200 or .status == 202)) | .id] | .[-3:][]' "$T/answers.json")
caught=0
for j in $JOBS; do req GET "http://127.0.0.1:$PA/v1/jobs/$j" "" "$TOKEN" | grep -q '^200 .*"status":"done"' && caught=$((caught+1)); done
check "... and serves the last jobs of the load, made while it was down ($caught of 3)" test "$caught" = 3

# 2. Redis dies and comes back in the middle of the load
out=$(cd "$T" && timeout 200 python3 "$HERE/ha_load.py" "$NU" "$TOKEN" "$C1" 120 50 \
    "kill -9 $RPID; sleep 2; redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --dir $T >>$T/redis.log 2>&1 &" 2>&1)
echo "$out" | sed 's/^/  /' | head -12
failed=$(sed -n 's/^load: .*), \([0-9]*\) failed.*/\1/p' <<<"$out")
check "Redis restarted mid-load: no request failed ($failed)" test "${failed:-99}" = 0
check "... every answered message reached crane-1, every answered call completed" verify Redis
sed 's/^/  /' "$T/verify.out"
up_again() { [ "$(req GET "http://127.0.0.1:$PA/health" | field "d.get('shared_state')")" = up ] &&
             [ "$(req GET "http://127.0.0.1:$PB/health" | field "d.get('shared_state')")" = up ]; }
check "... both gateways took the restarted Redis back by themselves" until_ok 100 up_again
finish ha-failover
