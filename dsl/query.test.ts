// Partial evaluation against brute force: on every policy of the conformance corpus, for every
// principal its cases use and every request they make, the condition `queryDuty` leaves open —
// knowing the principal, and knowing nobody — evaluates on the request to the reference
// interpreter's decision. And the duties `dutiesOf` leaves out are the ones never allowed.
import { describe, expect, test } from "bun:test";
import { loadCorpus } from "../test/conformance/corpus.ts";
import { evaluate } from "./evaluate.ts";
import { dutiesOf, partialEvaluate, queryDuty } from "./query.ts";
import { exprText } from "./render-expr.ts";
import { interpretDecision, interpretRoute, loadPolicy } from "./mod.ts";
import type { Principal } from "./mod.ts";

const files = loadCorpus();

describe("partial evaluation agrees with the reference interpreter on the corpus", () => {
  for (const f of files) {
    test(f.file, () => {
      let checked = 0;
      for (const [name, { policy }] of f.policies) {
        const cases = f.cases.filter((c) => c.policy === name);
        const principals = [...new Set(cases.map((c) => c.principal))];
        const open = new Map(policy.duties.map((d) => [d.name, queryDuty(policy, d, null)]));
        for (const principal of principals) {
          const known = new Map(policy.duties.map((d) => [d.name, queryDuty(policy, d, principal)]));
          const listed = new Set(dutiesOf(policy, principal).map((q) => q.duty.name));
          for (const c of cases) {
            const route = interpretRoute(policy, c.channel, c.request.method, c.request.path);
            if (!route) continue;
            const env = { principal, request: c.request, params: route.params };
            const want = interpretDecision(policy, c.channel, principal, c.request).allow;
            const where = { file: f.file, policy: name, sub: principal.sub, request: `${c.request.method} ${c.request.path}`, duty: route.duty };
            const q = known.get(route.duty)!;
            // Knowing nobody: the same condition over the principal too.
            const nobody = open.get(route.duty)!;
            const got = { knowingPrincipal: evaluate(q.allowed, env) === true, knowingNobody: evaluate(nobody.allowed, env) === true, listed: listed.has(route.duty) || !want };
            if (got.knowingPrincipal !== want || got.knowingNobody !== want || !got.listed) {
              expect({ ...where, ...got, residual: exprText(q.allowed) }).toEqual({ ...where, knowingPrincipal: want, knowingNobody: want, listed: true, residual: exprText(q.allowed) });
            }
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(0);
      // operators.toml: every duty queried for every principal, about a second on a quiet machine.
    }, 30_000);
  }
});

const POLICY = `principal { sub: string, roles: set<role>, mfa: bool, team: string }
role dev, ops, lead
upstream app
duty deploy POST /d/:id -> app
duty read   GET  /r     -> app
exclusive dev, ops
grant ops deploy when principal.mfa and request.header["x-env"] == "prod"
grant lead deploy when principal.team == "core" until 2027-12-31
grant dev, ops read
forbid deploy when request.param.id starts_with "frozen-"
`;
const policy = loadPolicy([{ path: "q.duty", text: POLICY }], { now: Date.UTC(2026, 0, 1) }).policy!;
const who = (roles: string[], attrs: Record<string, unknown> = {}): Principal => ({ sub: "x", roles: new Set(roles), mfa: true, team: "core", ...attrs });

describe("what a principal may do", () => {
  test("known attributes fold away; the request's part stays open", () => {
    const [read, deploy] = [policy.duties[1]!, policy.duties[0]!];
    expect(exprText(queryDuty(policy, read, who(["ops"])).allowed)).toBe("true");
    expect(exprText(queryDuty(policy, deploy, who(["ops"])).allowed)).toBe('not request.param.id starts_with "frozen-" and request.header["x-env"] == "prod"');
    expect(exprText(queryDuty(policy, deploy, who(["lead"])).allowed)).toBe('not request.param.id starts_with "frozen-" and request.time <= 2027-12-31T23:59:59.999Z');
  });

  test("a condition the principal fails, or an exclusive set it breaks, leaves the duty out", () => {
    expect(dutiesOf(policy, who(["ops"], { mfa: false })).map((q) => q.duty.name)).toEqual(["read"]);
    expect(dutiesOf(policy, who(["dev", "ops"]))).toEqual([]);
  });
});

describe("who may do a duty", () => {
  test("each grant's roles and attribute conditions; the denials that may apply", () => {
    const q = queryDuty(policy, policy.duties[0]!, null);
    expect(q.grants.map((g) => exprText(g.condition))).toEqual([
      'ops in principal.roles and principal.mfa and request.header["x-env"] == "prod"',
      'lead in principal.roles and request.time <= 2027-12-31T23:59:59.999Z and principal.team == "core"',
    ]);
    expect(q.denials.map((d) => `${d.kind} ${exprText(d.condition)}`)).toEqual([
      "exclusive dev in principal.roles and ops in principal.roles",
      'forbid request.param.id starts_with "frozen-"',
    ]);
  });

  test("partialEvaluate computes what reads nothing unknown", () => {
    const g = policy.grants[0]!.when!;
    expect(exprText(partialEvaluate(g, who(["ops"], { mfa: false })))).toBe("false");
    expect(exprText(partialEvaluate(g, null))).toBe(exprText(g));
  });
});
