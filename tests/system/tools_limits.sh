#!/bin/bash
# Tools stay inside their limits (issue 11, point 4), real daemons:
#  - a tool whose child escapes with setsid and keeps stdout open: the call
#    ends at its timeout, the escaped child is gone, and four such calls
#    at once do not starve a quick one
#  - a tool writing a file past max_file_size is stopped, the file capped
#  - output at a 1 MiB max_output still makes a result that fits an
#    envelope (cut, truncated: true): the job is done, not pending forever
#  - a call nobody answers is "expired" at its deadline, not pending
#  - a ttl past 366 days is refused (API and CLI)
# On ee90c10: escaped children held workers for 30 s (a quick call timed
# out behind four of them), files grew without bound, the big result was
# dropped and its job stayed pending.
# usage: tools_limits.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
. "$(dirname "$0")/lib.sh"
scratch am-toollim
AT_EXIT='pkill -f "sleep 31.7$" 2>/dev/null'
call() { curl -s -m 40 -H "Authorization: Bearer $ADMIN" -d "$1" "http://127.0.0.1:$GP/v1/tools/call"; }
field() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
C1=$("$AM" init --store "$T/c1" 2>/dev/null)
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
mkdir -p "$T/c1/tools" "$T/out"
cat >"$T/escape.sh" <<'EOF'
#!/bin/sh
# a child leaves the process group and keeps our stdout open
setsid sleep 31.7 &
echo started
sleep 30
EOF
chmod +x "$T/escape.sh"
cat >"$T/c1/tools/escape.json" <<EOF
{"name": "escape", "description": "escapes", "command": ["$T/escape.sh"], "timeout": "2s"}
EOF
cat >"$T/c1/tools/bigfile.json" <<EOF
{"name": "bigfile", "description": "writes 200 MB", "command": ["/bin/dd", "if=/dev/zero", "of=$T/out/big", "bs=1M", "count=200"],
 "timeout": "20s", "max_file_size": 1048576}
EOF
cat >"$T/c1/tools/noisy.json" <<'EOF'
{"name": "noisy", "description": "2 MB of binary", "command": ["/usr/bin/head", "-c", "2000000", "/dev/urandom"],
 "max_output": 1048576}
EOF
cat >"$T/c1/tools/quick.json" <<'EOF'
{"name": "quick", "description": "answers at once", "command": ["/bin/echo", "quick"]}
EOF
GP=$(port) LP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!)
"$NODE" --data "$T/c1" --network-key "@$T/net.key" --port "$(port)" --no-discovery --name crane-1 --trust-key "$G" \
    --gateway "tcp://127.0.0.1:$LP" >"$T/c1.log" 2>&1 &
PIDS+=($!)
catalog() { [ -f "$T/g/catalogs/$C1.json" ]; }
check "crane-1 linked, its catalog at the gateway" until_ok 150 catalog

# an escaping child
t0=$(date +%s)
out=$(call '{"node":"crane-1","tool":"escape","wait_ms":30000}')
t1=$(date +%s)
echo "escape call answered in $((t1 - t0)) s: $(head -c 200 <<<"$out")"
check "the escaping tool's call ends as a timeout" grep -q '"status":"timeout"' <<<"$out"
check "... well before its child's 30 s" test $((t1 - t0)) -le 15
gone() { ! pgrep -f "sleep 31.7$" >/dev/null; }
if [ "$(id -u)" = 0 ]; then # PID namespaces need root (or user namespaces)
    check "the escaped child is gone with the call" until_ok 50 gone
fi
# four at once, and a quick call among them
for i in 1 2 3 4; do call '{"node":"crane-1","tool":"escape","wait_ms":0}' >/dev/null; done
sleep 0.5
out=$(call '{"node":"crane-1","tool":"quick","wait_ms":15000}')
check "a quick call answers while four escaping calls run" grep -q '"status":"ok".*quick' <<<"$out"

# a file past max_file_size
out=$(call '{"node":"crane-1","tool":"bigfile","wait_ms":30000}')
check "writing past max_file_size: stopped, and the tool or we say so" grep -q 'max_file_size of 1048576\|File too large' <<<"$out"
size=$(stat -c %s "$T/out/big" 2>/dev/null || echo 0)
check "... the file stayed at the limit ($size bytes)" test "$size" -le 1048576

# output at a 1 MiB cap still makes a result
out=$(call '{"node":"crane-1","tool":"noisy","wait_ms":30000}')
check "a 1 MiB output: the result arrives ($(head -c 120 <<<"$out"))" grep -q '"status":"output_limit"' <<<"$out"
check "... cut to fit, and says so" grep -q '"truncated":true' <<<"$out"

# nobody answers: expired at the deadline
ghost=$("$AM" init --store "$T/never" 2>/dev/null) # a real key that never links
out=$(call "{\"node\":\"$ghost\",\"tool\":\"quick\",\"ttl\":\"2s\",\"wait_ms\":6000}")
check "a call nobody answers is expired at its deadline ($(head -c 200 <<<"$out"))" grep -q '"status":"expired"' <<<"$out"
# jobs: listed a page at a time, kept on disk (not in memory), across a restart
for i in $(seq 1 120); do call '{"node":"crane-1","tool":"quick","wait_ms":0}' >/dev/null; done
page=$(curl -s -m 10 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/jobs?limit=50")
check "GET /v1/jobs?limit=50: 50 and a next cursor" test "$(field "'%d %s' % (len(d['jobs']), 'next' in d)" <<<"$page")" = "50 True"
total=0 after=""
for _ in $(seq 1 20); do
    page=$(curl -s -m 10 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/jobs?limit=50${after:+&after=$after}")
    total=$((total + $(field "len(d['jobs'])" <<<"$page")))
    after=$(field "d.get('next', '')" <<<"$page")
    [ -z "$after" ] && break
done
njobs=$(ls "$T/g/jobs" | wc -l)
check "following next visits every job once ($total of $njobs)" test "$total" = "$njobs"
check "a bad limit: 400" grep -q 'limit' <<<"$(curl -s -m 10 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/jobs?limit=0")"

# lifetimes have a ceiling (issue 11, point 7; accepted on ee90c10)
out=$(curl -s -m 10 -w ' %{http_code}' -H "Authorization: Bearer $ADMIN" -d "{\"to\":\"$C1\",\"text\":\"x\",\"ttl\":\"1000000d\"}" "http://127.0.0.1:$GP/v1/messages")
check "a message with ttl 1000000d: 400 naming the limit ($out)" grep -q '366 days.* 400$' <<<"$out"
out=$(curl -s -m 10 -w ' %{http_code}' -H "Authorization: Bearer $ADMIN" -d '{"node":"crane-1","tool":"quick","ttl":"1000000d"}' "http://127.0.0.1:$GP/v1/tools/call")
check "a call with ttl 1000000d: 400 naming the limit ($out)" grep -q '366 days.* 400$' <<<"$out"
check "agent-mesh send --ttl 1000d: refused" bash -c "! '$AM' send --store '$T/g' --broadcast --ttl 1000d --text x 2>/dev/null"
echo "tools-limits: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
