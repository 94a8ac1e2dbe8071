// The embedded duty ledger: one SQLite file in the state directory. Check-and-insert runs inside
// one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before reading, so two
// gateway processes sharing the file (on one VM) serialise their reserves and can never both
// pass the same person for two duties. https://www.sqlite.org/lang_transaction.html
import { closeSync, mkdirSync, openSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import process from "node:process";
import { findSeparationConflict, type LedgerFact, type SeparationCheck } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import {
  assertDutyInChecks,
  ledgerClosedError,
  newReservation,
  pendingStateOf,
  resolveLedgerOptions,
  type DutyLedger,
  type LedgerOptions,
  type PendingReservation,
  type Reservation,
  type ReserveRequest,
  type ReserveResult,
  type ResolvedLedgerOptions,
} from "./ledger.ts";
import { WalCheckpointer } from "./checkpointer.ts";
import { openSqlDatabase, type SqlDatabase, type SqlRow, type SqlStatement } from "./sqlite-driver.ts";

/**
 * `PRAGMA user_version` of a ledger file: it counts the changes an older gateway could not read
 * past. Additions it can ignore ({@link SCHEMA_ADDITIONS}) keep the version.
 */
export const LEDGER_SCHEMA_VERSION = 1;

/** Default wait for another process's transaction before failing with `LEDGER_BUSY`. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

// One row per (constraint, key) and person-duty. `reservation` is the reservation id until the
// upstream's answer (or an operator) settles it, and NULL once confirmed; at most one confirmed row
// per (constraint, key, sub, duty) exists, so repeating a duty does not grow the table.
const SCHEMA_V1 = [
  `CREATE TABLE IF NOT EXISTS duty_entries (
     id INTEGER PRIMARY KEY,
     constraint_id TEXT NOT NULL,
     key TEXT NOT NULL,
     sub TEXT NOT NULL,
     duty TEXT NOT NULL,
     at INTEGER NOT NULL,
     reservation TEXT
   )`,
  // Every reserve and lookup asks for one person's entries on one (constraint, key).
  // The index covers the query: no table lookups.
  `CREATE INDEX IF NOT EXISTS duty_entries_by_key ON duty_entries (constraint_id, key, sub, at, duty, reservation)`,
  `CREATE INDEX IF NOT EXISTS duty_entries_pending ON duty_entries (reservation) WHERE reservation IS NOT NULL`,
  // Prune deletes by age; without this it would scan the whole table under the write lock.
  `CREATE INDEX IF NOT EXISTS duty_entries_by_time ON duty_entries (at)`,
];

/**
 * Additions an older gateway reads past (a nullable column, tables it never names): each is made
 * when missing, on any open, without raising {@link LEDGER_SCHEMA_VERSION}, so that the previous
 * build still opens the file and rolling a binary back keeps working.
 */
const SCHEMA_ADDITIONS: ReadonlyArray<{ present: string; add: readonly string[] }> = [
  // Which process made each reservation, so that one left by a process that died between
  // forwarding and the upstream's answer is known for what it is: of unknown outcome. `boot` is
  // NULL on confirmed rows (and on reservations written by a build before it: of unknown outcome).
  // `ledger_boots` lists the processes using the file; a clean close removes its own row.
  {
    present: "SELECT 1 AS present FROM pragma_table_info('duty_entries') WHERE name = 'boot'",
    add: ["ALTER TABLE duty_entries ADD COLUMN boot TEXT"],
  },
  {
    present: "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'ledger_boots'",
    add: [`CREATE TABLE ledger_boots (boot TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at INTEGER NOT NULL)`],
  },
  // The ledger's identity, drawn once when the file is created (or first opened by this build): the
  // state directory records it, so that a ledger deleted or swapped for another is noticed at start.
  {
    present: "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'ledger_meta'",
    add: [
      `CREATE TABLE ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      `INSERT INTO ledger_meta (name, value) VALUES ('ledger_id', lower(hex(randomblob(16))))`,
    ],
  },
];

/** Boots of this process still open: a boot row with our own pid is running only if listed here. */
const openBoots = new Set<string>();

/** Options of {@link openSqliteLedger}. */
export interface SqliteLedgerOptions extends LedgerOptions {
  /** The SQLite file (created with mode 0600 when missing, parent directories too); `:memory:` for a private in-memory database. */
  path: string;
  /** How long a call waits for another process holding the write lock before `LEDGER_BUSY`. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * How often the WAL is checkpointed into the database file (milliseconds). SQLite would otherwise
   * checkpoint (and fsync) inside whichever commit crosses 1000 WAL pages, stalling that request;
   * a thread of its own takes that off the request path and batches many commits into one fsync.
   * `0` keeps SQLite's automatic checkpoints. Default {@link DEFAULT_CHECKPOINT_EVERY_MS}.
   */
  checkpointEveryMs?: number;
  /**
   * Told (once) when the checkpoints run on the event loop instead of their thread, and why: the
   * thread could not start, or ended. Requests then wait for each checkpoint's fsyncs.
   */
  onWarning?: (message: string, fields: Record<string, unknown>) => void;
  /** @internal the checkpoint thread's entry (tests give one that fails). */
  checkpointWorkerUrl?: URL;
}

/** Default WAL checkpoint interval: once a second. */
export const DEFAULT_CHECKPOINT_EVERY_MS = 1000;

/**
 * The WAL size (pages) at which a commit checkpoints on the ledger's own connection after all,
 * as SQLite does by default at 1000. The checkpoint thread copies the WAL without stopping the
 * writes, so under sustained writes it never finds the WAL fully copied with no commit since,
 * which is when the next commit starts the WAL over; the WAL would grow for as long as the
 * writes go on. At this size a commit copies what the thread has not yet (at most one interval's
 * worth) and waits for that checkpoint's fsyncs, then the WAL starts over: 64 MiB at most, one
 * such wait per 64 MiB written under sustained load, none when the writes leave the thread a gap.
 */
const WAL_RESTART_PAGES = 16384;

/**
 * Opens (creating or migrating) the SQLite duty ledger at `path`: WAL journal, `synchronous=NORMAL`,
 * a busy timeout for sharing the file between processes. Uses bun:sqlite under Bun and node:sqlite
 * under Deno. Fails with `LEDGER_OPEN_FAILED` or `LEDGER_SCHEMA_TOO_NEW`.
 *
 * @example
 * const ledger = await openSqliteLedger({ path: "state/ledger.sqlite", retentionDays: 400 });
 */
export async function openSqliteLedger(options: SqliteLedgerOptions): Promise<SqliteDutyLedger> {
  const resolved = resolveLedgerOptions(options);
  const { path } = options;
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `busyTimeoutMs must be a whole number of milliseconds, got \`${String(busyTimeoutMs)}\``);
  }
  const checkpointEveryMs = options.checkpointEveryMs ?? DEFAULT_CHECKPOINT_EVERY_MS;
  if (!Number.isSafeInteger(checkpointEveryMs) || checkpointEveryMs < 0) {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `checkpointEveryMs must be a whole number of milliseconds, got \`${String(checkpointEveryMs)}\``);
  }
  let db: SqlDatabase | undefined;
  try {
    if (path !== ":memory:") createPrivateFile(path);
    db = await openSqlDatabase(path);
    db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
    if (path !== ":memory:") db.exec("PRAGMA journal_mode = WAL");
    // In WAL mode NORMAL never corrupts; a power cut may lose the last commits (not the file).
    db.exec("PRAGMA synchronous = NORMAL");
    if (path !== ":memory:" && checkpointEveryMs > 0) db.exec(`PRAGMA wal_autocheckpoint = ${WAL_RESTART_PAGES}`);
    migrate(db, path);
  } catch (error) {
    try { db?.close(); } catch { /* already failing */ }
    if (error instanceof GatewayError) throw error;
    throw new GatewayError("LEDGER_OPEN_FAILED", `cannot open the duty ledger \`${path}\`: ${messageOf(error)}`, { path });
  }
  const ledger = new SqliteDutyLedger(db, path, resolved, busyTimeoutMs);
  try {
    ledger.registerBoot(Date.now());
  } catch (error) {
    await ledger.close();
    throw new GatewayError("LEDGER_OPEN_FAILED", `cannot write the duty ledger \`${path}\`: ${messageOf(error)}`, { path });
  }
  if (path !== ":memory:" && checkpointEveryMs > 0) {
    const onWarning = options.onWarning;
    ledger.useCheckpointer(await WalCheckpointer.start({
      db,
      path,
      everyMs: checkpointEveryMs,
      workerUrl: options.checkpointWorkerUrl,
      onFallback: (reason) => onWarning?.(`duty ledger checkpoints run on the event loop: ${reason}`, { ledger: path }),
    }));
  }
  return ledger;
}

function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  // Opening for append creates the file with mode 0600 and never truncates an existing one;
  // SQLite gives its -wal and -shm files the same mode.
  closeSync(openSync(path, "a", 0o600));
}

function migrate(db: SqlDatabase, path: string): void {
  const readVersion = () => Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
  const missing = () => SCHEMA_ADDITIONS.filter((a) => db.prepare(a.present).get() === undefined);
  const version = readVersion();
  if (version === LEDGER_SCHEMA_VERSION && missing().length === 0) return;
  if (version > LEDGER_SCHEMA_VERSION) {
    throw new GatewayError(
      "LEDGER_SCHEMA_TOO_NEW",
      `the duty ledger \`${path}\` has schema version ${version}, this gateway knows up to ${LEDGER_SCHEMA_VERSION}`,
      { path, version },
    );
  }
  // Another process may be migrating right now: take the write lock, then look again.
  db.exec("BEGIN IMMEDIATE");
  try {
    if (readVersion() === 0) for (const sql of SCHEMA_V1) db.exec(sql);
    for (const addition of missing()) for (const sql of addition.add) db.exec(sql);
    db.exec(`PRAGMA user_version = ${LEDGER_SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    try { db.exec("ROLLBACK"); } catch { /* no transaction left */ }
    throw error;
  }
}

interface EntryRow extends SqlRow {
  duty: string;
  sub: string;
  at: number;
}

interface EntryIdRow extends SqlRow {
  id: number;
  duty: string;
  reservation: string | null;
}

interface PendingRow extends EntryRow {
  reservation: string;
  constraint_id: string;
  key: string;
  boot: string | null;
}

interface BootRow extends SqlRow {
  boot: string;
  host: string;
  pid: number;
}

/**
 * Whether the process of a boot row still runs. Another host's process cannot be asked (the file
 * must be on a local disk, so that is rare): it counts as running and the TTL decides. Our own pid
 * on another boot is an earlier process whose pid we got again (a container's pid 1 restarted),
 * unless that boot is a second ledger opened by this very process.
 */
function bootRunning(row: BootRow, ownHost: string): boolean {
  if (row.host !== ownHost) return true;
  if (Number(row.pid) === process.pid) return openBoots.has(row.boot);
  try {
    process.kill(Number(row.pid), 0);
    return true;
  } catch (error) {
    // EPERM: it runs under another user. Anything but "no such process" counts as running.
    return (error as { code?: unknown }).code !== "ESRCH";
  }
}

/** The duty ledger in one SQLite file. Open it with {@link openSqliteLedger}. */
export class SqliteDutyLedger implements DutyLedger {
  /** The file, as opened. */
  readonly path: string;
  /** This process's use of the file; recorded with each reservation. */
  readonly boot = crypto.randomUUID();
  /** The ledger's identity (32 hex digits), drawn when the file was created; copies keep it. */
  readonly id: string;
  readonly #db: SqlDatabase;
  readonly #options: ResolvedLedgerOptions;
  readonly #busyTimeoutMs: number;
  #checkpointer: WalCheckpointer | undefined;
  #closed = false;
  readonly #sql: Record<
    | "begin" | "commit" | "rollback" | "facts" | "insert" | "dropReservation" | "entries" | "touchById" | "settleById"
    | "dropById" | "prune" | "count" | "pending" | "abandon" | "boots" | "addBoot" | "dropBoot",
    SqlStatement
  >;

  /** @internal use {@link openSqliteLedger} */
  constructor(db: SqlDatabase, path: string, options: ResolvedLedgerOptions, busyTimeoutMs: number) {
    this.#db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.path = path;
    this.id = String(db.prepare("SELECT value FROM ledger_meta WHERE name = 'ledger_id'").get()?.value ?? "");
    this.#options = options;
    const p = (sql: string) => db.prepare(sql);
    this.#sql = {
      begin: p("BEGIN IMMEDIATE"),
      commit: p("COMMIT"),
      rollback: p("ROLLBACK"),
      facts: p("SELECT duty, sub, at FROM duty_entries WHERE constraint_id = ? AND key = ? AND sub = ?"),
      insert: p("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation, boot) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      dropReservation: p("DELETE FROM duty_entries WHERE reservation = ?"),
      // The index on (constraint_id, key, sub, …) covers it: a row id is in every index entry.
      entries: p("SELECT id, duty, reservation FROM duty_entries WHERE constraint_id = ? AND key = ? AND sub = ?"),
      touchById: p("UPDATE duty_entries SET at = max(at, ?) WHERE id = ?"),
      settleById: p("UPDATE duty_entries SET reservation = NULL, boot = NULL WHERE id = ?"),
      dropById: p("DELETE FROM duty_entries WHERE id = ?"),
      prune: p("DELETE FROM duty_entries WHERE at < ?"),
      count: p("SELECT count(*) AS n FROM duty_entries"),
      // Reservations are few (requests in flight, and those an operator has yet to settle).
      pending: p(
        `SELECT reservation, constraint_id, key, sub, duty, at, boot FROM duty_entries INDEXED BY duty_entries_pending
          WHERE reservation IS NOT NULL ORDER BY at, id`,
      ),
      // No boot: nobody will settle it, as for a reservation whose process ended.
      abandon: p("UPDATE duty_entries SET boot = NULL WHERE reservation = ?"),
      boots: p("SELECT boot, host, pid FROM ledger_boots"),
      addBoot: p("INSERT INTO ledger_boots (boot, host, pid, started_at) VALUES (?, ?, ?, ?)"),
      dropBoot: p("DELETE FROM ledger_boots WHERE boot = ?"),
    };
  }

  /**
   * @internal called once by {@link openSqliteLedger}.
   * Records this boot and forgets boots whose process has ended (their reservations then read as
   * `unknown`). Being a write, it also proves at start that the file and its WAL index can be
   * written, rather than failing the first guarded request.
   */
  registerBoot(now: number): void {
    const host = hostname();
    this.#transaction(() => {
      for (const row of this.#sql.boots.all() as BootRow[]) {
        if (!bootRunning(row, host)) this.#sql.dropBoot.run(row.boot);
      }
      this.#sql.addBoot.run(this.boot, host, process.pid, now);
    });
    openBoots.add(this.boot);
  }

  /** @internal called once by {@link openSqliteLedger}. */
  useCheckpointer(checkpointer: WalCheckpointer): void {
    this.#checkpointer = checkpointer;
  }

  /** Where the WAL checkpoints run: their own `thread`, the `event loop` (see `onWarning`), or `none` (`:memory:`, `checkpointEveryMs: 0`, closed). */
  get checkpoints(): "thread" | "event loop" | "none" {
    const on = this.#checkpointer?.on ?? "stopped";
    return on === "stopped" ? "none" : on;
  }

  /** Which SQLite driver is underneath (`bun:sqlite` or `node:sqlite`). */
  get driver(): SqlDatabase["driver"] {
    return this.#db.driver;
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    this.#open();
    assertDutyInChecks(request.checks, request.duty);
    return this.#transaction((): ReserveResult => {
      const facts: LedgerFact[] = [];
      for (const check of request.checks) {
        const found = this.#factsFor(check, request.sub);
        facts.push(...found);
        const conflict = findSeparationConflict([check], request.sub, request.duty, found);
        if (conflict) return { ok: false, conflict: conflict.fact, check, facts };
      }
      const reservation = newReservation(request, this.boot);
      for (const check of request.checks) {
        this.#sql.insert.run(check.constraint, check.key, request.sub, request.duty, request.at, reservation.id, this.boot);
      }
      return { ok: true, reservation, facts };
    });
  }

  async confirm(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    this.#transaction(() => {
      // One read per key, then writes by row id: two statements in the usual case (the pending row
      // becomes confirmed), where a statement per rule took four (docs/performance.md).
      const settled = new Set<number>();
      const dropped = new Set<number>();
      for (const check of reservation.checks) {
        const rows = this.#sql.entries.all(check.constraint, check.key, reservation.sub) as EntryIdRow[];
        const sameDuty = rows.filter((r) => r.duty === reservation.duty);
        // Keep one confirmed row per person-duty, carrying the latest time (retention counts from it).
        const confirmed = sameDuty.filter((r) => r.reservation === null && !dropped.has(r.id));
        for (const row of confirmed) this.#sql.touchById.run(reservation.at, row.id);
        if (confirmed.length === 0) {
          // Usually the pending row simply becomes confirmed; when it was released (by an operator
          // who took the request for dead) or pruned, the action still happened and is recorded anew.
          const own = rows.filter((r) => r.reservation === reservation.id);
          for (const row of own) { this.#sql.settleById.run(row.id); settled.add(row.id); }
          if (own.length === 0) this.#sql.insert.run(check.constraint, check.key, reservation.sub, reservation.duty, reservation.at, null, null);
        }
        // The person's other reservations for this duty on this key (a timed-out try before this
        // one, or this one where a confirmed row was touched instead) could only ever add what the
        // fact now says: they are settled with it.
        for (const row of sameDuty) if (row.reservation !== null && !settled.has(row.id)) dropped.add(row.id);
      }
      for (const id of dropped) if (!settled.has(id)) this.#sql.dropById.run(id);
    });
  }

  async release(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    // One statement is its own transaction.
    this.#guard(() => this.#sql.dropReservation.run(reservation.id));
  }

  async abandon(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    this.#guard(() => this.#sql.abandon.run(reservation.id));
  }

  async lookup(checks: readonly SeparationCheck[], sub: string): Promise<LedgerFact[]> {
    this.#open();
    return this.#guard(() => checks.flatMap((check) => this.#factsFor(check, sub)));
  }

  async pending(now: number = Date.now()): Promise<PendingReservation[]> {
    this.#open();
    return this.#guard(() => {
      const host = hostname();
      const running = new Map((this.#sql.boots.all() as BootRow[]).map((row) => [row.boot, bootRunning(row, host)]));
      const byId = new Map<string, { row: PendingRow; checks: Array<{ constraint: string; key: string }> }>();
      for (const row of this.#sql.pending.all() as PendingRow[]) {
        const entry = byId.get(row.reservation) ?? { row, checks: [] };
        entry.checks.push({ constraint: row.constraint_id, key: row.key });
        byId.set(row.reservation, entry);
      }
      return [...byId.values()].map(({ row, checks }): PendingReservation => {
        const at = Number(row.at);
        const boot = row.boot ?? "";
        return { id: row.reservation, duty: row.duty, sub: row.sub, at, checks, boot, state: pendingStateOf(at, now, this.#options, running.get(boot) ?? false) };
      });
    });
  }

  async prune(now: number): Promise<number> {
    this.#open();
    // An infinite retention keeps everything; SQLite has no binding for -Infinity.
    if (!Number.isFinite(this.#options.retentionMs)) return 0;
    return this.#guard(() => this.#sql.prune.run(now - this.#options.retentionMs).changes);
  }

  async size(): Promise<number> {
    this.#open();
    return this.#guard(() => Number(this.#sql.count.get()?.n ?? 0));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // First, so that the last checkpoint below is not contended by the thread's.
    await this.#checkpointer?.stop();
    openBoots.delete(this.boot);
    // Reservations this boot leaves unsettled (requests cut at a stop deadline) now read as unknown.
    try { this.#sql.dropBoot.run(this.boot); } catch { /* a failing file: the boot reads as ended once this process is gone */ }
    // bun:sqlite closes lazily while prepared statements live, leaving the WAL unmerged: merge it
    // now, so that a stopped gateway leaves one self-contained file (what a copy or backup takes).
    // PASSIVE: a FULL or TRUNCATE checkpoint would hold off the writes of another gateway sharing
    // the file for up to the busy timeout; what PASSIVE cannot copy, the last process's close does.
    try { this.#db.exec("PRAGMA wal_checkpoint(PASSIVE)"); } catch { /* busy or failing: the next close merges it */ }
    this.#db.close();
  }

  #open(): void {
    if (this.#closed) throw ledgerClosedError();
  }

  #factsFor(check: SeparationCheck, sub: string): LedgerFact[] {
    const rows = this.#sql.facts.all(check.constraint, check.key, sub) as EntryRow[];
    // Sorted here, not by ORDER BY: a person has a handful of entries per key, and SQLite's ORDER BY
    // cost more than the whole indexed lookup in the benchmark even with the index already in order.
    if (rows.length > 1) rows.sort((a, b) => Number(a.at) - Number(b.at));
    return rows.map((r) => ({ constraint: check.constraint, key: check.key, duty: r.duty, sub: r.sub, at: Number(r.at) }));
  }

  #transaction<T>(body: () => T): T {
    return this.#guard(() => {
      this.#sql.begin.run();
      try {
        const result = body();
        this.#sql.commit.run();
        return result;
      } catch (error) {
        try { this.#sql.rollback.run(); } catch { /* the transaction is already gone */ }
        throw error;
      }
    });
  }

  /** Turns driver errors into coded ones; a ledger that cannot answer must deny, never allow. */
  #guard<T>(body: () => T): T {
    try {
      return body();
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      const message = messageOf(error);
      if (/SQLITE_BUSY|database is locked/i.test(message) || (error as { code?: unknown }).code === "SQLITE_BUSY") {
        throw new GatewayError("LEDGER_BUSY", `the duty ledger \`${this.path}\` stayed locked by another process for ${this.#busyTimeoutMs} ms`, { path: this.path });
      }
      throw new GatewayError("LEDGER_STORE_FAILED", `the duty ledger \`${this.path}\` failed: ${message}`, { path: this.path });
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
