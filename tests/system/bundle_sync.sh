#!/bin/bash
# Sneakernet end to end with the real CLI, real stores and a real folder:
#   A -> stick -> B -> stick -> C, receipts back to A by stick, A purges;
#   one-way export/import over a pipe; --to and --since; --max-size;
#   a small full stick and a read-only stick (tmpfs mounts, as root);
#   a missing folder; a damaged bundle on the stick.
# usage: bundle_sync.sh PATH/TO/agent-mesh
set -u
AM=$1
T=$(mktemp -d /tmp/am-bundle-XXXXXX)
MOUNTS=()
cleanup() { for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fails=0 passes=0
ok()  { passes=$((passes+1)); echo "ok: $*"; }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
jq_py() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
inbox_texts() { "$AM" inbox --store "$T/$1" --json --limit 100000 | jq_py "'\n'.join(sorted(e.get('text','') for e in d))"; }
count() { "$AM" inbox --store "$T/$1" --json --limit 100000 | jq_py "len(d)"; }

A=$("$AM" init --store "$T/a" 2>/dev/null)
B=$("$AM" init --store "$T/b" --group crane-ops 2>/dev/null)
C=$("$AM" init --store "$T/c" --position 52.52,13.405 2>/dev/null)
S=$T/stick; mkdir -p "$S"

# A writes: to B, to C, to the group, to everyone near C
AB=$("$AM" send --store "$T/a" --to "$B" --text "a->b")
AC=$("$AM" send --store "$T/a" --to "$C" --text "a->c")
"$AM" send --store "$T/a" --group crane-ops --text "a->ops" >/dev/null
"$AM" send --store "$T/a" --broadcast --geo circle:52.52,13.405,500 --text "a->near" >/dev/null
"$AM" bundle sync --store "$T/a" "$S" >/dev/null; check "A sync exits 0" test $? -eq 0
"$AM" bundle sync --store "$T/b" "$S" >/dev/null; check "B sync exits 0" test $? -eq 0
check "B got its own and the group's" test "$(inbox_texts b)" = "$(printf 'a->b\na->ops')"
"$AM" send --store "$T/b" --to "$C" --text "b->c" >/dev/null
"$AM" send --store "$T/b" --to "$A" --text "b->a" >/dev/null
"$AM" bundle sync --store "$T/b" "$S" >/dev/null
"$AM" bundle sync --store "$T/c" "$S" >/dev/null; check "C sync exits 0" test $? -eq 0
check "C got a->c, a->near, b->c (not the group's)" test "$(inbox_texts c)" = "$(printf 'a->c\na->near\nb->c')"
# everything again, several times: nothing arrives twice
for n in a b c a b c; do "$AM" bundle sync --store "$T/$n" "$S" >/dev/null; done
check "A got b->a once" test "$(inbox_texts a)" = "b->a"
check "B still has exactly 2" test "$(count b)" = 2
check "C still has exactly 3" test "$(count c)" = 3
# receipts came back to A by stick: A's node-addressed originals are purged
STATS=$("$AM" store stats --store "$T/a" --json)
tombs=$(echo "$STATS" | jq_py "d['tombstones']")
check "A purged a->b and a->c (tombstones >= 2, got $tombs)" test "$tombs" -ge 2
check "A no longer holds a->b" bash -c "! '$AM' store get --store '$T/a' --id $AB --output '$T/x' 2>/dev/null"
check "A no longer holds a->c" bash -c "! '$AM' store get --store '$T/a' --id $AC --output '$T/x' 2>/dev/null"
# ack at B, sync: the delivered one does not come back
"$AM" inbox --store "$T/b" --ack >/dev/null
"$AM" bundle sync --store "$T/b" "$S" >/dev/null
check "B inbox empty after ack and resync" test "$(count b)" = 0
check "inspect: the stick verifies" "$AM" bundle inspect "$S" >/dev/null
check "inspect --json says ok" test "$("$AM" bundle inspect --json "$S" | jq_py "d['ok']")" = True
ncust=$("$AM" bundle inspect --json "$S" | jq_py "len(d['custody'])")
check "a custody record per sync ($ncust of 11)" test "$ncust" -eq 11

# a bundle that only carried delivered envelopes is removed by the sender
X=$("$AM" init --store "$T/x" 2>/dev/null); Y=$("$AM" init --store "$T/y" 2>/dev/null)
mkdir -p "$T/prune"
"$AM" send --store "$T/x" --to "$Y" --text "x->y" >/dev/null
"$AM" bundle sync --store "$T/x" "$T/prune" >/dev/null
first=$(ls "$T/prune/AGENTMESH/bundles")
"$AM" bundle sync --store "$T/y" "$T/prune" >/dev/null    # delivers, leaves a receipt
out=$("$AM" bundle sync --store "$T/x" "$T/prune")         # the receipt comes back
check "the delivered-only bundle is removed" test ! -e "$T/prune/AGENTMESH/bundles/$first"
check "and the sync says so" grep -q "removed 1 bundles" <<<"$out"
check "the receipt's bundle stays" test "$(ls "$T/prune/AGENTMESH/bundles" | wc -l)" -ge 1

# one-way: export | import over a pipe, with --to
D=$("$AM" init --store "$T/d" 2>/dev/null)
"$AM" send --store "$T/a" --to "$D" --text "a->d over the diode" >/dev/null
"$AM" send --store "$T/a" --to "$B" --text "a->b not for d" >/dev/null
"$AM" bundle export --store "$T/a" --output - --to "$D" 2>/dev/null | "$AM" bundle import --store "$T/d" - >/dev/null
check "pipe: export | import works" test $? -eq 0
check "d got its message" bash -c "'$AM' inbox --store '$T/d' --json | grep -q 'a->d over the diode'"
check "--to left out another node's message" bash -c "! '$AM' inbox --store '$T/d' --json | grep -q 'not for d'"
"$AM" bundle export --store "$T/a" --output "$T/since.amb" --since 1h >/dev/null
check "--since 1h exports" test -s "$T/since.amb"
"$AM" bundle export --store "$T/a" --output "$T/nothing.amb" --since 2099-01-01T00:00:00Z >/dev/null
check "--since in the future exports nothing" test ! -e "$T/nothing.amb"

# --max-size: what does not fit is reported, and comes next time
E=$("$AM" init --store "$T/e" 2>/dev/null)
for i in $(seq 1 40); do head -c 3000 /dev/urandom | "$AM" send --store "$T/e" --broadcast - >/dev/null; done
mkdir -p "$T/small"
out=$("$AM" bundle sync --store "$T/e" --max-size 40K "$T/small" 2>&1); rc=$?
check "--max-size: exit 1" test $rc -eq 1
check "--max-size: says what did not fit" grep -q "did not fit" <<<"$out"
"$AM" bundle sync --store "$T/e" "$T/small" >/dev/null
F=$("$AM" init --store "$T/f" 2>/dev/null)
"$AM" bundle sync --store "$T/f" --import-only "$T/small" >/dev/null
check "all 40 arrive over two syncs" test "$(count f)" = 40

# a store that fills up while importing: a clear error, and what fit stays
AM_STORE_MAP_SIZE=96K "$AM" init --store "$T/tinystore" >/dev/null 2>&1
out=$(AM_STORE_MAP_SIZE=96K "$AM" bundle sync --store "$T/tinystore" --import-only "$T/small" 2>&1); rc=$?
check "full store: exit 1" test $rc -eq 1
check "full store: says so" grep -qi "store full\|full while" <<<"$out"
held=$("$AM" store stats --store "$T/tinystore" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['envelopes'])")
check "full store: what fit is there and the store opens ($held)" test "$held" -gt 0 -a "$held" -lt 40

# missing folder
out=$("$AM" bundle sync --store "$T/a" "$T/no-such-stick" 2>&1); rc=$?
check "missing folder: exit 1 and a clear message" bash -c "[ $rc -eq 1 ] && grep -q 'no such folder' <<<'$out'"

# a damaged bundle on the stick: what verifies is imported, the damage is named
mkdir -p "$T/dmg"
G=$("$AM" init --store "$T/g" 2>/dev/null)
for i in $(seq 1 30); do "$AM" send --store "$T/g" --broadcast --text "intact $i $(head -c 600 /dev/urandom | base64 -w0)" >/dev/null; done
"$AM" bundle sync --store "$T/g" "$T/dmg" >/dev/null
f=$(ls "$T/dmg/AGENTMESH/bundles/"*.amb)
size=$(stat -c %s "$f")
printf '\xff\xff\xff\xff' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
H=$("$AM" init --store "$T/h" 2>/dev/null)
out=$("$AM" bundle sync --store "$T/h" --import-only "$T/dmg" 2>&1); rc=$?
got=$(count h)
check "damaged: exit 1" test $rc -eq 1
check "damaged: names file and offset" grep -qE "\.amb: offset [0-9]+" <<<"$out"
check "damaged: most envelopes still imported ($got of 30)" test "$got" -ge 15 -a "$got" -lt 30
check "inspect flags the damage" bash -c "! '$AM' bundle inspect '$T/dmg' >/dev/null 2>&1"

# a stick whose custody folder is a file: named as that, not as read-only
# (cd3fcc8 said "stick is read-only" for any folder it could not make)
mkdir -p "$T/odd/AGENTMESH" && : >"$T/odd/AGENTMESH/custody"
out=$("$AM" bundle sync --store "$T/g" "$T/odd" 2>&1); rc=$?
check "custody is a file: exit 1" test $rc -eq 1
check "custody is a file: says so ($(head -c 160 <<<"$out"))" grep -q "custody exists and is not a folder" <<<"$out"
check "custody is a file: not called read-only" bash -c "! grep -q 'read-only' <<<\"\$1\"" _ "$out"

# a full stick and a read-only stick (tmpfs, root only)
for i in $(seq 1 60); do head -c 3000 /dev/urandom | "$AM" send --store "$T/e" --broadcast - >/dev/null; done
if [ "$(id -u)" -eq 0 ] && mkdir -p "$T/tiny" && mount -t tmpfs -o size=256k tmpfs "$T/tiny" 2>/dev/null; then
    MOUNTS+=("$T/tiny")
    out=$("$AM" bundle sync --store "$T/e" "$T/tiny" 2>&1); rc=$?
    check "full stick: exit 1" test $rc -eq 1
    check "full stick: says what did not fit" grep -qE "did not fit|full" <<<"$out"
    check "full stick: what was written verifies" "$AM" bundle inspect "$T/tiny" >/dev/null
    mount -o remount,ro "$T/tiny"
    I=$("$AM" init --store "$T/i" 2>/dev/null)
    out=$("$AM" bundle sync --store "$T/i" "$T/tiny" 2>&1); rc=$?
    check "read-only stick: exit 1" test $rc -eq 1
    check "read-only stick: says so" grep -q "read-only" <<<"$out"
    check "read-only stick: still imported" test "$(count i)" -gt 0
else
    echo "SKIP: full and read-only stick tests need root and tmpfs mounts"
fi

echo "bundle_sync: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
