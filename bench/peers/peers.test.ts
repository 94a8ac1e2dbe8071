// The peer benchmark is only worth its numbers if every engine decides the same scenario the same
// way: these tests pin the translations on hand-picked cases (each rule kind, for every engine),
// the agreement check itself (it must catch a wrong engine), and the scenario's shape.
import { beforeAll, describe, expect, test } from "bun:test";
import { buildBench, checkAgreement, loadScenarioPolicy, type Bench } from "./engines.ts";
import { baseScenario, ruleCount, scaledScenario, scenarioPrincipals, scenarioRequests, type RequestTuple, type ScenarioPrincipal } from "./scenario.ts";
import { toHandwrittenSource } from "./translate.ts";

const people: ScenarioPrincipal[] = [
  { sub: "rita", roles: ["reviewer"], mfa: false, team: "core", suspended: false },
  { sub: "dan", roles: ["deployer"], mfa: false, team: "infra", suspended: false },
  { sub: "dora", roles: ["deployer"], mfa: true, team: "infra", suspended: false },
  { sub: "sam", roles: ["sre", "auditor"], mfa: true, team: "infra", suspended: true },
  { sub: "sally", roles: ["security_admin"], mfa: false, team: "core", suspended: false },
  { sub: "sasha", roles: ["security_admin"], mfa: true, team: "core", suspended: false },
  { sub: "ada", roles: ["auditor"], mfa: false, team: "data", suspended: false },
  { sub: "oscar", roles: ["sre"], mfa: false, team: "infra", suspended: false },
];
const who = (sub: string) => people.findIndex((p) => p.sub === sub);

// [case, principal, method, path, headers, expected allow]
const CASES: Array<[string, string, string, string, Record<string, string>, boolean]> = [
  ["checker approves another's change", "rita", "POST", "/changes/42/approve", { "x-change-author": "dan" }, true],
  ["checker cannot approve their own change", "rita", "POST", "/changes/42/approve", { "x-change-author": "rita" }, false],
  ["absent author header reads as empty: not the caller", "rita", "POST", "/changes/42/approve", {}, true],
  ["deploy to prod without MFA", "dan", "POST", "/changes/7/deploy", { "x-env": "prod" }, false],
  ["deploy to prod with MFA", "dora", "POST", "/changes/7/deploy", { "x-env": "prod" }, true],
  ["deploy to staging without MFA", "dan", "POST", "/changes/7/deploy", { "x-env": "staging" }, true],
  ["change freeze stops a deploy", "dora", "POST", "/changes/7/deploy", { "x-env": "prod", "x-freeze": "1" }, false],
  ["SRE reads logs at any depth", "oscar", "GET", "/logs/api/2026/06/01", {}, true],
  ["auditor reads logs", "ada", "GET", "/logs/api", {}, true],
  ["suspended principal is forbidden everywhere", "sam", "GET", "/logs/api", {}, false],
  ["admin route needs MFA", "sally", "GET", "/admin/security/policy", {}, false],
  ["admin route with security_admin and MFA", "sasha", "PUT", "/admin/security/policy", {}, true],
  ["auditor lists users without MFA", "ada", "GET", "/admin/users", {}, true],
  ["role without a grant", "ada", "POST", "/changes/42/approve", {}, false],
  ["unknown route", "sasha", "GET", "/nowhere/1", {}, false],
  ["known path, wrong method", "oscar", "DELETE", "/logs/api", {}, false],
  ["literal beats param: /audit/export is its own duty", "ada", "GET", "/audit/export", {}, true],
  ["POST /audit/export needs MFA", "ada", "POST", "/audit/export", {}, false],
];

describe("every engine decides the hand-picked cases as written", () => {
  const tuples: RequestTuple[] = CASES.map(([, sub, method, path, headers]) => ({ principal: who(sub), method, path, headers }));
  let bench: Bench;
  beforeAll(async () => {
    bench = await buildBench(baseScenario(), people, tuples);
  });
  test("the scenario translates and validates for every engine", () => {
    expect(bench.engines.map((e) => e.name)).toEqual(["dutygate compiled", "dutygate interpreter", "hand-written JS", "Cedar (cedar-wasm)", "Cedar, sliced per duty", "Casbin keyMatch2", "Casbin routed"]);
  });
  test.each(CASES.map((c, i) => [c[0], i, c[5]] as const))("%s", (_name, i, expected) => {
    const got = Object.fromEntries(bench.engines.map((e) => [e.name, e.decide(i)]));
    expect(got).toEqual(Object.fromEntries(bench.engines.map((e) => [e.name, expected])));
  });
  test("dutygate names the deciding rule kind", () => {
    expect(bench.dutygateDecision(1).code).toBe("DENY_NO_GRANT");
    expect(bench.dutygateDecision(6).code).toBe("DENY_FORBID");
    expect(bench.dutygateDecision(9).code).toBe("DENY_FORBID");
    expect(bench.dutygateDecision(14).code).toBe("DENY_NO_ROUTE");
    expect(bench.dutygateDecision(0).code).toBe("ALLOW");
  });
});

describe("the agreement check", () => {
  test("finds no disagreement on the first 400 generated tuples of the base variant", async () => {
    const s = baseScenario();
    const principals = scenarioPrincipals(s);
    const tuples = scenarioRequests(s, principals, 400);
    const bench = await buildBench(s, principals, tuples);
    const { disagreements, allowed } = checkAgreement(bench, tuples);
    expect(disagreements).toEqual([]);
    // Both outcomes occur, so agreement is not trivially "deny everything".
    expect(allowed).toBeGreaterThan(40);
    expect(allowed).toBeLessThan(360);
  });

  test("reports every tuple a wrong engine decides differently", async () => {
    const s = baseScenario();
    const principals = scenarioPrincipals(s);
    const tuples = scenarioRequests(s, principals, 50);
    const bench = await buildBench(s, principals, tuples);
    const compiled = bench.engines[0]!;
    const wrong: Bench = { ...bench, engines: [...bench.engines, { name: "flipped", routing: "-", decide: (i) => !compiled.decide(i) }] };
    const { disagreements } = checkAgreement(wrong, tuples);
    expect(disagreements.length).toBe(50);
    expect(disagreements.every((d) => d.engine === "flipped" && d.got !== d.expected)).toBe(true);
    expect(disagreements[0]!.tuple).toEqual(tuples[0]!);
  });
});

describe("the scenario", () => {
  test("base: ~40 duties, 10 roles; scaled: ~1,000 rules; 500 principals with 1-3 roles; 10,000 tuples", () => {
    const base = baseScenario();
    const scaled = scaledScenario();
    expect(base.duties.length).toBeGreaterThanOrEqual(40);
    expect(base.roles.length).toBe(10);
    expect(ruleCount(scaled)).toBeGreaterThanOrEqual(900);
    expect(ruleCount(scaled)).toBeLessThanOrEqual(1200);
    const principals = scenarioPrincipals(base);
    expect(principals.length).toBe(500);
    expect(principals.every((p) => p.roles.length >= 1 && p.roles.length <= 3)).toBe(true);
    expect(scenarioRequests(base, principals).length).toBe(10_000);
  });

  test("the same seed gives the same tuples", () => {
    const s = baseScenario();
    const p = scenarioPrincipals(s);
    expect(scenarioRequests(s, p, 200)).toEqual(scenarioRequests(s, p, 200));
    expect(scenarioRequests(s, p, 200, 99)).not.toEqual(scenarioRequests(s, p, 200));
  });

  test("both variants load as .duty policies without errors", () => {
    expect(loadScenarioPolicy(baseScenario()).duties.length).toBe(baseScenario().duties.length);
    expect(loadScenarioPolicy(scaledScenario()).grants.length).toBe(scaledScenario().grants.length);
  });

  test("the hand-written evaluator routes by method, then by segment", () => {
    const src = toHandwrittenSource(baseScenario());
    expect(src).toContain(`switch (method)`);
    expect(src).toContain(`case "approve": {`);
    expect(src).toContain(`if (r.has("reviewer") && p.sub !== (h["x-change-author"] ?? "")) return true;`);
  });
});
