// The compiler: a checked policy becomes one route trie per channel (dsl/route-trie.ts) and, per
// duty, a decision tree whose cheap tests come first (the exclusive-role gate and the role bitmask
// before any condition), with every leaf a ready, frozen Decision so that deciding allocates
// nothing unless the duty carries a history separation.
import { cidrContainsText, memberKey, WEEKDAYS, type EvalEnv } from "./evaluate.ts";
import { inputNamesOf } from "./inputs.ts";
import { separationKey } from "./ledger-key.ts";
import type { CheckedSeparation } from "./typed-ast.ts";
import { spanAt, type CheckedDuty, type CheckedGrant, type CheckedPolicy, type TExpr } from "./typed-ast.ts";
import type { Channel, CidrValue, Decision, DecisionCode, IpValue, Principal, PolicyRequest, Reason, RouteMatch } from "./types.ts";
import { compileRegexMatcher } from "./regex.ts";
import { buildRouteTrie, type RouteTrie } from "./route-trie.ts";
import { cidrContains } from "./values.ts";

type Fn = (env: EvalEnv) => unknown;
const DAY_MS = 86_400_000;

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
    case "hasAttr": { const a = e.attr; return (env) => env.principal[a] !== undefined; }
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
    case "matches": { const s = compileExpr(e.subject), m = compileRegexMatcher(e.regex); return (env) => m(s(env) as string); }
    case "lower": { const o = compileExpr(e.operand); return (env) => (o(env) as string).toLowerCase(); }
    case "neg": { const o = compileExpr(e.operand); return (env) => 0 - (o(env) as number); }
    case "timePart": {
      // Epoch day 0 (1970-01-01) was a Thursday (getUTCDay 4); modulo keeps times before it right.
      if (e.part === "weekday") return (env) => WEEKDAYS[(((Math.floor(env.request.time / DAY_MS) + 4) % 7) + 7) % 7];
      return (env) => ((env.request.time % DAY_MS) + DAY_MS) % DAY_MS;
    }
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
  /** Inclusive end, epoch ms (Infinity: none). */
  until: number;
  cond: Fn;
  decision: Decision;
}

interface DutyTree {
  duty: CheckedDuty;
  forbids: ForbidNode[];
  grants: GrantLeaf[];
  noGrant: Decision;
  separations: Array<CheckedSeparation & { label: string; at: string }>;
  /** Whether a condition reads `request.param.*` or a separation keys on a param: only then does
   * deciding need the route's params as an object. */
  readsParams: boolean;
  /** Query names the duty's grants and applicable forbids read. */
  queryNames: readonly string[];
}

/** True when the expression reads a route param. */
function readsParam(e: TExpr): boolean {
  switch (e.k) {
    case "param": return true;
    case "const": case "principal": case "request": case "header": case "query": case "hasHeader": case "hasQuery": case "timePart": case "hasAttr": return false;
    case "setOf": return e.items.some(readsParam);
    case "not": case "lower": case "neg": return readsParam(e.operand);
    case "matches": return readsParam(e.subject);
    case "in": return readsParam(e.element) || readsParam(e.container);
    default: return readsParam(e.left) || readsParam(e.right);
  }
}

export interface CompiledPolicy {
  readonly policy: CheckedPolicy;
  /** Routes a request to its duty on a channel. */
  match(channel: Channel, method: string, path: string): RouteMatch | null;
  /** Routes and decides. */
  decide(channel: Channel, principal: Principal, request: PolicyRequest): Decision;
  /** Decides an already-routed request. */
  decideMatched(match: RouteMatch, principal: Principal, request: PolicyRequest): Decision;
  /**
   * The query parameter names the conditions deciding `duty` read (its grants and the forbids that
   * apply to it), sorted; empty for an unknown duty. A caller that parses queries otherwise than
   * first-value-wins must make sure each of these has one unambiguous value.
   *
   * @example compiled.queryNamesRead("export") // ["all"]
   */
  queryNamesRead(duty: string): readonly string[];
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

  const grantsByDuty = new Map<string, CheckedGrant[]>();
  for (const g of policy.grants) grantsByDuty.set(g.duty, [...(grantsByDuty.get(g.duty) ?? []), g]);
  const forbidsByDuty = new Map<string, typeof policy.forbids>();
  const forbidsForAll = policy.forbids.filter((f) => f.duties === null);
  for (const f of policy.forbids) for (const d of f.duties ?? []) forbidsByDuty.set(d, [...(forbidsByDuty.get(d) ?? []), f]);
  const separationsByDuty = new Map<string, CheckedSeparation[]>();
  for (const x of policy.separations) for (const d of x.duties) separationsByDuty.set(d, [...(separationsByDuty.get(d) ?? []), x]);

  const trees = new Map<string, DutyTree>();
  for (const duty of policy.duties) {
    // Source order of forbids is kept: the first forbid that holds decides.
    const own = forbidsByDuty.get(duty.name) ?? [];
    const applicable = forbidsForAll.length ? policy.forbids.filter((f) => f.duties === null || own.includes(f)) : own;
    const forbids: ForbidNode[] = applicable
      .map((f) => ({
        until: f.until ?? Infinity,
        cond: compileExpr(f.when),
        decision: leaf(false, "DENY_FORBID", duty.name, f.id, [{ rule: f.id, kind: "forbid", at: spanAt(f.span), held: true, why: "condition holds" }], ["exclusive gate: pass", `forbid ${f.id}: condition holds`], `${duty.name} is forbidden by ${spanAt(f.span)}`),
      }));
    const dutyGrants = grantsByDuty.get(duty.name) ?? [];
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
    const separations = (separationsByDuty.get(duty.name) ?? []).map((x) => ({ ...x, label: x.params.join(", "), at: spanAt(x.span) }));
    const readsParams = separations.length > 0 || applicable.some((f) => readsParam(f.when)) || dutyGrants.some((g) => g.when !== null && readsParam(g.when));
    const queryNames = Object.freeze(inputNamesOf([...applicable.map((f) => f.when), ...dutyGrants.map((g) => g.when)]).query);
    trees.set(duty.name, { duty, forbids, grants, noGrant, separations, readsParams, queryNames });
  }

  const routers: Record<Channel, RouteTrie> = {
    operational: buildRouteTrie(policy.duties.filter((d) => d.channel === "operational")),
    admin: buildRouteTrie(policy.duties.filter((d) => d.channel === "admin")),
  };
  const noRoute = new Map<string, Decision>();

  const match = (channel: Channel, method: string, path: string): RouteMatch | null => routers[channel].match(method, path);

  const noParams: Readonly<Record<string, string>> = Object.freeze({});
  const decideTree = (tree: DutyTree, params: Readonly<Record<string, string>>, principal: Principal, request: PolicyRequest): Decision => {
    const facts = roleFacts(principal.roles);
    if (facts.exclusive) return facts.exclusive.duty === tree.duty.name ? facts.exclusive : { ...facts.exclusive, duty: tree.duty.name };
    const env: EvalEnv = { principal, request, params };
    for (const f of tree.forbids) if (request.time <= f.until && f.cond(env) === true) return f.decision;
    const pm = facts.mask;
    for (const g of tree.grants) {
      let hit = false;
      for (let i = 0; i < words; i++) if ((pm[i]! & g.mask[i]!) !== 0) { hit = true; break; }
      if (!hit || request.time > g.until) continue;
      if (g.cond !== null && g.cond(env) !== true) continue;
      if (tree.separations.length === 0) return g.decision;
      return { ...g.decision, separations: tree.separations.map((c) => ({ constraint: c.id, at: c.at, param: c.label, key: separationKey(c.params, params), duties: c.duties })) };
    }
    return tree.noGrant;
  };
  const decideMatched = (m: RouteMatch, principal: Principal, request: PolicyRequest): Decision => decideTree(trees.get(m.duty)!, m.params, principal, request);

  const noNames: readonly string[] = Object.freeze([]);
  return {
    policy,
    match,
    decideMatched,
    queryNamesRead: (duty) => trees.get(duty)?.queryNames ?? noNames,
    decide(channel, principal, request) {
      // Routing without a RouteMatch: the params object is built only for a tree that reads it.
      const router = routers[channel];
      const entry = router.lookup(request.method, request.path);
      if (entry === null) {
        let d = noRoute.get(channel);
        if (!d) {
          d = leaf(false, "DENY_NO_ROUTE", null, null, [{ rule: "default:no-route", kind: "default", at: "", held: true, why: `no duty matches on the ${channel} channel` }], ["router: no route"], `no duty matches this request on the ${channel} channel`);
          noRoute.set(channel, d);
        }
        return d;
      }
      const tree = trees.get(entry.duty.name)!;
      return decideTree(tree, tree.readsParams ? router.paramsOf(entry) : noParams, principal, request);
    },
    describe() {
      return {
        roles: policy.roles,
        router: "segment trie per channel and method",
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
          separations: t.separations.map((x) => x.id),
        })),
      };
    },
  };
}
