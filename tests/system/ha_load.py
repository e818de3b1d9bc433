#!/usr/bin/env python3
"""ha_load.py URL TOKEN NODE_ID N AT CMD — a bounded load through the load
balancer in front of a gateway pair: N requests from 4 workers, half
messages to NODE_ID, half tool calls to crane-1 (wait 15 s); when request
AT is handed out, CMD runs (a shell command: kill -9 one gateway, or
restart Redis). Writes answers.json: each request's kind, HTTP status and
the message id or job id it got. Prints "load: N answered (S 200/202),
F failed, in T s". Bounded in count and time (each request 20 s at most)."""
import json, subprocess, sys, threading, time, urllib.request, urllib.error

url, token, node_id, n, at, cmd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
lock = threading.Lock()
nxt = 0
answers = []


def post(path, body):
    r = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    r.add_header("Authorization", "Bearer " + token)
    r.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(r, timeout=20) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:
        return 0, repr(e)


def worker():
    global nxt
    while True:
        with lock:
            i = nxt
            nxt += 1
        if i >= n:
            return
        if i == at:
            subprocess.Popen(["/bin/sh", "-c", cmd])
        if i % 2 == 0:
            st, body = post("/v1/messages", {"to": node_id, "text": f"load message {i}"})
            kind = "message"
        else:
            st, body = post("/v1/tools/call", {"node": "crane-1", "tool": "echo", "args": {"word": f"c{i}"}, "wait_ms": 15000})
            kind = "call"
        try:
            j = json.loads(body)
        except ValueError:
            j = {}
        a = {"i": i, "kind": kind, "status": st, "id": j.get("id") or j.get("job_id"), "done": f"heard: c{i}" in body,
             "body": body[:200]}
        with lock:
            answers.append(a)
        time.sleep(0.05)


t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
answers.sort(key=lambda a: a["i"])
json.dump(answers, open("answers.json", "w"))
good = sum(1 for a in answers if a["status"] in (200, 202))
print(f"load: {len(answers)} answered ({good} 200/202), {len(answers) - good} failed, in {time.time() - t0:.1f} s")
for a in answers:
    if a["status"] not in (200, 202):
        print(f"  failed: #{a['i']} {a['kind']}: {a['status']} {a['body']}")
