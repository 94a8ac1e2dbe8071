// Where the full gateway's CPU goes per request, by function, under the proxy benchmark's load
// (`GET /changes/42` with a cached ES256 token, the audit log on with fsync = batch, the pool).
//
//   node_modules/.bin/bun bench/proxy/profile.ts [--duration 10] [--connections 50] [--interval 250] [--top 30] [--no-audit]
//
// The gateway runs under Bun's sampling profiler (`--cpu-prof`, one sample every
// `--interval` µs of the JS thread); only samples taken while wrk's measured run was under way
// count, and each function's time is divided by the requests wrk completed in that run. Native
// work the JS thread does (TLS, the socket calls, GC on the JS thread) shows as the JS function
// that called it or as `(program)`; other threads (GC helpers, JIT) are not sampled and appear
// only in the process's CPU µs/req from /proc.
// (valgrind's callgrind cannot stand in for instruction counts: valgrind 3.19 does not know the
// `epoll_pwait2` system call Bun's event loop uses, and the gateway hangs at start under it.)
//
// Every process is started here (the upstream and the gateway pinned to CPU 1, wrk to CPU 0) and
// stopped by its PID.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { bounded, cpuBudget, ensureInstalled, flag, runWrk, startProcess, stopProcess, type Started } from "./lib.ts";

const args = process.argv.slice(2);
const durationS = bounded(flag("duration", "10"), 2, 120);
const connections = bounded(flag("connections", "50"), 1, 1000);
const intervalUs = bounded(flag("interval", "250"), 50, 10_000);
const top = bounded(flag("top", "30"), 5, 200);
const noAudit = args.includes("--no-audit");
const budget = cpuBudget(!args.includes("--no-pin"));
const shape = { threads: 1, connections, durationS, warmupS: 3 };
const path = "/changes/42";

if (!ensureInstalled("wrk", "wrk")) throw new Error("wrk is needed (`apt-get install -y wrk`)");

const bun = process.execPath;
const here = import.meta.dir;
const dir = mkdtempSync(join(tmpdir(), "dutygate-profile-"));
const started: Started[] = [];

interface FunctionTime { name: string; where: string; selfUs: number; totalUs: number }

try {
  const upstream = await startProcess("upstream", [bun, join(here, "upstream.ts")], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
  started.push(upstream);
  const upstreamUrl = `http://127.0.0.1:${/^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]}`;
  const gatewayArgs = [join(here, "full-gateway.ts"), "--upstream", upstreamUrl, ...(noAudit ? ["--no-audit"] : [])];
  const cmd = [bun, "--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${intervalUs}`, ...gatewayArgs];
  const gateway = await startProcess("gateway", cmd, { cpu: budget?.serverCpu, ready: /^listening \d+/, timeoutMs: 20_000 });
  started.push(gateway);
  const port = /^listening (\d+)/.exec(gateway.lines.find((l) => l.startsWith("listening"))!)![1];
  const token = gateway.lines.find((l) => l.startsWith("token "))!.slice(6);
  const url = `https://127.0.0.1:${port}${path}`;
  const headers = [`authorization: Bearer ${token}`];

  await runWrk(url, headers, shape.warmupS, shape, budget);
  const from = Date.now() * 1000;
  const run = await runWrk(url, headers, durationS, shape, budget, { gateway: gateway.proc.pid });
  const to = Date.now() * 1000;
  if (run.errors > 0) throw new Error(`${run.errors} of ${run.requests} requests failed`);
  await stopProcess(gateway, 10_000);
  started.pop();

  const rows = cpuProfileRows(dir, from, to, run.requests);
  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(`\nfull gateway${noAudit ? " without the audit log" : ""}, GET ${path}: ${run.requests} requests in ${durationS} s (${run.rps.toFixed(0)} req/s), ${connections} connections; load average ${load}; Bun ${Bun.version}`);
  console.log(`process CPU (all threads, /proc): ${run.cpuUsPerRequest.gateway!.toFixed(1)} µs/req; sampled on the JS thread:`);
  printRows(rows.functions, rows.total);
  if (rows.parts.length > 0) {
    console.log("\nby part (self time of the functions of each file; native work counted under the file that called it):");
    printRows(rows.parts, rows.total, false);
  }
} finally {
  for (const s of started.reverse()) await stopProcess(s);
  rmSync(dir, { recursive: true, force: true });
}

function printRows(rows: FunctionTime[], total: number, withTotal = true): void {
  const unit = "µs/req";
  const digits = 2;
  console.log(`| ${withTotal ? "function" : "part"} | where | self ${unit} | self % |${withTotal ? ` inclusive ${unit} |` : ""}`);
  console.log(`|---|---|---|---|${withTotal ? "---|" : ""}`);
  for (const r of rows.slice(0, top)) {
    console.log(`| ${r.name} | ${r.where} | ${r.selfUs.toFixed(digits)} | ${((100 * r.selfUs) / total).toFixed(1)} |${withTotal ? ` ${r.totalUs.toFixed(digits)} |` : ""}`);
  }
  console.log(`| all sampled | | ${total.toFixed(digits)} | 100 |${withTotal ? " |" : ""}`);
}

/** The file or group a function's time is counted under in the "by part" table. */
function partOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "runtime (native)";
  const m = /\/(src|bench|dsl|node_modules)\/(.*)$/.exec(decodeURIComponent(url));
  if (!m) return basename(url);
  if (m[1] === "node_modules") return m[2]!.split("/")[0]!;
  return `${m[1]}/${m[2]}`;
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }

function cpuProfileRows(directory: string, from: number, to: number, requests: number): { functions: FunctionTime[]; parts: FunctionTime[]; total: number } {
  const file = readdirSync(directory).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error("the gateway wrote no CPU profile");
  const profile = JSON.parse(readFileSync(join(directory, file), "utf8")) as { nodes: ProfileNode[]; startTime: number; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: ProfileNode) => `${n.callFrame.functionName || "(anonymous)"}\u0000${n.callFrame.url}\u0000${n.callFrame.lineNumber}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const parts = new Map<string, number>();
  let sum = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i]!;
    // A sample stands for the time until the next one; a long gap is idle time, not this frame's.
    const span = profile.timeDeltas[i + 1] ?? 0;
    if (at < from || at > to || span > 10 * intervalUs) continue;
    const leaf = byId.get(profile.samples[i]!)!;
    if (leaf.callFrame.functionName === "(idle)") continue;
    sum += span;
    // A native frame (no url) is named with the nearest JavaScript function that called it:
    // `write` from the pool's socket and `write` from the audit log are different costs.
    let caller: ProfileNode | undefined;
    if (leaf.callFrame.url === "") {
      for (let id = parent.get(leaf.id); id !== undefined && caller === undefined; id = parent.get(id)) {
        const n = byId.get(id)!;
        if (n.callFrame.url !== "") caller = n;
      }
    }
    const leafKey = keyOf(leaf) + (caller === undefined ? "" : `\u0000${caller.callFrame.functionName || "(anonymous)"}\u0000${caller.callFrame.url}\u0000${caller.callFrame.lineNumber}`);
    self.set(leafKey, (self.get(leafKey) ?? 0) + span);
    const part = caller === undefined ? partOf(leaf.callFrame.url, leaf.callFrame.functionName) : partOf(caller.callFrame.url, caller.callFrame.functionName);
    parts.set(part, (parts.get(part) ?? 0) + span);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(byId.get(id)!);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + span);
    }
  }
  const functions = [...new Set([...total.keys(), ...self.keys()])].map((k) => {
    const [name, url, line, callerName, callerUrl, callerLine] = k.split("\u0000") as [string, string, string, string?, string?, string?];
    const where = url !== "" ? `${partOf(url, name)}:${Number(line) + 1}` : callerUrl !== undefined ? `native, from \`${callerName}\` ${partOf(callerUrl, callerName!)}:${Number(callerLine) + 1}` : "native";
    const inclusive = total.get(k) ?? self.get(k)!;
    return { name: `\`${name}\``, where, selfUs: (self.get(k) ?? 0) / requests, totalUs: inclusive / requests };
  }).filter((f) => f.selfUs > 0).sort((a, b) => b.selfUs - a.selfUs);
  const partRows = [...parts].map(([name, us]) => ({ name, where: "", selfUs: us / requests, totalUs: 0 })).sort((a, b) => b.selfUs - a.selfUs);
  return { functions, parts: partRows, total: sum / requests };
}
