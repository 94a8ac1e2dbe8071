// Start-up and memory of `gateway serve`, as a bare VM runs it (`env -i PATH=/usr/bin:/bin`):
//   - time from spawn to the first served HTTPS request (a real token, forwarded upstream),
//     median of 20 starts, for the compiled binary and from source (`bun src/main.ts`);
//   - binary size; idle RSS; RSS after 100k requests (bounded: count and a time cap);
//   - request rate with the JIT and under W^X (what MemoryDenyWriteExecute=yes does), when cc exists.
// Targets: start ≤ 150 ms, idle RSS ≤ 100 MB, RSS growth after 100k requests ≤ 20%.
//
//   npx bun bench/startup.bench.ts [--runs 20] [--requests 100000] [--start-only]
//
// Every start time is reported twice: wall time (spawn → first 200) and the CPU time the process
// used by then. On a shared machine wall time includes waiting for a core; CPU time does not.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { buildCommit, REPO_ROOT } from "../scripts/build.ts";
import { EXAMPLE_POLICY_FILES } from "../src/init/mod.ts";
import { binaryUnderTest, BARE_ENV, writeTestConfig } from "../test/binary/support.ts";
import { createTestIssuer, startTestUpstream, TEST_AUDIENCE, TEST_ISSUER } from "../test/support/harness.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg("runs", 20);
/** Only the start-up rows (no 100k-request load, no W^X run). */
const START_ONLY = process.argv.includes("--start-only");
const REQUESTS = arg("requests", 100_000);
const LOAD_CAP_MS = 180_000;
const CONCURRENCY = 32;

const work = mkdtempSync(join(tmpdir(), "dutygate-startup-"));
process.once("exit", () => rmSync(work, { recursive: true, force: true }));
const issuer = await createTestIssuer(work);
const upstream = startTestUpstream();
const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { ttlSeconds: 3600 });

/** A fresh site per start: its own state (so every start pays for the first-start work it would on a VM, except the one-time certificate). */
function site(name: string): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "policies"), { recursive: true });
  for (const f of EXAMPLE_POLICY_FILES) writeFileSync(join(dir, "policies", f.path), f.text);
  writeFileSync(join(dir, "issuer.jwks"), readFileSync(issuer.jwksFile));
  writeTestConfig(dir, { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, upstreamUrl: upstream.url });
  return dir;
}

interface Started { child: ReturnType<typeof Bun.spawn>; url: string; firstServedMs: number; cpuMs: number; ca: string }

/**
 * CPU time (all threads, on-CPU nanoseconds from /proc/PID/task/*\/schedstat) the process has
 * used: on a shared, loaded machine this is the start-up cost that wall time hides in queueing.
 */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]); } catch { /* thread ended */ }
  }
  return ns / 1e6;
}

/** Spawns `command serve --config gateway.toml` and times spawn → first 200 through the gateway. */
async function startAndServeOne(command: string[], dir: string): Promise<Started> {
  const t0 = performance.now();
  const child = Bun.spawn([...command, "serve", "--config", "gateway.toml"], { cwd: dir, env: { ...BARE_ENV }, stdout: "pipe", stderr: "ignore" });
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  let url: string | null = null;
  const deadline = Date.now() + 30_000;
  while (!url && Date.now() < deadline) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`gateway exited before serving:\n${out}`);
    out += decoder.decode(value, { stream: true });
    url = /dutygate listening on (https:\/\/\S+)/.exec(out)?.[1] ?? null;
  }
  void (async () => { for (;;) if ((await reader.read()).done) return; })();
  if (!url) throw new Error("no banner within 30 s");
  const ca = readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8");
  const res = await fetch(`${url}/changes/1`, { headers: { authorization: `Bearer ${token}` }, tls: { ca } } as RequestInit);
  if (res.status !== 200) throw new Error(`first request answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
  const firstServedMs = performance.now() - t0;
  return { child, url, firstServedMs, cpuMs: cpuMs(child.pid), ca };
}

async function stop(child: Started["child"]): Promise<void> {
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await child.exited;
  clearTimeout(timer);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

async function timeStarts(label: string, command: string[]): Promise<{ wall: number[]; cpu: number[] }> {
  const times: number[] = [];
  const cpu: number[] = [];
  // One warm-up start creates the self-signed certificate and warms the page cache; every
  // measured start then reuses that state directory, as a restarted service does.
  const dir = site(label);
  await stop((await startAndServeOne(command, dir)).child);
  for (let i = 0; i < RUNS; i++) {
    const s = await startAndServeOne(command, dir);
    times.push(s.firstServedMs);
    cpu.push(s.cpuMs);
    await stop(s.child);
  }
  return { wall: times, cpu };
}

/** Sends `count` requests with `CONCURRENCY` workers (bounded by LOAD_CAP_MS); returns requests/s and how many were sent. */
async function load(s: Started, count: number): Promise<{ rps: number; sent: number; failed: number }> {
  let next = 0;
  let failed = 0;
  const until = Date.now() + LOAD_CAP_MS;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < count && Date.now() < until) {
      const n = next++;
      const res = await fetch(`${s.url}/changes/${n % 1000}`, { headers: { authorization: `Bearer ${token}` }, tls: { ca: s.ca } } as RequestInit);
      await res.arrayBuffer();
      if (res.status !== 200) failed++;
    }
  }));
  return { rps: next / ((performance.now() - t0) / 1000), sent: next, failed };
}

const commit = buildCommit();
const bin = binaryUnderTest(commit);
const bun = join(REPO_ROOT, "node_modules", ".bin", "bun");
const rows: Array<[string, string, string, string]> = [];
const ok = (good: boolean) => (good ? "ok" : "MISSED");

const binaryTimes = await timeStarts("binary", [bin.path]);
const sourceTimes = await timeStarts("source", [bun, join(REPO_ROOT, "src", "main.ts")]);
const binaryMedian = median(binaryTimes.wall);
const sourceMedian = median(sourceTimes.wall);
const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
rows.push(["start → first served request, binary: wall (median of " + RUNS + ")", `${binaryMedian.toFixed(0)} ms`, "≤ 150 ms", `${ok(binaryMedian <= 150)}; range ${range(binaryTimes.wall)} ms`]);
rows.push(["start → first served request, binary: CPU, all threads (median)", `${median(binaryTimes.cpu).toFixed(0)} ms`, "", `range ${range(binaryTimes.cpu)} ms`]);
rows.push(["start → first served request, npx bun src/main.ts: wall", `${sourceMedian.toFixed(0)} ms`, "", `binary is ${(sourceMedian / binaryMedian).toFixed(2)}× faster`]);
rows.push(["start → first served request, npx bun src/main.ts: CPU", `${median(sourceTimes.cpu).toFixed(0)} ms`, "", `range ${range(sourceTimes.cpu)} ms`]);
rows.push(["binary size (linux-x64)", `${(statSync(bin.path).size / 1024 / 1024).toFixed(1)} MiB`, "", ""]);
if (!START_ONLY) await measureMemoryAndWx();
upstream.stop();

/** Idle RSS, RSS after two rounds of load, and the request rate with the JIT and under W^X. */
async function measureMemoryAndWx(): Promise<void> {
  const s = await startAndServeOne([bin.path], site("memory"));
  await load(s, 1000); // warm: JIT, pools, caches
  await Bun.sleep(2000);
  const idle = rssMiB(s.child.pid);
  const loaded = await load(s, REQUESTS);
  await Bun.sleep(2000);
  const after = rssMiB(s.child.pid);
  const growth = (after - idle) / idle;
  // A second round of the same load tells warm-up (heap and JIT code reaching their working size)
  // from a leak (growing again by about as much).
  const loaded2 = await load(s, REQUESTS);
  await Bun.sleep(2000);
  const after2 = rssMiB(s.child.pid);
  await stop(s.child);
  rows.push(["idle RSS (after 1k warm-up requests)", `${idle.toFixed(1)} MiB`, "≤ 100 MB", ok(idle * 1.048576 <= 100)]);
  rows.push([`RSS after ${loaded.sent} more requests (${CONCURRENCY} concurrent, ${loaded.failed} failed)`, `${after.toFixed(1)} MiB`, "≤ +20%", `${(growth * 100).toFixed(1)}% ${ok(growth <= 0.2)}`]);
  rows.push([`RSS after another ${loaded2.sent} requests (${loaded2.failed} failed)`, `${after2.toFixed(1)} MiB`, "", `${(((after2 - after) / after) * 100).toFixed(1)}% over the first round`]);
  rows.push(["request rate during that load, binary", `${loaded.rps.toFixed(0)} req/s`, "", ""]);

  const cc = Bun.which("cc");
  if (cc) {
    const launcher = join(work, "mdwe");
    writeFileSync(`${launcher}.c`, `#include <sys/prctl.h>\n#include <unistd.h>\n#include <stdio.h>\nint main(int c, char **v) { if (prctl(65, 1, 0, 0, 0)) { perror("prctl"); return 125; } execv(v[1], v + 1); return 126; }\n`);
    if (Bun.spawnSync([cc, "-o", launcher, `${launcher}.c`]).exitCode === 0) {
      const n = Math.min(REQUESTS, 20_000);
      const jit = await startAndServeOne([bin.path], site("jit"));
      await load(jit, 1000);
      const withJit = await load(jit, n);
      await stop(jit.child);
      const wx = await startAndServeOne([launcher, bin.path], site("wx"));
      await load(wx, 1000);
      const underWx = await load(wx, n);
      const wxRss = rssMiB(wx.child.pid);
      await stop(wx.child);
      rows.push([`request rate, ${n} requests, JIT on`, `${withJit.rps.toFixed(0)} req/s`, "", ""]);
      rows.push([`request rate, ${n} requests, under W^X (MemoryDenyWriteExecute=yes)`, `${underWx.rps.toFixed(0)} req/s`, "", `${(withJit.rps / underWx.rps).toFixed(2)}× slower; RSS ${wxRss.toFixed(0)} MiB`]);
    }
  }
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log(`dutygate start-up and memory — ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Linux, Bun ${Bun.version}, commit ${commit}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
console.log(`${"measure".padEnd(width)}  ${"value".padStart(12)}  ${"target".padEnd(9)}  result`);
for (const [what, value, target, result] of rows) console.log(`${what.padEnd(width)}  ${value.padStart(12)}  ${target.padEnd(9)}  ${result}`);
console.log(`start times (ms), binary, wall: ${binaryTimes.wall.map((t) => t.toFixed(0)).join(" ")}`);
console.log(`start times (ms), binary, CPU:  ${binaryTimes.cpu.map((t) => t.toFixed(0)).join(" ")}`);
console.log(`start times (ms), source, wall: ${sourceTimes.wall.map((t) => t.toFixed(0)).join(" ")}`);
console.log(`start times (ms), source, CPU:  ${sourceTimes.cpu.map((t) => t.toFixed(0)).join(" ")}`);
process.exit(0);
