import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { openAuditLog } from "./log.ts";
import { recordLine } from "./record.ts";
import { auditFiles, logOptions, makeSigner, readLinesOf, writeLinesTo } from "../../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditFiles } from "./verify.ts";
import type { AuditBreakKind } from "./verify.ts";

const signer = await makeSigner();
const root = tempDir();
// One file: line n holds seq n-1. Checkpoints (every 10 records) at seq 10, 21, 32, 43.
let singleFile: string;
let singleLines: string[];
let chainDir: string;

beforeAll(async () => {
  const dir = join(root, "single");
  const log = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 10 }));
  for (let i = 0; i < 40; i++) await log.append({ request_id: `r${i}`, sub: "alice", decision: "allow", i });
  await log.close();
  singleFile = auditFiles(dir)[0]!;
  singleLines = readLinesOf(singleFile);

  chainDir = join(root, "rotated");
  const rotated = await openAuditLog(logOptions(chainDir, signer.signingKey, { checkpointEvery: 10, rotateBytes: 1_500 }));
  for (let i = 0; i < 40; i++) await rotated.append({ request_id: `r${i}`, decision: "allow" });
  await rotated.close();
});

afterAll(() => removeTempDir(root));

let caseNumber = 0;
/** Writes tampered content as a copy of the single-file log and verifies it. */
async function verifyTampered(content: string | string[], options: Parameters<typeof verifyAuditFiles>[1] = { keys: signer.jwks }) {
  const dir = join(root, `case-${++caseNumber}`);
  mkdirSync(dir);
  const path = join(dir, basename(singleFile));
  if (typeof content === "string") writeFileSync(path, content);
  else writeLinesTo(path, content);
  return { path, result: await verifyAuditFiles([path], options) };
}

const parse = (line: string) => JSON.parse(line) as Record<string, unknown>;
/** A line for `record` with its hash recomputed, as a forger would. */
const rehash = (record: Record<string, unknown>) => {
  const { hash: _old, ...body } = record;
  return recordLine(body).line.trimEnd();
};

describe("verifyAuditFiles: intact logs", () => {
  test("the untouched log verifies with its checkpoint signatures", async () => {
    const { result } = await verifyTampered(singleLines);
    expect(result).toMatchObject({ ok: true, break: null, records: 44, checkpoints: 4, files: 1, recordsAfterLastCheckpoint: 0, signaturesChecked: true, firstSeq: 0, lastSeq: 43 });
  });

  test("a rotated log verifies across files, given as a directory or as files in any order", async () => {
    const files = auditFiles(chainDir);
    expect(files.length).toBeGreaterThan(2);
    const byDir = await verifyAuditFiles([chainDir], { keys: signer.jwks });
    const byFiles = await verifyAuditFiles(files.slice().reverse(), { keys: signer.jwks });
    expect(byDir).toMatchObject({ ok: true, files: files.length });
    expect(byFiles).toMatchObject({ ok: true, files: files.length, records: byDir.records });
  });
});

describe("verifyAuditFiles: each tampering is found at its line", () => {
  const cases: Array<[string, () => string | string[], { line: number; seq: number | null; kind: AuditBreakKind }]> = [
    ["edit a field", () => singleLines.map((l, i) => (i === 14 ? l.replace('"allow"', '"deny"') : l)), { line: 15, seq: 14, kind: "changed" }],
    ["edit a field and recompute its hash", () => singleLines.map((l, i) => (i === 14 ? rehash({ ...parse(l), decision: "deny" }) : l)), { line: 15, seq: 14, kind: "changed" }],
    ["delete a line", () => singleLines.filter((_, i) => i !== 14), { line: 15, seq: 15, kind: "removed" }],
    ["delete several lines", () => singleLines.filter((_, i) => i < 14 || i > 16), { line: 15, seq: 17, kind: "removed" }],
    ["swap two lines", () => singleLines.map((l, i) => (i === 14 ? singleLines[15]! : i === 15 ? singleLines[14]! : l)), { line: 15, seq: 15, kind: "reordered" }],
    ["move a line back", () => [...singleLines.slice(0, 14), ...singleLines.slice(15, 18), singleLines[14]!, ...singleLines.slice(18)], { line: 15, seq: 15, kind: "reordered" }],
    ["insert a forged line (recomputed hash) before the record it imitates",
      () => [...singleLines.slice(0, 14), rehash({ ...parse(singleLines[14]!), decision: "deny" }), ...singleLines.slice(14)], { line: 15, seq: 14, kind: "inserted" }],
    ["insert a forged line linking to the last record",
      () => [...singleLines.slice(0, 15), rehash({ ...parse(singleLines[15]!), decision: "deny" }), ...singleLines.slice(15)], { line: 16, seq: 15, kind: "inserted" }],
    ["insert a forged line with a made-up link",
      () => [...singleLines.slice(0, 15), rehash({ ...parse(singleLines[15]!), prev: "f".repeat(64) }), ...singleLines.slice(15)], { line: 16, seq: 15, kind: "inserted" }],
    ["duplicate a line", () => [...singleLines.slice(0, 15), singleLines[14]!, ...singleLines.slice(15)], { line: 16, seq: 14, kind: "inserted" }],
    ["replace a line with garbage", () => singleLines.map((l, i) => (i === 14 ? "hello" : l)), { line: 15, seq: null, kind: "malformed" }],
    ["blank a line", () => singleLines.map((l, i) => (i === 14 ? "" : l)), { line: 15, seq: null, kind: "malformed" }],
    ["truncate mid-line at the end", () => singleLines.join("\n") + "\n" + singleLines[0]!.slice(0, 30), { line: 45, seq: null, kind: "truncated" }],
    ["truncate mid-line in the middle", () => {
      const cut = singleLines[29]!;
      return singleLines.slice(0, 29).map((l) => l + "\n").join("") + cut.slice(0, cut.indexOf('"seq":29') + 12);
    }, { line: 30, seq: 29, kind: "truncated" }],
    ["rewrite the chain from a record on (every later hash recomputed)", () => {
      const out = singleLines.slice(0, 14);
      let prev = parse(singleLines[13]!).hash;
      for (const line of singleLines.slice(14)) {
        const record = parse(line);
        const forged = rehash({ ...record, ...(record.i === 14 ? { decision: "deny" } : {}), prev, ...(record.type === "checkpoint" ? { head: prev } : {}) });
        out.push(forged);
        prev = parse(forged).hash;
      }
      return out;
    }, { line: 22, seq: 21, kind: "bad_checkpoint" }],
  ];

  test.each(cases)("%s", async (_name, tamper, expected) => {
    const { path, result } = await verifyTampered(tamper());
    expect(result.ok).toBe(false);
    expect(result.break).toMatchObject({ file: path, ...expected });
    expect(result.break!.message.length).toBeGreaterThan(0);
  });

  test("a checkpoint signed by another key is a bad_checkpoint", async () => {
    const stranger = await makeSigner("gw-test");
    const { result } = await verifyTampered(singleLines, { keys: stranger.jwks });
    expect(result.break).toMatchObject({ line: 11, seq: 10, kind: "bad_checkpoint" });
  });

  test("a checkpoint whose signed payload names another head is a bad_checkpoint, even without keys", async () => {
    const other = parse(singleLines[21]!);
    const moved = singleLines.map((l, i) => (i === 32 ? rehash({ ...parse(l), jws: other.jws }) : l));
    // Successor links are fixed up too, so only the checkpoint content is wrong.
    const fixed = moved.slice();
    fixed[33] = rehash({ ...parse(moved[33]!), prev: parse(moved[32]!).hash });
    for (let i = 34; i < fixed.length; i++) fixed[i] = rehash({ ...parse(fixed[i]!), prev: parse(fixed[i - 1]!).hash, ...(parse(fixed[i]!).type === "checkpoint" ? { head: parse(fixed[i - 1]!).hash } : {}) });
    const { result } = await verifyTampered(fixed, {});
    expect(result.break).toMatchObject({ line: 33, seq: 32, kind: "bad_checkpoint" });
    expect(result.signaturesChecked).toBe(false);
  });
});

// Regression: each of these forgeries, made without the signing key, passed `verify --keys`.
describe("verifyAuditFiles: forgeries without the key", () => {
  /** Re-chains `records` from `prev` on, recomputing every link and hash, as a forger can. */
  const rechain = (records: Array<Record<string, unknown>>, prev: string) => records.map((record) => {
    const line = rehash({ ...record, prev, ...(record.type === "checkpoint" ? { head: prev } : {}) });
    prev = parse(line).hash as string;
    return line;
  });
  const renumber = (records: Array<Record<string, unknown>>, from: number) => records.map((r, i) => ({ ...r, seq: from + i }));

  test("(a) every checkpoint dropped, a decision edited, the chain recomputed: `unsigned` from seq 0", async () => {
    const kept = singleLines.map(parse).filter((r) => r.type !== "checkpoint" && r.type !== "rotate");
    const forged = rechain(renumber(kept.map((r) => (r.i === 14 ? { ...r, decision: "deny" } : r)), 0), "0".repeat(64));
    const { result } = await verifyTampered(forged);
    expect(result.break).toMatchObject({ line: 1, seq: 0, kind: "unsigned" });
    expect(result.break!.message).toStartWith(`40 records (seq 0..39, `);
    expect(result.checkpoints).toBe(0);
  });

  test("(a) across files: a rotated log merged into one file without its checkpoints and rotate records", async () => {
    const kept = auditFiles(chainDir).flatMap(readLinesOf).map(parse).filter((r) => r.type !== "checkpoint" && r.type !== "rotate");
    const forged = rechain(renumber(kept.map((r) => (r.request_id === "r20" ? { ...r, decision: "deny" } : r)), 0), "0".repeat(64));
    const { result } = await verifyTampered(forged);
    expect(result.break).toMatchObject({ line: 1, kind: "unsigned" });
  });

  test("(b) kept up to the first checkpoint, the rest rewritten: `unsigned` from the first rewritten record", async () => {
    const head = singleLines.slice(0, 11); // seq 0..9 and the checkpoint seq 10
    const rest = singleLines.slice(11).map(parse).filter((r) => r.type !== "checkpoint").map((r) => ({ ...r, decision: "deny" }));
    const forged = [...head, ...rechain(renumber(rest, 11), parse(head[10]!).hash as string)];
    const { result } = await verifyTampered(forged);
    expect(result.break).toMatchObject({ line: 12, seq: 11, kind: "unsigned" });
    expect(result.checkpoints).toBe(1);
  });

  test("(b) with its checkpoints kept but re-chained: the first one's signature no longer matches", async () => {
    const head = singleLines.slice(0, 11);
    const rest = singleLines.slice(11).map(parse).map((r) => (r.type === "checkpoint" ? r : { ...r, decision: "deny" }));
    const forged = [...head, ...rechain(rest, parse(head[10]!).hash as string)];
    const { result } = await verifyTampered(forged);
    expect(result.break).toMatchObject({ line: 22, seq: 21, kind: "bad_checkpoint" });
  });

  test.each<[string, (line: string) => string]>([
    ["a duplicate member before the real one (parsers that keep the first see another sub)", (l) => l.replace("{", '{"sub":"someone-else",')],
    ["a duplicate member after it", (l) => l.replace(',"hash"', ',"sub":"alice","hash"')],
    ["whitespace between members", (l) => l.replace(",", ", ")],
    ["members reordered", (l) => { const r = parse(l); const { hash, ...body } = r; return JSON.stringify({ ...Object.fromEntries(Object.entries(body).reverse()), hash }); }],
    ["another escaping of the same string", (l) => l.replace('"alice"', '"\\u0061lice"')],
    ["a number written another way", (l) => l.replace(/"i":(\d+)/, '"i":$1.0')],
  ])("(c) %s: `changed`, though the parsed record hashes the same", async (_name, edit) => {
    const edited = edit(singleLines[14]!);
    expect(edited).not.toBe(singleLines[14]);
    const { hash: _h, ...original } = parse(singleLines[14]!);
    const { hash: _h2, ...reparsed } = parse(edited);
    if (!_name.startsWith("a duplicate member before")) expect(reparsed).toEqual(original);
    const { result } = await verifyTampered(singleLines.map((l, i) => (i === 14 ? edited : l)), {});
    expect(result.break).toMatchObject({ line: 15, seq: 14, kind: "changed" });
    expect(result.break!.message).toContain("canonical form");
  });

  test("a file after the first that does not start with a checkpoint (its checkpoint dropped, the chain re-linked): `bad_checkpoint`", async () => {
    const dir = join(root, "rotated-no-first-checkpoint");
    cpSync(chainDir, dir, { recursive: true });
    const files = auditFiles(dir);
    const lines = readLinesOf(files[1]!);
    expect(parse(lines[0]!).type).toBe("checkpoint");
    // The rotate record before it is the last line of the first file; the forger re-links the rest.
    const rotate = parse(readLinesOf(files[0]!).at(-1)!);
    const rest = rechain(renumber(lines.slice(1).map(parse), parse(lines[0]!).seq as number), rotate.hash as string);
    writeLinesTo(files[1]!, rest);
    const result = await verifyAuditFiles([dir]);
    expect(result.break).toMatchObject({ file: files[1]!, line: 1, kind: "bad_checkpoint" });
  });
});

describe("verifyAuditFiles: a tail cut after a checkpoint", () => {
  const lastCheckpointJws = () => String(parse(singleLines[43]!).jws);

  test("cut exactly after a checkpoint: the prefix is intact; only an anchor kept elsewhere shows the cut", async () => {
    const prefix = singleLines.slice(0, 33); // ends with the checkpoint seq 32
    const plain = await verifyTampered(prefix);
    expect(plain.result).toMatchObject({ ok: true, lastSeq: 32, recordsAfterLastCheckpoint: 0 });
    const anchored = await verifyTampered(prefix, { keys: signer.jwks, anchor: lastCheckpointJws() });
    expect(anchored.result.break).toMatchObject({ line: 33, seq: 32, kind: "truncated" });
  });

  test("cut after unsigned records: with keys an `unsigned` break at the first of them, unless the tail is allowed", async () => {
    const lines = singleLines.slice(0, 25); // checkpoint seq 21, then seq 22..24
    const bytes = lines.slice(22).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const { path, result } = await verifyTampered(lines);
    expect(result).toMatchObject({ ok: false, recordsAfterLastCheckpoint: 3, bytesAfterLastCheckpoint: bytes });
    expect(result.break).toMatchObject({ file: path, line: 23, seq: 22, kind: "unsigned" });
    expect(result.break!.message).toStartWith(`3 records (seq 22..24, ${bytes} bytes)`);
    const allowed = await verifyTampered(lines, { keys: signer.jwks, allowUnsignedTail: true });
    expect(allowed.result).toMatchObject({ ok: true, lastSeq: 24, recordsAfterLastCheckpoint: 3, bytesAfterLastCheckpoint: bytes });
    const unkeyed = await verifyTampered(lines, {});
    expect(unkeyed.result).toMatchObject({ ok: true, recordsAfterLastCheckpoint: 3 });
  });

  test("an anchor the chain reaches verifies", async () => {
    const { result } = await verifyTampered(singleLines, { keys: signer.jwks, anchor: lastCheckpointJws() });
    expect(result.ok).toBe(true);
  });

  test("an anchor needs keys and a valid signature", async () => {
    await expect(verifyAuditFiles([singleFile], { anchor: lastCheckpointJws() })).rejects.toMatchObject({ code: "AUDIT_BAD_ANCHOR" });
    const stranger = await makeSigner();
    await expect(verifyAuditFiles([singleFile], { keys: stranger.jwks, anchor: lastCheckpointJws() })).rejects.toMatchObject({ code: "AUDIT_BAD_ANCHOR" });
  });

  test("later files deleted: the rotate record names a missing file", async () => {
    const dir = join(root, "rotated-cut");
    cpSync(chainDir, dir, { recursive: true });
    const files = auditFiles(dir);
    rmSync(files.at(-1)!);
    const result = await verifyAuditFiles([dir], { keys: signer.jwks });
    const lastKept = files.at(-2)!;
    expect(result.break).toMatchObject({ file: lastKept, line: readLinesOf(lastKept).length, kind: "truncated" });
    expect(result.break!.message).toContain(basename(files.at(-1)!));
  });

  test("a middle file deleted is a removal", async () => {
    const dir = join(root, "rotated-hole");
    cpSync(chainDir, dir, { recursive: true });
    const files = auditFiles(dir);
    rmSync(files[1]!);
    const result = await verifyAuditFiles([dir], { keys: signer.jwks });
    expect(result.break).toMatchObject({ file: files[2]!, line: 1, kind: "removed" });
  });

  test("older files archived: only `partial` accepts a chain that starts later", async () => {
    const files = auditFiles(chainDir);
    const later = files.slice(1);
    expect((await verifyAuditFiles(later, { keys: signer.jwks })).break).toMatchObject({ file: files[1]!, line: 1, kind: "removed" });
    expect((await verifyAuditFiles(later, { keys: signer.jwks, partial: true })).ok).toBe(true);
  });
});

describe("verifyAuditFiles: input", () => {
  test("any file name is accepted for a single file", async () => {
    const path = join(root, "audit.jsonl");
    copyFileSync(singleFile, path);
    expect((await verifyAuditFiles([path])).ok).toBe(true);
  });

  test.each([
    ["a missing path", () => [join(root, "missing.jsonl")], "AUDIT_READ_FAILED"],
    ["an empty directory", () => { const d = join(root, "empty"); mkdirSync(d, { recursive: true }); return [d]; }, "AUDIT_NO_FILES"],
  ])("%s rejects with %s", async (_name, paths, code) => {
    await expect(verifyAuditFiles(paths())).rejects.toMatchObject({ code });
  });

  test("reads the files, not a cached copy", async () => {
    const { path } = await verifyTampered(singleLines);
    writeFileSync(path, readFileSync(path, "utf8").replace('"r3"', '"r9"'));
    expect((await verifyAuditFiles([path])).break).toMatchObject({ line: 4, kind: "changed" });
  });
});
