// Several workers, one audit directory: each worker's chain in its own files, every record
// naming its worker, and verification chain by chain (a break in one is reported for that one).
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runAuditVerify } from "../cli/audit-verify.ts";
import { EXIT, memoryIo } from "../cli/io.ts";
import { openAuditLog, type AuditLog } from "./log.ts";
import { auditFileChain, auditFileName, parseAuditFileName } from "./record.ts";
import { logOptions, makeSigner, readLinesOf } from "../../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditChains, verifyAuditFiles } from "./verify.ts";

const signer = await makeSigner();
const root = tempDir();
afterAll(() => removeTempDir(root));

/** Two workers' chains and a single process's older chain, interleaved in time, in one directory. */
async function writeWorkerChains(dir: string, options: { rotateBytes?: number } = {}): Promise<void> {
  // Each allowed request gets its outcome, as the gateway writes them: deferred, after the decision.
  const outcomes: Array<Promise<unknown>> = [];
  const request = async (log: AuditLog, request_id: string) => {
    const { seq } = await log.append({ request_id, decision: "allow" });
    outcomes.push(log.append({ type: "outcome", decision_seq: seq, request_id, status: 200 }, { deferred: true }));
  };
  const single = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 5 }));
  for (let i = 0; i < 3; i++) await request(single, `s${i}`);
  await single.close();
  const logs = await Promise.all([0, 1].map((worker) => openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 5, worker, ...options }))));
  for (let i = 0; i < 12; i++) await Promise.all(logs.map((log, worker) => request(log, `w${worker}-${i}`)));
  await Promise.all(logs.map((log) => log.close()));
  await Promise.all(outcomes);
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
    await again.append({ request_id: "after-restart", decision: "deny" });
    await again.close();
    const names = readdirSync(dir).sort();
    for (const chain of ["w0", "w1"]) expect(names.filter((n) => auditFileChain(n) === chain).length).toBeGreaterThan(1); // rotated
    for (const worker of [0, 1]) {
      const records = names.filter((n) => auditFileChain(n) === `w${worker}`).flatMap((n) => readLinesOf(join(dir, n)).map((l) => JSON.parse(l) as Record<string, unknown>));
      expect(new Set(records.map((r) => r.worker))).toEqual(new Set([worker]));
      expect(new Set(records.map((r) => r.type))).toEqual(new Set(["decision", "outcomes", "checkpoint", "rotate"]));
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
    // One request at a time: each batch holds a decision and the outcome of the request before.
    expect(chains.map((c) => [c.chain, c.result.ok, c.result.records, c.result.decisions, c.result.outcomes, c.result.unknownOutcomes])).toEqual([["", true, 8, 3, 3, 0], ["w0", true, 29, 12, 12, 0], ["w1", true, 29, 12, 12, 0]]);
    const io = memoryIo();
    expect(await runAuditVerify({ files: [dir], keysFile: null }, io)).toBe(EXIT.ok);
    expect(io.stdout).toEqual([
      "chain single: ok: 8 records, 2 checkpoints, 1 file",
      "chain single: note: checkpoint signatures not checked: no `--keys` given",
      "chain w0: ok: 29 records, 5 checkpoints, 1 file",
      "chain w0: note: checkpoint signatures not checked: no `--keys` given",
      "chain w1: ok: 29 records, 5 checkpoints, 1 file",
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
