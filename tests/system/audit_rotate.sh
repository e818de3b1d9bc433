#!/bin/bash
# The audit log under a real logrotate (issue 12, point 7): `create` with
# a SIGHUP in postrotate (what field-kit/logrotate/agent-mesh does), twice
# (the older file gzipped); the daemon and the CLI both write on; the
# new file goes on with the hash chain, and `audit verify` takes the
# files oldest first and checks each joint. A file alone is refused
# unless --continued; files out of order and a line cut at the joint are
# caught. A rotation while the daemon is stopped, and a copytruncate one,
# keep the chain too. On da7c989 SIGHUP ended the daemon, the renamed
# file went on being written, and a truncated log restarted the chain at
# seq 1 with nothing to say so; `audit verify` took one file.
# usage: audit_rotate.sh AGENT_MESH GATEWAY
set -u
. "$(dirname "$0")/lib.sh"
AM=$(realpath "$1") GW=$(realpath "$2")
command -v logrotate >/dev/null || { echo "SKIP: logrotate is not installed (tools/dev deps installs it)"; exit 77; }
scratch am-rot
GP=$(port)
"$AM" init --store "$T/g" >/dev/null 2>&1
"$AM" keygen --network-key --output "$T/nk" >/dev/null 2>&1
L=$T/g/audit/audit.log
start() {
    "$GW" --data "$T/g" --network-key @"$T/nk" --port "$GP" --listen off --no-discovery >>"$T/g.log" 2>&1 &
    GPID=$!; PIDS+=($GPID)
    wait_http "http://127.0.0.1:$GP/health"
}
issue() { for _ in $(seq 1 "$1"); do "$AM" token issue --data "$T/g" --right scan --valid 1h >/dev/null; done; }
rotate() { # CONF-BODY
    printf '%s {\n    rotate 5\n%s\n}\n' "$L" "$1" >"$T/lr.conf"
    logrotate -f -s "$T/lr.state" "$T/lr.conf" >>"$T/logrotate.log" 2>&1
}
HUP="    create 0600
    compress
    delaycompress
    postrotate
        kill -HUP \$(cat '$T/gw.pid') 2>/dev/null || true
    endscript"
verify() { "$AM" audit verify "$@" 2>&1; }

start
echo "$GPID" >"$T/gw.pid"
issue 3
rotate "$HUP"
check "logrotate moved the log (audit.log.1) and made a new one" test -s "$L.1" -a -f "$L"
check "the daemon took SIGHUP: it lives" test "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$GP/health")" = 200
check "... and writes into the new file (audit_reopened)" until_ok 100 grep -q '"event":"audit_reopened"' "$L"
check "... not into the old one" bash -c "! grep -q audit_reopened '$L.1'"
issue 2
rotate "$HUP"
check "a second rotation: the first file gzipped (delaycompress)" test -s "$L.2.gz" -a -s "$L.1"
until_ok 100 grep -q '"event":"audit_reopened"' "$L"
issue 1
gunzip -c "$L.2.gz" >"$T/a2"
cp "$L.1" "$T/a1"; cp "$L" "$T/a0"
out=$(verify "$T/a2" "$T/a1" "$T/a0")
check "audit verify, oldest first: every file and joint ($out)" grep -q "^ok: .* 3 files, seq 1 to .*, every joint continues" <<<"$out"
n=$(cat "$T/a2" "$T/a1" "$T/a0" | wc -l)
check "... all $n lines counted" grep -q "^ok: $n lines" <<<"$out"
out=$(verify "$T/a0")
check "the newest file alone: refused, saying it continues an earlier one" grep -q "continues an earlier file" <<<"$out"
out=$(verify --continued "$T/a0")
check "... with --continued: checked from its first line ($out)" grep -q "^ok: .*continues an earlier file" <<<"$out"
out=$(verify --continued "$T/a1" "$T/a2" "$T/a0")
check "files out of order: caught at the joint ($out)" grep -q "a2: line 1: does not continue the file before it" <<<"$out"
head -n -1 "$T/a1" >"$T/a1cut"
out=$(verify "$T/a2" "$T/a1cut" "$T/a0")
check "the last line before a joint removed: caught ($out)" grep -q "a0: line 1: does not continue" <<<"$out"

# rotated while the daemon is stopped: the new file goes on from audit.log.1
kill -TERM "$GPID"; wait "$GPID" 2>/dev/null
rotate "$HUP"
start
echo "$GPID" >"$T/gw.pid"
until_ok 100 grep -q '"event":"daemon_start"' "$L"
out=$(verify --continued "$L.1" "$L")
check "rotated while stopped: the restarted daemon goes on from audit.log.1 ($out)" grep -q "^ok: .*every joint continues" <<<"$out"

# copytruncate: the daemon's file is emptied under it, no signal
rotate "    copytruncate
    nocompress"
issue 1
curl -s -o /dev/null -m 5 "http://127.0.0.1:$GP/v1/inbox" # a refusal: the daemon's own record
until_ok 100 grep -q '"event":"token_refused"' "$L"
out=$(verify --continued "$L.1" "$L")
check "copytruncate: the daemon and the CLI go on with the chain ($out)" grep -q "^ok: .*every joint continues" <<<"$out"
finish audit-rotate
