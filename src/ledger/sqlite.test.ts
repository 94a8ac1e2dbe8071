import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { GatewayError } from "../errors.ts";
import type { DutyLedger, LedgerOptions, Reservation, ReserveRequest } from "./ledger.ts";
import { runDutyLedgerConformance } from "./ledger.case.ts";
import { killGroupOnExit, killProcessGroup } from "../../test/support/process-group.ts";
import { LEDGER_SCHEMA_VERSION, openSqliteLedger, SqliteDutyLedger } from "./sqlite.ts";

/** Where the scripts the tests run in a process of their own live. */
const SUPPORT = join(import.meta.dir, "..", "..", "test", "support");
const root = mkdtempSync(join(tmpdir(), "dutygate-ledger-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(root, `case-${++files}`, "ledger.sqlite");

/** Runs test/support/ledger-reserve-and-die.ts: a process that reserves and is killed before settling. */
async function reserveInProcessKilled(path: string, request: ReserveRequest, options: LedgerOptions): Promise<Reservation> {
  const worker = join(SUPPORT, "ledger-reserve-and-die.ts");
  const child = Bun.spawn([process.execPath, worker, path, JSON.stringify(options), JSON.stringify(request)], { stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(child.pid);
  const killer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ } }, 20_000);
  try {
    const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect({ signal: child.signalCode, err }).toEqual({ signal: "SIGKILL", err: "" });
    return JSON.parse(out) as Reservation;
  } finally {
    clearTimeout(killer);
  }
}

runDutyLedgerConformance("sqlite", {
  open: (options) => openSqliteLedger({ path: freshPath(), ...options }),
  reopen: async (ledger, options) => {
    const { path } = ledger as SqliteDutyLedger;
    await ledger.close();
    return openSqliteLedger({ path, ...options });
  },
  crashWhileReserved: async (request, options) => {
    const path = freshPath();
    await reserveInProcessKilled(path, request, options);
    return openSqliteLedger({ path, ...options });
  },
});

runDutyLedgerConformance("sqlite :memory:", {
  open: (options) => openSqliteLedger({ path: ":memory:", ...options }),
});

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  const error = await promise.then(() => null, (e: unknown) => e);
  return error instanceof GatewayError ? error.code : null;
}

const CHECK = { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] };

describe("SqliteDutyLedger file", () => {
  test("creates its directory and a private file in WAL mode with the current schema version", async () => {
    const path = freshPath();
    const ledger = await openSqliteLedger({ path, retentionDays: 30 });
    expect(ledger.driver).toBe("bun:sqlite");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const peek = new Database(path, { readonly: true });
    try {
      expect(peek.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
      expect(peek.query("PRAGMA user_version").get()).toEqual({ user_version: LEDGER_SCHEMA_VERSION });
      const indexes = peek.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'duty_entries'").all() as Array<{ name: string }>;
      expect(indexes.map((i) => i.name)).toContain("duty_entries_by_key");
    } finally {
      peek.close();
      await ledger.close();
    }
  });

  test("refuses a file written by a newer schema with LEDGER_SCHEMA_TOO_NEW", async () => {
    const path = freshPath();
    await (await openSqliteLedger({ path, retentionDays: 30 })).close();
    const db = new Database(path);
    db.run("PRAGMA user_version = 99");
    db.close();
    expect(await codeOf(openSqliteLedger({ path, retentionDays: 30 }))).toBe("LEDGER_SCHEMA_TOO_NEW");
  });

  test("a file of the previous build gains boots and an identity in place, at the same schema version; a reservation it held is of unknown outcome", async () => {
    const path = freshPath();
    mkdirSync(dirname(path), { recursive: true });
    // A ledger as the version-1 schema wrote it, with a reservation of a process long gone.
    const v1 = new Database(path);
    v1.run(`CREATE TABLE duty_entries (id INTEGER PRIMARY KEY, constraint_id TEXT NOT NULL, key TEXT NOT NULL, sub TEXT NOT NULL, duty TEXT NOT NULL, at INTEGER NOT NULL, reservation TEXT)`);
    v1.run(`CREATE INDEX duty_entries_by_key ON duty_entries (constraint_id, key, sub, at, duty, reservation)`);
    v1.run(`CREATE INDEX duty_entries_pending ON duty_entries (reservation) WHERE reservation IS NOT NULL`);
    v1.run(`CREATE INDEX duty_entries_by_time ON duty_entries (at)`);
    v1.run("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES (?, '42', 'alice', 'submit_change', 1, 'old-reservation')", [CHECK.constraint]);
    v1.run("PRAGMA user_version = 1");
    v1.close();
    const ledger = await openSqliteLedger({ path, retentionDays: 30 });
    try {
      expect(ledger.id).toMatch(/^[0-9a-f]{32}$/);
      expect(await ledger.pending(2)).toEqual([{ id: "old-reservation", duty: "submit_change", sub: "alice", at: 1, checks: [{ constraint: CHECK.constraint, key: "42" }], boot: "", state: "unknown" }]);
      expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 2 })).ok).toBe(false);
    } finally {
      await ledger.close();
    }
    // The previous build (which refuses a higher version) still opens it and writes as it did.
    const previous = new Database(path);
    expect(previous.query("PRAGMA user_version").get()).toEqual({ user_version: 1 });
    previous.run("INSERT INTO duty_entries (constraint_id, key, sub, duty, at, reservation) VALUES (?, '43', 'bob', 'submit_change', 3, NULL)", [CHECK.constraint]);
    previous.close();
    const reopened = await openSqliteLedger({ path, retentionDays: 30 });
    expect(reopened.id).toBe(ledger.id);
    expect(await reopened.lookup([{ ...CHECK, key: "43" }], "bob")).toHaveLength(1);
    await reopened.close();
  });

  test("refuses a file that is not a database with LEDGER_OPEN_FAILED", async () => {
    const path = join(root, "not-a-ledger.sqlite");
    writeFileSync(path, "this is a policy file, not a ledger\n".repeat(200));
    expect(await codeOf(openSqliteLedger({ path, retentionDays: 30 }))).toBe("LEDGER_OPEN_FAILED");
  });

  test("a write lock held by another process too long fails with LEDGER_BUSY (deny, never allow)", async () => {
    const path = freshPath();
    const ledger = await openSqliteLedger({ path, retentionDays: 30, busyTimeoutMs: 50 });
    const other = new Database(path);
    other.run("BEGIN IMMEDIATE");
    try {
      expect(await codeOf(ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 }))).toBe("LEDGER_BUSY");
    } finally {
      other.run("ROLLBACK");
      other.close();
    }
    // The failed reserve left no open transaction behind: the ledger works once the lock is gone.
    expect((await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 })).ok).toBe(true);
    await ledger.close();
  });

  test.each([
    ["busyTimeoutMs -1", { busyTimeoutMs: -1 }],
    ["busyTimeoutMs 1.5", { busyTimeoutMs: 1.5 }],
    ["checkpointEveryMs -1", { checkpointEveryMs: -1 }],
    ["checkpointEveryMs NaN", { checkpointEveryMs: Number.NaN }],
  ])("refuses %s with LEDGER_BAD_OPTIONS", async (_label, extra) => {
    expect(await codeOf(openSqliteLedger({ path: freshPath(), retentionDays: 30, ...extra }))).toBe("LEDGER_BAD_OPTIONS");
  });

  test("with SQLite's own checkpoints (checkpointEveryMs 0) the ledger works the same", async () => {
    const path = freshPath();
    const ledger = await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 0 });
    const first = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    if (!first.ok) throw new Error("reserve refused");
    await ledger.confirm(first.reservation);
    expect((await ledger.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 2 })).ok).toBe(false);
    await ledger.close();
  });

  test("two connections to one file see each other's reservations", async () => {
    const path = freshPath();
    const a: DutyLedger = await openSqliteLedger({ path, retentionDays: 30 });
    const b: DutyLedger = await openSqliteLedger({ path, retentionDays: 30 });
    const first = await a.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    expect(first.ok).toBe(true);
    expect((await b.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 2 })).ok).toBe(false);
    if (first.ok) await a.release(first.reservation);
    expect((await b.reserve({ checks: [CHECK], duty: "approve_change", sub: "alice", at: 3 })).ok).toBe(true);
    await a.close();
    await b.close();
  });
});

/** The threads of this process named `Worker`: Bun's name for a worker thread. */
function workerThreads(): number {
  return readdirSync("/proc/self/task").filter((t) => {
    try { return readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "Worker"; } catch { return false; }
  }).length;
}

/** How many entries the database file holds by itself, without its WAL: what the checkpoints have merged. */
function entriesInMainFile(path: string): number {
  const copy = `${path}.alone-${++files}`;
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  try {
    return Number((db.query("SELECT count(*) AS n FROM duty_entries").get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** `n` confirmed entries, one per key; only microtasks run meanwhile, never a timer. */
async function confirmEntries(ledger: DutyLedger, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await ledger.reserve({ checks: [{ ...CHECK, key: `k${i}` }], duty: "submit_change", sub: "alice", at: i + 1 });
    if (!r.ok) throw new Error("reserve refused");
    await ledger.confirm(r.reservation);
  }
}

/** Keeps this thread, and so its event loop, busy for `ms`. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

describe("SqliteDutyLedger WAL checkpoints", () => {
  test("run on a thread of their own: the WAL is merged into the file while the event loop is blocked", async () => {
    const path = freshPath();
    const ledger = await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 20 });
    try {
      expect(ledger.checkpoints).toBe("thread");
      await confirmEntries(ledger, 200);
      // No timer of this thread can run from here to the count: only another thread merges the WAL.
      blockEventLoop(1500);
      expect(entriesInMainFile(path)).toBe(200);
    } finally {
      await ledger.close();
    }
  });

  test("when the thread ends while running they move to the event loop, and onWarning says why, once", async () => {
    const path = freshPath();
    await (await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 0 })).close();
    const warnings: string[] = [];
    const ledger = await openSqliteLedger({
      path, retentionDays: 30, checkpointEveryMs: 20,
      checkpointWorkerUrl: new URL(`file://${join(SUPPORT, "checkpoint-worker-dies.ts")}`),
      onWarning: (message) => warnings.push(message),
    });
    try {
      expect(ledger.checkpoints).toBe("thread");
      for (let i = 0; i < 500 && warnings.length === 0; i++) await Bun.sleep(10);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^duty ledger checkpoints run on the event loop: the checkpoint thread ended: .*failed on purpose/);
      expect(ledger.checkpoints).toBe("event loop");
      await confirmEntries(ledger, 50);
      await Bun.sleep(200);
      expect(entriesInMainFile(path)).toBe(50);
      expect(warnings).toHaveLength(1);
    } finally {
      await ledger.close();
    }
  });

  test("under writes that leave the thread no gap, a commit starts the WAL over at 16384 pages", async () => {
    const path = freshPath();
    // A thread that never gets to checkpoint: as if every one of its checkpoints met a new commit.
    const ledger = await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 600_000 });
    try {
      // Seven pages per step: well past 16384 pages.
      await confirmEntries(ledger, 3500);
      const frame = 4096 + 24;
      expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(32 + (16384 + 8) * frame);
      expect(entriesInMainFile(path)).toBeGreaterThan(0);
    } finally {
      await ledger.close();
    }
  }, 60_000);

  test("close() ends the thread", async () => {
    const threadsBefore = workerThreads();
    const ledger = await openSqliteLedger({ path: freshPath(), retentionDays: 30, checkpointEveryMs: 20 });
    expect(workerThreads()).toBe(threadsBefore + 1);
    await confirmEntries(ledger, 10);
    await ledger.close();
    expect(ledger.checkpoints).toBe("none");
    expect(workerThreads()).toBe(threadsBefore);
  });

  test("none for :memory: and with checkpointEveryMs 0", async () => {
    const threadsBefore = workerThreads();
    for (const ledger of [await openSqliteLedger({ path: ":memory:", retentionDays: 30 }), await openSqliteLedger({ path: freshPath(), retentionDays: 30, checkpointEveryMs: 0 })]) {
      expect(ledger.checkpoints).toBe("none");
      expect(workerThreads()).toBe(threadsBefore);
      await ledger.close();
    }
  });

  test("when the thread cannot start they run on the event loop, and onWarning says why, once", async () => {
    const path = freshPath();
    // The schema in the file itself (a close merges the WAL), so that the file alone can be read.
    await (await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 0 })).close();
    const warnings: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const ledger = await openSqliteLedger({
      path, retentionDays: 30, checkpointEveryMs: 20,
      checkpointWorkerUrl: new URL("./no-such-checkpoint-worker.ts", import.meta.url),
      onWarning: (message, fields) => warnings.push({ message, fields }),
    });
    try {
      expect(ledger.checkpoints).toBe("event loop");
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.message).toMatch(/^duty ledger checkpoints run on the event loop: the checkpoint thread could not start: .*no-such-checkpoint-worker/);
      expect(warnings[0]!.fields).toEqual({ ledger: path });
      await confirmEntries(ledger, 50);
      blockEventLoop(200);
      expect(entriesInMainFile(path)).toBeLessThan(50);
      await Bun.sleep(200);
      expect(entriesInMainFile(path)).toBe(50);
      expect(warnings).toHaveLength(1);
    } finally {
      await ledger.close();
    }
  });
});

/** Runs test/support/ledger-open-and-reserve.ts in its own process group; its JSON lines, and how it ended. */
function startOpenAndReserve(path: string, goFile?: string) {
  const worker = join(SUPPORT, "ledger-open-and-reserve.ts");
  const child = Bun.spawn([process.execPath, worker, path, ...(goFile ? [goFile] : [])], { stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(child.pid);
  const kill = () => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ } };
  const killer = setTimeout(kill, 25_000);
  const done = Promise.all([new Response(child.stdout).text(), child.exited]).then(([out]) => {
    clearTimeout(killer);
    return { lines: out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), signal: child.signalCode };
  });
  /** Kills its process group (a no-op once it has exited) and waits for it. */
  const stop = async () => { kill(); await done.catch(() => {}); };
  return { done, stop };
}

/** chattr(1) on a file of this filesystem: needs root and a filesystem with attributes (ext4, xfs). */
function chattr(flag: "+i" | "-i", file: string): boolean {
  return Bun.spawnSync(["chattr", flag, file], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}
const immutableFiles = (() => {
  const probe = join(root, "chattr-probe");
  writeFileSync(probe, "");
  const ok = chattr("+i", probe) && chattr("-i", probe);
  return ok;
})();
if (!immutableFiles) console.warn("src/ledger/sqlite.test.ts: `chattr +i` is not possible here (needs root and ext4/xfs); the immutable -shm checks are skipped");

// SQLite maps the WAL index (`-shm`) into memory; on a file made immutable a write to the mapping
// is a SIGBUS, which no runtime can turn into an error (docs/ledger.md, "State-directory integrity").
describe("SqliteDutyLedger with an immutable -shm file", () => {
  // Regression: the open succeeded, and every guarded request then failed one by one.
  test.if(immutableFiles)("the open is refused with LEDGER_OPEN_FAILED: a start fails, rather than every guarded request", async () => {
    const path = freshPath();
    await reserveInProcessKilled(path, { checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 }, { retentionDays: 30 });
    expect(existsSync(`${path}-shm`)).toBe(true);
    expect(chattr("+i", `${path}-shm`)).toBe(true);
    try {
      expect((await startOpenAndReserve(path).done).lines).toEqual([{ opened: false, code: "LEDGER_OPEN_FAILED" }]);
    } finally {
      chattr("-i", `${path}-shm`);
    }
    expect((await startOpenAndReserve(path).done).lines).toEqual([{ opened: true }]);
  });

  test.if(immutableFiles)("made immutable under a running process: SIGBUS kills it (a known limit), and the restart is refused until it is writable", async () => {
    const path = freshPath();
    const goFile = join(root, `go-${files}`);
    const running = startOpenAndReserve(path, goFile);
    try {
      for (let i = 0; i < 2000 && !existsSync(`${goFile}.ready`); i++) await Bun.sleep(10);
      expect(chattr("+i", `${path}-shm`)).toBe(true);
      writeFileSync(goFile, "");
      const { lines, signal } = await running.done;
      expect({ lines, signal }).toEqual({ lines: [{ opened: true }], signal: "SIGBUS" });
      expect((await startOpenAndReserve(path).done).lines).toEqual([{ opened: false, code: "LEDGER_OPEN_FAILED" }]);
    } finally {
      chattr("-i", `${path}-shm`);
      await running.stop();
    }
    expect((await startOpenAndReserve(path).done).lines).toEqual([{ opened: true }]);
  });
});

describe("SqliteDutyLedger across processes", () => {
  test("two processes racing one person for two duties on the same keys: never both win a key", async () => {
    const path = freshPath();
    // Create the schema first so the race is about reserves, not about creating the file.
    await (await openSqliteLedger({ path, retentionDays: 30 })).close();
    const startFile = join(root, `start-${files}`);
    const worker = join(SUPPORT, "ledger-reserve-race.ts");
    const duties = ["submit_change", "approve_change"];
    const racers = duties.map((duty) =>
      Bun.spawn([process.execPath, worker, path, startFile, duty, "alice", "1500"], { stdout: "pipe", stderr: "pipe", detached: true }));
    racers.forEach((r) => killGroupOnExit(r.pid));
    const killer = setTimeout(() => racers.forEach((r) => killProcessGroup(r.pid)), 25_000);
    try {
      // Start both at one common instant once both are ready, so they hit each key together.
      for (let i = 0; i < 2000 && !duties.every((d) => existsSync(`${startFile}.${d}.ready`)); i++) await Bun.sleep(10);
      // A generous lead and run time: on a loaded machine a racer can be descheduled for a while,
      // and the test needs both to be running during some common time slots.
      writeFileSync(startFile, String(Date.now() + 300));
      const outputs = await Promise.all(racers.map(async (r) => {
        const [out, err, exitCode] = await Promise.all([new Response(r.stdout).text(), new Response(r.stderr).text(), r.exited]);
        expect({ exitCode, err }).toEqual({ exitCode: 0, err: "" });
        return JSON.parse(out) as { won: number[]; attempted: number[] };
      }));
      const [a, b] = outputs as [typeof outputs[0], typeof outputs[0]];
      const contested = a.attempted.filter((key) => b.attempted.includes(key));
      expect(contested.length).toBeGreaterThan(0);
      // The first reserve on a fresh key always wins, so every attempted key has exactly one winning duty.
      const attempted = new Set([...a.attempted, ...b.attempted]);
      const bothWon = a.won.filter((key) => b.won.includes(key));
      expect(bothWon).toEqual([]);
      expect(new Set([...a.won, ...b.won]).size).toBe(attempted.size);
      const ledger = await openSqliteLedger({ path, retentionDays: 30 });
      expect(await ledger.size()).toBe(attempted.size);
      await ledger.close();
    } finally {
      clearTimeout(killer);
      racers.forEach((r) => killProcessGroup(r.pid));
    }
  });
});
