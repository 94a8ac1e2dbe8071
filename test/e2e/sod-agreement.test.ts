// One history, every place that judges it: the gateway (its SQLite ledger), `gateway explain`
// against that ledger, a policy test with the same `history`, and `gateway check --replay` of a
// real audit log. The history: rita, who is a developer and a reviewer, submitted change 8 and
// then approves it. Each place must deny with DENY_SOD_HISTORY, decided by the same `separate`,
// with the same sentence worded for its reader (dsl/separation.ts): "you" to rita at run time,
// "rita" to an operator, no time where the history is given rather than recorded.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "../../src/cli/check.ts";
import { memoryIo } from "../../src/cli/io.ts";
import { replayStep, type ReplayReport } from "../../src/cli/replay.ts";
import { explainRequest } from "../../src/gateway/explain.ts";
import { openSqliteLedger } from "../../src/ledger/mod.ts";
import { buildPolicy, buildPolicyDirectory } from "../../src/policy/build.ts";
import { classifyPolicyFiles, readPolicyDirectory } from "../../src/policy/sources.ts";
import { SHIPPED_POLICIES, startTestGateway, type TestGateway } from "../support/harness.ts";

const RITA = { sub: "rita", roles: ["developer", "reviewer"], mfa: true, team: "core" };
const CONSTRAINT_AT = "changes.duty:20:1";

/** The one sentence, as dsl/separation.ts words it: who performed what on which change, and when. */
function sentence(who: "you" | "rita", at: number | null): string {
  const when = at === null ? "" : ` at ${new Date(at).toISOString().slice(0, 16)}Z`;
  return `${who} performed submit_change on change \`8\`${when}; approve_change needs another person`;
}

function auditRecords(dir: string): Array<Record<string, unknown>> {
  return readdirSync(dir).filter((n) => n.endsWith(".jsonl")).sort()
    .flatMap((n) => readFileSync(join(dir, n), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}

let work: string;
/** The shipped policy: its `separate` guards the approval. */
let live: TestGateway;
/** The shipped policy without its `separate` (same lines): the approval went through, to be replayed. */
let unguarded: TestGateway;
let liveAnswer: { status: number; detail: string; rule: string };
let liveFact: { at: number; duty: string; sub: string; key: string };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "dutygate-sod-agreement-"));
  live = await startTestGateway();
  const token = await live.issuer.token(RITA);
  expect((await live.fetch("/changes/8/submit", { method: "POST", token })).status).toBe(200);
  const res = await live.fetch("/changes/8/approve", { method: "POST", token });
  const body = (await res.json()) as { detail: string; rule: string };
  liveAnswer = { status: res.status, detail: body.detail, rule: body.rule };
  await live.stop({ keepDir: true });
  const denial = auditRecords(live.config.audit.dir).find((r) => r.type === "decision" && r.path === "/changes/8/approve")!;
  liveFact = (denial.sod as Array<typeof liveFact>)[0]!;

  const p0 = join(work, "unguarded");
  cpSync(SHIPPED_POLICIES, p0, { recursive: true, filter: (src) => !src.endsWith(".test.toml") });
  const changes = readFileSync(join(p0, "changes.duty"), "utf8");
  const without = changes.replace(/^separate submit_change.*$/m, "# (no separation)");
  expect(without).not.toBe(changes);
  writeFileSync(join(p0, "changes.duty"), without);
  unguarded = await startTestGateway({ policyDir: p0 });
  const token0 = await unguarded.issuer.token(RITA);
  expect((await unguarded.fetch("/changes/8/submit", { method: "POST", token: token0 })).status).toBe(200);
  expect((await unguarded.fetch("/changes/8/approve", { method: "POST", token: token0 })).status).toBe(200);
  await unguarded.stop({ keepDir: true });
});

afterAll(() => {
  for (const dir of [work, live?.dir, unguarded?.dir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("one history of separation, judged in every place, gives one answer and one sentence", () => {
  test("the gateway (SQLite ledger) denies rita, speaking to her", () => {
    expect(liveAnswer.status).toBe(403);
    expect(liveAnswer.rule).toBe(`separate:${CONSTRAINT_AT}`);
    expect(liveFact).toMatchObject({ duty: "submit_change", sub: "rita", key: "8" });
    expect(liveAnswer.detail).toBe(sentence("you", liveFact.at));
  });

  test("gateway explain against that ledger: the same constraint and sentence, naming rita", async () => {
    const ledgerPath = join(live.dir, ".state", "ledger.sqlite");
    expect(existsSync(ledgerPath)).toBe(true);
    const ledger = await openSqliteLedger({ path: ledgerPath, retentionDays: 90 });
    try {
      const build = buildPolicyDirectory(join(live.dir, "policies"), { displayDir: "", until: "compile" });
      const result = await explainRequest(build.compiled!, { principal: RITA, request: "POST /changes/8/approve", time: new Date(liveFact.at + 60_000).toISOString() }, ledger);
      if (!result.ok) throw new Error(result.message);
      const d = result.explanation.decision;
      expect([d.allow, d.code, d.decidedBy]).toEqual([false, "DENY_SOD_HISTORY", `separate:${CONSTRAINT_AT}`]);
      expect(d.message).toBe(sentence("rita", liveFact.at));
      expect(d.reasons.at(-1)?.why).toBe(d.message);
    } finally {
      await ledger.close();
    }
  });

  test("a policy test with the same history: the same constraint and sentence, with no time (the history has none)", () => {
    const files = classifyPolicyFiles(readPolicyDirectory(SHIPPED_POLICIES), "");
    const test = `[[test]]
name = "rita may not approve the change she submitted"
principal = { sub = "rita", roles = ["developer", "reviewer"], mfa = true, team = "core" }
request = "POST /changes/8/approve"
history = [{ duty = "submit_change", sub = "rita" }]
expect = "deny"
code = "DENY_SOD_HISTORY"
rule = "${CONSTRAINT_AT}"
`;
    const build = buildPolicy({ policies: files.policies, tests: [{ path: "agreement.test.toml", text: test }] });
    expect(build.failure).toBeNull();
    const [result] = build.tests;
    expect(result?.passed).toBe(true);
    expect(result?.decision?.decidedBy).toBe(`separate:${CONSTRAINT_AT}`);
    expect(result?.decision?.message).toBe(sentence("rita", null));
  });

  test("gateway check --replay of the unguarded log under the guarded policy: the approval flips to the same denial and sentence", async () => {
    const io = memoryIo();
    await runCheck({ dir: SHIPPED_POLICIES, format: "json", extraSteps: [replayStep({ paths: [unguarded.config.audit.dir], allowFlips: true })] }, io);
    const report = (JSON.parse(io.stdout.join("\n")) as { replay: ReplayReport }).replay;
    expect(report.flips.total).toBe(1);
    const [group] = report.flips.groups;
    expect([group?.direction, group?.duty]).toEqual(["allow→deny", "approve_change"]);
    const example = group!.examples[0]!;
    expect(example.to).toBe("DENY_SOD_HISTORY");
    expect(example.rule).toEndWith(`/${CONSTRAINT_AT}`);
    const submitted = auditRecords(unguarded.config.audit.dir).find((r) => r.type === "decision" && r.path === "/changes/8/submit")!;
    expect(example.message).toBe(sentence("rita", Date.parse(submitted.request_time as string)));
  });
});
