#!/bin/bash
# The MCP server with both official TypeScript clients (tests/mcp, pinned):
# @modelcontextprotocol/sdk 1.x (2025-11-25) and @modelcontextprotocol/client
# 2.x (2026-07-28, stateless), over streamable HTTP and over stdio through
# `agent-mesh mcp` (the bridge for local-only clients), against a real gateway
# and a real node: tools/list, progress notifications while a node runs a
# tool, a cancelled call whose job completes, unsupported versions refused
# (tests/mcp/clients.mjs says what each check is).
# usage: mcp_clients.sh AGENT_MESH NODE GATEWAY
set -u
AM=$(realpath "$1") NODE=$(realpath "$2") GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-mcp-clients
MCPDIR=$(cd "$HERE/../mcp" && pwd)
[ -d "$MCPDIR/node_modules/@modelcontextprotocol/client" ] || { echo "FAIL: tests/mcp/node_modules: run tools/dev deps"; exit 1; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
"$AM" init --store "$T/c1" >/dev/null 2>&1
"$AM" init --store "$T/o1" >/dev/null 2>&1
mkdir -p "$T/o1/tools"
cat >"$T/o1/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told", "command": ["/bin/echo", "{word}"], "timeout": "5s"}
EOF
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
mkdir -p "$T/c1/tools"
cat >"$T/c1/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told",
 "input_schema": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 40}}, "required": ["word"]},
 "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s"}
EOF
cat >"$T/c1/tools/long.json" <<EOF
{"name": "long", "description": "sleeps, then says so", "command": ["/bin/sh", "-c", "sleep \"\$1\"; echo slept", "sh", "{secs}"],
 "timeout": "30s", "input_schema": {"type": "object", "properties": {"secs": {"type": "integer", "minimum": 0, "maximum": 20}}}}
EOF
GP=$(port) LP=$(port) MP=$(port) CP=$(port) OP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --mcp-port "$MP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$GP/health" || bad "the gateway answers /health"
"$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$CP" --no-discovery --name crane-1 --trust-key "$G" \
    --gateway "tcp://127.0.0.1:$LP" >"$T/c1.log" 2>&1 &
PIDS+=($!)
catalog() { [ "$(ls "$T/g/catalogs" 2>/dev/null | grep -c json)" -ge 1 ]; }
check "crane-1 linked and its catalog reached the gateway" until_ok 300 catalog

echo "$ADMIN" >"$T/token"
# the second node, started by the clients while they watch (the tool list changes)
export SECOND_NODE="exec '$NODE' --data '$T/o1' --network-key '@$T/net.key' --port $OP --no-discovery --name office-1 --trust-key $G --gateway tcp://127.0.0.1:$LP >'$T/o1.log' 2>&1"
export SECOND_NODE_PID=$T/o1.pid
AT_EXIT='[ -s "$T/o1.pid" ] && kill -TERM "$(cat "$T/o1.pid")" 2>/dev/null; sleep 0.5'
out=$(cd "$MCPDIR" && timeout 300 node clients.mjs "http://127.0.0.1:$MP/mcp" "$ADMIN" crane-1 "$AM" "$T/token" \
    "http://127.0.0.1:$CP" "$G" 2>&1)
rc=$?
echo "$out" | sed 's/^/  /'
n_ok=$(grep -c '^ok:' <<<"$out") n_fail=$(grep -c '^FAIL:' <<<"$out")
# the bridge's stderr is the clients' (ASan builds: a report there fails this)
check "no sanitizer report from the bridge under the clients" bash -c '! grep -q "Sanitizer" <<<"$1"' _ "$out"
check "the clients ran to the end (rc $rc, $n_ok ok, $n_fail failed)" test "$rc" = 0 -a "$n_fail" = 0 -a "$n_ok" -ge 70
# (failed without 82b49f2's change: only _meta.workflow_id tagged a node tool call)
check "the workflow_id argument of a node tool lands in the gateway's audit record of the call" \
    bash -c "jq -c 'select(.workflow_id == \"wf-mcp-arg\")' '$T/g/audit/audit.log' | grep -q ."

# the official Inspector, CLI mode (pinned in tests/mcp-inspector)
INSP="$HERE/../mcp-inspector/node_modules/.bin/mcp-inspector"
insp() { MCP_CATALOG_PATH="$T/insp.json" HOME="$T" timeout 60 "$INSP" --cli "http://127.0.0.1:$MP/mcp" \
    --header "Authorization: Bearer $ADMIN" "$@" 2>"$T/insp.err"; }
out=$(insp --method tools/list)
check "inspector: tools/list shows crane-1__echo and mesh_scan ($(head -c 200 "$T/insp.err"))" \
    bash -c 'jq -e "[.tools[].name] | index(\"crane-1__echo\") and index(\"mesh_scan\")" >/dev/null <<<"$1"' _ "$out"
out=$(insp --method tools/call --tool-name mesh_scan)
check "inspector: tools/call mesh_scan has crane-1's catalog" \
    bash -c 'jq -e "[.structuredContent.catalogs[].node_name] | index(\"crane-1\")" >/dev/null <<<"$1"' _ "$out"
out=$(insp --method tools/call --tool-name crane-1__echo --tool-arg word=inspector)
check "inspector: tools/call crane-1__echo runs on the node" \
    bash -c 'jq -e ".content[0].text | test(\"heard: inspector\")" >/dev/null <<<"$1"' _ "$out"
[ "$fails" -eq 0 ] || { echo "  inspector said: $out"; head -c 600 "$T/insp.err"; }

# the bridge's own errors: JSON-RPC answers for the request that failed
out=$(echo '{"jsonrpc":"2.0","id":5,"method":"ping"}' | "$AM" mcp --gateway "http://127.0.0.1:$(port)/mcp" --token "@$T/token" 2>>"$T/bridge.err")
check "bridge: a gateway not there: an error for that request id, naming it" \
    bash -c 'jq -e ".id == 5 and .error.code == -32603 and (.error.message | test(\"did not answer\"))" >/dev/null <<<"$1"' _ "$out"
out=$(echo 'not json' | "$AM" mcp --gateway "http://127.0.0.1:$MP/mcp" --token "@$T/token" 2>>"$T/bridge.err")
check "bridge: not JSON on stdin: -32700" bash -c 'jq -e ".error.code == -32700" >/dev/null <<<"$1"' _ "$out"
out=$(echo '{"jsonrpc":"2.0","id":"a","method":"tools/list"}' | "$AM" mcp --gateway "http://127.0.0.1:$MP/mcp" 2>>"$T/bridge.err")
check "bridge: no token: the gateway's refusal, for that id" bash -c 'jq -e ".id == \"a\" and .error.code == -32001" >/dev/null <<<"$1"' _ "$out"
"$AM" mcp --gateway ftp://x 2>"$T/err"
check "bridge: a bad --gateway: rc 2, naming it" bash -c '[ $1 = 2 ] && grep -q "an http:// or https:// URL" "$2"' _ $? "$T/err"
check "no sanitizer report from the bridge alone" bash -c '! grep -q "Sanitizer" "$1"' _ "$T/bridge.err"
finish mcp-clients
