# lib.sh — what the system test scripts share: the pass/fail tally, free
# ports, waiting, HTTP requests with a bearer token, JSON fields, and a
# scratch folder whose daemons are stopped at exit.
# usage (in a script): . "$(dirname "$0")/lib.sh"; scratch am-NAME
fails=0 passes=0
PIDS=()
ok()  { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# finish NAME: the closing line, and the exit status
finish() { echo "$1: $passes passed, $fails failed"; [ "$fails" -eq 0 ]; }
port() { /usr/bin/python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/free_port.py" $$; }
# until_ok N CMD...: CMD succeeds within N tenths of a second
until_ok() { local n=$1; shift; for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }
# scratch PREFIX: T, a new folder under /tmp; at exit the daemons in PIDS
# get SIGTERM, AT_EXIT (shell code) runs, the tail of each daemon log
# (T/*.log) is shown if a check failed (a flake in CI leaves no folder to
# read), and the folder goes (KEEP=1 keeps it)
scratch() {
    T=$(mktemp -d "/tmp/$1-XXXXXX")
    trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; eval "${AT_EXIT:-}"; [ "$fails" -eq 0 ] || show_logs; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
}
# show_logs: the last lines of every daemon log in T, on stderr
show_logs() {
    local f
    for f in "$T"/*.log; do
        [ -f "$f" ] || continue
        echo "---- last lines of ${f#"$T"/} ----" >&2
        tail -n 25 "$f" >&2
    done
}
# wait_http URL: something answers HTTP there within 30 s (a daemon's port
# is open before the next one dials it)
wait_http() { until_ok 300 curl -s -o /dev/null -m 2 "$1"; }
# req METHOD URL [BODY] [TOKEN] -> "STATUS BODY" (BODY "@FILE" sends a
# file; TOKEN "-" sends none, no TOKEN sends $API_TOKEN when set;
# REQ_CONTENT_TYPE, when set, is sent as Content-Type; REQ_TIMEOUT
# seconds, 70 unless set)
req() {
    /usr/bin/python3 - "$@" <<'PY'
import os, sys, urllib.request, urllib.error
m, url = sys.argv[1], sys.argv[2]
body = sys.argv[3] if len(sys.argv) > 3 else ""
tok = sys.argv[4] if len(sys.argv) > 4 else os.environ.get("API_TOKEN", "")
data = open(body[1:], "rb").read() if body.startswith("@") else (body.encode() if body else None)
r = urllib.request.Request(url, data=data, method=m)
if tok and tok != "-":
    r.add_header("Authorization", "Bearer " + tok)
if os.environ.get("REQ_CONTENT_TYPE"):
    r.add_header("Content-Type", os.environ["REQ_CONTENT_TYPE"])
try:
    with urllib.request.urlopen(r, timeout=float(os.environ.get("REQ_TIMEOUT", "70"))) as f:
        print(f.status, f.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except Exception as e:
    print(0, repr(e))
PY
}
# field EXPR: a Python expression over d, the JSON after "STATUS " on stdin
# answers PATTERN METHOD URL [BODY] [TOKEN]: one request (as req) whose
# answer has PATTERN (grep). For until_ok, which then repeats the request:
# `until_ok N grep -q P <(req ...)` reads one answer only, as the process
# substitution runs once (mesh-live's restart check failed under TSan that
# way, its node slower to sync than the one request was to come)
answers() { local pat=$1; shift; req "$@" 2>/dev/null | grep -q "$pat"; }
field() { /usr/bin/python3 -c "import json,sys; s=sys.stdin.read(); d=json.loads(s.split(' ',1)[1]); print($1)" 2>/dev/null; }
