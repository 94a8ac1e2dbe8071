// The compiler: a checked policy becomes one Hono router per channel and, per duty, a decision
// tree whose cheap tests come first (the exclusive-role gate and the role bitmask before any
// condition), with every leaf a ready, frozen Decision so that deciding allocates nothing
// unless the duty carries a history separation.
import { RegExpRouter } from "hono/router/reg-exp-router";
import { TrieRouter } from "hono/router/trie-router";
import type { Router } from "hono/router";
import { cidrContainsText, memberKey, type EvalEnv } from "./evaluate.ts";
import { compareSpecificity, separationChecks } from "./interpret.ts";
import { spanAt, type CheckedDuty, type CheckedGrant, type CheckedPolicy, type TExpr } from "./typed_ast.ts";
import type { Channel, CidrValue, Decision, DecisionCode, IpValue, Principal, PolicyRequest, Reason, RouteMatch } from "./types.ts";
import { cidrContains } from "./values.ts";

type Fn = (env: EvalEnv) => unknown;

/** Compiles a typed expression into a closure. Constant sub-trees are folded. */
export function compileExpr(e: TExpr): Fn {
  switch (e.k) {
    case "const": { const v = e.value; return () => v; }
    case "principal": { const a = e.attr; return (env) => env.principal[a]; }
    case "request": {
      switch (e.field) {
        case "method": return (env) => env.request.method;
        case "path": return (env) => env.request.path;
        case "ip": return (env) => env.request.ip;
        case "time": return (env) => env.request.time;
      }
      break;
    }
    case "header": { const n = e.name; return (env) => env.request.headers[n] ?? ""; }
    case "query": { const n = e.name; return (env) => env.request.query[n] ?? ""; }
    case "param": { const n = e.name; return (env) => env.params[n] ?? ""; }
    case "hasHeader": { const n = e.name; return (env) => env.request.headers[n] !== undefined; }
    case "hasQuery": { const n = e.name; return (env) => env.request.query[n] !== undefined; }
    case "setOf": { const items = e.items.map(compileExpr); return (env) => new Set(items.map((f) => memberKey(f(env)))); }
    case "not": { const o = compileExpr(e.operand); return (env) => !o(env); }
    case "and": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => l(env) === true && r(env) === true; }
    case "or": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => l(env) === true || r(env) === true; }
    case "eq": case "ne": {
      const l = compileExpr(e.left), r = compileExpr(e.right);
      const neg = e.k === "ne";
      if (e.by === "text") return (env) => ((l(env) as IpValue).text === (r(env) as IpValue).text) !== neg;
      if (e.by === "set") {
        return (env) => {
          const a = l(env) as ReadonlySet<unknown>, b = r(env) as ReadonlySet<unknown>;
          let same = a.size === b.size;
          if (same) for (const x of a) if (!b.has(x)) { same = false; break; }
          return same !== neg;
        };
      }
      if (e.right.k === "const") { const c = e.right.value; return neg ? (env) => l(env) !== c : (env) => l(env) === c; }
      return neg ? (env) => l(env) !== r(env) : (env) => l(env) === r(env);
    }
    case "lt": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) < (r(env) as number); }
    case "le": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) <= (r(env) as number); }
    case "gt": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) > (r(env) as number); }
    case "ge": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) >= (r(env) as number); }
    case "in": {
      const el = compileExpr(e.element), c = compileExpr(e.container);
      if (e.mode === "cidr") {
        if (e.container.k === "const") { const cidr = e.container.value as CidrValue; return (env) => cidrContains(cidr, el(env) as IpValue); }
        return (env) => cidrContains(c(env) as CidrValue, el(env) as IpValue);
      }
      if (e.mode === "cidrSet") {
        return (env) => {
          const ip = el(env) as IpValue;
          for (const t of c(env) as ReadonlySet<string>) if (cidrContainsText(t, ip)) return true;
          return false;
        };
      }
      if (e.byText) return (env) => (c(env) as ReadonlySet<unknown>).has((el(env) as IpValue).text);
      if (e.element.k === "const") { const v = e.element.value; return (env) => (c(env) as ReadonlySet<unknown>).has(v); }
      return (env) => (c(env) as ReadonlySet<unknown>).has(el(env));
    }
    case "startsWith": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as string).startsWith(r(env) as string); }
    case "endsWith": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as string).endsWith(r(env) as string); }
    case "add": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) + (r(env) as number); }
    case "sub": { const l = compileExpr(e.left), r = compileExpr(e.right); return (env) => (l(env) as number) - (r(env) as number); }
  }
  throw new Error(`unreachable expression kind ${(e as TExpr).k}`);
}

/** Role sets as bitmasks of 32-bit words. Most policies fit one word. */
type Mask = Uint32Array;

interface GrantLeaf {
  mask: Mask;
  until: number;
  cond: Fn | null;
  decision: Decision;
}

interface ForbidNode {
  cond: Fn;
  decision: Decision;
}

interface DutyTree {
  duty: CheckedDuty;
  forbids: ForbidNode[];
  grants: GrantLeaf[];
  noGrant: Decision;
  hasSeparations: boolean;
}

export interface CompiledPolicy {
  readonly policy: CheckedPolicy;
  /** Routes a request to its duty on a channel. */
  match(channel: Channel, method: string, path: string): RouteMatch | null;
  /** Routes and decides. */
  decide(channel: Channel, principal: Principal, request: PolicyRequest): Decision;
  /** Decides an already-routed request. */
  decideMatched(match: RouteMatch, principal: Principal, request: PolicyRequest): Decision;
  /** Describes the compiled trees (for golden files and `gateway check --format json`). */
  describe(): unknown;
}

function freezeDecision(d: Decision): Decision {
  Object.freeze(d.reasons);
  Object.freeze(d.branch);
  Object.freeze(d.separations);
  Object.freeze(d.ledger);
  return Object.freeze(d);
}

function leaf(allow: boolean, code: DecisionCode, duty: string | null, decidedBy: string | null, reasons: Reason[], branch: string[], message: string): Decision {
  return freezeDecision({ allow, code, duty, decidedBy, reasons, branch, separations: [], ledger: [], message });
}

/** Builds a router for one channel: RegExpRouter when the routes allow it, else TrieRouter. */
function buildRouter(duties: readonly CheckedDuty[]): Router<CheckedDuty> {
  const ordered = [...duties].sort((a, b) => compareSpecificity(a.segments, b.segments));
  const attempt = (router: Router<CheckedDuty>) => {
    for (const d of ordered) router.add(d.method, d.pattern, d);
    router.match("GET", "/"); // RegExpRouter builds (and may refuse ambiguous routes) on first match
    return router;
  };
  try {
    return attempt(new RegExpRouter<CheckedDuty>());
  } catch {
    return attempt(new TrieRouter<CheckedDuty>());
  }
}

export function compilePolicy(policy: CheckedPolicy): CompiledPolicy {
  const roleBit = new Map<string, number>(policy.roles.map((r, i) => [r, i]));
  const words = Math.max(1, Math.ceil(policy.roles.length / 32));
  const maskOf = (roles: Iterable<string>): Mask => {
    const m = new Uint32Array(words);
    for (const r of roles) {
      const b = roleBit.get(r);
      if (b !== undefined) m[b >>> 5]! |= 1 << (b & 31);
    }
    return m;
  };
  const popcount = (x: number) => {
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  };
  const exclusives = policy.exclusives.map((x) => ({ x, mask: maskOf(x.roles) }));

  // The principal-level facts (role mask, exclusive violation) are computed once per roles set.
  interface RoleFacts { mask: Mask; exclusive: Decision | null }
  const factsCache = new WeakMap<ReadonlySet<string>, RoleFacts>();
  const exclusiveDecisions = new Map<string, Decision>();
  const roleFacts = (roles: ReadonlySet<string>): RoleFacts => {
    let f = factsCache.get(roles);
    if (f) return f;
    const mask = maskOf(roles);
    let exclusive: Decision | null = null;
    for (const { x, mask: xm } of exclusives) {
      let n = 0;
      for (let i = 0; i < words; i++) n += popcount(mask[i]! & xm[i]!);
      if (n >= x.atLeast) {
        const held = x.roles.filter((r) => roles.has(r));
        const key = `${x.id}|${held.join(",")}`;
        exclusive = exclusiveDecisions.get(key) ?? null;
        if (!exclusive) {
          exclusive = leaf(false, "DENY_EXCLUSIVE", null, x.id, [{ rule: x.id, kind: "exclusive", at: spanAt(x.span), held: true, why: `principal holds ${held.join(", ")}: at most ${x.atLeast - 1} of ${x.roles.join(", ")} allowed` }], [`exclusive gate: ${x.id} violated`], `principal holds ${held.join(" and ")}, which are mutually exclusive`);
          exclusiveDecisions.set(key, exclusive);
        }
        break;
      }
    }
    f = { mask, exclusive };
    factsCache.set(roles, f);
    return f;
  };

  const trees = new Map<string, DutyTree>();
  for (const duty of policy.duties) {
    const forbids: ForbidNode[] = policy.forbids
      .filter((f) => f.duties === null || f.duties.includes(duty.name))
      .map((f) => ({
        cond: compileExpr(f.when),
        decision: leaf(false, "DENY_FORBID", duty.name, f.id, [{ rule: f.id, kind: "forbid", at: spanAt(f.span), held: true, why: "condition holds" }], ["exclusive gate: pass", `forbid ${f.id}: condition holds`], `${duty.name} is forbidden by ${spanAt(f.span)}`),
      }));
    const dutyGrants = policy.grants.filter((g) => g.duty === duty.name);
    const grants: GrantLeaf[] = dutyGrants.map((g: CheckedGrant) => ({
      mask: maskOf(g.roles),
      until: g.until ?? Infinity,
      cond: g.when ? compileExpr(g.when) : null,
      decision: leaf(true, "ALLOW", duty.name, g.id, [{ rule: g.id, kind: "grant", at: spanAt(g.span), held: true, why: g.when ? `role in ${g.roles.join(", ")}, and the condition holds` : `role in ${g.roles.join(", ")}` }],
        ["exclusive gate: pass", forbids.length ? "forbids: none holds" : "forbids: none", `role mask matches ${g.roles.join("|")}`, ...(g.until !== null ? [`until ${g.untilText}: not past`] : []), ...(g.when ? ["condition holds"] : [])],
        `${duty.name} granted by ${spanAt(g.span)}`),
    }));
    const noGrant = leaf(false, "DENY_NO_GRANT", duty.name, null,
      dutyGrants.map((g) => ({ rule: g.id, kind: "grant", at: spanAt(g.span), held: false, why: "role, until or condition does not apply" })),
      ["exclusive gate: pass", forbids.length ? "forbids: none holds" : "forbids: none", "grants: none applies"], `no grant of ${duty.name} applies to this principal`);
    trees.set(duty.name, { duty, forbids, grants, noGrant, hasSeparations: policy.separations.some((s) => s.duties.includes(duty.name)) });
  }

  const routers: Record<Channel, Router<CheckedDuty>> = {
    operational: buildRouter(policy.duties.filter((d) => d.channel === "operational")),
    admin: buildRouter(policy.duties.filter((d) => d.channel === "admin")),
  };
  const noRoute = new Map<string, Decision>();

  const match = (channel: Channel, method: string, path: string): RouteMatch | null => {
    const [found, stash] = routers[channel].match(method, path) as [Array<[CheckedDuty, Record<string, string | number>]>, string[] | undefined];
    const first = found[0];
    if (!first) return null;
    const [duty, rawParams] = first;
    let params: Record<string, string>;
    if (stash) {
      // RegExpRouter returns indexes into the stash.
      params = {};
      for (const k in rawParams) params[k] = stash[rawParams[k] as number]!;
    } else params = rawParams as Record<string, string>;
    return { duty: duty.name, params };
  };

  const decideMatched = (m: RouteMatch, principal: Principal, request: PolicyRequest): Decision => {
    const tree = trees.get(m.duty)!;
    const facts = roleFacts(principal.roles);
    if (facts.exclusive) return facts.exclusive.duty === m.duty ? facts.exclusive : { ...facts.exclusive, duty: m.duty };
    const env: EvalEnv = { principal, request, params: m.params };
    for (const f of tree.forbids) if (f.cond(env) === true) return f.decision;
    const pm = facts.mask;
    for (const g of tree.grants) {
      let hit = false;
      for (let i = 0; i < words; i++) if ((pm[i]! & g.mask[i]!) !== 0) { hit = true; break; }
      if (!hit || request.time > g.until) continue;
      if (g.cond !== null && g.cond(env) !== true) continue;
      if (!tree.hasSeparations) return g.decision;
      return { ...g.decision, separations: separationChecks(policy, m.duty, m.params) };
    }
    return tree.noGrant;
  };

  return {
    policy,
    match,
    decideMatched,
    decide(channel, principal, request) {
      const m = match(channel, request.method, request.path);
      if (!m) {
        let d = noRoute.get(channel);
        if (!d) {
          d = leaf(false, "DENY_NO_ROUTE", null, null, [{ rule: "default:no-route", kind: "default", at: "", held: true, why: `no duty matches on the ${channel} channel` }], ["router: no route"], `no duty matches this request on the ${channel} channel`);
          noRoute.set(channel, d);
        }
        return d;
      }
      return decideMatched(m, principal, request);
    },
    describe() {
      return {
        roles: policy.roles,
        routers: Object.fromEntries(Object.entries(routers).map(([c, r]) => [c, r.name])),
        exclusives: policy.exclusives.map((x) => ({ id: x.id, atLeast: x.atLeast, roles: x.roles })),
        duties: [...trees.values()].map((t) => ({
          duty: t.duty.name,
          route: `${t.duty.method} ${t.duty.pattern}`,
          channel: t.duty.channel,
          upstream: t.duty.upstream,
          tree: [
            "exclusive gate",
            ...t.forbids.map((f) => `forbid ${f.decision.decidedBy}`),
            ...t.grants.map((g) => `grant ${g.decision.decidedBy}: roles ${[...g.mask].map((w) => w.toString(2)).join(":")}${g.until !== Infinity ? " until" : ""}${g.cond ? " when" : ""}`),
            "deny: no grant",
          ],
          separations: t.hasSeparations,
        })),
      };
    },
  };
}
