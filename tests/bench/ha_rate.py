#!/usr/bin/env python3
"""ha_rate.py HOST PORT TOKEN NODE_ID JOB_ID N C — N requests from C
threads over kept-alive connections to HOST:PORT: half POST /v1/messages to
NODE_ID (a store write), half GET /v1/jobs/JOB_ID (a read; on a pair, from
Redis). Prints "rate R req/s ok K of N". Bounded: N requests, 10 s each."""
import http.client, json, sys, threading, time

host, port, token, node, job, n, c = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
lock = threading.Lock()
state = {"next": 0, "ok": 0}
hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}


def worker():
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= n:
            break
        try:
            if i % 2 == 0:
                conn.request("POST", "/v1/messages", json.dumps({"to": node, "text": f"bench {i}"}), hdr)
            else:
                conn.request("GET", f"/v1/jobs/{job}", headers=hdr)
            r = conn.getresponse()
            r.read()
            good = r.status in (200, 202)
        except Exception:
            good = False
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
        if good:
            with lock:
                state["ok"] += 1
    conn.close()


t0 = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(c)]
for t in ts:
    t.start()
for t in ts:
    t.join()
dt = time.perf_counter() - t0
print(f"rate {n / dt:.1f} req/s ok {state['ok']} of {n}")
