// What it would cost to keep SQLite from mapping the ledger's WAL index (`-shm`) into memory, the
// mapping that turns an immutable `-shm` into a SIGBUS: per journal mode, one guarded step's two
// commits (reserve: BEGIN IMMEDIATE + insert; confirm: BEGIN IMMEDIATE + update), one at a time,
// on a file in the temp directory with synchronous=NORMAL, as the ledger runs them.
//   wal            the ledger today: shared memory index in `-shm` (several processes, CLI while serving)
//   wal-exclusive  locking_mode=EXCLUSIVE: the index in heap memory, no `-shm`; one connection only
//   truncate, delete  rollback journal: no `-shm`; several processes, but an fsync per commit
// Run: node_modules/.bin/bun bench/ledger-journal.bench.ts   (or: deno run -A bench/ledger-journal.bench.ts)
// Options: --iterations 3000 (the rollback modes run a tenth of it: each commit waits for the disk)
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { hrtime } from "node:process";
import { openSqlDatabase } from "../src/ledger/sqlite-driver.ts";

declare const Deno: { version: { deno: string } } | undefined;

const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const ITERATIONS = Number(argValue("--iterations") ?? 3000);
const MODES = ["wal", "wal-exclusive", "truncate", "delete"] as const;

interface Row { mode: string; n: number; p50: number; p99: number; perSec: number }

async function measure(mode: (typeof MODES)[number]): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-journal-"));
  const db = await openSqlDatabase(join(dir, "ledger.sqlite"));
  try {
    if (mode === "wal-exclusive") db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec(`PRAGMA journal_mode = ${mode.startsWith("wal") ? "WAL" : mode.toUpperCase()}`);
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("CREATE TABLE duty_entries (id INTEGER PRIMARY KEY, constraint_id TEXT, key TEXT, sub TEXT, duty TEXT, at INTEGER, reservation TEXT)");
    db.exec("CREATE INDEX duty_entries_by_key ON duty_entries (constraint_id, key, sub, at, duty, reservation)");
    const insert = db.prepare("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES ('c', ?, 'alice', 'submit_change', ?, ?)");
    const confirm = db.prepare("UPDATE duty_entries SET reservation = NULL WHERE reservation = ?");
    const n = mode.startsWith("wal") ? ITERATIONS : Math.max(50, Math.floor(ITERATIONS / 10));
    const micros: number[] = [];
    const started = hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const t = hrtime.bigint();
      db.exec("BEGIN IMMEDIATE"); insert.run(String(i), i, `r${i}`); db.exec("COMMIT");
      db.exec("BEGIN IMMEDIATE"); confirm.run(`r${i}`); db.exec("COMMIT");
      micros.push(Number(hrtime.bigint() - t) / 1000);
    }
    const seconds = Number(hrtime.bigint() - started) / 1e9;
    micros.sort((a, b) => a - b);
    const at = (p: number) => micros[Math.min(n - 1, Math.floor(p * n))]!;
    return { mode, n, p50: at(0.5), p99: at(0.99), perSec: n / seconds };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runtime = typeof Deno !== "undefined" ? `Deno ${Deno.version.deno} (node:sqlite)` : `Bun ${Bun.version} (bun:sqlite)`;
const cpu = cpus();
console.log(`machine: ${cpu[0]?.model ?? "unknown cpu"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; runtime: ${runtime}; files in ${tmpdir()}`);
console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
const rows: Row[] = [];
for (const mode of MODES) rows.push(await measure(mode));
const wal = rows[0]!;
console.log("| journal | steps | reserve+confirm p50 µs | p99 µs | steps/s | p50 vs wal |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.mode} | ${r.n} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${Math.round(r.perSec).toLocaleString("en")} | ${(r.p50 / wal.p50).toFixed(2)}× |`);
