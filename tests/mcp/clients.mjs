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
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { Client as Client2, StreamableHTTPClientTransport as Http2 } from "@modelcontextprotocol/client";
import { StdioClientTransport as Stdio2 } from "@modelcontextprotocol/client/stdio";

// AGENT_MESH TOKEN_FILE: the stdio bridge, `agent-mesh mcp --gateway URL --token @FILE`
const [url, token, node, agentMesh, tokenFile] = process.argv.slice(2);
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
}

// 1.x, 2025-era
{
  const c = new Client1({ name: "agent-mesh-test-sdk1", version: "1.0.0" });
  await c.connect(new Http1(new URL(url), { requestInit: auth }));
  check("sdk 1.x: initialize names the server", c.getServerVersion()?.name === "agent-mesh-gateway");
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
