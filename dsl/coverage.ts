// Rule coverage of the policy tests: for each rule, whether some test saw it let a request through
// and whether some test saw it refuse one. A rule no test exercised both ways is a rule whose
// mistakes no test would catch.
import type { PolicyTestResult } from "./policy-tests.ts";
import { spanAt, type CheckedPolicy } from "./typed-ast.ts";

/** One rule and the sides of it the tests exercised. */
export interface RuleCoverage {
  /** The rule's id, as decisions and the audit log name it. */
  rule: string;
  kind: "grant" | "forbid" | "exclusive" | "separate";
  /** `file:line:col` of the rule. */
  at: string;
  /**
   * Allow side — grant: it decided an allow; forbid, exclusive: it was considered and did not
   * hold; separate: an allowed request passed it.
   */
  allow: boolean;
  /**
   * Deny side — grant: it was considered for a request and did not apply; forbid, exclusive: it
   * held; separate: it denied a request on the test's history.
   */
  deny: boolean;
}

export interface PolicyCoverage {
  rules: RuleCoverage[];
  /** Sides exercised, of 2 per rule. */
  hit: number;
  total: number;
  /** hit / total as a percentage (100 for a policy without rules). */
  percent: number;
}

/**
 * Which sides of each rule the policy tests exercised, from the decisions they got and the rules
 * the reference interpreter considered for them. Tests that could not run count for nothing.
 *
 * @example policyCoverage(policy, runPolicyTests(compiled, tests)).percent // 75
 */
export function policyCoverage(policy: CheckedPolicy, results: readonly PolicyTestResult[]): PolicyCoverage {
  const heldBy = new Set<string>();
  const notHeldBy = new Set<string>();
  const decidedAllow = new Set<string>();
  const separationPassed = new Set<string>();
  const separationDenied = new Set<string>();
  for (const r of results) {
    for (const reason of r.considered ?? []) (reason.held ? heldBy : notHeldBy).add(reason.rule);
    const d = r.decision;
    if (!d) continue;
    if (d.code === "ALLOW" && d.decidedBy) decidedAllow.add(d.decidedBy);
    if (d.allow) for (const s of d.separations) separationPassed.add(s.constraint);
    if (d.code === "DENY_SOD_HISTORY" && d.decidedBy) {
      separationDenied.add(d.decidedBy);
      // The grant applied before the history denied: its allow side was exercised.
      const grant = d.reasons.find((x) => x.kind === "grant" && x.held);
      if (grant) decidedAllow.add(grant.rule);
    }
  }
  const rules: RuleCoverage[] = [
    ...policy.grants.map((g) => ({ rule: g.id, kind: "grant" as const, at: spanAt(g.span), allow: decidedAllow.has(g.id), deny: notHeldBy.has(g.id) })),
    ...policy.forbids.map((f) => ({ rule: f.id, kind: "forbid" as const, at: spanAt(f.span), allow: notHeldBy.has(f.id), deny: heldBy.has(f.id) })),
    ...policy.exclusives.map((x) => ({ rule: x.id, kind: "exclusive" as const, at: spanAt(x.span), allow: notHeldBy.has(x.id), deny: heldBy.has(x.id) })),
    ...policy.separations.map((s) => ({ rule: s.id, kind: "separate" as const, at: spanAt(s.span), allow: separationPassed.has(s.id), deny: separationDenied.has(s.id) })),
  ];
  rules.sort((a, b) => compareAt(a.at, b.at));
  const total = rules.length * 2;
  const hit = rules.reduce((n, r) => n + Number(r.allow) + Number(r.deny), 0);
  return { rules, hit, total, percent: total === 0 ? 100 : (hit / total) * 100 };
}

/** Orders `file:line:col` by file, then numerically by line and column. */
function compareAt(a: string, b: string): number {
  const pa = /^(.*):(\d+):(\d+)$/.exec(a), pb = /^(.*):(\d+):(\d+)$/.exec(b);
  if (!pa || !pb) return a.localeCompare(b);
  return pa[1]!.localeCompare(pb[1]!) || Number(pa[2]) - Number(pb[2]) || Number(pa[3]) - Number(pb[3]);
}
