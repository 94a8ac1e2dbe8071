// Separation of duties end to end, over real TLS with a real SQLite duty ledger and a real
// upstream: maker/checker/deployer by three people, every pair of steps by one person denied with
// the earlier step and its time, failed upstream calls leave no trace, the submit/approve race,
// restart, retention, what the audit log records — and `gateway check --assignments` as a user
// runs it (a real subprocess) and as CI calls it (in process).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "../../src/cli/check.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { REPO_ROOT, startTestGateway, type TestGateway } from "../support/harness.ts";
import { readWholeRecords } from "../support/audit-log.ts";

/** The constraint id names the policy file as the gateway loaded it (its configured directory). */
// Rule ids name policy files relative to the bundle, the same on every instance.
const constraintOf = (_t: TestGateway) => "separate:changes.duty:20:1";
const STEPS = {
  submit: { duty: "submit_change", path: (k: string) => `/changes/${k}/submit` },
  approve: { duty: "approve_change", path: (k: string) => `/changes/${k}/approve` },
  deploy: { duty: "deploy_change", path: (k: string) => `/changes/${k}/deploy` },
} as const;
type Step = keyof typeof STEPS;

/** Roles that let one person perform both steps under the shipped policy (developer/deployer are exclusive). */
const ROLES_FOR: Record<string, string[]> = {
  "submit+approve": ["developer", "reviewer"],
  "submit+deploy": ["developer", "sre"],
  "approve+deploy": ["reviewer", "deployer"],
};

let changeSeq = 0;
/** A change id no other test uses (the ledger is shared within one gateway). */
const freshChange = (label: string) => `${label}-${++changeSeq}-${Math.random().toString(36).slice(2, 8)}`;

async function step(t: TestGateway, s: Step, key: string, sub: string, roles: string[]): Promise<Response> {
  const token = await t.issuer.token({ sub, roles, mfa: true });
  return t.fetch(STEPS[s].path(key), { method: "POST", token });
}

interface Problem { code: string; detail?: string; duty?: string; rule?: string }

/** Every record of the gateway's audit log, in file order. */
function readAuditRecords(t: TestGateway): Array<Record<string, unknown>> {
  return readWholeRecords(t.config.audit.dir);
}

function decisionRecord(t: TestGateway, requestId: string): Record<string, unknown> {
  const r = readAuditRecords(t).find((x) => x.type === "decision" && x.request_id === requestId);
  if (!r) throw new Error(`no decision record for request \`${requestId}\``);
  return r;
}

/** The minute stamps a fact recorded between `before` and `after` can show. */
function minutesBetween(before: number, after: number): string[] {
  const out: string[] = [];
  for (let m = Math.floor(before / 60_000); m <= Math.floor(after / 60_000); m++) out.push(new Date(m * 60_000).toISOString().slice(0, 16) + "Z");
  return out;
}

describe("history separation on one gateway", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => {
    await t?.stop();
  });

  test("maker, checker and deployer as three people: all three pass", async () => {
    const k = freshChange("three");
    const statuses = [
      (await step(t, "submit", k, "alice", ["developer"])).status,
      (await step(t, "approve", k, "bob", ["reviewer"])).status,
      (await step(t, "deploy", k, "carol", ["deployer"])).status,
    ];
    expect(statuses).toEqual([200, 200, 200]);
    expect(t.upstream.received.filter((r) => r.path.startsWith(`/changes/${k}/`)).map((r) => r.path)).toEqual([
      `/changes/${k}/submit`, `/changes/${k}/approve`, `/changes/${k}/deploy`,
    ]);
  });

  const pairs: Array<[Step, Step]> = [
    ["submit", "approve"], ["approve", "submit"],
    ["submit", "deploy"], ["deploy", "submit"],
    ["approve", "deploy"], ["deploy", "approve"],
  ];
  test.each(pairs)("%s then %s by one person: 403 DENY_SOD_HISTORY naming the earlier step and time", async (first, second) => {
    const k = freshChange(`${first}-${second}`);
    const roles = ROLES_FOR[`${first}+${second}`] ?? ROLES_FOR[`${second}+${first}`]!;
    const before = Date.now();
    const r1 = await step(t, first, k, "pat", roles);
    const after = Date.now();
    expect(r1.status).toBe(200);
    const forwarded = t.upstream.received.length;
    const r2 = await step(t, second, k, "pat", roles);
    expect(r2.status).toBe(403);
    expect(r2.headers.get("content-type")).toBe("application/problem+json");
    const body = (await r2.json()) as Problem;
    expect(body.code).toBe("DENY_SOD_HISTORY");
    expect(body.duty).toBe(STEPS[second].duty);
    expect(body.rule).toBe(constraintOf(t));
    const m = /^you performed (\w+) on change `([^`]+)` at (\S+); (\w+) needs another person$/.exec(body.detail ?? "");
    expect(m).not.toBeNull();
    expect(m![1]).toBe(STEPS[first].duty);
    expect(m![2]).toBe(k);
    expect(minutesBetween(before, after)).toContain(m![3]!);
    expect(m![4]).toBe(STEPS[second].duty);
    // Never forwarded.
    expect(t.upstream.received.length).toBe(forwarded);
    // Another person may still take the second step.
    const other = await step(t, second, k, "quinn", roles);
    expect(other.status).toBe(200);
  });

  test("repeating one's own step is allowed", async () => {
    const k = freshChange("repeat");
    expect((await step(t, "submit", k, "alice", ["developer"])).status).toBe(200);
    expect((await step(t, "submit", k, "alice", ["developer"])).status).toBe(200);
  });

  test("another change is independent", async () => {
    const k1 = freshChange("indep"), k2 = freshChange("indep");
    const roles = ROLES_FOR["submit+approve"]!;
    expect((await step(t, "submit", k1, "sam", roles)).status).toBe(200);
    expect((await step(t, "approve", k2, "sam", roles)).status).toBe(200);
  });

  test("a failed upstream call records nothing: the same person may take another step afterwards", async () => {
    const k = freshChange("fail");
    const roles = ROLES_FOR["submit+approve"]!;
    t.upstream.respond((req) => (new URL(req.url).pathname.endsWith("/submit") ? new Response("boom", { status: 500 }) : Response.json({ ok: true })));
    try {
      const r1 = await step(t, "submit", k, "uma", roles);
      expect(r1.status).toBe(500);
      const facts = await t.gw.ledger.lookup([{ constraint: constraintOf(t), param: "change", key: k, duties: ["submit_change", "approve_change", "deploy_change"] }], "uma");
      expect(facts).toEqual([]);
      const r2 = await step(t, "approve", k, "uma", roles);
      expect(r2.status).toBe(200);
    } finally {
      t.upstream.respond((req) => Response.json({ ok: true, path: new URL(req.url).pathname }));
    }
    // The approve did record: now the submit is the second step and is refused.
    const r3 = await step(t, "submit", k, "uma", roles);
    expect(r3.status).toBe(403);
    expect(((await r3.json()) as Problem).code).toBe("DENY_SOD_HISTORY");
  });

  test("the race: one person fires submit and approve at the same moment, 60 times; never both succeed", async () => {
    const roles = ROLES_FOR["submit+approve"]!;
    const token = await t.issuer.token({ sub: "racer", roles, mfa: true });
    // A small upstream delay keeps both requests in flight together.
    t.upstream.respond(async (req) => {
      await Bun.sleep(5);
      return Response.json({ ok: true, path: new URL(req.url).pathname });
    });
    const outcomes: string[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        const k = freshChange("race");
        const [a, b] = await Promise.all([
          t.fetch(STEPS.submit.path(k), { method: "POST", token }),
          t.fetch(STEPS.approve.path(k), { method: "POST", token }),
        ]);
        const codes = await Promise.all([a, b].map(async (r) => (r.status === 200 ? "200" : `${r.status} ${((await r.json()) as Problem).code}`)));
        outcomes.push(codes.sort().join(" | "));
      }
    } finally {
      t.upstream.respond((req) => Response.json({ ok: true, path: new URL(req.url).pathname }));
    }
    // Exactly one of each pair passes: the first reservation wins, the other sees it live.
    expect(outcomes.filter((o) => o !== "200 | 403 DENY_SOD_HISTORY")).toEqual([]);
    expect(outcomes.length).toBe(60);
  });

  test("audit records of a SoD denial carry the ledger facts; an exclusive violation is flagged", async () => {
    const k = freshChange("audit");
    const roles = ROLES_FOR["submit+approve"]!;
    const r1 = await step(t, "submit", k, "vic", roles);
    expect(r1.status).toBe(200);
    const r2 = await step(t, "approve", k, "vic", roles);
    expect(r2.status).toBe(403);
    const denied = decisionRecord(t, r2.headers.get("x-request-id")!);
    expect(denied.decision).toBe("deny");
    expect(denied.code).toBe("DENY_SOD_HISTORY");
    expect(denied.decided_by).toBe(constraintOf(t));
    expect(denied.sub).toBe("vic");
    const sod = denied.sod as Array<Record<string, unknown>>;
    expect(sod).toBeArray();
    expect(sod.map((f) => `${f.constraint} ${f.key} ${f.sub} ${f.duty}`)).toContain(`${constraintOf(t)} ${k} vic submit_change`);
    expect(typeof sod[0]!.at).toBe("number");
    expect(denied.exclusive_violation).toBeUndefined();
    // The allowed submit's record shows the (empty) facts it was checked against — no `sod` field.
    const allowed = decisionRecord(t, r1.headers.get("x-request-id")!);
    expect(allowed.decision).toBe("allow");
    expect(allowed.code).toBe("ALLOW");

    // mallory holds developer and deployer, which the policy makes exclusive.
    const token = await t.issuer.token({ sub: "mallory", roles: ["developer", "deployer"], mfa: true });
    const r3 = await t.fetch(STEPS.submit.path(freshChange("excl")), { method: "POST", token });
    expect(r3.status).toBe(403);
    expect(((await r3.json()) as Problem).code).toBe("DENY_EXCLUSIVE");
    const excl = decisionRecord(t, r3.headers.get("x-request-id")!);
    expect(excl.code).toBe("DENY_EXCLUSIVE");
    expect(excl.exclusive_violation).toBe(true);
    expect(excl.roles).toEqual(["developer", "deployer"]);
  });

  test("retention: pruning with a time past `retention_days` forgets old steps", async () => {
    const k = freshChange("prune");
    const roles = ROLES_FOR["submit+approve"]!;
    expect((await step(t, "submit", k, "wes", roles)).status).toBe(200);
    expect((await step(t, "approve", k, "wes", roles)).status).toBe(403);
    const sizeBefore = await t.gw.ledger.size();
    // A day before the retention ends nothing of today goes; a day after, everything does.
    const retentionMs = t.config.ledger.retentionDays * 86_400_000;
    expect(await t.gw.ledger.prune(Date.now() + retentionMs - 86_400_000)).toBe(0);
    const removed = await t.gw.ledger.prune(Date.now() + retentionMs + 86_400_000);
    expect(removed).toBe(sizeBefore);
    expect(await t.gw.ledger.size()).toBe(0);
    expect((await step(t, "approve", k, "wes", roles)).status).toBe(200);
  });
});

describe("hidden details", () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway({ configure: (c) => ({ ...c, ledger: { ...c.ledger, hideDetails: true } }) });
  });
  afterAll(async () => {
    await t?.stop();
  });

  test("ledger.hideDetails: the message names neither the earlier step nor its time", async () => {
    const k = freshChange("hidden");
    const roles = ROLES_FOR["submit+approve"]!;
    expect((await step(t, "submit", k, "xia", roles)).status).toBe(200);
    const r = await step(t, "approve", k, "xia", roles);
    expect(r.status).toBe(403);
    const body = (await r.json()) as Problem;
    expect(body.code).toBe("DENY_SOD_HISTORY");
    expect(body.detail).toBe(`approve_change on change \`${k}\` needs another person than an earlier step`);
    expect(body.detail).not.toContain("submit_change");
    // The auditor still sees the facts.
    const record = decisionRecord(t, r.headers.get("x-request-id")!);
    expect((record.sod as Array<Record<string, unknown>>).map((f) => f.duty)).toContain("submit_change");
  });
});

describe("the ledger survives a restart", () => {
  test("a step recorded before a restart still denies the other step after it", async () => {
    const first = await startTestGateway();
    const dir = first.dir;
    const k = freshChange("restart");
    const roles = ROLES_FOR["submit+approve"]!;
    try {
      expect((await step(first, "submit", k, "yan", roles)).status).toBe(200);
    } finally {
      await first.stop({ keepDir: true });
    }
    const second = await startTestGateway({ dir });
    try {
      expect(second.config.ledger.path).toBe(first.config.ledger.path);
      const r = await step(second, "approve", k, "yan", roles);
      expect(r.status).toBe(403);
      const body = (await r.json()) as Problem;
      expect(body.code).toBe("DENY_SOD_HISTORY");
      expect(body.detail).toStartWith(`you performed submit_change on change \`${k}\``);
    } finally {
      await second.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("gateway check --assignments", () => {
  const work = mkdtempSync(join(tmpdir(), "dutygate-assign-"));
  const files = {
    toml: join(work, "people.toml"),
    json: join(work, "people.json"),
    list: join(work, "list.json"),
    clean: join(work, "clean.toml"),
    bad: join(work, "bad.json"),
  };
  writeFileSync(files.toml, `[people.alice]\nroles = ["developer"]\n\n[people.mallory]\nroles = ["developer", "deployer"]\n\n[people.zed]\nroles = ["janitor", "reviewer"]\n\n[people.eve]\nroles = ["reviewer", "security_admin", "developer", "deployer", "ghost"]\n`);
  writeFileSync(files.json, JSON.stringify({ alice: ["developer"], mallory: ["developer", "deployer"], zed: ["janitor", "reviewer"], eve: ["reviewer", "security_admin", "developer", "deployer", "ghost"] }));
  writeFileSync(files.list, JSON.stringify([{ sub: "alice", roles: ["developer"] }, { sub: "mallory", roles: ["developer", "deployer"] }, { sub: "zed", roles: ["janitor", "reviewer"] }, { sub: "eve", roles: ["reviewer", "security_admin", "developer", "deployer", "ghost"] }]));
  writeFileSync(files.clean, `[people.alice]\nroles = ["developer"]\n[people.bob]\nroles = ["reviewer", "sre"]\n`);
  writeFileSync(files.bad, JSON.stringify({ alice: "developer" }));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  /** runCheck shows paths as given; the tests pass an absolute dir and compare repo-relative text. */
  const relative = (line: string) => line.split(`${REPO_ROOT}/`).join("");

  const EXPECTED_TEXT = [
    "role assignments: 4 people, 3 violations",
    "  mallory: holds developer and deployer, which policies/base.duty:15:1 makes exclusive",
    "  zed: role not in the policy: janitor",
    "  eve: holds developer and deployer, which policies/base.duty:15:1 makes exclusive",
    "  eve: holds reviewer and security_admin, which policies/base.duty:16:1 makes exclusive",
    "  eve: role not in the policy: ghost",
  ];

  test.each([["TOML people table", "toml"], ["JSON object", "json"], ["JSON list of {sub, roles}", "list"]] as const)("%s: exit 5, people listed, unknown roles reported", async (_name, kind) => {
    const io = memoryIo();
    const code = await runCheck({ dir: join(REPO_ROOT, "policies"), format: "text", assignments: files[kind] }, io);
    expect(code).toBe(EXIT.sodViolations);
    expect(code).toBe(5);
    const start = io.stdout.findIndex((l) => l.startsWith("role assignments:"));
    expect(io.stdout.slice(start).map(relative).filter((l) => l.startsWith("role assignments:") || l.startsWith("  "))).toEqual(EXPECTED_TEXT);
    expect(io.stdout.at(-1)).toStartWith("FAILED:");
  });

  test("json format: violations as data", async () => {
    const io = memoryIo();
    const code = await runCheck({ dir: join(REPO_ROOT, "policies"), format: "json", assignments: files.toml }, io);
    expect(code).toBe(5);
    const report = JSON.parse(relative(io.stdout.join("\n"))) as { ok: boolean; exitCode: number; assignments: { people: number; violations: Array<{ sub: string; constraint: string; held: string[]; unknownRoles: string[] }> } };
    expect(report.ok).toBe(false);
    expect(report.exitCode).toBe(5);
    expect(report.assignments.people).toBe(4);
    expect(report.assignments.violations.map((v) => `${v.sub} ${v.constraint || "-"} ${v.held.join("+") || "-"} ${v.unknownRoles.join("+") || "-"}`)).toEqual([
      "mallory exclusive:policies/base.duty:15:1 developer+deployer -",
      "zed - - janitor",
      "eve exclusive:policies/base.duty:15:1 developer+deployer ghost",
      "eve exclusive:policies/base.duty:16:1 reviewer+security_admin ghost",
    ]);
  });

  test("github format: one annotation per broken set", async () => {
    const io = memoryIo();
    expect(await runCheck({ dir: join(REPO_ROOT, "policies"), format: "github", assignments: files.toml }, io)).toBe(5);
    // Each points at the `exclusive` it breaks.
    expect(io.stdout.filter((l) => l.includes("title=separation of duties::")).map(relative).map((l) => l.split(files.toml!).join("people.toml"))).toEqual([
      "::error file=policies/base.duty,line=15,col=1,title=separation of duties::mallory holds developer and deployer in people.toml, which this `exclusive` forbids",
      "::error file=policies/base.duty,line=15,col=1,title=separation of duties::eve holds developer and deployer in people.toml, which this `exclusive` forbids",
      "::error file=policies/base.duty,line=16,col=1,title=separation of duties::eve holds reviewer and security_admin in people.toml, which this `exclusive` forbids",
    ]);
  });

  test("a clean export passes (exit 0)", async () => {
    const io = memoryIo();
    expect(await runCheck({ dir: join(REPO_ROOT, "policies"), format: "text", assignments: files.clean }, io)).toBe(EXIT.ok);
    expect(io.stdout).toContain("role assignments: 2 people, 0 violations");
  });

  test("a malformed export is a usage error naming the person", async () => {
    const io = memoryIo();
    expect(await runCheck({ dir: join(REPO_ROOT, "policies"), format: "text", assignments: files.bad }, io)).toBe(EXIT.usage);
    expect(io.text()).toContain("`alice`: roles must be a list of strings");
  });

  test("the real command: `gateway check policies --assignments people.toml` exits 5", () => {
    const proc = Bun.spawnSync([process.execPath, "src/main.ts", "check", "policies", "--assignments", files.toml], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
    const stdout = proc.stdout.toString();
    expect(proc.exitCode).toBe(5);
    for (const line of EXPECTED_TEXT) expect(stdout).toContain(line);
    // The reachability table comes first, as a reviewer reads it.
    expect(stdout.indexOf("separation of duties (reachability")).toBeLessThan(stdout.indexOf("role assignments:"));
  });
});
