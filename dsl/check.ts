// The type checker: resolves every name, types every expression, and finds the policy
// mistakes a reviewer would miss (overlapping duties, grants that can never apply, expired
// exceptions). It collects all diagnostics; a policy with an error yields no CheckedPolicy.
import type { ConditionDecl, Declaration, Expr, GroupDecl, Name, PolicyFile, TypeRef } from "./ast.ts";
import { diagnostic, didYouMean, hasErrors } from "./diagnostics.ts";
import { evaluate, isConstant } from "./evaluate.ts";
import {
  ruleId,
  type CheckedDuty, type CheckedExclusive, type CheckedForbid, type CheckedGrant, type CheckedPolicy,
  type CheckedSeparation, type Segment, type TExpr,
} from "./typed-ast.ts";
import type { Diagnostic, PrincipalSchema, Span, Type } from "./types.ts";
import { parseRegex } from "./regex.ts";
import { parseCidr, parseDuration, parseIp, parseTime, typeToString } from "./values.ts";

export interface CheckOptions {
  /** "Now" for `until` checks, epoch ms. */
  now?: number;
  /** Days before an `until` date at which a warning is given. */
  untilWarningDays?: number;
}

export interface CheckResult {
  policy: CheckedPolicy | null;
  diagnostics: Diagnostic[];
}

export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
const CHANNELS = ["operational", "admin"] as const;
/** The declarations that are rules: they decide, and may carry an `@id`. */
const RULE_KINDS = ["grant", "forbid", "exclusive", "separate"] as const;
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/**
 * The upstream the gateway serves itself: its admin functions (metrics, policy status, reload,
 * explain). Duties may reach it on the admin channel only.
 */
export const GATEWAY_UPSTREAM = "gateway";
const REQUEST_FIELDS = ["method", "path", "ip", "time", "header", "query", "param"] as const;
const PRIMITIVES: Record<string, Type> = {
  string: { kind: "string" }, int: { kind: "int" }, bool: { kind: "bool" }, ip: { kind: "ip" },
  cidr: { kind: "cidr" }, time: { kind: "time" }, duration: { kind: "duration" },
};
const BOOL: Type = { kind: "bool" };
const TIME_PARTS = ["time_of_day", "weekday"] as const;
/** The type of `request.time.weekday`: a built-in enum whose values are written bare (`sat`). */
const WEEKDAY: Type = { kind: "enum", name: "weekday", values: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] };
/** Type names of other languages, and what they are called here. */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  integer: "int", number: "int", long: "int", boolean: "bool", str: "string", text: "string",
  datetime: "time", timestamp: "time", date: "time", list: "set<…>", array: "set<…>",
};
/** Functions of a value (`lower(x)`); typed literals (`ip("…")`) are the other calls. */
const VALUE_FUNCTIONS = ["lower"] as const;
const LITERAL_FUNCTIONS = ["ip", "cidr", "time", "duration"] as const;
const SEGMENT_TEXT = /^[A-Za-z0-9._~!$&'()+,;=@%-]+$/;

export function sameType(a: Type, b: Type): boolean {
  if (a.kind === "any" || b.kind === "any") return true;
  if (a.kind !== b.kind) return false;
  if (a.kind === "set" && b.kind === "set") return sameType(a.of, b.of);
  if (a.kind === "enum" && b.kind === "enum") return a.name === b.name;
  return true;
}

/** Parses a route pattern into segments, or says what is wrong with it. */
export function parsePattern(pattern: string): { segments: Segment[] } | { error: string; help?: string } {
  if (pattern === "/") return { segments: [] };
  const parts = pattern.slice(1).split("/");
  const segments: Segment[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p === "*") {
      if (i !== parts.length - 1) return { error: "`*` may only be the last segment of a route" };
      segments.push({ kind: "wildcard" });
    } else if (p.startsWith(":")) {
      const name = p.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { error: `bad route param \`${p}\``, help: "params look like `:change`" };
      if (seen.has(name)) return { error: `route param \`:${name}\` appears twice` };
      seen.add(name);
      segments.push({ kind: "param", name });
    } else if (p === "" || p === "." || p === "..") {
      return { error: `route \`${pattern}\` has an empty or dot segment`, help: "routes are matched against normalised paths: no `//`, `.` or `..`" };
    } else if (!SEGMENT_TEXT.test(p)) {
      return { error: `route segment \`${p}\` has characters that never appear in a normalised path` };
    } else segments.push({ kind: "literal", text: p });
  }
  return { segments };
}

/** The shape of a route with param names erased: two duties of the same shape and method overlap. */
export function routeShape(segments: readonly Segment[]): string {
  return "/" + segments.map((s) => (s.kind === "literal" ? s.text : s.kind === "param" ? ":" : "*")).join("/");
}

interface Scope {
  /** Route params that every duty the rule applies to has. */
  params: ReadonlySet<string>;
  paramHelp: readonly string[];
  /** The rule names a duty that has an error: its params are unknown, so param references go unchecked. */
  open?: boolean;
  /** Optional principal attributes known present here (`principal has team and …`). */
  present?: ReadonlySet<string>;
}

export function checkPolicy(files: readonly PolicyFile[], options: CheckOptions = {}): CheckResult {
  const now = options.now ?? Date.now();
  const warnMs = (options.untilWarningDays ?? 14) * 86_400_000;
  const diags: Diagnostic[] = [];
  const err = (code: string, message: string, span: Span, help?: string) => diags.push(diagnostic(code, "error", message, span, help));
  const warn = (code: string, message: string, span: Span, help?: string) => diags.push(diagnostic(code, "warning", message, span, help));
  const badDate = (text: string, span: Span) => {
    const noOffset = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/.exec(text);
    if (noOffset) err("E_BAD_LITERAL", `date-time \`${text}\` has no UTC offset`, span, `a time of day needs its offset: \`${text}Z\` for UTC, or e.g. \`${text}+02:00\``);
    else err("E_BAD_LITERAL", `bad date \`${text}\``, span, "dates are `2026-12-31` or `2026-12-31T18:00:00Z`");
  };
  /** The end of a grant or forbid as epoch ms; undefined (after an error) when bad or past. */
  const checkUntil = (until: Name, what: "grant" | "forbid"): number | undefined => {
    const t = parseTime(until.text, true);
    if (t === null) { badDate(until.text, until.span); return undefined; }
    if (t < now) { err("E_UNTIL_PAST", `this ${what} expired on ${until.text}`, until.span, `remove the ${what}, or extend it with a new reviewed date`); return undefined; }
    if (t - now <= warnMs) warn("W_UNTIL_SOON", `this ${what} expires on ${until.text}, in ${Math.ceil((t - now) / 86_400_000)} days`, until.span);
    return t;
  };
  const all: Declaration[] = files.flatMap((f) => f.declarations);
  const of = <K extends Declaration["kind"]>(kind: K) => all.filter((d): d is Extract<Declaration, { kind: K }> => d.kind === kind);
  // Filled once duties and roles are known; role and duty resolution consult them for "did you mean".
  const groupDecls = new Map<string, GroupDecl>();
  const groups = new Map<string, GroupValue | null>();
  const usedGroups = new Set<string>();
  const groupsOf = (kind: "role" | "duty") => [...groups.entries()].filter(([, g]) => g?.kind === kind).map(([n]) => n);
  const conditionDecls = new Map<string, ConditionDecl>();

  // --- rule ids ----------------------------------------------------------------------------
  // `@id("…")` names a rule for good: tests, explain, the audit log and replay cite it, and
  // inserting a line above no longer changes it. A rule without one is known by its location.
  const ruleIds = new Map<Declaration, string>();
  const firstWithId = new Map<string, Span>();
  for (const d of all) {
    const a = d.annotation;
    if (!a) continue;
    if (a.name.text !== "id") {
      err("E_UNKNOWN_ANNOTATION", `unknown annotation \`@${a.name.text}\``, a.name.span, didYouMean(a.name.text, ["id"]) ?? "the one annotation is `@id(\"…\")`, written before a rule");
      continue;
    }
    if (!(RULE_KINDS as readonly string[]).includes(d.kind)) {
      err("E_ID_NOT_ON_RULE", `\`@id\` names a rule, not a \`${d.kind}\` declaration`, a.span, `rules are ${RULE_KINDS.join(", ")}; remove the \`@id\``);
      continue;
    }
    const id = a.value.text;
    if (!RULE_ID.test(id)) {
      err("E_BAD_RULE_ID", `bad rule id \`${id}\``, a.value.span, "a rule id is 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit: `@id(\"approve-by-reviewer\")`");
      continue;
    }
    const first = firstWithId.get(id);
    if (first) {
      err("E_DUPLICATE_RULE_ID", `rule id \`${id}\` is used twice`, a.value.span, `first used at ${at(first)}; rule ids are unique across grants, forbids, exclusives and separates`);
      continue;
    }
    firstWithId.set(id, d.span);
    ruleIds.set(d, `${d.kind}:${id}`);
  }
  /** The stable id of a rule: `grant:approve-by-reviewer` with `@id`, else `grant:file:line:col`. */
  const ruleIdOf = (d: Declaration): string => ruleIds.get(d) ?? ruleId(d.kind, d.span);

  // --- enums and roles -------------------------------------------------------------------
  const enums = new Map<string, string[]>();
  const enumValueSpans = new Map<string, Span>();
  const roleDecls = of("role");
  if (roleDecls.length) enums.set("role", []);
  // Roles declared `channel admin` may hold admin-channel duties; the others are operational.
  const adminRoles = new Set<string>();
  for (const d of roleDecls) {
    if (d.channel && d.channel.text !== "admin") {
      err("E_UNKNOWN_CHANNEL", `\`role … channel\` takes \`admin\`, found \`${d.channel.text}\``, d.channel.span, d.channel.text === "operational" ? "roles are operational unless declared `channel admin`: remove `channel operational`" : didYouMean(d.channel.text, ["admin"]) ?? "write `role NAME channel admin` for roles that administer the gateway");
    }
    for (const n of d.names) {
      if (d.channel?.text === "admin") adminRoles.add(n.text);
      if (enumValueSpans.has(`role.${n.text}`)) err("E_DUPLICATE_ROLE", `role \`${n.text}\` is declared twice`, n.span);
      else {
        enumValueSpans.set(`role.${n.text}`, n.span);
        enums.get("role")!.push(n.text);
      }
    }
  }
  for (const d of of("enum")) {
    if (d.name.text === "role" || enums.has(d.name.text) || d.name.text in PRIMITIVES) {
      err("E_DUPLICATE_TYPE", `type \`${d.name.text}\` is already declared`, d.name.span, d.name.text === "role" ? "declare roles with `role a, b`" : undefined);
      continue;
    }
    const values: string[] = [];
    for (const v of d.values) {
      if (values.includes(v.text)) err("E_DUPLICATE_ENUM_VALUE", `\`${v.text}\` appears twice in enum \`${d.name.text}\``, v.span);
      else values.push(v.text);
    }
    enums.set(d.name.text, values);
  }
  const roles = enums.get("role") ?? [];
  const roleSet = new Set(roles);
  const enumType = (name: string): Type => ({ kind: "enum", name, values: enums.get(name)! });
  // Roles some rule names (grant, exclusive, a condition): a declared role no rule names is unused.
  const mentionedRoles = new Set<string>();
  const resolveRole = (n: Name): boolean => {
    if (roleSet.has(n.text)) { mentionedRoles.add(n.text); return true; }
    err("E_UNKNOWN_ROLE", `unknown role \`${n.text}\``, n.span, didYouMean(n.text, [...roles, ...groupsOf("role")]) ?? (roles.length ? undefined : "declare roles with `role a, b`"));
    return false;
  };

  // --- upstreams ---------------------------------------------------------------------------
  const upstreams: string[] = [];
  for (const d of of("upstream")) {
    for (const n of d.names) {
      if (upstreams.includes(n.text)) err("E_DUPLICATE_UPSTREAM", `upstream \`${n.text}\` is declared twice`, n.span);
      else upstreams.push(n.text);
    }
  }

  // --- principal schema ------------------------------------------------------------------
  const schema: Record<string, Type & { optional?: boolean }> = {};
  // Attributes declared with a type that has an error: that error is reported once, at the
  // declaration; their uses are not each reported again as unknown attributes.
  const brokenAttributes = new Set<string>();
  const principalDecls = of("principal");
  const resolveType = (t: TypeRef): Type | null => {
    if (t.kind === "set") {
      const inner = resolveType(t.of);
      if (!inner) return null;
      if (inner.kind === "set") {
        err("E_NESTED_SET", "sets of sets are not supported", t.span);
        return null;
      }
      return { kind: "set", of: inner };
    }
    const name = t.name.text;
    if (name in PRIMITIVES) return PRIMITIVES[name]!;
    if (enums.has(name)) return enumType(name);
    const alias = TYPE_ALIASES[name.toLowerCase()];
    err("E_UNKNOWN_TYPE", `unknown type \`${name}\``, t.name.span, alias ? `the type is spelled \`${alias}\` here` : didYouMean(name, [...Object.keys(PRIMITIVES), ...enums.keys()]) ?? `types are ${Object.keys(PRIMITIVES).join(", ")}, set<T>, role and declared enums`);
    return null;
  };
  if (principalDecls.length === 0) {
    const span = files[0]?.declarations[0]?.span ?? { file: files[0]?.file ?? "<policy>", line: 1, col: 1, endLine: 1, endCol: 2, start: 0, end: 0 };
    err("E_NO_PRINCIPAL", "the policy declares no `principal { … }` schema", span, "add `principal { sub: string  roles: set<role> }`");
  }
  for (const [i, d] of principalDecls.entries()) {
    if (i > 0) {
      err("E_DUPLICATE_PRINCIPAL", "`principal` is declared more than once", d.span, "declare all attributes in one `principal { … }` block");
      continue;
    }
    for (const a of d.attrs) {
      if (a.name.text in schema) {
        err("E_DUPLICATE_ATTRIBUTE", `principal attribute \`${a.name.text}\` is declared twice`, a.name.span);
        continue;
      }
      const t = resolveType(a.type);
      if (t && a.optional && (a.name.text === "sub" || a.name.text === "roles")) {
        err("E_OPTIONAL_REQUIRED_ATTRIBUTE", `\`${a.name.text}\` cannot be optional: every principal has it`, a.name.span, `write \`${a.name.text}: …\``);
        brokenAttributes.add(a.name.text);
      } else if (t) schema[a.name.text] = a.optional ? { ...t, optional: true } : t;
      else brokenAttributes.add(a.name.text);
    }
    if ((!schema.sub || schema.sub.kind !== "string") && !brokenAttributes.has("sub")) {
      err("E_PRINCIPAL_SUB", "the principal must declare `sub: string`", d.span);
    }
    const r = schema.roles;
    if ((!r || r.kind !== "set" || r.of.kind !== "enum" || r.of.name !== "role") && !brokenAttributes.has("roles")) {
      err("E_PRINCIPAL_ROLES", "the principal must declare `roles: set<role>`", d.span, roles.length ? undefined : "declare roles with `role a, b`");
    }
  }

  // --- duties ----------------------------------------------------------------------------
  const duties: CheckedDuty[] = [];
  // Declared duties that have an error: rules naming them get no follow-on "unknown duty" errors.
  const brokenDuties = new Set<string>();
  const dutyByName = new Map<string, CheckedDuty>();
  const shapes = new Map<string, CheckedDuty>();
  for (const d of of("duty")) {
    if (dutyByName.has(d.name.text)) {
      err("E_DUPLICATE_DUTY", `duty \`${d.name.text}\` is declared twice`, d.name.span, `first declared at ${at(dutyByName.get(d.name.text)!.span)}`);
      continue;
    }
    let ok = true;
    // `GET|HEAD`: one duty, several methods; each is checked where it stands in the token.
    const methods: string[] = [];
    let offset = 0;
    for (const method of d.method.text.split("|")) {
      const span = { ...d.method.span, col: d.method.span.col + offset, endCol: d.method.span.col + offset + method.length, start: d.method.span.start + offset, end: d.method.span.start + offset + method.length };
      offset += method.length + 1;
      if (!(METHODS as readonly string[]).includes(method)) {
        ok = false;
        const upper = method.toUpperCase();
        err("E_BAD_METHOD", `unknown method \`${method}\``, span, (METHODS as readonly string[]).includes(upper) ? `methods are upper case: \`${upper}\`` : didYouMean(upper, METHODS) ?? `one of ${METHODS.join(", ")}`);
      } else if (methods.includes(method)) {
        ok = false;
        err("E_DUPLICATE_METHOD", `method \`${method}\` appears twice in this duty`, span);
      } else methods.push(method);
    }
    const method = methods.join("|");
    const parsed = parsePattern(d.pattern.text);
    if ("error" in parsed) {
      ok = false;
      err("E_BAD_ROUTE", parsed.error, d.pattern.span, parsed.help);
    }
    if (!upstreams.includes(d.upstream.text)) {
      ok = false;
      err("E_UNKNOWN_UPSTREAM", `unknown upstream \`${d.upstream.text}\``, d.upstream.span, didYouMean(d.upstream.text, upstreams) ?? `declare it with \`upstream ${d.upstream.text}\``);
    }
    let channel: "operational" | "admin" = "operational";
    if (d.channel) {
      if (!(CHANNELS as readonly string[]).includes(d.channel.text)) {
        ok = false;
        err("E_UNKNOWN_CHANNEL", `unknown channel \`${d.channel.text}\``, d.channel.span, didYouMean(d.channel.text, CHANNELS) ?? "channels are `operational` and `admin`");
      } else channel = d.channel.text as (typeof CHANNELS)[number];
    }
    if (ok && d.upstream.text === GATEWAY_UPSTREAM && channel !== "admin") {
      ok = false;
      err("E_GATEWAY_DUTY_NOT_ADMIN", `duty \`${d.name.text}\` reaches the built-in \`${GATEWAY_UPSTREAM}\` upstream on the ${channel} channel`, d.span, "the gateway's admin functions answer on the admin channel only: add `channel admin`");
    }
    if (!ok || "error" in parsed) { brokenDuties.add(d.name.text); continue; }
    const duty: CheckedDuty = {
      name: d.name.text, method, methods, pattern: d.pattern.text, segments: parsed.segments,
      params: parsed.segments.flatMap((s) => (s.kind === "param" ? [s.name] : [])),
      upstream: d.upstream.text, channel, span: d.span,
    };
    // Each channel has its own router: the same route on two channels is two distinct duties.
    const shapeKeys = methods.map((m) => `${channel} ${m} ${routeShape(parsed.segments)}`);
    const clash = shapeKeys.map((k) => shapes.get(k)).find((c) => c !== undefined);
    if (clash) {
      brokenDuties.add(duty.name);
      err("E_OVERLAPPING_DUTY", `duty \`${duty.name}\` has the same method and route as \`${clash.name}\``, d.pattern.span, `\`${clash.name}\` is declared at ${at(clash.span)}; a request must map to exactly one duty`);
      continue;
    }
    for (const k of shapeKeys) shapes.set(k, duty);
    dutyByName.set(duty.name, duty);
    duties.push(duty);
  }
  const dutyNames = () => duties.map((d) => d.name);
  const resolveDuty = (n: Name): CheckedDuty | null => {
    const d = dutyByName.get(n.text);
    if (!d && !brokenDuties.has(n.text)) err("E_UNKNOWN_DUTY", `unknown duty \`${n.text}\``, n.span, didYouMean(n.text, [...dutyNames(), ...groupsOf("duty")]));
    return d ?? null;
  };

  // --- groups ------------------------------------------------------------------------------
  // `group NAME = a, b, c` names a list of roles or of duties (or of such groups) once, for the
  // rules that would repeat it; a rule naming the group means each of its members.
  for (const d of of("group")) {
    const n = d.name.text;
    const first = groupDecls.get(n);
    if (first) { err("E_DUPLICATE_GROUP", `group \`${n}\` is declared twice`, d.name.span, `first declared at ${at(first.span)}`); continue; }
    if (roleSet.has(n) || dutyByName.has(n) || brokenDuties.has(n)) {
      err("E_DUPLICATE_GROUP", `group \`${n}\` has the name of a ${roleSet.has(n) ? "role" : "duty"}`, d.name.span, "a name in a list must mean one thing: rename the group");
      continue;
    }
    groupDecls.set(n, d);
  }
  const resolvingGroups = new Set<string>();
  const resolveGroup = (name: string): GroupValue | null => {
    if (groups.has(name)) return groups.get(name)!;
    const d = groupDecls.get(name)!;
    resolvingGroups.add(name);
    let kind: "role" | "duty" | null = null;
    const members: string[] = [];
    const written = new Set<string>();
    let ok = true;
    for (const m of d.members) {
      let memberKind: "role" | "duty";
      let items: readonly string[];
      if (written.has(m.text)) { err("E_DUPLICATE_MEMBER", `\`${m.text}\` appears twice in group \`${name}\``, m.span); ok = false; continue; }
      written.add(m.text);
      if (groupDecls.has(m.text)) {
        if (resolvingGroups.has(m.text)) { err("E_GROUP_CYCLE", `group \`${name}\` contains itself through \`${m.text}\``, m.span, "a group may hold other groups, but not itself, directly or through others"); ok = false; continue; }
        usedGroups.add(m.text);
        const g = resolveGroup(m.text);
        if (!g) { ok = false; continue; }
        memberKind = g.kind;
        items = g.members;
      } else if (roleSet.has(m.text)) { memberKind = "role"; items = [m.text]; mentionedRoles.add(m.text); }
      else if (dutyByName.has(m.text)) { memberKind = "duty"; items = [m.text]; }
      else {
        if (!brokenDuties.has(m.text)) err("E_UNKNOWN_NAME", `unknown role, duty or group \`${m.text}\``, m.span, didYouMean(m.text, [...roles, ...dutyNames(), ...groupDecls.keys()]));
        ok = false;
        continue;
      }
      if (kind !== null && memberKind !== kind) {
        err("E_MIXED_GROUP", `group \`${name}\` mixes roles and duties: \`${m.text}\` is a ${memberKind === "role" ? "role" : "duty"}, the first member a ${kind}`, m.span, "a group holds roles or duties, not both: make two groups");
        ok = false;
        continue;
      }
      kind = memberKind;
      for (const item of items) if (!members.includes(item)) members.push(item);
    }
    resolvingGroups.delete(name);
    const value = ok && kind !== null ? { kind, members } : null;
    groups.set(name, value);
    return value;
  };
  for (const name of groupDecls.keys()) resolveGroup(name);

  /**
   * The roles a rule names: roles, and the members of role groups. A role written twice is an
   * error; one that also comes through a group is not (groups overlap on purpose).
   */
  const expandRoles = (names: readonly Name[], where: string): { roles: string[]; ok: boolean } => {
    const out: string[] = [];
    const written = new Set<string>();
    let ok = true;
    for (const n of names) {
      if (groupDecls.has(n.text)) {
        usedGroups.add(n.text);
        const g = groups.get(n.text);
        if (!g) { ok = false; continue; }
        if (g.kind !== "role") { err("E_GROUP_KIND", `group \`${n.text}\` holds duties, where roles are expected`, n.span, didYouMean(n.text, groupsOf("role"))); ok = false; continue; }
        for (const r of g.members) if (!out.includes(r)) out.push(r);
        continue;
      }
      if (!resolveRole(n)) { ok = false; continue; }
      if (written.has(n.text)) { err("E_DUPLICATE_ROLE", `role \`${n.text}\` appears twice in this ${where}`, n.span); ok = false; continue; }
      written.add(n.text);
      if (!out.includes(n.text)) out.push(n.text);
    }
    return { roles: out, ok };
  };
  /** The duties a rule names, as `expandRoles`; `open` when a named duty has its own error. */
  const expandDuties = (names: readonly Name[], where: string): { duties: CheckedDuty[]; ok: boolean; open: boolean } => {
    const out: CheckedDuty[] = [];
    const written = new Set<string>();
    let ok = true, open = false;
    for (const n of names) {
      if (groupDecls.has(n.text)) {
        usedGroups.add(n.text);
        const g = groups.get(n.text);
        if (!g) { ok = false; open = true; continue; }
        if (g.kind !== "duty") { err("E_GROUP_KIND", `group \`${n.text}\` holds roles, where duties are expected`, n.span, didYouMean(n.text, groupsOf("duty"))); ok = false; continue; }
        for (const name of g.members) { const duty = dutyByName.get(name)!; if (!out.includes(duty)) out.push(duty); }
        continue;
      }
      const duty = resolveDuty(n);
      if (!duty) { ok = false; open ||= brokenDuties.has(n.text); continue; }
      if (written.has(n.text)) { err("E_DUPLICATE_DUTY", `duty \`${n.text}\` appears twice in this ${where}`, n.span); ok = false; continue; }
      written.add(n.text);
      if (!out.includes(duty)) out.push(duty);
    }
    return { duties: out, ok, open };
  };

  // --- named conditions ----------------------------------------------------------------------
  // `condition NAME = EXPR` is checked once, where it is declared (its route params unchecked
  // there); each use inlines the typed body, after checking that the rule's duties all have the
  // params it reads. Both evaluators therefore see plain expressions.
  for (const d of of("condition")) {
    const n = d.name.text;
    const first = conditionDecls.get(n);
    if (first) { err("E_DUPLICATE_CONDITION", `condition \`${n}\` is declared twice`, d.name.span, `first declared at ${at(first.span)}`); continue; }
    const owners = [...enums.entries()].filter(([, vs]) => vs.includes(n)).map(([e]) => e);
    if (owners.length || n === "request") {
      err("E_DUPLICATE_CONDITION", `condition \`${n}\` has the name of ${n === "request" ? "the request" : owners[0] === "role" ? "a role" : `a value of enum \`${owners[0]}\``}`, d.name.span, "a bare name in a condition must mean one thing: rename the condition");
      continue;
    }
    conditionDecls.set(n, d);
  }

  // --- expressions ---------------------------------------------------------------------------
  const tBad = Symbol("bad");
  type R = TExpr | typeof tBad;
  const mk = (type: Type, span: Span, rest: Record<string, unknown>): TExpr => ({ type, span, ...rest }) as TExpr;
  const enumOfValue = (value: string): string[] => [...enums.entries()].filter(([, vs]) => vs.includes(value)).map(([n]) => n);

  const checkExpr = (e: Expr, scope: Scope, expected?: Type): R => {
    switch (e.kind) {
      case "string": return mk(PRIMITIVES.string!, e.span, { k: "const", value: e.value });
      case "int": {
        if (!Number.isSafeInteger(e.value)) { err("E_BAD_LITERAL", "integer out of range", e.span); return tBad; }
        return mk(PRIMITIVES.int!, e.span, { k: "const", value: e.value });
      }
      case "bool": return mk(BOOL, e.span, { k: "const", value: e.value });
      case "duration": {
        const v = parseDuration(e.text);
        if (v === null) { err("E_BAD_LITERAL", `bad duration \`${e.text}\``, e.span); return tBad; }
        return mk(PRIMITIVES.duration!, e.span, { k: "const", value: v });
      }
      case "datetime": {
        const v = parseTime(e.text, false);
        if (v === null) { badDate(e.text, e.span); return tBad; }
        return mk(PRIMITIVES.time!, e.span, { k: "const", value: v });
      }
      case "ip": {
        const v = parseIp(e.text);
        if (!v) { err("E_BAD_LITERAL", `bad IP address \`${e.text}\``, e.span); return tBad; }
        return mk(PRIMITIVES.ip!, e.span, { k: "const", value: v });
      }
      case "cidr": {
        const v = parseCidr(e.text);
        if (!v) { err("E_BAD_LITERAL", `bad CIDR \`${e.text}\``, e.span, "host bits must be zero, e.g. `10.0.0.0/8`"); return tBad; }
        return mk(PRIMITIVES.cidr!, e.span, { k: "const", value: v });
      }
      case "call": {
        const fn = e.fn.text;
        const parsers: Record<string, [Type, (s: string) => unknown]> = {
          ip: [PRIMITIVES.ip!, parseIp], cidr: [PRIMITIVES.cidr!, parseCidr],
          time: [PRIMITIVES.time!, (s) => parseTime(s, false)], duration: [PRIMITIVES.duration!, parseDuration],
        };
        const p = parsers[fn];
        if (fn === "lower") return mk(PRIMITIVES.string!, e.span, { k: "const", value: e.arg.toLowerCase() });
        if (!p) { err("E_UNKNOWN_FUNCTION", `unknown function \`${fn}\``, e.fn.span, didYouMean(fn, [...LITERAL_FUNCTIONS, ...VALUE_FUNCTIONS]) ?? "functions are lower(), and the literals ip(), cidr(), time() and duration()"); return tBad; }
        const v = p[1](e.arg);
        if (v === null) {
          if (fn === "time") badDate(e.arg, e.span);
          else err("E_BAD_LITERAL", `bad ${fn} \`${e.arg}\``, e.span);
          return tBad;
        }
        return mk(p[0], e.span, { k: "const", value: v });
      }
      case "set": {
        const elemExpected = expected?.kind === "set" ? expected.of : undefined;
        const items: TExpr[] = [];
        let elemType: Type | null = elemExpected ?? null;
        let bad = false;
        for (const item of e.items) {
          const t = checkExpr(item, scope, elemType ?? undefined);
          if (t === tBad) { bad = true; continue; }
          if (t.type.kind === "set") { err("E_NESTED_SET", "sets of sets are not supported", item.span); bad = true; continue; }
          if (elemType && !sameType(elemType, t.type)) {
            err("E_TYPE_MISMATCH", `set elements must share one type: \`${typeToString(elemType)}\` and \`${typeToString(t.type)}\``, item.span);
            bad = true;
            continue;
          }
          elemType ??= t.type;
          items.push(t);
        }
        if (bad) return tBad;
        const type: Type = { kind: "set", of: elemType ?? { kind: "any" } };
        const allConst = items.every((i) => i.k === "const");
        if (allConst) {
          return mk(type, e.span, { k: "const", value: new Set(items.map((i) => { const v = (i as { value: unknown }).value; return typeof v === "object" && v !== null && "text" in v ? (v as { text: string }).text : v; })) });
        }
        return mk(type, e.span, { k: "setOf", items });
      }
      case "ref": return checkRef(e, scope, expected);
      case "apply": {
        const fn = e.fn.text;
        if (fn !== "lower") {
          const literal = (LITERAL_FUNCTIONS as readonly string[]).includes(fn);
          err("E_UNKNOWN_FUNCTION", literal ? `\`${fn}()\` takes a string literal` : `unknown function \`${fn}\``, literal ? e.arg.span : e.fn.span,
            literal ? `write the literal: \`${fn}("…")\`` : didYouMean(fn, [...VALUE_FUNCTIONS, ...LITERAL_FUNCTIONS]) ?? "functions are lower(), and the literals ip(), cidr(), time() and duration()");
          return tBad;
        }
        const o = checkExpr(e.arg, scope);
        if (o === tBad) return tBad;
        if (o.type.kind !== "string") { err("E_TYPE_MISMATCH", `\`lower\` needs a string, found \`${typeToString(o.type)}\``, e.arg.span); return tBad; }
        if (o.k === "const") return mk(PRIMITIVES.string!, e.span, { k: "const", value: (o.value as string).toLowerCase() });
        return mk(PRIMITIVES.string!, e.span, { k: "lower", operand: o });
      }
      case "not": {
        const o = checkExpr(e.operand, scope, BOOL);
        if (o === tBad) return tBad;
        if (o.type.kind !== "bool") { err("E_TYPE_MISMATCH", `\`not\` needs a bool, found \`${typeToString(o.type)}\``, e.operand.span); return tBad; }
        return mk(BOOL, e.span, { k: "not", operand: o });
      }
      case "neg": {
        const o = checkExpr(e.operand, scope);
        if (o === tBad) return tBad;
        if (o.type.kind !== "int" && o.type.kind !== "duration") {
          err("E_TYPE_MISMATCH", `unary \`-\` needs an int or a duration, found \`${typeToString(o.type)}\``, e.span, o.type.kind === "time" ? "a time has no negative; subtract a duration from it: `request.time - 1h`" : undefined);
          return tBad;
        }
        // `-5` is a literal to everything after the checker (`x == -5` compares with a constant).
        if (o.k === "const") return mk(o.type, e.span, { k: "const", value: -(o.value as number) || 0 });
        return mk(o.type, e.span, { k: "neg", operand: o });
      }
      case "binary": return checkBinary(e, scope);
    }
  };

  const checkRef = (e: Extract<Expr, { kind: "ref" }>, scope: Scope, expected?: Type): R => {
    const head = e.head.text;
    const m = e.members;
    if (head === "principal") {
      const attr = m[0];
      if (!attr || attr.quoted) { err("E_BAD_REFERENCE", "use `principal.<attribute>`", e.span, `attributes: ${Object.keys(schema).join(", ")}`); return tBad; }
      const t = schema[attr.name];
      if (!t && brokenAttributes.has(attr.name)) return tBad;
      if (!t) { err("E_UNKNOWN_ATTRIBUTE", `the principal has no attribute \`${attr.name}\``, attr.span, didYouMean(attr.name, Object.keys(schema)) ?? "declare it in `principal { … }`"); return tBad; }
      if (m.length > 1) { err("E_BAD_REFERENCE", `\`principal.${attr.name}\` has no members`, m[1]!.span); return tBad; }
      // An optional attribute is read only where it is known present, so no evaluator ever
      // compares an absent value (which would hold or not by accident).
      if (t.optional && !scope.present?.has(attr.name)) {
        err("E_OPTIONAL_UNGUARDED", `\`principal.${attr.name}\` is optional and may be absent here`, attr.span, `test it first: \`principal has ${attr.name} and …\` (or \`not (principal has ${attr.name}) or …\`)`);
        return tBad;
      }
      return mk(t, e.span, { k: "principal", attr: attr.name });
    }
    if (head === "request") {
      const f = m[0];
      if (!f || f.quoted) { err("E_BAD_REFERENCE", "use `request.<field>`", e.span, `fields: ${REQUEST_FIELDS.join(", ")}`); return tBad; }
      const rest = m.slice(1);
      switch (f.name) {
        case "time": {
          if (rest.length === 0) return mk(PRIMITIVES.time!, e.span, { k: "request", field: "time" });
          const part = rest[0]!;
          if (rest.length > 1 || part.quoted || !(TIME_PARTS as readonly string[]).includes(part.name)) {
            const bad = rest.length > 1 ? rest[1]! : part;
            err("E_BAD_REFERENCE", `\`request.time\` has no member \`${bad.name}\``, bad.span, didYouMean(part.name, TIME_PARTS) ?? "its members are `time_of_day` (a duration since midnight UTC) and `weekday` (`mon` … `sun`, UTC)");
            return tBad;
          }
          return mk(part.name === "weekday" ? WEEKDAY : PRIMITIVES.duration!, e.span, { k: "timePart", part: part.name });
        }
        case "method": case "path": case "ip": {
          if (rest.length) { err("E_BAD_REFERENCE", `\`request.${f.name}\` has no members`, rest[0]!.span); return tBad; }
          const t = f.name === "ip" ? PRIMITIVES.ip! : PRIMITIVES.string!;
          return mk(t, e.span, { k: "request", field: f.name });
        }
        case "header": case "query": {
          if (rest.length === 0) {
            // The bare map is only meaningful on the left of `has`; checkBinary handles that form.
            err("E_BAD_REFERENCE", `\`request.${f.name}\` needs a name: \`request.${f.name}["name"]\``, e.span, `or test presence with \`request.${f.name} has "name"\``);
            return tBad;
          }
          const key = rest[0]!;
          if (!key.quoted || rest.length > 1) { err("E_BAD_REFERENCE", `use \`request.${f.name}["name"]\``, key.span); return tBad; }
          const name = f.name === "header" ? key.name.toLowerCase() : key.name;
          return mk(PRIMITIVES.string!, e.span, { k: f.name, name });
        }
        case "param": {
          const p = rest[0];
          if (!p || rest.length > 1) { err("E_BAD_REFERENCE", "use `request.param.<name>`", e.span); return tBad; }
          if (!scope.open && !scope.params.has(p.name)) {
            err("E_UNKNOWN_PARAM", `unknown route param \`${p.name}\``, p.span, didYouMean(p.name, scope.paramHelp) ?? (scope.paramHelp.length ? `params here: ${scope.paramHelp.join(", ")}` : "this rule's duties have no route params"));
            return tBad;
          }
          return mk(PRIMITIVES.string!, e.span, { k: "param", name: p.name });
        }
        default:
          err("E_UNKNOWN_FIELD", `the request has no field \`${f.name}\``, f.span, didYouMean(f.name, REQUEST_FIELDS) ?? `fields: ${REQUEST_FIELDS.join(", ")}`);
          return tBad;
      }
    }
    if (conditionDecls.has(head)) {
      if (m.length) { err("E_BAD_REFERENCE", `condition \`${head}\` has no members`, m[0]!.span); return tBad; }
      return useCondition(head, e.span, scope);
    }
    // A bare identifier is an enum value, typed by what is expected of it.
    if (m.length === 0) {
      if (expected?.kind === "enum") {
        if (expected.values.includes(head)) {
          if (expected.name === "role") mentionedRoles.add(head);
          return mk(expected, e.span, { k: "const", value: head });
        }
        const kind = expected.name === "role" ? "role" : `${expected.name} value`;
        err(expected.name === "role" ? "E_UNKNOWN_ROLE" : "E_UNKNOWN_NAME", `unknown ${kind} \`${head}\``, e.head.span, didYouMean(head, expected.values));
        return tBad;
      }
      const owners = enumOfValue(head);
      if (owners.length === 1) {
        if (owners[0] === "role") mentionedRoles.add(head);
        return mk(enumType(owners[0]!), e.span, { k: "const", value: head });
      }
      if (owners.length > 1) { err("E_AMBIGUOUS_NAME", `\`${head}\` is a value of several enums: ${owners.join(", ")}`, e.head.span, "compare it with an attribute of the enum's type"); return tBad; }
    }
    const candidates = ["principal", "request", ...[...enums.values()].flat(), ...conditionDecls.keys()];
    err("E_UNKNOWN_NAME", `unknown name \`${head}\``, e.head.span, didYouMean(head, candidates));
    return tBad;
  };

  const isBareMap = (e: Expr): "header" | "query" | null =>
    e.kind === "ref" && e.head.text === "request" && e.members.length === 1 && !e.members[0]!.quoted && (e.members[0]!.name === "header" || e.members[0]!.name === "query")
      ? (e.members[0]!.name as "header" | "query")
      : null;
  const isBareIdent = (e: Expr) => e.kind === "ref" && e.members.length === 0 && e.head.text !== "principal" && e.head.text !== "request";

  const checkBinary = (e: Extract<Expr, { kind: "binary" }>, scope: Scope): R => {
    const op = e.op;
    if (op === "and" || op === "or") {
      const l = checkExpr(e.left, scope, BOOL);
      // The right side runs only when the left is true (`and`) or false (`or`): what the left then
      // proves present may be read there.
      const proven = op === "and" ? presentWhen(e.left, true) : presentWhen(e.left, false);
      const r = checkExpr(e.right, proven.length ? { ...scope, present: new Set([...(scope.present ?? []), ...proven]) } : scope, BOOL);
      if (l === tBad || r === tBad) return tBad;
      for (const side of [l, r]) {
        if (side.type.kind !== "bool") { err("E_TYPE_MISMATCH", `\`${op}\` needs bools, found \`${typeToString(side.type)}\``, side.span); return tBad; }
      }
      return mk(BOOL, e.span, { k: op, left: l, right: r });
    }
    if (op === "has" && e.left.kind === "ref" && e.left.head.text === "principal" && e.left.members.length === 0) {
      const name = e.right.kind === "string" ? e.right.value : e.right.kind === "ref" && e.right.members.length === 0 ? e.right.head.text : null;
      if (name === null) { err("E_TYPE_MISMATCH", "`principal has` needs an attribute name: `principal has team`", e.right.span); return tBad; }
      const t = schema[name];
      if (!t) {
        if (!brokenAttributes.has(name)) err("E_UNKNOWN_ATTRIBUTE", `the principal has no attribute \`${name}\``, e.right.span, didYouMean(name, Object.keys(schema)) ?? "declare it in `principal { … }`");
        return tBad;
      }
      if (!t.optional) warn("W_ALWAYS_PRESENT", `\`principal has ${name}\` always holds: \`${name}\` is not optional`, e.span, `declare \`${name}?: ${typeToString(t)}\` if a principal may lack it, or drop the test`);
      return mk(BOOL, e.span, { k: "hasAttr", attr: name });
    }
    if (op === "has") {
      const map = isBareMap(e.left);
      if (map) {
        if (e.right.kind !== "string") { err("E_TYPE_MISMATCH", `\`request.${map} has\` needs a quoted name`, e.right.span); return tBad; }
        const name = map === "header" ? e.right.value.toLowerCase() : e.right.value;
        return mk(BOOL, e.span, { k: map === "header" ? "hasHeader" : "hasQuery", name });
      }
    }
    if (op === "matches") {
      const l = checkExpr(e.left, scope);
      if (e.right.kind !== "string") {
        err("E_BAD_REGEX", "the pattern of `matches` must be a string literal", e.right.span, "patterns are checked when the policy is, so they are written in the policy: `request.path matches \"/a/[0-9]+\"`");
        return tBad;
      }
      const parsed = parseRegex(e.right.value);
      if (!parsed.ok) {
        err("E_BAD_REGEX", `bad pattern: ${parsed.message}`, spanInString(e.right.span, e.right.value, parsed.offset), parsed.help);
        return tBad;
      }
      if (l === tBad) return tBad;
      if (l.type.kind !== "string") { err("E_TYPE_MISMATCH", `\`matches\` works on strings, found \`${typeToString(l.type)}\``, e.opSpan); return tBad; }
      return mk(BOOL, e.span, { k: "matches", subject: l, regex: parsed.program });
    }
    // Check the side that is not a bare enum value first, so the bare value is typed by it.
    const leftFirst = !isBareIdent(e.left) || isBareIdent(e.right);
    let l: R, r: R;
    const containerHint = (t: Type): Type | undefined => (t.kind === "set" ? t.of : undefined);
    if (leftFirst) {
      l = checkExpr(e.left, scope);
      const hint = l === tBad ? undefined : op === "has" ? containerHint(l.type) : op === "in" ? (l.type.kind === "ip" ? undefined : { kind: "set" as const, of: l.type }) : l.type;
      r = checkExpr(e.right, scope, hint);
    } else {
      r = checkExpr(e.right, scope);
      const hint = r === tBad ? undefined : op === "in" ? containerHint(r.type) : op === "has" ? { kind: "set" as const, of: r.type } : r.type;
      l = checkExpr(e.left, scope, hint);
    }
    if (l === tBad || r === tBad) return tBad;
    const lt = l.type, rt = r.type;
    const mismatch = (help?: string): R => {
      err("E_TYPE_MISMATCH", `\`${op}\` cannot compare \`${typeToString(lt)}\` with \`${typeToString(rt)}\``, e.opSpan, help);
      return tBad;
    };
    switch (op) {
      case "==": case "!=": {
        if (!sameType(lt, rt)) return mismatch(lt.kind === "ip" && rt.kind === "cidr" ? "to test membership use `in`" : undefined);
        const by = lt.kind === "ip" || lt.kind === "cidr" ? "text" : lt.kind === "set" || rt.kind === "set" ? "set" : "value";
        return mk(BOOL, e.span, { k: op === "==" ? "eq" : "ne", left: l, right: r, by });
      }
      case "<": case "<=": case ">": case ">=": {
        if (!sameType(lt, rt) || !["int", "time", "duration"].includes(lt.kind)) return mismatch("ordering works on int, time and duration");
        const k = ({ "<": "lt", "<=": "le", ">": "gt", ">=": "ge" } as const)[op];
        return mk(BOOL, e.span, { k, left: l, right: r });
      }
      case "in": case "has": {
        const [el, container] = op === "in" ? [l, r] : [r, l];
        const et = el.type, ct = container.type;
        if (et.kind === "ip" && ct.kind === "cidr") return mk(BOOL, e.span, { k: "in", element: el, container, mode: "cidr", byText: false });
        if (et.kind === "ip" && ct.kind === "set" && ct.of.kind === "cidr") return mk(BOOL, e.span, { k: "in", element: el, container, mode: "cidrSet", byText: false });
        if (ct.kind === "set" && sameType(ct.of, et)) {
          return mk(BOOL, e.span, { k: "in", element: el, container, mode: "member", byText: et.kind === "ip" || et.kind === "cidr" });
        }
        err("E_TYPE_MISMATCH", op === "in" ? `\`in\` needs a set of \`${typeToString(et)}\` (or a cidr for an ip) on the right, found \`${typeToString(ct)}\`` : `\`has\` needs a set of \`${typeToString(et)}\` on the left, found \`${typeToString(ct)}\``, e.opSpan,
          ct.kind === "string" && et.kind === "string" ? "for substrings use `starts_with` or `ends_with`" : undefined);
        return tBad;
      }
      case "starts_with": case "ends_with": {
        if (lt.kind !== "string" || rt.kind !== "string") return mismatch("`starts_with` and `ends_with` work on strings");
        return mk(BOOL, e.span, { k: op === "starts_with" ? "startsWith" : "endsWith", left: l, right: r });
      }
      case "+": case "-": {
        const k = op === "+" ? "add" : "sub";
        let type: Type | null = null;
        if (lt.kind === "int" && rt.kind === "int") type = PRIMITIVES.int!;
        else if (lt.kind === "duration" && rt.kind === "duration") type = PRIMITIVES.duration!;
        else if (lt.kind === "time" && rt.kind === "duration") type = PRIMITIVES.time!;
        else if (op === "+" && lt.kind === "duration" && rt.kind === "time") type = PRIMITIVES.time!;
        else if (op === "-" && lt.kind === "time" && rt.kind === "time") type = PRIMITIVES.duration!;
        if (!type) return mismatch("arithmetic works on int, duration, and time ± duration");
        return mk(type, e.span, { k, left: l, right: r });
      }
    }
    return mismatch();
  };

  const checkCondition = (e: Expr, scope: Scope): TExpr | null => {
    const t = checkExpr(e, scope, BOOL);
    if (t === tBad) return null;
    if (t.type.kind !== "bool") {
      err("E_TYPE_MISMATCH", `a condition must be a bool, found \`${typeToString(t.type)}\``, e.span);
      return null;
    }
    return t;
  };
  const conditionBodies = new Map<string, TExpr | null>();
  const checkingConditions = new Set<string>();
  const usedConditions = new Set<string>();
  const resolveCondition = (name: string, refSpan: Span): TExpr | null => {
    if (conditionBodies.has(name)) return conditionBodies.get(name)!;
    if (checkingConditions.has(name)) {
      err("E_CONDITION_CYCLE", `condition \`${name}\` refers to itself`, refSpan, "a condition may use other conditions, but not itself, directly or through others");
      return null;
    }
    checkingConditions.add(name);
    const body = checkCondition(conditionDecls.get(name)!.body, { params: new Set(), paramHelp: [], open: true });
    checkingConditions.delete(name);
    conditionBodies.set(name, body);
    return body;
  };
  const useCondition = (name: string, span: Span, scope: Scope): R => {
    usedConditions.add(name);
    const body = resolveCondition(name, span);
    if (!body) return tBad;
    if (!scope.open) {
      for (const p of paramsReadBy(body)) {
        if (scope.params.has(p)) continue;
        err("E_UNKNOWN_PARAM", `condition \`${name}\` reads route param \`${p}\`, which this rule's duties do not all have`, span, scope.paramHelp.length ? `params here: ${scope.paramHelp.join(", ")}` : "this rule's duties have no route params");
        return tBad;
      }
    }
    return body;
  };
  const scopeFor = (ds: readonly CheckedDuty[]): Scope => {
    if (ds.length === 0) return { params: new Set(), paramHelp: [] };
    const common = ds[0]!.params.filter((p) => ds.every((d) => d.params.includes(p)));
    return { params: new Set(common), paramHelp: [...new Set(ds.flatMap((d) => d.params))] };
  };

  // --- exclusive -------------------------------------------------------------------------
  const exclusives: CheckedExclusive[] = [];
  for (const d of of("exclusive")) {
    const { roles: rs, ok: rolesOk } = expandRoles(d.roles, "set");
    let ok = rolesOk;
    const atLeast = d.atLeast?.value ?? 2;
    if (ok && rs.length < 2) { err("E_EXCLUSIVE_TOO_SMALL", "`exclusive` needs at least two roles", d.span); ok = false; }
    if (ok && (atLeast < 2 || atLeast > rs.length)) { err("E_EXCLUSIVE_BAD_COUNT", `\`exclusive ${atLeast} of\` needs 2 ≤ N ≤ ${rs.length}`, d.atLeast?.span ?? d.span); ok = false; }
    if (ok) exclusives.push({ id: ruleIdOf(d), atLeast, roles: rs, span: d.span });
  }

  // --- grants ------------------------------------------------------------------------------
  const grants: CheckedGrant[] = [];
  for (const d of of("grant")) {
    const { roles: rs, ok: rolesOk } = expandRoles(d.roles, "grant");
    let ok = rolesOk;
    // The duty may be a group of duties: one rule, one grant of each.
    const target = expandDuties([d.duty], "grant");
    if (!target.ok) ok = false;
    const when = d.when ? checkCondition(d.when, { ...scopeFor(target.duties), open: target.open }) : null;
    if (d.when && !when) ok = false;
    const until = d.until ? checkUntil(d.until, "grant") : null;
    if (until === undefined) ok = false;
    if (when && isConstant(when) && evaluate(when, constantEnv) === false) {
      err("E_GRANT_NEVER_APPLIES", "this grant can never apply: its condition is always false", d.when!.span);
      ok = false;
    }
    if (ok && when) {
      // A grant whose condition requires a role that is exclusive with every granted role never applies.
      const required = requiredRoles(when);
      for (const req of required) {
        const blocks = rs.every((g) => g !== req && exclusives.some((x) => x.atLeast === 2 && x.roles.includes(g) && x.roles.includes(req)));
        if (blocks) {
          err("E_GRANT_NEVER_APPLIES", `this grant can never apply: it requires role \`${req}\`, which is exclusive with ${rs.map((r) => `\`${r}\``).join(", ")}`, d.when!.span);
          ok = false;
        }
      }
    }
    for (const duty of ok ? target.duties : []) {
      if (duty.channel === "admin") {
        for (const role of rs.filter((r) => !adminRoles.has(r))) {
          const n = d.roles.find((x) => x.text === role) ?? d.roles[0]!;
          warn("W_ADMIN_DUTY_OPERATIONAL_ROLE", `operational role \`${role}\` is granted admin-channel duty \`${duty.name}\``, n.span, `admin-channel duties are for roles declared \`channel admin\`: declare \`role ${role} channel admin\` if it is meant to administer the gateway, or grant the duty to such a role`);
        }
      }
      grants.push({ id: ruleIdOf(d), roles: rs, duty: duty.name, when, until: until ?? null, untilText: d.until?.text ?? null, span: d.span });
    }
  }

  // --- forbids ---------------------------------------------------------------------------
  const forbids: CheckedForbid[] = [];
  for (const d of of("forbid")) {
    const target = d.duties ? expandDuties(d.duties, "forbid") : null;
    const ds = target ? target.duties : null;
    let ok = target?.ok ?? true;
    const when = checkCondition(d.when, { ...scopeFor(ds ?? []), open: target?.open ?? false });
    if (!when) ok = false;
    if (when && isConstant(when) && evaluate(when, constantEnv) === false) {
      warn("W_FORBID_NEVER_APPLIES", "this forbid never applies: its condition is always false", d.when.span);
    }
    // A temporary forbid (a freeze until a date) ends as a temporary grant does.
    const until = d.until ? checkUntil(d.until, "forbid") : null;
    if (until === undefined) ok = false;
    if (ok && when) forbids.push({ id: ruleIdOf(d), duties: ds ? ds.map((x) => x.name) : null, when, until: until ?? null, untilText: d.until?.text ?? null, span: d.span });
  }
  // Grants shadowed by an unconditional forbid.
  for (const g of grants) {
    const f = forbids.find((f) => (f.duties === null || f.duties.includes(g.duty)) && f.until === null && isConstant(f.when) && evaluate(f.when, constantEnv) === true);
    if (f) warn("W_GRANT_SHADOWED", `this grant never applies: \`${g.duty}\` is always forbidden by ${at(f.span)}`, g.span);
  }

  findRepeatedGrants(grants, warn);
  // --- separate ----------------------------------------------------------------------------
  const separations: CheckedSeparation[] = [];
  for (const d of of("separate")) {
    const { duties: ds, ok: dutiesOk } = expandDuties(d.duties, "set");
    let ok = dutiesOk;
    if (ok && ds.length < 2) { err("E_SEPARATE_TOO_SMALL", "`separate` needs at least two duties", d.span); ok = false; }
    const params: string[] = [];
    for (const p of d.params) {
      if (params.includes(p.text)) { err("E_DUPLICATE_PARAM", `route param \`${p.text}\` appears twice in this key`, p.span, "each param is part of the key once"); ok = false; }
      else params.push(p.text);
    }
    if (ok) {
      for (const duty of ds) {
        for (const p of d.params) {
          if (!duty.params.includes(p.text)) {
            err("E_UNKNOWN_PARAM", `duty \`${duty.name}\` has no route param \`:${p.text}\``, p.span, didYouMean(p.text, duty.params) ?? `its route is \`${duty.pattern}\``);
            ok = false;
          }
        }
      }
    }
    if (ok) separations.push({ id: ruleIdOf(d), duties: ds.map((x) => x.name), params, span: d.span });
  }

  // A duty named by a grant that has an error already has that error: warn only where no grant was written.
  // A group with an error counts as granting every name written in it (and in the groups it names).
  const writtenIn = (name: string, seen = new Set<string>()): string[] => {
    const d = groupDecls.get(name);
    if (!d || seen.has(name)) return [name];
    seen.add(name);
    return d.members.flatMap((m) => writtenIn(m.text, seen));
  };
  const grantedDuties = new Set(of("grant").flatMap((g) => groups.get(g.duty.text)?.members ?? writtenIn(g.duty.text)));
  // Conditions no rule uses are still checked, so that their mistakes show before their first use.
  const unusedConditions = [...conditionDecls].filter(([name]) => !usedConditions.has(name));
  for (const [name, d] of unusedConditions) resolveCondition(name, d.name.span);
  // Like unused roles, unused conditions and groups are reported only without errors: a rule
  // that would use them may be the broken one.
  for (const [name, d] of hasErrors(diags) ? [] : unusedConditions) {
    warn("W_UNUSED_CONDITION", `condition \`${name}\` is declared but no rule uses it`, d.name.span, "use it in a `when`, or remove it");
  }
  for (const [name, d] of hasErrors(diags) ? [] : groupDecls) {
    if (!usedGroups.has(name)) warn("W_UNUSED_GROUP", `group \`${name}\` is declared but no rule names it`, d.name.span, "name it in a grant, forbid, exclusive or separate, or remove it");
  }
  for (const duty of duties) {
    if (!grantedDuties.has(duty.name)) warn("W_DUTY_NEVER_GRANTED", `duty \`${duty.name}\` is granted to no role: every request to it is denied`, duty.span);
  }

  // Only for a policy without errors: while errors are being fixed, rules that would name a role
  // may be the broken ones, and a list of unused roles is noise.
  for (const role of hasErrors(diags) ? [] : roles) {
    if (!mentionedRoles.has(role)) warn("W_UNUSED_ROLE", `role \`${role}\` is declared but no grant, exclusive or condition names it`, enumValueSpans.get(`role.${role}`)!, "grant it a duty, or remove it");
  }

  if (hasErrors(diags)) return { policy: null, diagnostics: diags };
  return {
    policy: { files: files.map((f) => f.file), schema: schema as PrincipalSchema, roles, enums: Object.fromEntries(enums), upstreams, duties, grants, forbids, exclusives, separations },
    diagnostics: diags,
  };
}

const constantEnv = {
  principal: { sub: "", roles: new Set<string>() },
  request: { method: "", path: "", ip: { kind: "ip", v6: false, addr: 0n, text: "0.0.0.0" }, time: 0, headers: {}, query: {} },
  params: {},
} as const;

/** Optional attributes an expression proves present when it comes out `outcome`. */
function presentWhen(e: Expr, outcome: boolean): string[] {
  if (e.kind === "not") return presentWhen(e.operand, !outcome);
  if (e.kind !== "binary") return [];
  if (e.op === "has" && e.left.kind === "ref" && e.left.head.text === "principal" && e.left.members.length === 0) {
    if (!outcome) return [];
    if (e.right.kind === "string") return [e.right.value];
    return e.right.kind === "ref" && e.right.members.length === 0 ? [e.right.head.text] : [];
  }
  // `a and b` true: both true; `a or b` false: both false.
  if ((e.op === "and" && outcome) || (e.op === "or" && !outcome)) return [...presentWhen(e.left, outcome), ...presentWhen(e.right, outcome)];
  return [];
}

/** What a `group` holds: roles or duties, flattened through the groups it names. */
interface GroupValue { kind: "role" | "duty"; members: string[] }

/** The route params an expression reads. */
function paramsReadBy(e: TExpr, out: string[] = []): string[] {
  if (e.k === "param") { if (!out.includes(e.name)) out.push(e.name); return out; }
  for (const value of Object.values(e)) {
    if (Array.isArray(value)) { for (const item of value) if (item && typeof item === "object" && "k" in item) paramsReadBy(item as TExpr, out); }
    else if (value && typeof value === "object" && "k" in value && "type" in value) paramsReadBy(value as TExpr, out);
  }
  return out;
}

/** A condition as text that ignores spans: equal keys are the same condition. */
function conditionKey(e: TExpr | null): string {
  return JSON.stringify(e, (key, value: unknown) =>
    key === "span" ? undefined : typeof value === "bigint" ? value.toString() : value instanceof Set ? [...value].map(String).sort() : value);
}

/**
 * Grants that never decide because an earlier grant of the same duty always comes first for each
 * of their roles (grants are tried in source order; the first that applies decides): an exact
 * repeat (same condition and `until`, roles among the earlier one's) is W_DUPLICATE_GRANT; one
 * whose every role already holds the duty without condition (and no sooner expiry) is
 * W_GRANT_SHADOWED_BY_GRANT.
 */
function findRepeatedGrants(grants: readonly CheckedGrant[], warn: (code: string, message: string, span: Span, help?: string) => void): void {
  const byDuty = new Map<string, CheckedGrant[]>();
  for (const g of grants) {
    const earlier = byDuty.get(g.duty) ?? [];
    const key = conditionKey(g.when);
    const repeat = earlier.find((e) => e.until === g.until && g.roles.every((r) => e.roles.includes(r)) && conditionKey(e.when) === key);
    if (repeat) {
      warn("W_DUPLICATE_GRANT", `duplicate grant: ${g.roles.map((r) => `\`${r}\``).join(", ")} already ${g.roles.length > 1 ? "have" : "has"} \`${g.duty}\` on the same terms at ${at(repeat.span)}`, g.span, "remove one of the two");
    } else {
      const coveredBy = g.roles.map((r) => earlier.find((e) => e.roles.includes(r) && e.when === null && (e.until === null || (g.until !== null && e.until >= g.until))));
      if (coveredBy.every((e) => e !== undefined)) {
        const first = coveredBy[0]!;
        warn("W_GRANT_SHADOWED_BY_GRANT", `this grant never decides: ${g.roles.map((r) => `\`${r}\``).join(", ")} already ${g.roles.length > 1 ? "have" : "has"} \`${g.duty}\` without condition at ${[...new Set(coveredBy.map((e) => at(e!.span)))].join(", ")}`, g.span,
          `grants are tried in source order and the first that applies decides; remove this one, or give ${at(first.span)} a condition`);
      }
    }
    byDuty.set(g.duty, [...earlier, g]);
  }
}

/** Roles a condition requires through its top-level conjuncts (`r in principal.roles`). */
function requiredRoles(e: TExpr): string[] {
  if (e.k === "and") return [...requiredRoles(e.left), ...requiredRoles(e.right)];
  if (e.k === "in" && e.mode === "member" && e.container.k === "principal" && e.container.attr === "roles" && e.element.k === "const") return [String(e.element.value)];
  return [];
}

/** The span of the character at `offset` of a string literal's value (escapes counted as written). */
function spanInString(literal: Span, value: string, offset: number): Span {
  const written = (s: string) => s.replace(/[\\"\n\t]/g, "xx").length;
  const start = literal.start + 1 + written(value.slice(0, offset));
  const width = offset < value.length ? written(value.slice(offset, offset + 1)) : 1;
  if (literal.line !== literal.endLine || start + width > literal.end) return literal;
  const col = literal.col + (start - literal.start);
  return { ...literal, start, end: start + width, col, endCol: col + width };
}

function at(span: Span): string {
  return `${span.file}:${span.line}:${span.col}`;
}
