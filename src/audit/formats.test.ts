// Logs of every format and the crash between a decision and its outcome. Format 1 wrote an
// `outcome` record per forwarded request; format 2 gathers a batch's outcomes into one `outcomes`
// record; format 3 writes a record's `context` once per file and its seq after that. Readers take
// each, and a chain that changes format where a gateway was upgraded.
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { killGroupOnExit } from "../../test/support/process-group.ts";
import { runAuditVerify } from "../cli/audit-verify.ts";
import { EXIT, memoryIo } from "../cli/io.ts";
import { openAuditLog } from "./log.ts";
import { ContextTable } from "./contexts.ts";
import { expandOutcomes, outcomesOf } from "./outcomes.ts";
import { recordHash } from "./record.ts";
import { auditFiles, logOptions, makeSigner, readLinesOf, writeLinesTo } from "../../test/support/audit-log.ts";
import { removeTempDir, tempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditFiles } from "./verify.ts";

/** A format-1 log written by a gateway serving test/e2e/replay.test.ts's traffic (see its README). */
const FORMAT_1 = join(import.meta.dir, "..", "..", "test", "fixtures", "audit-format-1");
const format1Keys = JSON.parse(readFileSync(join(FORMAT_1, "signers.jwks"), "utf8")) as JSONWebKeySet;
const root = tempDir();
afterAll(() => removeTempDir(root));
let dirs = 0;

function copyOfFormat1(): string {
  const dir = join(root, `case-${++dirs}`);
  cpSync(FORMAT_1, dir, { recursive: true, filter: (src) => !src.includes("policies") && !src.endsWith(".md") && !src.endsWith(".jwks") });
  return dir;
}

function recordsOf(dir: string): Array<Record<string, unknown>> {
  return auditFiles(dir).flatMap((f) => readLinesOf(f).map((l) => JSON.parse(l) as Record<string, unknown>));
}

describe("a format-1 log", () => {
  test("verifies with its keys, each forwarded request's outcome paired with its decision", async () => {
    const records = recordsOf(FORMAT_1);
    expect(records.some((r) => r.type === "outcome")).toBe(true);
    expect(records.some((r) => r.type === "outcomes")).toBe(false);
    const allowed = records.filter((r) => r.type === "decision" && r.decision === "allow").length;
    const result = await verifyAuditFiles([FORMAT_1], { keys: format1Keys });
    expect(result).toMatchObject({ ok: true, files: 3, outcomes: allowed, unknownOutcomes: 0 });
    expect(result.decisions).toBe(records.filter((r) => r.type === "decision").length);
  });

  test("expandOutcomes and a ContextTable leave its records as they are; outcomesOf finds each outcome", () => {
    const records = recordsOf(FORMAT_1);
    expect(records.flatMap(expandOutcomes)).toEqual(records);
    const contexts = new ContextTable();
    for (const record of records) expect(contexts.resolve(record)).toBe(record);
    expect(records.flatMap(outcomesOf)).toEqual(records.filter((r) => r.type === "outcome"));
  });
});

describe("a chain that switches from format 1 to format 2", () => {
  test("an upgraded gateway continues the format-1 chain; at its rotation the files change format, and the whole chain verifies", async () => {
    const dir = copyOfFormat1();
    const signer = await makeSigner("gw-upgraded");
    const before = readdirSync(dir).length;
    // The last format-1 file is about 3 KB: the first write of the new writer rotates it.
    const log = await openAuditLog(logOptions(dir, signer.signingKey, { rotateBytes: 3_000, checkpointEvery: 50 }));
    const decisions = await Promise.all(["n1", "n2", "n3"].map((request_id) => log.append({ decision: "allow", request_id })));
    await Promise.all(decisions.map((d, i) => log.append({ type: "outcome", decision_seq: d.seq, request_id: `n${i + 1}`, status: 200 }, { deferred: true })));
    await log.close();
    const files = auditFiles(dir);
    expect(files.length).toBe(before + 1);
    const last = readLinesOf(files.at(-1)!).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(last.map((r) => r.type)).toEqual(["checkpoint", "decision", "decision", "decision", "outcomes", "checkpoint"]);
    expect(JSON.parse(readLinesOf(files.at(-2)!).at(-1)!).type).toBe("rotate");

    const keys = { keys: [...format1Keys.keys, ...signer.jwks.keys] };
    const result = await verifyAuditFiles([dir], { keys });
    const old = await verifyAuditFiles([FORMAT_1], { keys: format1Keys });
    expect(result).toMatchObject({ ok: true, decisions: old.decisions + 3, outcomes: old.outcomes + 3, unknownOutcomes: 0, recordsAfterLastCheckpoint: 0 });
    // Readers that think in requests see one `outcome` per forwarded request, in both parts.
    const outcomes = recordsOf(dir).flatMap(expandOutcomes).filter((r) => r.type === "outcome");
    expect(outcomes.map((o) => o.request_id).slice(-3)).toEqual(["n1", "n2", "n3"]);
    expect(outcomes.length).toBe(old.outcomes + 3);
  });
});

describe("a crash between a decision and its outcome", () => {
  test("the decision is in the log; verify calls the chain intact and the request's outcome unknown; a restarted gateway continues the chain", async () => {
    const dir = join(root, "crash");
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "..", "..", "test", "support", "audit-decide-and-die.ts"), dir], { stdout: "pipe", stderr: "pipe", detached: true });
    killGroupOnExit(child.pid);
    const killer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ } }, 20_000);
    const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    clearTimeout(killer);
    expect({ signal: child.signalCode, err }).toEqual({ signal: "SIGKILL", err: "" });
    const { seq, jwks } = JSON.parse(out) as { seq: number; jwks: JSONWebKeySet };

    const decision = recordsOf(dir).find((r) => r.request_id === "cut-off")!;
    expect(decision).toMatchObject({ type: "decision", seq, decision: "allow" });
    expect(recordsOf(dir).flatMap(outcomesOf).map((o) => o.request_id)).toEqual(["before-0", "before-1"]);
    const crashed = await verifyAuditFiles([dir], { keys: jwks, allowUnsignedTail: true });
    expect(crashed).toMatchObject({ ok: true, break: null, outcomes: 2, unknownOutcomes: 1, unknownOutcomeSeqs: [seq] });

    // The next start continues the chain; the lost outcome stays unknown, and says so.
    const signer = await makeSigner("gw-restarted");
    const log = await openAuditLog(logOptions(dir, signer.signingKey));
    const next = await log.append({ decision: "allow", request_id: "after" });
    await log.append({ type: "outcome", decision_seq: next.seq, request_id: "after", status: 201 });
    await log.close();
    const keys = { keys: [...jwks.keys, ...signer.jwks.keys] };
    expect(await verifyAuditFiles([dir], { keys })).toMatchObject({ ok: true, outcomes: 3, unknownOutcomes: 1, unknownOutcomeSeqs: [seq] });
    const io = memoryIo();
    const keysFile = join(root, "crash.jwks");
    writeFileSync(keysFile, JSON.stringify(keys));
    expect(await runAuditVerify({ files: [dir], keysFile }, io)).toBe(EXIT.ok);
    expect(io.stdout).toContain(`note: outcome unknown for 1 allowed request (decision seq ${seq}): no outcome was recorded — the gateway stopped before the upstream answered, or it was still in flight`);
  });
});

describe("forged outcomes", () => {
  async function writeLog(dir: string) {
    const signer = await makeSigner();
    const log = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 100 }));
    const decisions = await Promise.all(["a", "b"].map((request_id) => log.append({ decision: "allow", request_id })));
    await Promise.all(decisions.map((d, i) => log.append({ type: "outcome", decision_seq: d.seq, request_id: "ab"[i], status: 200 })));
    await log.close();
    const file = auditFiles(dir)[0]!;
    const lines = readLinesOf(file);
    const at = lines.findIndex((l) => l.includes('"type":"outcomes"'));
    return { signer, file, lines, at };
  }

  test("an outcome's status edited: `changed` at the outcomes record", async () => {
    const dir = join(root, "edited");
    const { file, lines, at } = await writeLog(dir);
    lines[at] = lines[at]!.replace('"status":200', '"status":500');
    writeLinesTo(file, lines);
    expect((await verifyAuditFiles([dir])).break).toMatchObject({ kind: "changed", line: at + 1 });
  });

  test("an outcome removed and the chain re-hashed: the signed checkpoint no longer matches", async () => {
    const dir = join(root, "rehashed");
    const { signer, file, lines, at } = await writeLog(dir);
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    (records[at]!.outcomes as unknown[]).pop();
    for (let i = at; i < records.length; i++) {
      if (i > at) records[i]!.prev = records[i - 1]!.hash;
      if (records[i]!.type === "checkpoint") records[i]!.head = records[i]!.prev;
      const { hash: _h, ...body } = records[i]!;
      records[i]!.hash = recordHash(body);
      lines[i] = JSON.stringify(Object.fromEntries([...Object.entries(body).sort(([x], [y]) => (x < y ? -1 : 1)), ["hash", records[i]!.hash]]));
    }
    writeLinesTo(file, lines);
    // Every hash and link holds; the checkpoint's signed head is the old chain's.
    const checkpointLine = records.findIndex((r, i) => i > at && r.type === "checkpoint") + 1;
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).break).toMatchObject({ kind: "bad_checkpoint", line: checkpointLine });
  });

  test("an `outcomes` record whose outcome names a later seq is not one the log writes: `malformed`", async () => {
    const dir = join(root, "forward");
    const { file, lines, at } = await writeLog(dir);
    const record = JSON.parse(lines[at]!) as Record<string, unknown>;
    (record.outcomes as Array<Record<string, unknown>>)[0]!.decision_seq = record.seq;
    const { hash: _h, ...body } = record;
    lines[at] = JSON.stringify({ ...body, hash: recordHash(body) });
    writeLinesTo(file, lines.slice(0, at + 1));
    expect((await verifyAuditFiles([dir])).break).toMatchObject({ kind: "malformed", line: at + 1 });
  });
});

describe("format 3: a context written once per file", () => {
  const alice = { auth: "jwt", bundle: { digest: "d".repeat(64), revision: 1 }, principal: { roles: ["developer"], sub: "alice" } };
  const bob = { auth: "mtls", bundle: { digest: "d".repeat(64), revision: 1 }, principal: { roles: ["sre"], sub: "bob" } };

  test("the first record of a file that carries a context holds it, later ones its seq; a new file holds it again; readers get each record whole", async () => {
    const dir = join(root, "contexts");
    const signer = await makeSigner();
    const log = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 50, rotateBytes: 3_000 }));
    // A format-2 record (no context) first: a log may hold both.
    await log.append({ decision: "deny", request_id: "plain" });
    // Four appends a batch: a batch's first record with a new context holds it, the rest of the batch refers to it.
    for (let i = 0; i < 48; i += 4) {
      await Promise.all([i, i + 1, i + 2, i + 3].map((n) => log.append({ context: n % 3 === 2 ? bob : alice, decision: "allow", request_id: `r${n}` })));
    }
    await log.close();
    const files = auditFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    let inline = 0;
    let refs = 0;
    const whole: Array<Readonly<Record<string, unknown>>> = [];
    for (const file of files) {
      const records = readLinesOf(file).map((l) => JSON.parse(l) as Record<string, unknown>);
      const held = new Map<number, unknown>();
      for (const r of records) {
        if (typeof r.context === "object") {
          // Each context is held once per file.
          expect([...held.values()].map((c) => JSON.stringify(c))).not.toContain(JSON.stringify(r.context));
          held.set(r.seq as number, r.context);
          inline++;
        } else if (typeof r.context === "number") {
          expect(held.has(r.context)).toBe(true);
          refs++;
        }
      }
      const contexts = new ContextTable();
      whole.push(...records.map((r) => contexts.resolve(r)!));
    }
    expect(inline).toBeGreaterThanOrEqual(files.length);
    expect(refs).toBeGreaterThan(inline);
    const decisions = whole.filter((r) => r.type === "decision");
    expect(decisions.map((r) => r.request_id)).toEqual(["plain", ...Array.from({ length: 48 }, (_, i) => `r${i}`)]);
    expect(decisions[0]).not.toHaveProperty("principal");
    for (const [i, r] of decisions.slice(1).entries()) {
      expect(r).toMatchObject(i % 3 === 2 ? bob : alice);
      expect(r.seq).toBeGreaterThan(decisions[i]!.seq as number);
      expect(r).not.toHaveProperty("context");
    }
    expect(await verifyAuditFiles([dir], { keys: signer.jwks })).toMatchObject({ ok: true, decisions: 49 });
  });

  test("after the file was deleted, the chain's new file holds the context again", async () => {
    const dir = join(root, "contexts-lost");
    const signer = await makeSigner();
    const log = await openAuditLog(logOptions(dir, signer.signingKey));
    await log.append({ context: alice, request_id: "a" });
    await log.append({ context: alice, request_id: "b" });
    rmSync(auditFiles(dir)[0]!);
    await log.append({ context: alice, request_id: "c" });
    await log.append({ context: alice, request_id: "d" });
    await log.close();
    const records = readLinesOf(auditFiles(dir)[0]!).map((l) => JSON.parse(l) as Record<string, unknown>);
    const c = records.find((r) => r.request_id === "c")!;
    expect(c.context).toEqual(alice);
    expect(records.find((r) => r.request_id === "d")!.context).toBe(c.seq);
    expect((await verifyAuditFiles([dir], { keys: signer.jwks, partial: true })).ok).toBe(true);
  });

  /** A log whose second file's decisions refer to contexts; each line re-hashed after `edit`, as a forger can. */
  async function forged(name: string, edit: (records: Array<Record<string, unknown>>) => void): Promise<{ dir: string; line: number }> {
    const dir = join(root, name);
    const signer = await makeSigner();
    const log = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 100 }));
    for (const id of ["a", "b", "c"]) await log.append({ context: alice, request_id: id });
    await log.close();
    const file = auditFiles(dir)[0]!;
    const records = readLinesOf(file).map((l) => JSON.parse(l) as Record<string, unknown>);
    edit(records);
    const at = records.findIndex((r) => r.request_id === "c");
    const lines: string[] = [];
    for (const [i, record] of records.entries()) {
      if (i > 0) record.prev = records[i - 1]!.hash;
      if (record.type === "checkpoint") record.head = record.prev;
      const { hash: _h, ...body } = record;
      record.hash = recordHash(body);
      lines.push(JSON.stringify(Object.fromEntries([...Object.entries(body).sort(([x], [y]) => (x < y ? -1 : 1)), ["hash", record.hash]])));
    }
    writeLinesTo(file, lines.slice(0, at + 1));
    return { dir, line: at + 1 };
  }

  test("a record that refers to a seq holding no context is not one the log writes: `malformed`", async () => {
    const { dir, line } = await forged("contexts-forged", (records) => {
      records.find((r) => r.request_id === "c")!.context = records.find((r) => r.request_id === "b")!.seq;
    });
    const result = await verifyAuditFiles([dir]);
    expect(result.break).toMatchObject({ kind: "malformed", line });
    expect(result.break!.message).toContain("no earlier record of this file holds");
  });

  test("a `context` that is neither an object nor a seq: `malformed`", async () => {
    const { dir, line } = await forged("contexts-bad", (records) => { records.find((r) => r.request_id === "c")!.context = "alice"; });
    expect((await verifyAuditFiles([dir])).break).toMatchObject({ kind: "malformed", line });
  });
});
