#!/bin/bash
# Capability tokens, revocation and the audit log with real daemons:
#  - tokens issued with the gateway's key work on the gateway and on a node
#    that trusts that key; a forged signature, an altered field, an expired
#    token, a token used for a group or zone it does not cover, and an
#    attenuated token used beyond its narrower rights are each refused
#    (401 / 403 with the reason) and audited; the CLI refuses to widen one
#  - an attenuated token within its rights works on a node that has never
#    talked to the gateway (offline verification)
#  - a revocation made on the gateway reaches a node with no network on a
#    USB stick (a folder) and takes effect there
#  - `audit verify` passes the daemons' logs and a 100 000-line log (time
#    reported), and catches one changed byte, a deleted line, two swapped
#    lines and a truncated last line, naming the line; the seed's jq
#    examples work on the log
# usage: trust_tokens.sh AGENT_MESH NODE GATEWAY AUDIT_FILL
set -u
. "$(dirname "$0")/lib.sh"
AM=$1 NODE=$2 GW=$3 FILL=$4
T=$(mktemp -d /tmp/am-trust-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
fails=0 passes=0
# flip one base64url character at position P of a token
flip() { /usr/bin/python3 -c "import sys; t=sys.argv[1]; p=int(sys.argv[2]); c='A' if t[p] != 'A' else 'B'; print(t[:p] + c + t[p+1:])" "$1" "$2"; }

"$AM" keygen --network-key --output "$T/net.key" 2>/dev/null
G=$("$AM" init --store "$T/g" 2>/dev/null)
N=$("$AM" init --store "$T/n" 2>/dev/null)
FAR=$("$AM" init --store "$T/far" 2>/dev/null)
GP=$(port) LP=$(port) NP=$(port) FP=$(port)
"$GW" --data "$T/g" --network-key "@$T/net.key" --listen "tcp://127.0.0.1:$LP" --port "$GP" --no-discovery \
    --name site-gw >"$T/g.log" 2>&1 &
PIDS+=($!)
"$NODE" --data "$T/n" --network-key "@$T/net.key" --gateway "tcp://127.0.0.1:$LP" --port "$NP" --no-discovery \
    --name crane-1 --trust-key "$G" >"$T/n.log" 2>&1 &
PIDS+=($!)
# never linked to anything: only holds the gateway's public key
"$NODE" --data "$T/far" --network-key "@$T/net.key" --port "$FP" --no-discovery --name far-1 --trust-key "$G" \
    >"$T/far.log" 2>&1 &
PIDS+=($!); FARPID=$!
GU=http://127.0.0.1:$GP NU=http://127.0.0.1:$NP FU=http://127.0.0.1:$FP
until_ok 100 grep -q "^link to .*: peer" "$T/n.log" || bad "the node linked"
until_ok 50 bash -c "curl -sf $FU/health >/dev/null 2>&1 || /usr/bin/python3 -c \"import urllib.request; urllib.request.urlopen('$FU/health')\""

OP=$("$AM" token issue --gateway-key "$T/g/identity.pem" --right send:group:cranes --right 'send:node:*' \
    --right read:inbox --right scan --right metrics --valid 1h)
check "a token for group cranes: 202 on the gateway" grep -q "^202 " <<<"$(req POST "$GU/v1/messages" '{"group":"cranes","text":"lift at 10"}' "$OP")"
check "the same token works on the node (it trusts the gateway's key)" grep -q "^202 " <<<"$(req POST "$NU/v1/messages" '{"group":"cranes","text":"from crane"}' "$OP")"
out=$(req POST "$GU/v1/messages" '{"group":"office","text":"x"}' "$OP")
check "a group it does not cover: 403 naming the action" grep -q '^403 .*does not allow \\"send:group:office\\"' <<<"$out"
out=$(req POST "$GU/v1/messages" '{"broadcast":true,"geo":"zone:north-yard","text":"x"}' "$OP")
check "broadcast to a zone it does not cover: 403" grep -q '^403 .*send:broadcast' <<<"$out"
ZONE=$("$AM" token issue --gateway-key "$T/g/identity.pem" --right send:broadcast --right send:zone:north-yard --valid 1h)
check "a zone token: its zone 202" grep -q "^202 " <<<"$(req POST "$GU/v1/messages" '{"broadcast":true,"geo":"zone:north-yard","text":"x"}' "$ZONE")"
check "a zone token: another zone 403" grep -q '^403 .*send:zone:south-yard' <<<"$(req POST "$GU/v1/messages" '{"broadcast":true,"geo":"zone:south-yard","text":"x"}' "$ZONE")"
check "no token: 401" grep -q '^401 .*missing bearer token' <<<"$(req GET "$GU/v1/inbox" "" -)"
check "not a token: 401" grep -q '^401 .*amt1' <<<"$(req GET "$GU/v1/inbox" "" "hunter2")"
len=${#OP}
check "a forged signature (last bytes of block 0's signature changed): 401" grep -q '^401 .*signature does not verify\|^401 .*token' <<<"$(req GET "$GU/v1/inbox" "" "$(flip "$OP" $((len - 60)))")"
check "an altered field (a byte in the rights): 401" grep -q '^401 ' <<<"$(req GET "$GU/v1/inbox" "" "$(flip "$OP" 120)")"
OTHER=$("$AM" keygen --output "$T/other.pem" 2>/dev/null)
ROGUE=$("$AM" token issue --gateway-key "$T/other.pem" --role admin --valid 1h)
check "a token from an untrusted key: 401" grep -q '^401 .*not a trusted gateway' <<<"$(req GET "$GU/v1/inbox" "" "$ROGUE")"
SHORT=$("$AM" token issue --gateway-key "$T/g/identity.pem" --role admin --valid 1s)
sleep 1.2
check "an expired token: 401" grep -q '^401 .*expired' <<<"$(req GET "$GU/v1/inbox" "" "$SHORT")"

# attenuation: narrower, offline, and never wider
NARROW=$("$AM" token attenuate --token "$OP" --right read:inbox --valid 10m)
check "attenuated: what it keeps works" grep -q "^200 " <<<"$(req GET "$GU/v1/inbox" "" "$NARROW")"
check "attenuated: what it gave up is 403" grep -q '^403 .*send:group:cranes' <<<"$(req POST "$GU/v1/messages" '{"group":"cranes","text":"x"}' "$NARROW")"
"$AM" token attenuate --token "$NARROW" --right 'send:*' >/dev/null 2>"$T/err"
check "the CLI refuses to widen one, naming the right" grep -q 'widens the rights ("send:\*"' "$T/err"
FORGED=$(/usr/bin/python3 "$(dirname "$0")/../python/forge_token.py" "$NARROW" 'send:*')
out=$(req POST "$GU/v1/messages" '{"group":"cranes","text":"x"}' "$FORGED")
check "a hand-built block that widens, correctly signed: 401 ($(head -c 90 <<<"$out"))" grep -q '^401 .*widens the rights' <<<"$out"
INSIDE=$(/usr/bin/python3 "$(dirname "$0")/../python/forge_token.py" "$NARROW" 'read:inbox')
check "a hand-built block within the rights is accepted (the format is the spec's)" grep -q "^200 " <<<"$(req GET "$GU/v1/inbox" "" "$INSIDE")"
FARTOK=$("$AM" token attenuate --token "$OP" --right "send:node:$N" --valid 10m)
check "an attenuated token works on a node that never talked to the gateway" grep -q "^202 " <<<"$(req POST "$FU/v1/messages" "{\"to\":\"$N\",\"text\":\"offline check\"}" "$FARTOK")"
check "... and only within its rights there" grep -q "^403 " <<<"$(req POST "$FU/v1/messages" "{\"to\":\"$G\",\"text\":\"x\"}" "$FARTOK")"

# the audit logs: every refusal above, with the reason
GA=$T/g/audit/audit.log
check "gateway audit: token refusals recorded with reasons" test "$(grep -c '"event":"token_refused"' "$GA")" -ge 10
check "gateway audit: the widening attempt" grep -q '"event":"token_refused".*widens the rights' "$GA"
check "gateway audit: the 403 names the action" grep -q '"event":"token_refused".*"action":"send:group:office".*"status":403' "$GA"
check "gateway audit: accepted sends recorded" grep -q '"event":"token_accepted".*"action":"send:group:cranes"' "$GA"
check "gateway audit: the pairing with crane-1" grep -q '"event":"pairing","node":"[0-9a-f]*","subject":"crane-1"' "$GA"
check "far node audit: its offline acceptance recorded" grep -q '"event":"token_accepted"' "$T/far/audit/audit.log"

# revocation, carried by a USB stick to the node with no network
"$AM" token revoke --gateway-key "$T/g/identity.pem" --store "$T/g" --token "$FARTOK" >"$T/rev.out" 2>&1
check "revocation stored on the gateway" grep -q "^revocation [0-9a-f]* stored" "$T/rev.out"
mkdir -p "$T/stick"
"$AM" bundle sync --store "$T/g" "$T/stick" >/dev/null 2>&1
check "before the stick, the far node still accepts it" grep -q "^200 \|^202 " <<<"$(req POST "$FU/v1/messages" "{\"to\":\"$N\",\"text\":\"before\"}" "$FARTOK")"
"$AM" bundle sync --store "$T/far" "$T/stick" >/dev/null 2>&1
check "after the stick, the far node refuses it: revoked" grep -q '^401 .*revoked' <<<"$(req POST "$FU/v1/messages" "{\"to\":\"$N\",\"text\":\"after\"}" "$FARTOK")"
check "the far node's audit names the revoked token" grep -q '"event":"token_refused".*revoked' "$T/far/audit/audit.log"
out=$(req GET "$FU/v1/inbox" "" "$OP")
check "the gateway's audit records the revocation" grep -q '"event":"revocation".*"kind":"token"' "$T/g/audit/audit.log"
check "the far node's audit records the stick import" grep -q '"event":"bundle_import".*"imported":[1-9]' "$T/far/audit/audit.log"
check "the far node's log still verifies with the CLI's lines in it" "$AM" audit verify --node "$FAR" "$T/far/audit/audit.log"
check "other tokens still work there ($(head -c 120 <<<"$out"))" grep -q "^200 " <<<"$out"

# revoking a token's id refuses its whole family, on the gateway at once
ROOT=$("$AM" token inspect --json "$OP" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
"$AM" token revoke --gateway-key "$T/g/identity.pem" --store "$T/g" --id "$ROOT" >/dev/null 2>&1
check "revoking the root id: the token is refused on the gateway" grep -q '^401 .*revoked' <<<"$(req GET "$GU/v1/inbox" "" "$OP")"
check "... and so is what was attenuated from it" grep -q '^401 .*revoked' <<<"$(req GET "$GU/v1/inbox" "" "$NARROW")"
check "... and it reaches crane-1 over the live link" until_ok 50 bash -c "$(declare -f req); req GET '$NU/v1/inbox' '' '$OP' | grep -q '^401 .*revoked'"

# audit verify
check "audit verify: the gateway's log" "$AM" audit verify "$GA"
check "audit verify: the far node's log, pinned to its key" "$AM" audit verify --node "$FAR" "$T/far/audit/audit.log"
"$FILL" "$T/n" "$T/big.log" 100000 || bad "filling 100 000 lines"
out=$("$AM" audit verify "$T/big.log")
check "100 000 lines verify: $out" grep -q "^ok: 100000 lines" <<<"$out"
mutate() { # NAME PYTHON -> a changed copy; prints verify's error
    cp "$T/big.log" "$T/$1.log"
    /usr/bin/python3 -c "
import sys
p=sys.argv[1]; L=open(p,'rb').read().split(b'\n')[:-1]
$2
open(p,'wb').write(b''.join(l + b'\n' for l in L) if not TRUNC else b''.join(l + b'\n' for l in L)[:-7])" "$T/$1.log"
    "$AM" audit verify "$T/$1.log" 2>&1
}
out=$(mutate byte "TRUNC=0; L[5000] = L[5000].replace(b'read_sensor', b'read_sensos', 1)")
check "one changed byte: caught at that line ($out)" grep -q "line 5001: its signature does not verify" <<<"$out"
out=$(mutate del "TRUNC=0; del L[70000]")
check "a deleted line: caught at the next one ($out)" grep -q "line 70001: its prev does not match" <<<"$out"
out=$(mutate swap "TRUNC=0; L[100], L[101] = L[101], L[100]")
check "two swapped lines: caught ($out)" grep -q "line 101: its prev does not match" <<<"$out"
out=$(mutate trunc "TRUNC=1")
check "a truncated last line: caught ($out)" grep -q "line 100000: cut short" <<<"$out"
# the seed's jq examples
if command -v jq >/dev/null; then
    n=$(jq -c 'select(.workflow_id == "feedback_safe_summary")' "$T/big.log" | wc -l)
    check "jq select by workflow_id: $n records" test "$n" -eq 33334
    counts=$(jq -r '.workflow_id // empty' "$T/big.log" | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
    check "jq per-workflow counts: $counts" test "$counts" = "33333 33334 33333 "
else
    bad "jq is not installed (tools/dev deps installs it)"
fi
# backup and restore of what the mesh cannot give back
"$AM" backup --data "$T/g" --output "$T/g-backup.tar.gz" >/dev/null
check "backup: mode 0600" test "$(stat -c %a "$T/g-backup.tar.gz")" = 600
check "backup: holds the key, trust store and audit log" bash -c "tar -tzf '$T/g-backup.tar.gz' | sort | tr '\n' ' ' | grep -q 'audit/audit.log .*identity.pem .*trust/trust_store.json'"
"$AM" restore --input "$T/g-backup.tar.gz" --data "$T/g" >/dev/null 2>"$T/err"
check "restore over an existing identity is refused" grep -q "already has an identity" "$T/err"
"$AM" restore --input "$T/g-backup.tar.gz" --data "$T/restored" >/dev/null
check "restored: the same node id" test "$("$AM" keygen --help >/dev/null 2>&1; openssl pkey -in "$T/restored/identity.pem" -pubout -outform DER 2>/dev/null | tail -c 32 | od -An -tx1 | tr -d ' \n')" = "$G"
check "restored: identity and trust store are 0600" test "$(stat -c %a "$T/restored/identity.pem")$(stat -c %a "$T/restored/trust/trust_store.json")" = 600600
check "restored: the audit log still verifies" "$AM" audit verify "$T/restored/audit/audit.log"
# a restore gives a node that starts: the store is made, owned by the
# restored key (on a8d29b6 there was none until init, and .env was 0644)
check "restored: an empty store owned by the restored key" \
    bash -c "'$AM' store stats --store '$T/restored' 2>/dev/null | grep -q '^node *$G'"
"$AM" init --store "$T/e" >/dev/null 2>&1
printf 'MESH_NETWORK_KEY=@/etc/agent-mesh/network.key\n' >"$T/e/.env"; chmod 644 "$T/e/.env"
"$AM" backup --data "$T/e" --output "$T/e-backup.tar.gz" >/dev/null
"$AM" restore --input "$T/e-backup.tar.gz" --data "$T/e2" >/dev/null
check "restored: .env is 0600 (it may hold the network key)" test "$(stat -c %a "$T/e2/.env")" = 600
printf 'x' | gzip >"$T/notabackup.tar.gz"
"$AM" restore --input "$T/notabackup.tar.gz" --data "$T/r2" >/dev/null 2>"$T/err"
check "a file that is not a backup is refused by name" grep -q "is not a backup archive" "$T/err"

echo "trust_tokens: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
