#!/bin/bash
# The link port under a pre-handshake flood (issue 11, point 3), real
# daemons on 127.0.0.1: 300 TCP connections that never finish a handshake
# (each trickles a byte every 2 s, for at most 25 s) while a linked node
# restarts and a new node links for the first time. Both must link; the
# flood's connections are closed by the gateway (handshake deadline, or
# evicted for newer ones), counted by reason, and logged in a few lines,
# not one per connection; the gateway's thread count stays bounded.
# On ee90c10 the 300 sockets filled the hub's 256 slots and the restarted
# node could not link until the flood ended (its log blamed the network key).
# usage: link_flood.sh AGENT_MESH NODE GATEWAY
set -u
AM=$1 NODE=$2 GW=$3
. "$(dirname "$0")/lib.sh"
scratch am-flood
metric() { curl -s -m 5 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
"$AM" init --store "$T/n1" >/dev/null 2>&1
"$AM" init --store "$T/n2" >/dev/null 2>&1
ADMIN=$("$AM" token issue --data "$T/g" --role admin --valid 1h)
GP=$(port) LP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" \
    --no-discovery --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!); GPID=$!
start_node() { # DIR NAME
    "$NODE" --data "$T/$1" --network-key "@$T/net.key" --port "$(port)" --no-discovery --name "$2" \
        --gateway "tcp://127.0.0.1:$LP" --link-timeout 3s >>"$T/$1.log" 2>&1 &
    PIDS+=($!)
}
start_node n1 crane-1
N1PID=$!
linked() { [ "$(grep -sc "^link to .*\"site-gw\".*live" "$T/$1.log")" -ge "$2" ]; }
check "crane-1 linked before the flood" until_ok 100 linked n1 1

# the flood: 300 connections, a byte every 2 s each, 25 s at most
/usr/bin/python3 - "$LP" >"$T/flood.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks, closed = [], 0
for _ in range(300):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    except OSError:
        closed += 1
end = time.time() + 25
while time.time() < end and socks:
    alive = []
    for s in socks:
        try:
            s.send(b"\x00")
            try:
                if s.recv(1) == b"":
                    raise OSError("closed")
            except BlockingIOError:
                pass
            alive.append(s)
        except OSError:
            closed += 1
            s.close()
    socks = alive
    time.sleep(2)
print("opened 300, closed by the gateway", closed, "still open", len(socks))
PY
FLOOD=$!
sleep 3 # the flood is in place
threads_during=$(ls /proc/"$GPID"/task | wc -l)
t0=$(date +%s%N)
kill -TERM "$N1PID"; wait "$N1PID" 2>/dev/null
start_node n1 crane-1
check "crane-1 re-links during the flood" until_ok 200 linked n1 2
t1=$(date +%s%N)
echo "crane-1 re-linked $(( (t1 - t0) / 1000000 )) ms after its restart, during the flood"
start_node n2 office-1
check "office-1 links for the first time during the flood" until_ok 200 linked n2 1
wait "$FLOOD"
cat "$T/flood.out"
check "the gateway closed the flood's connections (deadline or eviction)" \
    grep -q "closed by the gateway 300 still open 0\|closed by the gateway 29[0-9]" "$T/flood.out"
check "the gateway lives" kill -0 "$GPID"
echo "gateway threads during the flood: $threads_during"
check "gateway threads stayed bounded during the flood ($threads_during; 64 may wait for a handshake)" test "$threads_during" -lt 220
hs=$(metric 'am_link_refused_total{reason="handshake_timeout"}') ev=$(metric 'am_link_refused_total{reason="evicted"}')
echo "refused: handshake_timeout ${hs:-?}, evicted ${ev:-?}"
check "refusals counted by reason" test "$(( ${hs:-0} + ${ev:-0} ))" -ge 250
lines=$(grep -c "handshake" "$T/g.log")
check "the log says what happened in a few lines, not one per connection ($lines)" test "$lines" -ge 1 -a "$lines" -le 20
check "the log names the handshake deadline or the eviction" \
    grep -q "handshake did not finish within\|closed before finishing a handshake" "$T/g.log"
check "crane-1's log does not blame the network key" bash -c "! grep -q 'network key' '$T/n1.log'"
check "both nodes are linked after the flood" test "$(curl -s -m 5 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$GP/v1/mesh_scan" | /usr/bin/python3 -c "import json,sys; print(sum(p['link'] == 'up' for p in json.load(sys.stdin)['peers']))")" = 2
echo "link-flood: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
