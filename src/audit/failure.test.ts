import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GatewayError } from "../errors.ts";
import { openAuditLog } from "./log.ts";
import type { AuditLog } from "./log.ts";
import { auditFileName } from "./record.ts";
import { auditFiles, logOptions, makeDirReadOnly, makeSigner, readLinesOf } from "../../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditFiles } from "./verify.ts";

const signer = await makeSigner();
const cleanups: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(dir: string, overrides: Parameters<typeof logOptions>[2] = {}): Promise<AuditLog> {
  const log = await openAuditLog(logOptions(dir, signer.signingKey, overrides));
  cleanups.push(() => log.close());
  return log;
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    return error as GatewayError;
  }
  throw new Error("expected a rejection");
}

describe("a log that cannot be written", () => {
  test("a full disk (the file is /dev/full): append rejects with AUDIT_WRITE_FAILED, healthy() is false", async () => {
    const dir = tempDir();
    symlinkSync("/dev/full", join(dir, auditFileName(0)));
    const log = await open(dir);
    expect(log.healthy()).toBe(true);
    const errors = await Promise.all([log.append({ n: 1 }), log.append({ n: 2 })].map(rejection));
    for (const error of errors) {
      expect(error).toBeInstanceOf(GatewayError);
      expect(error.code).toBe("AUDIT_WRITE_FAILED");
      expect(error.detail?.errno).toBe("ENOSPC");
    }
    expect(log.healthy()).toBe(false);
    expect(log.lastError?.code).toBe("AUDIT_WRITE_FAILED");
    expect(log.stats()).toMatchObject({ nextSeq: 0, failedAppends: 2, recordsWritten: 0 });
    // Every later append is refused too: nothing is dropped silently.
    expect((await rejection(log.append({ n: 3 }))).code).toBe("AUDIT_WRITE_FAILED");
  });

  test("a read-only directory: rejects until writable, then the chain starts cleanly", async () => {
    const dir = tempDir();
    const restore = makeDirReadOnly(dir);
    cleanups.push(restore);
    const log = await open(dir);
    const error = await rejection(log.append({ n: 1 }));
    expect(error.code).toBe("AUDIT_WRITE_FAILED");
    expect(log.healthy()).toBe(false);
    expect(auditFiles(dir)).toHaveLength(0);
    restore();
    expect(await log.append({ n: 2 })).toMatchObject({ seq: 0 });
    expect(log.healthy()).toBe(true);
    expect(log.lastError?.code).toBe("AUDIT_WRITE_FAILED"); // kept for diagnostics
    await log.close();
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification.break).toBeNull();
    expect(readLinesOf(auditFiles(dir)[0]!).map((l) => JSON.parse(l).n)).toEqual([2, undefined]); // the record, then close()'s checkpoint
  });

  test("rotation into a read-only directory: the failed records leave no gap, the chain continues once writable", async () => {
    const dir = tempDir();
    const log = await open(dir, { rotateBytes: 300 });
    await log.append({ n: 1, padding: "x".repeat(300) });
    const restore = makeDirReadOnly(dir);
    cleanups.push(restore);
    // Rotation writes the rotate record into the existing file, then cannot create the next.
    expect((await rejection(log.append({ n: 2 }))).code).toBe("AUDIT_WRITE_FAILED");
    expect((await rejection(log.append({ n: 3 }))).code).toBe("AUDIT_WRITE_FAILED");
    expect(log.healthy()).toBe(false);
    restore();
    await log.append({ n: 4 });
    expect(log.healthy()).toBe(true);
    await log.close();
    const verification = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(verification.break).toBeNull();
    const ns = auditFiles(dir).flatMap((f) => readLinesOf(f).map((l) => JSON.parse(l).n)).filter((n) => n !== undefined);
    expect(ns).toEqual([1, 4]);
  });

  test("rotation onto a full disk: refused, and what was written before still verifies up to the cut", async () => {
    const dir = tempDir();
    const log = await open(dir, { rotateBytes: 300 });
    await log.append({ n: 1, padding: "x".repeat(300) });
    const next = join(dir, auditFileName(log.stats().nextSeq + 1));
    symlinkSync("/dev/full", next);
    expect((await rejection(log.append({ n: 2 }))).detail?.errno).toBe("ENOSPC");
    expect(log.healthy()).toBe(false);
    unlinkSync(next);
    expect(existsSync(next)).toBe(false);
    // The first file ends with the rotate record; the file it names never received a record.
    const verification = await verifyAuditFiles([dir]);
    expect(verification.break).toMatchObject({ kind: "truncated", seq: 1 });
  });
});

describe("a directory that cannot be created at start-up", () => {
  test("start-up succeeds unhealthy-on-append, and the log heals once the directory can be made", async () => {
    const parent = tempDir();
    const dir = join(parent, "audit");
    const restore = makeDirReadOnly(parent);
    cleanups.push(restore);
    const log = await open(dir);
    expect(log.healthy()).toBe(false);
    expect(log.lastError?.code).toBe("AUDIT_WRITE_FAILED");
    expect((await rejection(log.append({ n: 1 }))).code).toBe("AUDIT_WRITE_FAILED");
    restore();
    expect(await log.append({ n: 2 })).toMatchObject({ seq: 0 });
    expect(log.healthy()).toBe(true);
    await log.close();
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).ok).toBe(true);
  });
});

// Regression: a file deleted while the log was open kept receiving records in its unlinked
// inode (20 appends, 0 records on disk). The path is checked before each batch is written.
describe("the current file deleted or replaced while the log is open", () => {
  const recordsIn = (dir: string) => auditFiles(dir).flatMap((f) => readLinesOf(f).map((l) => JSON.parse(l) as Record<string, unknown>));

  test("deleted: the next records go to a new file that starts with a checkpoint and a recovery record naming the loss", async () => {
    const dir = tempDir();
    const log = await open(dir, { checkpointEvery: 100 });
    for (let n = 0; n < 5; n++) await log.append({ n });
    const lost = auditFiles(dir)[0]!;
    unlinkSync(lost);
    for (let n = 5; n < 25; n++) await log.append({ n });
    expect(log.stats()).toMatchObject({ file: auditFileName(5), filesLost: 1 });
    await log.close();
    expect(auditFiles(dir)).toEqual([join(dir, auditFileName(5))]);
    const records = recordsIn(dir);
    expect(records.slice(0, 2)).toMatchObject([
      { type: "checkpoint", seq: 5, count: 5 },
      { type: "recovery", seq: 6, reason: "file_deleted", file: auditFileName(0), first_seq: 0, last_seq: 4 },
    ]);
    expect(records.filter((r) => r.type === "decision").map((r) => r.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 5));
    // The records that went with the file are a gap in the log; the rest verifies as an archive does.
    expect((await verifyAuditFiles([dir], { keys: signer.jwks })).break).toMatchObject({ kind: "removed", seq: 5 });
    expect((await verifyAuditFiles([dir], { keys: signer.jwks, partial: true })).break).toBeNull();
  });

  test("replaced (a copy renamed over it): the copy is left alone and the chain continues in a new file", async () => {
    const dir = tempDir();
    const log = await open(dir);
    for (let n = 0; n < 3; n++) await log.append({ n });
    const path = auditFiles(dir)[0]!;
    const copy = readFileSync(path, "utf8").replace('"n":1', '"n":7');
    writeFileSync(`${path}.tmp`, copy);
    renameSync(`${path}.tmp`, path);
    await log.append({ n: 3 });
    await log.close();
    expect(readFileSync(path, "utf8")).toBe(copy);
    expect(recordsIn(dir).find((r) => r.type === "recovery")).toMatchObject({ reason: "file_replaced", file: auditFileName(0), first_seq: 0, last_seq: 2 });
    expect(readLinesOf(join(dir, auditFileName(3))).map((l) => JSON.parse(l).type)).toEqual(["checkpoint", "recovery", "decision", "checkpoint"]);
  });

  test("the whole directory deleted: it is made again and the chain continues", async () => {
    const dir = tempDir();
    const log = await open(dir);
    await log.append({ n: 0 });
    removeTempDir(dir);
    await log.append({ n: 1 });
    await log.close();
    expect(recordsIn(dir).map((r) => r.type)).toEqual(["checkpoint", "recovery", "decision", "checkpoint"]);
  });

  test("deleted, and no new file can be made: appends are refused (on_failure = deny denies), then the log heals", async () => {
    const dir = tempDir();
    const log = await open(dir);
    await log.append({ n: 0 });
    unlinkSync(auditFiles(dir)[0]!);
    const restore = makeDirReadOnly(dir);
    cleanups.push(restore);
    expect((await rejection(log.append({ n: 1 }))).code).toBe("AUDIT_WRITE_FAILED");
    expect(log.healthy()).toBe(false);
    expect(auditFiles(dir)).toEqual([]);
    restore();
    await log.append({ n: 2 });
    expect(log.healthy()).toBe(true);
    await log.close();
    const records = recordsIn(dir);
    expect(records.map((r) => r.type)).toEqual(["checkpoint", "recovery", "decision", "checkpoint"]);
    expect(records[2]).toMatchObject({ n: 2, seq: 3 });
    expect((await verifyAuditFiles([dir], { keys: signer.jwks, partial: true })).break).toBeNull();
  });
});
