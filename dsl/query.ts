// Who may do what, by partial evaluation: the decision of a duty written as one condition
// (no exclusive set violated, no forbid holds, some grant applies), with what is known folded in
// and what is not left open. "What may this person do" knows the principal and leaves the
// request open; "who may do this" knows the duty and leaves the principal open too. The result
// is a typed condition: `evaluate` of it on a request is the decision's `allow` (checked against
// the reference interpreter on the conformance corpus).
import { evaluate, isConstant, type EvalEnv } from "./evaluate.ts";
import { spanAt, type CheckedDuty, type CheckedPolicy, type TExpr } from "./typed-ast.ts";
import type { Principal, Span, Type } from "./types.ts";

const BOOL: Type = { kind: "bool" };
const TIME: Type = { kind: "time" };

const DUMMY_ENV: EvalEnv = {
  principal: { sub: "", roles: new Set<string>() },
  request: { method: "", path: "", ip: { kind: "ip", v6: false, addr: 0n, text: "0.0.0.0" }, time: 0, headers: {}, query: {} },
  params: {},
};

const TRUE = (span: Span): TExpr => ({ k: "const", value: true, type: BOOL, span });
const FALSE = (span: Span): TExpr => ({ k: "const", value: false, type: BOOL, span });
const isTrue = (e: TExpr) => e.k === "const" && e.value === true;
const isFalse = (e: TExpr) => e.k === "const" && e.value === false;

function and(l: TExpr, r: TExpr): TExpr {
  if (isFalse(l) || isFalse(r)) return FALSE(l.span);
  if (isTrue(l)) return r;
  if (isTrue(r)) return l;
  // Kept left-nested, as the parser builds `a and b and c`: it prints without parentheses.
  if (r.k === "and") return and(and(l, r.left), r.right);
  return { k: "and", left: l, right: r, type: BOOL, span: l.span };
}

function or(l: TExpr, r: TExpr): TExpr {
  if (isTrue(l) || isTrue(r)) return TRUE(l.span);
  if (isFalse(l)) return r;
  if (isFalse(r)) return l;
  if (r.k === "or") return or(or(l, r.left), r.right);
  return { k: "or", left: l, right: r, type: BOOL, span: l.span };
}

function not(e: TExpr): TExpr {
  if (e.k === "const") return { ...e, value: !e.value };
  if (e.k === "not") return e.operand;
  return { k: "not", operand: e, type: BOOL, span: e.span };
}

/** A typed expression node (operands are; spans, types and regex programs are not). */
function isExpr(v: unknown): v is TExpr {
  return typeof v === "object" && v !== null && "k" in v && "type" in v && "span" in v;
}

const all = (items: TExpr[], span: Span) => items.reduce((acc, x) => and(acc, x), TRUE(span));
const any = (items: TExpr[], span: Span) => items.reduce((acc, x) => or(acc, x), FALSE(span));

/**
 * Folds what is known into a condition: with a principal, its attributes become constants; then
 * every part that reads nothing unknown is computed, and `and`/`or`/`not` of constants simplify.
 */
export function partialEvaluate(e: TExpr, principal: Principal | null): TExpr {
  const fold = (x: TExpr): TExpr => {
    let y: TExpr;
    switch (x.k) {
      case "principal":
        if (!principal) return x;
        return { k: "const", value: principal[x.attr], type: x.type, span: x.span };
      case "const": return x;
      case "hasAttr":
        if (!principal) return x;
        return { k: "const", value: principal[x.attr] !== undefined, type: x.type, span: x.span };
      case "and": return and(fold(x.left), fold(x.right));
      case "or": return or(fold(x.left), fold(x.right));
      case "not": return not(fold(x.operand));
      default: {
        // Every other node is folded through its operands, whatever their field names (a
        // regex program is plain data, not an operand).
        const out: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(x)) {
          out[key] = isExpr(value) ? fold(value) : Array.isArray(value) && value.every(isExpr) && value.length ? value.map(fold) : value;
        }
        y = out as TExpr;
      }
    }
    return isConstant(y) ? { k: "const", value: evaluate(y, DUMMY_ENV), type: y.type, span: y.span } : y;
  };
  return fold(e);
}

/** `ROLE in principal.roles`. */
function holdsRole(role: string, span: Span): TExpr {
  return {
    k: "in", mode: "member", byText: false, type: BOOL, span,
    element: { k: "const", value: role, type: { kind: "enum", name: "role", values: [] }, span },
    container: { k: "principal", attr: "roles", type: { kind: "set", of: { kind: "enum", name: "role", values: [] } }, span },
  };
}

/** Combinations of `n` of `items` (an exclusive set of N of its roles), at most `limit`. */
function combinations<T>(items: readonly T[], n: number, limit = 10_000): T[][] {
  const out: T[][] = [];
  const pick = (start: number, acc: T[]) => {
    if (out.length >= limit) return;
    if (acc.length === n) { out.push([...acc]); return; }
    for (let i = start; i < items.length; i++) pick(i + 1, [...acc, items[i]!]);
  };
  pick(0, []);
  return out;
}

/** One grant that may let the duty through, with its condition still open (true: none left). */
export interface OpenGrant {
  rule: string;
  at: string;
  roles: readonly string[];
  /** The grant's condition with the known folded in, its `until` included as `request.time <= …`. */
  condition: TExpr;
  /** The same without the role test: what a holder of one of `roles` still needs. */
  beyondRole: TExpr;
}

/** One rule that may deny the duty, with its condition still open. */
export interface OpenDenial {
  rule: string;
  at: string;
  kind: "forbid" | "exclusive";
  condition: TExpr;
}

/** The decision of one duty, partially evaluated. */
export interface DutyQuery {
  duty: CheckedDuty;
  /** Allowed iff this holds (`evaluate` on the request): constant true, constant false, or open. */
  allowed: TExpr;
  grants: OpenGrant[];
  denials: OpenDenial[];
  /** Ids of the `separate` rules the duty is part of: an allow still needs the duty ledger's consent. */
  separations: string[];
}

/**
 * The decision of `duty` as a condition, knowing `principal` (or nobody: null). Grants that can
 * never apply and denials that can never hold are left out of the parts.
 *
 * @example queryDuty(policy, policy.duties[0], alice).allowed // {k: "const", value: true}
 */
export function queryDuty(policy: CheckedPolicy, duty: CheckedDuty, principal: Principal | null): DutyQuery {
  const span = duty.span;
  /** `request.time <= until`, or true without an `until`. */
  const notAfter = (until: number | null, at: Span): TExpr => until === null ? TRUE(at)
    : { k: "le", type: BOOL, span: at, left: { k: "request", field: "time", type: TIME, span: at }, right: { k: "const", value: until, type: TIME, span: at } };
  const denials: OpenDenial[] = [];
  for (const x of policy.exclusives) {
    const condition = partialEvaluate(any(combinations(x.roles, x.atLeast).map((combo) => all(combo.map((r) => holdsRole(r, x.span)), x.span)), x.span), principal);
    if (!isFalse(condition)) denials.push({ rule: x.id, at: spanAt(x.span), kind: "exclusive", condition });
  }
  for (const f of policy.forbids) {
    if (f.duties !== null && !f.duties.includes(duty.name)) continue;
    // A forbid with `until` holds only while the request time is not past it, as a grant's.
    const condition = partialEvaluate(and(notAfter(f.until, f.span), f.when), principal);
    if (!isFalse(condition)) denials.push({ rule: f.id, at: spanAt(f.span), kind: "forbid", condition });
  }
  const grants: OpenGrant[] = [];
  for (const g of policy.grants) {
    if (g.duty !== duty.name) continue;
    const role = any(g.roles.map((r) => holdsRole(r, g.span)), g.span);
    const until = notAfter(g.until, g.span);
    const condition = partialEvaluate(and(and(role, until), g.when ?? TRUE(g.span)), principal);
    if (!isFalse(condition)) grants.push({ rule: g.id, at: spanAt(g.span), roles: g.roles, condition, beyondRole: partialEvaluate(and(until, g.when ?? TRUE(g.span)), principal) });
  }
  const allowed = and(not(any(denials.map((d) => d.condition), span)), any(grants.map((g) => g.condition), span));
  return { duty, allowed, grants, denials, separations: policy.separations.filter((s) => s.duties.includes(duty.name)).map((s) => s.id) };
}

/**
 * Every duty `principal` may perform (on some request), with the conditions still open; duties
 * it may never perform are left out.
 *
 * @example dutiesOf(policy, alice).map((q) => q.duty.name) // ["list_changes", "submit_change"]
 */
export function dutiesOf(policy: CheckedPolicy, principal: Principal): DutyQuery[] {
  return policy.duties.map((d) => queryDuty(policy, d, principal)).filter((q) => !isFalse(q.allowed));
}
