#!/bin/bash
# Power-cut simulation for sneakernet: kill -9 `bundle sync` at random
# moments, 20 times while it writes to the stick and 20 times while it
# imports from it. After every kill the stick must verify (`bundle
# inspect`: only whole, signed files under their final names) and the store
# must open; at the end one clean sync must bring everything across exactly
# once, so nothing acknowledged was lost.
# usage: bundle_crash.sh PATH/TO/agent-mesh PATH/TO/fill_store
set -u
AM=$1 FILL=$2
T=$(mktemp -d /tmp/am-bcrash-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0 kills=0
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
N=6000

"$AM" init --store "$T/a" >/dev/null 2>&1
B=$("$AM" init --store "$T/b" 2>/dev/null)
"$FILL" "$T/a" $N 1024 "$B" || bad "fill"
total=$("$AM" store stats --store "$T/a" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['outbox'])")
[ "$total" -eq $N ] || bad "A should carry $N, carries $total"

kill_at_random() { # STORE STICK MAX_MS: start a sync, SIGKILL it after 2..MAX_MS ms
    "$AM" bundle sync --store "$1" "$2" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(awk -v ms=$((2 + RANDOM % $3)) 'BEGIN { printf "%.3f", ms / 1000 }')"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills+1)); fi
    wait "$pid" 2>/dev/null
}
verify_state() { # STORE STICK
    if [ -d "$2/AGENTMESH/bundles" ] && ! "$AM" bundle inspect "$2" >/dev/null 2>"$T/inspect.err"; then
        bad "stick invalid after kill: $(head -n 2 "$T/inspect.err")"
    fi
    "$AM" store stats --store "$1" >/dev/null 2>&1 || bad "store $1 does not open after kill"
}

S=$T/stick; mkdir -p "$S"
# how long a whole write takes here, to aim the kills inside it
mkdir -p "$T/probe"
t0=$(date +%s%N); "$AM" bundle sync --store "$T/a" "$T/probe" >/dev/null; t1=$(date +%s%N)
WMS=$(( (t1 - t0) / 1000000 + 5 ))
rm -rf "$T/probe"
writes=0 attempts=0
while [ $writes -lt 15 ] && [ $attempts -lt 80 ]; do   # while writing to the stick
    attempts=$((attempts+1)); before=$kills
    kill_at_random "$T/a" "$S" "$WMS"
    [ $kills -gt $before ] && writes=$((writes+1))
    verify_state "$T/a" "$S"
    rm -rf "$S/AGENTMESH/bundles/"*.amb  # the next attempt writes from scratch again
done
"$AM" bundle sync --store "$T/a" "$S" >/dev/null || bad "clean sync of A failed"
# how long a whole import takes here
cp -a "$T/b" "$T/b-probe"
t0=$(date +%s%N); "$AM" bundle sync --store "$T/b-probe" --import-only "$S" >/dev/null 2>&1; t1=$(date +%s%N)
IMS=$(( (t1 - t0) / 1000000 + 5 ))
rm -rf "$T/b-probe"
imports=0 attempts=0
ids() { "$AM" inbox --store "$T/b" --json --limit 100000 | /usr/bin/python3 -c "
import json,sys; d=json.load(sys.stdin); ids=[e['id'] for e in d]
print('\n'.join(sorted(ids))); sys.exit(0 if len(ids) == len(set(ids)) else 3)"; }
: > "$T/before"
while [ $imports -lt 15 ] && [ $attempts -lt 60 ]; do  # while importing from it
    attempts=$((attempts+1)); before=$kills
    kill_at_random "$T/b" "$S" "$IMS"
    verify_state "$T/b" "$S"
    ids > "$T/after" || bad "B lists an envelope twice after a kill"
    # what was committed before this kill is still there
    [ -z "$(comm -23 "$T/before" "$T/after")" ] || bad "B lost committed envelopes in a kill"
    if [ $kills -gt $before ]; then
        imports=$((imports+1)); cp "$T/after" "$T/before"
    else
        # it finished before the kill: start over with an empty store,
        # so there is import work left to interrupt
        rm -rf "$T/b/store"; "$AM" init --store "$T/b" >/dev/null 2>&1; : > "$T/before"
    fi
done
"$AM" bundle sync --store "$T/b" "$S" >/dev/null 2>&1
got=$("$AM" inbox --store "$T/b" --json --limit 100000 | /usr/bin/python3 -c "
import json,sys; d=json.load(sys.stdin); ids=[e['id'] for e in d]; print(len(ids), len(set(ids)))")
[ "$got" = "$N $N" ] || bad "B has (count, distinct) = ($got), wanted ($N $N)"
stray=$(find "$S" -name '*.tmp.*' | wc -l)
echo "bundle_crash: $kills kills landed ($writes while writing, $imports while importing), $stray temporary files left by kills (ignored by readers), B holds $got"
[ "$kills" -ge 30 ] || bad "only $kills syncs were still running when killed (need >= 30)"
echo "bundle_crash: $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ "$fails" -eq 0 ]
