// What the audit log costs the full gateway: throughput and latency with the audit log off
// (startGateway's `auditDisabled`) versus on with `fsync = "off" | "batch" | "always"`.
// Target: `batch` (the default) costs at most 10 % of the throughput without audit.
//
//   node_modules/.bin/bun bench/audit-throughput.bench.ts [--rounds 3] [--duration 8]
//       [--connections 50] [--modes none,off,batch,always] [--path /changes/42] [--no-pin]
//       [--baseline DIR]
//
// Each mode runs the FULL gateway (TLS, ES256 JWT, compiled shipped policy, SQLite duty ledger,
// identity token) as its own process (bench/proxy/full-gateway.ts, `--fsync MODE`), behind it the tiny
// upstream of bench/proxy. Load: wrk (pinned to CPU 0; gateway and upstream on CPU 1), or, when
// wrk is missing, a bounded in-process fetch loop. Rounds interleave the modes so drift on a
// shared machine hits all of them; the table shows medians. The path is `GET /changes/42`
// (read_change): every request writes one decision record, and its outcome joins a compact
// outcome record shared by the batch (two records per request in a format-1 log).
//
// `--baseline DIR` adds the row `baseline batch`: another checkout's gateway (DIR holds its
// bench/proxy/full-gateway.ts and node_modules, e.g. `git worktree add /tmp/base main`) with
// `fsync = "batch"`, in the same interleaved rounds: a before/after comparison in one run.
import { join } from "node:path";
import {
  cpuBudget, describeMachine, fmt, median, runWrk, startProcess, stopProcess, summarise, which,
  type LoadResult, type LoadShape, type Started, flag, bounded,
} from "./proxy/lib.ts";

const args = process.argv.slice(2);

const MODES = ["none", "off", "batch", "always"] as const;
/** The audit modes, and `baseline`: `batch` in the `--baseline` checkout. */
type Mode = (typeof MODES)[number] | "baseline";

await orchestrate();

/** Without wrk: `connections` concurrent fetch loops for `seconds`, bounded in time and count. */
async function fetchLoad(url: string, headers: string[], seconds: number, connections: number): Promise<LoadResult> {
  const init = { headers: Object.fromEntries(headers.map((h) => [h.slice(0, h.indexOf(":")), h.slice(h.indexOf(":") + 1).trim()])), tls: { rejectUnauthorized: false } } as RequestInit;
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const MAX = 2_000_000;
  const worker = async () => {
    while (performance.now() < end && latencies.length + errors < MAX) {
      const t0 = performance.now();
      try {
        const res = await fetch(url, init);
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors, requests: latencies.length, cpuUsPerRequest: {} };
}

async function orchestrate(): Promise<void> {
  const shape: LoadShape = {
    threads: 1,
    connections: bounded(flag("connections", "50"), 1, 1000),
    durationS: bounded(flag("duration", "8"), 1, 120),
    warmupS: 2,
  };
  const rounds = bounded(flag("rounds", "3"), 1, 10);
  const path = flag("path", "/changes/42");
  const modes = flag("modes", MODES.join(",")).split(",").filter((m): m is Mode => (MODES as readonly string[]).includes(m));
  if (!modes.includes("none")) modes.unshift("none");
  const baselineDir = flag("baseline", "");
  if (baselineDir !== "") modes.push("baseline");
  const useWrk = which("wrk") !== null;
  const budget = useWrk ? cpuBudget(!args.includes("--no-pin")) : null;
  const bun = process.execPath;
  const started: Started[] = [];
  const targets = new Map<Mode, { url: string; headers: string[]; pid: number; proc: Started }>();
  const results = new Map<Mode, LoadResult[]>();
  const auditLines = new Map<Mode, string>();
  /** Requests each gateway answered: the check request, warm-ups and measured runs. */
  const served = new Map<Mode, number>();
  process.on("SIGINT", () => void Promise.all(started.map((s) => stopProcess(s))).then(() => process.exit(130)));

  try {
    const upstream = await startProcess("upstream", [bun, join(import.meta.dir, "proxy", "upstream.ts")], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
    started.push(upstream);
    const portOf = (s: Started) => Number(/^listening (\d+)/.exec(s.lines.find((l) => l.startsWith("listening"))!)![1]);
    const upstreamUrl = `http://127.0.0.1:${portOf(upstream)}`;
    for (const mode of modes) {
      const script = mode === "baseline" ? join(baselineDir, "bench", "proxy", "full-gateway.ts") : join(import.meta.dir, "proxy", "full-gateway.ts");
      const auditFlags = mode === "none" ? ["--no-audit"] : ["--fsync", mode === "baseline" ? "batch" : mode];
      const proc = await startProcess(`audit-${mode}`, [bun, script, "--upstream", upstreamUrl, ...auditFlags], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
      started.push(proc);
      const token = proc.lines.find((l) => l.startsWith("token "))!.slice(6);
      targets.set(mode, { url: `https://127.0.0.1:${portOf(proc)}${path}`, headers: [`authorization: Bearer ${token}`], pid: proc.proc.pid, proc });
    }
    for (const [mode, t] of targets) {
      const res = await fetch(t.url, { headers: { authorization: t.headers[0]!.slice("authorization: ".length) }, tls: { rejectUnauthorized: false } } as RequestInit);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`mode ${mode} answered ${res.status} on ${path}`);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const mode of modes) {
        const t = targets.get(mode)!;
        console.error(`round ${round}/${rounds}: audit ${mode} (${shape.durationS} s) …`);
        let r: LoadResult;
        let warmup: LoadResult;
        if (useWrk) {
          warmup = await runWrk(t.url, t.headers, shape.warmupS, shape, budget);
          r = await runWrk(t.url, t.headers, shape.durationS, shape, budget, { gateway: t.pid });
        } else {
          warmup = await fetchLoad(t.url, t.headers, shape.warmupS, shape.connections);
          r = await fetchLoad(t.url, t.headers, shape.durationS, shape.connections);
        }
        served.set(mode, (served.get(mode) ?? 1) + warmup.requests + r.requests);
        results.set(mode, [...(results.get(mode) ?? []), r]);
      }
    }
  } finally {
    for (const s of started.reverse()) {
      await stopProcess(s);
      const line = s.lines.find((l) => l.startsWith("audit "));
      const mode = s.name.startsWith("audit-") ? (s.name.slice(6) as Mode) : null;
      if (line && mode) auditLines.set(mode, line);
    }
  }

  const none = results.get("none")!;
  console.log(`\n${describeMachine(shape, budget, `; load generator: ${useWrk ? "wrk" : "in-process fetch (wrk not installed)"}`)}`);
  console.log(`path ${path}; ${rounds} interleaved round(s); medians over rounds${baselineDir ? `; baseline: ${baselineDir}` : ""}\n`);
  // The audit log's share of the gateway's CPU time per request, against the audit-off gateway of
  // the same round: steadier than req/s on a machine whose other load comes and goes.
  const cpuShare = (runs: LoadResult[]) => median(runs.map((r, i) => 1 - (none[i]!.cpuUsPerRequest.gateway ?? NaN) / (r.cpuUsPerRequest.gateway ?? NaN)));
  console.log("audit             req/s   p50 ms   p99 ms  vs no audit  gateway µs/req  audit CPU  records/req  records/write  errors");
  for (const mode of modes) {
    const runs = results.get(mode)!;
    const s = summarise({ name: mode, runs });
    const share = median(runs.map((r, i) => r.rps / none[i]!.rps));
    const [records, writes] = (auditLines.get(mode) ?? "audit 0 0").split(" ").slice(1).map(Number) as [number, number];
    const label = mode === "none" ? "off (disabled)" : mode === "baseline" ? "baseline batch" : `fsync ${mode}`;
    const answered = served.get(mode) ?? 0;
    const perRequest = records && answered ? fmt(records / answered, 2) : "";
    console.log(`${label.padEnd(15)} ${fmt(s.rps, 0).padStart(8)} ${fmt(s.p50Ms).padStart(8)} ${fmt(s.p99Ms).padStart(8)} ${(mode === "none" ? "" : `${fmt(share * 100, 1)} %`).padStart(12)} ${fmt(s.cpu.gateway ?? NaN, 1).padStart(15)} ${(mode === "none" ? "" : `${fmt(cpuShare(runs) * 100, 1)} %`).padStart(10)} ${perRequest.padStart(12)} ${(writes ? fmt(records / writes, 1) : "").padStart(14)}  ${s.errors}`);
  }
  const batch = results.get("batch");
  if (batch) {
    const cost = 1 - median(batch.map((r, i) => r.rps / none[i]!.rps));
    console.log(`\ntarget: fsync batch costs ≤ 10 % of the throughput without audit: ${cost <= 0.1 ? "met" : "MISSED"} (${fmt(cost * 100, 1)} %)`);
  }
  const baseline = results.get("baseline");
  if (batch && baseline) {
    const before = 1 - median(baseline.map((r, i) => r.rps / none[i]!.rps));
    const after = 1 - median(batch.map((r, i) => r.rps / none[i]!.rps));
    console.log(`audit share of throughput (fsync batch): baseline ${fmt(before * 100, 1)} %, this build ${fmt(after * 100, 1)} %`);
    console.log(`audit share of gateway CPU (fsync batch): baseline ${fmt(cpuShare(baseline) * 100, 1)} %, this build ${fmt(cpuShare(batch) * 100, 1)} %`);
  }
  console.log("(vs no audit: req/s as a share of the audit-off gateway in the same round, median over rounds; audit CPU: 1 − the audit-off gateway's CPU µs/req over this one's, same round, median; records/req: records written (checkpoints included) over requests answered; records/write: group-commit factor)");
}
