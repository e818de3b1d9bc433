#!/bin/bash
# Tools on edge nodes, online and deferred, and the MCP server, with real
# daemons: a gateway (MCP on), crane-1 with five tools, office-1 that goes
# offline, far-1 reached only by USB stick.
#  - online call: the result within wait_ms; a call per refusal kind (no
#    token 401, a token without that tool 403, arguments failing the
#    schema, unknown tool, timeout, output over the cap): each a clear
#    result, audited with its workflow_id, and the node keeps serving
#  - a restart in the middle of a long run: not run twice, "interrupted"
#  - deferred: office-1 offline, the call queued, office-1 back, done with
#    exactly one result; a call carried to far-1 and back on a stick
#  - the official MCP SDK client (npm, pinned in tests/mcp) lists and
#    calls tools, gets a job id for the offline node and polls it; bad
#    JSON-RPC gets JSON-RPC errors
# usage: tools.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
scratch am-tools
# the MCP endpoint wants JSON's content type
export REQ_CONTENT_TYPE=application/json

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
C1=$("$AM" init --store "$T/c1" 2>/dev/null)
O1=$("$AM" init --store "$T/o1" 2>/dev/null)
F1=$("$AM" init --store "$T/f1" 2>/dev/null)
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
# the tools
for d in c1 o1 f1; do mkdir -p "$T/$d/tools"; cat >"$T/$d/tools/echo.json" <<'EOF'
{"name": "echo", "description": "says what it is told",
 "input_schema": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 20}},
                  "required": ["word"], "additionalProperties": false},
 "command": ["/bin/echo", "heard:", "{word}"], "timeout": "5s"}
EOF
done
cat >"$T/slow.sh" <<EOF
#!/bin/sh
echo "run \$AGENT_MESH_CALL_ID" >>"$T/runs.log"
sleep "\$1"
echo slept
EOF
chmod +x "$T/slow.sh"
cat >"$T/c1/tools/slow.json" <<EOF
{"name": "slow", "description": "sleeps", "command": ["$T/slow.sh", "{secs}"], "timeout": "2s",
 "input_schema": {"type": "object", "properties": {"secs": {"type": "integer", "minimum": 0, "maximum": 60}}}}
EOF
cat >"$T/c1/tools/long.json" <<EOF
{"name": "long", "description": "a long job", "command": ["$T/slow.sh", "{secs}"], "timeout": "60s"}
EOF
cat >"$T/c1/tools/big.json" <<'EOF'
{"name": "big", "description": "too much output", "command": ["/usr/bin/head", "-c", "100000", "/dev/zero"],
 "max_output": 1000}
EOF

GP=$(port) LP=$(port) MP=$(port) CP=$(port) OP=$(port) FP=$(port)
GU=http://127.0.0.1:$GP
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --mcp-port "$MP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!)
# the nodes dial once the link port is open (else they start in backoff)
wait_http "$GU/health" || bad "the gateway answers /health"
start_node() { # DIR NAME PORT [flags]
    local d=$1 n=$2 p=$3; shift 3
    "$NODE" --data "$T/$d" --network-key "@$T/net.key" --port "$p" --no-discovery --name "$n" --trust-key "$G" \
        "$@" >>"$T/$d.log" 2>&1 &
    PIDS+=($!)
}
start_node c1 crane-1 "$CP" --gateway "tcp://127.0.0.1:$LP" --group site
C1PID=$!
start_node o1 office-1 "$OP" --gateway "tcp://127.0.0.1:$LP" --group site
O1PID=$!
catalogs() { [ "$(ls "$T/g/catalogs" 2>/dev/null | grep -c json)" -ge 2 ]; }
check "both nodes linked and their tool catalogs reached the gateway" until_ok 300 catalogs

call() { req POST "$GU/v1/tools/call" "$1" "${2:-$ADMIN}"; }
check "mesh_scan on the gateway shows crane-1's tools" test \
    "$(req GET "$GU/v1/mesh_scan" "" "$ADMIN" | field "sorted([p for p in d['peers'] if p['name'] == 'crane-1'][0]['tools'])")" = "['big', 'echo', 'long', 'slow']"
out=$(call '{"node":"crane-1","tool":"echo","args":{"word":"hi"},"wait_ms":10000,"workflow_id":"wf-tools"}')
check "online call: 200 with the result within wait_ms" grep -q '^200 .*"status":"ok".*heard: hi' <<<"$out"
check "no token: 401" grep -q '^401 ' <<<"$(call '{"node":"crane-1","tool":"echo","args":{"word":"x"}}' -)"
OTHER=$("$AM" token issue --data "$T/g" --right call:crane-1:slow --valid 1h)
check "a token without that tool: 403 naming it" grep -q '^403 .*call:crane-1:echo' <<<"$(call '{"node":"crane-1","tool":"echo","args":{"word":"x"}}' "$OTHER")"
out=$(call '{"node":"crane-1","tool":"echo","args":{"word":42},"wait_ms":10000,"workflow_id":"wf-tools"}')
check "arguments failing the schema: refused, naming the argument" grep -q '"status":"refused".*arguments: \$.word: must be of type' <<<"$out"
out=$(call '{"node":"crane-1","tool":"echo","args":{"word":"x","extra":1},"wait_ms":10000}')
check "an argument the tool does not take: refused" grep -q '"status":"refused".*extra: is not an argument' <<<"$out"
out=$(call '{"node":"crane-1","tool":"nope","wait_ms":10000,"workflow_id":"wf-tools"}')
check "unknown tool: refused" grep -q '"status":"refused".*unknown tool \\"nope\\"' <<<"$out"
out=$(call '{"node":"crane-1","tool":"slow","args":{"secs":10},"wait_ms":15000,"workflow_id":"wf-tools"}')
check "timeout exceeded: stopped and said so" grep -q '"status":"timeout".*past its timeout of 2000 ms' <<<"$out"
out=$(call '{"node":"crane-1","tool":"big","wait_ms":10000,"workflow_id":"wf-tools"}')
check "output over the cap: stopped and said so ($(head -c 300 <<<"$out"))" grep -q '"status":"output_limit".*max_output of 1000' <<<"$out"
check "and the node keeps serving" grep -q '^200 .*heard: still' <<<"$(call '{"node":"crane-1","tool":"echo","args":{"word":"still"},"wait_ms":10000}')"
check "unknown node: 404" grep -q '^404 .*no node \\"ghost\\"' <<<"$(call '{"node":"ghost","tool":"echo"}')"
check "bad JSON: 400" grep -q '^400 .*bad JSON' <<<"$(call '{"node":')"
CA=$T/c1/audit/audit.log
echo "  node audit events: $(jq -r '[.event, .workflow_id // "", .status // ""] | join(":")' "$CA" | sort | uniq -c | tr '\n' ' ')"
check "node audit: the calls, results and refusals with the workflow id" test \
    "$(jq -c 'select(.workflow_id == "wf-tools")' "$CA" | wc -l)" -ge 8
check "node audit: a refusal and a timeout among them" test \
    "$(jq -c 'select(.workflow_id == "wf-tools" and (.event == "tool_refused" or .status == "timeout"))' "$CA" | wc -l)" -ge 3
check "per-workflow counts with jq" bash -c "jq -r '.workflow_id // empty' '$CA' | sort | uniq -c | grep -q ' wf-tools'"
check "the gateway's jobs by workflow" test "$(req GET "$GU/v1/jobs?workflow_id=wf-tools" "" "$ADMIN" | field "len(d['jobs'])")" -ge 5
check "GET /v1/tools on the node lists its four" test "$(req GET "http://127.0.0.1:$CP/v1/tools" "" "$ADMIN" | field "len(d['tools'])")" = 4
# the roles split (issue 14): the gateway runs no tools; its /v1/tools is
# every node's, from their catalogs, and a node's mesh_scan shows its own
check "GET /v1/tools on the gateway lists crane-1's four, by node" test \
    "$(req GET "$GU/v1/tools" "" "$ADMIN" | field "sorted(t['name'] for t in d['tools'] if t['node_name'] == 'crane-1' and t['node'] == '$C1')")" = "['big', 'echo', 'long', 'slow']"
check "crane-1's own mesh_scan shows its tools" test \
    "$(req GET "http://127.0.0.1:$CP/v1/mesh_scan" "" "$ADMIN" | field "sorted(d['self']['tools'])")" = "['big', 'echo', 'long', 'slow']"

# a long run does not hold the other calls (each call has its own worker)
out=$(call '{"node":"crane-1","tool":"long","args":{"secs":3},"wait_ms":0}')
SLOW=$(field "d['job_id']" <<<"$out")
out=$(call '{"node":"crane-1","tool":"echo","args":{"word":"meanwhile"},"wait_ms":10000}')
QUICK=$(field "d['results'][0]['received_ms']" <<<"$out")
slow_done() { req GET "$GU/v1/jobs/$SLOW" "" "$ADMIN" | grep -q '"status":"done"'; }
until_ok 100 slow_done || bad "the long call finished"
check "a quick call answers while a long one runs" test "$QUICK" -lt "$(req GET "$GU/v1/jobs/$SLOW" "" "$ADMIN" | field "d['results'][0]['received_ms']")"

# a restart in the middle of a long run
out=$(call '{"node":"crane-1","tool":"long","args":{"secs":8},"wait_ms":0}')
LJOB=$(field "d['job_id']" <<<"$out")
until_ok 100 grep -q "run $LJOB" "$T/runs.log" || bad "the long tool started"
kill -9 "$C1PID"; wait "$C1PID" 2>/dev/null
start_node c1 crane-1 "$CP" --gateway "tcp://127.0.0.1:$LP"
C1PID=$!
interrupted() { req GET "$GU/v1/jobs/$LJOB" "" "$ADMIN" | grep -q '"status":"interrupted"'; }
check "restart mid-run: reported interrupted" until_ok 150 interrupted
# not a fixed wait: a call made after the restart has run and answered,
# so the restarted runner has been through the store (a re-run of the
# long call would have been dispatched before it)
out=$(call '{"node":"crane-1","tool":"echo","args":{"word":"after-restart"},"wait_ms":20000}')
check "a call after the restart answers" grep -q '"status":"ok"' <<<"$out"
check "... and the long one was not run twice" test "$(grep -c "run $LJOB" "$T/runs.log")" -eq 1

# MCP: malformed JSON-RPC
mcp() { req POST "http://127.0.0.1:$MP/mcp" "$1" "${2:-$ADMIN}"; }
check "MCP: not JSON: 400 with a JSON-RPC parse error" grep -q '^400 .*"code":-32700' <<<"$(mcp '{"jsonrpc":')"
check "MCP: unknown method: -32601" grep -q '"code":-32601' <<<"$(mcp '{"jsonrpc":"2.0","id":7,"method":"nope"}')"
check "MCP: not JSON-RPC: -32600" grep -q '"code":-32600' <<<"$(mcp '{"id":1,"method":"ping"}')"
check "MCP: an empty batch: -32600" grep -q '"code":-32600' <<<"$(mcp '[]')"
check "MCP: no token: 401" grep -q '^401 ' <<<"$(mcp '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' -)"
check "MCP: GET (no server stream): 405" grep -q '^405' <<<"$(req GET "http://127.0.0.1:$MP/mcp" "" "$ADMIN")"
# Origin and sessions (issue 11, point 7; both unchecked on ee90c10)
mcpc() { curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$@" "http://127.0.0.1:$MP/mcp"; }
PING='{"jsonrpc":"2.0","id":1,"method":"ping"}'
check "MCP: a foreign Origin: 403" test "$(mcpc -H 'Origin: http://evil.example' -d "$PING")" = 403
check "MCP: Origin localhost: allowed" test "$(mcpc -H 'Origin: http://localhost:3000' -d "$PING")" = 200
check "MCP: an unknown Mcp-Session-Id: 404" test "$(mcpc -H 'Mcp-Session-Id: 0123456789abcdef0123456789abcdef' -d "$PING")" = 404
SID=$(curl -s -m 10 -D - -o /dev/null -H "Authorization: Bearer $ADMIN" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}' "http://127.0.0.1:$MP/mcp" | tr -d '\r' | sed -n 's/^Mcp-Session-Id: //Ip')
check "MCP: initialize gives a session" test -n "$SID"
check "MCP: its session works" test "$(mcpc -H "Mcp-Session-Id: $SID" -d "$PING")" = 200
check "MCP: DELETE ends it" test "$(mcpc -X DELETE -H "Mcp-Session-Id: $SID")" = 200
check "MCP: ... then it is unknown: 404" test "$(mcpc -H "Mcp-Session-Id: $SID" -d "$PING")" = 404
# protocol revisions (on 15010c7 any MCP-Protocol-Version was taken and a
# client asking for 2025-11-25 was answered 2025-03-26)
check "MCP: an unsupported MCP-Protocol-Version: 400" test "$(mcpc -H 'MCP-Protocol-Version: 1999-01-01' -d "$PING")" = 400
check "MCP: a served MCP-Protocol-Version: 200" test "$(mcpc -H 'MCP-Protocol-Version: 2025-06-18' -d "$PING")" = 200
mcpinit() { curl -s -m 10 -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"$1\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}" \
    "http://127.0.0.1:$MP/mcp" | jq -r .result.protocolVersion; }
check "MCP: initialize for 2025-11-25 gets 2025-11-25" test "$(mcpinit 2025-11-25)" = 2025-11-25
check "MCP: initialize for 2024-11-05 gets 2024-11-05" test "$(mcpinit 2024-11-05)" = 2024-11-05
check "MCP: initialize for an unknown revision gets the newest served" test "$(mcpinit 2099-01-01)" = 2025-11-25
# tools/list pages (a cursor is the offset of the next page)
mcplist() { curl -s -m 10 -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":$1}" "http://127.0.0.1:$MP/mcp"; }
check "MCP: tools/list from cursor 4 gives the node tools, no next page" \
    bash -c "mcplist_out=\$(curl -s -m 10 -H 'Authorization: Bearer $ADMIN' -H 'Content-Type: application/json' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"cursor\":\"4\"}}' http://127.0.0.1:$MP/mcp); jq -e '(.result.tools | length) > 0 and all(.result.tools[]; .name | test(\"__\")) and (.result | has(\"nextCursor\") | not)' <<<\"\$mcplist_out\" >/dev/null"
check "MCP: a cursor it never gave: invalid params" \
    test "$(mcplist '{"cursor":"x"}' | jq -r .error.code)" = -32602
check "MCP: the built-ins declare an outputSchema" \
    test "$(mcplist '{}' | jq '[.result.tools[] | select(.name | startswith("mesh_")) | select(.outputSchema.type == "object")] | length')" = 4
# body-less answers say Content-Length: 0, so a client need not wait for the close (ee90c10: it waited)
check "MCP: a notification's 202 carries Content-Length: 0" bash -c "curl -s -m 10 -D - -o /dev/null -H 'Authorization: Bearer $ADMIN' -d '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}' http://127.0.0.1:$MP/mcp | tr -d '\r' | grep -qi '^content-length: 0$'"

# deferred: office-1 goes offline; the official MCP client calls it and polls
check "office-1 ran until here" kill -0 "$O1PID"
kill -TERM "$O1PID"; wait "$O1PID" 2>/dev/null
if [ -d "$HERE/../mcp/node_modules/@modelcontextprotocol/sdk" ] && command -v node >/dev/null; then
    coproc MCPC { node "$HERE/../mcp/client.mjs" "http://127.0.0.1:$MP/mcp" "$ADMIN" crane-1 office-1 2>&1; }
    MJOB=
    while read -r -t 60 line <&"${MCPC[0]}"; do
        echo "$line"
        case $line in
        ok:*) passes=$((passes+1));;
        FAIL:*) fails=$((fails+1));;
        job:*) MJOB=${line#job: }; break;;
        esac
    done
    [ -n "$MJOB" ] || bad "the MCP client reached the offline call"
    start_node o1 office-1 "$OP" --gateway "tcp://127.0.0.1:$LP"
    [ -n "${MCPC[1]:-}" ] && echo go >&"${MCPC[1]}"
    while [ -n "${MCPC[0]:-}" ] && read -r -t 60 line <&"${MCPC[0]}"; do
        echo "$line"
        case $line in ok:*) passes=$((passes+1));; FAIL:*) fails=$((fails+1));; esac
    done
    [ -n "${MCPC_PID:-}" ] && wait "$MCPC_PID" 2>/dev/null
    check "the deferred job has exactly one result" test "$(req GET "$GU/v1/jobs/$MJOB" "" "$ADMIN" | field "len(d['results'])")" = 1
    # mesh_send's workflow_id argument reaches the audit record (47f2cf2
    # read only _meta.workflow_id: the record had none)
    check "MCP mesh_send: the audit record carries its workflow_id argument" \
        bash -c "jq -c 'select(.action == \"send:broadcast\" and .workflow_id == \"wf-mcp-send\")' '$T/g/audit/audit.log' | grep -q ."
else
    bad "the MCP SDK is not installed (tools/dev deps installs it into tests/mcp)"
fi

# a call to a group fans out: one result per member, collected until the ttl
out=$(call '{"group":"site","tool":"echo","args":{"word":"all"},"ttl":"3s","wait_ms":15000,"workflow_id":"wf-fan"}')
check "group call: a result from each member" \
    test "$(field "sorted(r['node_name'] + ':' + r['status'] for r in d['results'])" <<<"$out")" = "['crane-1:ok', 'office-1:ok']"

# deferred by USB stick: far-1 never links; the call and its result ride a stick
start_node f1 far-1 "$FP"
out=$(call "{\"node\":\"$F1\",\"tool\":\"echo\",\"args\":{\"word\":\"by-stick\"},\"wait_ms\":0}")
FJOB=$(field "d['job_id']" <<<"$out")
check "a call to a node never seen: queued (202)" grep -q '^202 ' <<<"$out"
mkdir -p "$T/stick"
"$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
"$AM" bundle sync --store "$T/f1" "$T/stick" >/dev/null 2>&1
ran() { ls "$T/f1/calls/$FJOB.json" >/dev/null 2>&1 && grep -q '"state":"done"' "$T/f1/calls/$FJOB.json"; }
check "far-1 ran the call it got from the stick" until_ok 100 ran
"$AM" bundle sync --store "$T/f1" "$T/stick" >/dev/null 2>&1
"$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
done_stick() { req GET "$GU/v1/jobs/$FJOB" "" "$ADMIN" | grep -q '"status":"done".*heard: by-stick'; }
check "the result came back on the stick: job done" until_ok 100 done_stick
"$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
check "... exactly once" test "$(req GET "$GU/v1/jobs/$FJOB" "" "$ADMIN" | field "len(d['results'])")" = 1
finish tools
