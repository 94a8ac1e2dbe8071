// The grants passes: each grant and forbid (its roles and duties, its condition, its `until`), and
// the findings a reviewer would miss: a grant that can never apply, one an unconditional forbid
// shadows, one an earlier grant always decides before it.
import type { Name } from "../ast.ts";
import { evaluate, isConstant } from "../evaluate.ts";
import type { CheckedGrant, TExpr } from "../typed-ast.ts";
import { parseTime } from "../values.ts";
import { at, type CheckContext } from "./context.ts";
import { expandDuties, expandRoles } from "./names.ts";
import { checkCondition, reportBadDate, scopeFor } from "./types.ts";

/** The inputs a constant condition is evaluated against: it reads none of them. */
const constantEnv = {
  principal: { sub: "", roles: new Set<string>() },
  request: { method: "", path: "", ip: { kind: "ip", v6: false, addr: 0n, text: "0.0.0.0" }, time: 0, headers: {}, query: {} },
  params: {},
} as const;

/** The end of a grant or forbid as epoch ms; undefined (after an error) when bad or past. */
function checkUntil(cx: CheckContext, until: Name, what: "grant" | "forbid"): number | undefined {
  const t = parseTime(until.text, true);
  if (t === null) { reportBadDate(cx, until.text, until.span); return undefined; }
  if (t < cx.now) { cx.error("E_UNTIL_PAST", `this ${what} expired on ${until.text}`, until.span, `remove the ${what}, or extend it with a new reviewed date`); return undefined; }
  if (t - cx.now <= cx.untilWarningMs) cx.warn("W_UNTIL_SOON", `this ${what} expires on ${until.text}, in ${Math.ceil((t - cx.now) / 86_400_000)} days`, until.span);
  return t;
}

/** Runs after the exclusives: a grant that requires a role exclusive with all it grants never applies. */
export function checkGrants(cx: CheckContext): void {
  for (const d of cx.declarationsOf("grant")) {
    const { roles: rs, ok: rolesOk } = expandRoles(cx, d.roles, "grant");
    let ok = rolesOk;
    // The duty may be a group of duties: one rule, one grant of each.
    const target = expandDuties(cx, [d.duty], "grant");
    if (!target.ok) ok = false;
    const when = d.when ? checkCondition(cx, d.when, { ...scopeFor(target.duties), open: target.open }) : null;
    if (d.when && !when) ok = false;
    const until = d.until ? checkUntil(cx, d.until, "grant") : null;
    if (until === undefined) ok = false;
    if (when && isConstant(when) && evaluate(when, constantEnv) === false) {
      cx.error("E_GRANT_NEVER_APPLIES", "this grant can never apply: its condition is always false", d.when!.span);
      ok = false;
    }
    if (ok && when) {
      // A grant whose condition requires a role that is exclusive with every granted role never applies.
      const required = requiredRoles(when);
      for (const req of required) {
        const blocks = rs.every((g) => g !== req && cx.exclusives.some((x) => x.atLeast === 2 && x.roles.includes(g) && x.roles.includes(req)));
        if (blocks) {
          cx.error("E_GRANT_NEVER_APPLIES", `this grant can never apply: it requires role \`${req}\`, which is exclusive with ${rs.map((r) => `\`${r}\``).join(", ")}`, d.when!.span);
          ok = false;
        }
      }
    }
    for (const duty of ok ? target.duties : []) {
      if (duty.channel === "admin") {
        for (const role of rs.filter((r) => !cx.adminRoles.has(r))) {
          const n = d.roles.find((x) => x.text === role) ?? d.roles[0]!;
          cx.warn("W_ADMIN_DUTY_OPERATIONAL_ROLE", `operational role \`${role}\` is granted admin-channel duty \`${duty.name}\``, n.span, `admin-channel duties are for roles declared \`channel admin\`: declare \`role ${role} channel admin\` if it is meant to administer the gateway, or grant the duty to such a role`);
        }
      }
      cx.grants.push({ id: cx.ruleIdOf(d), roles: rs, duty: duty.name, when, until: until ?? null, untilText: d.until?.text ?? null, span: d.span });
    }
  }
}

export function checkForbids(cx: CheckContext): void {
  for (const d of cx.declarationsOf("forbid")) {
    const target = d.duties ? expandDuties(cx, d.duties, "forbid") : null;
    const ds = target ? target.duties : null;
    let ok = target?.ok ?? true;
    const when = checkCondition(cx, d.when, { ...scopeFor(ds ?? []), open: target?.open ?? false });
    if (!when) ok = false;
    if (when && isConstant(when) && evaluate(when, constantEnv) === false) {
      cx.warn("W_FORBID_NEVER_APPLIES", "this forbid never applies: its condition is always false", d.when.span);
    }
    // A temporary forbid (a freeze until a date) ends as a temporary grant does.
    const until = d.until ? checkUntil(cx, d.until, "forbid") : null;
    if (until === undefined) ok = false;
    if (ok && when) cx.forbids.push({ id: cx.ruleIdOf(d), duties: ds ? ds.map((x) => x.name) : null, when, until: until ?? null, untilText: d.until?.text ?? null, span: d.span });
  }
}

/** Grants that never decide: shadowed by an unconditional forbid, or by an earlier grant. */
export function findShadowedGrants(cx: CheckContext): void {
  for (const g of cx.grants) {
    const f = cx.forbids.find((f) => (f.duties === null || f.duties.includes(g.duty)) && f.until === null && isConstant(f.when) && evaluate(f.when, constantEnv) === true);
    if (f) cx.warn("W_GRANT_SHADOWED", `this grant never applies: \`${g.duty}\` is always forbidden by ${at(f.span)}`, g.span);
  }
  findRepeatedGrants(cx, cx.grants);
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
function findRepeatedGrants(cx: CheckContext, grants: readonly CheckedGrant[]): void {
  const byDuty = new Map<string, CheckedGrant[]>();
  for (const g of grants) {
    const earlier = byDuty.get(g.duty) ?? [];
    const key = conditionKey(g.when);
    const repeat = earlier.find((e) => e.until === g.until && g.roles.every((r) => e.roles.includes(r)) && conditionKey(e.when) === key);
    if (repeat) {
      cx.warn("W_DUPLICATE_GRANT", `duplicate grant: ${g.roles.map((r) => `\`${r}\``).join(", ")} already ${g.roles.length > 1 ? "have" : "has"} \`${g.duty}\` on the same terms at ${at(repeat.span)}`, g.span, "remove one of the two");
    } else {
      const coveredBy = g.roles.map((r) => earlier.find((e) => e.roles.includes(r) && e.when === null && (e.until === null || (g.until !== null && e.until >= g.until))));
      if (coveredBy.every((e) => e !== undefined)) {
        const first = coveredBy[0]!;
        cx.warn("W_GRANT_SHADOWED_BY_GRANT", `this grant never decides: ${g.roles.map((r) => `\`${r}\``).join(", ")} already ${g.roles.length > 1 ? "have" : "has"} \`${g.duty}\` without condition at ${[...new Set(coveredBy.map((e) => at(e!.span)))].join(", ")}`, g.span,
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
