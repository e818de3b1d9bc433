#!/usr/bin/env python3
"""ha_failover_time.py HOST PORT TOKEN PID — probe GET /v1/mesh_scan through
the load balancer every 5 ms, kill -9 PID, and print the time from the
kill to the first success after it ("failover_ms X"), bounded at 30 s."""
import http.client, os, signal, sys, time

host, port, token, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
hdr = {"Authorization": "Bearer " + token}


def probe():
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/v1/mesh_scan", headers=hdr)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status == 200
    except Exception:
        return False


for _ in range(20):  # it answers before the kill
    probe()
os.kill(pid, signal.SIGKILL)
t0 = time.perf_counter()
while time.perf_counter() - t0 < 30:
    if probe():
        print(f"failover_ms {(time.perf_counter() - t0) * 1000:.2f}")
        sys.exit(0)
    time.sleep(0.005)
print("failover_ms none")
sys.exit(1)
