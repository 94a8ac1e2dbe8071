// Shared pieces of the proxy benchmarks (run.ts, ../proxy-peers/run.ts): the load generator,
// CPU pinning, processes started and stopped by PID, wrk output, CPU time per request, tables.
import { cpus, totalmem } from "node:os";
import { readdirSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { killGroupOnExit, killProcessGroup } from "../../test/support/process-group.ts";

/** Fixed load shape of every run: stated in every table. */
export interface LoadShape {
  threads: number;
  connections: number;
  durationS: number;
  warmupS: number;
}

/**
 * The CPU budget: wrk on one core, every server process (upstream and proxy) on the other, so
 * each proxy gets the same single core it shares with the same upstream. `null` when taskset or a
 * second core is missing: then everything shares everything, and the table says so.
 */
export interface CpuBudget {
  loadCpu: string;
  serverCpu: string;
}

export function which(bin: string): string | null {
  return Bun.which(bin) ?? Bun.which(bin, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }) ?? null;
}

export function cpuBudget(wanted: boolean): CpuBudget | null {
  if (!wanted || !which("taskset") || cpus().length < 2) return null;
  return { loadCpu: "0", serverCpu: "1" };
}

/** Installs Debian packages when a binary is missing (root with apt-get only). True when `bin` is there afterwards. */
export function ensureInstalled(bin: string, pkg: string): boolean {
  if (which(bin)) return true;
  if (!which("apt-get") || process.getuid?.() !== 0) return false;
  console.error(`${bin} not found: installing \`${pkg}\` with apt-get …`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => Bun.spawnSync(["apt-get", "install", "-y", pkg], { stdout: "ignore", stderr: "ignore", env, timeout: 300_000 }).exitCode === 0;
  if (!install()) {
    Bun.spawnSync(["apt-get", "update"], { stdout: "ignore", stderr: "ignore", env, timeout: 300_000 });
    install();
  }
  return which(bin) !== null;
}

/** A process this benchmark started; stopped by its PID only. */
export interface Started {
  name: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Lines it printed on stdout so far. */
  lines: string[];
}

function pinned(cmd: string[], cpu: string | undefined): string[] {
  return cpu === undefined ? cmd : ["taskset", "-c", cpu, ...cmd];
}

/**
 * Starts `cmd` (pinned to `cpu` when given) and waits, bounded, until `ready` matches a stdout line
 * (or, with a `port`, until the port accepts connections).
 */
export async function startProcess(name: string, cmd: string[], options: { cpu?: string; ready?: RegExp; port?: number; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Started> {
  // Its own process group, killed by its PID whatever happens (also when this process exits early).
  const proc = Bun.spawn(pinned(cmd, options.cpu), { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...options.env }, detached: true });
  killGroupOnExit(proc.pid);
  const started: Started = { name, proc, lines: [] };
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let stderr = "";
  void (async () => {
    const decoder = new TextDecoder();
    const errReader = proc.stderr.getReader();
    for (;;) {
      const next = await errReader.read();
      if (next.done) return;
      stderr = (stderr + decoder.decode(next.value)).slice(-4000);
    }
  })().catch(() => {});
  const reader = proc.stdout.getReader();
  void (async () => {
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const next = await reader.read();
      if (next.done) return;
      text += decoder.decode(next.value);
      const parts = text.split("\n");
      text = parts.pop()!;
      started.lines.push(...parts);
    }
  })().catch(() => {});
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    if (options.ready && started.lines.some((l) => options.ready!.test(l))) return started;
    if (options.port !== undefined && (await portAccepts(options.port))) return started;
    await Bun.sleep(50);
  }
  await stopProcess(started);
  throw new Error(`${name} did not start (${cmd.join(" ")}):\n${started.lines.join("\n")}\n${stderr}`);
}

async function portAccepts(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM to this one PID, then SIGKILL to its process group after a bound; waits for it to exit,
 * then kills whatever is left in its group (a supervisor's workers, nginx's worker).
 */
export async function stopProcess(started: Started, graceMs = 5000): Promise<void> {
  const { proc } = started;
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill("SIGTERM");
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
    if (!exited) {
      killProcessGroup(proc.pid);
      await proc.exited;
    }
  }
  killProcessGroup(proc.pid);
}

function ownCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc_pid_stat(5) (utime, stime), counted from after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter((s) => s !== "").map(Number));
    } catch { /* thread gone */ }
  }
  return out;
}

/**
 * User+system CPU seconds of one PID with all its threads and its child processes (nginx's
 * workers, the upstream under `taskset`), from Linux /proc; NaN elsewhere.
 */
export function cpuSeconds(pid: number, depth = 0): number {
  try {
    let total = ownCpuSeconds(pid);
    if (depth < 3) for (const child of childrenOf(pid)) total += cpuSeconds(child, depth + 1) || 0;
    return total;
  } catch {
    return NaN;
  }
}

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  requests: number;
  /** CPU time each watched server process spent per request, in µs. */
  cpuUsPerRequest: Record<string, number>;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : NaN;
}

/** Runs wrk once (pinned to the load core) and parses its report. */
export async function runWrk(url: string, headers: string[], seconds: number, shape: LoadShape, budget: CpuBudget | null, watch: Record<string, number> = {}, script?: string): Promise<LoadResult> {
  const wrk = which("wrk");
  if (!wrk) throw new Error("wrk is not installed");
  // `script`: a wrk Lua file (`wrk.method = "POST"`), for requests other than GET.
  const cmd = pinned([wrk, "-t", String(shape.threads), "-c", String(shape.connections), "-d", `${seconds}s`, "--latency", "--timeout", "5s", ...(script ? ["-s", script] : []), ...headers.flatMap((h) => ["-H", h]), url], budget?.loadCpu);
  const before = Object.fromEntries(Object.entries(watch).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(proc.pid);
  const killer = setTimeout(() => killProcessGroup(proc.pid), (seconds + 30) * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  killProcessGroup(proc.pid);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(rps)) throw new Error(`could not read wrk output:\n${out}\n${err}`);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const cpuUsPerRequest = Object.fromEntries(Object.entries(watch).map(([name, pid]) => [name, ((cpuSeconds(pid) - before[name]!) * 1e6) / requests]));
  return { rps, p50Ms: pct("50"), p99Ms: pct("99"), errors, requests, cpuUsPerRequest };
}

export function median(values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

/** One line naming the machine, the runtimes and the load shape, printed above every table. */
export function describeMachine(shape: LoadShape, budget: CpuBudget | null, extra = ""): string {
  const cpu = cpus();
  const pinning = budget
    ? `wrk pinned to CPU ${budget.loadCpu}; upstream and proxy processes pinned together to CPU ${budget.serverCpu}`
    : "no pinning (taskset or a second core missing): load, upstream and proxy share every core";
  return [
    `machine: ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Bun ${Bun.version}${extra}`,
    `load: wrk ${shape.threads} thread(s), ${shape.connections} connections, ${shape.durationS} s per run after ${shape.warmupS} s warm-up; ${pinning}`,
  ].join("\n");
}

/** Sums a number column of rows keyed by name. */
export interface Row {
  name: string;
  runs: LoadResult[];
}

export function summarise(row: Row): { rps: number; p50Ms: number; p99Ms: number; errors: number; cpu: Record<string, number> } {
  const names = Object.keys(row.runs[0]?.cpuUsPerRequest ?? {});
  return {
    rps: median(row.runs.map((r) => r.rps)),
    p50Ms: median(row.runs.map((r) => r.p50Ms)),
    p99Ms: median(row.runs.map((r) => r.p99Ms)),
    errors: row.runs.reduce((a, r) => a + r.errors, 0),
    cpu: Object.fromEntries(names.map((n) => [n, median(row.runs.map((r) => r.cpuUsPerRequest[n] ?? NaN))])),
  };
}

/** `--name value` from the command line, or `fallback`. */
export function flag(name: string, fallback: string, args: readonly string[] = process.argv.slice(2)): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}

/** Every value of a flag that may be repeated (`--url A --url B`), in order. */
export function flags(name: string, args: readonly string[] = process.argv.slice(2)): string[] {
  return args.flatMap((a, i) => (a === `--${name}` && args[i + 1] !== undefined ? [args[i + 1]!] : []));
}

/** A whole number within [lo, hi] (lo for anything unparsable): every run stays bounded. */
export function bounded(value: string, lo: number, hi: number): number {
  return Math.min(Math.max(Math.trunc(Number(value)) || lo, lo), hi);
}

/** The load shape every proxy benchmark shares: `--threads`, `--connections`, `--duration`; 2 s warm-up. */
export function loadShapeFromArgs(): LoadShape {
  return {
    threads: bounded(flag("threads", "1"), 1, 16),
    connections: bounded(flag("connections", "50"), 1, 1000),
    durationS: bounded(flag("duration", "10"), 1, 120),
    warmupS: 2,
  };
}

/** What `rate-client.ts` reports for one open-loop run. */
export interface FixedRateResult {
  url: string;
  rate: number;
  /** Connections the client opened (16 before the schedule starts, more when all were busy). */
  connections: number;
  sent: number;
  ok: number;
  errors: number;
  lateStarts: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/**
 * One open-loop run at `rate` requests per second per URL (bench/proxy/rate-client.ts, pinned to
 * the load core): latency measured from when each request was due, whatever the server's pace.
 * Several URLs interleave on one schedule, so they are measured under the same conditions.
 */
export async function runFixedRate(urls: string[], headers: string[], rate: number, seconds: number, budget: CpuBudget | null): Promise<FixedRateResult[]> {
  const client = new URL("./rate-client.ts", import.meta.url).pathname;
  const cmd = pinned([process.execPath, client, ...urls.flatMap((u) => ["--url", u]), "--rate", String(rate), "--seconds", String(seconds), ...headers.flatMap((h) => ["--header", h])], budget?.loadCpu);
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(proc.pid);
  const killer = setTimeout(() => killProcessGroup(proc.pid), (seconds + 40) * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  killProcessGroup(proc.pid);
  const lines = out.trim().split("\n").filter((l) => l.startsWith("{"));
  try {
    const results = lines.map((l) => JSON.parse(l) as FixedRateResult);
    if (results.length !== urls.length) throw new Error(`${results.length} results for ${urls.length} URLs`);
    return results;
  } catch (error) {
    throw new Error(`could not read rate-client output (${String(error)}):\n${out}\n${err}`);
  }
}

/** Length of a complete response at the start of `b`, 0 if incomplete, -1 if unreadable. */
export function responseLength(b: Buffer): { length: number; status: number } {
  const headEnd = b.indexOf("\r\n\r\n");
  if (headEnd < 0) return { length: 0, status: 0 };
  const head = b.subarray(0, headEnd).toString("latin1");
  const status = Number(head.slice(9, 12));
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) {
    const length = headEnd + 4 + Number(cl[1]);
    return { length: b.length >= length ? length : 0, status };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const end = b.indexOf("\r\n0\r\n\r\n", headEnd + 2);
    return { length: end < 0 ? 0 : end + 7, status };
  }
  return { length: -1, status };
}
