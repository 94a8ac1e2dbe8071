// Every format of `gateway check` tells CI what its exit code tells: for each gate (policy errors,
// policy tests, replay flips, bundle signatures, role assignments, an unreadable input, no policy
// at all), text ends in `FAILED:`, the JSON report says `ok: false` with the exit code and the
// gate, GitHub gets an `::error`, and JUnit — checked against the structure strict consumers
// require — counts a failing or erroring test case. And all of them say "passed" when it passed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { main } from "../../src/cli/mod.ts";
import { SHIPPED_POLICIES } from "../support/harness.ts";
import { parseGithubCommand, readJunit } from "../support/junit.ts";

const FORMATS = ["text", "json", "github", "junit"] as const;
type Format = (typeof FORMATS)[number];

let work: string;
/** The shipped policies and their tests (not with `tests: false`), with `edit` applied to one file. */
function policies(name: string, edit?: { file: string; change: (text: string) => string }, options: { tests?: boolean } = {}): string {
  const dir = join(work, name);
  cpSync(SHIPPED_POLICIES, dir, { recursive: true, filter: (src) => options.tests !== false || !src.endsWith(".test.toml") });
  if (edit) {
    const before = readFileSync(join(dir, edit.file), "utf8");
    const after = edit.change(before);
    expect(after).not.toBe(before);
    writeFileSync(join(dir, edit.file), after);
  }
  return dir;
}

const SHIPPED_TESTS = [...readFileSync(join(SHIPPED_POLICIES, "changes.test.toml"), "utf8").matchAll(/^\[\[test\]\]/gm)].length
  + [...readFileSync(join(SHIPPED_POLICIES, "logs.test.toml"), "utf8").matchAll(/^\[\[test\]\]/gm)].length
  + [...readFileSync(join(SHIPPED_POLICIES, "admin.test.toml"), "utf8").matchAll(/^\[\[test\]\]/gm)].length;

interface Scenario {
  name: string;
  argv: () => string[];
  code: number;
  /** The JUnit test case that must fail (or error), by name; the JSON gate by `gate`. */
  gate?: { junit: string; json: string };
}

const scenarios: Scenario[] = [];
let auditLog: string;
let trustedKeys: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "dutygate-check-formats-"));
  // One recorded approval by a reviewer; a candidate without the reviewers' grant flips it.
  auditLog = join(work, "audit.jsonl");
  writeFileSync(auditLog, JSON.stringify({ type: "decision", seq: 0, time: "2026-01-01T00:00:00.000Z", request_id: "r1", channel: "operational", method: "POST", path: "/changes/1/approve", sub: "bob", roles: ["reviewer"], principal: { sub: "bob", roles: ["reviewer"], mfa: false, team: "core" }, decision: "allow", code: "ALLOW" }) + "\n");
  expect(await main(["keygen", "--out", join(work, "keys"), "--kid", "ci-1"], memoryIo())).toBe(EXIT.ok);
  trustedKeys = join(work, "keys", "trusted.jwks");
  writeFileSync(join(work, "people.toml"), '[people.eve]\nroles = ["developer", "deployer"]\n');
  mkdirSync(join(work, "empty"));
}, 60_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

scenarios.push(
  { name: "everything passes", argv: () => [policies("ok")], code: EXIT.ok },
  { name: "a policy error", argv: () => [policies("broken", { file: "logs.duty", change: (s) => s + "\ngrant auditor read_logz\n" })], code: EXIT.policyErrors, gate: { junit: "parse and type-check", json: "policy" } },
  { name: "a failing policy test", argv: () => [policies("failing", { file: "logs.test.toml", change: (s) => s.replace('expect = "allow"', 'expect = "deny"') })], code: EXIT.testsFailed, gate: { junit: "auditors read logs", json: "tests" } },
  { name: "replay flips", argv: () => [policies("flips", { file: "changes.duty", change: (s) => s.replace(/^grant reviewer +approve_change\n/m, "") }, { tests: false }), "--replay", auditLog], code: EXIT.decisionFlips, gate: { junit: "replay", json: "replay" } },
  { name: "an unsigned bundle with --keys", argv: () => [policies("unsigned"), "--keys", trustedKeys], code: EXIT.verificationFailed, gate: { junit: "bundle signatures", json: "signatures" } },
  { name: "role assignments break an exclusive set", argv: () => [policies("assigned"), "--assignments", join(work, "people.toml")], code: EXIT.sodViolations, gate: { junit: "role assignments", json: "assignments" } },
  { name: "an unreadable assignments file", argv: () => [policies("unreadable"), "--assignments", join(work, "no-such.toml")], code: EXIT.usage, gate: { junit: "role assignments", json: "assignments" } },
  { name: "rule coverage reported, no minimum", argv: () => [policies("covered"), "--coverage"], code: EXIT.ok },
  { name: "rule coverage below --min-coverage", argv: () => [policies("undercovered"), "--min-coverage", "95"], code: EXIT.testsFailed, gate: { junit: "rule coverage", json: "coverage" } },
  { name: "no policy directory", argv: () => [join(work, "no-such-dir")], code: EXIT.usage, gate: { junit: "parse and type-check", json: "policy" } },
  { name: "no .duty files", argv: () => [join(work, "empty")], code: EXIT.policyErrors, gate: { junit: "parse and type-check", json: "policy" } },
);

async function check(argv: string[], format: Format): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = memoryIo();
  const code = await main(["check", ...argv, "--format", format], io);
  return { code, stdout: io.stdout.join("\n"), stderr: io.stderr.join("\n") };
}

describe("regression: formats disagreed with the exit code", () => {
  for (const s of scenarios) {
    describe(`${s.name} → exit ${s.code}`, () => {
      test("text: ends in `ok:` or `FAILED:` (or says the error on stderr)", async () => {
        const r = await check(s.argv(), "text");
        expect(r.code).toBe(s.code);
        if (r.stdout === "") expect(r.stderr).toMatch(/^error: /);
        else expect(r.stdout.split("\n").at(-1)).toStartWith(s.code === EXIT.ok ? "ok: " : "FAILED: ");
      });

      test("json: schema_version, ok, exitCode, numeric counts and the failing gate", async () => {
        const r = await check(s.argv(), "json");
        expect(r.code).toBe(s.code);
        const report = JSON.parse(r.stdout) as { schema_version: number; ok: boolean; exitCode: number; counts: Record<string, unknown>; gates: Array<{ name: string; status: string; exitCode: number }> };
        expect(report.schema_version).toBe(1);
        expect(report.ok).toBe(s.code === EXIT.ok);
        expect(report.exitCode).toBe(s.code);
        for (const key of ["errors", "warnings", "tests", "passed", "failed", "skipped"]) expect(typeof report.counts[key]).toBe("number");
        if (s.gate) expect(report.gates.find((g) => g.name === s.gate!.json)).toMatchObject({ exitCode: s.code, status: s.code === EXIT.usage ? "error" : "failed" });
        else expect(report.gates.every((g) => g.exitCode === EXIT.ok)).toBe(true);
      });

      test("github: an ::error exactly when the exit code is not 0; every command well formed", async () => {
        const r = await check(s.argv(), "github");
        expect(r.code).toBe(s.code);
        const lines = r.stdout.split("\n").filter((l) => l.startsWith("::"));
        for (const line of lines) expect(parseGithubCommand(line)).not.toBeNull();
        expect(lines.some((l) => l.startsWith("::error"))).toBe(s.code !== EXIT.ok);
      });

      test("junit: valid structure; a failing or erroring test case exactly when the exit code is not 0", async () => {
        const r = await check(s.argv(), "junit");
        expect(r.code).toBe(s.code);
        const junit = readJunit(r.stdout);
        expect(junit.failures + junit.errors > 0).toBe(s.code !== EXIT.ok);
        const exitProperty = junit.root.children[0]!.children.find((c) => c.name === "properties")!.children.find((p) => p.attributes.name === "exit_code");
        expect(exitProperty?.attributes.value).toBe(String(s.code));
        if (s.gate) expect(junit.cases.find((c) => c.name === s.gate!.junit)?.outcome).toBe(s.code === EXIT.usage ? "error" : "failure");
      });
    });
  }
});

describe("JUnit lists what did not run", () => {
  test("regression: a broken policy kept its policy tests (skipped, not vanished) and its gates (skipped)", async () => {
    const dir = policies("broken-with-gates", { file: "logs.duty", change: (s) => s + "\ngrant auditor read_logz\n" });
    const r = await check([dir, "--replay", auditLog, "--assignments", join(work, "people.toml")], "junit");
    expect(r.code).toBe(EXIT.policyErrors);
    const junit = readJunit(r.stdout);
    expect(junit.cases.filter((c) => c.classname.endsWith(".test.toml")).map((c) => c.outcome)).toEqual(Array(SHIPPED_TESTS).fill("skipped"));
    expect(junit.cases.filter((c) => c.suite === "gateway check").map((c) => `${c.name}: ${c.outcome}`)).toEqual(["parse and type-check: failure", "role assignments: skipped", "replay: skipped"]);
    expect(junit.cases.find((c) => c.name === "parse and type-check")!.body).toContain("read_logz");
  });
});

describe("GitHub annotations point at a file and line, escaped as the runner reads them", () => {
  test("regression: a file named `we,ird:name.duty` stays one property", async () => {
    const dir = policies("weird");
    writeFileSync(join(dir, "we,ird:name.duty"), "grant auditor read_logz\n");
    const r = await check([dir], "github");
    expect(r.code).toBe(EXIT.policyErrors);
    const annotation = r.stdout.split("\n").map(parseGithubCommand).find((c) => c?.message.includes("read_logz"));
    expect(annotation?.properties.file).toBe(`${dir}/we,ird:name.duty`);
    expect(annotation?.properties.line).toBe("1");
    expect(annotation?.properties.title).toBe("E_UNKNOWN_DUTY");
  });

  test("a decision flip points at the duty (no rule decided the denial); a role assignment at its `exclusive`", async () => {
    const flips = await check(scenarios[3]!.argv(), "github");
    const flip = flips.stdout.split("\n").map(parseGithubCommand).find((c) => c?.properties.title === "decision flip");
    expect(flip).toMatchObject({ command: "error", properties: { file: `${work}/flips/changes.duty`, line: "5" } });
    expect(flip!.message).toContain("allow→deny approve_change (reviewer): 1 request");
    const assigned = await check(scenarios[5]!.argv(), "github");
    const sod = assigned.stdout.split("\n").map(parseGithubCommand).find((c) => c?.properties.title === "separation of duties");
    expect(sod).toMatchObject({ command: "error", properties: { file: `${work}/assigned/base.duty`, line: "15" } });
    expect(sod!.message).toContain("eve holds developer and deployer");
  });

  test("a flip decided by a rule points at that rule", async () => {
    const dir = policies("forbidden", { file: "changes.duty", change: (s) => s + "\nforbid approve_change when principal.mfa == false\n" }, { tests: false });
    const r = await check([dir, "--replay", auditLog], "github");
    expect(r.code).toBe(EXIT.decisionFlips);
    const flip = r.stdout.split("\n").map(parseGithubCommand).find((c) => c?.properties.title === "decision flip");
    const line = readFileSync(join(dir, "changes.duty"), "utf8").split("\n").indexOf("forbid approve_change when principal.mfa == false") + 1;
    expect(flip?.properties).toMatchObject({ file: `${dir}/changes.duty`, line: String(line) });
  });
});
