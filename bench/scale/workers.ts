// The workers section of `bench:scale`: `gateway serve` with `listen.workers` 1 and 2, run as the
// operator runs it (the CLI, a config file, the supervisor and its worker processes), under wrk.
//
// On a 2-core machine the load generator, the upstream and the gateway cannot each have their own
// cores, so two settings are measured, each with 1 and 2 workers:
//   pinned    wrk on CPU 0; upstream and every gateway process on CPU 1 (as bench:proxy pins):
//             2 workers share one core, so the row shows what the process model costs per request
//             (it should cost nothing) rather than a gain;
//   unpinned  nothing pinned: the workers may use both cores, which wrk and the upstream share.
// Two paths: `GET /changes/42` (unguarded: policy, audit, forward) and `POST /changes/42/submit`
// (guarded: also a ledger reserve and confirm, a SQLite write shared by all workers).
// 1 and 2 workers run side by side and the rounds alternate between them.
// CPU µs per request: user+system time of the gateway's processes (supervisor and workers) over
// the requests wrk completed. Scaling efficiency: req/s with 2 workers ÷ (2 × req/s with 1),
// unpinned; and the CPU per request of 1 worker ÷ that of 2 (1.0: no per-request cost added).
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createTestIssuer, REPO_ROOT, SHIPPED_POLICIES, writeProcessConfig } from "../../test/support/harness.ts";
import {
  bounded, cpuBudget, describeMachine, ensureInstalled, flag, fmt, loadShapeFromArgs, runWrk, startProcess, stopProcess, summarise,
  type LoadResult, type Started,
} from "../proxy/lib.ts";

type Setting = "pinned" | "unpinned";
interface Case { path: "GET /changes/42" | "POST /changes/42/submit"; setting: Setting; workers: 1 | 2 }

const CASES: Case[] = (["GET /changes/42", "POST /changes/42/submit"] as const).flatMap((path) =>
  (["pinned", "unpinned"] as const).flatMap((setting) => ([1, 2] as const).map((workers) => ({ path, setting, workers }))));

const key = (c: Case) => `${c.path} ${c.setting} ${c.workers}`;

export async function runWorkersSection(): Promise<string[]> {
  if (!ensureInstalled("wrk", "wrk")) return ["no load generator: install wrk (`apt-get install -y wrk`)"];
  const shape = { ...loadShapeFromArgs(), durationS: bounded(flag("duration", "6"), 2, 60) };
  const rounds = bounded(flag("rounds", "2"), 1, 5);
  const budget = cpuBudget(!process.argv.includes("--no-pin"));
  const bun = process.execPath;
  const dir = mkdtempSync(join(tmpdir(), "dutygate-bench-scale-"));
  const started: Started[] = [];
  const results = new Map<string, LoadResult[]>();
  const post = join(dir, "post.lua");
  writeFileSync(post, 'wrk.method = "POST"\n');
  try {
    cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
    const issuer = await createTestIssuer(dir);
    // A developer submits; submitting again is the same duty by the same person, so every
    // request is allowed and reserves (and confirms) in the shared ledger.
    const token = await issuer.token({ sub: "bench-dev", roles: ["developer"], mfa: true, team: "core" }, { ttlSeconds: 3000 });
    const headers = [`authorization: Bearer ${token}`];
    for (const setting of ["pinned", "unpinned"] as const) {
      const cpu = setting === "pinned" ? budget?.serverCpu : undefined;
      if (setting === "pinned" && !budget) continue;
      const upstream = await startProcess(`upstream-${setting}`, [bun, join(REPO_ROOT, "bench/proxy/upstream.ts")], { cpu, ready: /^listening \d+/ });
      started.push(upstream);
      const upstreamUrl = `http://127.0.0.1:${/^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]}`;
      // Both gateways run side by side and the rounds alternate between them, so drift on a shared
      // machine hits 1 and 2 workers alike (the idle one costs a timer tick now and then).
      const gateways = new Map<1 | 2, { base: string; pid: number }>();
      for (const workers of [1, 2] as const) {
        const run = join(dir, `${setting}-${workers}`);
        mkdirSync(run);
        const config = writeProcessConfig(run, {
          upstreamUrl, issuer, policyDir: join(dir, "policies"), listenToml: `workers = ${workers}`,
          auditToml: `fsync = "batch"`,
        });
        const gateway = await startProcess(`gateway-${setting}-${workers}`, [bun, join(REPO_ROOT, "src/main.ts"), "serve", "--config", config], { cpu, ready: /^dutygate listening on /, timeoutMs: 60_000 });
        started.push(gateway);
        gateways.set(workers, { base: /dutygate listening on (https:\/\/\S+)/.exec(gateway.lines.join("\n"))![1]!, pid: gateway.proc.pid });
      }
      const cases = (["GET /changes/42", "POST /changes/42/submit"] as const).flatMap((path) => ([1, 2] as const).map((workers): Case => ({ path, setting, workers })));
      for (const c of cases) {
        const check = await fetch(gateways.get(c.workers)!.base + c.path.split(" ")[1], { method: c.path.split(" ")[0], headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
        await check.arrayBuffer();
        if (check.status !== 200) throw new Error(`${key(c)}: answered ${check.status}`);
      }
      for (let round = 1; round <= rounds; round++) {
        for (const c of cases) {
          const gateway = gateways.get(c.workers)!;
          const url = gateway.base + c.path.split(" ")[1];
          const script = c.path.startsWith("POST") ? post : undefined;
          const watch = { gateway: gateway.pid, upstream: upstream.proc.pid };
          // Each worker gets the warm-up one process gets (its own JIT, caches and pool to warm).
          await runWrk(url, headers, shape.warmupS * c.workers, shape, budget, {}, script);
          console.error(`workers: ${key(c)} round ${round}/${rounds} (${shape.durationS} s) …`);
          results.set(key(c), [...(results.get(key(c)) ?? []), await runWrk(url, headers, shape.durationS, shape, budget, watch, script)]);
        }
      }
      for (const s of started.splice(started.length - 2).reverse()) await stopProcess(s, 30_000);
    }
  } finally {
    for (const s of started.reverse()) await stopProcess(s, 30_000);
    rmSync(dir, { recursive: true, force: true });
  }

  const lines = [
    describeMachine(shape, budget, `; ${cpus().length} cores`),
    `gateway: \`gateway serve\` (supervisor + workers) with the shipped policy, ES256 JWT, SQLite ledger, audit fsync batch; ${rounds} interleaved round(s) of 1 and 2 workers, medians; warm-up ${shape.warmupS} s per worker`,
    "pinned: upstream and every gateway process on CPU 1, wrk on CPU 0; unpinned: all share both cores",
    "",
    "path                     setting   workers    req/s   p50 ms   p99 ms  gateway µs/req  upstream µs/req  errors",
  ];
  const row = (c: Case) => {
    const runs = results.get(key(c));
    return runs ? summarise({ name: key(c), runs }) : null;
  };
  for (const c of CASES) {
    const s = row(c);
    if (!s) continue;
    lines.push(`${c.path.padEnd(24)} ${c.setting.padEnd(9)} ${String(c.workers).padStart(7)} ${fmt(s.rps, 0).padStart(8)} ${fmt(s.p50Ms).padStart(8)} ${fmt(s.p99Ms).padStart(8)} ${fmt(s.cpu.gateway ?? NaN, 1).padStart(15)} ${fmt(s.cpu.upstream ?? NaN, 1).padStart(16)}  ${s.errors}`);
  }
  lines.push("");
  for (const path of ["GET /changes/42", "POST /changes/42/submit"] as const) {
    const one = row({ path, setting: "unpinned", workers: 1 });
    const two = row({ path, setting: "unpinned", workers: 2 });
    const onePinned = row({ path, setting: "pinned", workers: 1 });
    const twoPinned = row({ path, setting: "pinned", workers: 2 });
    if (one && two) {
      lines.push(`${path}: scaling efficiency (unpinned, 2 workers ÷ 2 × 1 worker): ${fmt((two.rps / (2 * one.rps)) * 100, 0)} %; req/s ×${fmt(two.rps / one.rps)}`);
      lines.push(`${path}: CPU per request, 1 worker ÷ 2 workers: unpinned ${fmt((one.cpu.gateway ?? NaN) / (two.cpu.gateway ?? NaN))}` + (onePinned && twoPinned ? `, pinned ${fmt((onePinned.cpu.gateway ?? NaN) / (twoPinned.cpu.gateway ?? NaN))}` : "") + " (1.00: the process model adds no cost per request)");
    }
  }
  lines.push("(gateway µs/req: user+system CPU of the supervisor and its workers during the measured run ÷ requests; the projection for more cores is in docs/performance.md)");
  return lines;
}
