#!/bin/bash
# The gateway's HTTP door under hostile load (issue 11, points 1, 2 and 6),
# real daemons, bounded loads:
#  1. 300 connections sending 2 MiB bodies without a token (half over the
#     route's limit, half under it) each get a JSON 401/413 on the head,
#     before the body; the gateway's RSS stays within 64 MiB of where it
#     started and is back near it after
#  2. idle, header-trickling and body-stalled connections are closed at
#     the header/body deadlines (300 of them, limits set low by env);
#     /health is answered while they sit there; one address cannot take
#     another's share; under `ulimit -n 64`, 80 idle sockets neither stop
#     /health nor make the gateway spin
#  3. HTTP edges: chunked bodies are bodies (the chunk bytes are never read
#     as a second request), Transfer-Encoding with Content-Length is a 400,
#     unknown routes, wrong methods and oversize bodies get JSON 404, 405
#     with Allow and 413, `Expect: 100-continue` gets its 100 Continue, an
#     empty body says "empty body"
# On ee90c10 (nng's HTTP server): none of the 300 was answered (nng waits
# for the whole body) and RSS rose from 6 to 460 MiB; 0 of 300 slow connections were closed;
# a request right after a chunked head came back as a second response (a
# 401); chunked bodies were not read; errors were
# nng's HTML pages; no 100 Continue came; the empty body said "bad JSON at
# line -1".
# usage: http_limits.sh AGENT_MESH GATEWAY
set -u
AM=$1 GW=$2
. "$(dirname "$0")/lib.sh"
scratch am-httplim
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
"$AM" init --store "$T/g" >/dev/null 2>&1
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)

# gateway NAME ENV... : start one, wait for /health; GPID and GP set
gateway() {
    local name=$1; shift
    GP=$(port)
    env "$@" "$GW" --data "$T/g" --network-key "@$T/net.key" --port "$GP" --no-discovery \
        --name "$name" >>"$T/$name.log" 2>&1 &
    GPID=$!; PIDS+=($GPID)
    until_ok 100 curl -sf -m 2 "http://127.0.0.1:$GP/health" -o /dev/null
}
stop() { kill -TERM "$GPID"; wait "$GPID" 2>/dev/null; }

# --- 1. bodies without a token are refused on the head ---------------------
# under ASan freed memory sits in its quarantine (256 MiB) and reads as
# RSS: keep it small so "back near the start" measures us, not ASan
check "the gateway is up (room for 400 connections from one address)" \
    gateway gw1 AM_HTTP_MAX_CONNECTIONS=400 AM_HTTP_MAX_PER_ADDRESS=400 \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
base=$(rss "$GPID")
/usr/bin/python3 - "$GP" "$GPID" >"$T/p1.out" <<'PY' &
import socket, sys, time, select
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) // 1024
big = 2 * 1024 * 1024 + 4096 - 1        # over the 2 MiB route limit
under = 1024 * 1024                     # under it: only the token refuses it
socks, want = [], {}
for i in range(300):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    n = big if i % 2 == 0 else under
    s.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {n}\r\n\r\n".encode())
    s.setblocking(False)
    socks.append(s)
    want[s] = n - 1                     # one byte short: never a whole body
chunk = b"x" * 65536
peak, answers, early, end = rss(), {}, 0, time.time() + 20
sent = {s: 0 for s in socks}
while time.time() < end and len(answers) < len(socks):
    _, w, _ = select.select([], [s for s in socks if s not in answers and sent[s] < want[s]], [], 0.05)
    for s in w:
        try:
            sent[s] += s.send(chunk[:min(len(chunk), want[s] - sent[s])])
        except OSError:
            pass
    r, _, _ = select.select([s for s in socks if s not in answers], [], [], 0.05)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        answers[s] = data
        early += sent[s] < want[s]
    peak = max(peak, rss())
codes = {}
json_bodies = 0
for s, d in answers.items():
    head = d.split(b"\r\n", 1)[0].decode(errors="replace")
    codes[head] = codes.get(head, 0) + 1
    json_bodies += b"application/json" in d and b'"error"' in d
for s in socks:
    s.close()
print("codes", codes)
print("answered", len(answers), "before_body", early, "json", json_bodies, "peak", peak,
      "sent_mib", sum(sent.values()) >> 20)
PY
P1=$!
wait $P1
cat "$T/p1.out"
sleep 2
after=$(rss "$GPID")
read -r _ answered _ early _ json _ peak _ <<<"$(grep ^answered "$T/p1.out")"
echo "gateway RSS: before ${base} MiB, peak ${peak:-?} MiB, after ${after} MiB"
# no body is ever complete (each stops one byte short), so an answer at
# all is a refusal on the head; how much the client had pushed into its
# socket by then depends on the machine's speed, and is only printed
echo "answered while the client was still sending: ${early:-0} of 300"
check "all 300 unfinished unauthenticated bodies were answered on their head (${answered:-0})" test "${answered:-0}" -eq 300
check "every answer is a JSON error (${json:-0} of 300)" test "${json:-0}" -eq 300
check "the refusals are 401 and 413 only" bash -c "grep ^codes '$T/p1.out' | grep -q '401' && ! grep ^codes '$T/p1.out' | grep -qv -E \"^codes \\{('HTTP/1.1 (401 Unauthorized|413 Content Too Large|413 Payload Too Large|413 Request Entity Too Large)': [0-9]+(, )?)+\\}$\""
check "peak RSS within 64 MiB of the start (${base} -> ${peak:-?} MiB)" test "${peak:-99999}" -le $((base + 64))
check "RSS back near the start after (${base} -> ${after} MiB)" test "$after" -le $((base + 16))
check "/health still answers" curl -sf -m 5 "http://127.0.0.1:$GP/health" -o /dev/null

# a valid token and a body over the limit: 413 on the head, as JSON
out=$(/usr/bin/python3 - "$GP" "$ADMIN" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sys.argv[2]}\r\n"
          f"Content-Length: {3 << 20}\r\n\r\n".encode())
print(s.recv(4096).decode(errors="replace").replace("\r\n", " | "))
PY
)
check "a body over the limit with a token is a JSON 413 on the head" \
    bash -c "grep -q '^HTTP/1.1 413' <<<'$out' && grep -q 'application/json' <<<'$out' && grep -q 'limit' <<<'$out'"
stop

# --- 2. deadlines, caps and shares ----------------------------------------
check "a gateway with 2 s header and 3 s body deadlines is up" \
    gateway gw2 AM_HTTP_HEADER_TIMEOUT=2 AM_HTTP_BODY_TIMEOUT=3 AM_HTTP_MAX_CONNECTIONS=400 AM_HTTP_MAX_PER_ADDRESS=400
/usr/bin/python3 - "$GP" "$ADMIN" >"$T/p2.out" <<'PY'
import socket, sys, time, select, urllib.request
port, tok = int(sys.argv[1]), sys.argv[2]
kinds = {"idle": [], "trickle": [], "stalled": []}
for i in range(100):
    kinds["idle"].append(socket.create_connection(("127.0.0.1", port), timeout=5))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /v1/inbox HTTP/1.1\r\nX-")
    kinds["trickle"].append(s)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
              f"Content-Length: 1000\r\n\r\n{{\"ids\":".encode())
    kinds["stalled"].append(s)
health_ok = 0
for _ in range(5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as f:
            health_ok += f.status == 200
    except Exception:
        pass
print("health_during", health_ok)
closed = {k: 0 for k in kinds}
done = set()
end = time.time() + 15
while time.time() < end and len(done) < 300:
    for k, ss in kinds.items():
        for s in ss:
            if s in done:
                continue
            if k == "trickle":
                try:
                    s.send(b"a")        # a byte now and then never completes a head
                except OSError:
                    pass
            r, _, _ = select.select([s], [], [], 0)
            if r:
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                # closed, or a timeout answer followed by the close
                if not d or s.recv(4096) == b"":
                    done.add(s)
                    closed[k] += 1
    time.sleep(0.25)
print("closed", closed["idle"], closed["trickle"], closed["stalled"])
PY
cat "$T/p2.out"
read -r _ hd <<<"$(grep ^health_during "$T/p2.out")"
read -r _ ci ct cs <<<"$(grep ^closed "$T/p2.out")"
check "/health answered 5 of 5 times among 300 slow connections (${hd:-0})" test "${hd:-0}" -eq 5
check "100 idle connections closed at the header deadline (${ci:-0})" test "${ci:-0}" -eq 100
check "100 header-trickling connections closed at the header deadline (${ct:-0})" test "${ct:-0}" -eq 100
check "100 body-stalled connections closed at the body deadline (${cs:-0})" test "${cs:-0}" -eq 100
# the line comes at most every 10 s (the first may be due up to 10 s after
# the closes): wait for it, up to 15 s (CI on 3b10cda checked at once and missed it)
check "the closes are logged, once, with their counts" until_ok 150 grep -q "header_timeout" "$T/gw2.log"
curl -s -m 5 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/metrics" >"$T/metrics2"
ht=$(awk -F' ' '/^am_http_refused_total\{server="api",reason="header_timeout"\}/ {print $2}' "$T/metrics2")
bt=$(awk -F' ' '/^am_http_refused_total\{server="api",reason="body_timeout"\}/ {print $2}' "$T/metrics2")
check "the metrics count them: header_timeout ${ht:-none} >= 200, body_timeout ${bt:-none} >= 100" \
    test "${ht:-0}" -ge 200 -a "${bt:-0}" -ge 100
stop

check "a gateway with 40 connections, 10 per address, is up" \
    gateway gw3 AM_HTTP_MAX_CONNECTIONS=40 AM_HTTP_MAX_PER_ADDRESS=10
/usr/bin/python3 - "$GP" >"$T/p3.out" <<'PY'
import socket, sys, time, select
port = int(sys.argv[1])
def conn(src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s
def alive(ss):
    n = 0
    for s in ss:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                if s.recv(4096, socket.MSG_PEEK) == b"":
                    continue
            except OSError:
                continue
            continue        # an answer (503) is not a held connection
        n += 1
    return n
mine = [conn("127.0.0.2") for _ in range(10)]
time.sleep(0.5)
flood = [conn("127.0.0.1") for _ in range(50)]
time.sleep(1.0)
print("shares", alive(mine), alive(flood))
PY
cat "$T/p3.out"
read -r _ am af <<<"$(grep ^shares "$T/p3.out")"
check "a flood from one address leaves another's 10 connections open (${am:-0})" test "${am:-0}" -eq 10
check "the flooding address holds at most its share of 10 (${af:-99})" test "${af:-99}" -le 10
stop

# the fd limit at 64: 80 idle sockets, /health still answered, no spinning
GP=$(port)
(ulimit -n 64; exec "$GW" --data "$T/g" --network-key "@$T/net.key" --port "$GP" --no-discovery \
    --name gw4 >>"$T/gw4.log" 2>&1) &
GPID=$!; PIDS+=($GPID)
check "a gateway under ulimit -n 64 is up" until_ok 100 curl -sf -m 2 "http://127.0.0.1:$GP/health" -o /dev/null
t0=$(cpu_ticks "$GPID")
/usr/bin/python3 - "$GP" >"$T/p4.out" <<'PY'
import socket, sys, time, urllib.request
port = int(sys.argv[1])
idle = []
for _ in range(80):
    try:
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
ok = 0
for _ in range(5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as f:
            ok += f.status == 200
    except Exception:
        pass
    time.sleep(1)
print("health_fd64", ok)
PY
t1=$(cpu_ticks "$GPID")
cat "$T/p4.out"
read -r _ h4 <<<"$(grep ^health_fd64 "$T/p4.out")"
hz=$(getconf CLK_TCK)
echo "gateway CPU over the idle flood: $(( (t1 - t0) * 1000 / hz )) ms"
check "/health answered 5 of 5 times with 80 idle sockets at ulimit -n 64 (${h4:-0})" test "${h4:-0}" -eq 5
check "the gateway did not spin (CPU $(( (t1 - t0) * 1000 / hz )) ms over ~5 s, ee90c10 burned 9.4 s)" \
    test $(( (t1 - t0) * 1000 / hz )) -lt 2000
stop

# --- 3. edges ----------------------------------------------------------------
check "a gateway with default limits is up" gateway gw5
/usr/bin/python3 - "$GP" "$ADMIN" >"$T/p5.out" <<'PY'
import socket, sys, time, json
port, tok = int(sys.argv[1]), sys.argv[2]
def exchange(raw, wait=1.5, expect_continue=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(raw)
    s.settimeout(wait)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out
def chunked(body):
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
auth = f"Authorization: Bearer {tok}\r\n"
res = {}
# a chunked body is a body
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n".encode()
             + chunked(b'{"ids": []}'))
res["chunked_ok"] = r.startswith(b"HTTP/1.1 200") and b'"acked"' in r
# a request hidden in the chunk is never answered as a request
smuggled = b"GET /v1/inbox HTTP/1.1\r\nHost: x\r\n\r\n"
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n".encode()
             + chunked(smuggled))
res["smuggle_one_answer"] = r.count(b"HTTP/1.1 ") == 1 and r.startswith(b"HTTP/1.1 400")
# the same request right after the head, not framed as a chunk: bad
# chunked framing to us, one 400, never a second answer (ee90c10 ignored
# Transfer-Encoding and answered it: 400 then 401)
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n".encode() + smuggled)
res["smuggle_unframed"] = r.count(b"HTTP/1.1 ") == 1 and r.startswith(b"HTTP/1.1 400")
# a chunked body over the limit
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n".encode()
             + chunked(b"[" * (1100 * 1024)), wait=3)
res["chunked_413"] = r.startswith(b"HTTP/1.1 413") and b"application/json" in r
# framed two ways
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n"
             f"Content-Length: 11\r\n\r\n".encode() + chunked(b'{"ids": []}'))
res["te_cl_400"] = r.startswith(b"HTTP/1.1 400") and r.count(b"HTTP/1.1 ") == 1
# JSON errors
r = exchange(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
res["json_404"] = r.startswith(b"HTTP/1.1 404") and b"application/json" in r and b'"error"' in r
r = exchange(b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n")
res["json_405_allow"] = r.startswith(b"HTTP/1.1 405") and b"Allow: GET" in r and b'"error"' in r
r = exchange(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {3 << 20}\r\n\r\n".encode())
res["json_413"] = r.startswith(b"HTTP/1.1 413") and b'"error"' in r
# Expect: 100-continue gets its interim answer before the body is sent
s = socket.create_connection(("127.0.0.1", port), timeout=5)
body = b'{"ids": []}' + b" " * 2000
s.sendall(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}\r\n"
          f"Expect: 100-continue\r\n\r\n".encode())
try:
    first = s.recv(4096)
except socket.timeout:
    first = b""
s.sendall(body)
s.settimeout(5)
rest = s.recv(65536)
s.close()
res["continue_100"] = first.startswith(b"HTTP/1.1 100") and (b"HTTP/1.1 200" in first + rest)
# an empty body says so
r = exchange(f"POST /v1/inbox/ack HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n".encode())
res["empty_body"] = r.startswith(b"HTTP/1.1 400") and b"empty body" in r
for k, v in res.items():
    print(k, int(v))
PY
cat "$T/p5.out"
for k in chunked_ok smuggle_one_answer smuggle_unframed chunked_413 te_cl_400 json_404 json_405_allow json_413 continue_100 empty_body; do
    check "edge: $k" grep -q "^$k 1$" "$T/p5.out"
done
stop
finish http-limits
