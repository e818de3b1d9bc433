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
#  - TOFU pins are the pair's: an impostor crane-1 is refused by B
# usage: ha_pair.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-ha
. "$HERE/ha_lib.sh"

check "redis-server starts" ha_redis
ha_keys
ha_gateway a --dev-token || bad "gateway A answers"
ha_gateway b --dev-token || bad "gateway B answers"
check "crane-1's catalog reached A, and B over the pair's link" ha_node
check "A and B link to each other (one key, two instances)" grep -q 'peer .* "site-gw" .*live' "$T/gb.log"
DEV=$(cat "$T/ga/dev-token")
check "B's dev token is the pair's (A's, from the shared state)" test "$(cat "$T/gb/dev-token")" = "$DEV"
check "... and B says so at start" grep -q "DEVELOPMENT TOKEN (the gateway pair's" "$T/gb.log"
check "nginx starts with the guide's upstream block" ha_nginx

out=$(timeout 240 python3 "$HERE/ha_mixed.py" "http://127.0.0.1:$NP" "http://127.0.0.1:$NM/mcp" "$TOKEN" "$DEV" 100 2>&1)
echo "$out" | tail -12 | sed 's/^/  /'
check "100 mixed requests through nginx: all succeed ($(tail -1 <<<"$out"))" grep -q '^mixed: [0-9]* ok, 0 failed$' <<<"$out"
served() { grep -c "^127.0.0.1:$1 " "$T/nginx-up.log"; }
echo "  served: A api $(served "$PA"), B api $(served "$PB"), A mcp $(served "$MA"), B mcp $(served "$MB")"
check "... served by both gateways (A $(served "$PA"), B $(served "$PB"))" test "$(served "$PA")" -ge 20 -a "$(served "$PB")" -ge 20
check "... MCP by both too" test "$(served "$MA")" -ge 5 -a "$(served "$MB")" -ge 5
# TOFU pins are the pair's: A pinned crane-1; another key calling itself
# crane-1 is refused by B, which never met crane-1 (without the shared pin
# B would have pinned the impostor)
"$AM" init --store "$T/imp" >/dev/null 2>&1
GID=$(req GET "http://127.0.0.1:$PA/health" | field "d['node_id']")
"$NODE" --data "$T/imp" --network-key "@$T/net.key" --port "$(port)" --no-discovery --name crane-1 --trust-key "$GID" \
    --gateway "tcp://127.0.0.1:$LB" >"$T/imp.log" 2>&1 &
PIDS+=($!)
refused() { grep -q 'refused.*crane-1.*pinned for it.*the gateway pair' "$T/gb.log"; }
check "an impostor crane-1 (another key) is refused by B, from the pair's pin" until_ok 150 refused
check "... and B pinned nothing for it" bash -c '! jq -e ".peers[\"crane-1\"]" "$1/gb/trust/trust_store.json" >/dev/null 2>&1' _ "$T"
finish ha-pair
