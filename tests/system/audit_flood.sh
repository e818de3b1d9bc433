#!/bin/bash
# Refusals anyone can cause cost bounded disk (issue 11, point 5): 5 000
# unauthenticated requests (missing, junk and forged tokens) and 200 link
# handshakes with the wrong network key against a real gateway. The audit
# log grows by at most 64 KiB; the first refusal of each kind is written
# in full, the rest as "<event>_repeated" records with their count once
# the kind comes up again after its minute (or the daemon stops); the log
# still verifies. On ee90c10 every 401 was a signed, fdatasync'd line
# (5 000 requests: +2.4 MB).
# usage: audit_flood.sh AGENT_MESH GATEWAY
set -u
AM=$1 GW=$2
. "$(dirname "$0")/lib.sh"
scratch am-auditflood

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" keygen --network-key --output "$T/other.key" 2>/dev/null
"$AM" init --store "$T/g" >/dev/null 2>&1
GP=$(port) LP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
GPID=$!; PIDS+=($GPID)
up() { curl -sf -m 2 "http://127.0.0.1:$GP/health" >/dev/null; }
check "the gateway is up" until_ok 100 up
LOG=$T/g/audit/audit.log
before=$(stat -c %s "$LOG")
/usr/bin/python3 - "$GP" <<'PY'
import http.client, sys, time
port = int(sys.argv[1])
headers = [{}, {"Authorization": "Bearer junk"}, {"Authorization": "Bearer amt1.AAAA"},
           {"Authorization": "Bearer amt1." + "A" * 200}]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
codes, end = {}, time.time() + 60
for i in range(5000):
    if time.time() > end:
        break
    try:
        c.request("GET", "/v1/inbox", headers=headers[i % len(headers)])
        r = c.getresponse()
        r.read()
        codes[r.status] = codes.get(r.status, 0) + 1
    except OSError:
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
print("5000 unauthenticated requests:", codes)
PY
for i in $(seq 1 200); do
    timeout 5 "$AM" link sync --store "$T/g" --dial "tcp://127.0.0.1:$LP" --network-key "@$T/other.key" \
        --timeout 2s >/dev/null 2>&1
done
after=$(stat -c %s "$LOG")
grown=$((after - before))
echo "audit log grew by $grown bytes for 5000 refused requests and 200 wrong-key handshakes"
check "the audit log grew by at most 64 KiB ($grown bytes)" test "$grown" -le 65536
check "the first refusal of a kind is written in full" grep -q '"event":"token_refused".*missing bearer token' "$LOG"
check "a wrong network key is written too" grep -q '"event":"link_refused"' "$LOG"
kill -TERM "$GPID"; wait "$GPID" 2>/dev/null
check "at stop, the counted ones are written with their count" \
    bash -c "grep '\"event\":\"token_refused_repeated\"' '$LOG' | grep -q '\"count\":[0-9][0-9][0-9]'"
total=$(/usr/bin/python3 -c "
import json
n = 0
for line in open('$LOG'):
    d = json.loads(line)
    if d.get('event') == 'token_refused':
        n += 1
    elif d.get('event') == 'token_refused_repeated':
        n += d.get('count', 0)
print(n)")
check "every refusal is accounted for: written or counted ($total of 5000)" test "$total" -ge 5000
check "the log still verifies" "$AM" audit verify "$LOG"
echo "audit-flood: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
