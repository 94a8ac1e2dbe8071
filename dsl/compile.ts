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

/**
 * The decision trees of all duties, packed into one array: duty d's tree starts at `treeAt[d]`
 * (the id its route carries in the router) and lays out, one after another,
 *
 *   DUTY (d), READS_PARAMS, NO_GRANT_LEAF, FORBID_COUNT, per forbid: UNTIL, COND, LEAF,
 *   GRANT_COUNT, per grant: UNTIL, COND, LEAF, MASK_WORD × words
 *
 * (COND: the compiled condition, null for none; LEAF: the frozen Decision; UNTIL: inclusive end
 * in epoch ms, Infinity for none). Deciding on one duty reads two or three cache lines of it
 * instead of following pointers through per-duty objects and arrays: with thousands of duties,
 * consecutive requests reach different duties, and each pointer followed is a likely cache miss.
 * Numbers and references share the array because JavaScriptCore (Bun) stores both inline in an
 * array's 8-byte slots, so the leaf is reached without a second array; conditions written
 * identically share one compiled closure, which stays hot in the cache.
 */
const DUTY = 0, READS_PARAMS = 1, NO_GRANT_LEAF = 2, FORBIDS = 3;

type Slot = number | Fn | Decision | null;

interface DecisionTrees {
  treeAt: Int32Array;
  program: Slot[];
  /** Per duty, its history separations, or null (most duties). */
  separations: Array<Array<CheckedSeparation & { label: string; at: string }> | null>;
  /** Query names the duty's grants and applicable forbids read. */
  queryNames: Array<readonly string[]>;
}

/** A condition as text without spans: equal keys compile to the same closure. */
function conditionKey(e: TExpr): string {
  return JSON.stringify(e, (key, value: unknown) =>
    key === "span" ? undefined : typeof value === "bigint" ? `${value}n` : value instanceof Set ? { set: [...value].map(String).sort() } : value);
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

/** The steps of duty d's packed tree, as `describe()` shows them. */
function describeTree(trees: DecisionTrees, d: number, words: number): string[] {
  const p = trees.program;
  const steps = ["exclusive gate"];
  let at = trees.treeAt[d]! + FORBIDS;
  for (let n = p[at++] as number; n > 0; n--, at += 3) steps.push(`forbid ${(p[at + 2] as Decision).decidedBy}`);
  for (let n = p[at++] as number; n > 0; n--, at += 3 + words) {
    const mask = p.slice(at + 3, at + 3 + words) as number[];
    steps.push(`grant ${(p[at + 2] as Decision).decidedBy}: roles ${mask.map((w) => w.toString(2)).join(":")}${p[at] !== Infinity ? " until" : ""}${p[at + 1] !== null ? " when" : ""}`);
  }
  steps.push("deny: no grant");
  return steps;
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

  const duties = policy.duties;
  const dutyIndex = new Map<string, number>(duties.map((d, i) => [d.name, i]));
  const conditions = new Map<string, Fn>();
  const conditionOf = (e: TExpr): Fn => {
    const key = conditionKey(e);
    let fn = conditions.get(key);
    if (fn === undefined) conditions.set(key, (fn = compileExpr(e)));
    return fn;
  };
  const treeAt = new Int32Array(duties.length);
  const program: Slot[] = [];
  const separations: DecisionTrees["separations"] = [], queryNames: Array<readonly string[]> = [];
  for (const [d, duty] of duties.entries()) {
    // Source order of forbids is kept: the first forbid that holds decides.
    const own = forbidsByDuty.get(duty.name) ?? [];
    const applicable = forbidsForAll.length ? policy.forbids.filter((f) => f.duties === null || own.includes(f)) : own;
    const dutyGrants = grantsByDuty.get(duty.name) ?? [];
    const seps = (separationsByDuty.get(duty.name) ?? []).map((x) => ({ ...x, label: x.params.join(", "), at: spanAt(x.span) }));
    separations.push(seps.length ? seps : null);
    queryNames.push(Object.freeze(inputNamesOf([...applicable.map((f) => f.when), ...dutyGrants.map((g) => g.when)]).query));
    const readsParams = seps.length > 0 || applicable.some((f) => readsParam(f.when)) || dutyGrants.some((g) => g.when !== null && readsParam(g.when));
    const noGrant = leaf(false, "DENY_NO_GRANT", duty.name, null,
      dutyGrants.map((g) => ({ rule: g.id, kind: "grant", at: spanAt(g.span), held: false, why: "role, until or condition does not apply" })),
      ["exclusive gate: pass", applicable.length ? "forbids: none holds" : "forbids: none", "grants: none applies"], `no grant of ${duty.name} applies to this principal`);
    treeAt[d] = program.length;
    program.push(d, readsParams ? 1 : 0, noGrant, applicable.length);
    for (const f of applicable) {
      program.push(f.until ?? Infinity, conditionOf(f.when),
        leaf(false, "DENY_FORBID", duty.name, f.id, [{ rule: f.id, kind: "forbid", at: spanAt(f.span), held: true, why: "condition holds" }], ["exclusive gate: pass", `forbid ${f.id}: condition holds`], `${duty.name} is forbidden by ${spanAt(f.span)}`));
    }
    program.push(dutyGrants.length);
    for (const g of dutyGrants) {
      program.push(g.until ?? Infinity, g.when ? conditionOf(g.when) : null,
        leaf(true, "ALLOW", duty.name, g.id, [{ rule: g.id, kind: "grant", at: spanAt(g.span), held: true, why: g.when ? `role in ${g.roles.join(", ")}, and the condition holds` : `role in ${g.roles.join(", ")}` }],
          ["exclusive gate: pass", applicable.length ? "forbids: none holds" : "forbids: none", `role mask matches ${g.roles.join("|")}`, ...(g.until !== null ? [`until ${g.untilText}: not past`] : []), ...(g.when ? ["condition holds"] : [])],
          `${duty.name} granted by ${spanAt(g.span)}`),
        ...maskOf(g.roles));
    }
  }
  const trees: DecisionTrees = { treeAt, program, separations, queryNames };

  const channelDuties = (channel: Channel) => duties.flatMap((d, i) => (d.channel === channel ? [i] : []));
  const operational = channelDuties("operational"), admin = channelDuties("admin");
  const routers: Record<Channel, RouteTrie> = {
    operational: buildRouteTrie(operational.map((i) => duties[i]!), operational.map((i) => treeAt[i]!)),
    admin: buildRouteTrie(admin.map((i) => duties[i]!), admin.map((i) => treeAt[i]!)),
  };
  const noRoute = new Map<string, Decision>();

  const match = (channel: Channel, method: string, path: string): RouteMatch | null => routers[channel].match(method, path);

  const noParams: Readonly<Record<string, string>> = Object.freeze({});
  /** Decides on the duty whose packed tree starts at `tree`. */
  const decideTree = (tree: number, params: Readonly<Record<string, string>>, principal: Principal, request: PolicyRequest): Decision => {
    const facts = roleFacts(principal.roles);
    if (facts.exclusive) {
      const name = duties[trees.program[tree + DUTY] as number]!.name;
      return facts.exclusive.duty === name ? facts.exclusive : { ...facts.exclusive, duty: name };
    }
    const p = trees.program;
    const env: EvalEnv = { principal, request, params };
    const time = request.time;
    let at = tree + FORBIDS;
    for (let n = p[at++] as number; n > 0; n--, at += 3) {
      if (time <= (p[at] as number) && (p[at + 1] as Fn)(env) === true) return p[at + 2] as Decision;
    }
    const pm = facts.mask;
    for (let n = p[at++] as number; n > 0; n--, at += 3 + words) {
      let hit = false;
      for (let i = 0; i < words; i++) if ((pm[i]! & (p[at + 3 + i] as number)) !== 0) { hit = true; break; }
      if (!hit || time > (p[at] as number)) continue;
      const cond = p[at + 1] as Fn | null;
      if (cond !== null && cond(env) !== true) continue;
      const seps = trees.separations[p[tree + DUTY] as number]!;
      if (seps === null) return p[at + 2] as Decision;
      return { ...(p[at + 2] as Decision), separations: seps.map((c) => ({ constraint: c.id, at: c.at, param: c.label, key: separationKey(c.params, params), duties: c.duties })) };
    }
    return p[tree + NO_GRANT_LEAF] as Decision;
  };
  const decideMatched = (m: RouteMatch, principal: Principal, request: PolicyRequest): Decision => decideTree(trees.treeAt[dutyIndex.get(m.duty)!]!, m.params, principal, request);

  const noNames: readonly string[] = Object.freeze([]);
  return {
    policy,
    match,
    decideMatched,
    queryNamesRead: (duty) => { const d = dutyIndex.get(duty); return d === undefined ? noNames : trees.queryNames[d]!; },
    decide(channel, principal, request) {
      // Routing without a RouteMatch: the params object is built only for a tree that reads it.
      const router = routers[channel];
      const tree = router.lookupId(request.method, request.path);
      if (tree === -1) {
        let d = noRoute.get(channel);
        if (!d) {
          d = leaf(false, "DENY_NO_ROUTE", null, null, [{ rule: "default:no-route", kind: "default", at: "", held: true, why: `no duty matches on the ${channel} channel` }], ["router: no route"], `no duty matches this request on the ${channel} channel`);
          noRoute.set(channel, d);
        }
        return d;
      }
      return decideTree(tree, trees.program[tree + READS_PARAMS] === 1 ? router.lastParams() : noParams, principal, request);
    },
    describe() {
      return {
        roles: policy.roles,
        router: "segment trie per channel and method",
        exclusives: policy.exclusives.map((x) => ({ id: x.id, atLeast: x.atLeast, roles: x.roles })),
        duties: duties.map((duty, d) => ({
          duty: duty.name,
          route: `${duty.method} ${duty.pattern}`,
          channel: duty.channel,
          upstream: duty.upstream,
          tree: describeTree(trees, d, words),
          separations: (trees.separations[d] ?? []).map((x) => x.id),
        })),
      };
    },
  };
}
