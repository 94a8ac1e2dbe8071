// `gateway check --replay`: real traffic recorded by a real gateway, replayed under candidate
// policies. The unchanged policy flips nothing; a deliberate change flips exactly what it should.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "../../src/cli/check.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { replayStep, type ReplayReport } from "../../src/cli/replay.ts";
import { main } from "../../src/cli/mod.ts";
import { SHIPPED_POLICIES, startTestGateway, type TestGateway } from "../support/harness.ts";
import { readWholeRecords } from "../support/audit-log.ts";

let t: TestGateway;
let auditDir: string;
let work: string;
const tokens: Record<string, string> = {};

interface Sent { who: string; method: string; path: string; headers?: Record<string, string>; status: number }
const sent: Sent[] = [];

async function send(who: string | null, method: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await t.fetch(path, { method, token: who ? tokens[who] : undefined, headers });
  await res.arrayBuffer();
  sent.push({ who: who ?? "(anonymous)", method, path, headers, status: res.status });
  return res.status;
}

/** A candidate policy directory: the shipped `.duty` files (no tests) with `edit` applied to changes.duty (or `fileName`). */
function candidate(name: string, edit?: (changes: string) => string, fileName = "changes.duty"): string {
  const dir = join(work, name);
  cpSync(SHIPPED_POLICIES, dir, { recursive: true, filter: (src) => !src.endsWith(".test.toml") });
  const file = join(dir, fileName);
  const before = readFileSync(file, "utf8");
  const after = edit ? edit(before) : before;
  if (edit) expect(after).not.toBe(before);
  writeFileSync(file, after);
  return dir;
}

async function replay(dir: string, options: { allowFlips?: boolean; format?: "text" | "json" | "github" } = {}) {
  const io = memoryIo();
  const code = await runCheck({ dir, format: options.format ?? "json", extraSteps: [replayStep({ paths: [auditDir], allowFlips: options.allowFlips ?? false, maxExamples: 2 })] }, io);
  return { code, io, report: options.format === undefined || options.format === "json" ? ((JSON.parse(io.stdout.join("\n")) as { replay: ReplayReport }).replay) : null };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "dutygate-replay-"));
  t = await startTestGateway();
  auditDir = t.config.audit.dir;
  const people = {
    alice: { roles: ["developer"], mfa: true, team: "core" },
    bob: { roles: ["reviewer"], mfa: false, team: "core" },
    carol: { roles: ["deployer"], mfa: true, team: "ops" },
    rita: { roles: ["developer", "reviewer"], mfa: true, team: "core" },
  };
  for (const [sub, claims] of Object.entries(people)) tokens[sub] = await t.issuer.token({ sub, ...claims });

  for (let change = 1; change <= 5; change++) expect(await send("alice", "POST", `/changes/${change}/submit`)).toBe(200);
  for (let change = 1; change <= 5; change++) expect(await send("bob", "POST", `/changes/${change}/approve`)).toBe(200);
  expect(await send("alice", "POST", "/changes/1/approve")).toBe(403); // DENY_NO_GRANT (and she submitted it)
  expect(await send("alice", "POST", "/changes/9/approve")).toBe(403); // DENY_NO_GRANT
  expect(await send("bob", "POST", "/changes/6/submit")).toBe(403); // DENY_NO_GRANT
  for (let change = 1; change <= 3; change++) expect(await send("carol", "POST", `/changes/${change}/deploy`)).toBe(200);
  expect(await send("carol", "POST", "/changes/4/deploy", { "x-freeze": "1" })).toBe(403); // DENY_FORBID
  expect(await send("rita", "POST", "/changes/8/submit")).toBe(200);
  expect(await send("rita", "POST", "/changes/8/approve")).toBe(403); // DENY_SOD_HISTORY, from the live ledger
  expect(await send("alice", "GET", "/changes", { "x-freeze": "1" })).toBe(200);
  expect(await send(null, "GET", "/changes")).toBe(401); // denied before a decision
  // The outcome records follow the responses asynchronously; stopping flushes and closes the log.
  await t.stop({ keepDir: true });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  if (t) rmSync(t.dir, { recursive: true, force: true });
});

describe("the recorded log", () => {
  test("decision records carry the typed principal, the request time and the headers the policy reads, never the token", () => {
    const text = readdirSync(auditDir).filter((n) => n.endsWith(".jsonl")).map((n) => readFileSync(join(auditDir, n), "utf8")).join("");
    const decisions = readWholeRecords(auditDir).filter((r) => r.type === "decision" && r.sub !== undefined && r.sub !== null);
    expect(decisions.length).toBe(sent.length - 1);
    const frozen = decisions.find((r) => r.path === "/changes/4/deploy")!;
    expect(frozen.principal).toEqual({ sub: "carol", roles: ["deployer"], mfa: true, team: "ops" });
    expect(frozen.policy_headers).toEqual({ "x-freeze": "1" });
    expect(Date.parse(frozen.request_time as string)).toBeLessThanOrEqual(Date.parse(frozen.time as string));
    expect(decisions.find((r) => r.path === "/changes/1/submit")!.policy_headers).toEqual({ "x-freeze": null });
    for (const token of Object.values(tokens)) expect(text).not.toContain(token);
  });
});

describe("gateway check --replay", () => {
  test("the unchanged policy: zero flips, exit 0, the pre-decision denial counted apart (no policy decided it)", async () => {
    const { code, report } = await replay(candidate("unchanged"));
    expect(code).toBe(EXIT.ok);
    expect(report!.flips.total).toBe(0);
    expect(report!.decisions).toBe(sent.length);
    expect(report!.replayed).toBe(sent.length - 1);
    expect(report!.skipped).toEqual({});
    expect(report!.refusedBeforePolicy).toBe(1);
    expect(report!.unrecordedInputs).toEqual({});
  });

  test("the same rules on other lines (new rule ids): still zero flips; the history denial replays from the rebuilt ledger", async () => {
    // Without the ledger, rita's approval of the change she submitted would flip to allow.
    const { code, report } = await replay(candidate("moved", (s) => "# moved down\n\n\n" + s));
    expect(code).toBe(EXIT.ok);
    expect(report!.flips.total).toBe(0);
    expect(report!.codeChanges).toBe(0);
  });

  test("a removed grant, an added forbid and an added grant: exactly the expected flips, exit 3", async () => {
    const dir = candidate("changed", (s) =>
      s.replace(/^grant reviewer +approve_change\n/m, "grant developer approve_change\n")
        + '\nforbid list_changes when request.header["x-freeze"] == "1"\n');
    const { code, report } = await replay(dir);
    expect(code).toBe(EXIT.decisionFlips);
    const groups = report!.flips.groups.map((g) => [g.direction, g.duty, g.roles, g.count]);
    expect(groups).toEqual([
      ["allow→deny", "approve_change", "reviewer", 5],
      ["allow→deny", "list_changes", "developer", 1],
      ["deny→allow", "approve_change", "developer", 1],
    ]);
    expect(report!.flips).toMatchObject({ total: 7, allowToDeny: 6, denyToAllow: 1 });
    // bob's approvals: examples capped at 2, with request ids from the log and old → new codes.
    const bob = report!.flips.groups[0]!;
    expect(bob.examples.length).toBe(2);
    expect(bob.examples[0]).toMatchObject({ sub: "bob", request: "POST /changes/1/approve", from: "ALLOW", to: "DENY_NO_GRANT" });
    expect(bob.examples[0]!.requestId).toMatch(/\S{8,}/);
    expect(report!.flips.groups[1]!.examples[0]).toMatchObject({ sub: "alice", request: "GET /changes", from: "ALLOW", to: "DENY_FORBID" });
    expect(report!.flips.groups[2]!.examples).toEqual([expect.objectContaining({ sub: "alice", request: "POST /changes/9/approve", from: "DENY_NO_GRANT", to: "ALLOW" })]);
    // alice approving her own change 1: no grant before, history separation now — no flip.
    expect(report!.codeChanges).toBe(1);
  });

  test("--allow-flips reports the flips and exits 0; text and github formats name them", async () => {
    const dir = candidate("no-reviewers", (s) => s.replace(/^grant reviewer +approve_change\n/m, ""));
    const allowed = await replay(dir, { allowFlips: true });
    expect(allowed.code).toBe(EXIT.ok);
    expect(allowed.report!.flips.total).toBe(5);
    const text = await replay(dir, { format: "text" });
    expect(text.code).toBe(EXIT.decisionFlips);
    expect(text.io.stdout.join("\n")).toContain("replay: 5 decision flips (allow→deny 5, deny→allow 0)");
    expect(text.io.stdout.join("\n")).toMatch(/allow→deny\s+approve_change\s+reviewer\s+5/);
    const github = await replay(dir, { format: "github" });
    // No rule decides a denial for want of a grant: the annotation points at the duty's declaration.
    expect(github.io.stdout.filter((l) => l.startsWith(`::error file=${dir}/changes.duty,line=5,col=1,title=decision flip::allow→deny approve_change (reviewer): 5 requests`))).toHaveLength(1);
  });

  test("a candidate that reads a header the log did not record: noted, replayed as absent", async () => {
    const dir = candidate("new-header", (s) => s + '\nforbid read_change when request.header["x-legacy"] == "1"\n');
    const { code, report } = await replay(dir);
    expect(code).toBe(EXIT.ok);
    expect(report!.unrecordedInputs["header `x-legacy`"]).toBe(sent.length - 1);
  });

  test("through the command line: `gateway check DIR --replay AUDIT` exits 3, usage errors 64", async () => {
    const dir = candidate("cli", (s) => s.replace(/^grant reviewer +approve_change\n/m, ""));
    const io = memoryIo();
    expect(await main(["check", dir, "--replay", auditDir], io)).toBe(EXIT.decisionFlips);
    expect(io.stdout.join("\n")).toContain("5 decision flips");
    expect(await main(["check", dir, "--replay", auditDir, "--allow-flips"], memoryIo())).toBe(EXIT.ok);
    expect(await main(["check", dir, "--allow-flips"], memoryIo())).toBe(EXIT.usage);
    const missing = memoryIo();
    expect(await main(["check", dir, "--replay", join(work, "no-such-log")], missing)).toBe(EXIT.usage);
    expect(missing.stdout.join("\n")).toContain("AUDIT_READ_FAILED");
  });

  test("records without the full principal (older gateways) are skipped and counted by the missing attribute; skipping them fails unless allowed", async () => {
    const file = join(work, "old-format.jsonl");
    writeFileSync(file, [
      { type: "decision", seq: 0, time: "2026-01-01T00:00:00.000Z", request_id: "r1", channel: "operational", method: "POST", path: "/changes/1/submit", sub: "alice", roles: ["developer"], decision: "allow", code: "ALLOW" },
      { type: "checkpoint", seq: 1 },
      "{\"type\":\"decision\",\"seq\":2,", // a torn last line
    ].map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n"));
    const io = memoryIo();
    const dir = candidate("old");
    expect(await runCheck({ dir, format: "json", extraSteps: [replayStep({ paths: [file], allowFlips: false })] }, memoryIo())).toBe(EXIT.usage);
    const code = await runCheck({ dir, format: "json", extraSteps: [replayStep({ paths: [file], allowFlips: false, maxSkipped: 1 })] }, io);
    expect(code).toBe(EXIT.ok);
    const report = (JSON.parse(io.stdout.join("\n")) as { replay: ReplayReport }).replay;
    expect(report.skipped).toEqual({ "principal attribute `mfa` not recorded": 1 });
    expect(report.unreadableLines).toBe(1);
  });
});

describe("regression: a replay that judged nothing passed", () => {
  /** `gateway check DIR --replay …` through the command line, in process. */
  async function check(dir: string, ...flags: string[]) {
    const io = memoryIo();
    const code = await main(["check", dir, "--replay", auditDir, ...flags], io);
    return { code, out: io.stdout.join("\n"), err: io.stderr.join("\n") };
  }

  test("a candidate that adds a principal attribute skips every record: exit 64, saying why and how many", async () => {
    const dir = candidate("new-attribute", (s) => s.replace("  team: string\n", "  team: string\n  clearance: int\n"), "base.duty");
    const judged = sent.length - 1;
    const text = await check(dir);
    expect(text.code).toBe(EXIT.usage);
    expect(text.out).toContain(`error[REPLAY_TOO_MANY_SKIPPED]: replay skipped ${judged} of ${judged} records (100%), more than the 0% allowed: principal attribute \`clearance\` not recorded (${judged})`);
    expect(text.out).toContain("replay: no decision replayed, so no flip could be seen");
    expect(text.out.split("\n").at(-1)).toStartWith("FAILED: ");
    const json = await check(dir, "--format", "json");
    const report = JSON.parse(json.out) as { ok: boolean; gates: Array<{ name: string; status: string }>; replay: ReplayReport & { code: string } };
    expect(json.code).toBe(EXIT.usage);
    expect(report.ok).toBe(false);
    expect(report.gates.find((g) => g.name === "replay")?.status).toBe("error");
    expect(report.replay.code).toBe("REPLAY_TOO_MANY_SKIPPED");
    expect(report.replay.replayed).toBe(0);
    const github = await check(dir, "--format", "github");
    expect(github.out.split("\n").filter((l) => l.startsWith("::error title=replay::replay skipped"))).toHaveLength(1);
    // Accepted on purpose: every share, or a share as large as this one.
    expect((await check(dir, "--allow-skipped")).code).toBe(EXIT.ok);
    expect((await check(dir, "--max-skipped", "100%")).code).toBe(EXIT.ok);
    expect((await check(dir, "--max-skipped", "0.5")).code).toBe(EXIT.usage);
  });

  test("--max-skipped is a share of the records a policy decided: one skipped record of many passes 10%, not 1%", async () => {
    const old = join(work, "one-old-record.jsonl");
    writeFileSync(old, JSON.stringify({ type: "decision", seq: 0, time: "2026-01-01T00:00:00.000Z", request_id: "old-1", channel: "operational", method: "GET", path: "/changes", sub: "alice", roles: ["developer"], decision: "allow", code: "ALLOW" }) + "\n");
    const dir = candidate("share");
    const run = async (...flags: string[]) => {
      const io = memoryIo();
      return { code: await main(["check", dir, "--replay", auditDir, "--replay", old, ...flags], io), out: io.stdout.join("\n") };
    };
    const strict = await run();
    expect(strict.code).toBe(EXIT.usage);
    expect(strict.out).toContain(`replay skipped 1 of ${sent.length} records`);
    expect((await run("--max-skipped", "10%")).code).toBe(EXIT.ok);
    expect((await run("--max-skipped", "1%")).code).toBe(EXIT.usage);
  });

  test("an empty log judges nothing: exit 64 unless --allow-skipped", async () => {
    const empty = join(work, "empty.jsonl");
    writeFileSync(empty, "");
    const io = memoryIo();
    expect(await main(["check", candidate("empty"), "--replay", empty], io)).toBe(EXIT.usage);
    expect(io.stdout.join("\n")).toContain("error[REPLAY_TOO_MANY_SKIPPED]: replay judged no decision: 0 decision records");
    expect(await main(["check", candidate("empty"), "--replay", empty, "--allow-skipped"], memoryIo())).toBe(EXIT.ok);
  });

  test("usage: a share that is not one, both flags, or either without --replay", async () => {
    const dir = candidate("usage");
    for (const argv of [["--replay", auditDir, "--max-skipped", "lots"], ["--replay", auditDir, "--max-skipped", "150%"], ["--replay", auditDir, "--allow-skipped", "--max-skipped", "5%"], ["--allow-skipped"], ["--max-skipped", "5%"]]) {
      const io = memoryIo();
      expect(await main(["check", dir, ...argv], io)).toBe(EXIT.usage);
      expect(io.stderr.join("\n")).toMatch(/^error: `--(max-skipped|allow-skipped)`/);
    }
  });
});

// A log the gateway wrote before outcomes moved into `outcomes` records (format 1: an `outcome`
// record per forwarded request), with the policy it was decided under. The live log above is in
// the current format; the replay reads both.
describe("a format-1 log (test/fixtures/audit-format-1)", () => {
  const fixture = join(import.meta.dir, "..", "fixtures", "audit-format-1");
  function fixtureCandidate(name: string, edit?: (changes: string) => string): string {
    const dir = join(work, name);
    cpSync(join(fixture, "policies"), dir, { recursive: true });
    if (edit) writeFileSync(join(dir, "changes.duty"), edit(readFileSync(join(dir, "changes.duty"), "utf8")));
    return dir;
  }
  async function replayFixture(dir: string) {
    const io = memoryIo();
    const code = await runCheck({ dir, format: "json", extraSteps: [replayStep({ paths: [fixture], allowFlips: false })] }, io);
    return { code, report: (JSON.parse(io.stdout.join("\n")) as { replay: ReplayReport }).replay };
  }

  test("the policy it was decided under: zero flips", async () => {
    const { code, report } = await replayFixture(fixtureCandidate("format-1-unchanged"));
    expect(code).toBe(EXIT.ok);
    expect(report).toMatchObject({ decisions: 21, replayed: 20, refusedBeforePolicy: 1, skipped: {}, flips: { total: 0 } });
  });

  test("its outcomes rebuild the ledger: alice approving the change she submitted is a history denial, not a flip", async () => {
    // Developers may approve now. The live record of that approval carries no ledger facts (no
    // grant, so no ledger was consulted): only her submit's 200 outcome puts it in the replay's ledger.
    const { code, report } = await replayFixture(fixtureCandidate("format-1-developers-approve", (s) => s.replace(/^grant reviewer +approve_change\n/m, "grant developer approve_change\n")));
    expect(code).toBe(EXIT.decisionFlips);
    expect(report.flips.groups.map((g) => [g.direction, g.duty, g.roles, g.count])).toEqual([
      ["allow→deny", "approve_change", "reviewer", 5],
      ["deny→allow", "approve_change", "developer", 1],
    ]);
    expect(report.flips.groups[1]!.examples[0]).toMatchObject({ sub: "alice", request: "POST /changes/9/approve" });
    expect(report.codeChanges).toBe(1);
  });
});
