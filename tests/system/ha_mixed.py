#!/usr/bin/env python3
"""ha_mixed.py URL MCP_URL TOKEN DEV_TOKEN N — N mixed requests through a
load balancer in front of a gateway pair: messages, tool calls, polls of
the job a call made (whichever gateway made it), mesh_scan with the pair's
dev token, and MCP initialize + tools/call (the session made on one
gateway, the call maybe on the other). Prints one line per failure and
"mixed: N ok, M failed"; exits 1 on any failure."""
import json, sys, urllib.request, urllib.error

url, mcp, token, dev, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])


def call(method, u, body=None, tok=token, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(u, data=data, method=method)
    r.add_header("Authorization", "Bearer " + tok)
    if data is not None:
        r.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        r.add_header(k, v)
    try:
        with urllib.request.urlopen(r, timeout=30) as f:
            return f.status, f.read().decode(), dict(f.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)
    except Exception as e:  # the balancer or a gateway not answering
        return 0, repr(e), {}


ok = failed = 0
jobs = []


def result(what, good, detail=""):
    global ok, failed
    if good:
        ok += 1
    else:
        failed += 1
        print(f"FAIL: {what}: {detail[:300]}")


for i in range(n):
    kind = i % 5
    if kind == 0:
        st, body, _ = call("POST", f"{url}/v1/messages", {"broadcast": True, "text": f"ha message {i}"})
        result("POST /v1/messages", st == 202, f"{st} {body}")
    elif kind == 1:
        st, body, _ = call("POST", f"{url}/v1/tools/call",
                           {"node": "crane-1", "tool": "echo", "args": {"word": f"w{i}"}, "wait_ms": 15000})
        good = st == 200 and f"heard: w{i}" in body
        result("POST /v1/tools/call", good, f"{st} {body}")
        if st in (200, 202):
            jobs.append(json.loads(body)["job_id"])
    elif kind == 2:
        if not jobs:
            result("a job to poll", False, "no call made one")
            continue
        st, body, _ = call("GET", f"{url}/v1/jobs/{jobs[-1]}")
        result("GET /v1/jobs/ID", st == 200 and '"status":"done"' in body, f"{st} {body}")
    elif kind == 3:
        st, body, _ = call("GET", f"{url}/v1/mesh_scan", tok=dev)
        result("GET /v1/mesh_scan with the dev token", st == 200 and "crane-1" in body, f"{st} {body}")
    else:
        st, body, hd = call("POST", mcp, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                     "clientInfo": {"name": "ha", "version": "1"}}},
                            headers={"Accept": "application/json"})
        sid = {k.lower(): v for k, v in hd.items()}.get("mcp-session-id")
        result("MCP initialize", st == 200 and sid is not None, f"{st} {body}")
        if sid:
            h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25", "Accept": "application/json"}
            st, body, _ = call("POST", mcp, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                             "params": {"name": "crane-1__echo", "arguments": {"word": f"m{i}"}}},
                               headers=h)
            result("MCP tools/call in that session", st == 200 and f"heard: m{i}" in body, f"{st} {body}")
print(f"mixed: {ok} ok, {failed} failed")
sys.exit(1 if failed else 0)
