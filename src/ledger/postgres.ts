// The shared duty ledger: one PostgreSQL database for every gateway instance of a fleet.
//
// Race safety across instances: a reserve is one call of a server-side function (one statement,
// one round trip, its own READ COMMITTED transaction) that first takes a transaction-scoped
// advisory lock per (constraint, key, sub) it is about to read, then reads and inserts. A second
// instance reserving for the same person on the same key waits on the lock, and its read (a later
// statement of the function, so a later snapshot) sees the first one's committed rows. Only the same person's rows can conflict, so the lock is per person: other people's
// requests on the same change never wait. Locks are taken in one sorted order, so two
// multi-constraint reserves cannot deadlock. https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS
//
// Failing closed: every call has a deadline (`timeoutMs`). A call that fails to reach the server
// or outlives its deadline throws `LEDGER_UNAVAILABLE` and marks the store down; while down, calls
// fail at once (the gateway answers 503) and a probe reconnects with exponential backoff.
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import process from "node:process";
import type { Sql } from "postgres";
import { findSeparationConflict, type LedgerFact, type SeparationCheck } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import {
  assertDutyInChecks,
  ledgerClosedError,
  newReservation,
  pendingStateOf,
  resolveLedgerOptions,
  type DutyLedger,
  type LedgerAvailability,
  type LedgerOptions,
  type PendingReservation,
  type Reservation,
  type ReserveRequest,
  type ReserveResult,
  type ResolvedLedgerOptions,
} from "./ledger.ts";
import { parsePostgresUrl, type PostgresTarget } from "./postgres-url.ts";

/** The schema this code writes; `schema_version` in the table `ledger_meta`. */
export const POSTGRES_LEDGER_SCHEMA_VERSION = 1;

/** Default deadline of one ledger call, connecting included. */
export const DEFAULT_POSTGRES_TIMEOUT_MS = 2000;

// Version 1. One row per (constraint, key) and person-duty, as in the SQLite ledger: `reservation`
// is the reservation id until the upstream's answer (or an operator) settles it, NULL once
// confirmed. `ledger_boots` lists the processes using the database; `bundle_revision` holds the
// highest accepted policy bundle revision of the whole fleet.
const SCHEMA_V1 = [
  `CREATE TABLE duty_entries (
     id BIGSERIAL PRIMARY KEY,
     constraint_id TEXT NOT NULL,
     key TEXT NOT NULL,
     sub TEXT NOT NULL,
     duty TEXT NOT NULL,
     at BIGINT NOT NULL,
     reservation TEXT,
     boot TEXT
   )`,
  // Every reserve and lookup asks for one person's entries on one (constraint, key).
  `CREATE INDEX duty_entries_by_key ON duty_entries (constraint_id, key, sub) INCLUDE (duty, at, reservation)`,
  // One confirmed row per person-duty: confirm touches it instead of adding another.
  `CREATE UNIQUE INDEX duty_entries_confirmed ON duty_entries (constraint_id, key, sub, duty) WHERE reservation IS NULL`,
  `CREATE INDEX duty_entries_pending ON duty_entries (reservation) WHERE reservation IS NOT NULL`,
  `CREATE INDEX duty_entries_by_time ON duty_entries (at)`,
  `CREATE TABLE ledger_boots (
     boot TEXT PRIMARY KEY,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     started_at BIGINT NOT NULL
   )`,
  `CREATE TABLE bundle_revision (
     one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
     revision BIGINT NOT NULL,
     digest TEXT NOT NULL,
     accepted_at TIMESTAMPTZ NOT NULL DEFAULT now()
   )`,
];

/** Schema steps by the version they lead to: a database at version v runs the steps after v. */
const MIGRATIONS: ReadonlyArray<readonly string[]> = [SCHEMA_V1];

// The reserve and the confirm as server-side functions, so that each is one round trip: one
// statement, run in its own implicit transaction, whose locks go with its commit. A VOLATILE
// function takes a fresh snapshot for each statement it runs, so the read after the lock sees what
// the lock's previous holder committed, as separate statements of a transaction would
// (https://www.postgresql.org/docs/15/xfunc-volatility.html). Both first check that the database
// still holds this gateway's ledger (`p_ledger`): a database swapped behind a pool that reconnected
// on its own is caught at the next guarded step, not after it.
//
// Their statements run on generic plans, planned once per connection: a custom plan, which
// PL/pgSQL otherwise keeps choosing for statements over array parameters, is planned again on
// every call and cost the reserve four times its execution (bench/scale/ledger.ts). The generic
// plans are index scans whatever the arrays hold.
//
// Additions an older gateway ignores, like the SQLite ledger's: they are created on any open that
// finds them missing and leave `schema_version` as it is, so the previous build still opens the
// database (a binary rollback, or an old instance restarting during a rolling upgrade). A change to
// one of them is a new name (`_2`), never a new body under the old name: instances of two builds
// may serve from one database at once.
const FUNCTIONS: ReadonlyArray<{ name: string; create: string }> = [
  {
    name: "dutygate_reserve_1",
    // p_constraints, p_keys: the checks; p_named_*: every (constraint, key, duty) they name. The
    // verdict is the history rule (`findSeparationConflict`, dsl/separation.ts): a fact conflicts
    // when it is of another duty that its separation names.
    create: `CREATE OR REPLACE FUNCTION dutygate_reserve_1(
       p_ledger TEXT, p_locks BIGINT[], p_constraints TEXT[], p_keys TEXT[],
       p_named_constraints TEXT[], p_named_keys TEXT[], p_named_duties TEXT[],
       p_sub TEXT, p_duty TEXT, p_at BIGINT, p_reservation TEXT, p_boot TEXT)
     RETURNS TABLE (f_constraint TEXT, f_key TEXT, f_duty TEXT, f_at BIGINT, f_reserved BOOLEAN)
     LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
     DECLARE held TEXT;
     BEGIN
       SELECT m.value INTO held FROM ledger_meta m WHERE m.name = 'ledger_id';
       IF held IS DISTINCT FROM p_ledger THEN
         RAISE EXCEPTION USING ERRCODE = 'DG001', MESSAGE = coalesce(held, '');
       END IF;
       PERFORM pg_advisory_xact_lock(l.k) FROM unnest(p_locks) WITH ORDINALITY AS l(k, n) ORDER BY l.n;
       -- One statement, one snapshot: the facts returned are the facts the insert was decided on.
       RETURN QUERY
         WITH facts AS MATERIALIZED (
           SELECT e.constraint_id, e.key, e.duty, e.at FROM duty_entries e
            WHERE e.sub = p_sub AND (e.constraint_id, e.key) IN (SELECT * FROM unnest(p_constraints, p_keys))
         ), verdict AS (
           SELECT NOT EXISTS (
             SELECT 1 FROM facts WHERE facts.duty <> p_duty
                AND (facts.constraint_id, facts.key, facts.duty) IN (SELECT * FROM unnest(p_named_constraints, p_named_keys, p_named_duties))
           ) AS reserved
         ), added AS (
           INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation, boot)
           SELECT u.c, u.k, p_sub, p_duty, p_at, p_reservation, p_boot
             FROM unnest(p_constraints, p_keys) AS u(c, k), verdict WHERE verdict.reserved
           RETURNING 1 -- run to completion although nothing reads it
         )
         SELECT facts.constraint_id, facts.key, facts.duty, facts.at, verdict.reserved FROM facts, verdict
         UNION ALL
         -- No facts: one row that only carries the verdict.
         SELECT NULL, NULL, NULL, NULL, verdict.reserved FROM verdict WHERE NOT EXISTS (SELECT 1 FROM facts);
     END
     $fn$`,
  },
  {
    name: "dutygate_confirm_1",
    create: `CREATE OR REPLACE FUNCTION dutygate_confirm_1(
       p_ledger TEXT, p_locks BIGINT[], p_constraints TEXT[], p_keys TEXT[],
       p_sub TEXT, p_duty TEXT, p_at BIGINT, p_reservation TEXT)
     RETURNS VOID
     LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
     DECLARE held TEXT;
     BEGIN
       SELECT m.value INTO held FROM ledger_meta m WHERE m.name = 'ledger_id';
       IF held IS DISTINCT FROM p_ledger THEN
         RAISE EXCEPTION USING ERRCODE = 'DG001', MESSAGE = coalesce(held, '');
       END IF;
       -- The same locks as the reserve: two confirms of one person-duty (a duty repeated at once on
       -- two instances) must not both find no confirmed row and both add one.
       PERFORM pg_advisory_xact_lock(l.k) FROM unnest(p_locks) WITH ORDINALITY AS l(k, n) ORDER BY l.n;
       FOR i IN 1 .. coalesce(array_length(p_constraints, 1), 0) LOOP
         -- The confirmed row of this person-duty is touched; else the reservation's row becomes it;
         -- else (released or pruned meanwhile: the duty was still performed) a row is added.
         WITH touched AS (
           UPDATE duty_entries SET at = greatest(at, p_at)
            WHERE constraint_id = p_constraints[i] AND key = p_keys[i] AND sub = p_sub
              AND duty = p_duty AND reservation IS NULL
           RETURNING id
         ), settled AS (
           UPDATE duty_entries SET reservation = NULL, boot = NULL
            WHERE reservation = p_reservation AND constraint_id = p_constraints[i] AND key = p_keys[i]
              AND NOT EXISTS (SELECT 1 FROM touched)
           RETURNING id
         )
         INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation, boot)
         SELECT p_constraints[i], p_keys[i], p_sub, p_duty, p_at, NULL, NULL
          WHERE NOT EXISTS (SELECT 1 FROM touched) AND NOT EXISTS (SELECT 1 FROM settled);
       END LOOP;
       -- The person's other reservations for this duty on these keys (a timed-out try before this
       -- one) could only ever add what the fact now says: they are settled with it.
       DELETE FROM duty_entries
        WHERE sub = p_sub AND duty = p_duty AND reservation IS NOT NULL
          AND (constraint_id, key) IN (SELECT * FROM unnest(p_constraints, p_keys));
       -- Pending rows left over where a confirmed row was touched instead.
       DELETE FROM duty_entries WHERE reservation = p_reservation;
     END
     $fn$`,
  },
  {
    name: "dutygate_confirm_2",
    // The confirm without waiting for its WAL flush. A confirm that a server crash loses leaves its
    // reservation pending, and a pending reservation counts as performed (the reserve before it
    // was flushed): the history after the crash is as strict as before it, never laxer. A later
    // flushed commit (the next reserve) flushes it too.
    create: `CREATE OR REPLACE FUNCTION dutygate_confirm_2(
       p_ledger TEXT, p_locks BIGINT[], p_constraints TEXT[], p_keys TEXT[],
       p_sub TEXT, p_duty TEXT, p_at BIGINT, p_reservation TEXT)
     RETURNS VOID
     LANGUAGE plpgsql VOLATILE AS $fn$
     BEGIN
       PERFORM set_config('synchronous_commit', 'off', true);
       PERFORM dutygate_confirm_1(p_ledger, p_locks, p_constraints, p_keys, p_sub, p_duty, p_at, p_reservation);
     END
     $fn$`,
  },
];

/** The advisory lock (two-key form, apart from the reserve locks' one-key form) that serialises migrations. */
const MIGRATION_LOCK = [0x64757479, 1] as const;

/** A boot's connections carry this application name: a boot is running while one is connected. */
const APPLICATION_PREFIX = "dutygate ";

/** Options of {@link openPostgresLedger}. */
export interface PostgresLedgerOptions extends LedgerOptions {
  /** `postgres://user@host:port/database`; no password (see `password`), no query. */
  url: string;
  /** The role's password (the config reads it from `password_file` or an environment variable). */
  password?: string;
  /** PEM of the CA that signed the server's certificate: TLS, with the certificate and host name verified. */
  ca?: string;
  /** Deadline of each call, connecting included (milliseconds). Default {@link DEFAULT_POSTGRES_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Connections in the pool. Default 10. */
  maxConnections?: number;
  /** Told when the store goes down or comes back (for the log). */
  onAvailability?: (availability: LedgerAvailability) => void;
  /**
   * The identity (`ledger_id`) the gateway's state directory recorded for this ledger: the open
   * refuses a database that holds no ledger (`LEDGER_MISSING`; nothing is created in it) or
   * another one (`LEDGER_REPLACED`). Absent: a database without a ledger gets a new one.
   */
  expectLedgerId?: string;
}

/**
 * Opens (creating or migrating the schema of) the PostgreSQL duty ledger at `url`. Fails with
 * `LEDGER_UNAVAILABLE` (the server cannot be reached, refuses the login, or does not answer
 * within `timeoutMs`), `LEDGER_SCHEMA_TOO_NEW`, `LEDGER_MISSING` or `LEDGER_REPLACED` (not the
 * ledger `expectLedgerId` names), `LEDGER_STORE_FAILED` or `LEDGER_BAD_OPTIONS`.
 *
 * @example
 * const ledger = await openPostgresLedger({ url: "postgres://dutygate@db.internal:5432/dutygate", password, ca, retentionDays: 400 });
 */
export async function openPostgresLedger(options: PostgresLedgerOptions): Promise<PostgresDutyLedger> {
  const resolved = resolveLedgerOptions(options);
  const target = parsePostgresUrl(options.url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_POSTGRES_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `timeoutMs must be a positive whole number of milliseconds, got \`${String(timeoutMs)}\``);
  }
  const maxConnections = options.maxConnections ?? 10;
  // Loaded on first use: a gateway on the SQLite ledger (and every other command) never pays for it.
  const { default: driver } = await import("postgres");
  const ledger = new PostgresDutyLedger(driver, target, options, resolved, timeoutMs, maxConnections);
  try {
    await ledger.initialise(Date.now(), options.expectLedgerId);
  } catch (error) {
    await ledger.close();
    throw error;
  }
  return ledger;
}

type PostgresDriver = typeof import("postgres").default;

interface FactRow {
  constraint_id: string;
  key: string;
  duty: string;
  sub: string;
  at: string | number;
}

interface ReserveRow {
  /** Null in the one row that carries only the verdict, when no fact was found. */
  constraint_id: string | null;
  key: string;
  duty: string;
  sub: string;
  at: string | number;
  reserved: boolean;
}

interface PendingRow extends FactRow {
  reservation: string;
  boot: string | null;
  running: boolean;
}

/** The duty ledger in a PostgreSQL database. Open it with {@link openPostgresLedger}. */
export class PostgresDutyLedger implements DutyLedger {
  /** Where the database is, without credentials. */
  readonly url: string;
  /** This process's use of the database; recorded with each reservation. */
  readonly boot = crypto.randomUUID();
  /** The ledger's identity, drawn when its schema was created. Set by {@link openPostgresLedger}. */
  id = "";
  /** Whether {@link openPostgresLedger} created the ledger (the database held none). */
  created = false;
  #sql: Sql;
  /** Opens a fresh connection pool; a pool is replaced whenever the store goes down. */
  readonly #connect: () => Sql;
  readonly #options: ResolvedLedgerOptions;
  readonly #timeoutMs: number;
  /** The server's `statement_timeout`: a little after the gateway's deadline (see the connection options). */
  readonly #statementTimeoutMs: number;
  readonly #onAvailability: ((availability: LedgerAvailability) => void) | undefined;
  #closed = false;
  #down: { reason: string; since: number } | null = null;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #probeAttempt = 0;

  /** @internal use {@link openPostgresLedger} */
  constructor(driver: PostgresDriver, target: PostgresTarget, options: PostgresLedgerOptions, resolved: ResolvedLedgerOptions, timeoutMs: number, maxConnections: number) {
    this.url = target.shown;
    this.#options = resolved;
    this.#timeoutMs = timeoutMs;
    this.#statementTimeoutMs = timeoutMs + Math.max(200, Math.ceil(timeoutMs / 4));
    this.#onAvailability = options.onAvailability;
    this.#connect = () => driver({
      host: target.host,
      port: target.port,
      user: target.user,
      database: target.database,
      // Explicit, so that PGPASSWORD and ~/.pgpass of whoever runs the gateway never apply.
      pass: options.password ?? "",
      ssl: options.ca ? { ca: options.ca, rejectUnauthorized: true, servername: target.host } : false,
      max: maxConnections,
      // Connections stay open: a boot is running while one of them is connected.
      idle_timeout: 0,
      max_lifetime: 0,
      connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
      // The gateway retries itself (see #markDown), with its own backoff.
      backoff: 0,
      fetch_types: false,
      onnotice: () => {},
      connection: {
        application_name: APPLICATION_PREFIX + this.boot,
        // The server gives up on what the gateway has given up on: a statement stuck on a lock, and
        // a transaction whose client stopped talking (its advisory locks go with it). A little after
        // the gateway's own deadline, so that the deadline is what a caller meets: a reserve is one
        // statement now, and its timeout would otherwise race the deadline.
        statement_timeout: this.#statementTimeoutMs,
        idle_in_transaction_session_timeout: Math.max(10 * timeoutMs, 10_000),
      },
    });
    this.#sql = this.#connect();
  }

  /**
   * @internal called once by {@link openPostgresLedger}: creates or migrates the schema, records
   * this boot and forgets boots that are no longer connected. Being a write, it proves at start that
   * the role may write.
   */
  async initialise(now: number, expectLedgerId?: string): Promise<void> {
    await this.#call("open", async () => {
      await this.#sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK[0]}::int, ${MIGRATION_LOCK[1]}::int)`;
        if (expectLedgerId !== undefined) {
          // Before anything is created: a database that lost its ledger must stay without one.
          const [meta] = await tx<Array<{ present: boolean }>>`SELECT to_regclass('ledger_meta') IS NOT NULL AS present`;
          const found = meta!.present ? (await tx<Array<{ value: string }>>`SELECT value FROM ledger_meta WHERE name = 'ledger_id'`)[0]?.value ?? null : null;
          if (found !== expectLedgerId) throw identityRefusal(this.url, expectLedgerId, found);
        }
        await tx`CREATE TABLE IF NOT EXISTS ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`;
        const rows = await tx<Array<{ value: string }>>`SELECT value FROM ledger_meta WHERE name = 'schema_version'`;
        const version = rows.length ? Number(rows[0]!.value) : 0;
        this.created = version === 0;
        if (version > POSTGRES_LEDGER_SCHEMA_VERSION) {
          throw new GatewayError(
            "LEDGER_SCHEMA_TOO_NEW",
            `the duty ledger \`${this.url}\` has schema version ${version}, this gateway knows up to ${POSTGRES_LEDGER_SCHEMA_VERSION}`,
            { url: this.url, version },
          );
        }
        for (const statement of MIGRATIONS.slice(version).flat()) await tx.unsafe(statement);
        const missing = await tx<Array<{ name: string }>>`SELECT name FROM unnest(${FUNCTIONS.map((f) => f.name)}::text[]) AS name WHERE to_regproc(name) IS NULL`;
        for (const { name } of missing) await tx.unsafe(FUNCTIONS.find((f) => f.name === name)!.create);
        if (version === 0) await tx`INSERT INTO ledger_meta (name, value) VALUES ('ledger_id', ${crypto.randomUUID().replaceAll("-", "")})`;
        await tx`INSERT INTO ledger_meta (name, value) VALUES ('schema_version', ${String(POSTGRES_LEDGER_SCHEMA_VERSION)})
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`;
        const [meta] = await tx<Array<{ value: string }>>`SELECT value FROM ledger_meta WHERE name = 'ledger_id'`;
        this.id = meta?.value ?? "";
        await tx`DELETE FROM ledger_boots b WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = ${APPLICATION_PREFIX} || b.boot)`;
        await tx`INSERT INTO ledger_boots (boot, host, pid, started_at) VALUES (${this.boot}, ${hostname()}, ${process.pid}, ${now})`;
      });
    }, { opening: true });
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    this.#open();
    assertDutyInChecks(request.checks, request.duty);
    const reservation = newReservation(request, this.boot);
    if (request.checks.length === 0) return { ok: true, reservation, facts: [] };
    const { constraints, keys } = columnsOf(request.checks);
    const rule = namedDutiesOf(request.checks);
    const locks = lockKeys(request.checks, request.sub);
    let work: Promise<ReserveResult> | undefined;
    const call = () => (work = this.#sql<ReserveRow[]>`
      SELECT f_constraint AS constraint_id, f_key AS key, f_duty AS duty, ${request.sub}::text AS sub, f_at AS at, f_reserved AS reserved
        FROM dutygate_reserve_1(${this.id}::text, ${locks}::bigint[], ${constraints}::text[], ${keys}::text[],
                                ${rule.constraints}::text[], ${rule.keys}::text[], ${rule.duties}::text[],
                                ${request.sub}::text, ${request.duty}::text, ${request.at}::bigint, ${reservation.id}::text, ${this.boot}::text)`
      .then((rows): ReserveResult => {
        const found = rows.filter((r): r is ReserveRow & FactRow => r.constraint_id !== null);
        const facts: LedgerFact[] = [];
        let broken: { conflict: LedgerFact; check: SeparationCheck } | null = null;
        for (const check of request.checks) {
          const ofCheck = factsOf(found, check);
          facts.push(...ofCheck);
          const conflict = findSeparationConflict([check], request.sub, request.duty, ofCheck);
          if (conflict) {
            broken = { conflict: conflict.fact, check };
            break;
          }
        }
        // The function decided on the same rows by the same rule; a disagreement is a defect, and
        // fails closed: the step is refused and whatever the function reserved goes.
        if ((broken === null) !== rows[0]?.reserved) {
          if (rows[0]?.reserved) void this.#releaseNow(reservation).catch(() => {});
          throw new GatewayError("LEDGER_STORE_FAILED", `the duty ledger \`${this.url}\` answered a reserve inconsistently`, { url: this.url });
        }
        return broken ? { ok: false, ...broken, facts } : { ok: true, reservation, facts };
      }));
    return this.#call("reserve", call, {
      // Given up on (the gateway answered 503), but the server may still commit it: release it then,
      // or the person would be blocked by a request that was never forwarded.
      abandoned: () => void work?.then((r) => (r.ok ? this.#releaseNow(r.reservation) : undefined)).catch(() => {}),
    });
  }

  async confirm(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    const { constraints, keys } = columnsOf(reservation.checks);
    const locks = lockKeys(reservation.checks, reservation.sub);
    await this.#call("confirm", () => this.#sql`
      SELECT dutygate_confirm_2(${this.id}::text, ${locks}::bigint[], ${constraints}::text[], ${keys}::text[],
                                ${reservation.sub}::text, ${reservation.duty}::text, ${reservation.at}::bigint, ${reservation.id}::text)`);
  }

  async release(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    await this.#call("release", () => this.#releaseNow(reservation));
  }

  async abandon(reservation: Reservation): Promise<void> {
    this.#open();
    if (reservation.checks.length === 0) return;
    // Without its boot the reservation reads as of unknown outcome at once; it still counts as performed.
    await this.#call("abandon", () => this.#sql`UPDATE duty_entries SET boot = NULL WHERE reservation = ${reservation.id}`);
  }

  async lookup(checks: readonly SeparationCheck[], sub: string): Promise<LedgerFact[]> {
    this.#open();
    if (checks.length === 0) return [];
    const { constraints, keys } = columnsOf(checks);
    const rows = await this.#call("lookup", () => this.#sql<FactRow[]>`
      SELECT constraint_id, key, duty, sub, at FROM duty_entries
       WHERE sub = ${sub} AND (constraint_id, key) IN (SELECT * FROM unnest(${constraints}::text[], ${keys}::text[]))`);
    return checks.flatMap((check) => factsOf(rows, check));
  }

  async pending(now: number = Date.now()): Promise<PendingReservation[]> {
    this.#open();
    // A boot runs while its row is there (a clean close removes it) and one of its connections is.
    const rows = await this.#call("pending", () => this.#sql<PendingRow[]>`
      SELECT e.reservation, e.constraint_id, e.key, e.sub, e.duty, e.at, e.boot,
             EXISTS (SELECT 1 FROM ledger_boots b WHERE b.boot = e.boot)
               AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = ${APPLICATION_PREFIX} || e.boot) AS running
        FROM duty_entries e WHERE e.reservation IS NOT NULL ORDER BY e.at, e.id`);
    const byId = new Map<string, { row: PendingRow; checks: Array<{ constraint: string; key: string }> }>();
    for (const row of rows) {
      const entry = byId.get(row.reservation) ?? { row, checks: [] };
      entry.checks.push({ constraint: row.constraint_id, key: row.key });
      byId.set(row.reservation, entry);
    }
    return [...byId.values()].map(({ row, checks }): PendingReservation => {
      const at = Number(row.at);
      return { id: row.reservation, duty: row.duty, sub: row.sub, at, checks, boot: row.boot ?? "", state: pendingStateOf(at, now, this.#options, row.running) };
    });
  }

  async prune(now: number): Promise<number> {
    this.#open();
    if (!Number.isFinite(this.#options.retentionMs)) return 0;
    const result = await this.#call("prune", () => this.#sql`DELETE FROM duty_entries WHERE at < ${now - this.#options.retentionMs}`);
    return result.count;
  }

  async size(): Promise<number> {
    this.#open();
    const [row] = await this.#call("size", () => this.#sql<Array<{ n: string }>>`SELECT count(*) AS n FROM duty_entries`);
    return Number(row?.n ?? 0);
  }

  availability(): LedgerAvailability {
    return this.#down === null ? { available: true } : { available: false, reason: this.#down.reason, since: this.#down.since };
  }

  /** The fleet's highest accepted bundle revision, or null when none was accepted yet. */
  async acceptedRevision(): Promise<{ revision: number; digest: string } | null> {
    this.#open();
    const [row] = await this.#call("revision", () => this.#sql<Array<{ revision: string; digest: string }>>`SELECT revision, digest FROM bundle_revision`);
    return row ? { revision: Number(row.revision), digest: row.digest } : null;
  }

  /**
   * Records `revision` as accepted unless the fleet already accepted a higher one (or this one with
   * another digest), atomically; returns what the database holds afterwards. The caller compares.
   */
  async advanceRevision(revision: number, digest: string): Promise<{ revision: number; digest: string }> {
    this.#open();
    const [row] = await this.#call("revision", () => this.#sql<Array<{ revision: string; digest: string }>>`
      WITH advanced AS (
        INSERT INTO bundle_revision (one, revision, digest) VALUES (TRUE, ${revision}, ${digest})
        ON CONFLICT (one) DO UPDATE SET revision = EXCLUDED.revision, digest = EXCLUDED.digest, accepted_at = now()
         WHERE bundle_revision.revision < EXCLUDED.revision
        RETURNING revision, digest
      )
      SELECT revision, digest FROM advanced UNION ALL SELECT revision, digest FROM bundle_revision WHERE NOT EXISTS (SELECT 1 FROM advanced)`);
    return { revision: Number(row!.revision), digest: row!.digest };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#probe);
    // Reservations this boot leaves unsettled now read as unknown.
    if (this.#down === null) {
      await withDeadline(this.#sql`DELETE FROM ledger_boots WHERE boot = ${this.boot}`, this.#timeoutMs).catch(() => {});
    }
    await this.#sql.end({ timeout: Math.ceil(this.#timeoutMs / 1000) }).catch(() => {});
  }

  #open(): void {
    if (this.#closed) throw ledgerClosedError();
  }

  #releaseNow(reservation: Reservation): Promise<unknown> {
    return this.#sql`DELETE FROM duty_entries WHERE reservation = ${reservation.id}`;
  }

  /**
   * Runs one ledger call under the deadline. Errors become coded ones: `LEDGER_UNAVAILABLE` for a
   * server that cannot be reached or does not answer in time (and the store goes down until a
   * probe reaches it again), `LEDGER_STORE_FAILED` for anything else. A ledger that cannot answer
   * makes the gateway deny, never allow.
   */
  async #call<T>(op: string, body: () => Promise<T>, options: { opening?: boolean; abandoned?: () => void } = {}): Promise<T> {
    if (this.#down !== null && !options.opening) {
      throw new GatewayError("LEDGER_UNAVAILABLE", `the duty ledger \`${this.url}\` is unavailable: ${this.#down.reason}`, { url: this.url, op });
    }
    try {
      return await withDeadline(body(), this.#timeoutMs, options.abandoned);
    } catch (error) {
      if (error instanceof GatewayError && error.code !== "LEDGER_TIMEOUT") throw error;
      if (this.#closed) throw ledgerClosedError();
      const reason = swappedReason(error, this.id) ?? unavailableReason(error, this.#timeoutMs);
      if (reason !== null) {
        if (!options.opening) this.#markDown(reason);
        throw new GatewayError("LEDGER_UNAVAILABLE", `the duty ledger \`${this.url}\` is unavailable: ${reason}`, { url: this.url, op });
      }
      throw new GatewayError("LEDGER_STORE_FAILED", `the duty ledger \`${this.url}\` failed (${op}): ${messageOf(error)}`, { url: this.url, op });
    }
  }

  #markDown(reason: string): void {
    if (this.#down !== null || this.#closed) return;
    this.#down = { reason, since: Date.now() };
    // Reconnect on fresh connections: one that hung (a server gone without closing the socket, a
    // statement given up on at its deadline) must not hold a pool slot through the recovery. The
    // old pool's connections stay until their statements end, which the server's
    // statement_timeout bounds: a reserve given up on commits in its own implicit transaction if
    // it gets its lock in time, and its answer must arrive for the reserve to be released (see
    // `abandoned` in reserve). A connection that stays silent past that is destroyed.
    const old = this.#sql;
    this.#sql = this.#connect();
    void old.end({ timeout: (this.#statementTimeoutMs + 1000) / 1000 }).catch(() => {});
    this.#probeAttempt = 0;
    this.#onAvailability?.(this.availability());
    this.#scheduleProbe();
  }

  /** Reconnects with exponential backoff and jitter: 100 ms, 200 ms, … up to 5 s between attempts. */
  #scheduleProbe(): void {
    const base = Math.min(5000, 100 * 2 ** this.#probeAttempt++);
    this.#probe = setTimeout(() => void this.#runProbe(), base / 2 + Math.random() * (base / 2));
    (this.#probe as { unref?: () => void }).unref?.();
  }

  async #runProbe(): Promise<void> {
    if (this.#closed || this.#down === null) return;
    try {
      // The same ledger, not another database at the same URL (an empty one, another fleet's): the
      // store stays down, and guarded steps refused, until the recorded one is back.
      const [meta] = await withDeadline(this.#sql<Array<{ value: string }>>`SELECT value FROM ledger_meta WHERE name = 'ledger_id'`, this.#timeoutMs);
      if (meta?.value !== this.id) throw Object.assign(new Error(meta?.value ?? ""), { code: SWAPPED_CODE });
      // The boot row too: a server restored from a backup, or a clean close by an operator's tool,
      // may have lost it, and then this boot's reservations would read as of unknown outcome.
      await withDeadline(this.#sql`INSERT INTO ledger_boots (boot, host, pid, started_at) VALUES (${this.boot}, ${hostname()}, ${process.pid}, ${Date.now()}) ON CONFLICT (boot) DO NOTHING`, this.#timeoutMs);
    } catch (error) {
      if (this.#closed) return;
      const reason = swappedReason(error, this.id) ?? unavailableReason(error, this.#timeoutMs) ?? messageOf(error);
      if (this.#down !== null && reason !== this.#down.reason) {
        this.#down = { reason, since: this.#down.since };
        this.#onAvailability?.(this.availability());
      }
      this.#scheduleProbe();
      return;
    }
    this.#down = null;
    this.#onAvailability?.(this.availability());
  }
}

/** Races `work` against a deadline; on expiry throws `LEDGER_TIMEOUT` (internal) and calls `abandoned`. */
function withDeadline<T>(work: Promise<T>, timeoutMs: number, abandoned?: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandoned?.();
      reject(new GatewayError("LEDGER_TIMEOUT", `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

// SQLSTATE classes and client codes that mean "the server is not there for us right now", as
// opposed to a statement that failed. https://www.postgresql.org/docs/15/errcodes-appendix.html
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN",
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
  "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
  "53300", // too many connections
  "57014", // statement timeout (the server's side of our deadline)
  "28P01", "28000", // password or authorisation refused: the ledger cannot be used
  "3D000", // the database does not exist
  "25P03", // idle in transaction timeout
]);

/** What the functions raise (and the probe throws) when the database holds another ledger: the ledger found is the message. */
const SWAPPED_CODE = "DG001";

/**
 * Why the database at the URL is no longer this ledger, or null: another ledger (the functions'
 * and the probe's check), or none at all (its tables or functions are gone: an empty database).
 */
function swappedReason(error: unknown, expected: string): string | null {
  const code = String((error as { code?: unknown }).code ?? "");
  if (code === SWAPPED_CODE) {
    const found = messageOf(error);
    return found === ""
      ? `the database holds no duty ledger identity, not ledger ${expected} (LEDGER_MISSING); restore the ledger, or restart with \`--reset-ledger\``
      : `the database holds ledger ${found}, not ledger ${expected} (LEDGER_REPLACED); restore the ledger, or restart with \`--reset-ledger\` to keep the one found`;
  }
  // undefined_table, undefined_function: the ledger's tables or functions are not there.
  if (code === "42P01" || code === "42883") {
    return `the database holds no duty ledger (${messageOf(error)}), not ledger ${expected} (LEDGER_MISSING); restore the ledger, or restart with \`--reset-ledger\``;
  }
  return null;
}

/** The start refused: the database at the URL is not the ledger the state directory recorded. */
function identityRefusal(url: string, recorded: string, found: string | null): GatewayError {
  return found === null
    ? new GatewayError(
      "LEDGER_MISSING",
      `the duty ledger \`${url}\` holds no ledger, but the state directory records ledger ${recorded}: a new empty ledger would forget every earlier step; restore the database, or start with \`--reset-ledger\` to begin an empty one`,
      { url, recorded },
    )
    : new GatewayError(
      "LEDGER_REPLACED",
      `the duty ledger \`${url}\` is ledger ${found}, but the state directory records ledger ${recorded}: the history it holds is not this gateway's; restore the recorded ledger, or start with \`--reset-ledger\` to keep this one`,
      { url, recorded, found },
    );
}

function unavailableReason(error: unknown, timeoutMs: number): string | null {
  if (error instanceof GatewayError && error.code === "LEDGER_TIMEOUT") return `no answer within ${timeoutMs} ms`;
  const code = String((error as { code?: unknown }).code ?? "");
  if (UNAVAILABLE_CODES.has(code) || code.startsWith("08")) return `${messageOf(error)} (${code})`;
  if (/self.signed|certificate|TLS|SSL/i.test(messageOf(error))) return messageOf(error);
  return null;
}

/**
 * One advisory lock key per (constraint, key, sub), sorted: every transaction locks in one order.
 * @internal exported for the benchmark's baseline (bench/scale/ledger.ts)
 */
export function lockKeys(checks: readonly { constraint: string; key: string }[], sub: string): string[] {
  const keys = new Set<bigint>();
  for (const check of checks) {
    const digest = createHash("sha256").update(JSON.stringify([check.constraint, check.key, sub])).digest();
    keys.add(digest.readBigInt64BE(0));
  }
  return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(String);
}

/**
 * Every (constraint, key, duty) the checks name, as columns: the function's form of the rule that
 * only a duty the separation names can conflict (`findSeparationConflict`, which has the last word).
 */
function namedDutiesOf(checks: readonly SeparationCheck[]): { constraints: string[]; keys: string[]; duties: string[] } {
  const named = checks.flatMap((c) => c.duties.map((duty) => [c.constraint, c.key, duty] as const));
  return { constraints: named.map((n) => n[0]), keys: named.map((n) => n[1]), duties: named.map((n) => n[2]) };
}

function columnsOf(checks: readonly { constraint: string; key: string }[]): { constraints: string[]; keys: string[] } {
  return { constraints: checks.map((c) => c.constraint), keys: checks.map((c) => c.key) };
}

/** This check's rows among `rows`, as facts, oldest first. */
function factsOf(rows: readonly FactRow[], check: SeparationCheck): LedgerFact[] {
  return rows
    .filter((r) => r.constraint_id === check.constraint && r.key === check.key)
    .map((r) => ({ constraint: check.constraint, key: check.key, duty: r.duty, sub: r.sub, at: Number(r.at) }))
    .sort((a, b) => a.at - b.at);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
