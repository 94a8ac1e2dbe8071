// The rules of a generated policy (bench/gen-policy.ts) written by hand in plain TypeScript: the
// baseline the compiled decision trees are measured against. It is what a developer who knows
// the routes' shape would write for these rules alone: a Map from method and route to the duty's
// rules, roles tested with Set.has, conditions as plain functions. It gives the same allow/deny as
// the compiled policy on every sample request (the benchmark checks that before timing it).
import type { Channel, PolicyRequest } from "../dsl/mod.ts";
import type { GeneratedPolicy, HandParams, HandPrincipal } from "./gen-policy.ts";

export interface HandDecision { allow: boolean; duty: string | null; ledgerKeys: string[] | null }

interface DutyRules {
  name: string;
  frozen: boolean;
  grants: Array<{ roles: string[]; when: ((p: HandPrincipal, r: PolicyRequest, params: HandParams) => boolean) | null; until: number }>;
  separations: string[];
}

const DENY: HandDecision = { allow: false, duty: null, ledgerKeys: null };

/** The evaluator; `decide` routes and decides as `CompiledPolicy.decide` does. */
export function handWrittenEvaluator(gen: GeneratedPolicy): (channel: Channel, principal: HandPrincipal, request: PolicyRequest) => HandDecision {
  // Routes are `/service/resN`, `/service/resN/:id`, `/service/resN/:id/action` and
  // `/service/resN/:id/files/*`: the key is the route with the id replaced by `:id`.
  const routes = new Map<string, DutyRules>();
  for (const d of gen.duties) {
    const rules: DutyRules = { name: d.name, frozen: gen.rules.frozen.has(d.name), grants: gen.rules.grants.get(d.name)?.map((g) => ({ roles: g.roles, when: g.when?.holds ?? null, until: g.until })) ?? [], separations: gen.rules.separated.get(d.name) ?? [] };
    routes.set(`${d.channel} ${d.method} ${d.pattern}`, rules);
  }
  const allowed = new Map<string, HandDecision>();
  const exclusives = gen.rules.exclusives;
  return (channel, principal, request) => {
    const parts = request.path.split("/");
    if (parts.length < 3) return DENY;
    const base = `/${parts[1]}/${parts[2]}`;
    let key: string;
    if (parts.length === 3) key = base;
    else if (parts.length === 4) key = `${base}/:id`;
    else if (parts[4] === "files") key = `${base}/:id/files/*`;
    else if (parts.length === 5) key = `${base}/:id/${parts[4]}`;
    else return DENY;
    const duty = routes.get(`${channel} ${request.method} ${key}`);
    if (duty === undefined) return DENY;
    for (const x of exclusives) {
      let held = 0;
      for (const r of x.roles) if (principal.roles.has(r)) held++;
      if (held >= x.atLeast) return DENY;
    }
    if (request.headers["x-lockdown"] === "on" || (duty.frozen && request.headers["x-freeze"] === "1")) return DENY;
    const params: HandParams = parts.length > 3 ? { id: parts[3] } : {};
    for (const g of duty.grants) {
      if (!g.roles.some((r) => principal.roles.has(r)) || request.time > g.until) continue;
      if (g.when !== null && !g.when(principal, request, params)) continue;
      if (duty.separations.length) return { allow: true, duty: duty.name, ledgerKeys: duty.separations.map((s) => `${s}|${params.id}`) };
      let d = allowed.get(duty.name);
      if (d === undefined) allowed.set(duty.name, (d = { allow: true, duty: duty.name, ledgerKeys: null }));
      return d;
    }
    return DENY;
  };
}
