// The ledger section of `npm run bench:scale`: reserve + confirm of one guarded step (the two
// ledger calls a guarded request makes), one at a time, p50/p99, on the embedded SQLite ledger and
// on the shared PostgreSQL ledger over loopback (a throw-away PostgreSQL 15 from Debian's packages,
// fsync and synchronous_commit on, as in production). Targets: p99 ≤ 50 µs for SQLite, ≤ 2 ms for
// PostgreSQL. Bounded in count (`--steps`, at most 50,000); the server is stopped by its PID.
//
// Each row has a baseline measured in the same run, interleaved with it in rounds (the order
// alternating), so that the machine's load falls on both alike:
// - SQLite on the disk (the state directory's usual place) against the same ledger on tmpfs
//   (/dev/shm) and in memory (`:memory:`, no file at all): what the disk, and what the WAL's file
//   writes, add to a step;
// - PostgreSQL's ledger (one server-side function call per reserve and per confirm: one round trip
//   each) against the same steps as client-driven transactions, as the ledger made them before
//   (BEGIN; lock + read; INSERT; COMMIT, and BEGIN; lock + upserts; COMMIT).
//
// With --before DIR (another checkout's root, e.g. an earlier commit unpacked with a node_modules
// link) every SQLite row and checkpoint-pause row is measured for that tree's ledger too, in the
// same rounds, and a table of the ratios follows. --stores sqlite skips PostgreSQL.
//
//   npm run bench:scale -- --sections ledger [--steps 5000] [--entries 10000] [--before DIR] [--stores sqlite,postgres]
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Sql } from "postgres";
import type { SeparationCheck } from "../../dsl/mod.ts";
import type { DutyLedger, Reservation, ReserveRequest, ReserveResult } from "../../src/ledger/ledger.ts";
import { newReservation } from "../../src/ledger/ledger.ts";
import { lockKeys, openPostgresLedger } from "../../src/ledger/postgres.ts";
import { openSqliteLedger } from "../../src/ledger/sqlite.ts";
import { openSqlDatabase } from "../../src/ledger/sqlite-driver.ts";
import { PG_ROLE, postgresUnavailable, startTestPostgres, type TestPostgres } from "../../test/support/postgres.ts";
import { bounded, flag } from "../proxy/lib.ts";

const STEPS = bounded(flag("steps", "5000"), 100, 50_000);
const ENTRIES = bounded(flag("entries", "10000"), 0, 1_000_000);
const WARMUP = Math.min(500, STEPS);
const BEFORE = flag("before", "") === "" ? null : resolve(flag("before", ""));
const STORES = new Set(flag("stores", "sqlite,postgres").split(","));

type OpenSqlite = typeof openSqliteLedger;
/** The SQLite ledgers measured: this tree's, and with --before that tree's. */
async function sqliteTrees(): Promise<Array<{ tag: string; open: OpenSqlite }>> {
  const trees: Array<{ tag: string; open: OpenSqlite }> = [{ tag: "", open: openSqliteLedger }];
  if (BEFORE) {
    const module = (await import(join(BEFORE, "src", "ledger", "sqlite.ts"))) as { openSqliteLedger: OpenSqlite };
    trees.push({ tag: " [before]", open: module.openSqliteLedger });
  }
  return trees;
}
/** Steps per round of the interleaving. */
const ROUND = 250;
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

/** The two calls of a guarded step, as one contender of an interleaved comparison. */
interface Stepper {
  name: string;
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  confirm(reservation: Reservation): Promise<void>;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * One guarded step at a time (reserve a fresh change for a person, then confirm it) on each
 * contender, in rounds of {@link ROUND} steps whose order alternates; warm-up first, unmeasured.
 */
async function measureInterleaved(contenders: readonly Stepper[], targetP99: number): Promise<Row[]> {
  const samples = contenders.map(() => [] as number[]);
  const busyMs = contenders.map(() => 0);
  // Between two steps the event loop runs its timers, as between two requests of a server: the
  // SQLite ledger's checkpoint timer among them (see checkpointPauses). Not part of a step's time.
  const idle = () => new Promise((resolve) => setImmediate(resolve));
  const step = async (c: Stepper, i: number, tag: string): Promise<number> => {
    const t = performance.now();
    const result = await c.reserve({ checks: [check(`bench-${tag}-${i}`)], duty: DUTIES[((i % 3) + 3) % 3]!, sub: `bench-user-${((i % 97) + 97) % 97}`, at: T0 + ENTRIES + i });
    if (!result.ok) throw new Error(`${c.name}: the step on bench-${tag}-${i} conflicted`);
    await c.confirm(result.reservation);
    return performance.now() - t;
  };
  for (const c of contenders) for (let i = 0; i < WARMUP; i++) { await step(c, i, "warm"); await idle(); }
  for (let round = 0; round * ROUND < STEPS; round++) {
    const order = round % 2 === 0 ? contenders.map((_, k) => k) : contenders.map((_, k) => contenders.length - 1 - k);
    for (const k of order) {
      for (let i = round * ROUND; i < Math.min(STEPS, (round + 1) * ROUND); i++) {
        const ms = await step(contenders[k]!, i, "run");
        samples[k]!.push(ms * 1000);
        busyMs[k]! += ms;
        await idle();
      }
    }
  }
  return contenders.map((c, k) => {
    const sorted = samples[k]!.sort((a, b) => a - b);
    return { store: c.name, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), stepsPerSecond: (STEPS / busyMs[k]!) * 1000, targetP99 };
  });
}

async function filledSqliteLedger(dir: string, open: OpenSqlite = openSqliteLedger): Promise<DutyLedger> {
  const path = join(dir, "ledger.sqlite");
  await (await open({ path, ...OPTIONS })).close();
  const db = await openSqlDatabase(path);
  const insert = db.prepare("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES (?, ?, ?, ?, ?, NULL)");
  db.exec("BEGIN IMMEDIATE");
  for (let i = 0; i < ENTRIES; i++) insert.run(CONSTRAINT, `c${Math.floor(i / 3)}`, `user${i % 5000}`, DUTIES[i % 3]!, T0 + i);
  db.exec("COMMIT");
  db.close();
  return open({ path, ...OPTIONS });
}

/** The same entries in a private in-memory database: SQLite's own work, without a file. */
async function filledMemoryLedger(open: OpenSqlite = openSqliteLedger): Promise<DutyLedger> {
  const ledger = await open({ path: ":memory:", ...OPTIONS });
  for (let i = 0; i < ENTRIES; i++) {
    const r = await ledger.reserve({ checks: [check(`c${Math.floor(i / 3)}`)], duty: DUTIES[i % 3]!, sub: `user${i % 5000}`, at: T0 + i });
    if (r.ok) await ledger.confirm(r.reservation);
  }
  return ledger;
}

async function sqliteRows(): Promise<Row[]> {
  const places = [{ name: "sqlite (bun:sqlite, WAL, synchronous=NORMAL; disk)", base: tmpdir() }];
  // tmpfs: the same ledger with no disk underneath, to tell the disk's share of the tail.
  if (existsSync("/dev/shm")) places.push({ name: "sqlite (the same on tmpfs: no disk)", base: "/dev/shm" });
  const dirs: string[] = [];
  const contenders: Array<{ name: string; ledger: DutyLedger }> = [];
  try {
    for (const place of places) {
      for (const tree of await sqliteTrees()) {
        const dir = mkdtempSync(join(place.base, "dutygate-bench-scale-"));
        dirs.push(dir);
        contenders.push({ name: place.name + tree.tag, ledger: await filledSqliteLedger(dir, tree.open) });
      }
    }
    for (const tree of await sqliteTrees()) contenders.push({ name: "sqlite (the same in memory: no file, no WAL)" + tree.tag, ledger: await filledMemoryLedger(tree.open) });
    return await measureInterleaved(contenders.map(({ name, ledger: l }) => ({ name, reserve: (r) => l.reserve(r), confirm: (r) => l.confirm(r) })), 50);
  } finally {
    for (const { ledger } of contenders) await ledger.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** How long the SQLite ledger's checkpoints hold a step or the event loop, on the disk and on tmpfs. */
interface PauseRow {
  where: string;
  seconds: number;
  steps: number;
  longestStepMs: number;
  longestPauseMs: number;
  /** Steps, and pauses between steps, of more than 1 ms. */
  over1ms: number;
}

/**
 * Steps for {@link PAUSE_SECONDS} per round on one ledger at a time (so that the stalls are its
 * own), the ledgers alternating over two rounds, each step right after the previous one (writes
 * that never leave the checkpoints a gap): the longest step, and the longest time the event loop
 * was busy between two steps. A checkpoint on the event loop (two fsyncs) shows between steps, a
 * commit that checkpoints itself in a step; a request arriving meanwhile waits for either.
 */
async function checkpointPauses(): Promise<PauseRow[]> {
  const places = [{ where: "disk", base: tmpdir() }, ...(existsSync("/dev/shm") ? [{ where: "tmpfs", base: "/dev/shm" }] : [])];
  const contenders = (await sqliteTrees()).flatMap((tree) => places.map((place) => ({ ...place, where: place.where + tree.tag, open: tree.open })));
  const rows = contenders.map((c): PauseRow => ({ where: c.where, seconds: 0, steps: 0, longestStepMs: 0, longestPauseMs: 0, over1ms: 0 }));
  for (let round = 0; round < 2; round++) {
    const order = round % 2 === 0 ? contenders.map((_, k) => k) : contenders.map((_, k) => contenders.length - 1 - k);
    for (const k of order) {
      const dir = mkdtempSync(join(contenders[k]!.base, "dutygate-bench-scale-"));
      const ledger = await filledSqliteLedger(dir, contenders[k]!.open);
      const row = rows[k]!;
      try {
        const started = performance.now();
        for (let i = 0; performance.now() - started < PAUSE_SECONDS * 1000 && i < 200_000; i++, row.steps++) {
          const s = performance.now();
          const r = await ledger.reserve({ checks: [check(`pause-${round}-${i}`)], duty: DUTIES[i % 3]!, sub: `bench-user-${i % 97}`, at: T0 + ENTRIES + i });
          if (r.ok) await ledger.confirm(r.reservation);
          const t = performance.now();
          await new Promise((resolve) => setImmediate(resolve));
          const pause = performance.now() - t;
          row.longestStepMs = Math.max(row.longestStepMs, t - s);
          row.longestPauseMs = Math.max(row.longestPauseMs, pause);
          if (t - s > 1) row.over1ms++;
          if (pause > 1) row.over1ms++;
        }
        row.seconds += (performance.now() - started) / 1000;
      } finally {
        await ledger.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return rows;
}

const PAUSE_SECONDS = 3;

/**
 * The steps as the ledger made them before its server-side functions: client-driven transactions
 * with the same SQL, locks and statements, on a connection pool like the ledger's.
 */
function transactionStepper(sql: Sql, name: string): Stepper {
  const boot = crypto.randomUUID();
  return {
    name,
    reserve: (request) => sql.begin(async (tx): Promise<ReserveResult> => {
      const constraints = request.checks.map((c) => c.constraint);
      const keys = request.checks.map((c) => c.key);
      const [, rows] = await Promise.all([
        tx`SELECT pg_advisory_xact_lock(l) FROM unnest(${lockKeys(request.checks, request.sub)}::bigint[]) AS l`,
        tx<Array<{ duty: string }>>`SELECT constraint_id, key, duty, sub, at FROM duty_entries
                      WHERE sub = ${request.sub} AND (constraint_id, key) IN (SELECT * FROM unnest(${constraints}::text[], ${keys}::text[]))`,
      ]);
      if (rows.some((r) => r.duty !== request.duty)) throw new Error(`${name}: conflict`);
      const reservation = newReservation(request, boot);
      await tx`INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation, boot)
               SELECT c, k, ${request.sub}, ${request.duty}, ${request.at}, ${reservation.id}, ${boot}
               FROM unnest(${constraints}::text[], ${keys}::text[]) AS u(c, k)`;
      return { ok: true, reservation, facts: [] };
    }),
    confirm: async (reservation) => {
      await sql.begin(async (tx) => {
        await Promise.all([
          tx`SELECT pg_advisory_xact_lock(l) FROM unnest(${lockKeys(reservation.checks, reservation.sub)}::bigint[]) AS l`,
          ...reservation.checks.map((c) => tx`
            WITH touched AS (
              UPDATE duty_entries SET at = greatest(at, ${reservation.at})
               WHERE constraint_id = ${c.constraint} AND key = ${c.key} AND sub = ${reservation.sub} AND duty = ${reservation.duty} AND reservation IS NULL
              RETURNING id
            ), settled AS (
              UPDATE duty_entries SET reservation = NULL, boot = NULL
               WHERE reservation = ${reservation.id} AND constraint_id = ${c.constraint} AND key = ${c.key} AND NOT EXISTS (SELECT 1 FROM touched)
              RETURNING id
            )
            INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation, boot)
            SELECT ${c.constraint}, ${c.key}, ${reservation.sub}, ${reservation.duty}, ${reservation.at}, NULL, NULL
             WHERE NOT EXISTS (SELECT 1 FROM touched) AND NOT EXISTS (SELECT 1 FROM settled)`),
          ...reservation.checks.map((c) => tx`
            DELETE FROM duty_entries WHERE constraint_id = ${c.constraint} AND key = ${c.key} AND sub = ${reservation.sub} AND duty = ${reservation.duty} AND reservation IS NOT NULL`),
          tx`DELETE FROM duty_entries WHERE reservation = ${reservation.id}`,
        ]);
      });
    },
  };
}

function fillPostgres(pg: TestPostgres, database: string): void {
  pg.psql(`INSERT INTO duty_entries (constraint_id, key, sub, duty, at) SELECT '${CONSTRAINT}', 'c' || (i / 3), 'user' || (i % 5000), (ARRAY['${DUTIES.join("','")}'])[i % 3 + 1], ${T0} + i FROM generate_series(0, ${ENTRIES - 1}) AS i; ANALYZE duty_entries`, database);
}

async function postgresRows(synchronousCommit: "on" | "off"): Promise<Row[] | string> {
  const unavailable = postgresUnavailable();
  if (unavailable) return unavailable;
  const pg = await startTestPostgres({ settings: { fsync: "on", synchronous_commit: synchronousCommit, full_page_writes: "on" } });
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const password = readFileSync(pg.passwordFile, "utf8").trim();
    const urls = ["bench_function", "bench_transaction"].map((name) => pg.createDatabase(name));
    for (const url of urls) {
      await (await openPostgresLedger({ url, password, ...OPTIONS })).close(); // creates the schema
      fillPostgres(pg, new URL(url).pathname.slice(1));
    }
    const ledger = await openPostgresLedger({ url: urls[0]!, password, ...OPTIONS, timeoutMs: 30_000 });
    closers.push(() => ledger.close());
    const { default: driver } = await import("postgres");
    const sql = driver({ host: "127.0.0.1", port: pg.port, user: PG_ROLE, database: new URL(urls[1]!).pathname.slice(1), pass: password, max: 10, fetch_types: false, onnotice: () => {} });
    closers.push(() => sql.end());
    // The confirm as it was before it stopped waiting for its WAL flush: the same ledger's
    // reserve, then the flushed function on a connection of the same database.
    const flushed = driver({ host: "127.0.0.1", port: pg.port, user: PG_ROLE, database: new URL(urls[0]!).pathname.slice(1), pass: password, max: 10, fetch_types: false, onnotice: () => {} });
    closers.push(() => flushed.end());
    const setting = `loopback, fsync on, synchronous_commit ${synchronousCommit}`;
    return await measureInterleaved([
      { name: `postgres 15 (${setting}): one function call each`, reserve: (r) => ledger.reserve(r), confirm: (r) => ledger.confirm(r) },
      ...(synchronousCommit === "on" ? [{
        name: `postgres 15 (${setting}): one function call each, confirm waiting for its flush, as before`,
        reserve: (r: ReserveRequest) => ledger.reserve(r),
        confirm: async (r: Reservation) => {
          const constraints = r.checks.map((c) => c.constraint);
          const keys = r.checks.map((c) => c.key);
          await flushed`SELECT dutygate_confirm_1(${ledger.id}::text, ${lockKeys(r.checks, r.sub)}::bigint[], ${constraints}::text[], ${keys}::text[],
                                                  ${r.sub}::text, ${r.duty}::text, ${r.at}::bigint, ${r.id}::text)`;
        },
      }] : []),
      transactionStepper(sql, `postgres 15 (${setting}): client-driven transactions, as before`),
    ], 2000);
  } finally {
    for (const close of closers) await close().catch(() => {});
    await pg.destroy();
  }
}

/** The filesystem type `dir` sits on (the longest mount point of /proc/mounts above it), or `?`. */
function filesystemOf(dir: string): string {
  try {
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")).filter((f) => f.length > 2);
    const above = mounts.filter(([, point]) => dir === point || dir.startsWith(point === "/" ? "/" : `${point}/`));
    return above.sort((a, b) => b[1]!.length - a[1]!.length)[0]?.[2] ?? "?";
  } catch {
    return "?";
  }
}

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** Runs the ledger section; returns the lines to print. */
export async function runLedgerSection(): Promise<string[]> {
  const before = loadavg();
  const sqlite = await sqliteRows();
  const pauses = await checkpointPauses();
  // synchronous_commit off shows what the commit's WAL flush costs; it is not a setting for the
  // ledger's server (a crash may lose the last commits: facts the ledger then forgets).
  const postgres = STORES.has("postgres") ? [await postgresRows("on"), await postgresRows("off")] : [];
  const lines = [
    `${cpus()[0]?.model ?? "cpu"} ×${cpus().length}, Bun ${Bun.version}, ${process.platform}, load average ${before.map((l) => l.toFixed(1)).join(" ")} (start), ${loadavg().map((l) => l.toFixed(1)).join(" ")} (end)`,
    `disk rows: ${tmpdir()} (${filesystemOf(tmpdir())}); tmpfs rows: /dev/shm (${filesystemOf("/dev/shm")})`,
    `reserve + confirm of one guarded step, one at a time: ${int(STEPS)} steps after ${WARMUP} warm-up per row, ${int(ENTRIES)} entries already held; rows of one block interleaved in rounds of ${ROUND}`,
    "",
    "| store | reserve+confirm p50 µs | p99 µs | steps/s | target p99 | met | p50 vs sqlite |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const row of [...sqlite, ...postgres.flat()]) {
    if (typeof row === "string") {
      lines.push(`| postgres 15 | not measured: ${row} | | | ≤ 2 ms | | |`);
      continue;
    }
    const target = row.targetP99 >= 1000 ? `≤ ${row.targetP99 / 1000} ms` : `≤ ${row.targetP99} µs`;
    lines.push(`| ${row.store} | ${fmt(row.p50)} | ${fmt(row.p99)} | ${int(row.stepsPerSecond)} | ${target} | ${row.p99 <= row.targetP99 ? "yes" : "no"} | ${(row.p50 / sqlite[0]!.p50).toFixed(1)}× |`);
  }
  if (BEFORE) {
    lines.push("", `This tree against --before ${BEFORE} (SQLite rows of the same run):`, "", "| store | p50 after/before | p99 after/before |", "|---|---|---|");
    for (const row of sqlite) {
      const earlier = sqlite.find((r) => r.store === `${row.store} [before]`);
      if (earlier) lines.push(`| ${row.store} | ${(row.p50 / earlier.p50).toFixed(2)}× | ${(row.p99 / earlier.p99).toFixed(2)}× |`);
    }
  }
  lines.push(
    "",
    `The SQLite ledger's checkpoints under writes with no gap: steps back to back for ${PAUSE_SECONDS} s per round, one ledger at a time, two rounds`,
    "",
    "| file on | steps | seconds | longest step ms | longest pause between steps ms | steps and pauses over 1 ms |",
    "|---|---|---|---|---|---|",
    ...pauses.map((p) => `| ${p.where} | ${int(p.steps)} | ${p.seconds.toFixed(1)} | ${fmt(p.longestStepMs)} | ${fmt(p.longestPauseMs)} | ${p.over1ms} |`),
  );
  return lines;
}
