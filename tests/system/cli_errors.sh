#!/bin/bash
# Every bad input to the CLI gets exactly one line on stderr naming the
# problem and a non-zero exit, and the store's data file does not change.
# Also: openssl reads our keys, and we read openssl's.
# usage: cli_errors.sh PATH/TO/agent-mesh
set -u
AM=$1
T=$(mktemp -d /tmp/am-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0 passes=0
ok()  { passes=$((passes+1)); }
bad() { fails=$((fails+1)); echo "FAIL: $*" >&2; }

A=$("$AM" init --store "$T/a" 2>/dev/null) || { echo "init failed" >&2; exit 1; }
B=$("$AM" init --store "$T/b" --position 52.52,13.405 2>/dev/null)
"$AM" send --store "$T/a" --to "$B" --text "good one" >/dev/null
ID=$("$AM" send --store "$T/a" --to "$B" --text "reference envelope, long enough to be compressed. compressed. compressed." )
"$AM" store get --store "$T/a" --id "$ID" --output "$T/good.env"
sum() { sha256sum "$T/$1/store/data.mdb" | cut -d' ' -f1; }
SUM_A=$(sum a) SUM_B=$(sum b)

# expect NAME EXIT_MIN PATTERN -- command...
expect() {
    local name=$1 pattern=$2; shift 3
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    local lines; lines=$(wc -l < "$T/err")
    if [ "$rc" -eq 0 ]; then bad "$name: exit 0"; return; fi
    if [ "$lines" -ne 1 ]; then bad "$name: $lines lines on stderr:"; cat "$T/err" >&2; return; fi
    if ! grep -qiE "$pattern" "$T/err"; then bad "$name: '$(cat "$T/err")' does not match /$pattern/"; return; fi
    ok; printf '%-28s exit %d  %s\n' "$name" "$rc" "$(cat "$T/err")"
}

python3 - "$T" <<'PY'
import sys
t = sys.argv[1]
g = open(t + "/good.env", "rb").read()
open(t + "/trunc.env", "wb").write(g[:-7])
b = bytearray(g); b[len(g)//2] ^= 0x10; open(t + "/flip.env", "wb").write(bytes(b))
open(t + "/trail.env", "wb").write(g + b"\x00")
v = bytearray(g); v[1] = 7; open(t + "/ver.env", "wb").write(bytes(v))
open(t + "/big.env", "wb").write(b"\x94" + bytes(1100 * 1024))
open(t + "/empty.env", "wb").write(b"")
open(t + "/notakey.pem", "w").write("this is not a key\n")
open(t + "/payload.big", "wb").write(bytes(1024 * 1024 + 1))
PY

for f in trunc flip trail ver big empty; do
    case $f in trunc|empty) p=truncat;; flip) p='signature|malformed|field|truncat';; trail) p=trailing;;
                ver) p=version;; big) p='limit|too';; esac
    expect "import $f" "$p" -- "$AM" envelope import --store "$T/b" "$T/$f.env"
    expect "inspect $f" "$p" -- "$AM" envelope inspect "$T/$f.env"
done
expect "geo latitude 91"   "latitude 91"        -- "$AM" send --store "$T/a" --broadcast --geo circle:91,0,10 --text x
expect "geo 0-point poly"  "at least 3 points"  -- "$AM" send --store "$T/a" --broadcast --geo polygon: --text x
expect "geo bad kind"      "unknown target"     -- "$AM" send --store "$T/a" --broadcast --geo square:1,2 --text x
expect "geo radius 0"      "radius"             -- "$AM" send --store "$T/a" --broadcast --geo circle:1,2,0 --text x
expect "bad node id"       "node id"            -- "$AM" send --store "$T/a" --to abc --text x
expect "two destinations"  "exactly one"        -- "$AM" send --store "$T/a" --to "$B" --broadcast --text x
expect "bad priority"      "priority"           -- "$AM" send --store "$T/a" --broadcast --priority 7 --text x
expect "bad ttl"           "duration"           -- "$AM" send --store "$T/a" --broadcast --ttl 2y --text x
expect "payload too big"   "limit"              -- "$AM" send --store "$T/a" --broadcast --file "$T/payload.big"
expect "seal broadcast"    "seal"               -- "$AM" send --store "$T/a" --broadcast --seal --text x
expect "unknown option"    "unknown option"     -- "$AM" send --store "$T/a" --frobnicate
expect "missing value"     "needs a value"      -- "$AM" send --store
expect "non-PEM identity"  "not a PEM"          -- "$AM" init --store "$T/c" --identity "$T/notakey.pem"
expect "missing identity"  "No such file"       -- "$AM" init --store "$T/c" --identity "$T/nope.pem"
expect "inspect bad key"   "not a PEM"          -- "$AM" envelope inspect --identity "$T/notakey.pem" "$T/good.env"
expect "missing store"     "no store at"        -- "$AM" inbox --store "$T/does-not-exist"
expect "missing store 2"   "no store at"        -- "$AM" send --store "$T/does-not-exist" --broadcast --text x
expect "re-init"           "already holds"      -- "$AM" init --store "$T/a"
expect "keygen overwrite"  "exists"             -- "$AM" keygen --output "$T/a/identity.pem"
expect "bad position"      "latitude"           -- "$AM" store set --store "$T/b" --position 95,1
expect "unknown command"   "unknown command"    -- "$AM" teleport
expect "bad zone tag"      "zone tag"           -- "$AM" send --store "$T/a" --broadcast --zone "a b" --text x
expect "store get bad id"  "envelope id"        -- "$AM" store get --store "$T/a" --id 1234 --output "$T/x"

expect "bundle: bad --max-size" "max-size"      -- "$AM" bundle sync --store "$T/a" --max-size 12Q "$T"
expect "bundle: not a bundle"   "not a bundle"  -- "$AM" bundle import --store "$T/b" "$T/good.env"
expect "bundle: missing file"   "No such file"  -- "$AM" bundle import --store "$T/b" "$T/nope.amb"
expect "bundle: inspect nothing" "no such file" -- "$AM" bundle inspect "$T/nothing-here"
expect "bundle: bad --since"    "since"         -- "$AM" bundle export --store "$T/a" --output "$T/x.amb" --since yesterday
expect "bundle: bad --to"       "node id"       -- "$AM" bundle export --store "$T/a" --output "$T/x.amb" --to 42

[ "$(sum a)" = "$SUM_A" ] && ok || bad "store a changed after bad input"
[ "$(sum b)" = "$SUM_B" ] && ok || bad "store b changed after bad input"

# keys: openssl reads ours, we read openssl's
if openssl pkey -in "$T/a/identity.pem" -noout -text >/dev/null 2>&1; then ok; else bad "openssl cannot read keygen output"; fi
[ "$(stat -c %a "$T/a/identity.pem")" = 600 ] && ok || bad "key mode is not 0600"
openssl genpkey -algorithm ed25519 -out "$T/ossl.pem" 2>/dev/null
if "$AM" init --store "$T/o" --identity "$T/ossl.pem" >/dev/null 2>&1; then ok; else bad "cannot use an openssl-made key"; fi
PUB_OSSL=$(openssl pkey -in "$T/ossl.pem" -pubout -outform DER 2>/dev/null | tail -c 32 | od -An -tx1 | tr -d ' \n')
[ "$PUB_OSSL" = "$("$AM" init --store "$T/o2" --identity "$T/ossl.pem" 2>/dev/null)" ] && ok || bad "node id != openssl public key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/ec.pem" 2>/dev/null
expect "EC key refused" "not Ed25519|expected an Ed25519" -- "$AM" init --store "$T/e" --identity "$T/ec.pem"

# a good import works and is idempotent
"$AM" envelope import --store "$T/b" "$T/good.env" >/dev/null && ok || bad "good import failed"
out=$("$AM" envelope import --store "$T/b" "$T/good.env") && [[ $out == *"1 already known"* ]] && ok || bad "re-import: $out"

echo "cli_errors: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
