// Typed expressions and runtime values as policy text: what `gateway explain` says failed and
// what `gateway query` says is still open are written as the policy author would write them.
import type { TExpr } from "./typed-ast.ts";
import type { Type } from "./types.ts";

const PRECEDENCE: Record<string, number> = { or: 1, and: 2, not: 3, cmp: 4, add: 5, atom: 6 };

function level(e: TExpr): number {
  switch (e.k) {
    case "or": return PRECEDENCE.or!;
    case "and": return PRECEDENCE.and!;
    case "not": return PRECEDENCE.not!;
    case "eq": case "ne": case "lt": case "le": case "gt": case "ge": case "in": case "startsWith": case "endsWith": case "matches": case "hasHeader": case "hasQuery": case "hasAttr": return PRECEDENCE.cmp!;
    case "add": case "sub": return PRECEDENCE.add!;
    default: return PRECEDENCE.atom!;
  }
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

/** A duration in milliseconds as a literal: `1h30m`, `250ms`. */
export function durationText(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.abs(ms);
  let out = "";
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) { out += `${n}${unit}`; rest -= n * size; }
  }
  return ms < 0 ? `-${out}` : out;
}

/** A runtime value of `type` as policy text: `"core"`, `42`, `10.0.0.0/8`, `2026-06-01T12:00:00Z`, `[gold, silver]`. */
export function valueText(value: unknown, type: Type): string {
  switch (type.kind) {
    case "string": return typeof value === "string" ? quote(value) : String(value);
    case "time": return typeof value === "number" ? new Date(value).toISOString().replace(".000Z", "Z") : String(value);
    case "duration": return typeof value === "number" ? durationText(value) : String(value);
    case "ip": case "cidr": {
      // Set members are held as their text; IPv6 has no bare literal.
      const text = typeof value === "object" && value !== null && "text" in value ? String((value as { text: string }).text) : String(value);
      return text.includes(":") ? `${type.kind}(${quote(text)})` : text;
    }
    case "set": {
      const items = value instanceof Set ? [...value] : [];
      return `[${items.map((v) => valueText(v, type.of)).sort().join(", ")}]`;
    }
    default: return String(value);
  }
}

/** A typed expression as policy text, with the parentheses its precedence needs. */
export function exprText(e: TExpr): string {
  const wrap = (inner: TExpr, min: number) => (level(inner) < min ? `(${exprText(inner)})` : exprText(inner));
  const bin = (op: string, l: TExpr, r: TExpr, lv: number) => `${wrap(l, lv + (lv === PRECEDENCE.cmp ? 1 : 0))} ${op} ${wrap(r, lv + 1)}`;
  switch (e.k) {
    case "const": return valueText(e.value, e.type);
    case "principal": return `principal.${e.attr}`;
    case "request": return `request.${e.field}`;
    case "header": return `request.header[${quote(e.name)}]`;
    case "query": return `request.query[${quote(e.name)}]`;
    case "param": return `request.param.${e.name}`;
    case "hasHeader": return `request.header has ${quote(e.name)}`;
    case "hasQuery": return `request.query has ${quote(e.name)}`;
    case "setOf": return `[${e.items.map(exprText).join(", ")}]`;
    case "not": return `not ${wrap(e.operand, PRECEDENCE.not!)}`;
    case "and": return bin("and", e.left, e.right, PRECEDENCE.and!);
    case "or": return bin("or", e.left, e.right, PRECEDENCE.or!);
    case "eq": return bin("==", e.left, e.right, PRECEDENCE.cmp!);
    case "ne": return bin("!=", e.left, e.right, PRECEDENCE.cmp!);
    case "lt": return bin("<", e.left, e.right, PRECEDENCE.cmp!);
    case "le": return bin("<=", e.left, e.right, PRECEDENCE.cmp!);
    case "gt": return bin(">", e.left, e.right, PRECEDENCE.cmp!);
    case "ge": return bin(">=", e.left, e.right, PRECEDENCE.cmp!);
    case "in": return bin("in", e.element, e.container, PRECEDENCE.cmp!);
    case "startsWith": return bin("starts_with", e.left, e.right, PRECEDENCE.cmp!);
    case "endsWith": return bin("ends_with", e.left, e.right, PRECEDENCE.cmp!);
    case "matches": return `${wrap(e.subject, PRECEDENCE.add!)} matches ${quote(e.regex.source)}`;
    case "add": return bin("+", e.left, e.right, PRECEDENCE.add!);
    case "sub": return bin("-", e.left, e.right, PRECEDENCE.add!);
    case "lower": return `lower(${exprText(e.operand)})`;
    case "hasAttr": return `principal has ${e.attr}`;
    case "timePart": return `request.time.${e.part}`;
    case "neg": return `-${wrap(e.operand, PRECEDENCE.atom!)}`;
  }
  return `(${(e as TExpr).k})`;
}
