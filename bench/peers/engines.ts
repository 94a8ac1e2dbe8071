// The engines of the peer benchmark, each set up from the same Scenario and exposed the same way:
// `decide(i)` decides request tuple i (raw method + path + headers, and a principal) and returns
// allow as a boolean. Everything an engine would receive from the gateway (the principal object,
// the request's headers or context) is built once beforehand for every engine alike; routing and
// deciding are what is timed.
//
// Routing, per engine:
// - dutygate compiled: its own compiled router (a segment trie per method) inside `compiled.decide`;
// - dutygate interpreter: its naive reference matcher (scans every duty);
// - hand-written: its own method switch and per-segment switch;
// - Cedar: dutygate's compiled router (`compiled.match`, the same segment trie) resolves the duty
//   first (its time is counted), and Cedar decides `Action::"<duty>"`: Cedar has no route patterns;
// - Casbin keyMatch2: Casbin routes itself, with keyMatch2(r.obj, p.obj) and the method in its matcher;
// - Casbin routed: like Cedar, the duty is resolved first and Casbin matches `r.duty == p.duty`.
import { newEnforcer, newModelFromString, type Enforcer } from "casbin";
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { coercePrincipal, compilePolicy, interpretDecision, loadPolicy } from "../../dsl/mod.ts";
import type { CheckedPolicy, CompiledPolicy, Decision, PolicyRequest, Principal } from "../../dsl/mod.ts";
import { parseIp } from "../../dsl/mod.ts";
import type { RequestTuple, Scenario, ScenarioPrincipal } from "./scenario.ts";
import {
  CASBIN_MODEL_KEYMATCH, CASBIN_MODEL_ROUTED, compileHandwritten, toCasbinKeyMatchPolicy, toCasbinRoleLinks, toCasbinRoutedPolicy,
  toCedarEntities, toCedarPolicies, toCedarSchema, toDutyPolicy,
} from "./translate.ts";

/** One engine, ready to decide the scenario's tuples by index. */
export interface Engine {
  name: string;
  /** How a request reaches the rules (for the table's notes). */
  routing: string;
  decide(i: number): boolean;
}

/** Everything built from one scenario: the dutygate policy and every engine. */
export interface Bench {
  scenario: Scenario;
  policy: CheckedPolicy;
  compiled: CompiledPolicy;
  /** dutygate's full Decision for tuple i (compiled and interpreter), for the agreement check. */
  dutygateDecision(i: number): Decision;
  interpreterDecision(i: number): Decision;
  engines: Engine[];
  /** Rule and line counts of each translation. */
  sizes: Record<string, number>;
}

const REQUEST_TIME = Date.UTC(2026, 5, 1, 12);
const CLIENT_IP = parseIp("10.1.2.3")!;

let cedarSetIds = 0;

/** Loads the `.duty` translation of a scenario, failing loudly on any error diagnostic. */
export function loadScenarioPolicy(s: Scenario): CheckedPolicy {
  const { policy, diagnostics } = loadPolicy([{ path: `${s.name}.duty`, text: toDutyPolicy(s) }], { now: REQUEST_TIME });
  if (!policy) throw new Error(`${s.name}.duty does not load: ${diagnostics.filter((d) => d.severity === "error").map((d) => `${d.code} ${d.message}`).join("; ")}`);
  return policy;
}

/** Sets up every engine for a scenario, its principals and its request tuples. */
export async function buildBench(s: Scenario, principals: readonly ScenarioPrincipal[], tuples: readonly RequestTuple[]): Promise<Bench> {
  const policy = loadScenarioPolicy(s);
  const compiled = compilePolicy(policy);
  const typed: Principal[] = principals.map((p) => {
    const r = coercePrincipal(policy.schema, { ...p });
    if (!r.ok) throw new Error(r.message);
    return r.principal;
  });
  const requests: PolicyRequest[] = tuples.map((t) => ({ method: t.method, path: t.path, ip: CLIENT_IP, time: REQUEST_TIME, headers: t.headers, query: {} }));
  const dutygateDecision = (i: number) => compiled.decide("operational", typed[tuples[i]!.principal]!, requests[i]!);
  const interpreterDecision = (i: number) => interpretDecision(policy, "operational", typed[tuples[i]!.principal]!, requests[i]!);

  // Hand-written: the same principal objects (sub, role Set, attributes) and the raw header record.
  const handwritten = compileHandwritten(s);

  // Cedar: policies validated against the schema once, then preparsed; one entity slice per principal.
  const cedarSchema = toCedarSchema(s);
  const cedarPolicies = toCedarPolicies(s);
  const validation = cedar.validate({ schema: cedarSchema, policies: { staticPolicies: cedarPolicies }, validationSettings: { mode: "strict" } });
  if (validation.type !== "success") throw new Error(`cedar: ${validation.errors.map((e) => e.message).join("; ")}`);
  if (validation.validationErrors.length) throw new Error(`cedar validation: ${validation.validationErrors.map((e) => `${e.policyId}: ${e.error.message}`).join("; ")}`);
  const setId = `peers-${s.name}-${cedarSetIds++}`;
  const parsed = cedar.preparsePolicySet(setId, { staticPolicies: cedarPolicies });
  if (parsed.type !== "success") throw new Error(`cedar: ${parsed.errors.map((e) => e.message).join("; ")}`);
  // The per-duty slice: one preparsed set per action holding only the policies that can apply to it
  // (those naming the action, and those for every action), as Cedar users slice large stores.
  const sliceIds = new Map<string, string>();
  for (const d of s.duties) {
    const id = `${setId}:${d.name}`;
    const sliced = cedar.preparsePolicySet(id, { staticPolicies: toCedarPolicies(s, d.name) });
    if (sliced.type !== "success") throw new Error(`cedar: ${sliced.errors.map((e) => e.message).join("; ")}`);
    sliceIds.set(d.name, id);
  }
  const cedarEntities = principals.map(toCedarEntities);
  const cedarPrincipals = principals.map((p) => ({ type: "User", id: p.sub }));
  const cedarContexts = tuples.map((t) => ({ author: t.headers["x-change-author"] ?? "", env: t.headers["x-env"] ?? "", freeze: t.headers["x-freeze"] ?? "" }));
  const cedarResource = { type: "Gateway", id: "edge" };
  const cedarActions = new Map(s.duties.map((d) => [d.name, { type: "Action", id: d.name }]));

  // Casbin: role links and policy lines added through its API (conditions hold no CSV quoting).
  const keyMatch = await newEnforcer(newModelFromString(CASBIN_MODEL_KEYMATCH));
  const routed = await newEnforcer(newModelFromString(CASBIN_MODEL_ROUTED));
  const links = toCasbinRoleLinks(principals);
  const keyMatchLines = toCasbinKeyMatchPolicy(s);
  const routedLines = toCasbinRoutedPolicy(s);
  await addAll(keyMatch, keyMatchLines, links);
  await addAll(routed, routedLines, links);
  const casbinSubjects = principals.map((p) => ({ id: p.sub, mfa: p.mfa, team: p.team, suspended: p.suspended }));
  const casbinContexts = tuples.map((t) => ({ author: t.headers["x-change-author"] ?? "", env: t.headers["x-env"] ?? "", freeze: t.headers["x-freeze"] ?? "" }));

  const engines: Engine[] = [
    { name: "dutygate compiled", routing: "its compiled segment trie", decide: (i) => dutygateDecision(i).allow },
    { name: "dutygate interpreter", routing: "naive scan of every duty", decide: (i) => interpreterDecision(i).allow },
    { name: "hand-written JS", routing: "method switch + per-segment switch", decide: (i) => { const t = tuples[i]!; return handwritten(typed[t.principal]! as never, t.method, t.path, t.headers); } },
    {
      name: "Cedar (cedar-wasm)", routing: "dutygate's router resolves the action first",
      decide: (i) => {
        const t = tuples[i]!;
        const m = compiled.match("operational", t.method, t.path);
        if (!m) return false;
        const answer = cedar.statefulIsAuthorized({ principal: cedarPrincipals[t.principal]!, action: cedarActions.get(m.duty)!, resource: cedarResource, context: cedarContexts[i]!, preparsedPolicySetId: setId, entities: cedarEntities[t.principal]! });
        if (answer.type !== "success") throw new Error(`cedar: ${answer.errors.map((e) => e.message).join("; ")}`);
        return answer.response.decision === "allow";
      },
    },
    {
      name: "Cedar, sliced per duty", routing: "dutygate's router resolves the action and its policy slice first",
      decide: (i) => {
        const t = tuples[i]!;
        const m = compiled.match("operational", t.method, t.path);
        if (!m) return false;
        const answer = cedar.statefulIsAuthorized({ principal: cedarPrincipals[t.principal]!, action: cedarActions.get(m.duty)!, resource: cedarResource, context: cedarContexts[i]!, preparsedPolicySetId: sliceIds.get(m.duty)!, entities: cedarEntities[t.principal]! });
        if (answer.type !== "success") throw new Error(`cedar: ${answer.errors.map((e) => e.message).join("; ")}`);
        return answer.response.decision === "allow";
      },
    },
    {
      name: "Casbin keyMatch2", routing: "Casbin's keyMatch2 + method in the matcher",
      decide: (i) => { const t = tuples[i]!; return keyMatch.enforceSync(casbinSubjects[t.principal]!, t.path, t.method, casbinContexts[i]!); },
    },
    {
      name: "Casbin routed", routing: "dutygate's router resolves the duty first",
      decide: (i) => {
        const t = tuples[i]!;
        const m = compiled.match("operational", t.method, t.path);
        if (!m) return false;
        return routed.enforceSync(casbinSubjects[t.principal]!, m.duty, casbinContexts[i]!);
      },
    },
  ];
  return {
    scenario: s, policy, compiled, dutygateDecision, interpreterDecision, engines,
    sizes: {
      duties: s.duties.length,
      rules: s.grants.length + s.forbids.length,
      cedarPolicies: s.grants.length + s.forbids.length,
      casbinKeyMatchLines: keyMatchLines.length,
      casbinRoutedLines: routedLines.length,
      casbinRoleLinks: links.length,
    },
  };
}

async function addAll(e: Enforcer, lines: string[][], links: string[][]): Promise<void> {
  await e.addPolicies(lines);
  await e.addGroupingPolicies(links);
}

/** A disagreement between an engine and dutygate on one tuple. */
export interface Disagreement {
  engine: string;
  index: number;
  tuple: RequestTuple;
  expected: boolean;
  got: boolean;
  dutygate: Pick<Decision, "code" | "duty" | "decidedBy">;
}

/**
 * Decides every tuple with every engine and compares with dutygate's compiled tree, which must
 * itself agree with the interpreter on allow, code, duty and deciding rule.
 */
export function checkAgreement(b: Bench, tuples: readonly RequestTuple[]): { disagreements: Disagreement[]; allowed: number } {
  const disagreements: Disagreement[] = [];
  let allowed = 0;
  for (let i = 0; i < tuples.length; i++) {
    const d = b.dutygateDecision(i);
    const ref = b.interpreterDecision(i);
    const brief = { code: d.code, duty: d.duty, decidedBy: d.decidedBy };
    if (d.allow) allowed++;
    if (ref.allow !== d.allow || ref.code !== d.code || ref.duty !== d.duty || ref.decidedBy !== d.decidedBy) {
      disagreements.push({ engine: `dutygate interpreter (${ref.code} ${ref.decidedBy})`, index: i, tuple: tuples[i]!, expected: d.allow, got: ref.allow, dutygate: brief });
    }
    for (const e of b.engines) {
      if (e.name.startsWith("dutygate")) continue;
      const got = e.decide(i);
      if (got !== d.allow) disagreements.push({ engine: e.name, index: i, tuple: tuples[i]!, expected: d.allow, got, dutygate: brief });
    }
  }
  return { disagreements, allowed };
}
