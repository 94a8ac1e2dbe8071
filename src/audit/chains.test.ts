// Several workers, one audit directory: each worker's chain in its own files, every record
// naming its worker, and verification chain by chain (a break in one is reported for that one).
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runAuditVerify } from "../cli/audit-verify.ts";
import { EXIT, memoryIo } from "../cli/io.ts";
import { openAuditLog } from "./log.ts";
import { auditFileChain, auditFileName, parseAuditFileName } from "./record.ts";
import { logOptions, makeSigner, makeTempDir, readLinesOf, removeDir } from "./testkit.ts";
import { verifyAuditChains, verifyAuditFiles } from "./verify.ts";

const signer = await makeSigner();
const root = makeTempDir();
afterAll(() => removeDir(root));

/** Two workers' chains and a single process's older chain, interleaved in time, in one directory. */
async function writeWorkerChains(dir: string, options: { rotateBytes?: number } = {}): Promise<void> {
  const single = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 5 }));
  for (let i = 0; i < 3; i++) await single.append({ request_id: `s${i}`, decision: "allow" });
  await single.close();
  const logs = await Promise.all([0, 1].map((worker) => openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 5, worker, ...options }))));
  for (let i = 0; i < 12; i++) await Promise.all(logs.map((log, worker) => log.append({ request_id: `w${worker}-${i}`, decision: "allow" })));
  await Promise.all(logs.map((log) => log.close()));
}

describe("file names of worker chains", () => {
  test("a worker's files carry its chain name; a single process's do not", () => {
    expect(auditFileName(7, "w3")).toBe("audit-w3-0000000000000007.jsonl");
    expect(auditFileName(7)).toBe("audit-0000000000000007.jsonl");
    expect(auditFileChain("audit-w3-0000000000000007.jsonl")).toBe("w3");
    expect(auditFileChain("audit-0000000000000007.jsonl")).toBe("");
    expect(parseAuditFileName("audit-w3-0000000000000007.jsonl")).toBe(7);
    expect(auditFileChain("audit-x3-0000000000000007.jsonl")).toBeNull();
  });
});

describe("each worker writes its own chain", () => {
  test("own files, the worker id in every record (checkpoints and rotate records too), resumed after a restart", async () => {
    const dir = join(root, "own");
    await writeWorkerChains(dir, { rotateBytes: 2_000 });
    // A restarted worker 1 continues its own chain, not worker 0's.
    const again = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 5, worker: 1 }));
    await again.append({ request_id: "after-restart", decision: "allow" });
    await again.close();
    const names = readdirSync(dir).sort();
    for (const chain of ["w0", "w1"]) expect(names.filter((n) => auditFileChain(n) === chain).length).toBeGreaterThan(1); // rotated
    for (const worker of [0, 1]) {
      const records = names.filter((n) => auditFileChain(n) === `w${worker}`).flatMap((n) => readLinesOf(join(dir, n)).map((l) => JSON.parse(l) as Record<string, unknown>));
      expect(new Set(records.map((r) => r.worker))).toEqual(new Set([worker]));
      expect(new Set(records.map((r) => r.type))).toEqual(new Set(["decision", "checkpoint", "rotate"]));
      expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i));
      expect(records.filter((r) => r.type === "decision").every((r) => String(r.request_id).startsWith(`w${worker}-`) || r.request_id === "after-restart")).toBe(true);
    }
    const single = names.filter((n) => auditFileChain(n) === "").flatMap((n) => readLinesOf(join(dir, n)).map((l) => JSON.parse(l) as Record<string, unknown>));
    expect(single.some((r) => "worker" in r)).toBe(false);
  });
});

describe("verification, chain by chain", () => {
  test("every chain of the directory verifies on its own and is reported by name", async () => {
    const dir = join(root, "intact");
    await writeWorkerChains(dir);
    const chains = await verifyAuditChains([dir], { keys: signer.jwks });
    expect(chains.map((c) => [c.chain, c.result.ok, c.result.records])).toEqual([["", true, 4], ["w0", true, 15], ["w1", true, 15]]);
    const io = memoryIo();
    expect(await runAuditVerify({ files: [dir], keysFile: null }, io)).toBe(EXIT.ok);
    expect(io.stdout).toEqual([
      "chain single: ok: 4 records, 1 checkpoint, 1 file",
      "chain single: note: checkpoint signatures not checked: no `--keys` given",
      "chain w0: ok: 15 records, 3 checkpoints, 1 file",
      "chain w0: note: checkpoint signatures not checked: no `--keys` given",
      "chain w1: ok: 15 records, 3 checkpoints, 1 file",
      "chain w1: note: checkpoint signatures not checked: no `--keys` given",
      "ok: 3 chains intact",
    ]);
  });

  test("a record changed in one worker's chain breaks that chain only", async () => {
    const dir = join(root, "tampered");
    await writeWorkerChains(dir);
    const file = join(dir, auditFileName(0, "w1"));
    const lines = readLinesOf(file);
    lines[2] = lines[2]!.replace('"decision":"allow"', '"decision":"deny"');
    writeFileSync(file, lines.join("\n") + "\n");
    const chains = await verifyAuditChains([dir], { keys: signer.jwks });
    expect(chains.map((c) => [c.chain, c.result.ok, c.result.break?.kind ?? null])).toEqual([["", true, null], ["w0", true, null], ["w1", false, "changed"]]);
    const io = memoryIo();
    expect(await runAuditVerify({ files: [dir], keysFile: null }, io)).toBe(EXIT.verificationFailed);
    expect(io.stdout.filter((l) => l.includes(": changed: "))).toEqual([expect.stringMatching(new RegExp(`^chain w1: ${file.replace(/[.]/g, "\\.")}:3: changed: `))]);
    expect(io.stdout.at(-1)).toBe("broken: 1 of 3 chains");
  });

  test("verifyAuditFiles refuses the files of several chains instead of reading them as one", async () => {
    const dir = join(root, "several");
    await writeWorkerChains(dir);
    await expect(verifyAuditFiles([dir])).rejects.toMatchObject({ code: "AUDIT_SEVERAL_CHAINS" });
  });
});
