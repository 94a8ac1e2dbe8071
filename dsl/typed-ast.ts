// The typed AST: what the checker proves about a policy, and what both evaluators consume.
import type { RegexProgram } from "./regex.ts";
import type { PrincipalSchema, Span, Type } from "./types.ts";

export type TExpr = { type: Type; span: Span } & (
  | { k: "const"; value: unknown }
  | { k: "principal"; attr: string }
  | { k: "request"; field: "method" | "path" | "ip" | "time" }
  | { k: "header"; name: string }
  | { k: "query"; name: string }
  | { k: "param"; name: string }
  | { k: "hasHeader"; name: string }
  | { k: "hasQuery"; name: string }
  | { k: "setOf"; items: TExpr[] }
  | { k: "not"; operand: TExpr }
  | { k: "and" | "or"; left: TExpr; right: TExpr }
  /** Equality; `by` says how values compare (ip/cidr by canonical text, sets by members). */
  | { k: "eq" | "ne"; left: TExpr; right: TExpr; by: "value" | "text" | "set" }
  | { k: "lt" | "le" | "gt" | "ge"; left: TExpr; right: TExpr }
  /** Membership: element in set (`member`), ip in cidr (`cidr`), ip in set<cidr> (`cidrSet`). */
  | { k: "in"; element: TExpr; container: TExpr; mode: "member" | "cidr" | "cidrSet"; byText: boolean }
  | { k: "startsWith" | "endsWith"; left: TExpr; right: TExpr }
  | { k: "add" | "sub"; left: TExpr; right: TExpr }
  /** The whole string matches the pattern, checked when the policy was (`dsl/regex.ts`). */
  | { k: "matches"; subject: TExpr; regex: RegexProgram }
  /** Unicode default lower-casing, the same in every locale. */
  | { k: "lower"; operand: TExpr }
  /** Unary minus of an int or a duration (a constant operand is folded by the checker). */
  | { k: "neg"; operand: TExpr }
  /** `principal has team`: the optional attribute is present. */
  | { k: "hasAttr"; attr: string }
  /** `request.time.time_of_day` (a duration since midnight UTC) or `request.time.weekday` (`mon`…`sun`, UTC). */
  | { k: "timePart"; part: "time_of_day" | "weekday" }
);

/** Route segments: literal text, a named param (`:change`), or a trailing wildcard (`*`). */
export type Segment = { kind: "literal"; text: string } | { kind: "param"; name: string } | { kind: "wildcard" };

export interface CheckedDuty {
  name: string;
  /** The methods as written, `GET` or `GET|HEAD`: for display. */
  method: string;
  /** Every method the duty answers (one, or several for `GET|HEAD`). */
  methods: string[];
  pattern: string;
  segments: Segment[];
  params: string[];
  upstream: string;
  channel: "operational" | "admin";
  span: Span;
}

export interface CheckedGrant {
  id: string;
  roles: string[];
  duty: string;
  when: TExpr | null;
  /** Inclusive end, epoch ms. */
  until: number | null;
  untilText: string | null;
  span: Span;
}

export interface CheckedForbid {
  id: string;
  /** null: every duty (`forbid *`). */
  duties: string[] | null;
  when: TExpr;
  /** Inclusive end, epoch ms: after it the forbid no longer applies. */
  until: number | null;
  untilText: string | null;
  span: Span;
}

export interface CheckedExclusive {
  id: string;
  atLeast: number;
  roles: string[];
  span: Span;
}

export interface CheckedSeparation {
  id: string;
  duties: string[];
  /** The route params whose values make the ledger key, in the order written (one, or several). */
  params: string[];
  span: Span;
}

/** A policy that passed the checker: every name resolved, every expression typed. */
export interface CheckedPolicy {
  files: string[];
  schema: PrincipalSchema;
  roles: string[];
  enums: Readonly<Record<string, readonly string[]>>;
  upstreams: string[];
  duties: CheckedDuty[];
  grants: CheckedGrant[];
  forbids: CheckedForbid[];
  exclusives: CheckedExclusive[];
  separations: CheckedSeparation[];
}

export function ruleId(kind: string, span: Span): string {
  return `${kind}:${span.file}:${span.line}:${span.col}`;
}

export function spanAt(span: Span): string {
  return `${span.file}:${span.line}:${span.col}`;
}
