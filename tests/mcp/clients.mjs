// clients.mjs URL TOKEN NODE — drives the gateway's MCP server with both
// official TypeScript clients over streamable HTTP: @modelcontextprotocol/sdk
// 1.x (2025-11-25: initialize, sessions) and @modelcontextprotocol/client 2.x
// pinned to 2026-07-28 (stateless: server/discover, _meta on every request)
// and in its default (2025-era) mode. Each: tools/list with valid names, a
// node tool call with progress notifications, a cancelled call whose job
// later completes (polled with mesh_job_status), and an unsupported protocol
// version refused. Prints "ok:"/"FAIL:" lines; exits 1 on any failure.
import { Client as Client1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as Http1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport as Stdio1 } from "@modelcontextprotocol/sdk/client/stdio.js";
import { LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema, ToolListChangedNotificationSchema }
  from "@modelcontextprotocol/sdk/types.js";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Client as Client2, StreamableHTTPClientTransport as Http2 } from "@modelcontextprotocol/client";
import { StdioClientTransport as Stdio2 } from "@modelcontextprotocol/client/stdio";

// AGENT_MESH TOKEN_FILE: the stdio bridge, `agent-mesh mcp --gateway URL --token @FILE`
// NODE_API GATEWAY_ID: to send the gateway a message (its inbox changes);
// SECOND_NODE (env): the command that starts a second node (the tool list
// changes), its pid written to SECOND_NODE_PID
const [url, token, node, agentMesh, tokenFile, nodeApi, gatewayId] = process.argv.slice(2);
const bridge = { command: agentMesh, args: ["mcp", "--gateway", url, "--token", `@${tokenFile}`], stderr: "inherit" };
let fails = 0;
const check = (what, cond, extra = "") => {
  console.log(`${cond ? "ok" : "FAIL"}: mcp: ${what}${extra ? " (" + extra + ")" : ""}`);
  if (!cond) fails++;
};
const auth = { headers: { Authorization: `Bearer ${token}` } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1.x takes callTool(params, resultSchema, options), 2.x callTool(params, options)
async function exercise(label, client, v2 = false) {
  const call = (params, options) => v2 ? client.callTool(params, options) : client.callTool(params, undefined, options);
  // logging (2025-era: logging/setLevel on the session)
  const logs = [];
  if (!v2) {
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    await client.setLoggingLevel("info");
  }
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  check(`${label}: tools/list names are ones clients accept`, names.length > 4 && names.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n)),
    names.join(","));
  check(`${label}: ${node}__echo listed`, names.includes(`${node}__echo`));

  const r = await client.callTool({ name: `${node}__echo`, arguments: { word: label.replace(/\W/g, "") } });
  check(`${label}: a node tool answers`, !r.isError && r.content?.[0]?.text?.includes("heard:"), JSON.stringify(r.content));

  // progress while the node runs a 3 s tool
  const seen = [];
  const slow = await call({ name: `${node}__long`, arguments: { secs: 3 } },
    { onprogress: (p) => seen.push(p), timeout: 30000 });
  check(`${label}: a waiting call sends progress notifications`, seen.length >= 2 && seen.every((p, i) => i === 0 || p.progress > seen[i - 1].progress),
    JSON.stringify(seen.map((p) => p.progress)));
  check(`${label}: ... and then its result`, !slow.isError && slow.content?.[0]?.text?.includes("slept"), JSON.stringify(slow.content));
  if (!v2)
    check(`${label}: logging/setLevel info: log messages about the call`,
      logs.some((l) => l.level === "info" && /went to crane-1 as job/.test(l.data)) && logs.some((l) => /the node answered/.test(l.data)),
      JSON.stringify(logs.map((l) => l.data)));

  // cancelled: the wait ends, the job goes on and completes
  const ac = new AbortController();
  let job = null;
  const cancelled = call({ name: `${node}__long`, arguments: { secs: 4 } }, {
    signal: ac.signal, timeout: 30000,
    onprogress: (p) => { const m = /job ([0-9a-f]{64})/.exec(p.message ?? ""); if (m) job = m[1]; },
  });
  await sleep(1500);
  ac.abort("the user pressed stop");
  let rejected = false;
  try { await cancelled; } catch { rejected = true; }
  check(`${label}: a cancelled call ends its wait`, rejected);
  check(`${label}: the progress named the job`, job !== null);
  let done = null;
  for (let i = 0; i < 60 && job && !done; i++) {
    const s = await client.callTool({ name: "mesh_job_status", arguments: { job_id: job } });
    if (s.structuredContent?.status === "done") done = s;
    else await sleep(250);
  }
  check(`${label}: the cancelled call's job completes anyway`, done?.content?.[0]?.text?.includes("slept"), done?.content?.[0]?.text);

  // resources: the inbox, the scan, the jobs
  const { resources } = await client.listResources();
  const uris = resources.map((r) => r.uri);
  check(`${label}: resources/list has the inbox, mesh_scan and the jobs`, uris.includes("am-mesh://inbox") &&
    uris.includes("am-mesh://mesh_scan") && uris.includes(`am-mesh://jobs/${job}`), uris.slice(0, 4).join(","));
  const scan = await client.readResource({ uri: "am-mesh://mesh_scan" });
  check(`${label}: resources/read mesh_scan: crane-1's catalog`,
    Object.values(JSON.parse(scan.contents?.[0]?.text ?? "{}").catalogs ?? {}).some((c) => c.node_name === node));
  const jr = await client.readResource({ uri: `am-mesh://jobs/${job}` });
  check(`${label}: resources/read of the cancelled call's job: done`, JSON.parse(jr.contents?.[0]?.text ?? "{}").status === "done");
  let missing = null;
  try { await client.readResource({ uri: "am-mesh://jobs/" + "0".repeat(64) }); } catch (e) { missing = e; }
  check(`${label}: resources/read of a job not here: an error naming the uri`, missing !== null && /no such resource/.test(String(missing?.message)),
    String(missing?.message));
}

// 1.x, 2025-era
{
  const c = new Client1({ name: "agent-mesh-test-sdk1", version: "1.0.0" });
  await c.connect(new Http1(new URL(url), { requestInit: auth }));
  check("sdk 1.x: initialize names the server", c.getServerVersion()?.name === "agent-mesh-gateway");
  // a workflow_id argument tags the call (the test reads the audit log for it)
  const wf = await c.callTool({ name: `${node}__echo`, arguments: { word: "tagged", workflow_id: "wf-mcp-arg" } });
  check("sdk 1.x: a call with a workflow_id argument answers", !wf.isError, JSON.stringify(wf.content));
  await exercise("sdk 1.x", c);
  await c.close();
}
// 2.x pinned to the stateless revision
{
  const c = new Client2({ name: "agent-mesh-test-client2", version: "2.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  const t = new Http2(new URL(url), { requestInit: auth });
  await c.connect(t);
  check("client 2.x: negotiated 2026-07-28 by server/discover", c.getNegotiatedProtocolVersion?.() === "2026-07-28" || t.protocolVersion === "2026-07-28",
    String(c.getNegotiatedProtocolVersion?.() ?? t.protocolVersion));
  check("client 2.x: no session id in the stateless revision", !t.sessionId, String(t.sessionId));
  await exercise("client 2.x (2026-07-28)", c, true);
  await c.close();
}
// 2.x in its default mode: 2025-era initialize
{
  const c = new Client2({ name: "agent-mesh-test-client2-legacy", version: "2.0.0" });
  await c.connect(new Http2(new URL(url), { requestInit: auth }));
  const { tools } = await c.listTools();
  check("client 2.x (2025-era default): tools/list", tools.some((t) => t.name === `${node}__echo`));
  await c.close();
}
// the same over stdio, through agent-mesh mcp
{
  const c = new Client1({ name: "agent-mesh-test-sdk1-stdio", version: "1.0.0" });
  await c.connect(new Stdio1(bridge));
  check("sdk 1.x over stdio: initialize names the server", c.getServerVersion()?.name === "agent-mesh-gateway");
  await exercise("sdk 1.x over stdio", c);
  await c.close();
}
{
  const c = new Client2({ name: "agent-mesh-test-client2-stdio", version: "2.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  await c.connect(new Stdio2(bridge));
  check("client 2.x over stdio: negotiated 2026-07-28", c.getNegotiatedProtocolVersion?.() === "2026-07-28",
    String(c.getNegotiatedProtocolVersion?.()));
  await exercise("client 2.x (2026-07-28) over stdio", c, true);
  await c.close();
}
// watching: four clients at once (both eras, HTTP and stdio), each told
// when the gateway's inbox changes and when the tool list does
{
  const watchers = [];
  const add = async (label, c, transport, v2) => {
    const w = { label, c, updates: [], listChanged: 0 };
    if (v2) {
      c.setNotificationHandler("notifications/resources/updated", (n) => w.updates.push(n.params.uri));
      c.setNotificationHandler("notifications/tools/list_changed", () => w.listChanged++);
      await c.connect(transport);
      w.sub = await c.listen({ toolsListChanged: true, resourceSubscriptions: ["am-mesh://inbox"] });
      check(`${label}: subscriptions/listen acknowledged with the filter`,
        w.sub.honoredFilter?.toolsListChanged === true && w.sub.honoredFilter?.resourceSubscriptions?.includes("am-mesh://inbox"),
        JSON.stringify(w.sub.honoredFilter));
    } else {
      c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => w.updates.push(n.params.uri));
      c.setNotificationHandler(ToolListChangedNotificationSchema, () => w.listChanged++);
      await c.connect(transport);
      await c.subscribeResource({ uri: "am-mesh://inbox" });
    }
    watchers.push(w);
  };
  const pin = { versionNegotiation: { mode: { pin: "2026-07-28" } } };
  await add("sdk 1.x watching", new Client1({ name: "w1", version: "1" }), new Http1(new URL(url), { requestInit: auth }), false);
  await add("sdk 1.x over stdio watching", new Client1({ name: "w2", version: "1" }), new Stdio1(bridge), false);
  await add("client 2.x (2026-07-28) watching", new Client2({ name: "w3", version: "2" }, pin), new Http2(new URL(url), { requestInit: auth }), true);
  await add("client 2.x (2026-07-28) over stdio watching", new Client2({ name: "w4", version: "2" }, pin), new Stdio2(bridge), true);
  await sleep(1000); // the 2025-era clients open their session streams on their own
  const sent = await fetch(`${nodeApi}/v1/messages`, { method: "POST", headers: { ...auth.headers, "Content-Type": "application/json" },
    body: JSON.stringify({ to: gatewayId, text: "watched message" }) });
  check("a node sends the gateway a message", sent.status === 202 || sent.status === 200, String(sent.status));
  for (let i = 0; i < 100 && !watchers.every((w) => w.updates.includes("am-mesh://inbox")); i++) await sleep(100);
  for (const w of watchers)
    check(`${w.label}: notifications/resources/updated for the inbox`, w.updates.includes("am-mesh://inbox"), JSON.stringify(w.updates));
  const inbox = await watchers[0].c.readResource({ uri: "am-mesh://inbox" });
  check("... and the inbox resource holds the message", /watched message/.test(inbox.contents?.[0]?.text ?? ""));
  // a second node comes: its catalog changes the tool list
  const second = spawn("/bin/sh", ["-c", process.env.SECOND_NODE], { stdio: "ignore", detached: true });
  writeFileSync(process.env.SECOND_NODE_PID, String(second.pid));
  for (let i = 0; i < 300 && !watchers.every((w) => w.listChanged > 0); i++) await sleep(100);
  for (const w of watchers)
    check(`${w.label}: notifications/tools/list_changed when a node's tools arrived`, w.listChanged > 0, String(w.listChanged));
  const { tools } = await watchers[2].c.listTools();
  check("... and tools/list now has office-1's", tools.some((t) => t.name === "office-1__echo"), tools.map((t) => t.name).join(","));
  await watchers[2].sub.close();
  for (const w of watchers) await w.c.close();
}
// an unsupported revision, in each era's way
{
  const post = (body, headers = {}) => fetch(url, { method: "POST", body: JSON.stringify(body), headers: {
    ...auth.headers, "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers } });
  const meta = (v) => ({ "io.modelcontextprotocol/protocolVersion": v, "io.modelcontextprotocol/clientCapabilities": {} });
  let res = await post({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: meta("1999-01-01") } },
    { "MCP-Protocol-Version": "1999-01-01", "Mcp-Method": "tools/list" });
  let j = await res.json();
  check("2026-07-28 era: an unsupported version: 400 with -32022 naming the supported ones",
    res.status === 400 && j.error?.code === -32022 && j.error?.data?.supported?.includes("2026-07-28"), `${res.status} ${JSON.stringify(j)}`);
  res = await post({ jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: meta("2026-07-28") } },
    { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call" });
  j = await res.json();
  check("2026-07-28 era: Mcp-Method disagreeing with the body: 400", res.status === 400 && j.error?.code === -32020, `${res.status}`);
  res = await fetch(url, { method: "GET", headers: { ...auth.headers, "MCP-Protocol-Version": "2026-07-28" } });
  check("2026-07-28 era: GET is 405", res.status === 405, `${res.status}`);
  res = await post({ jsonrpc: "2.0", id: 3, method: "tools/list", params: { _meta: meta("2026-07-28") } },
    { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list", "Mcp-Session-Id": "not-a-session-we-gave" });
  check("2026-07-28 era: an inbound Mcp-Session-Id is ignored", res.status === 200, `${res.status}`);
  // 2026-07-28 logging: the level named in the request's _meta
  res = await post({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: `${node}__echo`, arguments: { word: "logged" },
    _meta: { ...meta("2026-07-28"), "io.modelcontextprotocol/logLevel": "info" } } },
    { "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call" });
  const events = await res.text();
  check("2026-07-28 era: _meta logLevel info: notifications/message in the call's stream, then the result",
    /"method":"notifications\/message".*went to/.test(events) && /"resultType":"complete"/.test(events) && /heard: logged/.test(events),
    events.slice(0, 300));
  res = await post({ jsonrpc: "2.0", id: 4, method: "ping" }, { "MCP-Protocol-Version": "1999-01-01" });
  check("2025 era: an unsupported MCP-Protocol-Version header: 400", res.status === 400, `${res.status}`);
}
process.exit(fails ? 1 : 0);
