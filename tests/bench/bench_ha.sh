#!/bin/bash
# Gateway pair benchmark (issue 13): requests/s through nginx to the pair
# (two gateways, one identity, --shared-state on a real Redis, the guide's
# upstream block) against one gateway alone behind the same nginx (a
# one-server upstream: the same proxy hop), in the same run, rounds
# interleaved (alone, pair, ...; min/median/max of ROUNDS); and the
# failover time: from kill -9 of one gateway to the first request that
# succeeds through nginx, p50/p99 over KILLS kills (the killed one is
# restarted between kills). Workload: N requests, C at a time, half
# POST /v1/messages to a linked node (a store write), half GET
# /v1/jobs/ID (a read: on the pair, from Redis). 2 cores run everything:
# nginx, both gateways, Redis, the node and the client. Prints figures;
# asserts nothing but that the requests succeeded.
#
# usage: tests/bench/bench_ha.sh [BUILD_DIR]     (default build/)
#   N=2000 C=8 ROUNDS=3 KILLS=10
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
AM=$BUILD/tools/agent-mesh NODE=$BUILD/src/node/agent-mesh-node GW=$BUILD/src/gateway/agent-mesh-gateway
N=${N:-2000} C=${C:-8} ROUNDS=${ROUNDS:-3} KILLS=${KILLS:-10}
for x in "$AM" "$NODE" "$GW"; do [ -x "$x" ] || { echo "build first: $x missing" >&2; exit 2; }; done
HERE=$ROOT/tests/system
. "$HERE/lib.sh"
scratch am-bench-ha
. "$HERE/ha_lib.sh"
B=$ROOT/tests/bench

ha_redis || { echo "redis did not start" >&2; exit 1; }
ha_keys
ha_gateway a && ha_gateway b || { echo "gateways did not start" >&2; exit 1; }
ha_node both || { echo "the node did not link" >&2; exit 1; }
ha_nginx || { echo "nginx did not start" >&2; exit 1; }
# a second nginx, the same settings, one server in its upstream: one gateway alone
NA=$(port)
cat >"$T/nginx-alone.conf" <<EOF
worker_processes 1;
pid $T/nginx-alone.pid;
error_log $T/nginx-alone-error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $T/nginx-body;
    proxy_temp_path $T/nginx-proxy;
    fastcgi_temp_path $T/nginx-fcgi;
    uwsgi_temp_path $T/nginx-uwsgi;
    scgi_temp_path $T/nginx-scgi;
    upstream alone { server 127.0.0.1:$PA; }
    server { listen 127.0.0.1:$NA; location / { proxy_pass http://alone; } }
}
EOF
"$NGINX" -p "$T" -c "$T/nginx-alone.conf" -g 'daemon off;' >"$T/nginx-alone.log" 2>&1 &
PIDS+=($!)
until_ok 100 curl -s -o /dev/null -m 2 "http://127.0.0.1:$NA/health"
JOB=$(req POST "http://127.0.0.1:$PA/v1/tools/call" '{"node":"crane-1","tool":"echo","args":{"word":"x"},"wait_ms":10000}' "$TOKEN" | field "d['job_id']")

echo "== gateway pair through nginx vs one gateway alone behind nginx: $N requests, $C at a time, $ROUNDS rounds interleaved"
echo "   (half POST /v1/messages to crane-1, half GET /v1/jobs/ID; loopback, 2 cores for everything)"
alone=() pair=() ratio=()
for r in $(seq 1 "$ROUNDS"); do
    a=$(python3 "$B/ha_rate.py" 127.0.0.1 "$NA" "$TOKEN" "$C1" "$JOB" "$N" "$C")
    p=$(python3 "$B/ha_rate.py" 127.0.0.1 "$NP" "$TOKEN" "$C1" "$JOB" "$N" "$C")
    ar=$(awk '{print $2}' <<<"$a") pr=$(awk '{print $2}' <<<"$p")
    alone+=("$ar") pair+=("$pr") ratio+=("$(awk -v p="$pr" -v a="$ar" 'BEGIN{printf "%.2f", p/a}')")
    echo "round $r: alone $a | pair $p | pair/alone ${ratio[-1]}x"
done
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "min %s  median %s  max %s", v[1], v[int((NR+1)/2)], v[NR]}'; }
echo "one gateway alone (req/s):  $(stats "${alone[@]}")"
echo "the pair (req/s):           $(stats "${pair[@]}")"
echo "pair / alone (same round):  $(stats "${ratio[@]}")"

echo "== failover: kill -9 of one gateway (alternately A and B) to the first success through nginx, $KILLS kills"
times=()
for k in $(seq 1 "$KILLS"); do
    if [ $((k % 2)) = 1 ]; then victim=$APID which=a; else victim=$BPID which=b; fi
    out=$(python3 "$B/ha_failover_time.py" 127.0.0.1 "$NP" "$TOKEN" "$victim")
    ms=$(awk '{print $2}' <<<"$out")
    times+=("$ms")
    { wait "$victim"; } 2>/dev/null
    ha_gateway "$which" >/dev/null || { echo "gateway $which did not restart" >&2; exit 1; }
    echo "kill $k ($which): $ms ms"
done
printf '%s\n' "${times[@]}" | sort -g | awk '{v[NR]=$1} END{
    p50 = v[int((NR + 1) / 2)]; i99 = int(NR * 0.99 + 0.999); if (i99 < 1) i99 = 1; if (i99 > NR) i99 = NR;
    printf "failover time (ms, %d kills): p50 %s  p99 %s  (min %s, max %s)\n", NR, p50, v[i99], v[1], v[NR] }'
