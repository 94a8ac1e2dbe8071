// Where the full gateway's CPU goes per request, by function, under the proxy benchmark's load
// (`GET /changes/42` with a cached ES256 token, the audit log on with fsync = batch, the pool).
//
//   node_modules/.bin/bun bench/proxy/profile.ts [--duration 10] [--connections 50] [--interval 250] [--top 30] [--no-audit]
//                                                [--baseline DIR [--rounds 3]]
//
// `--baseline DIR`: the same for another checkout of dutygate (its bench/proxy/full-gateway.ts
// and src/) as "before": first both gateways unprofiled, measured in alternation for `--rounds`
// rounds (the process CPU per request to compare), then both profiled, again in alternation for
// `--rounds` rounds, and a table of the parts side by side.
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
import { bounded, cpuBudget, ensureInstalled, flag, median, runWrk, startProcess, stopProcess, type Started } from "./lib.ts";

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

const baseline = flag("baseline", "");
const rounds = bounded(flag("rounds", "3"), 1, 20);
const repo = join(here, "..", "..");
const trees = baseline === "" ? [{ label: "", dir: repo }] : [{ label: "before", dir: baseline }, { label: "after", dir: repo }];

interface Target { url: string; headers: string[]; pid: number }

/** Starts one tree's full gateway (profiled into `profileDir` when given) and waits until it listens. */
async function startGateway(treeDir: string, upstreamUrl: string, profileDir: string | null): Promise<{ started: Started; target: Target }> {
  const gatewayArgs = [join(treeDir, "bench", "proxy", "full-gateway.ts"), "--upstream", upstreamUrl, ...(noAudit ? ["--no-audit"] : [])];
  const cmd = profileDir === null ? [bun, ...gatewayArgs] : [bun, "--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-interval=${intervalUs}`, ...gatewayArgs];
  const gateway = await startProcess("gateway", cmd, { cpu: budget?.serverCpu, ready: /^listening \d+/, timeoutMs: 20_000 });
  const port = /^listening (\d+)/.exec(gateway.lines.find((l) => l.startsWith("listening"))!)![1];
  const token = gateway.lines.find((l) => l.startsWith("token "))!.slice(6);
  return { started: gateway, target: { url: `https://127.0.0.1:${port}${path}`, headers: [`authorization: Bearer ${token}`], pid: gateway.proc.pid } };
}

const profiles: Array<{ label: string; rows: ReturnType<typeof cpuProfileRows>; cpuUs: number; rps: number; requests: number }> = [];
const interleaved = new Map<string, number[]>(trees.map((t) => [t.label, []]));
try {
  const upstream = await startProcess("upstream", [bun, join(here, "upstream.ts")], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
  started.push(upstream);
  const upstreamUrl = `http://127.0.0.1:${/^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]}`;

  if (baseline !== "") {
    // The totals to compare: both gateways unprofiled, measured in alternation on the same load.
    const running: Array<{ label: string; started: Started; target: Target }> = [];
    for (const t of trees) {
      const g = await startGateway(t.dir, upstreamUrl, null);
      started.push(g.started);
      running.push({ label: t.label, ...g });
    }
    for (let r = 0; r < rounds; r++) {
      for (const g of running) {
        await runWrk(g.target.url, g.target.headers, 2, shape, budget);
        const run = await runWrk(g.target.url, g.target.headers, durationS, shape, budget, { gateway: g.target.pid });
        if (run.errors > 0) throw new Error(`${g.label}: ${run.errors} of ${run.requests} requests failed`);
        interleaved.get(g.label)!.push(run.cpuUsPerRequest.gateway!);
        console.error(`round ${r + 1}/${rounds}: ${g.label} ${run.cpuUsPerRequest.gateway!.toFixed(1)} µs/req (${run.rps.toFixed(0)} req/s)`);
      }
    }
    for (const g of running) { await stopProcess(g.started); started.splice(started.indexOf(g.started), 1); }
  }

  // Profiled: every tree's gateway runs under the profiler at once and they take turns under load
  // (one round each when alone), so each profile's windows share the machine's moments.
  const profiled: Array<{ label: string; profileDir: string; started: Started; target: Target; windows: Array<[number, number]>; requests: number; cpu: number[]; rps: number[] }> = [];
  for (const t of trees) {
    const profileDir = join(dir, t.label || "profile");
    const g = await startGateway(t.dir, upstreamUrl, profileDir);
    started.push(g.started);
    profiled.push({ label: t.label, profileDir, ...g, windows: [], requests: 0, cpu: [], rps: [] });
    await runWrk(g.target.url, g.target.headers, shape.warmupS, shape, budget);
  }
  for (let r = 0; r < (trees.length > 1 ? rounds : 1); r++) {
    for (const g of profiled) {
      await runWrk(g.target.url, g.target.headers, 1, shape, budget);
      const from = Date.now() * 1000;
      const run = await runWrk(g.target.url, g.target.headers, durationS, shape, budget, { gateway: g.target.pid });
      g.windows.push([from, Date.now() * 1000]);
      if (run.errors > 0) throw new Error(`${run.errors} of ${run.requests} requests failed`);
      g.requests += run.requests;
      g.cpu.push(run.cpuUsPerRequest.gateway!);
      g.rps.push(run.rps);
    }
  }
  for (const g of profiled) {
    await stopProcess(g.started, 10_000);
    started.splice(started.indexOf(g.started), 1);
    profiles.push({ label: g.label, rows: cpuProfileRows(g.profileDir, g.windows, g.requests), cpuUs: median(g.cpu), rps: median(g.rps), requests: g.requests });
  }
} finally {
  for (const s of started.reverse()) await stopProcess(s);
  rmSync(dir, { recursive: true, force: true });
}

const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
console.log(`\nfull gateway${noAudit ? " without the audit log" : ""}, GET ${path}, ${connections} connections, ${durationS} s runs; load average at the end ${load}; Bun ${Bun.version}`);
if (baseline !== "") {
  const b = median(interleaved.get("before")!);
  const a = median(interleaved.get("after")!);
  const ratios = interleaved.get("after")!.map((x, i) => x / interleaved.get("before")![i]!);
  console.log(`\nprocess CPU (all threads, /proc), unprofiled, median of ${rounds} interleaved rounds: before ${b.toFixed(1)} µs/req, after ${a.toFixed(1)} µs/req; after/before per round: ${ratios.map((x) => x.toFixed(3)).join(", ")} (median ${median(ratios).toFixed(3)})`);
}
for (const p of profiles) {
  console.log(`\n${p.label === "" ? "profile" : `profile, ${p.label}`}: ${p.requests} requests (median ${p.rps.toFixed(0)} req/s), process CPU ${p.cpuUs.toFixed(1)} µs/req (median) with the profiler on; sampled on the JS thread:`);
  printRows(p.rows.functions, p.rows.total);
  if (trees.length === 1) {
    console.log("\nby part (self time of the functions of each file; native work counted under the file that called it):");
    printRows(p.rows.parts, p.rows.total, false);
  }
}
if (profiles.length === 2) {
  const [before, after] = profiles as [typeof profiles[0], typeof profiles[0]];
  const names = [...new Set([...before.rows.parts, ...after.rows.parts].map((r) => r.name))];
  const of = (rows: FunctionTime[], name: string) => rows.find((r) => r.name === name)?.selfUs ?? 0;
  names.sort((x, y) => Math.max(of(before.rows.parts, y), of(after.rows.parts, y)) - Math.max(of(before.rows.parts, x), of(after.rows.parts, x)));
  // The sampler's time is wall time between samples: on a loaded machine it runs ahead of the CPU
  // time. Shares of the samples are comparable between runs; so is a share times the unprofiled
  // process CPU per request, which is how the µs columns below are estimated.
  const cpuOf = (label: string) => median(interleaved.get(label) ?? []);
  const est = (share: number, label: string) => (Number.isFinite(cpuOf(label)) ? (share * cpuOf(label)).toFixed(1) : "n/a");
  console.log("\nby part, share of the JS thread's samples (self time of each file's functions; native work under the file that called it), and that share of the unprofiled process CPU per request:");
  console.log("| part | before % | after % | before ≈ µs/req | after ≈ µs/req |");
  console.log("|---|---|---|---|---|");
  for (const name of names.slice(0, top)) {
    const b = of(before.rows.parts, name) / before.rows.total;
    const a = of(after.rows.parts, name) / after.rows.total;
    console.log(`| ${name} | ${(b * 100).toFixed(1)} | ${(a * 100).toFixed(1)} | ${est(b, "before")} | ${est(a, "after")} |`);
  }
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

function cpuProfileRows(directory: string, windows: ReadonlyArray<readonly [number, number]>, requests: number): { functions: FunctionTime[]; parts: FunctionTime[]; total: number } {
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
    if (span > 10 * intervalUs || !windows.some(([from, to]) => at >= from && at <= to)) continue;
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
