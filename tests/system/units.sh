#!/bin/bash
# `meson install` and the units (issue 12, point 7): the build tree is
# installed into a scratch root (DESTDIR), every file lands at its
# standard path, `systemd-analyze verify` takes the installed units
# (with that root: their commands must exist there), `systemd-analyze
# security` rates the gateway's and the node's units at most 4.0, and
# logrotate reads the installed file. A unit whose command is missing is
# caught, so the verify can fail. On da7c989 there were no daemon units
# (only the USB one, rated 9.0) and `meson install` put the binaries only.
# usage: units.sh BUILD_DIR
set -u
. "$(dirname "$0")/lib.sh"
BUILD=$(realpath "$1")
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }
scratch am-units
R=$T/root
meson install -C "$BUILD" --destdir "$R" --no-rebuild --quiet >"$T/install.log" 2>&1
check "meson install into a scratch root" test $? -eq 0
P=$R/usr/local
for f in bin/agent-mesh bin/agent-mesh-gateway bin/agent-mesh-node \
    lib/systemd/system/agent-mesh-gateway.service lib/systemd/system/agent-mesh-node.service \
    lib/systemd/system/agent-mesh-usb-sync@.service lib/sysusers.d/agent-mesh.conf \
    lib/udev/rules.d/99-agent-mesh-usb.rules lib/agent-mesh/usb-sync lib/agent-mesh/backup.sh \
    etc/logrotate.d/agent-mesh share/doc/agent-mesh/OPERATIONS.md; do
    check "installed: /usr/local/$f" test -e "$P/$f"
done
check "the scripts are executable" test -x "$P/lib/agent-mesh/usb-sync" -a -x "$P/lib/agent-mesh/backup.sh"
check "the USB unit runs the installed script" grep -q "^ExecStart=/usr/local/lib/agent-mesh/usb-sync /dev/%I" \
    "$P/lib/systemd/system/agent-mesh-usb-sync@.service"

# the root holds what the units name from the system: its targets, kill
mkdir -p "$R/usr/lib/systemd" "$R/bin"
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
cp /bin/kill "$R/bin/kill"
U=$P/lib/systemd/system
ln -s agent-mesh-usb-sync@.service "$U/agent-mesh-usb-sync@sdb1.service" # an instance, as udev starts it
for u in agent-mesh-gateway.service agent-mesh-node.service agent-mesh-usb-sync@.service agent-mesh-usb-sync@sdb1.service; do
    out=$(systemd-analyze verify --root="$R" "$U/$u" 2>&1); rc=$?
    check "systemd-analyze verify $u: clean${out:+ ($out)}" test "$rc" = 0 -a -z "$out"
done
rm -f "$U/agent-mesh-usb-sync@sdb1.service"
sed 's|^ExecStart=.*|ExecStart=/usr/local/bin/agent-mesh-nowhere|' "$U/agent-mesh-gateway.service" >"$U/broken.service"
systemd-analyze verify --root="$R" "$U/broken.service" >"$T/broken.out" 2>&1; rc=$?
check "a unit whose command is missing is caught" bash -c "[ $rc != 0 ] && grep -q 'agent-mesh-nowhere' '$T/broken.out'"
rm -f "$U/broken.service"
for u in agent-mesh-gateway.service agent-mesh-node.service; do
    rating=$(systemd-analyze security --offline=true "$U/$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    check "systemd-analyze security $u: $rating (at most 4.0)" \
        /usr/bin/python3 -c "import sys; sys.exit(0 if '$rating' and float('$rating') <= 4.0 else 1)"
done
logrotate -d "$P/etc/logrotate.d/agent-mesh" >"$T/logrotate.out" 2>&1; rc=$?
check "logrotate reads the installed file" bash -c "[ $rc = 0 ] && ! grep -qi 'error' '$T/logrotate.out'"
finish units
