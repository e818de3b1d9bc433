#!/bin/bash
# Audit records to a SIEM (issue 12, point 10), checked against a real
# rsyslog started here on loopback ports: UDP (RFC 5426), TCP with octet
# counting (RFC 6587) and TLS (RFC 5425, a CA made here with openssl).
# Severity follows the outcome (refusals at warning, the rest notice),
# facility authpriv; a record over the transport's limit goes as a stub
# whose hash is the next audit line's "prev"; a collector that is down
# and comes back gets what was logged meanwhile; a TLS collector whose
# certificate is not from AUDIT_SYSLOG_CA gets nothing and the daemon
# lives; a bad AUDIT_SYSLOG stops the start with a message; `token
# issue` is audited. On da7c989 AUDIT_SYSLOG took host:port over UDP
# only, every record at notice, a bad value was ignored silently, and
# token issue left no record.
# usage: audit_siem.sh AGENT_MESH GATEWAY
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") GW=$(realpath "$2")
command -v rsyslogd >/dev/null || { echo "SKIP: rsyslogd is not installed (tools/dev deps installs rsyslog)"; exit 77; }
scratch am-siem
UP=$(port) TP=$(port) SP=$(port) GP=$(port) BP=$(port)
GOT=$T/got.log

# ---- a CA, the collector's certificate, and a CA that did not sign it ----
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test CA" -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$T/san.ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
    -extfile "$T/san.ext" -out "$T/srv.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" -keyout "$T/other.key" -out "$T/other.pem" 2>/dev/null
check "openssl made the certificates" test -s "$T/srv.pem" -a -s "$T/other.pem"

# ---- rsyslog: three inputs, one file, severity facility msgid msg ----
mkdir -p "$T/rs"
cat >"$T/rsyslog.conf" <<EOF
global(workDirectory="$T/rs" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="$T/ca.pem" defaultNetstreamDriverCertFile="$T/srv.pem"
       defaultNetstreamDriverKeyFile="$T/srv.key")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%syslogseverity% %syslogfacility% %msgid% %msg%\n")
ruleset(name="out") { action(type="omfile" file="$GOT" template="raw") }
input(type="imudp" address="127.0.0.1" port="$UP" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="$TP" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="$SP" ruleset="out"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
EOF
rsyslog_up() {
    rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rs.pid" >>"$T/rsyslogd.log" 2>&1 &
    RPID=$!; PIDS+=($RPID)
    until_ok 100 bash -c "exec 3<>/dev/tcp/127.0.0.1/$TP" 2>/dev/null
}
rsyslogd -N1 -f "$T/rsyslog.conf" >"$T/rsyslog-check.log" 2>&1 || { cat "$T/rsyslog-check.log"; bad "rsyslog takes the test's configuration"; }
rsyslog_up
check "rsyslog listens (tcp)" bash -c "exec 3<>/dev/tcp/127.0.0.1/$TP"

"$AM" init --store "$T/g" >/dev/null 2>&1
"$AM" keygen --network-key --output "$T/nk" >/dev/null 2>&1
gw() { # gw LOG [VAR=VALUE...]: a gateway with that environment
    local log=$1; shift
    env "$@" "$GW" --data "$T/g" --network-key @"$T/nk" --port "$GP" --listen off --no-discovery >"$T/$log" 2>&1 &
    GPID=$!; PIDS+=($GPID)
    wait_http "http://127.0.0.1:$GP/health"
}
stop_gw() { kill -TERM "$GPID"; wait "$GPID" 2>/dev/null; }
refuse() { curl -s -o /dev/null -m 5 "http://127.0.0.1:$GP/v1/inbox"; } # no token: a 401, audited
got() { grep -c "$1" "$GOT" 2>/dev/null; }
has() { grep -q "$1" "$GOT" 2>/dev/null; }
said() { [ "$rc" -eq "$1" ] && grep -q "$2" <<<"$out"; } # rc and out as the daemon left them

# ---- UDP ----
gw udp.log AUDIT_SYSLOG=udp://127.0.0.1:$UP
refuse
check "udp: the start arrives at notice, facility authpriv (5 10)" until_ok 100 has '^5 10 daemon_start {"seq"'
check "udp: a refusal arrives at warning (4 10)" until_ok 100 has '^4 10 token_refused {'
stop_gw

# ---- TCP, octet counting; a record over the limit goes as a stub ----
: >"$GOT"
gw tcp.log AUDIT_SYSLOG=tcp://127.0.0.1:$TP AUDIT_SYSLOG_MAX=480
check "tcp: the start arrives (as a stub: over 480 bytes)" until_ok 100 has '^5 10 daemon_start {"event":"daemon_start","truncated":true'
H=$(sed -n 's/.*daemon_start {"event":"daemon_start","truncated":true,"bytes":[0-9]*,"hash":"\([0-9a-f]*\)"}.*/\1/p' "$GOT" | tail -1)
refuse
until_ok 100 grep -q "\"prev\":\"$H\"" "$T/g/audit/audit.log"
check "... its hash is the next audit line's prev (the full line is in the log)" grep -q "\"prev\":\"$H\"" "$T/g/audit/audit.log"
stop_gw
: >"$GOT"
gw tcp2.log AUDIT_SYSLOG=tcp://127.0.0.1:$TP
check "tcp: whole records under the limit" until_ok 100 has '^5 10 daemon_start {"seq".*"sig":"[0-9a-f]*"}$'

# the collector goes away; what is logged meanwhile arrives when it is back
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null
for i in 1 2 3; do curl -s -o /dev/null -m 5 -H "Authorization: Bearer nope-$i" "http://127.0.0.1:$GP/v1/inbox"; done
check "the gateway answers while the collector is down" test "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$GP/health")" = 200
sleep 1
: >"$GOT"
rsyslog_up
check "... and the refusals logged meanwhile arrive when it is back" until_ok 400 has '^4 10 token_refused'
stop_gw

# ---- TLS ----
: >"$GOT"
gw tls.log AUDIT_SYSLOG=tls://127.0.0.1:$SP AUDIT_SYSLOG_CA=$T/ca.pem AUDIT_SYSLOG_SERVER_NAME=localhost
refuse
check "tls: the start arrives" until_ok 150 has '^5 10 daemon_start {"seq"'
check "tls: a refusal at warning" until_ok 100 has '^4 10 token_refused'
stop_gw
: >"$GOT"
gw tlsbad.log AUDIT_SYSLOG=tls://127.0.0.1:$SP AUDIT_SYSLOG_CA=$T/other.pem AUDIT_SYSLOG_SERVER_NAME=localhost
refuse
sleep 3
check "tls with a CA that did not sign the collector: nothing arrives" bash -c "! grep -q daemon_start '$GOT'"
check "... and the gateway lives" test "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$GP/health")" = 200
stop_gw

# ---- a bad AUDIT_SYSLOG stops the start, naming it ----
for v in "siem.example" "ftp://127.0.0.1:514" "tcp://127.0.0.1:0" "tls://127.0.0.1:$SP"; do
    out=$(AUDIT_SYSLOG=$v timeout 20 "$GW" --data "$T/g" --network-key @"$T/nk" --port "$BP" --listen off --no-discovery 2>&1); rc=$?
    check "AUDIT_SYSLOG=$v: exit 2, named" said 2 "AUDIT_SYSLOG"
done
out=$(AUDIT_SYSLOG=udp:// "$GW" --data "$T/g" --network-key @"$T/nk" --check-config 2>&1); rc=$?
check "--check-config refuses it too" said 2 'AUDIT_SYSLOG=udp://' 

# ---- token issue is audited (and forwarded) ----
: >"$GOT"
AUDIT_SYSLOG=tcp://127.0.0.1:$TP "$AM" token issue --data "$T/g" --role operator --valid 1h >"$T/tok" 2>"$T/tok.err"
check "token issue: a token_issued record in the gateway's audit log, without the token" bash -c \
    "grep -q '\"event\":\"token_issued\".*\"rights\":\[\"send:\*\"' '$T/g/audit/audit.log' && ! grep -qF \"\$(cat '$T/tok')\" '$T/g/audit/audit.log'"
check "... and at the collector" until_ok 100 has '^5 10 token_issued'
check "the audit log verifies across all of it" "$AM" audit verify "$T/g/audit/audit.log"
finish audit-siem
