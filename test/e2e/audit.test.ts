// The audit log end to end: the chain a real gateway writes under concurrent load verifies with
// the gateway's public key; every response has its decision record; tampering with that real log
// is found at the right line; rotation keeps one chain; a full disk fails closed (or open, when
// configured); a gateway killed with SIGKILL mid-load leaves a log that verifies and holds the
// decision of every request a client saw forwarded.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { auditFileName, expandOutcomes, verifyAuditFiles, type AuditBreakKind } from "../../src/audit/mod.ts";
import { recordLine } from "../../src/audit/record.ts";
import { makeDirReadOnly, readWholeRecords } from "../support/audit-log.ts";
import { EXIT, memoryIo, runAuditVerify } from "../../src/cli/mod.ts";
import { main } from "../../src/cli/mod.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { createTestIssuer, SHIPPED_POLICIES, TEST_ISSUER, spawnGatewayProcess, startTestGateway, startTestUpstream, writeProcessConfig, type TestGateway } from "../support/harness.ts";

type AuditRecord = Record<string, unknown> & { type: string; seq: number };

function readRecords(auditDir: string): AuditRecord[] {
  return readWholeRecords(auditDir) as AuditRecord[];
}

function readJwks(stateDir: string): JSONWebKeySet {
  return JSON.parse(readFileSync(join(stateDir, "gateway-key", "public.jwks"), "utf8")) as JSONWebKeySet;
}

/** Runs `total` requests with at most `concurrency` in flight; returns what each got (or the error). */
async function runLoad<T>(total: number, concurrency: number, one: (i: number) => Promise<T>): Promise<Array<T | Error>> {
  const results: Array<T | Error> = new Array(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      try {
        results[i] = await one(i);
      } catch (e) {
        results[i] = e as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

interface Answer { requestId: string; status: number }

describe("the chain a gateway writes under concurrent load", () => {
  let t: TestGateway;
  let answers: Answer[];
  let records: AuditRecord[];
  let auditFile: string;
  const TOTAL = 2000;

  beforeAll(async () => {
    t = await startTestGateway({ configure: (c) => ({ ...c, audit: { ...c.audit, checkpointEvery: 100 } }) });
    const alice = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
    const carol = await t.issuer.token({ sub: "carol", roles: ["deployer"], mfa: true });
    // A mix: forwarded, denied by policy, denied by a forbid, unauthenticated, no route.
    const kinds: Array<(i: number) => Promise<Response>> = [
      () => t.fetch("/changes", { token: alice }),
      (i) => t.fetch(`/changes/${i}/submit`, { method: "POST", token: alice, body: "x" }),
      (i) => t.fetch(`/changes/${i}/approve`, { method: "POST", token: alice }),
      () => t.fetch("/changes"),
      (i) => t.fetch(`/changes/${i}/deploy`, { method: "POST", token: carol, headers: { "x-freeze": "1" } }),
      () => t.fetch("/nowhere", { token: alice }),
    ];
    const results = await runLoad(TOTAL, 16, async (i) => {
      const res = await kinds[i % kinds.length]!(i);
      await res.arrayBuffer();
      return { requestId: res.headers.get("x-request-id") ?? "", status: res.status };
    });
    answers = results.map((r) => {
      if (r instanceof Error) throw r;
      return r;
    });
    // Stopping flushes the outcome records and closes the log with a final checkpoint.
    await t.stop({ keepDir: true });
    records = readRecords(t.config.audit.dir);
    auditFile = join(t.config.audit.dir, auditFileName(0));
  }, 120_000);

  afterAll(() => {
    if (t) rmSync(t.dir, { recursive: true, force: true });
  });

  test("every request was answered as its kind predicts", () => {
    const expected = [200, 200, 403, 401, 403, 404];
    expect(answers.length).toBe(TOTAL);
    const wrong = answers.flatMap((a, i) => (a.status === expected[i % expected.length] ? [] : [{ i, status: a.status }]));
    expect(wrong).toEqual([]);
  });

  test("the chain verifies with the gateway's public JWKS, checkpoints included", async () => {
    const jwks = readJwks(t.config.stateDir);
    const result = await verifyAuditFiles([t.config.audit.dir], { keys: jwks });
    expect(result.break).toBeNull();
    expect(result.ok).toBe(true);
    expect(result.signaturesChecked).toBe(true);
    expect(result.checkpoints).toBeGreaterThanOrEqual(Math.floor(records.length / 101));
    expect(result.recordsAfterLastCheckpoint).toBe(0);
    expect(result.records).toBe(records.length);
    const io = memoryIo();
    expect(await runAuditVerify({ files: [t.config.audit.dir], keysFile: join(t.config.stateDir, "gateway-key", "public.jwks") }, io)).toBe(EXIT.ok);
    expect(io.stdout[0]).toMatch(/^ok: \d+ records, \d+ checkpoints, 1 file$/);
  });

  test("a checkpoint signed by another key does not verify against the gateway's JWKS", async () => {
    const other = await createTestIssuer(mkdtempSync(join(tmpdir(), "dutygate-otherkey-")));
    const jwks = JSON.parse(readFileSync(other.jwksFile, "utf8")) as JSONWebKeySet;
    const result = await verifyAuditFiles([t.config.audit.dir], { keys: jwks });
    expect(result.break?.kind).toBe("bad_checkpoint");
  });

  test("every response's request id has one decision record; every forwarded one an outcome with its status", () => {
    const decisions = new Map<string, AuditRecord[]>();
    const outcomes = new Map<string, AuditRecord>();
    for (const r of records.flatMap(expandOutcomes) as AuditRecord[]) {
      if (r.type === "decision") decisions.set(r.request_id as string, [...(decisions.get(r.request_id as string) ?? []), r]);
      if (r.type === "outcome") outcomes.set(r.request_id as string, r);
    }
    for (const a of answers) {
      expect(a.requestId).not.toBe("");
      const d = decisions.get(a.requestId);
      expect(d?.length).toBe(1);
      expect(d![0]!.decision).toBe(a.status === 200 ? "allow" : "deny");
      if (a.status === 200) {
        const o = outcomes.get(a.requestId);
        expect(o?.status).toBe(200);
        expect(o!.decision_seq).toBe(d![0]!.seq);
        expect(o!.seq).toBeGreaterThan(d![0]!.seq);
      } else {
        expect(outcomes.has(a.requestId)).toBe(false);
      }
    }
    expect(decisions.size).toBe(TOTAL);
  });

  describe("tampering with the real log is found at the right line", () => {
    let lines: string[];
    let work: string;
    beforeAll(() => {
      lines = readFileSync(auditFile, "utf8").split("\n").filter((l) => l !== "");
      work = mkdtempSync(join(tmpdir(), "dutygate-tamper-"));
    });
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    const parse = (l: string) => JSON.parse(l) as Record<string, unknown>;
    const rehash = (r: Record<string, unknown>) => {
      const { hash: _h, ...body } = r;
      return recordLine(body).line.trimEnd();
    };
    /** Index (0-based) of the first decision record at or after `from` that is not a checkpoint's neighbour. */
    const decisionAt = (from: number) => {
      for (let i = from; i < lines.length - 2; i++) if (parse(lines[i]!).type === "decision" && parse(lines[i + 1]!).type === "decision") return i;
      throw new Error("no decision record found");
    };
    async function verifyLines(name: string, tampered: string[], options: { anchor?: string } = {}) {
      const file = join(work, `${name}.jsonl`);
      writeFileSync(file, tampered.join("\n") + "\n");
      return verifyAuditFiles([file], { keys: readJwks(t.config.stateDir), ...options });
    }

    const cases: Array<[string, (i: number) => string[], (i: number) => { line: number; kind: AuditBreakKind }]> = [
      ["edit a field", (i) => lines.map((l, j) => (j === i ? l.replace('"path":"/', '"path":"/x') : l)), (i) => ({ line: i + 1, kind: "changed" })],
      ["edit a field and recompute its hash", (i) => lines.map((l, j) => (j === i ? rehash({ ...parse(l), sub: "mallory" }) : l)), (i) => ({ line: i + 1, kind: "changed" })],
      ["delete a line", (i) => lines.filter((_, j) => j !== i), (i) => ({ line: i + 1, kind: "removed" })],
      ["swap two lines", (i) => lines.map((l, j) => (j === i ? lines[i + 1]! : j === i + 1 ? lines[i]! : l)), (i) => ({ line: i + 1, kind: "reordered" })],
      ["insert a forged line", (i) => [...lines.slice(0, i + 1), rehash({ ...parse(lines[i + 1]!), sub: "mallory" }), ...lines.slice(i + 1)], (i) => ({ line: i + 2, kind: "inserted" })],
    ];
    for (const [name, tamper, expected] of cases) {
      test(name, async () => {
        const i = decisionAt(Math.floor(lines.length / 2));
        const tampered = tamper(i);
        // (compared as a boolean: a failure must not print a 2 MB log)
        expect(tampered.join("\n") === lines.join("\n")).toBe(false);
        const result = await verifyLines(name.replace(/\W+/g, "-"), tampered);
        expect(result.ok).toBe(false);
        expect(result.break).toMatchObject(expected(i));
      });
    }

    test("truncate after a checkpoint: the prefix verifies alone; the last checkpoint kept elsewhere shows the cut", async () => {
      const checkpoints = lines.flatMap((l, i) => (parse(l).type === "checkpoint" ? [i] : []));
      expect(checkpoints.length).toBeGreaterThan(3);
      const cut = checkpoints[Math.floor(checkpoints.length / 2)]!;
      const prefix = lines.slice(0, cut + 1);
      const plain = await verifyLines("cut", prefix);
      expect(plain).toMatchObject({ ok: true, recordsAfterLastCheckpoint: 0 });
      const anchor = String(parse(lines[checkpoints.at(-1)!]!).jws);
      const anchored = await verifyLines("cut-anchored", prefix, { anchor });
      expect(anchored.break).toMatchObject({ line: cut + 1, kind: "truncated" });
    });

    // Regression: forged without the key, each of these passed `gateway audit verify --keys` (exit 0).
    describe("forgeries without the key: `gateway audit verify --keys` exits 4", () => {
      const rechain = (records: Array<Record<string, unknown>>, from: number, prev: string) => {
        // A careful forger renumbers what names a seq too: each outcome's `decision_seq`.
        const renumbered = new Map(records.map((r, i) => [r.seq as number, from + i]));
        const renumber = (o: Record<string, unknown>) => ({ ...o, decision_seq: renumbered.get(o.decision_seq as number) ?? o.decision_seq });
        return records.map((record, i) => {
          const outcomes = Array.isArray(record.outcomes) ? { outcomes: (record.outcomes as Array<Record<string, unknown>>).map(renumber) } : {};
          const line = rehash({ ...record, ...outcomes, seq: from + i, prev, ...(record.type === "checkpoint" ? { head: prev } : {}) });
          prev = parse(line).hash as string;
          return line;
        });
      };
      async function verifyCli(name: string, tampered: string[]) {
        const file = join(work, `${name}.jsonl`);
        writeFileSync(file, tampered.join("\n") + "\n");
        const io = memoryIo();
        const code = await main(["audit", "verify", file, "--keys", join(t.config.stateDir, "gateway-key", "public.jwks")], io);
        return { code, out: io.stdout.join("\n") };
      }
      const edit = (r: Record<string, unknown>) => (r.type === "decision" && r.decision === "deny" ? { ...r, decision: "allow", code: "ALLOW" } : r);

      test("(a) every checkpoint and rotate record dropped, decisions edited, the chain recomputed", async () => {
        const kept = lines.map(parse).filter((r) => r.type !== "checkpoint" && r.type !== "rotate").map(edit);
        const { code, out } = await verifyCli("forged-a", rechain(kept, 0, "0".repeat(64)));
        expect(code).toBe(EXIT.verificationFailed);
        expect(out).toMatch(/:1: unsigned: \d+ records \(seq 0\.\.\d+, \d+ bytes\) covered by no checkpoint signature/);
      });

      test("(b) kept up to the first checkpoint, the rest rewritten", async () => {
        const first = lines.findIndex((l) => parse(l).type === "checkpoint");
        const rest = lines.slice(first + 1).map(parse).filter((r) => r.type !== "checkpoint").map(edit);
        const { code, out } = await verifyCli("forged-b", [...lines.slice(0, first + 1), ...rechain(rest, first + 1, parse(lines[first]!).hash as string)]);
        expect(code).toBe(EXIT.verificationFailed);
        expect(out).toContain(`:${first + 2}: unsigned: `);
      });

      test("(c) a duplicate member inserted right after `{`", async () => {
        const i = decisionAt(Math.floor(lines.length / 2));
        const { code, out } = await verifyCli("forged-c", lines.map((l, j) => (j === i ? l.replace("{", '{"sub":"someone-else",') : l)));
        expect(code).toBe(EXIT.verificationFailed);
        expect(out).toContain(`:${i + 1}: changed: record seq ${parse(lines[i]!).seq} is not written in canonical form`);
      });
    });

    test("the untouched copy verifies (the harness itself is sound)", async () => {
      expect((await verifyLines("copy", lines)).ok).toBe(true);
    });
  });
});

describe("verifying the log of a running gateway", () => {
  test("its unsigned tail is a break with --keys, and accepted, with its size, with --allow-unsigned-tail", async () => {
    const t = await startTestGateway({ configure: (c) => ({ ...c, audit: { ...c.audit, checkpointEvery: 10, checkpointIntervalMs: 3_600_000 } }) });
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      for (let i = 0; i < 12; i++) await (await t.fetch(`/changes/${i}/submit`, { method: "POST", token })).arrayBuffer();
      // Writes the outcomes still queued (after a checkpoint); then a denied request, whose one
      // record is written before its answer: nothing is left in flight while the file is read.
      await t.gw.audit!.checkpoint();
      expect((await t.fetch("/changes/99/approve", { method: "POST", token }).then(async (r) => { await r.arrayBuffer(); return r.status; }))).toBe(403);
      const keys = join(t.config.stateDir, "gateway-key", "public.jwks");
      const strict = memoryIo();
      expect(await main(["audit", "verify", t.config.audit.dir, "--keys", keys], strict)).toBe(EXIT.verificationFailed);
      expect(strict.stdout.join("\n")).toMatch(/: unsigned: \d+ records? \(seq \d+\.\.\d+, \d+ bytes\) covered by no checkpoint signature/);
      const live = memoryIo();
      expect(await main(["audit", "verify", t.config.audit.dir, "--keys", keys, "--allow-unsigned-tail"], live)).toBe(EXIT.ok);
      expect(live.stdout[0]).toMatch(/^ok: \d+ records, \d+ checkpoints, 1 file$/);
      expect(live.stdout[1]).toMatch(/^note: unsigned tail: \d+ records? \(seq \d+\.\.\d+, \d+ bytes\) after the last checkpoint (is|are) not covered by a signature$/);
      // A graceful stop signs the tail: the strict form passes.
      await t.stop({ keepDir: true });
      expect(await main(["audit", "verify", t.config.audit.dir, "--keys", keys], memoryIo())).toBe(EXIT.ok);
    } finally {
      await t.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe("a token holding a lone surrogate", () => {
  // Regression: the gateway answered 401 and wrote no record, because the log refused the
  // unverified `iss` or `alg` it quoted in the record's `detail`.
  test("gets its 401 and a decision record; the chain verifies", async () => {
    const t = await startTestGateway();
    try {
      const part = (value: string) => Buffer.from(value).toString("base64url");
      const now = Math.floor(Date.now() / 1000);
      const claims = (iss: string) => `{"iss":${iss},"aud":"dutygate","sub":"alice","iat":${now},"exp":${now + 300}}`;
      // JSON text with the escape: the token's own bytes are ASCII, its decoded value is not well-formed.
      const tokens = {
        "lone surrogate in iss": `${part('{"alg":"ES256"}')}.${part(claims('"https://idp\\ud800.invalid"'))}.c2ln`,
        "lone surrogate in alg": `${part('{"alg":"ES\\udc00256"}')}.${part(claims(JSON.stringify(TEST_ISSUER)))}.c2ln`,
        "a pair split where the message cuts the value": `${part('{"alg":"ES256"}')}.${part(claims(JSON.stringify(`${"i".repeat(79)}😀`)))}.c2ln`,
      };
      const ids = new Map<string, string>();
      for (const [name, token] of Object.entries(tokens)) {
        const res = await t.fetch("/changes/1/submit", { method: "POST", token });
        await res.arrayBuffer();
        expect({ name, status: res.status }).toEqual({ name, status: 401 });
        ids.set(name, res.headers.get("x-request-id")!);
      }
      expect(t.upstream.received.length).toBe(0);
      await t.stop({ keepDir: true });
      const records = readRecords(t.config.audit.dir);
      for (const [name, id] of ids) {
        const mine = records.filter((r) => r.request_id === id);
        expect({ name, records: mine.map((r) => [r.type, r.decision, String(r.code).startsWith("AUTHN_")]) }).toEqual({ name, records: [["decision", "deny", true]] });
        expect(String(mine[0]!.detail)).toContain("\ufffd");
      }
      const result = await verifyAuditFiles([t.config.audit.dir], { keys: readJwks(t.config.stateDir) });
      expect(result.break).toBeNull();
    } finally {
      await t.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe("the audit file deleted while serving", () => {
  // Regression: records went on into the unlinked inode (20 forwarded requests, 0 records on disk).
  test("the chain moves to a new file that says what was lost; every later request is on disk; with no file to write, requests are refused", async () => {
    const t = await startTestGateway({ log: createLogger("error", () => {}), configure: (c) => ({ ...c, audit: { ...c.audit, onFailure: "deny" } }) });
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const submit = async (i: number) => {
        const res = await t.fetch(`/changes/${i}/submit`, { method: "POST", token, body: "x" });
        await res.arrayBuffer();
        return { requestId: res.headers.get("x-request-id")!, status: res.status };
      };
      for (let i = 0; i < 5; i++) expect((await submit(i)).status).toBe(200);
      const dir = t.config.audit.dir;
      const [first] = readdirSync(dir).filter((n) => n.endsWith(".jsonl"));
      rmSync(join(dir, first!));
      const after: Answer[] = [];
      for (let i = 5; i < 25; i++) after.push(await submit(i));
      expect(after.map((a) => a.status)).toEqual(Array(20).fill(200));
      // On disk now, while serving: every decision of the 20 requests.
      const onDisk = readRecords(dir);
      const decided = new Set(onDisk.filter((r) => r.type === "decision").map((r) => r.request_id));
      expect(after.filter((a) => !decided.has(a.requestId))).toEqual([]);
      expect(onDisk.slice(0, 2)).toMatchObject([{ type: "checkpoint" }, { type: "recovery", reason: "file_deleted", file: first, first_seq: 0 }]);

      // Deleted again, and the directory refuses a new file: on_failure = "deny" refuses.
      const current = readdirSync(dir).filter((n) => n.endsWith(".jsonl"));
      rmSync(join(dir, current[0]!));
      const forwarded = t.upstream.received.length;
      const restore = makeDirReadOnly(dir);
      try {
        const refused = await t.fetch("/changes/99/submit", { method: "POST", token, body: "x" });
        expect(refused.status).toBe(503);
        expect(((await refused.json()) as { code: string }).code).toBe("AUDIT_UNAVAILABLE");
        expect(t.upstream.received.length).toBe(forwarded);
      } finally {
        restore();
      }
      expect((await submit(100)).status).toBe(200);
      await t.stop({ keepDir: true });
      const result = await verifyAuditFiles([dir], { keys: readJwks(t.config.stateDir), partial: true });
      expect(result.break).toBeNull();
      expect(readRecords(dir).filter((r) => r.type === "recovery").length).toBeGreaterThanOrEqual(1);
    } finally {
      await t.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe("rotation by size through the gateway", () => {
  test("many files, one chain: each later file starts with a checkpoint and the whole verifies", async () => {
    const t = await startTestGateway({ configure: (c) => ({ ...c, audit: { ...c.audit, rotateBytes: 16 * 1024, checkpointEvery: 50 } }) });
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const results = await runLoad(300, 8, async (i) => (await t.fetch(`/changes/${i}/submit`, { method: "POST", token })).status);
      expect(results.every((s) => s === 200)).toBe(true);
      await t.stop({ keepDir: true });
      const files = readdirSync(t.config.audit.dir).filter((n) => n.endsWith(".jsonl")).sort();
      expect(files.length).toBeGreaterThan(3);
      for (const name of files.slice(1)) {
        const first = JSON.parse(readFileSync(join(t.config.audit.dir, name), "utf8").split("\n")[0]!) as AuditRecord;
        expect(first.type).toBe("checkpoint");
      }
      const result = await verifyAuditFiles([t.config.audit.dir], { keys: readJwks(t.config.stateDir) });
      expect(result.break).toBeNull();
      expect(result).toMatchObject({ ok: true, files: files.length, firstSeq: 0 });
      expect(readRecords(t.config.audit.dir).filter((r) => r.type === "decision").length).toBe(300);
    } finally {
      await t.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a full disk", () => {
  /** An audit directory whose first file is /dev/full: every write fails with ENOSPC. */
  const fullDisk = (dir: string) => {
    const auditDir = join(dir, "audit-full");
    mkdirSync(auditDir, { recursive: true });
    symlinkSync("/dev/full", join(auditDir, auditFileName(0)));
    return auditDir;
  };

  test("on_failure = deny: 503 AUDIT_UNAVAILABLE, never forwarded, /-/readyz turns 503", async () => {
    const t = await startTestGateway({ admin: true, log: createLogger("error", () => {}), configure: (c, { dir }) => ({ ...c, audit: { ...c.audit, dir: fullDisk(dir), onFailure: "deny" } }) });
    try {
      const probe = await t.adminPki!.client("probe");
      expect((await t.adminFetch("/-/readyz", { cert: probe })).status).toBe(200);
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      for (const path of ["/changes/1/submit", "/changes/2/submit"]) {
        const res = await t.fetch(path, { method: "POST", token });
        expect(res.status).toBe(503);
        expect(((await res.json()) as { code: string }).code).toBe("AUDIT_UNAVAILABLE");
      }
      expect(t.upstream.received.length).toBe(0);
      const ready = await t.adminFetch("/-/readyz", { cert: probe });
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, audit_writable: false, policy: true });
      expect((await t.adminFetch("/-/healthz", { cert: probe })).status).toBe(200);
      expect(t.gw.metrics.auditFailures.get()).toBeGreaterThanOrEqual(2);
      // The ledger reservation of a refused request is released: the same person may act once the log works.
      expect(await t.gw.ledger.size()).toBe(0);
    } finally {
      await t.stop();
    }
  });

  test("on_failure = allow: requests pass and every failure is logged", async () => {
    const logged: Array<Record<string, unknown>> = [];
    const t = await startTestGateway({
      log: createLogger("error", (line) => void logged.push(JSON.parse(line) as Record<string, unknown>)),
      configure: (c, { dir }) => ({ ...c, audit: { ...c.audit, dir: fullDisk(dir), onFailure: "allow" } }),
    });
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const res = await t.fetch("/changes/1/submit", { method: "POST", token });
      expect(res.status).toBe(200);
      expect(t.upstream.received.length).toBe(1);
      const requestId = res.headers.get("x-request-id");
      expect(logged.some((l) => l.msg === "audit record could not be written" && l.request_id === requestId && l.on_failure === "allow")).toBe(true);
    } finally {
      await t.stop();
    }
  });
});

describe("crash safety: SIGKILL mid-load", () => {
  test("the log written so far verifies (a torn last line at most) and holds every forwarded request's decision", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-crash-"));
    const upstream = startTestUpstream();
    let proc: Awaited<ReturnType<typeof spawnGatewayProcess>> | null = null;
    try {
      const issuer = await createTestIssuer(dir);
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies"), auditToml: 'fsync = "batch"\ncheckpoint_every = 50' });
      proc = await spawnGatewayProcess(config, { cwd: dir });
      const url = proc.url;
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      let answered = 0;
      let killed = false;
      const p = proc;
      // Bounded: at most 5000 requests; the kill comes after 400 answers, from inside the load.
      const results = await runLoad(5000, 16, async (i) => {
        if (killed) throw new Error("gateway gone");
        const res = await fetch(`${url}/changes/${i}/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
        await res.arrayBuffer();
        if (++answered === 400) {
          process.kill(p.pid, "SIGKILL");
          killed = true;
        }
        return { requestId: res.headers.get("x-request-id") ?? "", status: res.status };
      });
      expect(await proc.exited).not.toBe(0);
      const forwarded = results.filter((r): r is Answer => !(r instanceof Error) && r.status === 200);
      expect(forwarded.length).toBeGreaterThanOrEqual(400);

      const auditDir = join(dir, "audit");
      const jwks = readJwks(join(dir, ".state"));
      // A killed gateway leaves the records after its last checkpoint unsigned, like a live one.
      const unsigned = await verifyAuditFiles([auditDir], { keys: jwks });
      if (unsigned.break?.kind !== "truncated") expect(unsigned.break?.kind ?? null).toBe(unsigned.recordsAfterLastCheckpoint > 0 ? "unsigned" : null);
      const result = await verifyAuditFiles([auditDir], { keys: jwks, allowUnsignedTail: true });
      // Acceptable: intact, or cut inside its very last line (a write torn by the kill). Anything else is a bug.
      if (!result.ok) {
        const lastFile = result.paths.at(-1)!;
        expect(result.break).toMatchObject({ kind: "truncated", file: lastFile, line: readFileSync(lastFile, "utf8").split("\n").length });
      }
      const decided = new Set(readRecords(auditDir).filter((r) => r.type === "decision").map((r) => r.request_id));
      const missing = forwarded.filter((a) => !decided.has(a.requestId));
      expect(missing).toEqual([]);

      // A restart repairs a torn tail and continues the same chain; a graceful stop then leaves it intact.
      proc = await spawnGatewayProcess(config, { cwd: dir });
      const after = await fetch(`${proc.url}/changes/9999/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
      expect(after.status).toBe(200);
      proc.signal("SIGTERM");
      expect(await proc.exited).toBe(0);
      const resumed = await verifyAuditFiles([auditDir], { keys: jwks });
      expect(resumed.break).toBeNull();
      expect(resumed.recordsAfterLastCheckpoint).toBe(0);
    } finally {
      await proc?.kill();
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
