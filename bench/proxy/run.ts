// Proxy benchmark: how much latency and throughput the gateway's HTTP layer costs.
//
//   node_modules/.bin/bun bench/proxy/run.ts [--duration 10] [--connections 50] [--threads 2]
//       [--path /bench/items/1] [--target https://127.0.0.1:8443/path] [--header "authorization: Bearer …"]…
//
// Scenarios, each under the same load (wrk; installed with apt-get when missing, else autocannon):
//   upstream      the tiny upstream directly (plain HTTP, loopback)
//   tls-answer    a Bun.serve TLS server that normalises the path, mints a request id and answers itself
//   tls-forward   the same plus an identity token (cached) and forwardToUpstream to the upstream
//   target        with --target: any URL, e.g. the full gateway pointed at this upstream (see --upstream-port)
// Prints a table with req/s, p50, p99 and the latency each adds over the upstream alone.
import { cpus, totalmem } from "node:os";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

const here = import.meta.dir;
const args = process.argv.slice(2);
function flag(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}
function flags(name: string): string[] {
  const out: string[] = [];
  args.forEach((a, i) => { if (a === `--${name}` && args[i + 1] !== undefined) out.push(args[i + 1]!); });
  return out;
}

const durationS = Math.min(Math.max(Number(flag("duration", "10")), 1), 120);
const connections = Math.min(Math.max(Number(flag("connections", "50")), 1), 1000);
const threads = Math.min(Math.max(Number(flag("threads", "2")), 1), 16);
const path = flag("path", "/bench/items/1");
const target = flag("target", "");
const targetHeaders = flags("header");
const upstreamPort = flag("upstream-port", "0");
const warmupS = 2;

type LoadTool = { kind: "wrk"; bin: string } | { kind: "autocannon"; bin: string };

function which(bin: string): string | null {
  const found = Bun.which(bin);
  return found ?? null;
}

function findLoadTool(): LoadTool | null {
  let wrk = which("wrk");
  if (!wrk && which("apt-get") && process.getuid?.() === 0) {
    console.error("wrk not found: installing it with apt-get …");
    const install = () => Bun.spawnSync(["apt-get", "install", "-y", "wrk"], { stdout: "ignore", stderr: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }).exitCode === 0;
    if (!install()) {
      Bun.spawnSync(["apt-get", "update"], { stdout: "ignore", stderr: "ignore" });
      install();
    }
    wrk = which("wrk");
  }
  if (wrk) return { kind: "wrk", bin: wrk };
  const local = join(here, "../../node_modules/.bin/autocannon");
  const autocannon = existsSync(local) ? local : which("autocannon");
  if (autocannon) return { kind: "autocannon", bin: autocannon };
  return null;
}

/** Starts a bench process and waits (bounded) for its `listening <port>` line. */
async function startProcess(script: string, extra: string[]): Promise<{ proc: Subprocess<"ignore", "pipe", "inherit">; port: number }> {
  const proc = Bun.spawn([process.execPath, join(here, script), ...extra], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const next = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => null)]);
    if (next === null || next.done) break;
    text += decoder.decode(next.value);
    const m = /listening (\d+)/.exec(text);
    if (m) { reader.releaseLock(); return { proc, port: Number(m[1]) }; }
  }
  proc.kill();
  throw new Error(`${script} did not start: ${text}`);
}

interface Result { rps: number; p50Ms: number; p99Ms: number; errors: number; requests: number }

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : NaN;
}

async function runTool(tool: LoadTool, url: string, headers: string[], seconds: number): Promise<Result> {
  const cmd = tool.kind === "wrk"
    ? [tool.bin, "-t", String(threads), "-c", String(connections), "-d", `${seconds}s`, "--latency", "--timeout", "5s", ...headers.flatMap((h) => ["-H", h]), url]
    : [tool.bin, "-j", "-c", String(connections), "-d", String(seconds), ...headers.flatMap((h) => ["-H", h]), url];
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: "0" } });
  const killer = setTimeout(() => proc.kill(), (seconds + 30) * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  if (tool.kind === "autocannon") {
    const json = JSON.parse(out) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
    return { rps: json.requests.average, p50Ms: json.latency.p50, p99Ms: json.latency.p99, errors: json.errors + json.non2xx, requests: json.requests.total };
  }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const pct = (p: string) => { const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out); return m ? toMs(m[1]!, m[2]!) : NaN; };
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk output:\n${out}\n${err}`);
  return { rps, p50Ms: pct("50"), p99Ms: pct("99"), errors, requests };
}

async function measure(tool: LoadTool, name: string, url: string, headers: string[] = []): Promise<[string, Result]> {
  await runTool(tool, url, headers, warmupS);
  console.error(`  ${name}: ${url} (${durationS} s) …`);
  return [name, await runTool(tool, url, headers, durationS)];
}

const tool = findLoadTool();
if (!tool) {
  console.error("no load generator: install wrk (`apt-get install -y wrk`) or autocannon (`npm install -g autocannon`)");
  process.exit(2);
}

const started: Subprocess[] = [];
const results: [string, Result][] = [];
try {
  const upstream = await startProcess("upstream.ts", [upstreamPort]);
  started.push(upstream.proc);
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  console.error(`upstream on ${upstreamUrl}; load: ${tool.kind}, ${connections} connections, ${threads} threads`);
  results.push(await measure(tool, "upstream", upstreamUrl + path));

  for (const mode of ["answer", "forward"] as const) {
    const gateway = await startProcess("gateway.ts", ["--upstream", upstreamUrl, "--mode", mode]);
    started.push(gateway.proc);
    results.push(await measure(tool, `tls-${mode}`, `https://127.0.0.1:${gateway.port}${path}`));
    gateway.proc.kill();
    await gateway.proc.exited;
  }
  if (target) results.push(await measure(tool, "target", target, targetHeaders));
} finally {
  for (const proc of started) if (proc.exitCode === null) proc.kill();
}

const base = results[0]![1];
const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const cpu = cpus();
console.log(`\nmachine: ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; runtime: Bun ${Bun.version}; load: ${tool.kind}, ${connections} connections, ${threads} threads, ${durationS} s after ${warmupS} s warm-up; path ${path}\n`);
console.log("scenario      req/s      p50 ms   p99 ms   +p50 ms  +p99 ms  req/s vs upstream  errors");
for (const [name, r] of results) {
  console.log(
    `${name.padEnd(12)} ${fmt(r.rps, 0).padStart(8)}  ${fmt(r.p50Ms).padStart(8)} ${fmt(r.p99Ms).padStart(8)}  ${fmt(r.p50Ms - base.p50Ms).padStart(8)} ${fmt(r.p99Ms - base.p99Ms).padStart(8)}  ${fmt(r.rps / base.rps).padStart(17)}  ${r.errors}`,
  );
}
console.log("\n(upstream, load generator and gateway share this machine's cores: compare the rows, not the absolute numbers)");
