// Plain data shared by every stage of the language: types, runtime values, spans,
// diagnostics and decisions. Nothing here knows of HTTP, TLS or files.

/** A position in a policy source: 1-based line and column, 0-based offsets. */
export interface Span {
  file: string;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
  start: number;
  end: number;
}

export type Severity = "error" | "warning";

/** A diagnostic is a value: collected, sorted by position, rendered later. */
export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  span: Span;
  help?: string;
}

/** The type of an attribute or expression. */
export type Type =
  | { kind: "string" }
  | { kind: "int" }
  | { kind: "bool" }
  | { kind: "ip" }
  | { kind: "cidr" }
  | { kind: "time" }
  | { kind: "duration" }
  | { kind: "set"; of: Type }
  | { kind: "enum"; name: string; values: readonly string[] }
  /** The empty set literal `[]` before its element type is known. */
  | { kind: "any" };

/** The typed `principal { ... }` schema of a policy: attribute name to type; `optional` for
 * `name?: type` (a principal may lack it). */
export type PrincipalSchema = Readonly<Record<string, Type & { optional?: boolean }>>;

/**
 * Runtime values.
 * - string, enum → string; int → number; bool → boolean
 * - ip → IpValue; cidr → CidrValue
 * - time → epoch milliseconds (number); duration → milliseconds (number)
 * - set<T> → ReadonlySet of the element's runtime value (ip/cidr elements as their canonical text)
 */
export interface IpValue {
  readonly kind: "ip";
  readonly v6: boolean;
  /** 32 or 128 bit address as a bigint. */
  readonly addr: bigint;
  readonly text: string;
}
export interface CidrValue {
  readonly kind: "cidr";
  readonly v6: boolean;
  readonly addr: bigint;
  readonly prefix: number;
  readonly text: string;
}
export type Value = string | number | boolean | IpValue | CidrValue | ReadonlySet<unknown>;

/** A caller, as the policy sees it: typed attributes of the schema. `sub` and `roles` always exist. */
export interface Principal {
  readonly sub: string;
  readonly roles: ReadonlySet<string>;
  readonly [attr: string]: unknown;
}

/** The request as the policy sees it. The gateway builds it once per request. */
export interface PolicyRequest {
  /** Upper-case method. */
  method: string;
  /** Normalised path, as matched and as forwarded. */
  path: string;
  /** Client address. */
  ip: IpValue;
  /** Request time, epoch milliseconds. */
  time: number;
  /** Lower-case header name → value. */
  headers: Readonly<Record<string, string | undefined>>;
  query: Readonly<Record<string, string | undefined>>;
}

export type Channel = "operational" | "admin";

/** A route match: which duty a request would perform, and the route params. */
export interface RouteMatch {
  duty: string;
  params: Readonly<Record<string, string>>;
}

/** Stable decision codes (also used in audit records and problem bodies). */
export type DecisionCode =
  | "ALLOW"
  | "DENY_NO_ROUTE"
  | "DENY_NO_GRANT"
  | "DENY_FORBID"
  | "DENY_EXCLUSIVE"
  | "DENY_SOD_HISTORY"
  /** Set by the gateway, never by the policy: a duty on `gateway` reached off the admin channel. */
  | "DENY_ADMIN_CHANNEL_ONLY";

/** One rule considered by a decision, and whether it held. */
export interface Reason {
  /** Stable rule id: `<kind>:<id>` for a rule written with `@id("…")` (`grant:approve-by-reviewer`),
   * else `<kind>:<file>:<line>:<col>` (`grant:changes.duty:12:1`). */
  rule: string;
  kind: "grant" | "forbid" | "exclusive" | "separate" | "default";
  /** file:line:col of the rule. */
  at: string;
  held: boolean;
  /** Why it held or not, in words: `principal lacks role reviewer`, `until 2026-12-31 passed`. */
  why: string;
}

/** A history separation that an allowed request must pass against the duty ledger. */
export interface SeparationCheck {
  /** Stable constraint id: `separate:<id>` with `@id("…")`, else `separate:<file>:<line>:<col>`.
   * The ledger keeps its facts under it. */
  constraint: string;
  /** file:line:col of the `separate` rule (absent in checks made outside a decision). */
  at?: string;
  /** The route param the duties are separated by (several: `tenant, invoice`), and its value on
   * this request as a ledger key (`canonicalLedgerKey`: decoded once, NFC, trimmed; for several
   * params `compositeLedgerKey`, a JSON array of those keys: `["acme","INV-1"]`). */
  param: string;
  key: string;
  /** Every duty of the constraint. */
  duties: readonly string[];
}

/** A fact from the duty ledger used by a decision. */
export interface LedgerFact {
  constraint: string;
  key: string;
  duty: string;
  sub: string;
  /** epoch milliseconds */
  at: number;
}

export interface Decision {
  allow: boolean;
  code: DecisionCode;
  duty: string | null;
  /** The id of the rule that decided, when one did (`forbid:…`, `grant:…`, `exclusive:…`, `separate:…`; see `Reason.rule`). */
  decidedBy: string | null;
  /** Every rule considered, in evaluation order. */
  reasons: Reason[];
  /** The decision-tree branch taken, as readable steps (empty for the interpreter). */
  branch: string[];
  /** History separations still to be checked against the ledger when `allow`. */
  separations: SeparationCheck[];
  /** Ledger facts used, when a ledger was consulted. */
  ledger: LedgerFact[];
  /** A human message for the deny. */
  message: string;
}
