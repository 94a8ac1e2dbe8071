// The meaning of a typed expression, written plainly. The reference interpreter and the
// checker's constant folding use it; the compiled tree must agree with it on every case.
import type { TExpr } from "./typed-ast.ts";
import type { CidrValue, IpValue, Principal, PolicyRequest } from "./types.ts";
import { regexMatches } from "./regex.ts";
import { cidrContains, parseCidr } from "./values.ts";

export interface EvalEnv {
  principal: Principal;
  request: PolicyRequest;
  params: Readonly<Record<string, string>>;
}

/** Set members are primitives; ip and cidr values are held by their canonical text. */
export function memberKey(v: unknown): unknown {
  return typeof v === "object" && v !== null && "text" in v ? (v as IpValue).text : v;
}

/** `request.time.weekday` values, indexed as `Date.prototype.getUTCDay` (0 = Sunday). */
export const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

export function evaluate(e: TExpr, env: EvalEnv): unknown {
  switch (e.k) {
    case "const": return e.value;
    case "principal": return env.principal[e.attr];
    case "request": return env.request[e.field];
    // An absent header, query parameter or param reads as the empty string; `has` tells presence.
    case "header": return env.request.headers[e.name] ?? "";
    case "query": return env.request.query[e.name] ?? "";
    case "param": return env.params[e.name] ?? "";
    case "hasHeader": return env.request.headers[e.name] !== undefined;
    case "hasAttr": return env.principal[e.attr] !== undefined;
    case "hasQuery": return env.request.query[e.name] !== undefined;
    case "setOf": return new Set(e.items.map((i) => memberKey(evaluate(i, env))));
    case "not": return !evaluate(e.operand, env);
    case "and": return evaluate(e.left, env) === true && evaluate(e.right, env) === true;
    case "or": return evaluate(e.left, env) === true || evaluate(e.right, env) === true;
    case "eq":
    case "ne": {
      const l = evaluate(e.left, env);
      const r = evaluate(e.right, env);
      let same: boolean;
      if (e.by === "text") same = (l as IpValue).text === (r as IpValue).text;
      else if (e.by === "set") {
        const a = l as ReadonlySet<unknown>;
        const b = r as ReadonlySet<unknown>;
        same = a.size === b.size && [...a].every((x) => b.has(x));
      } else same = l === r;
      return e.k === "eq" ? same : !same;
    }
    case "lt": return (evaluate(e.left, env) as number) < (evaluate(e.right, env) as number);
    case "le": return (evaluate(e.left, env) as number) <= (evaluate(e.right, env) as number);
    case "gt": return (evaluate(e.left, env) as number) > (evaluate(e.right, env) as number);
    case "ge": return (evaluate(e.left, env) as number) >= (evaluate(e.right, env) as number);
    case "in": {
      const el = evaluate(e.element, env);
      const container = evaluate(e.container, env);
      if (e.mode === "cidr") return cidrContains(container as CidrValue, el as IpValue);
      if (e.mode === "cidrSet") {
        for (const text of container as ReadonlySet<string>) {
          if (cidrContainsText(text, el as IpValue)) return true;
        }
        return false;
      }
      return (container as ReadonlySet<unknown>).has(e.byText ? (el as IpValue).text : el);
    }
    case "startsWith": return (evaluate(e.left, env) as string).startsWith(evaluate(e.right, env) as string);
    case "endsWith": return (evaluate(e.left, env) as string).endsWith(evaluate(e.right, env) as string);
    case "add": return (evaluate(e.left, env) as number) + (evaluate(e.right, env) as number);
    case "sub": return (evaluate(e.left, env) as number) - (evaluate(e.right, env) as number);
    case "matches": return regexMatches(e.regex, evaluate(e.subject, env) as string);
    case "lower": return (evaluate(e.operand, env) as string).toLowerCase();
    case "neg": return -(evaluate(e.operand, env) as number) || 0;
    // UTC, read through the calendar; the compiled tree computes the same by arithmetic.
    case "timePart": {
      const d = new Date(env.request.time);
      return e.part === "weekday" ? WEEKDAYS[d.getUTCDay()] : ((d.getUTCHours() * 60 + d.getUTCMinutes()) * 60 + d.getUTCSeconds()) * 1000 + d.getUTCMilliseconds();
    }
  }
}

const cidrCache = new Map<string, CidrValue | null>();

/** CIDR membership for a set<cidr> element held as text. */
export function cidrContainsText(text: string, ip: IpValue): boolean {
  let c = cidrCache.get(text);
  if (c === undefined) {
    c = parseCidr(text);
    if (cidrCache.size < 10_000) cidrCache.set(text, c);
  }
  return c !== null && cidrContains(c, ip);
}

/** True when the expression reads nothing from the principal or the request. */
export function isConstant(e: TExpr): boolean {
  switch (e.k) {
    case "const": return true;
    case "principal": case "request": case "header": case "query": case "param": case "hasHeader": case "hasQuery": case "timePart": case "hasAttr": return false;
    case "setOf": return e.items.every(isConstant);
    case "not": case "lower": case "neg": return isConstant(e.operand);
    case "matches": return isConstant(e.subject);
    case "in": return isConstant(e.element) && isConstant(e.container);
    default: return isConstant(e.left) && isConstant(e.right);
  }
}
