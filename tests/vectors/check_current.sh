#!/bin/sh
# The generator still produces exactly the checked-in vectors: a change to
# the wire format must come with new vectors (and a version bump).
set -eu
gen=$1 want=$2
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$gen" "$tmp"
if ! cmp -s "$tmp" "$want"; then
    echo "the vectors differ from $want; regenerate with: $gen $want" >&2
    diff "$want" "$tmp" | head -20 >&2
    exit 1
fi
echo "vectors current"
