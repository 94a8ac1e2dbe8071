// Rule coverage: which side of each rule the policy tests exercised, read from the decisions and
// the rules the reference interpreter considered — one small policy, each side pinned.
import { describe, expect, test } from "bun:test";
import { compilePolicy, loadPolicy, policyCoverage, runPolicyTests } from "./mod.ts";

const POLICY = `principal { sub: string, roles: set<role>, mfa: bool }
role dev, rev, ops
upstream app
duty submit  POST /c/:id/submit  -> app
duty approve POST /c/:id/approve -> app
duty read    GET  /c             -> app
exclusive dev, ops
grant dev submit
grant rev approve when principal.mfa
grant dev, rev read
grant ops read
@id("freeze")
forbid approve when request.header["x-freeze"] == "1"
separate submit, approve by id
`;
const NOW = Date.UTC(2026, 0, 1);

function coverage(tests: string) {
  const loaded = loadPolicy([{ path: "p.duty", text: POLICY }], { now: NOW });
  if (!loaded.policy) throw new Error("policy does not load");
  const results = runPolicyTests(compilePolicy(loaded.policy), [{ path: "p.test.toml", text: tests }], { now: NOW });
  expect(results.filter((r) => !r.passed)).toEqual([]);
  const c = policyCoverage(loaded.policy, results);
  return { ...c, sides: Object.fromEntries(c.rules.map((r) => [`${r.kind} ${r.at}`, `${r.allow ? "A" : "-"}${r.deny ? "D" : "-"}`])) };
}

const PRINCIPALS = `[principals.dan]\nsub = "dan"\nroles = ["dev"]\nmfa = false\n[principals.rita]\nsub = "rita"\nroles = ["rev"]\nmfa = true\n[principals.ron]\nsub = "ron"\nroles = ["rev"]\nmfa = false\n[principals.eve]\nsub = "eve"\nroles = ["dev", "ops"]\nmfa = true\n`;
const t = (name: string, principal: string, request: string, expect: string, extra = "") => `[[test]]\nname = "${name}"\nprincipal = "${principal}"\nrequest = "${request}"\nexpect = "${expect}"\n${extra}`;

describe("rule coverage", () => {
  test("no tests: nothing exercised, 0%", () => {
    const c = coverage(PRINCIPALS + t("read", "dan", "GET /nowhere", "deny"));
    expect(c.hit).toBe(0);
    expect(c.total).toBe(2 * 7);
    expect(c.percent).toBe(0);
  });

  test("each side of each kind of rule, from the tests that exercise it", () => {
    const c = coverage(PRINCIPALS + [
      t("dev submits", "dan", "POST /c/1/submit", "allow"),                                   // grant submit: A; separate: A; exclusive: A
      t("rev approves", "rita", "POST /c/1/approve", "allow"),                               // grant approve: A; forbid: A
      t("rev without mfa", "ron", "POST /c/1/approve", "deny"),                              // grant approve: D
      t("frozen", "rita", "POST /c/2/approve", "deny", 'headers = { "x-freeze" = "1" }\n'),  // forbid: D
      t("dev and ops", "eve", "GET /c", "deny"),                                             // exclusive: D
      t("history", "rita", "POST /c/3/approve", "deny", 'history = [{ duty = "submit", sub = "rita" }]\n'), // separate: D
    ].join("\n"));
    expect(c.sides).toEqual({
      "exclusive p.duty:7:1": "AD",
      "grant p.duty:8:1": "A-",    // no test saw `grant dev submit` refuse anyone
      "grant p.duty:9:1": "AD",
      "grant p.duty:10:1": "--",   // `read` only asked by eve, whom the exclusive set stops first
      "grant p.duty:11:1": "--",
      "forbid p.duty:13:1": "AD",
      "separate p.duty:14:1": "AD",
    });
    expect(c.hit).toBe(9);
    // A rule with an @id is named by it; its place stays in `at`.
    expect(c.rules.find((r) => r.kind === "forbid")).toMatchObject({ rule: "forbid:freeze", at: "p.duty:13:1" });
    expect(Math.round(c.percent)).toBe(64);
  });

  test("a grant's deny side: asked for its duty by someone it does not cover", () => {
    const c = coverage(PRINCIPALS + t("rev may not submit", "rita", "POST /c/1/submit", "deny"));
    expect(c.sides["grant p.duty:8:1"]).toBe("-D");
  });

  test("a grant that applied before the history denied still counts as allowing", () => {
    const c = coverage(PRINCIPALS + t("history", "rita", "POST /c/3/approve", "deny", 'history = [{ duty = "submit", sub = "rita" }]\n'));
    expect(c.sides["grant p.duty:9:1"]).toBe("A-");
  });
});
