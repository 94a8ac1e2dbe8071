// The untyped AST: declarations and expressions as written, every node with its source span.
import type { Span } from "./types.ts";

export interface Name {
  text: string;
  span: Span;
}

export type TypeRef =
  | { kind: "named"; name: Name; span: Span }
  | { kind: "set"; of: TypeRef; span: Span };

export type BinaryOp = "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "has" | "starts_with" | "ends_with" | "matches" | "+" | "-" | "and" | "or";

export type Expr =
  | { kind: "string"; value: string; span: Span }
  | { kind: "int"; value: number; span: Span }
  | { kind: "bool"; value: boolean; span: Span }
  | { kind: "duration"; text: string; span: Span }
  | { kind: "datetime"; text: string; span: Span }
  | { kind: "cidr"; text: string; span: Span }
  | { kind: "ip"; text: string; span: Span }
  | { kind: "set"; items: Expr[]; span: Span }
  /** `head(arg)` — a typed literal such as `ip("::1")`. */
  | { kind: "call"; fn: Name; arg: string; span: Span }
  /** `fn(expr)` — a function of a value, such as `lower(request.path)`. */
  | { kind: "apply"; fn: Name; arg: Expr; span: Span }
  /** `head.member["key"].member` — resolved by the checker. */
  | { kind: "ref"; head: Name; members: Array<{ name: string; quoted: boolean; span: Span }>; span: Span }
  | { kind: "not"; operand: Expr; span: Span }
  /** Unary minus: `-5`, `-1h`, `-(a + b)`. */
  | { kind: "neg"; operand: Expr; span: Span }
  | { kind: "binary"; op: BinaryOp; opSpan: Span; left: Expr; right: Expr; span: Span };

/** `optional`: declared `name?: type`, so a principal may lack it (test with `principal has name`). */
export interface PrincipalDecl { kind: "principal"; attrs: Array<{ name: Name; type: TypeRef; optional: boolean }>; span: Span }
/** `channel` is `admin` for roles meant to hold admin-channel duties (`role sre channel admin`). */
export interface RoleDecl { kind: "role"; names: Name[]; channel: Name | null; span: Span }
export interface EnumDecl { kind: "enum"; name: Name; values: Name[]; span: Span }
export interface UpstreamDecl { kind: "upstream"; names: Name[]; span: Span }
export interface DutyDecl {
  kind: "duty";
  name: Name;
  method: Name;
  pattern: Name;
  upstream: Name;
  channel: Name | null;
  span: Span;
}
export interface GrantDecl { kind: "grant"; roles: Name[]; duty: Name; when: Expr | null; until: Name | null; span: Span }
/** `duties` is null for `forbid *` (every duty). */
export interface ForbidDecl { kind: "forbid"; duties: Name[] | null; when: Expr; until: Name | null; span: Span }
export interface ExclusiveDecl { kind: "exclusive"; atLeast: { value: number; span: Span } | null; roles: Name[]; span: Span }
/** `params`: the route params whose values together are the ledger key (`by tenant, invoice`). */
export interface SeparateDecl { kind: "separate"; duties: Name[]; params: Name[]; span: Span }

/** `condition NAME = EXPR`: a named boolean condition, usable as `NAME` in any `when`. */
export interface ConditionDecl { kind: "condition"; name: Name; body: Expr; span: Span }
/** `group NAME = a, b, c`: a named list of roles or of duties (or of other such groups). */
export interface GroupDecl { kind: "group"; name: Name; members: Name[]; span: Span }

/** `@id("approve-by-reviewer")` written before a declaration: `name` is `id`, `value` the unquoted text. */
export interface Annotation { name: Name; value: Name; span: Span }

export type Declaration = (PrincipalDecl | RoleDecl | EnumDecl | UpstreamDecl | DutyDecl | GrantDecl | ForbidDecl | ExclusiveDecl | SeparateDecl | ConditionDecl | GroupDecl) & {
  /** The annotation written before it, if any (the checker accepts `@id` on rules only). */
  annotation?: Annotation;
};

export interface PolicyFile {
  file: string;
  declarations: Declaration[];
}
