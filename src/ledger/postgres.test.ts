import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postgresSkipReason, startTestPostgres, type TestPostgres } from "../../test/support/postgres.ts";
import { GatewayError } from "../errors.ts";
import { LEDGER_IDENTITY_FILE, openPostgresLedgerOfStateDir, type LedgerIdentityRecord } from "./identity.ts";
import type { LedgerOptions, ReserveRequest } from "./ledger.ts";
import { runDutyLedgerConformance } from "./ledger.case.ts";
import { openPostgresLedger, POSTGRES_LEDGER_SCHEMA_VERSION, PostgresDutyLedger } from "./postgres.ts";
import { parsePostgresUrl, redactLedgerUrl } from "./postgres-url.ts";

// A real PostgreSQL 15 server for this file; every ledger gets a database of its own.
const skip = postgresSkipReason("the PostgreSQL ledger tests");
let pg: TestPostgres;
let databases = 0;
beforeAll(async () => {
  if (!skip) pg = await startTestPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.destroy();
}, 60_000);
const password = () => readFileSync(pg.passwordFile, "utf8").trim();
const freshUrl = () => pg.createDatabase(`ledger_${process.pid}_${++databases}`);
// A generous deadline: a loaded test machine must not turn a slow answer into a failed case. The
// deadline's own tests set a short one.
const open = (url: string, options: LedgerOptions & { timeoutMs?: number }) => openPostgresLedger({ url, password: password(), timeoutMs: 30_000, ...options });

/** Waits (bounded) until the server has noticed a killed process's connections are gone. */
async function awaitDisconnected(boot: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dutygate ${boot}'`).trim() === "0") return;
    await Bun.sleep(25);
  }
  throw new Error(`the connections of boot ${boot} are still open`);
}

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  const error = await promise.then(() => null, (e: unknown) => e);
  return error instanceof GatewayError ? error.code : null;
}

if (!skip) {
  runDutyLedgerConformance("postgres", {
    open: (options) => open(freshUrl(), options),
    reopen: async (ledger, options) => {
      await ledger.close();
      return open((ledger as unknown as PostgresDutyLedger).url, options);
    },
    crashWhileReserved: async (request: ReserveRequest, options) => {
      const url = freshUrl();
      const worker = join(import.meta.dir, "..", "..", "test", "support", "ledger-reserve-and-die-postgres.ts");
      const child = Bun.spawn([process.execPath, worker, url, pg.passwordFile, JSON.stringify(options), JSON.stringify(request)], { stdout: "pipe", stderr: "pipe", detached: true });
      const killer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ } }, 20_000);
      try {
        const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
        expect({ signal: child.signalCode, err }).toEqual({ signal: "SIGKILL", err: "" });
        await awaitDisconnected((JSON.parse(out) as { boot: string }).boot);
      } finally {
        clearTimeout(killer);
      }
      return open(url, options);
    },
  });
}

const CHECK = { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] };
const OPTIONS = { retentionDays: 30 };

describe.skipIf(skip !== null)("PostgresDutyLedger", () => {
  test("two instances (two connection pools) racing one person for two duties on the same keys never both win a key", async () => {
    const url = freshUrl();
    const [a, b] = [await open(url, OPTIONS), await open(url, OPTIONS)] as const;
    try {
      const keys = Array.from({ length: 150 }, (_, i) => `race-${i}`);
      const results = await Promise.all(keys.map((key) => Promise.all([
        a.reserve({ checks: [{ ...CHECK, key }], duty: "submit_change", sub: "alice", at: 1 }),
        b.reserve({ checks: [{ ...CHECK, key }], duty: "approve_change", sub: "alice", at: 1 }),
      ])));
      const bothWon = keys.filter((_, i) => results[i]![0].ok && results[i]![1].ok);
      expect(bothWon).toEqual([]);
      expect(results.every(([x, y]) => x.ok || y.ok)).toBe(true);
      expect(await a.size()).toBe(keys.length);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);

  test("creates its schema with a version and refuses a database of a newer schema with LEDGER_SCHEMA_TOO_NEW", async () => {
    const url = freshUrl();
    const ledger = await open(url, OPTIONS);
    expect(ledger.id).toMatch(/^[0-9a-f]{32}$/);
    await ledger.close();
    const database = new URL(url).pathname.slice(1);
    expect(pg.psql("SELECT value FROM ledger_meta WHERE name = 'schema_version'", database).trim()).toBe(String(POSTGRES_LEDGER_SCHEMA_VERSION));
    // Opening again keeps the identity and migrates nothing.
    const again = await open(url, OPTIONS);
    expect(again.id).toBe(ledger.id);
    await again.close();
    pg.psql("UPDATE ledger_meta SET value = '99' WHERE name = 'schema_version'", database);
    expect(await codeOf(open(url, OPTIONS))).toBe("LEDGER_SCHEMA_TOO_NEW");
  });

  test("a database written by a build without the server-side functions gets them in place, keeping its version, identity and history", async () => {
    const url = freshUrl();
    const database = new URL(url).pathname.slice(1);
    const first = await open(url, OPTIONS);
    const r = await first.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    if (!r.ok) throw new Error("reserve refused");
    await first.confirm(r.reservation);
    const pending = await first.reserve({ checks: [{ ...CHECK, key: "43" }], duty: "submit_change", sub: "alice", at: 2 });
    await first.close();
    // What the previous build leaves: the same tables, no functions.
    pg.psql("DROP FUNCTION dutygate_reserve_1, dutygate_confirm_1, dutygate_confirm_2", database);
    const functions = () => pg.psql("SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE proname LIKE 'dutygate\\_%'", database).trim();
    expect(functions()).toBe("");
    const again = await open(url, OPTIONS);
    try {
      expect(functions()).toBe("dutygate_confirm_1,dutygate_confirm_2,dutygate_reserve_1");
      expect(again.id).toBe(first.id);
      expect(pg.psql("SELECT value FROM ledger_meta WHERE name = 'schema_version'", database).trim()).toBe(String(POSTGRES_LEDGER_SCHEMA_VERSION));
      // The history is consulted through the new functions: the confirmed fact and the pending reservation both block.
      expect((await again.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 3 })).ok).toBe(false);
      expect((await again.reserve({ checks: [{ ...CHECK, key: "43" }], duty: "approve_change", sub: "alice", at: 3 })).ok).toBe(false);
      if (pending.ok) await again.confirm(pending.reservation);
      expect((await again.pending()).length).toBe(0);
      expect(await again.size()).toBe(2);
    } finally {
      await again.close();
    }
  });

  test("the confirm commits without waiting for its WAL flush; the reserve waits for it", async () => {
    const url = freshUrl();
    const database = new URL(url).pathname.slice(1);
    const ledger = await open(url, OPTIONS);
    try {
      const id = "(SELECT value FROM ledger_meta WHERE name = 'ledger_id')";
      const after = (call: string) => pg.psql(`BEGIN; SET LOCAL synchronous_commit = on; ${call}; SHOW synchronous_commit; ROLLBACK`, database).trim().split("\n").at(-1);
      expect(after(`SELECT dutygate_confirm_2(${id}, ARRAY[]::bigint[], ARRAY[]::text[], ARRAY[]::text[], 'alice', 'submit_change', 1, 'r1')`)).toBe("off");
      expect(after(`SELECT count(*) FROM dutygate_reserve_1(${id}, ARRAY[]::bigint[], ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::text[], 'alice', 'submit_change', 1, 'r1', 'b1')`)).toBe("on");
    } finally {
      await ledger.close();
    }
  });

  test("a wrong password fails the open with LEDGER_UNAVAILABLE, and the message never holds the password", async () => {
    const error = await openPostgresLedger({ url: freshUrl(), password: "not-the-password", ...OPTIONS }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe("LEDGER_UNAVAILABLE");
    expect((error as GatewayError).message).toContain("28P01");
    expect((error as GatewayError).message).not.toContain("not-the-password");
  });

  test("a call slower than the timeout fails with LEDGER_UNAVAILABLE; the reserve it gave up on is released when it lands", async () => {
    const url = freshUrl();
    const ledger = await open(url, { ...OPTIONS, timeoutMs: 400 });
    const holder = (await import("postgres")).default({ host: "127.0.0.1", port: pg.port, user: "dutygate", database: new URL(url).pathname.slice(1), pass: password(), max: 1, onnotice: () => {} });
    try {
      let unlock!: () => void;
      const unlocked = new Promise<void>((resolve) => (unlock = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = holder.begin(async (tx) => {
        await tx`LOCK TABLE duty_entries IN ACCESS EXCLUSIVE MODE`;
        locked();
        await unlocked;
      });
      await isLocked;
      const error = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 }).then(() => null, (e: unknown) => e);
      expect((error as GatewayError).code).toBe("LEDGER_UNAVAILABLE");
      expect((error as GatewayError).message).toContain("no answer within 400 ms");
      expect(ledger.availability()).toMatchObject({ available: false, reason: "no answer within 400 ms" });
      // While down, calls fail at once without queueing on the server.
      expect(await codeOf(ledger.lookup([CHECK], "alice"))).toBe("LEDGER_UNAVAILABLE");
      unlock();
      await holding;
      // The probe brings it back; the abandoned reservation did not stay behind.
      for (let i = 0; i < 200 && !ledger.availability().available; i++) await Bun.sleep(25);
      expect(ledger.availability()).toEqual({ available: true });
      for (let i = 0; i < 200 && (await ledger.size()) > 0; i++) await Bun.sleep(25);
      expect(await ledger.size()).toBe(0);
      expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 2 })).ok).toBe(true);
    } finally {
      await holder.end();
      await ledger.close();
    }
  }, 30_000);

  test("the server stopped: calls fail with LEDGER_UNAVAILABLE and availability says why; back when the server is", async () => {
    const url = freshUrl();
    const states: boolean[] = [];
    const ledger = await openPostgresLedger({ url, password: password(), ...OPTIONS, timeoutMs: 3000, onAvailability: (a) => states.push(a.available) });
    try {
      const first = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
      expect(first.ok).toBe(true);
      await pg.stop();
      expect(await codeOf(ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 2 }))).toBe("LEDGER_UNAVAILABLE");
      const down = ledger.availability();
      expect(down.available).toBe(false);
      if (!down.available) expect(down.reason.length).toBeGreaterThan(0);
      expect(await codeOf(ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "bob", at: 2 }))).toBe("LEDGER_UNAVAILABLE");
      await pg.start();
      for (let i = 0; i < 400 && !ledger.availability().available; i++) await Bun.sleep(25);
      expect(ledger.availability()).toEqual({ available: true });
      // Down once (told again when the reason changes, e.g. refused → shutting down), then up once.
      expect([states[0], states.at(-1), states.filter((up) => up).length]).toEqual([false, true, 1]);
      // Nothing was forgotten: alice's pending submit still blocks her approve.
      expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 3 })).ok).toBe(false);
      if (first.ok) await ledger.confirm(first.reservation);
      expect(await ledger.size()).toBe(1);
    } finally {
      await ledger.close();
    }
  }, 60_000);

  test("the fleet's bundle revision only moves forward, whichever instance records it", async () => {
    const url = freshUrl();
    const [a, b] = [await open(url, OPTIONS), await open(url, OPTIONS)] as const;
    try {
      expect(await a.acceptedRevision()).toBeNull();
      expect(await a.advanceRevision(3, "d3")).toEqual({ revision: 3, digest: "d3" });
      expect(await b.acceptedRevision()).toEqual({ revision: 3, digest: "d3" });
      // An older revision, or the same one with other content, leaves the record as it was.
      expect(await b.advanceRevision(2, "d2")).toEqual({ revision: 3, digest: "d3" });
      expect(await b.advanceRevision(3, "other")).toEqual({ revision: 3, digest: "d3" });
      expect(await b.advanceRevision(4, "d4")).toEqual({ revision: 4, digest: "d4" });
      expect(await a.acceptedRevision()).toEqual({ revision: 4, digest: "d4" });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe.skipIf(skip !== null)("the state directory records the PostgreSQL ledger", () => {
  const root = skip ? "" : mkdtempSync(join(tmpdir(), "dutygate-pg-identity-"));
  afterAll(() => { if (root) rmSync(root, { recursive: true, force: true }); });
  let dirs = 0;
  const record = (stateDir: string) => JSON.parse(readFileSync(join(stateDir, LEDGER_IDENTITY_FILE), "utf8")) as LedgerIdentityRecord;
  const openIn = (stateDir: string, url: string, reset = false) => openPostgresLedgerOfStateDir({ stateDir, url, password: password(), timeoutMs: 30_000, ...OPTIONS, reset });
  const nameOf = (url: string) => new URL(url).pathname.slice(1);
  /** Another database in place of `url`'s: dropped (its connections ended) and created again, empty. */
  const swapForEmpty = (url: string) => {
    pg.psql(`DROP DATABASE ${nameOf(url)} WITH (FORCE)`);
    pg.createDatabase(nameOf(url));
  };
  const hasLedger = (url: string) => pg.psql("SELECT to_regclass('ledger_meta') IS NOT NULL", nameOf(url)).trim() === "t";

  /** A state directory whose instance served from a new ledger at a fresh URL and recorded alice's submit of change 42. */
  async function served(): Promise<{ stateDir: string; url: string; id: string }> {
    const stateDir = join(root, `state-${++dirs}`);
    const url = freshUrl();
    const { ledger, outcome } = await openIn(stateDir, url);
    expect(outcome).toBe("created");
    const r = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    if (r.ok) await ledger.confirm(r.reservation);
    await ledger.close();
    return { stateDir, url, id: ledger.id };
  }

  test("the ledger's identity is recorded with its URL; the next start finds the same ledger; another instance adopts it", async () => {
    const { stateDir, url, id } = await served();
    expect(record(stateDir)).toMatchObject({ ledger_id: id, path: url });
    const again = await openIn(stateDir, url);
    expect([again.outcome, again.ledger.id]).toEqual(["same", id]);
    await again.ledger.close();
    const other = await openIn(join(root, `state-${++dirs}`), url);
    expect([other.outcome, other.ledger.id]).toEqual(["adopted", id]);
    await other.ledger.close();
  });

  // Regression: another, empty database at the same URL got a new empty ledger at start, forgetting every earlier step.
  test("the database swapped for an empty one refuses to start with LEDGER_MISSING, and nothing is created in it", async () => {
    const { stateDir, url, id } = await served();
    swapForEmpty(url);
    const error = await openIn(stateDir, url).then(() => null, (e: unknown) => e);
    expect((error as GatewayError).code).toBe("LEDGER_MISSING");
    expect((error as GatewayError).message).toContain(`records ledger ${id}`);
    expect((error as GatewayError).message).toContain("`--reset-ledger`");
    expect(hasLedger(url)).toBe(false);
    expect(record(stateDir).ledger_id).toBe(id);
    // --reset-ledger begins an empty one, records it, and the next start needs no flag.
    const reset = await openIn(stateDir, url, true);
    expect([reset.outcome, reset.previous?.ledger_id, reset.ledger.id === id]).toEqual(["reset", id, false]);
    expect(await reset.ledger.size()).toBe(0);
    await reset.ledger.close();
    expect(record(stateDir).ledger_id).toBe(reset.ledger.id);
    const next = await openIn(stateDir, url);
    expect(next.outcome).toBe("same");
    await next.ledger.close();
  });

  test("the database swapped for another ledger refuses to start with LEDGER_REPLACED; --reset-ledger keeps the one found", async () => {
    const { stateDir, url, id } = await served();
    swapForEmpty(url);
    const impostor = await open(url, OPTIONS);
    await impostor.close();
    const error = await openIn(stateDir, url).then(() => null, (e: unknown) => e);
    expect((error as GatewayError).code).toBe("LEDGER_REPLACED");
    expect((error as GatewayError).detail).toMatchObject({ recorded: id, found: impostor.id });
    const reset = await openIn(stateDir, url, true);
    expect([reset.outcome, reset.ledger.id, record(stateDir).ledger_id]).toEqual(["reset", impostor.id, impostor.id]);
    await reset.ledger.close();
  });

  test("swapped while serving: guarded steps fail with LEDGER_UNAVAILABLE and the store stays down, saying why, until the ledger is back", async () => {
    const { stateDir, url, id } = await served();
    const database = nameOf(url);
    const states: string[] = [];
    const { ledger } = await openPostgresLedgerOfStateDir({ stateDir, url, password: password(), timeoutMs: 5000, ...OPTIONS, onAvailability: (a) => states.push(a.available ? "up" : a.reason) });
    const awaitReason = async (part: string) => {
      for (let i = 0; i < 400; i++) {
        const a = ledger.availability();
        if (!a.available && a.reason.includes(part)) return;
        await Bun.sleep(25);
      }
      throw new Error(`the store did not go down with ${part}: ${JSON.stringify(ledger.availability())}`);
    };
    try {
      // Another ledger's identity behind live connections: the reserve function itself refuses.
      pg.psql("UPDATE ledger_meta SET value = 'ffffffffffffffffffffffffffffffff' WHERE name = 'ledger_id'", database);
      const error = await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "bob", at: 2 }).then(() => null, (e: unknown) => e);
      expect((error as GatewayError).code).toBe("LEDGER_UNAVAILABLE");
      expect((error as GatewayError).message).toContain(`holds ledger ffffffffffffffffffffffffffffffff, not ledger ${id} (LEDGER_REPLACED)`);
      expect(await codeOf(ledger.lookup([CHECK], "alice"))).toBe("LEDGER_UNAVAILABLE");
      await awaitReason("LEDGER_REPLACED");
      // Its tables gone (an empty database): still down, now saying so.
      pg.psql("ALTER TABLE ledger_meta RENAME TO ledger_meta_aside", database);
      await awaitReason("LEDGER_MISSING");
      expect(await codeOf(ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "bob", at: 2 }))).toBe("LEDGER_UNAVAILABLE");
      // The ledger back: served again, its history intact.
      pg.psql(`ALTER TABLE ledger_meta_aside RENAME TO ledger_meta; UPDATE ledger_meta SET value = '${id}' WHERE name = 'ledger_id'`, database);
      for (let i = 0; i < 400 && !ledger.availability().available; i++) await Bun.sleep(25);
      expect(ledger.availability()).toEqual({ available: true });
      expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 3 })).ok).toBe(false);
      expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "bob", at: 3 })).ok).toBe(true);
      expect(states.at(-1)).toBe("up");
    } finally {
      await ledger.close();
    }
  }, 60_000);
});

describe("postgres ledger URL", () => {
  test.each([
    ["postgres://dutygate@db.internal:6432/ledger", { host: "db.internal", port: 6432, user: "dutygate", database: "ledger" }],
    ["postgresql://gw@127.0.0.1/gw", { host: "127.0.0.1", port: 5432, user: "gw", database: "gw" }],
    ["postgres://gw@[::1]:5433", { host: "::1", port: 5433, user: "gw", database: "gw" }],
  ])("%s", (url, expected) => {
    expect(parsePostgresUrl(url)).toMatchObject(expected);
  });
  test.each([
    ["postgres://gw:secret@db/gw", "must not carry a password"],
    ["mysql://gw@db/gw", "is not a postgres:// URL"],
    ["postgres://db/gw", "names no user"],
    ["postgres://gw@db/gw?sslmode=disable", "must not carry a query"],
  ])("%s is refused", (url, message) => {
    let error: unknown = null;
    try { parsePostgresUrl(url); } catch (e) { error = e; }
    expect((error as GatewayError).code).toBe("LEDGER_BAD_OPTIONS");
    expect((error as GatewayError).message).toContain(message);
    expect((error as GatewayError).message).not.toContain("secret");
  });
  test("redaction hides a password and the query", () => {
    expect(redactLedgerUrl("postgres://gw:secret@db:5432/gw?password=x")).toBe("postgres://gw:***@db:5432/gw");
  });
});
