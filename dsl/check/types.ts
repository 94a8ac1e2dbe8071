// The types pass: the principal schema, and the typing of every expression the rules hold (the
// conditions of grants and forbids, and named conditions, checked once and inlined where used).
// An expression with an error yields FAILED after its error is reported, so that its parents
// report nothing more about it.
import type { Expr, TypeRef } from "../ast.ts";
import { didYouMean } from "../diagnostics.ts";
import { parseRegex } from "../regex.ts";
import type { CheckedDuty, TExpr } from "../typed-ast.ts";
import type { Span, Type } from "../types.ts";
import { parseCidr, parseDuration, parseIp, parseTime, typeToString } from "../values.ts";
import type { CheckContext, Scope } from "./context.ts";

export const PRIMITIVES: Record<string, Type> = {
  string: { kind: "string" }, int: { kind: "int" }, bool: { kind: "bool" }, ip: { kind: "ip" },
  cidr: { kind: "cidr" }, time: { kind: "time" }, duration: { kind: "duration" },
};
const BOOL: Type = { kind: "bool" };
const REQUEST_FIELDS = ["method", "path", "ip", "time", "header", "query", "param"] as const;
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

/** An expression whose error has been reported. */
const FAILED = Symbol("failed");
type Typed = TExpr | typeof FAILED;

export function sameType(a: Type, b: Type): boolean {
  if (a.kind === "any" || b.kind === "any") return true;
  if (a.kind !== b.kind) return false;
  if (a.kind === "set" && b.kind === "set") return sameType(a.of, b.of);
  if (a.kind === "enum" && b.kind === "enum") return a.name === b.name;
  return true;
}

/** Reports a date literal that does not parse, with the likely fix. */
export function reportBadDate(cx: CheckContext, text: string, span: Span): void {
  const noOffset = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/.exec(text);
  if (noOffset) cx.error("E_BAD_LITERAL", `date-time \`${text}\` has no UTC offset`, span, `a time of day needs its offset: \`${text}Z\` for UTC, or e.g. \`${text}+02:00\``);
  else cx.error("E_BAD_LITERAL", `bad date \`${text}\``, span, "dates are `2026-12-31` or `2026-12-31T18:00:00Z`");
}

function resolveType(cx: CheckContext, t: TypeRef): Type | null {
  if (t.kind === "set") {
    const inner = resolveType(cx, t.of);
    if (!inner) return null;
    if (inner.kind === "set") {
      cx.error("E_NESTED_SET", "sets of sets are not supported", t.span);
      return null;
    }
    return { kind: "set", of: inner };
  }
  const name = t.name.text;
  if (name in PRIMITIVES) return PRIMITIVES[name]!;
  if (cx.enums.has(name)) return cx.enumType(name);
  const alias = TYPE_ALIASES[name.toLowerCase()];
  cx.error("E_UNKNOWN_TYPE", `unknown type \`${name}\``, t.name.span, alias ? `the type is spelled \`${alias}\` here` : didYouMean(name, [...Object.keys(PRIMITIVES), ...cx.enums.keys()]) ?? `types are ${Object.keys(PRIMITIVES).join(", ")}, set<T>, role and declared enums`);
  return null;
}

/** Checks the one `principal { … }` block into `cx.schema`: it must declare `sub` and `roles`. */
export function checkPrincipalSchema(cx: CheckContext): void {
  const principalDecls = cx.declarationsOf("principal");
  const { files, schema, brokenAttributes } = cx;
  if (principalDecls.length === 0) {
    const span = files[0]?.declarations[0]?.span ?? { file: files[0]?.file ?? "<policy>", line: 1, col: 1, endLine: 1, endCol: 2, start: 0, end: 0 };
    cx.error("E_NO_PRINCIPAL", "the policy declares no `principal { … }` schema", span, "add `principal { sub: string  roles: set<role> }`");
  }
  for (const [i, d] of principalDecls.entries()) {
    if (i > 0) {
      cx.error("E_DUPLICATE_PRINCIPAL", "`principal` is declared more than once", d.span, "declare all attributes in one `principal { … }` block");
      continue;
    }
    for (const a of d.attrs) {
      if (a.name.text in schema) {
        cx.error("E_DUPLICATE_ATTRIBUTE", `principal attribute \`${a.name.text}\` is declared twice`, a.name.span);
        continue;
      }
      const t = resolveType(cx, a.type);
      if (t && a.optional && (a.name.text === "sub" || a.name.text === "roles")) {
        cx.error("E_OPTIONAL_REQUIRED_ATTRIBUTE", `\`${a.name.text}\` cannot be optional: every principal has it`, a.name.span, `write \`${a.name.text}: …\``);
        brokenAttributes.add(a.name.text);
      } else if (t) schema[a.name.text] = a.optional ? { ...t, optional: true } : t;
      else brokenAttributes.add(a.name.text);
    }
    if ((!schema.sub || schema.sub.kind !== "string") && !brokenAttributes.has("sub")) {
      cx.error("E_PRINCIPAL_SUB", "the principal must declare `sub: string`", d.span);
    }
    const r = schema.roles;
    if ((!r || r.kind !== "set" || r.of.kind !== "enum" || r.of.name !== "role") && !brokenAttributes.has("roles")) {
      cx.error("E_PRINCIPAL_ROLES", "the principal must declare `roles: set<role>`", d.span, cx.roles.length ? undefined : "declare roles with `role a, b`");
    }
  }
}

/** The scope of a rule over these duties: the route params they all have. */
export function scopeFor(duties: readonly CheckedDuty[]): Scope {
  if (duties.length === 0) return { params: new Set(), paramHelp: [] };
  const common = duties[0]!.params.filter((p) => duties.every((d) => d.params.includes(p)));
  return { params: new Set(common), paramHelp: [...new Set(duties.flatMap((d) => d.params))] };
}

/** Types a `when` condition: it must be a bool. Null after an error. */
export function checkCondition(cx: CheckContext, e: Expr, scope: Scope): TExpr | null {
  const t = checkExpr(cx, e, scope, BOOL);
  if (t === FAILED) return null;
  if (t.type.kind !== "bool") {
    cx.error("E_TYPE_MISMATCH", `a condition must be a bool, found \`${typeToString(t.type)}\``, e.span);
    return null;
  }
  return t;
}

/**
 * The typed body of the named condition `name`, checked once where it is declared (its route
 * params unchecked there). `refSpan` is where it is used, for a cycle's error.
 */
export function resolveCondition(cx: CheckContext, name: string, refSpan: Span): TExpr | null {
  if (cx.conditionBodies.has(name)) return cx.conditionBodies.get(name)!;
  if (cx.conditionsBeingChecked.has(name)) {
    cx.error("E_CONDITION_CYCLE", `condition \`${name}\` refers to itself`, refSpan, "a condition may use other conditions, but not itself, directly or through others");
    return null;
  }
  cx.conditionsBeingChecked.add(name);
  const body = checkCondition(cx, cx.conditionDecls.get(name)!.body, { params: new Set(), paramHelp: [], open: true });
  cx.conditionsBeingChecked.delete(name);
  cx.conditionBodies.set(name, body);
  return body;
}

/** A use of a named condition inlines its body, once the rule's duties are known to have the params it reads. */
function useCondition(cx: CheckContext, name: string, span: Span, scope: Scope): Typed {
  cx.usedConditions.add(name);
  const body = resolveCondition(cx, name, span);
  if (!body) return FAILED;
  if (!scope.open) {
    for (const p of paramsReadBy(body)) {
      if (scope.params.has(p)) continue;
      cx.error("E_UNKNOWN_PARAM", `condition \`${name}\` reads route param \`${p}\`, which this rule's duties do not all have`, span, scope.paramHelp.length ? `params here: ${scope.paramHelp.join(", ")}` : "this rule's duties have no route params");
      return FAILED;
    }
  }
  return body;
}

const typed = (type: Type, span: Span, rest: Record<string, unknown>): TExpr => ({ type, span, ...rest }) as TExpr;

function checkExpr(cx: CheckContext, e: Expr, scope: Scope, expected?: Type): Typed {
  switch (e.kind) {
    case "string": return typed(PRIMITIVES.string!, e.span, { k: "const", value: e.value });
    case "int": {
      if (!Number.isSafeInteger(e.value)) { cx.error("E_BAD_LITERAL", "integer out of range", e.span); return FAILED; }
      return typed(PRIMITIVES.int!, e.span, { k: "const", value: e.value });
    }
    case "bool": return typed(BOOL, e.span, { k: "const", value: e.value });
    case "duration": {
      const v = parseDuration(e.text);
      if (v === null) { cx.error("E_BAD_LITERAL", `bad duration \`${e.text}\``, e.span); return FAILED; }
      return typed(PRIMITIVES.duration!, e.span, { k: "const", value: v });
    }
    case "datetime": {
      const v = parseTime(e.text, false);
      if (v === null) { reportBadDate(cx, e.text, e.span); return FAILED; }
      return typed(PRIMITIVES.time!, e.span, { k: "const", value: v });
    }
    case "ip": {
      const v = parseIp(e.text);
      if (!v) { cx.error("E_BAD_LITERAL", `bad IP address \`${e.text}\``, e.span); return FAILED; }
      return typed(PRIMITIVES.ip!, e.span, { k: "const", value: v });
    }
    case "cidr": {
      const v = parseCidr(e.text);
      if (!v) { cx.error("E_BAD_LITERAL", `bad CIDR \`${e.text}\``, e.span, "host bits must be zero, e.g. `10.0.0.0/8`"); return FAILED; }
      return typed(PRIMITIVES.cidr!, e.span, { k: "const", value: v });
    }
    case "call": {
      const fn = e.fn.text;
      const parsers: Record<string, [Type, (s: string) => unknown]> = {
        ip: [PRIMITIVES.ip!, parseIp], cidr: [PRIMITIVES.cidr!, parseCidr],
        time: [PRIMITIVES.time!, (s) => parseTime(s, false)], duration: [PRIMITIVES.duration!, parseDuration],
      };
      const p = parsers[fn];
      if (fn === "lower") return typed(PRIMITIVES.string!, e.span, { k: "const", value: e.arg.toLowerCase() });
      if (!p) { cx.error("E_UNKNOWN_FUNCTION", `unknown function \`${fn}\``, e.fn.span, didYouMean(fn, [...LITERAL_FUNCTIONS, ...VALUE_FUNCTIONS]) ?? "functions are lower(), and the literals ip(), cidr(), time() and duration()"); return FAILED; }
      const v = p[1](e.arg);
      if (v === null) {
        if (fn === "time") reportBadDate(cx, e.arg, e.span);
        else cx.error("E_BAD_LITERAL", `bad ${fn} \`${e.arg}\``, e.span);
        return FAILED;
      }
      return typed(p[0], e.span, { k: "const", value: v });
    }
    case "set": {
      const elemExpected = expected?.kind === "set" ? expected.of : undefined;
      const items: TExpr[] = [];
      let elemType: Type | null = elemExpected ?? null;
      let bad = false;
      for (const item of e.items) {
        const t = checkExpr(cx, item, scope, elemType ?? undefined);
        if (t === FAILED) { bad = true; continue; }
        if (t.type.kind === "set") { cx.error("E_NESTED_SET", "sets of sets are not supported", item.span); bad = true; continue; }
        if (elemType && !sameType(elemType, t.type)) {
          cx.error("E_TYPE_MISMATCH", `set elements must share one type: \`${typeToString(elemType)}\` and \`${typeToString(t.type)}\``, item.span);
          bad = true;
          continue;
        }
        elemType ??= t.type;
        items.push(t);
      }
      if (bad) return FAILED;
      const type: Type = { kind: "set", of: elemType ?? { kind: "any" } };
      const allConst = items.every((i) => i.k === "const");
      if (allConst) {
        return typed(type, e.span, { k: "const", value: new Set(items.map((i) => { const v = (i as { value: unknown }).value; return typeof v === "object" && v !== null && "text" in v ? (v as { text: string }).text : v; })) });
      }
      return typed(type, e.span, { k: "setOf", items });
    }
    case "ref": return checkRef(cx, e, scope, expected);
    case "apply": {
      const fn = e.fn.text;
      if (fn !== "lower") {
        const literal = (LITERAL_FUNCTIONS as readonly string[]).includes(fn);
        cx.error("E_UNKNOWN_FUNCTION", literal ? `\`${fn}()\` takes a string literal` : `unknown function \`${fn}\``, literal ? e.arg.span : e.fn.span,
          literal ? `write the literal: \`${fn}("…")\`` : didYouMean(fn, [...VALUE_FUNCTIONS, ...LITERAL_FUNCTIONS]) ?? "functions are lower(), and the literals ip(), cidr(), time() and duration()");
        return FAILED;
      }
      const o = checkExpr(cx, e.arg, scope);
      if (o === FAILED) return FAILED;
      if (o.type.kind !== "string") { cx.error("E_TYPE_MISMATCH", `\`lower\` needs a string, found \`${typeToString(o.type)}\``, e.arg.span); return FAILED; }
      if (o.k === "const") return typed(PRIMITIVES.string!, e.span, { k: "const", value: (o.value as string).toLowerCase() });
      return typed(PRIMITIVES.string!, e.span, { k: "lower", operand: o });
    }
    case "not": {
      const o = checkExpr(cx, e.operand, scope, BOOL);
      if (o === FAILED) return FAILED;
      if (o.type.kind !== "bool") { cx.error("E_TYPE_MISMATCH", `\`not\` needs a bool, found \`${typeToString(o.type)}\``, e.operand.span); return FAILED; }
      return typed(BOOL, e.span, { k: "not", operand: o });
    }
    case "neg": {
      const o = checkExpr(cx, e.operand, scope);
      if (o === FAILED) return FAILED;
      if (o.type.kind !== "int" && o.type.kind !== "duration") {
        cx.error("E_TYPE_MISMATCH", `unary \`-\` needs an int or a duration, found \`${typeToString(o.type)}\``, e.span, o.type.kind === "time" ? "a time has no negative; subtract a duration from it: `request.time - 1h`" : undefined);
        return FAILED;
      }
      // `-5` is a literal to everything after the checker (`x == -5` compares with a constant).
      if (o.k === "const") return typed(o.type, e.span, { k: "const", value: -(o.value as number) || 0 });
      return typed(o.type, e.span, { k: "neg", operand: o });
    }
    case "binary": return checkBinary(cx, e, scope);
  }
}

function checkRef(cx: CheckContext, e: Extract<Expr, { kind: "ref" }>, scope: Scope, expected?: Type): Typed {
  const head = e.head.text;
  const m = e.members;
  const schema = cx.schema;
  if (head === "principal") {
    const attr = m[0];
    if (!attr || attr.quoted) { cx.error("E_BAD_REFERENCE", "use `principal.<attribute>`", e.span, `attributes: ${Object.keys(schema).join(", ")}`); return FAILED; }
    const t = schema[attr.name];
    if (!t && cx.brokenAttributes.has(attr.name)) return FAILED;
    if (!t) { cx.error("E_UNKNOWN_ATTRIBUTE", `the principal has no attribute \`${attr.name}\``, attr.span, didYouMean(attr.name, Object.keys(schema)) ?? "declare it in `principal { … }`"); return FAILED; }
    if (m.length > 1) { cx.error("E_BAD_REFERENCE", `\`principal.${attr.name}\` has no members`, m[1]!.span); return FAILED; }
    // An optional attribute is read only where it is known present, so no evaluator ever
    // compares an absent value (which would hold or not by accident).
    if (t.optional && !scope.present?.has(attr.name)) {
      cx.error("E_OPTIONAL_UNGUARDED", `\`principal.${attr.name}\` is optional and may be absent here`, attr.span, `test it first: \`principal has ${attr.name} and …\` (or \`not (principal has ${attr.name}) or …\`)`);
      return FAILED;
    }
    return typed(t, e.span, { k: "principal", attr: attr.name });
  }
  if (head === "request") {
    const f = m[0];
    if (!f || f.quoted) { cx.error("E_BAD_REFERENCE", "use `request.<field>`", e.span, `fields: ${REQUEST_FIELDS.join(", ")}`); return FAILED; }
    const rest = m.slice(1);
    switch (f.name) {
      case "time": {
        if (rest.length === 0) return typed(PRIMITIVES.time!, e.span, { k: "request", field: "time" });
        const part = rest[0]!;
        if (rest.length > 1 || part.quoted || !(TIME_PARTS as readonly string[]).includes(part.name)) {
          const bad = rest.length > 1 ? rest[1]! : part;
          cx.error("E_BAD_REFERENCE", `\`request.time\` has no member \`${bad.name}\``, bad.span, didYouMean(part.name, TIME_PARTS) ?? "its members are `time_of_day` (a duration since midnight UTC) and `weekday` (`mon` … `sun`, UTC)");
          return FAILED;
        }
        return typed(part.name === "weekday" ? WEEKDAY : PRIMITIVES.duration!, e.span, { k: "timePart", part: part.name });
      }
      case "method": case "path": case "ip": {
        if (rest.length) { cx.error("E_BAD_REFERENCE", `\`request.${f.name}\` has no members`, rest[0]!.span); return FAILED; }
        const t = f.name === "ip" ? PRIMITIVES.ip! : PRIMITIVES.string!;
        return typed(t, e.span, { k: "request", field: f.name });
      }
      case "header": case "query": {
        if (rest.length === 0) {
          // The bare map is only meaningful on the left of `has`; checkBinary handles that form.
          cx.error("E_BAD_REFERENCE", `\`request.${f.name}\` needs a name: \`request.${f.name}["name"]\``, e.span, `or test presence with \`request.${f.name} has "name"\``);
          return FAILED;
        }
        const key = rest[0]!;
        if (!key.quoted || rest.length > 1) { cx.error("E_BAD_REFERENCE", `use \`request.${f.name}["name"]\``, key.span); return FAILED; }
        const name = f.name === "header" ? key.name.toLowerCase() : key.name;
        return typed(PRIMITIVES.string!, e.span, { k: f.name, name });
      }
      case "param": {
        const p = rest[0];
        if (!p || rest.length > 1) { cx.error("E_BAD_REFERENCE", "use `request.param.<name>`", e.span); return FAILED; }
        if (!scope.open && !scope.params.has(p.name)) {
          cx.error("E_UNKNOWN_PARAM", `unknown route param \`${p.name}\``, p.span, didYouMean(p.name, scope.paramHelp) ?? (scope.paramHelp.length ? `params here: ${scope.paramHelp.join(", ")}` : "this rule's duties have no route params"));
          return FAILED;
        }
        return typed(PRIMITIVES.string!, e.span, { k: "param", name: p.name });
      }
      default:
        cx.error("E_UNKNOWN_FIELD", `the request has no field \`${f.name}\``, f.span, didYouMean(f.name, REQUEST_FIELDS) ?? `fields: ${REQUEST_FIELDS.join(", ")}`);
        return FAILED;
    }
  }
  if (cx.conditionDecls.has(head)) {
    if (m.length) { cx.error("E_BAD_REFERENCE", `condition \`${head}\` has no members`, m[0]!.span); return FAILED; }
    return useCondition(cx, head, e.span, scope);
  }
  // A bare identifier is an enum value, typed by what is expected of it.
  if (m.length === 0) {
    if (expected?.kind === "enum") {
      if (expected.values.includes(head)) {
        if (expected.name === "role") cx.mentionedRoles.add(head);
        return typed(expected, e.span, { k: "const", value: head });
      }
      const kind = expected.name === "role" ? "role" : `${expected.name} value`;
      cx.error(expected.name === "role" ? "E_UNKNOWN_ROLE" : "E_UNKNOWN_NAME", `unknown ${kind} \`${head}\``, e.head.span, didYouMean(head, expected.values));
      return FAILED;
    }
    const owners = [...cx.enums.entries()].filter(([, vs]) => vs.includes(head)).map(([n]) => n);
    if (owners.length === 1) {
      if (owners[0] === "role") cx.mentionedRoles.add(head);
      return typed(cx.enumType(owners[0]!), e.span, { k: "const", value: head });
    }
    if (owners.length > 1) { cx.error("E_AMBIGUOUS_NAME", `\`${head}\` is a value of several enums: ${owners.join(", ")}`, e.head.span, "compare it with an attribute of the enum's type"); return FAILED; }
  }
  const candidates = ["principal", "request", ...[...cx.enums.values()].flat(), ...cx.conditionDecls.keys()];
  cx.error("E_UNKNOWN_NAME", `unknown name \`${head}\``, e.head.span, didYouMean(head, candidates));
  return FAILED;
}

function bareMapOf(e: Expr): "header" | "query" | null {
  return e.kind === "ref" && e.head.text === "request" && e.members.length === 1 && !e.members[0]!.quoted && (e.members[0]!.name === "header" || e.members[0]!.name === "query")
    ? (e.members[0]!.name as "header" | "query")
    : null;
}
const isBareIdent = (e: Expr) => e.kind === "ref" && e.members.length === 0 && e.head.text !== "principal" && e.head.text !== "request";

function checkBinary(cx: CheckContext, e: Extract<Expr, { kind: "binary" }>, scope: Scope): Typed {
  const op = e.op;
  if (op === "and" || op === "or") {
    const l = checkExpr(cx, e.left, scope, BOOL);
    // The right side runs only when the left is true (`and`) or false (`or`): what the left then
    // proves present may be read there.
    const proven = op === "and" ? presentWhen(e.left, true) : presentWhen(e.left, false);
    const r = checkExpr(cx, e.right, proven.length ? { ...scope, present: new Set([...(scope.present ?? []), ...proven]) } : scope, BOOL);
    if (l === FAILED || r === FAILED) return FAILED;
    for (const side of [l, r]) {
      if (side.type.kind !== "bool") { cx.error("E_TYPE_MISMATCH", `\`${op}\` needs bools, found \`${typeToString(side.type)}\``, side.span); return FAILED; }
    }
    return typed(BOOL, e.span, { k: op, left: l, right: r });
  }
  if (op === "has" && e.left.kind === "ref" && e.left.head.text === "principal" && e.left.members.length === 0) {
    const name = e.right.kind === "string" ? e.right.value : e.right.kind === "ref" && e.right.members.length === 0 ? e.right.head.text : null;
    if (name === null) { cx.error("E_TYPE_MISMATCH", "`principal has` needs an attribute name: `principal has team`", e.right.span); return FAILED; }
    const t = cx.schema[name];
    if (!t) {
      if (!cx.brokenAttributes.has(name)) cx.error("E_UNKNOWN_ATTRIBUTE", `the principal has no attribute \`${name}\``, e.right.span, didYouMean(name, Object.keys(cx.schema)) ?? "declare it in `principal { … }`");
      return FAILED;
    }
    if (!t.optional) cx.warn("W_ALWAYS_PRESENT", `\`principal has ${name}\` always holds: \`${name}\` is not optional`, e.span, `declare \`${name}?: ${typeToString(t)}\` if a principal may lack it, or drop the test`);
    return typed(BOOL, e.span, { k: "hasAttr", attr: name });
  }
  if (op === "has") {
    const map = bareMapOf(e.left);
    if (map) {
      if (e.right.kind !== "string") { cx.error("E_TYPE_MISMATCH", `\`request.${map} has\` needs a quoted name`, e.right.span); return FAILED; }
      const name = map === "header" ? e.right.value.toLowerCase() : e.right.value;
      return typed(BOOL, e.span, { k: map === "header" ? "hasHeader" : "hasQuery", name });
    }
  }
  if (op === "matches") {
    const l = checkExpr(cx, e.left, scope);
    if (e.right.kind !== "string") {
      cx.error("E_BAD_REGEX", "the pattern of `matches` must be a string literal", e.right.span, "patterns are checked when the policy is, so they are written in the policy: `request.path matches \"/a/[0-9]+\"`");
      return FAILED;
    }
    const parsed = parseRegex(e.right.value);
    if (!parsed.ok) {
      cx.error("E_BAD_REGEX", `bad pattern: ${parsed.message}`, spanInString(e.right.span, e.right.value, parsed.offset), parsed.help);
      return FAILED;
    }
    if (l === FAILED) return FAILED;
    if (l.type.kind !== "string") { cx.error("E_TYPE_MISMATCH", `\`matches\` works on strings, found \`${typeToString(l.type)}\``, e.opSpan); return FAILED; }
    return typed(BOOL, e.span, { k: "matches", subject: l, regex: parsed.program });
  }
  // Check the side that is not a bare enum value first, so the bare value is typed by it.
  const leftFirst = !isBareIdent(e.left) || isBareIdent(e.right);
  let l: Typed, r: Typed;
  const containerHint = (t: Type): Type | undefined => (t.kind === "set" ? t.of : undefined);
  if (leftFirst) {
    l = checkExpr(cx, e.left, scope);
    const hint = l === FAILED ? undefined : op === "has" ? containerHint(l.type) : op === "in" ? (l.type.kind === "ip" ? undefined : { kind: "set" as const, of: l.type }) : l.type;
    r = checkExpr(cx, e.right, scope, hint);
  } else {
    r = checkExpr(cx, e.right, scope);
    const hint = r === FAILED ? undefined : op === "in" ? containerHint(r.type) : op === "has" ? { kind: "set" as const, of: r.type } : r.type;
    l = checkExpr(cx, e.left, scope, hint);
  }
  if (l === FAILED || r === FAILED) return FAILED;
  const lt = l.type, rt = r.type;
  const mismatch = (help?: string): Typed => {
    cx.error("E_TYPE_MISMATCH", `\`${op}\` cannot compare \`${typeToString(lt)}\` with \`${typeToString(rt)}\``, e.opSpan, help);
    return FAILED;
  };
  switch (op) {
    case "==": case "!=": {
      if (!sameType(lt, rt)) return mismatch(lt.kind === "ip" && rt.kind === "cidr" ? "to test membership use `in`" : undefined);
      const by = lt.kind === "ip" || lt.kind === "cidr" ? "text" : lt.kind === "set" || rt.kind === "set" ? "set" : "value";
      return typed(BOOL, e.span, { k: op === "==" ? "eq" : "ne", left: l, right: r, by });
    }
    case "<": case "<=": case ">": case ">=": {
      if (!sameType(lt, rt) || !["int", "time", "duration"].includes(lt.kind)) return mismatch("ordering works on int, time and duration");
      const k = ({ "<": "lt", "<=": "le", ">": "gt", ">=": "ge" } as const)[op];
      return typed(BOOL, e.span, { k, left: l, right: r });
    }
    case "in": case "has": {
      const [el, container] = op === "in" ? [l, r] : [r, l];
      const et = el.type, ct = container.type;
      if (et.kind === "ip" && ct.kind === "cidr") return typed(BOOL, e.span, { k: "in", element: el, container, mode: "cidr", byText: false });
      if (et.kind === "ip" && ct.kind === "set" && ct.of.kind === "cidr") return typed(BOOL, e.span, { k: "in", element: el, container, mode: "cidrSet", byText: false });
      if (ct.kind === "set" && sameType(ct.of, et)) {
        return typed(BOOL, e.span, { k: "in", element: el, container, mode: "member", byText: et.kind === "ip" || et.kind === "cidr" });
      }
      cx.error("E_TYPE_MISMATCH", op === "in" ? `\`in\` needs a set of \`${typeToString(et)}\` (or a cidr for an ip) on the right, found \`${typeToString(ct)}\`` : `\`has\` needs a set of \`${typeToString(et)}\` on the left, found \`${typeToString(ct)}\``, e.opSpan,
        ct.kind === "string" && et.kind === "string" ? "for substrings use `starts_with` or `ends_with`" : undefined);
      return FAILED;
    }
    case "starts_with": case "ends_with": {
      if (lt.kind !== "string" || rt.kind !== "string") return mismatch("`starts_with` and `ends_with` work on strings");
      return typed(BOOL, e.span, { k: op === "starts_with" ? "startsWith" : "endsWith", left: l, right: r });
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
      return typed(type, e.span, { k, left: l, right: r });
    }
  }
  return mismatch();
}

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

/** The route params an expression reads. */
function paramsReadBy(e: TExpr, out: string[] = []): string[] {
  if (e.k === "param") { if (!out.includes(e.name)) out.push(e.name); return out; }
  for (const value of Object.values(e)) {
    if (Array.isArray(value)) { for (const item of value) if (item && typeof item === "object" && "k" in item) paramsReadBy(item as TExpr, out); }
    else if (value && typeof value === "object" && "k" in value && "type" in value) paramsReadBy(value as TExpr, out);
  }
  return out;
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
