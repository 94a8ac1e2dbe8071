// The ledger section of `npm run bench:scale`: reserve + confirm of one guarded step (the two
// ledger calls a guarded request makes), one at a time, p50/p99, on the embedded SQLite ledger and
// on the shared PostgreSQL ledger over loopback (a throw-away PostgreSQL 15 from Debian's packages,
// fsync and synchronous_commit on, as in production). Targets: p99 ≤ 50 µs for SQLite, ≤ 2 ms for
// PostgreSQL. Bounded in count (`--steps`, at most 50,000); the server is stopped by its PID.
//
//   npm run bench:scale -- --sections ledger [--steps 5000] [--entries 10000]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { SeparationCheck } from "../../dsl/mod.ts";
import type { DutyLedger } from "../../src/ledger/ledger.ts";
import { openPostgresLedger } from "../../src/ledger/postgres.ts";
import { openSqliteLedger } from "../../src/ledger/sqlite.ts";
import { openSqlDatabase } from "../../src/ledger/sqlite-driver.ts";
import { postgresUnavailable, startTestPostgres } from "../../test/support/postgres.ts";
import { bounded, flag } from "../proxy/lib.ts";

const STEPS = bounded(flag("steps", "5000"), 100, 50_000);
const ENTRIES = bounded(flag("entries", "10000"), 0, 1_000_000);
const WARMUP = Math.min(500, STEPS);
const DUTIES = ["submit_change", "approve_change", "deploy_change"];
const CONSTRAINT = "separate:changes.duty:20:1";
const OPTIONS = { retentionDays: 400, reservationTtlMs: 600_000 };
const T0 = Date.UTC(2026, 0, 1);
const check = (key: string): SeparationCheck => ({ constraint: CONSTRAINT, param: "change", key, duties: DUTIES });

interface Row {
  store: string;
  p50: number;
  p99: number;
  stepsPerSecond: number;
  targetP99: number;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One guarded step at a time: reserve a fresh change for a person, then confirm it. */
async function measureSteps(store: string, ledger: DutyLedger, targetP99: number): Promise<Row> {
  const samples: number[] = [];
  const started = performance.now();
  for (let i = -WARMUP; i < STEPS; i++) {
    const t = performance.now();
    const result = await ledger.reserve({ checks: [check(`bench-${i}`)], duty: DUTIES[((i % 3) + 3) % 3]!, sub: `bench-user-${((i % 97) + 97) % 97}`, at: T0 + ENTRIES + i });
    if (!result.ok) throw new Error(`${store}: the step on bench-${i} conflicted`);
    await ledger.confirm(result.reservation);
    if (i >= 0) samples.push((performance.now() - t) * 1000);
  }
  const elapsed = performance.now() - started;
  samples.sort((a, b) => a - b);
  return { store, p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), stepsPerSecond: ((STEPS + WARMUP) / elapsed) * 1000, targetP99 };
}

async function sqliteRow(): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-bench-scale-"));
  try {
    const path = join(dir, "ledger.sqlite");
    await (await openSqliteLedger({ path, ...OPTIONS })).close();
    const db = await openSqlDatabase(path);
    const insert = db.prepare("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES (?, ?, ?, ?, ?, NULL)");
    db.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < ENTRIES; i++) insert.run(CONSTRAINT, `c${Math.floor(i / 3)}`, `user${i % 5000}`, DUTIES[i % 3]!, T0 + i);
    db.exec("COMMIT");
    db.close();
    const ledger = await openSqliteLedger({ path, ...OPTIONS });
    try {
      return await measureSteps("sqlite (bun:sqlite, WAL, synchronous=NORMAL)", ledger, 50);
    } finally {
      await ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresRow(synchronousCommit: "on" | "off"): Promise<Row | string> {
  const unavailable = postgresUnavailable();
  if (unavailable) return unavailable;
  const pg = await startTestPostgres({ settings: { fsync: "on", synchronous_commit: synchronousCommit, full_page_writes: "on" } });
  try {
    const url = pg.createDatabase("bench_scale");
    const password = readFileSync(pg.passwordFile, "utf8").trim();
    await (await openPostgresLedger({ url, password, ...OPTIONS })).close(); // creates the schema
    pg.psql(`INSERT INTO duty_entries (constraint_id, key, sub, duty, at) SELECT '${CONSTRAINT}', 'c' || (i / 3), 'user' || (i % 5000), (ARRAY['${DUTIES.join("','")}'])[i % 3 + 1], ${T0} + i FROM generate_series(0, ${ENTRIES - 1}) AS i; ANALYZE duty_entries`, "bench_scale");
    const ledger = await openPostgresLedger({ url, password, ...OPTIONS, timeoutMs: 30_000 });
    try {
      return await measureSteps(`postgres 15 (loopback, fsync on, synchronous_commit ${synchronousCommit})`, ledger, 2000);
    } finally {
      await ledger.close();
    }
  } finally {
    await pg.destroy();
  }
}

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** Runs the ledger section; returns the lines to print. */
export async function runLedgerSection(): Promise<string[]> {
  const lines = [
    `${cpus()[0]?.model ?? "cpu"} ×${cpus().length}, Bun ${Bun.version}, ${process.platform}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`,
    `reserve + confirm of one guarded step, one at a time: ${int(STEPS)} steps after ${WARMUP} warm-up, ${int(ENTRIES)} entries already held`,
    "",
    "| store | reserve+confirm p50 µs | p99 µs | steps/s | target p99 | met | p50 vs sqlite |",
    "|---|---|---|---|---|---|---|",
  ];
  const sqlite = await sqliteRow();
  // synchronous_commit off shows what the commit's WAL flush costs; it is not a setting for the
  // ledger's server (a crash may lose the last commits: facts the ledger then forgets).
  const postgres = [await postgresRow("on"), await postgresRow("off")];
  for (const row of [sqlite, ...postgres]) {
    if (typeof row === "string") {
      lines.push(`| postgres 15 | not measured: ${row} | | | ≤ 2 ms | | |`);
      continue;
    }
    const target = row.targetP99 >= 1000 ? `≤ ${row.targetP99 / 1000} ms` : `≤ ${row.targetP99} µs`;
    lines.push(`| ${row.store} | ${fmt(row.p50)} | ${fmt(row.p99)} | ${int(row.stepsPerSecond)} | ${target} | ${row.p99 <= row.targetP99 ? "yes" : "no"} | ${(row.p50 / sqlite.p50).toFixed(1)}× |`);
  }
  return lines;
}
