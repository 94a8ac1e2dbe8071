// The reference interpreter: the policy's meaning, written as plainly as possible over the
// typed AST, with its own naive route matcher. Slow on purpose; the compiled tree must agree
// with it on every conformance case.
import { evaluate, type EvalEnv } from "./evaluate.ts";
import { separationKey } from "./ledger-key.ts";
import { spanAt, type CheckedDuty, type CheckedPolicy, type Segment } from "./typed-ast.ts";
import type { Channel, Decision, DecisionCode, Principal, PolicyRequest, Reason, RouteMatch, SeparationCheck } from "./types.ts";

const RANK = { literal: 3, param: 2, wildcard: 1 } as const;
/** Rank of "no more segments": an exact route beats one that only matches through a trailing `*`. */
const END_RANK = 1.5;

/** Compares route specificity: negative when `a` is more specific than `b`. */
export function compareSpecificity(a: readonly Segment[], b: readonly Segment[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const ra = i < a.length ? RANK[a[i]!.kind] : END_RANK;
    const rb = i < b.length ? RANK[b[i]!.kind] : END_RANK;
    if (ra !== rb) return rb - ra;
  }
  return 0;
}

function splitPath(path: string): string[] {
  return path === "/" ? [] : path.slice(1).split("/");
}

/** Matches one route: literal and param segments take exactly one non-empty segment; `*` takes the rest. */
export function matchSegments(segments: readonly Segment[], path: string): Record<string, string> | null {
  const parts = splitPath(path);
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s.kind === "wildcard") return params;
    const p = parts[i];
    if (p === undefined || p === "") return null;
    if (s.kind === "literal" && s.text !== p) return null;
    if (s.kind === "param") params[s.name] = p;
  }
  return parts.length === segments.length ? params : null;
}

/** Finds the most specific duty for a request on a channel, by scanning every duty. */
export function interpretRoute(policy: CheckedPolicy, channel: Channel, method: string, path: string): RouteMatch | null {
  let best: { duty: CheckedDuty; params: Record<string, string> } | null = null;
  for (const duty of policy.duties) {
    if (duty.channel !== channel || !duty.methods.includes(method)) continue;
    const params = matchSegments(duty.segments, path);
    if (!params) continue;
    if (!best || compareSpecificity(duty.segments, best.duty.segments) < 0) best = { duty, params };
  }
  return best ? { duty: best.duty.name, params: best.params } : null;
}

export function separationChecks(policy: CheckedPolicy, duty: string, params: Readonly<Record<string, string>>): SeparationCheck[] {
  return policy.separations
    .filter((s) => s.duties.includes(duty))
    .map((s) => ({ constraint: s.id, at: spanAt(s.span), param: s.params.join(", "), key: separationKey(s.params, params), duties: s.duties }));
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Decides one request under the policy: routing, exclusive roles, forbids, grants, in that order. */
export function interpretDecision(policy: CheckedPolicy, channel: Channel, principal: Principal, request: PolicyRequest): Decision {
  const match = interpretRoute(policy, channel, request.method, request.path);
  const reasons: Reason[] = [];
  const done = (allow: boolean, code: DecisionCode, duty: string | null, decidedBy: string | null, message: string, separations: SeparationCheck[] = []): Decision =>
    ({ allow, code, duty, decidedBy, reasons, branch: [], separations, ledger: [], message });
  if (!match) {
    reasons.push({ rule: "default:no-route", kind: "default", at: "", held: true, why: `no duty matches ${request.method} ${request.path} on the ${channel} channel` });
    return done(false, "DENY_NO_ROUTE", null, null, `no duty matches ${request.method} ${request.path}`);
  }
  const env: EvalEnv = { principal, request, params: match.params };

  let exclusiveHit: string | null = null;
  let exclusiveMsg = "";
  for (const x of policy.exclusives) {
    const held = x.roles.filter((r) => principal.roles.has(r));
    const violated = held.length >= x.atLeast;
    reasons.push({ rule: x.id, kind: "exclusive", at: spanAt(x.span), held: violated, why: violated ? `principal holds ${held.join(", ")}: at most ${x.atLeast - 1} of ${x.roles.join(", ")} allowed` : `principal holds ${held.length} of ${x.roles.join(", ")}` });
    if (violated && !exclusiveHit) {
      exclusiveHit = x.id;
      exclusiveMsg = `principal holds ${held.join(" and ")}, which are mutually exclusive`;
    }
  }
  if (exclusiveHit) return done(false, "DENY_EXCLUSIVE", match.duty, exclusiveHit, exclusiveMsg);

  let forbidHit: CheckedPolicy["forbids"][number] | null = null;
  for (const f of policy.forbids) {
    if (f.duties !== null && !f.duties.includes(match.duty)) continue;
    const expired = f.until !== null && request.time > f.until;
    const held = !expired && evaluate(f.when, env) === true;
    reasons.push({ rule: f.id, kind: "forbid", at: spanAt(f.span), held, why: expired ? `expired at ${isoDay(f.until!)}` : held ? "condition holds" : "condition does not hold" });
    if (held && !forbidHit) forbidHit = f;
  }
  if (forbidHit) return done(false, "DENY_FORBID", match.duty, forbidHit.id, `${match.duty} is forbidden by ${spanAt(forbidHit.span)}`);

  let grantHit: CheckedPolicy["grants"][number] | null = null;
  for (const g of policy.grants) {
    if (g.duty !== match.duty) continue;
    let held = false;
    let why: string;
    const roleHit = g.roles.find((r) => principal.roles.has(r));
    if (!roleHit) why = `principal holds none of ${g.roles.join(", ")}`;
    else if (g.until !== null && request.time > g.until) why = `expired at ${isoDay(g.until)}`;
    else if (g.when && evaluate(g.when, env) !== true) why = `role ${roleHit}, but the condition does not hold`;
    else {
      held = true;
      why = g.when ? `role ${roleHit}, and the condition holds` : `role ${roleHit}`;
    }
    reasons.push({ rule: g.id, kind: "grant", at: spanAt(g.span), held, why });
    if (held && !grantHit) grantHit = g;
  }
  if (!grantHit) return done(false, "DENY_NO_GRANT", match.duty, null, `no grant of ${match.duty} applies to this principal`);
  return done(true, "ALLOW", match.duty, grantHit.id, `${match.duty} granted by ${spanAt(grantHit.span)}`, separationChecks(policy, match.duty, match.params));
}
