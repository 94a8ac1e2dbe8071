import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GatewayError } from "../errors.ts";
import { openAuditLog } from "../audit/mod.ts";
import { auditFiles, logOptions, makeSigner, readLinesOf, writeLinesTo } from "../../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../../test/support/temp-dir.ts";
import { parseAuditVerifyArgs, runAuditVerify, type AuditVerifyArgs } from "./audit-verify.ts";
import { EXIT, memoryIo } from "./io.ts";

const signer = await makeSigner();
const root = tempDir();
const logDir = join(root, "log");
const keysFile = join(root, "keys.jwks");

beforeAll(async () => {
  const log = await openAuditLog(logOptions(logDir, signer.signingKey, { checkpointEvery: 5, rotateBytes: 3_000 }));
  // Denials: no outcome follows them, so verify's only notes are about checkpoints.
  for (let i = 0; i < 12; i++) await log.append({ request_id: `r${i}`, decision: "deny" });
  await log.close();
  writeFileSync(keysFile, JSON.stringify(signer.jwks));
});

afterAll(() => removeTempDir(root));

async function run(args: AuditVerifyArgs) {
  const io = memoryIo();
  const code = await runAuditVerify(args, io);
  return { code, out: io.stdout, err: io.stderr };
}

describe("runAuditVerify", () => {
  test("an intact log: exit 0 and the totals", async () => {
    const files = auditFiles(logDir);
    const records = files.reduce((n, f) => n + readLinesOf(f).length, 0);
    const { code, out, err } = await run({ files: [logDir], keysFile });
    expect(code).toBe(EXIT.ok);
    expect(out).toEqual([`ok: ${records} records, ${records - 12 - (files.length - 1)} checkpoints, ${files.length} files`]);
    expect(err).toEqual([]);
  });

  test("without keys it says the signatures were not checked", async () => {
    const { code, out } = await run({ files: [logDir] });
    expect(code).toBe(0);
    expect(out[1]).toBe("note: checkpoint signatures not checked: no `--keys` given");
  });

  test("a changed record: exit 4 and `file:line: kind: message`", async () => {
    const path = join(root, "audit.jsonl");
    const lines = readLinesOf(auditFiles(logDir)[0]!);
    writeLinesTo(path, lines.map((l, i) => (i === 2 ? l.replace('"deny"', '"allow"') : l)));
    const { code, out } = await run({ files: [path], keysFile });
    expect(code).toBe(EXIT.verificationFailed);
    expect(out).toEqual([`${path}:3: changed: record seq 2 hash does not match its content`]);
  });

  test("records after the last checkpoint: a break with keys, accepted and named with --allow-unsigned-tail", async () => {
    const path = join(root, "unsigned-tail.jsonl");
    const lines = readLinesOf(auditFiles(logDir)[0]!).slice(0, 8); // 5 records, checkpoint, 2 records
    writeLinesTo(path, lines);
    const bytes = Buffer.byteLength(lines[6]!) + Buffer.byteLength(lines[7]!) + 2;
    const refused = await run({ files: [path], keysFile });
    expect(refused.code).toBe(EXIT.verificationFailed);
    expect(refused.out).toEqual([`${path}:7: unsigned: 2 records (seq 6..7, ${bytes} bytes) covered by no checkpoint signature: the tail of a running gateway's log, or a forgery; \`--allow-unsigned-tail\` accepts it`]);
    const allowed = await run({ files: [path], keysFile, allowUnsignedTail: true });
    expect(allowed.code).toBe(0);
    expect(allowed.out).toEqual(["ok: 8 records, 1 checkpoint, 1 file", `note: unsigned tail: 2 records (seq 6..7, ${bytes} bytes) after the last checkpoint are not covered by a signature`]);
    // Without keys nothing is signature-checked, so the tail is only noted.
    expect((await run({ files: [path] })).code).toBe(0);
  });

  test.each<[string, () => AuditVerifyArgs]>([
    ["no files", () => ({ files: [] })],
    ["a missing file", () => ({ files: [join(root, "nope.jsonl")] })],
    ["a missing keys file", () => ({ files: [logDir], keysFile: join(root, "nope.jwks") })],
    ["a keys file that is not a JWKS", () => { const p = join(root, "bad.jwks"); writeFileSync(p, "{}"); return { files: [logDir], keysFile: p }; }],
    ["an anchor without keys", () => ({ files: [logDir], anchor: "a.b.c" })],
  ])("bad usage (%s): exit 64 and a message on err", async (_name, args) => {
    const { code, out, err } = await run(args());
    expect(code).toBe(EXIT.usage);
    expect(out).toEqual([]);
    expect(err).toHaveLength(1);
  });

  test("a directory and a copied file together are read in chain order", async () => {
    const files = auditFiles(logDir);
    const dir = join(root, "mixed");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir);
    for (const f of files.slice(1)) copyFileSync(f, join(dir, f.split("/").at(-1)!));
    const { code } = await run({ files: [dir, files[0]!], keysFile });
    expect(code).toBe(0);
  });
});

describe("parseAuditVerifyArgs", () => {
  test.each<[string[], AuditVerifyArgs | string]>([
    [["a.jsonl"], { files: ["a.jsonl"], keysFile: null, anchor: null, partial: false, allowUnsignedTail: false }],
    [["dir", "--keys", "k.jwks", "--partial"], { files: ["dir"], keysFile: "k.jwks", anchor: null, partial: true, allowUnsignedTail: false }],
    [["--keys=k.jwks", "--anchor", "x.y.z", "a", "b"], { files: ["a", "b"], keysFile: "k.jwks", anchor: "x.y.z", partial: false, allowUnsignedTail: false }],
    [["a", "--allow-unsigned-tail", "--keys", "k.jwks"], { files: ["a"], keysFile: "k.jwks", anchor: null, partial: false, allowUnsignedTail: true }],
    [[], "USAGE"],
    [["a", "--keys"], "USAGE"],
    [["a", "--keys="], "USAGE"],
    [["a", "--frobnicate"], "USAGE"],
  ])("%j", (argv, expected) => {
    if (typeof expected === "string") {
      let thrown: unknown;
      try {
        parseAuditVerifyArgs(argv);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(GatewayError);
      expect((thrown as GatewayError).code as string).toBe(expected);
    } else {
      expect(parseAuditVerifyArgs(argv)).toEqual(expected);
    }
  });
});
