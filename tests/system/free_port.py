#!/usr/bin/python3
"""free_port.py OWNER_PID — print a loopback TCP port for a test daemon.

Why not bind(0): the kernel picks from the ephemeral range, the same range
every outgoing connection takes its local port from, and the suite runs
tests side by side (the flood tests open hundreds of connections). Between
"this port is free" and the daemon's bind, a port from that range could be
taken, and the daemon died at start (tools-mcp in CI: office-1 exited, its
kill found no process). So: a port below the ephemeral range, free now, and
reserved for OWNER_PID in /tmp/am-test-ports/ so two scripts running at once
never get the same one; a reservation whose owner is gone is taken over.
"""
import errno
import os
import random
import socket
import sys

LOCKS = "/tmp/am-test-ports"


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reserve(port, owner):
    path = os.path.join(LOCKS, str(port))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            with open(path) as f:
                held_by = int(f.read().strip() or "0")
        except (OSError, ValueError):
            return False
        if held_by and alive(held_by):
            return False
        # stale: its owner is gone; take it over (a racing taker may win,
        # then the rename below makes the last writer the owner and both
        # re-read to see who it is)
        tmp = "%s.%d" % (path, os.getpid())
        try:
            with open(tmp, "w") as f:
                f.write(str(owner))
            os.rename(tmp, path)
            with open(path) as f:
                return f.read().strip() == str(owner)
        except OSError:  # another user's stale file in the sticky folder
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
    with os.fdopen(fd, "w") as f:
        f.write(str(owner))
    return True


def free_now(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        return False
    finally:
        s.close()


def main():
    global LOCKS
    owner = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    try:
        os.makedirs(LOCKS, exist_ok=True)
        if os.stat(LOCKS).st_uid == os.getuid():
            os.chmod(LOCKS, 0o1777)  # shared by every user's test runs (umask would narrow it)
        if not os.access(LOCKS, os.W_OK):
            raise PermissionError(LOCKS)
    except PermissionError:
        LOCKS = "%s-%d" % (LOCKS, os.getuid())  # another user's folder: keep our own
        os.makedirs(LOCKS, exist_ok=True)
    high = min(ephemeral_low(), 65536)
    low = max(1024, min(20000, high - 4096))
    for _ in range(2000):
        port = random.randrange(low, high)
        if free_now(port) and reserve(port, owner):
            print(port)
            return 0
    print("free_port: no free port in %d-%d after 2000 tries" % (low, high - 1), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
