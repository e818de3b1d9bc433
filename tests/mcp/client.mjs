// client.mjs URL TOKEN NODE OFFLINE_NODE — drives the gateway's MCP server
// with the official SDK's client over streamable HTTP: initialize, list the
// tools, call a node's tool, call an offline node's tool (a job id comes
// back) and poll it with mesh_job_status. Prints one line per check, "ok:"
// or "FAIL:", and exits 1 on any failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, node, offline] = process.argv.slice(2);
let fails = 0;
const check = (what, cond, extra = "") => {
  console.log(`${cond ? "ok" : "FAIL"}: mcp: ${what}${extra ? " (" + extra + ")" : ""}`);
  if (!cond) fails++;
};

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "agent-mesh-test", version: "1.0.0" });
await client.connect(transport);
check("initialize: the server names itself", client.getServerVersion()?.name === "agent-mesh-gateway");

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
check("tools/list has the built-ins", ["mesh_send", "mesh_inbox", "mesh_scan", "mesh_job_status"].every((n) => names.includes(n)));
// clients refuse names outside ^[a-zA-Z0-9_-]{1,64}$ (failed on 944d5ec:
// node tools were named node/tool)
check("every tool name is one MCP clients accept", names.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n)), names.join(","));
const mine = tools.find((t) => t.name === `${node}__echo`);
check(`tools/list has ${node}__echo with its schema`, mine?.inputSchema?.properties?.word !== undefined, names.join(","));
check("the node and tool are in the tool's _meta and title",
  mine?._meta?.["agent-mesh/node"] === node && mine?._meta?.["agent-mesh/tool"] === "echo" &&
  /^[0-9a-f]{64}$/.test(mine?._meta?.["agent-mesh/node_id"] ?? "") && mine?.title === `echo on ${node}`,
  JSON.stringify(mine?._meta));

const r = await client.callTool({ name: `${node}__echo`, arguments: { word: "from-mcp" } });
check("a node tool runs and answers", !r.isError && r.content?.[0]?.text?.includes("heard: from-mcp"), JSON.stringify(r.content));

const bad = await client.callTool({ name: `${node}__echo`, arguments: { word: 42 } });
check("bad arguments: a clear error result", bad.isError === true && /arguments/.test(bad.content?.[0]?.text), bad.content?.[0]?.text);

// the older node/tool form is still taken on calls
const off = await client.callTool({ name: `${offline}/echo`, arguments: { word: "later" }, _meta: { wait_ms: 500 } });
const job = off.structuredContent?.job_id;
check("an offline node's tool: a job id to poll", typeof job === "string" && job.length === 64, off.content?.[0]?.text);

const st = await client.callTool({ name: "mesh_job_status", arguments: { job_id: job } });
check("mesh_job_status: the job is pending", st.structuredContent?.status === "pending", st.structuredContent?.status);

// the test brings the offline node up now and waits for our signal
console.log(`job: ${job}`);
process.stdin.once("data", async () => {
  let done = null;
  for (let i = 0; i < 100 && !done; i++) {
    const s = await client.callTool({ name: "mesh_job_status", arguments: { job_id: job } });
    if (s.structuredContent?.status === "done") done = s;
    else await new Promise((res) => setTimeout(res, 200));
  }
  check("after the node came back the job is done", done !== null && done.content?.[0]?.text?.includes("heard: later"),
    done?.content?.[0]?.text);
  const sent = await client.callTool({ name: "mesh_send",
    arguments: { broadcast: true, text: "hello from an agent", workflow_id: "wf-mcp-send" } });
  check("mesh_send queues a message", !sent.isError && sent.structuredContent?.id?.length === 64);
  await client.close();
  process.exit(fails ? 1 : 0);
});
