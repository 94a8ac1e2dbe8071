// The separation-of-duties passes: `exclusive` (no principal may hold N of these roles at once)
// and `separate` (no person may do two of these duties on the same key, by the ledger). What each
// rule can reach is the separation analysis's job (dsl/analysis.ts); these passes check the rules.
import { didYouMean } from "../diagnostics.ts";
import type { CheckContext } from "./context.ts";
import { expandDuties, expandRoles } from "./names.ts";

/** Runs before the grants, which it informs (a grant requiring a role exclusive with its own never applies). */
export function checkExclusives(cx: CheckContext): void {
  for (const d of cx.declarationsOf("exclusive")) {
    const { roles: rs, ok: rolesOk } = expandRoles(cx, d.roles, "set");
    let ok = rolesOk;
    const atLeast = d.atLeast?.value ?? 2;
    if (ok && rs.length < 2) { cx.error("E_EXCLUSIVE_TOO_SMALL", "`exclusive` needs at least two roles", d.span); ok = false; }
    if (ok && (atLeast < 2 || atLeast > rs.length)) { cx.error("E_EXCLUSIVE_BAD_COUNT", `\`exclusive ${atLeast} of\` needs 2 ≤ N ≤ ${rs.length}`, d.atLeast?.span ?? d.span); ok = false; }
    if (ok) cx.exclusives.push({ id: cx.ruleIdOf(d), atLeast, roles: rs, span: d.span });
  }
}

export function checkSeparations(cx: CheckContext): void {
  for (const d of cx.declarationsOf("separate")) {
    const { duties: ds, ok: dutiesOk } = expandDuties(cx, d.duties, "set");
    let ok = dutiesOk;
    if (ok && ds.length < 2) { cx.error("E_SEPARATE_TOO_SMALL", "`separate` needs at least two duties", d.span); ok = false; }
    const params: string[] = [];
    for (const p of d.params) {
      if (params.includes(p.text)) { cx.error("E_DUPLICATE_PARAM", `route param \`${p.text}\` appears twice in this key`, p.span, "each param is part of the key once"); ok = false; }
      else params.push(p.text);
    }
    if (ok) {
      for (const duty of ds) {
        for (const p of d.params) {
          if (!duty.params.includes(p.text)) {
            cx.error("E_UNKNOWN_PARAM", `duty \`${duty.name}\` has no route param \`:${p.text}\``, p.span, didYouMean(p.text, duty.params) ?? `its route is \`${duty.pattern}\``);
            ok = false;
          }
        }
      }
    }
    if (ok) cx.separations.push({ id: cx.ruleIdOf(d), duties: ds.map((x) => x.name), params, span: d.span });
  }
}
