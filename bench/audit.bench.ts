// Cost of the audit log per append, by durability mode and concurrency.
// Run: node_modules/.bin/bun bench/audit.bench.ts   (or: node_modules/.bin/deno run -A bench/audit.bench.ts)
import { cpus, platform, release, totalmem } from "node:os";
import { canonicalJson } from "../src/lib/mod.ts";
import { openAuditLog } from "../src/audit/log.ts";
import type { AuditLogOptions } from "../src/audit/log.ts";
import { chainedBody, hashCanonical } from "../src/audit/record.ts";
import { logOptions, makeSigner } from "../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../test/support/temp-dir.ts";
import { verifyAuditFiles } from "../src/audit/verify.ts";

const RECORDS = Number(process.env.AUDIT_BENCH_RECORDS ?? 50_000);
// One fsync per record with one writer in flight: bounded so the run ends in reasonable time.
const ALWAYS_SEQUENTIAL_RECORDS = Math.min(RECORDS, Number(process.env.AUDIT_BENCH_ALWAYS_SEQ ?? 5_000));
const CONCURRENCY = [1, 64];
// The machine is shared: each cell is the fastest of a few runs, the least disturbed one.
const REPEATS = Number(process.env.AUDIT_BENCH_REPEATS ?? 3);

async function fastest(run: () => Row): Promise<Row> {
  let best: Row | null = null;
  for (let i = 0; i < REPEATS; i++) {
    const row = await run();
    if (best === null || row.seconds < best.seconds) best = row;
  }
  return best!;
}

/** A decision record of realistic size (about 600 bytes on disk). */
function decisionEvent(i: number): Record<string, unknown> {
  // Members in sorted key order, as the gateway writes its records (the canonical-JSON fast path).
  return {
    bundle: { digest: "sha256:6f1ed002ab5595859014ebf0951522d9", revision: 42 },
    decision: "allow",
    duty: "approve_change",
    headers: { "user-agent": "deploy-bot/1.4", "x-change-id": String(i) },
    ip: "10.1.2.3",
    method: "POST",
    path: `/changes/${i}/approve`,
    reasons: ["policies/changes.duty:12:1 grant reviewer approve_change", "tree: roles&reviewer -> when true"],
    request_id: `01J${String(i).padStart(23, "0")}`,
    roles: ["developer", "reviewer"],
    sub: "alice@example.com",
    upstream: "changes",
  };
}

const runtime =
  typeof Bun !== "undefined" ? `bun ${Bun.version}` :
  typeof (globalThis as { Deno?: { version: { deno: string } } }).Deno !== "undefined" ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` :
  `node ${process.version}`;

interface Row { mode: string; concurrency: number; records: number; seconds: number; writes: number }

async function measureLog(signer: Awaited<ReturnType<typeof makeSigner>>, fsync: AuditLogOptions["fsync"], concurrency: number, records: number): Promise<Row> {
  const dir = tempDir("dutygate-audit-bench-");
  try {
    // Production defaults (src/config/defaults.ts): batch 200 ms, rotate 100 MiB, checkpoint every 1000.
    const log = await openAuditLog(logOptions(dir, signer.signingKey, {
      fsync, batchIntervalMs: 200, rotateBytes: 100 * 1024 * 1024, rotateAgeMs: 0, checkpointEvery: 1000,
    }));
    let next = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < records) await log.append(decisionEvent(next++));
    }));
    const seconds = (performance.now() - start) / 1000;
    const { writes } = log.stats();
    await log.close();
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    if (!verification.ok) throw new Error(`benchmark log does not verify: ${verification.break?.message}`);
    return { mode: `fsync=${fsync}`, concurrency, records, seconds, writes };
  } finally {
    removeTempDir(dir);
  }
}

function measureSerialiseOnly(records: number): Row {
  const start = performance.now();
  let prev = "0".repeat(64);
  for (let i = 0; i < records; i++) {
    prev = hashCanonical(canonicalJson(chainedBody(decisionEvent(i), { prev, seq: i, time: new Date().toISOString(), type: "decision" })));
  }
  return { mode: "JCS + SHA-256 only", concurrency: 1, records, seconds: (performance.now() - start) / 1000, writes: 0 };
}

const signer = await makeSigner("bench");
// Warm-up: the first mode measured would otherwise also pay for JIT compilation.
measureSerialiseOnly(5_000);
await measureLog(signer, "off", 64, 5_000);
const rows: Row[] = [await fastest(() => measureSerialiseOnly(RECORDS))];
for (const concurrency of CONCURRENCY) {
  // Modes alternate within each round, so a noisy minute hurts all of them alike.
  const best = new Map<string, Row>();
  for (let round = 0; round < REPEATS; round++) {
    for (const fsync of ["off", "batch", "always"] as const) {
      const records = fsync === "always" && concurrency === 1 ? ALWAYS_SEQUENTIAL_RECORDS : RECORDS;
      const row = await measureLog(signer, fsync, concurrency, records);
      const previous = best.get(fsync);
      if (previous === undefined || row.seconds < previous.seconds) best.set(fsync, row);
    }
  }
  rows.push(...best.values());
}

const cpu = cpus();
console.log(`audit log append cost — ${runtime}, ${platform()} ${release()}, ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, temp dir on the local disk, fastest of ${REPEATS} runs`);
console.log("");
const header = ["mode", "in flight", "records", "records/s", "µs/record", "records/write", "vs fsync=off"];
const table = rows.map((row) => {
  const off = rows.find((r) => r.mode === "fsync=off" && r.concurrency === row.concurrency);
  const rate = row.records / row.seconds;
  const cost = off ? ((off.records / off.seconds) / rate - 1) * 100 : 0;
  const ratio = off && row.mode.startsWith("fsync") ? (cost >= 0 ? `${cost.toFixed(1)}% slower` : `${(-cost).toFixed(1)}% faster (noise)`) : "-";
  return [
    row.mode, String(row.concurrency), String(row.records), Math.round(rate).toLocaleString("en-US"),
    ((row.seconds * 1e6) / row.records).toFixed(2), row.writes > 0 ? (row.records / row.writes).toFixed(1) : "-",
    row.mode === "fsync=off" ? "baseline" : ratio,
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
const format = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
console.log(format(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const r of table) console.log(format(r));
