// What separation of duties costs per request, on the shipped policy:
//   - unguarded: `GET /changes/:change` (read_change, no `separate`) — decide only;
//   - guarded, allowed: `POST /changes/:change/submit` — decide + ledger reserve + confirm (SQLite);
//   - guarded, denied: the same person's approve of a change they submitted — decide + reserve (conflict);
//   - ledger write throughput: reserve + confirm pairs per second, one at a time, on a growing file.
// The ratio column compares each row's p50 with the unguarded decision.
// Run: node_modules/.bin/bun bench/sod.bench.ts   (or: deno run -A bench/sod.bench.ts)
// Options: --iterations 20000
import { cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { compilePolicy, coercePrincipal, loadPolicy, parseIp, type CompiledPolicy, type PolicyRequest, type Principal } from "../dsl/mod.ts";
import { openSqliteLedger, type DutyLedger } from "../src/ledger/mod.ts";

declare const Deno: { version: { deno: string } } | undefined;

const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const ITERATIONS = Number(argValue("--iterations") ?? 20_000);
const WARMUP = Math.min(2000, ITERATIONS);
const POLICY_DIR = resolve(new URL(".", import.meta.url).pathname, "../policies");

function loadShipped(): CompiledPolicy {
  const sources = readdirSync(POLICY_DIR).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: `policies/${f}`, text: readFileSync(join(POLICY_DIR, f), "utf8") }));
  const { policy, diagnostics } = loadPolicy(sources);
  if (!policy) throw new Error(`shipped policy does not load: ${diagnostics.map((d) => d.message).join("; ")}`);
  return compilePolicy(policy);
}

function principal(compiled: CompiledPolicy, sub: string, roles: string[]): Principal {
  const r = coercePrincipal(compiled.policy.schema, { sub, roles, mfa: true, team: "core" });
  if (!r.ok) throw new Error(r.message);
  return r.principal;
}

const IP = parseIp("10.1.2.3")!;
const request = (method: string, path: string): PolicyRequest => ({ method, path, ip: IP, time: Date.now(), headers: { "user-agent": "bench" }, query: {} });

function percentile(sortedNs: Float64Array, p: number): number {
  return sortedNs[Math.min(sortedNs.length - 1, Math.floor((p / 100) * sortedNs.length))]! / 1000;
}

interface Row { name: string; p50: number; p99: number; opsPerSec: number }

/** Runs `one(i)` WARMUP + ITERATIONS times, one at a time; returns µs percentiles of the measured ones. */
async function measure(name: string, one: (i: number) => Promise<void> | void): Promise<Row> {
  for (let i = 0; i < WARMUP; i++) await one(-1 - i);
  const samples = new Float64Array(ITERATIONS);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = process.hrtime.bigint();
    await one(i);
    samples[i] = Number(process.hrtime.bigint() - t0);
  }
  const totalNs = Number(process.hrtime.bigint() - start);
  samples.sort();
  return { name, p50: percentile(samples, 50), p99: percentile(samples, 99), opsPerSec: ITERATIONS / (totalNs / 1e9) };
}

const compiled = loadShipped();
const developer = principal(compiled, "alice", ["developer"]);
const dualRole = principal(compiled, "pat", ["developer", "reviewer"]);
const root = mkdtempSync(join(tmpdir(), "dutygate-sod-bench-"));
const rows: Row[] = [];
let ledger: DutyLedger | null = null;
try {
  ledger = await openSqliteLedger({ path: join(root, "ledger.sqlite"), retentionDays: 90 });
  const l = ledger;

  rows.push(await measure("unguarded: decide (read_change)", (i) => {
    const d = compiled.decide("operational", developer, request("GET", `/changes/r${i}`));
    if (!d.allow || d.separations.length) throw new Error("expected an unguarded allow");
  }));

  rows.push(await measure("guarded: decide only (submit_change)", (i) => {
    const d = compiled.decide("operational", developer, request("POST", `/changes/d${i}/submit`));
    if (!d.allow || d.separations.length !== 1) throw new Error("expected a guarded allow");
  }));

  rows.push(await measure("guarded allow: decide + reserve + confirm", async (i) => {
    const d = compiled.decide("operational", developer, request("POST", `/changes/g${i}/submit`));
    const r = await l.reserve({ checks: d.separations, duty: d.duty!, sub: developer.sub, at: Date.now() });
    if (!r.ok) throw new Error("unexpected conflict");
    await l.confirm(r.reservation);
  }));

  // Each iteration denies: pat submitted change s<i> (recorded outside the timing), then approves it.
  const submitted = async (i: number) => {
    const d = compiled.decide("operational", dualRole, request("POST", `/changes/s${i}/submit`));
    const r = await l.reserve({ checks: d.separations, duty: d.duty!, sub: dualRole.sub, at: Date.now() });
    if (r.ok) await l.confirm(r.reservation);
  };
  for (let i = -WARMUP; i < ITERATIONS; i++) await submitted(i);
  rows.push(await measure("guarded deny: decide + reserve (conflict)", async (i) => {
    const d = compiled.decide("operational", dualRole, request("POST", `/changes/s${i}/approve`));
    const r = await l.reserve({ checks: d.separations, duty: d.duty!, sub: dualRole.sub, at: Date.now() });
    if (r.ok) throw new Error("expected a conflict");
  }));

  rows.push(await measure("ledger write: reserve + confirm only", async (i) => {
    const r = await l.reserve({ checks: [{ constraint: "separate:bench", param: "change", key: `w${i}`, duties: ["submit_change", "approve_change"] }], duty: "submit_change", sub: `user${i % 1000}`, at: Date.now() });
    if (!r.ok) throw new Error("unexpected conflict");
    await l.confirm(r.reservation);
  }));
  const entries = await l.size();

  const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : `node ${process.version}`;
  const cpu = cpus();
  console.log(`separation of duties per request — ${runtime}, ${platform()} ${release()}, ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average ${loadavg().map((n) => n.toFixed(2)).join(" ")}`);
  console.log(`shipped policy; SQLite ledger in ${tmpdir()} (WAL, synchronous=NORMAL), ${entries.toLocaleString("en-US")} entries at the end; ${ITERATIONS.toLocaleString("en-US")} calls per row after ${WARMUP.toLocaleString("en-US")} warm-up, one at a time\n`);
  const base = rows[0]!.p50;
  const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const header = ["path", "p50 µs", "p99 µs", "calls/s", "p50 vs unguarded"];
  const table = rows.map((r) => [r.name, f(r.p50), f(r.p99), Math.round(r.opsPerSec).toLocaleString("en-US"), `${(r.p50 / base).toFixed(1)}×`]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (row: string[]) => "| " + row.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const row of table) console.log(line(row));
} finally {
  await ledger?.close();
  rmSync(root, { recursive: true, force: true });
}
