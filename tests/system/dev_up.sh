#!/bin/bash
# The README's first command's main job, minus installing and building:
# `tools/dev daemons --once` starts a gateway and a node on loopback (on
# free ports here), sends a message each way through the HTTP API and
# checks both arrive, then stops them.
# usage: dev_up.sh BUILD_DIR
set -u
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/am-up-XXXXXX)
trap 'rm -rf "$T"' EXIT
if ! command -v curl >/dev/null; then echo "SKIP: curl is not installed (tools/dev deps installs it)"; exit 77; fi
AGENT_MESH_BIN=$1 AGENT_MESH_RUN=$T GATEWAY_PORT=$(port) NODE_PORT=$(port) LINK_PORT=$(port) \
    timeout 120 "$ROOT/tools/dev" daemons --once >"$T/out" 2>&1
rc=$?
cat "$T/out"
fails=0
[ $rc -eq 0 ] || { echo "FAIL: tools/dev daemons --once exited $rc"; fails=1; }
grep -q "lift plan approved" "$T/out" || { echo "FAIL: the node did not get the gateway's message"; fails=1; }
grep -q "load cell 4.2 t" "$T/out" || { echo "FAIL: the gateway did not get the node's message"; fails=1; }
sleep 0.3
pgrep -f "agent-mesh-(gateway|node) --data $T" >/dev/null && { echo "FAIL: daemons left running"; fails=1; }
echo "dev_up: $((fails ? 0 : 1)) passed, $fails failed"
exit $fails
