// Where in the policy files a rule or a duty is written: what `gateway check`'s annotations, the
// replay report and the playground point at.
import type { CheckedPolicy, Span } from "../../dsl/mod.ts";

/** Where a rule of the policy is written, from its id (`grant:…`, `forbid:…`, `exclusive:…`, `separate:…`). */
export function ruleSpan(policy: CheckedPolicy, id: string | null): Span | null {
  if (!id) return null;
  const rule = [...policy.grants, ...policy.forbids, ...policy.exclusives, ...policy.separations].find((r) => r.id === id);
  return rule?.span ?? null;
}

/** Where a duty is declared. */
export function dutySpan(policy: CheckedPolicy, name: string): Span | null {
  return policy.duties.find((d) => d.name === name)?.span ?? null;
}
