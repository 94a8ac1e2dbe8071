// Why a condition came out as it did, and which routes a request nearly matched: the detail
// `gateway explain` prints under a rule. Evaluation is the reference evaluator's (`evaluate`).
import { evaluate, type EvalEnv } from "./evaluate.ts";
import { interpretRoute, matchSegments } from "./interpret.ts";
import { exprText, valueText } from "./render-expr.ts";
import type { CheckedPolicy, TExpr } from "./typed-ast.ts";
import { spanAt } from "./typed-ast.ts";
import type { Channel, Principal, PolicyRequest } from "./types.ts";

/** One comparison (or other leaf) of a condition, what it read, and whether it held. */
export interface ConditionFact {
  /** The sub-condition as policy text: `principal.level >= 3`. */
  condition: string;
  /** `file:line:col` where it is written. */
  at: string;
  holds: boolean;
  /** What its operands were on this request: `principal.level` → `2`. Constants are left out. */
  values: Array<{ expr: string; value: string }>;
}

/** The operands of a node, whatever their field names. */
const LEAF_OPERANDS = (e: TExpr): TExpr[] =>
  Object.entries(e).flatMap(([key, v]) => (key === "type" || key === "span" ? [] : Array.isArray(v) ? v.filter(isExpr) : isExpr(v) ? [v] : []));

function isExpr(v: unknown): v is TExpr {
  return typeof v === "object" && v !== null && "k" in v && "type" in v && "span" in v;
}

/** The values a leaf read: every non-constant operand, outermost first (`lower(x)` and `x`). */
function valuesOf(e: TExpr, env: EvalEnv): ConditionFact["values"] {
  const out: ConditionFact["values"] = [];
  const visit = (x: TExpr) => {
    if (x.k === "const") return;
    out.push({ expr: exprText(x), value: valueText(evaluate(x, env), x.type) });
    for (const o of LEAF_OPERANDS(x)) visit(o);
  };
  // A bare bool (`principal.mfa`) is its own value; a comparison shows its operands.
  if (e.k === "principal" || e.k === "request" || e.k === "header" || e.k === "query" || e.k === "param") visit(e);
  else for (const o of LEAF_OPERANDS(e)) visit(o);
  const seen = new Set<string>();
  return out.filter((v) => !seen.has(v.expr) && seen.add(v.expr));
}

/**
 * The sub-conditions that decided a condition's value: for one that does not hold, the first
 * conjunct that fails (and, through an `or`, each alternative's); for one that holds, the
 * alternative that holds (and each conjunct). `not` passes through, flipped.
 *
 * @example explainCondition(grant.when, env) // [{ condition: "principal.mfa", holds: false, values: [{ expr: "principal.mfa", value: "false" }] }]
 */
export function explainCondition(e: TExpr, env: EvalEnv): ConditionFact[] {
  const holds = evaluate(e, env) === true;
  switch (e.k) {
    case "and":
      if (holds) return [...explainCondition(e.left, env), ...explainCondition(e.right, env)];
      return evaluate(e.left, env) === true ? explainCondition(e.right, env) : explainCondition(e.left, env);
    case "or":
      if (!holds) return [...explainCondition(e.left, env), ...explainCondition(e.right, env)];
      return evaluate(e.left, env) === true ? explainCondition(e.left, env) : explainCondition(e.right, env);
    case "not":
      // `not (a and b)` failing means `a and b` holds: say so of its parts, under the `not`.
      if (e.operand.k === "and" || e.operand.k === "or" || e.operand.k === "not") return explainCondition(e.operand, env).map((f) => ({ ...f, condition: `not: ${f.condition}` }));
      return [{ condition: exprText(e), at: spanAt(e.span), holds, values: valuesOf(e.operand, env) }];
    default:
      return [{ condition: exprText(e), at: spanAt(e.span), holds, values: valuesOf(e, env) }];
  }
}

/**
 * Routes a request nearly matched, each as a hint: the same path with another method (`HEAD` is
 * not `GET`), the path without its trailing slash, the same request on the other channel.
 * Empty when the request routes.
 */
export function routeNearMisses(policy: CheckedPolicy, channel: Channel, method: string, path: string): string[] {
  const matching = (ch: Channel, m: string | null, p: string) =>
    policy.duties.filter((d) => d.channel === ch && (m === null || d.method === m) && matchSegments(d.segments, p) !== null);
  if (matching(channel, method, path).length) return [];
  const hints: string[] = [];
  const route = (d: (typeof policy.duties)[number]) => `\`${d.name}\` (${d.method} ${d.pattern}, ${spanAt(d.span)})`;
  for (const d of matching(channel, null, path)) {
    hints.push(method === "HEAD" && d.method === "GET"
      ? `HEAD is not implied by GET: ${route(d)} answers GET on this path; declare a HEAD duty to allow it`
      : `${route(d)} matches this path with ${d.method}, not ${method}`);
  }
  if (path.length > 1 && path.endsWith("/")) {
    const bare = path.replace(/\/+$/, "") || "/";
    for (const d of matching(channel, method, bare)) hints.push(`${route(d)} matches \`${bare}\`, without the trailing slash: a trailing slash is another path`);
  }
  const other: Channel = channel === "admin" ? "operational" : "admin";
  for (const d of matching(other, method, path)) hints.push(`${route(d)} matches on the ${other} channel${other === "admin" ? " (the admin listener)" : ""}, not the ${channel} channel`);
  return hints;
}

/** The detail of a decision beyond its reasons: what each condition read, and near misses. */
export interface DecisionDetail {
  /**
   * By rule id: the sub-conditions that kept a grant from applying (its role held and its `until`
   * not past), or that made a forbid hold.
   */
  conditions: Record<string, ConditionFact[]>;
  /** Routes the request nearly matched, when it matched none. */
  hints: string[];
}

/**
 * What `gateway explain` adds to a decision: the failing sub-conditions with their values, and
 * the near misses of a request that routes nowhere. Reads the policy as the reference
 * interpreter does.
 *
 * @example explainDecision(policy, "operational", principal, request).conditions["grant:changes.duty:14:1"]
 */
export function explainDecision(policy: CheckedPolicy, channel: Channel, principal: Principal, request: PolicyRequest): DecisionDetail {
  const match = interpretRoute(policy, channel, request.method, request.path);
  if (!match) return { conditions: {}, hints: routeNearMisses(policy, channel, request.method, request.path) };
  const env: EvalEnv = { principal, request, params: match.params };
  const conditions: Record<string, ConditionFact[]> = {};
  for (const f of policy.forbids) {
    if (f.duties !== null && !f.duties.includes(match.duty)) continue;
    if (evaluate(f.when, env) === true) conditions[f.id] = explainCondition(f.when, env);
  }
  for (const g of policy.grants) {
    if (g.duty !== match.duty || g.when === null || !g.roles.some((r) => principal.roles.has(r))) continue;
    if (g.until !== null && request.time > g.until) continue;
    if (evaluate(g.when, env) !== true) conditions[g.id] = explainCondition(g.when, env);
  }
  return { conditions, hints: [] };
}
