# ha_lib.sh — what the gateway-pair tests share (sourced after lib.sh with
# AM, NODE, GW set): a Redis on a loopback port, the pair's identity and
# network key, gateways A and B (one identity, --shared-state, linked to
# each other), crane-1 with an echo tool, and nginx in front with the
# guide's upstream block (ports substituted) plus one for MCP.
for p in redis-server nginx; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || { echo "FAIL: $p is not installed (tools/dev deps)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
RP=$(port) PA=$(port) PB=$(port) LA=$(port) LB=$(port) MA=$(port) MB=$(port) CP=$(port) NP=$(port) NM=$(port)
URL="redis://127.0.0.1:$RP"

ha_redis() { # start (or restart) Redis on its port
    redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$T" >>"$T/redis.log" 2>&1 &
    RPID=$!
    PIDS+=($RPID)
    until_ok 100 bash -c "redis-cli -p $RP ping 2>/dev/null | grep -q PONG"
}

ha_keys() {
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
}

ha_gateway() { # a|b [flags]: start that gateway (again), its pid in APID / BPID
    local which=$1; shift
    if [ "$which" = a ]; then
        "$GW" --data "$T/ga" --identity "$T/gateway_identity.pem" --network-key "@$T/net.key" --host 127.0.0.1 \
            --port "$PA" --listen "tcp://127.0.0.1:$LA" --mcp-port "$MA" --no-discovery --name site-gw \
            --shared-state "$URL" "$@" >>"$T/ga.log" 2>&1 &
        APID=$!
        PIDS+=($APID)
        wait_http "http://127.0.0.1:$PA/health"
    else
        "$GW" --data "$T/gb" --identity "$T/gateway_identity.pem" --network-key "@$T/net.key" --host 127.0.0.1 \
            --port "$PB" --listen "tcp://127.0.0.1:$LB" --mcp-port "$MB" --no-discovery --name site-gw \
            --shared-state "$URL" --peer "tcp://127.0.0.1:$LA" "$@" >>"$T/gb.log" 2>&1 &
        BPID=$!
        PIDS+=($BPID)
        wait_http "http://127.0.0.1:$PB/health"
    fi
}

ha_node() { # crane-1, linked to A (and to B when asked: ha_node both)
    local gid more=()
    gid=$(req GET "http://127.0.0.1:$PA/health" | field "d['node_id']")
    [ "${1:-}" = both ] && more=(--peer "tcp://127.0.0.1:$LB")
    "$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$CP" --no-discovery --name crane-1 --trust-key "$gid" \
        --gateway "tcp://127.0.0.1:$LA" "${more[@]}" >"$T/c1.log" 2>&1 &
    PIDS+=($!)
    C1=$(until_ok 100 bash -c "curl -s -m 2 http://127.0.0.1:$CP/health | grep -q node_id" && curl -s -m 2 "http://127.0.0.1:$CP/health" | jq -r .node_id)
    ha_both_catalogs() { [ -n "$(ls "$T/ga/catalogs" 2>/dev/null)" ] && [ -n "$(ls "$T/gb/catalogs" 2>/dev/null)" ]; }
    until_ok 300 ha_both_catalogs
}

ha_nginx() {
    cat >"$T/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 256; }
http {
    log_format up '\$upstream_addr \$status';
    access_log $T/nginx-up.log up;
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
        location / {
            proxy_pass http://agent_mesh_mcp;
            proxy_http_version 1.1;
        }
    }
}
EOF
    "$NGINX" -p "$T" -c "$T/nginx.conf" -g 'daemon off;' >"$T/nginx.log" 2>&1 &
    PIDS+=($!)
    until_ok 100 curl -s -o /dev/null -m 2 "http://127.0.0.1:$NP/health"
}
