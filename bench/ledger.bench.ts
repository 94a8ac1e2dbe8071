// Duty ledger latency: what history-based separation of duties adds to a guarded request.
// Per store (SQLite file, memory) and ledger size (10k, 1M existing entries) it measures, one call
// at a time: reserve (check + insert, on the request path before forwarding), confirm (after the
// upstream answered), reserve+confirm together, and lookup (read-only, `explain`).
// Run: node_modules/.bin/bun bench/ledger.bench.ts   (or: deno run -A bench/ledger.bench.ts)
// Options: --sizes 10000,1000000  --iterations 20000  --checkpoint-every-ms 1000 (0: SQLite's own)
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { hrtime } from "node:process";
import { setImmediate } from "node:timers";
import type { SeparationCheck } from "../dsl/mod.ts";
import type { DutyLedger } from "../src/ledger/ledger.ts";
import { MemoryDutyLedger } from "../src/ledger/memory.ts";
import { openSqliteLedger } from "../src/ledger/sqlite.ts";
import { openSqlDatabase } from "../src/ledger/sqlite-driver.ts";

declare const Deno: { version: { deno: string; v8: string } } | undefined;

const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const SIZES = (argValue("--sizes") ?? "10000,1000000").split(",").map(Number);
const ITERATIONS = Number(argValue("--iterations") ?? 20_000);
const WARMUP = Math.min(2000, ITERATIONS);
/** SQLite WAL checkpoint interval; 0 = SQLite's automatic checkpoints inside commits. */
const CHECKPOINT_EVERY_MS = argValue("--checkpoint-every-ms") === undefined ? undefined : Number(argValue("--checkpoint-every-ms"));
const DUTIES = ["submit_change", "approve_change", "deploy_change"];
const CONSTRAINT = "separate:changes.duty:20:1";
const OPTIONS = { retentionDays: 400, reservationTtlMs: 600_000 };
const T0 = Date.UTC(2026, 0, 1);

const check = (key: string): SeparationCheck => ({ constraint: CONSTRAINT, param: "change", key, duties: DUTIES });

// Existing entries: one change per three entries, each duty done by another person.
function* seedRows(count: number) {
  for (let i = 0; i < count; i++) {
    yield { key: `c${Math.floor(i / 3)}`, duty: DUTIES[i % 3]!, sub: `user${i % 5000}`, at: T0 + i };
  }
}

async function seedSqlite(path: string, count: number): Promise<void> {
  await (await openSqliteLedger({ path, ...OPTIONS })).close(); // creates the schema
  const db = await openSqlDatabase(path);
  const insert = db.prepare("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES (?, ?, ?, ?, ?, NULL)");
  db.exec("BEGIN IMMEDIATE");
  for (const r of seedRows(count)) insert.run(CONSTRAINT, r.key, r.sub, r.duty, r.at);
  db.exec("COMMIT");
  db.close();
}

async function seedMemory(ledger: DutyLedger, count: number): Promise<void> {
  for (const r of seedRows(count)) {
    const result = await ledger.reserve({ checks: [check(r.key)], duty: r.duty, sub: r.sub, at: r.at });
    if (!result.ok) throw new Error("seed conflicted");
    await ledger.confirm(result.reservation);
  }
}

const nowNs = () => hrtime.bigint();
const toUs = (ns: bigint) => Number(ns) / 1000;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

interface Row { store: string; size: number; reserveP50: number; reserveP99: number; confirmP50: number; confirmP99: number; bothP50: number; bothP99: number; opsPerSec: number; lookupP50: number; lookupP99: number }

/** Guarded requests on existing changes, each by a new person for one duty (the common, allowed case). */
async function measure(store: string, size: number, ledger: DutyLedger): Promise<Row> {
  const changes = Math.max(1, Math.floor(size / 3));
  const reserve: number[] = [], confirm: number[] = [], both: number[] = [], lookup: number[] = [];
  // Throughput is wall-clock over the measured iterations minus the lookups, so work moved onto
  // timers (WAL checkpoints) still counts against it.
  let lookupNs = 0n;
  let measuredFrom = 0n;
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    if (i === WARMUP) measuredFrom = nowNs();
    const key = `c${(i * 7919) % changes}`;
    const request = { checks: [check(key)], duty: DUTIES[i % 3]!, sub: `bench${i}`, at: T0 + size + i };
    const t0 = nowNs();
    const result = await ledger.reserve(request);
    const t1 = nowNs();
    if (!result.ok) throw new Error("bench reserve conflicted");
    await ledger.confirm(result.reservation);
    const t2 = nowNs();
    await ledger.lookup(request.checks, `user${i % 5000}`);
    const t3 = nowNs();
    // A server returns to the event loop between requests (timers such as the WAL checkpoint run
    // there); a loop of resolved awaits never would. Not timed.
    if (i % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    if (i < WARMUP) continue;
    reserve.push(toUs(t1 - t0));
    confirm.push(toUs(t2 - t1));
    both.push(toUs(t2 - t0));
    lookup.push(toUs(t3 - t2));
    lookupNs += t3 - t2;
  }
  const totalNs = nowNs() - measuredFrom - lookupNs;
  for (const a of [reserve, confirm, both, lookup]) a.sort((x, y) => x - y);
  return {
    store, size,
    reserveP50: percentile(reserve, 50), reserveP99: percentile(reserve, 99),
    confirmP50: percentile(confirm, 50), confirmP99: percentile(confirm, 99),
    bothP50: percentile(both, 50), bothP99: percentile(both, 99),
    opsPerSec: ITERATIONS / (Number(totalNs) / 1e9),
    lookupP50: percentile(lookup, 50), lookupP99: percentile(lookup, 99),
  };
}

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : `node ${process.version}`;
const cpu = cpus();
console.log(`machine: ${cpu[0]?.model ?? "unknown cpu"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; runtime: ${runtime}`);
console.log(`iterations: ${ITERATIONS} per row (after ${WARMUP} warm-up), one call at a time; SQLite file in ${tmpdir()} (WAL, synchronous=NORMAL, checkpoint ${CHECKPOINT_EVERY_MS === 0 ? "automatic" : `every ${CHECKPOINT_EVERY_MS ?? 1000} ms`})`);
console.log(`load average at start: ${loadavg().map((n) => n.toFixed(2)).join(" ")}\n`);

const rows: Row[] = [];
const root = mkdtempSync(join(tmpdir(), "dutygate-ledger-bench-"));
try {
  for (const size of SIZES) {
    const path = join(root, `ledger-${size}.sqlite`);
    await seedSqlite(path, size);
    const sqlite = await openSqliteLedger({ path, ...OPTIONS, checkpointEveryMs: CHECKPOINT_EVERY_MS });
    rows.push(await measure(`sqlite (${sqlite.driver})`, size, sqlite));
    await sqlite.close();

    const memory = new MemoryDutyLedger(OPTIONS);
    await seedMemory(memory, size);
    rows.push(await measure("memory", size, memory));
    await memory.close();
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const f = (n: number) => n.toFixed(1);
const header = ["store", "entries", "reserve p50/p99 µs", "confirm p50/p99 µs", "reserve+confirm p50/p99 µs", "reserve+confirm ops/s", "lookup p50/p99 µs", "vs memory (p99 r+c)"];
const table = rows.map((r) => {
  const mem = rows.find((m) => m.store === "memory" && m.size === r.size);
  return [
    r.store, r.size.toLocaleString("en-US"),
    `${f(r.reserveP50)} / ${f(r.reserveP99)}`, `${f(r.confirmP50)} / ${f(r.confirmP99)}`,
    `${f(r.bothP50)} / ${f(r.bothP99)}`, Math.round(r.opsPerSec).toLocaleString("en-US"),
    `${f(r.lookupP50)} / ${f(r.lookupP99)}`, mem ? `${(r.bothP99 / mem.bothP99).toFixed(1)}×` : "",
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of table) console.log(line(row));
