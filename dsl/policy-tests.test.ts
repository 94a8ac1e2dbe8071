// Policy tests (`*.test.toml`) that could not fail are refused, each at the line that is wrong:
// a misspelled duty in `history`, a second test of the same name, a TOML date-time for a `time`
// attribute (refused as "got object" before; now accepted, and a date-time without an offset is
// refused by name).
import { describe, expect, test } from "bun:test";
import { compilePolicy } from "./compile.ts";
import { loadPolicy } from "./load.ts";
import { listPolicyTests, runPolicyTests, type PolicyTestResult } from "./policy-tests.ts";

const POLICY = `
principal {
  sub: string
  roles: set<role>
  since: time
}
role developer, reviewer
upstream changes
duty submit_change  POST /changes/:change/submit  -> changes
duty approve_change POST /changes/:change/approve -> changes
grant developer submit_change
grant reviewer approve_change when principal.since < 2026-06-01
separate submit_change, approve_change by change
`;

const loaded = loadPolicy([{ path: "p.duty", text: POLICY }]);
if (!loaded.policy) throw new Error(loaded.diagnostics.map((d) => d.message).join("; "));
const compiled = compilePolicy(loaded.policy);
const NOW = Date.UTC(2026, 8, 1);

function run(text: string): PolicyTestResult[] {
  return runPolicyTests(compiled, [{ path: "t.test.toml", text }], { now: NOW });
}

/** `line: name: passed` or `line: name: failure`, one per result. */
function outcomes(text: string): string[] {
  return run(text).map((r) => `${r.line}: ${r.name}: ${r.passed ? "passed" : r.failure}`);
}

const PRINCIPALS = `[principals.rita]
sub = "rita"
roles = ["reviewer"]
since = 2026-01-15T09:00:00Z
`;

describe("regression: a misspelled duty in `history` was accepted, so the test passed without testing anything", () => {
  test("the misspelled duty fails the test at its `history` line, with the duty it likely meant", () => {
    expect(outcomes(`${PRINCIPALS}
[[test]]
name = "the submitter may not approve"
principal = "rita"
request = "POST /changes/7/approve"
history = [{ duty = "submit_chnage", sub = "rita" }]
expect = "deny"
`)).toEqual(["10: the submitter may not approve: `history` entry 1: unknown duty `submit_chnage` (did you mean `submit_change`?)"]);
  });

  test("spelled right, the same test runs and passes (the history denies)", () => {
    expect(outcomes(`${PRINCIPALS}
[[test]]
name = "the submitter may not approve"
principal = "rita"
request = "POST /changes/7/approve"
history = [{ duty = "submit_change", sub = "rita" }]
expect = "deny"
code = "DENY_SOD_HISTORY"
`)).toEqual(["7: the submitter may not approve: passed"]);
  });

  const malformed: Array<{ history: string; says: string }> = [
    { history: '[{ duty = "submit_change" }]', says: "`history` entry 1: missing `sub`" },
    { history: '[{ duty = "submit_change", sub = "rita", who = "x" }]', says: "`history` entry 1: unknown key `who` (duty, sub, key)" },
    { history: '[{ sub = "rita" }]', says: "`history` entry 1: missing `duty`" },
    { history: '[{ duty = "submit_change", sub = "rita", key = 7 }]', says: "`history` entry 1: `key` must be a string, or a list of strings for a key of several params" },
    { history: '"submit_change"', says: '`history` must be a list of `{ duty = "…", sub = "…" }` (optional `key`)' },
  ];
  test.each(malformed)("history = $history → $says", ({ history, says }) => {
    expect(outcomes(`[[test]]\nname = "h"\nprincipal = { sub = "rita", roles = ["reviewer"], since = 2026-01-15T09:00:00Z }\nrequest = "POST /changes/7/approve"\nhistory = ${history}\nexpect = "deny"\n`)).toEqual([`5: h: ${says}`]);
  });
});

describe("regression: duplicate test names were reported at the first one's line", () => {
  const text = `# "same name" also appears in this comment, before either test
[[test]]
name = "same name"
principal = { sub = "dan", roles = ["developer"], since = 2026-01-15T09:00:00Z }
request = "POST /changes/1/submit"
expect = "allow"

[[test]]
name = "same name"
principal = { sub = "dan", roles = ["developer"], since = 2026-01-15T09:00:00Z }
request = "POST /changes/1/submit"
expect = "deny"
`;

  test("the first runs at its own line; the second is an error at its own line naming the first", () => {
    expect(outcomes(text)).toEqual([
      "3: same name: passed",
      "9: same name: duplicate test name `same name`: the first is at line 3 (a report could not tell them apart)",
    ]);
  });

  test("listed without running (a policy that did not compile), each keeps its own line", () => {
    expect(listPolicyTests([{ path: "t.test.toml", text }]).map((t) => `${t.line} ${t.name}`)).toEqual(["3 same name", "9 same name"]);
  });
});

describe("regression: a TOML date-time was refused for `time` attributes (\"got object\")", () => {
  const test1 = (since: string, time = "") => `[principals.rita]
sub = "rita"
roles = ["reviewer"]
since = ${since}

[[test]]
name = "reviewers from before June approve"
principal = "rita"
request = "POST /changes/7/approve"
${time}expect = "allow"
`;

  test.each([
    ["an offset date-time", "2026-01-15T09:00:00Z"],
    ["a date-time with a numeric offset", "2026-01-15T09:00:00+02:00"],
    ["a date (midnight UTC)", "2026-01-15"],
    ["an RFC 3339 string", '"2026-01-15T09:00:00Z"'],
  ])("%s is accepted and decides", (_, since) => {
    expect(outcomes(test1(since))).toEqual(["7: reviewers from before June approve: passed"]);
  });

  test("a later date-time decides the other way (the value is read, not just accepted)", () => {
    expect(run(test1("2026-07-01T00:00:00Z"))[0]!.failure).toStartWith("expected allow, got deny");
  });

  test("a date-time without an offset is refused at the attribute's line, saying what to add", () => {
    expect(outcomes(test1("2026-01-15T09:00:00"))).toEqual(["4: reviewers from before June approve: principal `rita`: principal attribute `since`: expected time, got `2026-01-15T09:00:00.000` without an offset (add `Z` for UTC, or `+02:00`)"]);
  });

  test("the test's own `time`: a TOML date-time decides; one without an offset is refused at its line", () => {
    const at = (time: string) => outcomes(test1("2026-01-15T09:00:00Z", `time = ${time}\n`));
    expect(at("2026-01-20T10:00:00Z")).toEqual(["7: reviewers from before June approve: passed"]);
    expect(at("10:00:00")).toEqual(["10: reviewers from before June approve: `time`: expected time, got `10:00:00.000` without an offset (add `Z` for UTC, or `+02:00`)"]);
  });
});

describe("history keys of a separation by several params", () => {
  const composite = loadPolicy([{ path: "c.duty", text: `principal { sub: string roles: set<role> }
role clerk
upstream billing
duty issue_invoice   POST /t/:tenant/i/:invoice/issue   -> billing
duty approve_invoice POST /t/:tenant/i/:invoice/approve -> billing
grant clerk issue_invoice
grant clerk approve_invoice
separate issue_invoice, approve_invoice by tenant, invoice
` }]);
  const c = compilePolicy(composite.policy!);
  const runC = (text: string) => runPolicyTests(c, [{ path: "t.test.toml", text }], { now: NOW }).map((r) => r.passed ? "passed" : r.failure);
  const test1 = (key: string, expect: string) => `[principals.carol]
sub = "carol"
roles = ["clerk"]

[[test]]
name = "t"
principal = "carol"
request = "POST /t/acme/i/INV-1/approve"
history = [{ duty = "issue_invoice", sub = "carol", key = ${key} }]
expect = "${expect}"
`;

  test("a list of values is the composite key: the same tenant's invoice conflicts, another tenant's does not", () => {
    expect(runC(test1('["acme", "INV-1"]', "deny"))).toEqual(["passed"]);
    expect(runC(test1('["globex", "INV-1"]', "allow"))).toEqual(["passed"]);
    expect(runC(test1('["acme", "INV-1"]', "allow"))[0]).toContain("expected allow");
  });

  test("a key that is neither a string nor a list of strings is refused", () => {
    expect(runC(test1("[1, 2]", "deny"))[0]).toContain("`key` must be a string, or a list of strings");
  });
});

describe("a test's `rule` names a rule by its @id, exactly", () => {
  const withIds = loadPolicy([{ path: "i.duty", text: `principal { sub: string roles: set<role> }
role dev, rev
upstream u
duty submit  POST /c/:c/submit  -> u
duty approve POST /c/:c/approve -> u
@id("dev-submits") grant dev submit
@id("dev-submits-2") grant rev submit
grant rev approve
` }]);
  const c = compilePolicy(withIds.policy!);
  const runI = (rule: string, request = "POST /c/1/submit") => runPolicyTests(c, [{ path: "t.test.toml", text: `[principals.d]
sub = "d"
roles = ["dev"]

[principals.r]
sub = "r"
roles = ["rev"]

[[test]]
name = "t"
principal = "${request.includes("approve") ? "r" : "d"}"
request = "${request}"
expect = "allow"
rule = "${rule}"
` }], { now: NOW }).map((r) => (r.passed ? "passed" : `${r.line}: ${r.failure}`));

  test("the bare id and the full id pass; a prefix of another id does not", () => {
    expect(runI("dev-submits")).toEqual(["passed"]);
    expect(runI("grant:dev-submits")).toEqual(["passed"]);
    expect(runI("dev-submits-2")[0]).toContain("expected rule dev-submits-2, decided by grant:dev-submits");
    expect(runI("dev")[0]).toContain("`rule` names no rule of the policy: `dev`");
  });

  test("regression: inserting a line above a rule moved its id; an @id stays, the location moves", () => {
    const above = loadPolicy([{ path: "i.duty", text: "# a new comment line\n" + withIds.policy!.files.map(() => "").join("") + `principal { sub: string roles: set<role> }
role dev, rev
upstream u
duty submit  POST /c/:c/submit  -> u
duty approve POST /c/:c/approve -> u
@id("dev-submits") grant dev submit
@id("dev-submits-2") grant rev submit
grant rev approve
` }]);
    const moved = compilePolicy(above.policy!);
    expect(moved.policy.grants.map((g) => g.id)).toEqual(["grant:dev-submits", "grant:dev-submits-2", "grant:i.duty:9:1"]);
    expect(c.policy.grants.map((g) => g.id)).toEqual(["grant:dev-submits", "grant:dev-submits-2", "grant:i.duty:8:1"]);
  });

  test("a rule without @id is still named by part of its location", () => {
    expect(runI("i.duty:8:", "POST /c/1/approve")).toEqual(["passed"]);
  });

  test("a misspelled id fails at the `rule` line, with the id it likely meant", () => {
    expect(runI("dev-submit")).toEqual(["14: `rule` names no rule of the policy: `dev-submit` (did you mean `dev-submits`?)"]);
  });
});
