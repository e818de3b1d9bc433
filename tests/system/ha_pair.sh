#!/bin/bash
# A gateway pair behind nginx, as the guide writes it: two gateways on
# their own ports with --shared-state redis://… and one identity (the pair
# is one authority: a token either issues is good on both and on every
# node), linked to each other; the guide's nginx upstream block verbatim
# (ports substituted), and one more for their MCP ports. crane-1 links to
# gateway A only, so what gateway B is asked travels the pair's link.
#  - B's dev token is A's (the pair's), taken from the shared state
#  - 100 mixed requests through nginx (messages, tool calls, job polls,
#    mesh_scan with the dev token, MCP initialize + tools/call) all
#    succeed, and nginx's log shows both gateways served them
# usage: ha_pair.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-ha
for p in redis-server nginx; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || { echo "FAIL: $p is not installed (tools/dev deps)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

RP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$T" >"$T/redis.log" 2>&1 &
PIDS+=($!)
check "redis-server starts" until_ok 100 bash -c "redis-cli -p $RP ping 2>/dev/null | grep -q PONG"
URL="redis://127.0.0.1:$RP"

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" keygen --output "$T/gateway_identity.pem" >/dev/null 2>&1
for d in ga gb; do "$AM" init --store "$T/$d" --identity "$T/gateway_identity.pem" >/dev/null 2>&1; done
"$AM" init --store "$T/c1" >/dev/null 2>&1
mkdir -p "$T/c1/tools"
cat >"$T/c1/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told", "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s",
 "input_schema": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 40}}, "required": ["word"]}}
EOF
TOKEN=$("$AM" token issue --gateway-key "$T/gateway_identity.pem" --role admin --valid 1h)
PA=$(port) PB=$(port) LA=$(port) LB=$(port) MA=$(port) MB=$(port) CP=$(port) NP=$(port) NM=$(port)
"$GW" --data "$T/ga" --identity "$T/gateway_identity.pem" --network-key "@$T/net.key" --host 127.0.0.1 --port "$PA" \
    --listen "tcp://127.0.0.1:$LA" --mcp-port "$MA" --no-discovery --name site-gw --dev-token --shared-state "$URL" \
    >"$T/ga.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PA/health" || bad "gateway A answers"
"$GW" --data "$T/gb" --identity "$T/gateway_identity.pem" --network-key "@$T/net.key" --host 127.0.0.1 --port "$PB" \
    --listen "tcp://127.0.0.1:$LB" --mcp-port "$MB" --no-discovery --name site-gw --dev-token --shared-state "$URL" \
    --peer "tcp://127.0.0.1:$LA" >"$T/gb.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PB/health" || bad "gateway B answers"
GID=$(req GET "http://127.0.0.1:$PA/health" | field "d['node_id']")
"$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$CP" --no-discovery --name crane-1 --trust-key "$GID" \
    --gateway "tcp://127.0.0.1:$LA" >"$T/c1.log" 2>&1 &
PIDS+=($!)
both_catalogs() { [ -n "$(ls "$T/ga/catalogs" 2>/dev/null)" ] && [ -n "$(ls "$T/gb/catalogs" 2>/dev/null)" ]; }
check "crane-1's catalog reached A, and B over the pair's link" until_ok 300 both_catalogs
check "A and B link to each other (one key, two instances)" grep -q 'peer .* "site-gw" .*live' "$T/gb.log"
DEV=$(cat "$T/ga/dev-token")
check "B's dev token is the pair's (A's, from the shared state)" test "$(cat "$T/gb/dev-token")" = "$DEV"
check "... and B says so at start" grep -q "DEVELOPMENT TOKEN (the gateway pair's" "$T/gb.log"

# nginx: the guide's upstream block, ports substituted; one more for MCP
cat >"$T/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 256; }
http {
    access_log $T/nginx-access.log combined;
    log_format up '\$upstream_addr \$status';
    client_body_temp_path $T/nginx-body;
    proxy_temp_path $T/nginx-proxy;
    fastcgi_temp_path $T/nginx-fcgi;
    uwsgi_temp_path $T/nginx-uwsgi;
    scgi_temp_path $T/nginx-scgi;

    upstream agent_mesh_gateways {
        server 127.0.0.1:$PA;
        server 127.0.0.1:$PB;
    }

    server {
        listen 127.0.0.1:$NP;
        access_log $T/nginx-up.log up;
        location / {
            proxy_pass http://agent_mesh_gateways;
        }
    }

    upstream agent_mesh_mcp {
        server 127.0.0.1:$MA;
        server 127.0.0.1:$MB;
    }
    server {
        listen 127.0.0.1:$NM;
        access_log $T/nginx-up.log up;
        location / {
            proxy_pass http://agent_mesh_mcp;
            proxy_http_version 1.1;
        }
    }
}
EOF
"$NGINX" -p "$T" -c "$T/nginx.conf" -g 'daemon off;' >"$T/nginx.log" 2>&1 &
PIDS+=($!)
check "nginx starts with the guide's upstream block" until_ok 100 curl -s -o /dev/null -m 2 "http://127.0.0.1:$NP/health"

out=$(timeout 240 python3 "$HERE/ha_mixed.py" "http://127.0.0.1:$NP" "http://127.0.0.1:$NM/mcp" "$TOKEN" "$DEV" 100 2>&1)
echo "$out" | tail -12 | sed 's/^/  /'
check "100 mixed requests through nginx: all succeed ($(tail -1 <<<"$out"))" grep -q '^mixed: [0-9]* ok, 0 failed$' <<<"$out"
served() { grep -c "^127.0.0.1:$1 " "$T/nginx-up.log"; }
echo "  served: A api $(served "$PA"), B api $(served "$PB"), A mcp $(served "$MA"), B mcp $(served "$MB")"
check "... served by both gateways (A $(served "$PA"), B $(served "$PB"))" test "$(served "$PA")" -ge 20 -a "$(served "$PB")" -ge 20
check "... MCP by both too" test "$(served "$MA")" -ge 5 -a "$(served "$MB")" -ge 5
finish ha-pair
