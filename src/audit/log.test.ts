import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { GatewayError } from "../errors.ts";
import { openAuditLog } from "./log.ts";
import type { AuditLog } from "./log.ts";
import { GENESIS_HASH, recordHash } from "./record.ts";
import { auditFiles, logOptions, makeSigner, readLinesOf } from "../../test/support/audit-log.ts";
import { tempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditFiles } from "./verify.ts";

const signer = await makeSigner();
const logs: AuditLog[] = [];

async function open(dir: string, overrides: Parameters<typeof logOptions>[2] = {}): Promise<AuditLog> {
  const log = await openAuditLog(logOptions(dir, signer.signingKey, overrides));
  logs.push(log);
  return log;
}

function records(dir: string): Array<Record<string, unknown>> {
  return auditFiles(dir).flatMap((f) => readLinesOf(f).map((l) => JSON.parse(l) as Record<string, unknown>));
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    return error as GatewayError;
  }
  throw new Error("expected a rejection");
}

afterEach(async () => {
  for (const log of logs.splice(0)) await log.close();
});

describe("append", () => {
  test("thousands of concurrent appends form one verifiable chain, group-committed", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 100 });
    const waves = 30;
    const perWave = 100;
    const results = [];
    for (let w = 0; w < waves; w++) {
      const wave = Array.from({ length: perWave }, (_, i) =>
        log.append({ request_id: `r-${w}-${i}`, sub: "alice", roles: ["developer"], duty: "submit_change", decision: "allow" }));
      results.push(...(await Promise.all(wave)));
    }
    const seqs = results.map((r) => r.seq);
    expect(new Set(seqs).size).toBe(waves * perWave);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const stats = log.stats();
    expect(stats.writes).toBeLessThan(waves * perWave / 10);
    await log.close();
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification.break).toBeNull();
    expect(verification.records).toBe(log.stats().recordsWritten);
    expect(verification.checkpoints).toBeGreaterThanOrEqual(30);
    expect(verification.recordsAfterLastCheckpoint).toBe(0);
  });

  test("an outcome joins the next batch, in one `outcomes` record after its decisions, instead of costing a write of its own", async () => {
    const dir = tempDir();
    const log = await open(dir);
    const decision = await log.append({ request_id: "a", decision: "allow" });
    const writesBefore = log.stats().writes;
    const outcome = log.append({ type: "outcome", decision_seq: decision.seq, request_id: "a", status: 200 }, { deferred: true });
    const next = log.append({ request_id: "b", decision: "deny" });
    const [o, n] = await Promise.all([outcome, next]);
    // Both went out in one write: the decision, then the record holding the outcome.
    expect(log.stats().writes).toBe(writesBefore + 1);
    expect([n.seq, o.seq]).toEqual([decision.seq + 1, decision.seq + 2]);
    await log.close();
    const [r0, r1, r2] = records(dir);
    expect([r0!.type, r1!.type, r2!.type]).toEqual(["decision", "decision", "outcomes"]);
    expect(r2).toMatchObject({ seq: o.seq, prev: n.hash, hash: o.hash, outcomes: [{ decision_seq: 0, request_id: "a", status: 200 }] });
    expect(recordHash(r2!)).toBe(o.hash);
  });

  test("the outcomes of many requests share one record: their entries in the order appended, without `type`", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 1000 });
    const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => log.append({ request_id: `r${i}`, decision: "allow" })));
    const writesBefore = log.stats().writes;
    const answered = await Promise.all(decisions.map((d, i) => log.append({ type: "outcome", decision_seq: d.seq, latency_ms: i / 4, request_id: `r${i}`, status: 200 + (i % 3) }, { deferred: true })));
    expect(log.stats().writes).toBe(writesBefore + 1);
    // Every outcome resolves with the one record that holds it.
    expect(new Set(answered.map((a) => a.seq))).toEqual(new Set([40]));
    await log.close();
    const holder = records(dir).find((r) => r.type === "outcomes")!;
    expect(holder.outcomes).toEqual(decisions.map((d, i) => ({ decision_seq: d.seq, latency_ms: i / 4, request_id: `r${i}`, status: 200 + (i % 3) })));
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification).toMatchObject({ ok: true, records: 42, decisions: 40, outcomes: 40, unknownOutcomes: 0 });
  });

  test("an outcome alone is still written (after the flush delay), and close() flushes one", async () => {
    const dir = tempDir();
    const log = await open(dir);
    const x = await log.append({ request_id: "x", decision: "allow" });
    const alone = await log.append({ type: "outcome", decision_seq: x.seq, request_id: "x", status: 204 }, { deferred: true });
    expect(alone.seq).toBe(1);
    expect(records(dir).map((r) => r.type)).toEqual(["decision", "outcomes"]);
    const y = await log.append({ request_id: "y", decision: "allow" });
    const last = log.append({ type: "outcome", decision_seq: y.seq, request_id: "y", status: 204 }, { deferred: true });
    await log.close();
    expect((await last).seq).toBe(3);
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification).toMatchObject({ ok: true, outcomes: 2, unknownOutcomes: 0 });
    expect(records(dir).map((r) => r.type)).toEqual(["decision", "outcomes", "decision", "outcomes", "checkpoint"]);
  });

  test("an outcome entry that is not JSON refuses only itself; the batch's other outcomes are written", async () => {
    const dir = tempDir();
    const log = await open(dir);
    const [a, b] = await Promise.all([log.append({ request_id: "a", decision: "allow" }), log.append({ request_id: "b", decision: "allow" })]);
    const [good, bad] = await Promise.allSettled([
      log.append({ type: "outcome", decision_seq: a!.seq, request_id: "a", status: 200 }),
      log.append({ type: "outcome", decision_seq: b!.seq, latency_ms: NaN, request_id: "b", status: 200 }),
    ]);
    expect(good.status).toBe("fulfilled");
    expect(bad.status === "rejected" && (bad.reason as GatewayError).code).toBe("AUDIT_BAD_RECORD");
    await log.close();
    expect(records(dir).find((r) => r.type === "outcomes")!.outcomes).toEqual([{ decision_seq: 0, request_id: "a", status: 200 }]);
    // b's decision is in the log; its outcome is not, and verify says so without calling it a break.
    expect(await verifyAuditFiles([dir], { keys: signer.jwks })).toMatchObject({ ok: true, unknownOutcomes: 1, unknownOutcomeSeqs: [1] });
  });

  test("records carry type, seq, time, prev and a hash of their canonical form", async () => {
    const dir = tempDir();
    const log = await open(dir);
    const first = await log.append({ request_id: "a", decision: "allow" });
    const second = await log.append({ type: "login", sub: "b", latency_ms: 3 });
    await log.close();
    const [r0, r1] = records(dir);
    expect(r0).toMatchObject({ type: "decision", seq: 0, prev: GENESIS_HASH, hash: first.hash, request_id: "a" });
    expect(typeof r0!.time).toBe("string");
    expect(r1).toMatchObject({ type: "login", seq: 1, prev: first.hash, hash: second.hash, sub: "b", latency_ms: 3 });
    expect(recordHash(r0!)).toBe(first.hash);
    expect(recordHash(r1!)).toBe(second.hash);
  });

  test("an event with the chain fields' slots is written with them filled, in a worker's chain too, and given back unchanged", async () => {
    for (const worker of [undefined, 3]) {
      const dir = tempDir();
      const log = await open(dir, { worker });
      const event = { auth: "jwt", prev: undefined, request_id: "a", seq: undefined, time: undefined, type: "decision", worker: undefined };
      const first = await log.append(event);
      const second = await log.append(event);
      await log.close();
      expect(event).toEqual({ auth: "jwt", prev: undefined, request_id: "a", seq: undefined, time: undefined, type: "decision", worker: undefined });
      const [r0, r1] = readdirSync(dir).sort().flatMap((f) => readLinesOf(join(dir, f)).map((l) => JSON.parse(l) as Record<string, unknown>));
      expect(r0).toMatchObject({ auth: "jwt", prev: GENESIS_HASH, request_id: "a", seq: 0, type: "decision", hash: first.hash });
      expect(r1).toMatchObject({ prev: first.hash, seq: 1, hash: second.hash });
      expect(r0!.worker).toBe(worker);
      expect(typeof r0!.time).toBe("string");
      expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
    }
  });

  test.each<[string, Record<string, unknown>]>([
    ["sets seq", { seq: 5 }],
    ["sets prev", { prev: GENESIS_HASH }],
    ["sets hash", { hash: "x" }],
    ["uses a reserved type", { type: "checkpoint" }],
    ["writes an `outcomes` record itself", { type: "outcomes", outcomes: [] }],
    ["is an outcome without `decision_seq`", { type: "outcome", request_id: "a", status: 200 }],
    ["is an outcome of a seq not written yet", { type: "outcome", decision_seq: 0, request_id: "a", status: 200 }],
    ["is not JSON", { latency: NaN }],
    ["has a `context` that is not an object", { context: 3 }],
  ])("an event that %s is refused with AUDIT_BAD_RECORD and takes no seq", async (_name, event) => {
    const dir = tempDir();
    const log = await open(dir);
    const error = await rejection(log.append(event));
    expect(error.code).toBe("AUDIT_BAD_RECORD");
    expect((await log.append({ ok: true })).seq).toBe(0);
    expect(log.healthy()).toBe(true);
    await log.close();
    expect((await verifyAuditFiles([dir])).ok).toBe(true);
  });

  test("stdout option prints exactly the lines written to the file", async () => {
    const dir = tempDir();
    let printed = "";
    const log = await open(dir, { stdout: true, stdoutSink: (text) => { printed += text; } });
    await Promise.all([log.append({ n: 1 }), log.append({ n: 2 })]);
    await log.append({ n: 3 });
    await log.close();
    expect(printed).toBe(auditFiles(dir).map((f) => readFileSync(f, "utf8")).join(""));
    expect(printed.split("\n").filter(Boolean)).toHaveLength(4); // three records + final checkpoint
  });
});

describe("checkpoints", () => {
  test("every checkpointEvery records, signed over head, seq, time and instance", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 5 });
    for (let i = 0; i < 12; i++) await log.append({ i });
    await log.close();
    const all = records(dir);
    const checkpoints = all.filter((r) => r.type === "checkpoint");
    expect(checkpoints.map((c) => c.seq)).toEqual([5, 11, 14]); // 5 records, cp, 5 records, cp, 2 records, close()
    expect(checkpoints.map((c) => c.count)).toEqual([5, 5, 2]);
    for (const c of checkpoints) {
      expect(c.head).toBe(all[(c.seq as number) - 1]!.hash);
      const payload = JSON.parse(Buffer.from(String(c.jws).split(".")[1]!, "base64url").toString("utf8"));
      expect(payload).toEqual({ head: c.head, seq: c.seq, time: c.time, instance: "test-instance" });
    }
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });

  test("checkpointIntervalMs checkpoints an idle head", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 1_000_000, checkpointIntervalMs: 20 });
    await log.append({ n: 1 });
    // Bounded wait for the timer; no assertion on how long it took.
    for (let i = 0; i < 500 && log.stats().checkpointsWritten === 0; i++) await Bun.sleep(10);
    expect(log.stats().checkpointsWritten).toBe(1);
    expect(records(dir).at(-1)).toMatchObject({ type: "checkpoint", seq: 1, count: 1 });
  });

  test("checkpoint() on a head that already is one writes nothing", async () => {
    const dir = tempDir();
    const log = await open(dir);
    await log.append({ n: 1 });
    expect(await log.checkpoint()).toMatchObject({ seq: 1 });
    expect(await log.checkpoint()).toBeNull();
    expect(log.stats().nextSeq).toBe(2);
  });
});

describe("restart", () => {
  test("reopening continues the chain from the last record", async () => {
    const dir = tempDir();
    let log = await open(dir, { checkpointEvery: 4 });
    for (let i = 0; i < 6; i++) await log.append({ run: 1, i });
    await log.close();
    const before = log.stats();
    log = await open(dir, { checkpointEvery: 4 });
    expect(log.stats().nextSeq).toBe(before.nextSeq);
    expect(log.stats().head).toBe(before.head);
    const next = await log.append({ run: 2 });
    expect(next.seq).toBe(before.nextSeq);
    await log.close();
    const all = records(dir);
    expect(all.find((r) => r.run === 2)!.prev).toBe(before.head);
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });

  test("after a crash (no close) the next checkpoint still counts the records before it", async () => {
    const crashed = tempDir();
    const log = await open(crashed, { checkpointEvery: 4 });
    for (let i = 0; i < 6; i++) await log.append({ i }); // 4 records, checkpoint, 2 records
    // The state a kill -9 leaves: a copy taken while the first process still runs.
    const dir = tempDir();
    cpSync(crashed, dir, { recursive: true });
    const resumed = await open(dir, { checkpointEvery: 4 });
    await resumed.append({ after: "restart" });
    await resumed.append({ after: "restart" });
    await resumed.close();
    const checkpoints = records(dir).filter((r) => r.type === "checkpoint");
    expect(checkpoints.map((c) => c.count)).toEqual([4, 4]);
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).break).toBeNull();
  });

  test("a torn last line is cut off and recorded in a recovery record", async () => {
    const dir = tempDir();
    let log = await open(dir);
    await log.append({ n: 1 });
    await log.close();
    const [file] = auditFiles(dir);
    const torn = '{"decision":"allow","prev":"ab';
    appendFileSync(file!, torn);
    expect((await verifyAuditFiles([dir])).break?.kind).toBe("truncated");
    log = await open(dir);
    await log.append({ n: 2 });
    await log.close();
    const all = records(dir);
    const recovery = all.find((r) => r.type === "recovery");
    expect(recovery).toMatchObject({ file: basename(file!), discarded_bytes: torn.length });
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });

  test("a last line that is complete but not a record refuses to open with AUDIT_TAIL_INVALID", async () => {
    const dir = tempDir();
    const log = await open(dir);
    await log.append({ n: 1 });
    await log.close();
    appendFileSync(auditFiles(dir)[0]!, "not json\n");
    const error = await rejection(openAuditLog(logOptions(dir, signer.signingKey)));
    expect(error.code).toBe("AUDIT_TAIL_INVALID");
  });
});

describe("rotation", () => {
  test("by size: files in lexical chain order, each ends with rotate and the next starts with a checkpoint", async () => {
    const dir = tempDir();
    const log = await open(dir, { rotateBytes: 2_000, checkpointEvery: 1_000 });
    for (let i = 0; i < 60; i++) await log.append({ request_id: `r${i}`, decision: "allow", padding: "x".repeat(40) });
    await log.close();
    const files = auditFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const [index, file] of files.entries()) {
      const lines = readLinesOf(file).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(basename(file)).toBe(`audit-${String(lines[0]!.seq).padStart(16, "0")}.jsonl`);
      if (index > 0) expect(lines[0]!.type).toBe("checkpoint");
      if (index < files.length - 1) {
        expect(lines.at(-1)).toMatchObject({ type: "rotate", next: basename(files[index + 1]!) });
        // Rotation happens at the first write after the size is reached: one record and the rotate record over.
        expect(readFileSync(file).length).toBeLessThan(2_000 + 600);
      }
    }
    const verification = await verifyAuditFiles(files.slice().reverse(), { keys: signer.jwks });
    expect(verification.break).toBeNull();
    expect(verification.files).toBe(files.length);
  });

  test("by age", async () => {
    const dir = tempDir();
    const log = await open(dir, { rotateAgeMs: 1 });
    await log.append({ n: 1 });
    const start = Date.now();
    while (Date.now() - start < 3) await Bun.sleep(1);
    await log.append({ n: 2 });
    await log.close();
    expect(auditFiles(dir)).toHaveLength(2);
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });

  test("a crash between the rotate record and the next file resumes in the named file", async () => {
    const crashed = tempDir();
    const log = await open(crashed, { rotateBytes: 200 });
    await log.append({ padding: "x".repeat(250) });
    await log.append({ n: 2 }); // rotates first
    const dir = tempDir();
    const [first] = auditFiles(crashed);
    cpSync(first!, `${dir}/${basename(first!)}`); // the second file never reached the disk
    const resumed = await open(dir, { rotateBytes: 200 });
    await resumed.append({ n: 3 });
    await resumed.close();
    expect(auditFiles(dir).map((f) => basename(f))).toEqual([basename(first!), "audit-0000000000000002.jsonl"]);
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });
});

describe("durability modes and close", () => {
  test.each([["always"], ["batch"], ["off"]] as const)("fsync = %s writes a verifiable log", async (fsync) => {
    const dir = tempDir();
    const log = await open(dir, { fsync, batchIntervalMs: 5, rotateBytes: 4_000 });
    for (let wave = 0; wave < 5; wave++) await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ wave, i })));
    await log.close();
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification.break).toBeNull();
    expect(records(dir).filter((r) => r.wave !== undefined)).toHaveLength(100);
  });

  test("fsync counts: always once per write, batch in the background without further appends, off never", async () => {
    const counts: Record<string, { writes: number; fsyncs: number }> = {};
    for (const fsync of ["always", "batch", "off"] as const) {
      const log = await open(tempDir(), { fsync, batchIntervalMs: 5 });
      await Promise.all(Array.from({ length: 10 }, (_, i) => log.append({ i })));
      await log.append({ last: true });
      // Bounded wait for the background fsync of `batch`; nothing else is appended meanwhile.
      for (let i = 0; i < 300 && fsync === "batch" && log.stats().fsyncs === 0; i++) await Bun.sleep(10);
      counts[fsync] = { writes: log.stats().writes, fsyncs: log.stats().fsyncs };
    }
    expect(counts.always!.fsyncs).toBe(counts.always!.writes);
    expect(counts.batch!.fsyncs).toBeGreaterThanOrEqual(1);
    expect(counts.batch!.fsyncs).toBeLessThanOrEqual(counts.batch!.writes);
    expect(counts.off!.fsyncs).toBe(0);
  });

  test("close() flushes appends still queued, signs the tail and refuses later appends", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 1_000 });
    const pending = Array.from({ length: 50 }, (_, i) => log.append({ i }));
    await log.close();
    expect((await Promise.all(pending)).map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(records(dir)).toHaveLength(51);
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification.ok).toBe(true);
    expect(verification.recordsAfterLastCheckpoint).toBe(0);
    expect((await rejection(log.append({ late: true }))).code).toBe("AUDIT_CLOSED");
    await log.close(); // idempotent
    expect(records(dir)).toHaveLength(51);
  });
});
