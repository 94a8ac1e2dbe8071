// The names passes: what the policy declares (rule ids, roles and enums, upstreams, groups, named
// conditions), how a rule's names resolve to them (with "did you mean"), and, last, the names
// declared that nothing uses.
import type { Name } from "../ast.ts";
import { didYouMean, hasErrors } from "../diagnostics.ts";
import type { CheckedDuty } from "../typed-ast.ts";
import type { Span } from "../types.ts";
import { at, type CheckContext, type GroupValue } from "./context.ts";
import { PRIMITIVES, resolveCondition } from "./types.ts";

/** The declarations that are rules: they decide, and may carry an `@id`. */
const RULE_KINDS = ["grant", "forbid", "exclusive", "separate"] as const;
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * `@id("…")` names a rule for good: tests, explain, the audit log and replay cite it, and
 * inserting a line above no longer changes it. A rule without one is known by its location.
 */
export function checkRuleIds(cx: CheckContext): void {
  const firstWithId = new Map<string, Span>();
  for (const d of cx.declarations) {
    const a = d.annotation;
    if (!a) continue;
    if (a.name.text !== "id") {
      cx.error("E_UNKNOWN_ANNOTATION", `unknown annotation \`@${a.name.text}\``, a.name.span, didYouMean(a.name.text, ["id"]) ?? "the one annotation is `@id(\"…\")`, written before a rule");
      continue;
    }
    if (!(RULE_KINDS as readonly string[]).includes(d.kind)) {
      cx.error("E_ID_NOT_ON_RULE", `\`@id\` names a rule, not a \`${d.kind}\` declaration`, a.span, `rules are ${RULE_KINDS.join(", ")}; remove the \`@id\``);
      continue;
    }
    const id = a.value.text;
    if (!RULE_ID.test(id)) {
      cx.error("E_BAD_RULE_ID", `bad rule id \`${id}\``, a.value.span, "a rule id is 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit: `@id(\"approve-by-reviewer\")`");
      continue;
    }
    const first = firstWithId.get(id);
    if (first) {
      cx.error("E_DUPLICATE_RULE_ID", `rule id \`${id}\` is used twice`, a.value.span, `first used at ${at(first)}; rule ids are unique across grants, forbids, exclusives and separates`);
      continue;
    }
    firstWithId.set(id, d.span);
    cx.ruleIds.set(d, `${d.kind}:${id}`);
  }
}

/** `role` declarations make the `role` enum (and the admin roles); `enum` declarations the others. */
export function declareRolesAndEnums(cx: CheckContext): void {
  const { enums, enumValueSpans } = cx;
  const roleDecls = cx.declarationsOf("role");
  if (roleDecls.length) enums.set("role", []);
  for (const d of roleDecls) {
    if (d.channel && d.channel.text !== "admin") {
      cx.error("E_UNKNOWN_CHANNEL", `\`role … channel\` takes \`admin\`, found \`${d.channel.text}\``, d.channel.span, d.channel.text === "operational" ? "roles are operational unless declared `channel admin`: remove `channel operational`" : didYouMean(d.channel.text, ["admin"]) ?? "write `role NAME channel admin` for roles that administer the gateway");
    }
    for (const n of d.names) {
      if (d.channel?.text === "admin") cx.adminRoles.add(n.text);
      if (enumValueSpans.has(`role.${n.text}`)) cx.error("E_DUPLICATE_ROLE", `role \`${n.text}\` is declared twice`, n.span);
      else {
        enumValueSpans.set(`role.${n.text}`, n.span);
        enums.get("role")!.push(n.text);
      }
    }
  }
  for (const d of cx.declarationsOf("enum")) {
    if (d.name.text === "role" || enums.has(d.name.text) || d.name.text in PRIMITIVES) {
      cx.error("E_DUPLICATE_TYPE", `type \`${d.name.text}\` is already declared`, d.name.span, d.name.text === "role" ? "declare roles with `role a, b`" : undefined);
      continue;
    }
    const values: string[] = [];
    for (const v of d.values) {
      if (values.includes(v.text)) cx.error("E_DUPLICATE_ENUM_VALUE", `\`${v.text}\` appears twice in enum \`${d.name.text}\``, v.span);
      else values.push(v.text);
    }
    enums.set(d.name.text, values);
  }
  cx.roles = enums.get("role") ?? [];
  cx.roleSet = new Set(cx.roles);
}

export function declareUpstreams(cx: CheckContext): void {
  for (const d of cx.declarationsOf("upstream")) {
    for (const n of d.names) {
      if (cx.upstreams.includes(n.text)) cx.error("E_DUPLICATE_UPSTREAM", `upstream \`${n.text}\` is declared twice`, n.span);
      else cx.upstreams.push(n.text);
    }
  }
}

/**
 * `group NAME = a, b, c` names a list of roles or of duties (or of such groups) once, for the
 * rules that would repeat it; a rule naming the group means each of its members. Runs after the
 * duties are known.
 */
export function resolveGroups(cx: CheckContext): void {
  const { groupDecls } = cx;
  for (const d of cx.declarationsOf("group")) {
    const n = d.name.text;
    const first = groupDecls.get(n);
    if (first) { cx.error("E_DUPLICATE_GROUP", `group \`${n}\` is declared twice`, d.name.span, `first declared at ${at(first.span)}`); continue; }
    if (cx.roleSet.has(n) || cx.dutyByName.has(n) || cx.brokenDuties.has(n)) {
      cx.error("E_DUPLICATE_GROUP", `group \`${n}\` has the name of a ${cx.roleSet.has(n) ? "role" : "duty"}`, d.name.span, "a name in a list must mean one thing: rename the group");
      continue;
    }
    groupDecls.set(n, d);
  }
  const resolving = new Set<string>();
  for (const name of groupDecls.keys()) resolveGroup(cx, name, resolving);
}

function resolveGroup(cx: CheckContext, name: string, resolving: Set<string>): GroupValue | null {
  if (cx.groups.has(name)) return cx.groups.get(name)!;
  const d = cx.groupDecls.get(name)!;
  resolving.add(name);
  let kind: "role" | "duty" | null = null;
  const members: string[] = [];
  const written = new Set<string>();
  let ok = true;
  for (const m of d.members) {
    let memberKind: "role" | "duty";
    let items: readonly string[];
    if (written.has(m.text)) { cx.error("E_DUPLICATE_MEMBER", `\`${m.text}\` appears twice in group \`${name}\``, m.span); ok = false; continue; }
    written.add(m.text);
    if (cx.groupDecls.has(m.text)) {
      if (resolving.has(m.text)) { cx.error("E_GROUP_CYCLE", `group \`${name}\` contains itself through \`${m.text}\``, m.span, "a group may hold other groups, but not itself, directly or through others"); ok = false; continue; }
      cx.usedGroups.add(m.text);
      const g = resolveGroup(cx, m.text, resolving);
      if (!g) { ok = false; continue; }
      memberKind = g.kind;
      items = g.members;
    } else if (cx.roleSet.has(m.text)) { memberKind = "role"; items = [m.text]; cx.mentionedRoles.add(m.text); }
    else if (cx.dutyByName.has(m.text)) { memberKind = "duty"; items = [m.text]; }
    else {
      if (!cx.brokenDuties.has(m.text)) cx.error("E_UNKNOWN_NAME", `unknown role, duty or group \`${m.text}\``, m.span, didYouMean(m.text, [...cx.roles, ...dutyNames(cx), ...cx.groupDecls.keys()]));
      ok = false;
      continue;
    }
    if (kind !== null && memberKind !== kind) {
      cx.error("E_MIXED_GROUP", `group \`${name}\` mixes roles and duties: \`${m.text}\` is a ${memberKind === "role" ? "role" : "duty"}, the first member a ${kind}`, m.span, "a group holds roles or duties, not both: make two groups");
      ok = false;
      continue;
    }
    kind = memberKind;
    for (const item of items) if (!members.includes(item)) members.push(item);
  }
  resolving.delete(name);
  const value = ok && kind !== null ? { kind, members } : null;
  cx.groups.set(name, value);
  return value;
}

/**
 * `condition NAME = EXPR` is checked once, where it is declared (its route params unchecked
 * there); each use inlines the typed body, after checking that the rule's duties all have the
 * params it reads. Both evaluators therefore see plain expressions. This pass only declares them.
 */
export function declareConditions(cx: CheckContext): void {
  for (const d of cx.declarationsOf("condition")) {
    const n = d.name.text;
    const first = cx.conditionDecls.get(n);
    if (first) { cx.error("E_DUPLICATE_CONDITION", `condition \`${n}\` is declared twice`, d.name.span, `first declared at ${at(first.span)}`); continue; }
    const owners = [...cx.enums.entries()].filter(([, vs]) => vs.includes(n)).map(([e]) => e);
    if (owners.length || n === "request") {
      cx.error("E_DUPLICATE_CONDITION", `condition \`${n}\` has the name of ${n === "request" ? "the request" : owners[0] === "role" ? "a role" : `a value of enum \`${owners[0]}\``}`, d.name.span, "a bare name in a condition must mean one thing: rename the condition");
      continue;
    }
    cx.conditionDecls.set(n, d);
  }
}

const dutyNames = (cx: CheckContext) => cx.duties.map((d) => d.name);

function resolveRole(cx: CheckContext, n: Name): boolean {
  if (cx.roleSet.has(n.text)) { cx.mentionedRoles.add(n.text); return true; }
  cx.error("E_UNKNOWN_ROLE", `unknown role \`${n.text}\``, n.span, didYouMean(n.text, [...cx.roles, ...cx.groupsOf("role")]) ?? (cx.roles.length ? undefined : "declare roles with `role a, b`"));
  return false;
}

function resolveDuty(cx: CheckContext, n: Name): CheckedDuty | null {
  const d = cx.dutyByName.get(n.text);
  if (!d && !cx.brokenDuties.has(n.text)) cx.error("E_UNKNOWN_DUTY", `unknown duty \`${n.text}\``, n.span, didYouMean(n.text, [...dutyNames(cx), ...cx.groupsOf("duty")]));
  return d ?? null;
}

/**
 * The roles a rule names: roles, and the members of role groups. A role written twice is an
 * error; one that also comes through a group is not (groups overlap on purpose).
 */
export function expandRoles(cx: CheckContext, names: readonly Name[], where: string): { roles: string[]; ok: boolean } {
  const out: string[] = [];
  const written = new Set<string>();
  let ok = true;
  for (const n of names) {
    if (cx.groupDecls.has(n.text)) {
      cx.usedGroups.add(n.text);
      const g = cx.groups.get(n.text);
      if (!g) { ok = false; continue; }
      if (g.kind !== "role") { cx.error("E_GROUP_KIND", `group \`${n.text}\` holds duties, where roles are expected`, n.span, didYouMean(n.text, cx.groupsOf("role"))); ok = false; continue; }
      for (const r of g.members) if (!out.includes(r)) out.push(r);
      continue;
    }
    if (!resolveRole(cx, n)) { ok = false; continue; }
    if (written.has(n.text)) { cx.error("E_DUPLICATE_ROLE", `role \`${n.text}\` appears twice in this ${where}`, n.span); ok = false; continue; }
    written.add(n.text);
    if (!out.includes(n.text)) out.push(n.text);
  }
  return { roles: out, ok };
}

/** The duties a rule names, as `expandRoles`; `open` when a named duty has its own error. */
export function expandDuties(cx: CheckContext, names: readonly Name[], where: string): { duties: CheckedDuty[]; ok: boolean; open: boolean } {
  const out: CheckedDuty[] = [];
  const written = new Set<string>();
  let ok = true, open = false;
  for (const n of names) {
    if (cx.groupDecls.has(n.text)) {
      cx.usedGroups.add(n.text);
      const g = cx.groups.get(n.text);
      if (!g) { ok = false; open = true; continue; }
      if (g.kind !== "duty") { cx.error("E_GROUP_KIND", `group \`${n.text}\` holds roles, where duties are expected`, n.span, didYouMean(n.text, cx.groupsOf("duty"))); ok = false; continue; }
      for (const name of g.members) { const duty = cx.dutyByName.get(name)!; if (!out.includes(duty)) out.push(duty); }
      continue;
    }
    const duty = resolveDuty(cx, n);
    if (!duty) { ok = false; open ||= cx.brokenDuties.has(n.text); continue; }
    if (written.has(n.text)) { cx.error("E_DUPLICATE_DUTY", `duty \`${n.text}\` appears twice in this ${where}`, n.span); ok = false; continue; }
    written.add(n.text);
    if (!out.includes(duty)) out.push(duty);
  }
  return { duties: out, ok, open };
}

/**
 * The last pass: names declared that nothing uses (conditions, groups, roles) and duties no grant
 * names. Unused conditions are still checked here, so that their mistakes show before their first
 * use. Like unused roles, unused conditions and groups are reported only without errors: a rule
 * that would use them may be the broken one, and the list would be noise.
 */
export function reportUnusedNames(cx: CheckContext): void {
  const { groupDecls, groups } = cx;
  // A duty named by a grant that has an error already has that error: warn only where no grant was written.
  // A group with an error counts as granting every name written in it (and in the groups it names).
  const writtenIn = (name: string, seen = new Set<string>()): string[] => {
    const d = groupDecls.get(name);
    if (!d || seen.has(name)) return [name];
    seen.add(name);
    return d.members.flatMap((m) => writtenIn(m.text, seen));
  };
  const grantedDuties = new Set(cx.declarationsOf("grant").flatMap((g) => groups.get(g.duty.text)?.members ?? writtenIn(g.duty.text)));
  const unusedConditions = [...cx.conditionDecls].filter(([name]) => !cx.usedConditions.has(name));
  for (const [name, d] of unusedConditions) resolveCondition(cx, name, d.name.span);
  for (const [name, d] of hasErrors(cx.diagnostics) ? [] : unusedConditions) {
    cx.warn("W_UNUSED_CONDITION", `condition \`${name}\` is declared but no rule uses it`, d.name.span, "use it in a `when`, or remove it");
  }
  for (const [name, d] of hasErrors(cx.diagnostics) ? [] : groupDecls) {
    if (!cx.usedGroups.has(name)) cx.warn("W_UNUSED_GROUP", `group \`${name}\` is declared but no rule names it`, d.name.span, "name it in a grant, forbid, exclusive or separate, or remove it");
  }
  for (const duty of cx.duties) {
    if (!grantedDuties.has(duty.name)) cx.warn("W_DUTY_NEVER_GRANTED", `duty \`${duty.name}\` is granted to no role: every request to it is denied`, duty.span);
  }
  for (const role of hasErrors(cx.diagnostics) ? [] : cx.roles) {
    if (!cx.mentionedRoles.has(role)) cx.warn("W_UNUSED_ROLE", `role \`${role}\` is declared but no grant, exclusive or condition names it`, cx.enumValueSpans.get(`role.${role}`)!, "grant it a duty, or remove it");
  }
}
