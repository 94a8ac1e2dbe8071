// Static separation-of-duties analysis over a checked policy: which roles (alone or in
// combination) can reach both sides of every `separate` and `exclusive` constraint, whether an
// admin-channel upstream is reachable from the operational channel, and which people in a role
// assignment export break an `exclusive` set. Conditions (`when`) are over-approximated as
// "may hold": the analysis reports what *can* happen, never less.
import { diagnostic } from "./diagnostics.ts";
import type { CheckedDuty, CheckedPolicy, Segment } from "./typed_ast.ts";
import type { Diagnostic } from "./types.ts";

export interface ReachabilityRow {
  constraint: string;
  kind: "separate" | "exclusive" | "channel";
  /** The two sides: duties of a `separate` pair, or roles of an `exclusive` pair. */
  sides: [string, string];
  /** Roles that alone reach both sides. */
  singleRoles: string[];
  /** Pairs of roles, one per side, that a person may hold together (not made exclusive). */
  combinations: Array<[string, string]>;
  verdict: "ok" | "warning" | "error";
  note: string;
}

export interface SeparationAnalysis {
  rows: ReachabilityRow[];
  diagnostics: Diagnostic[];
}

function rolesFor(policy: CheckedPolicy, duty: string): Set<string> {
  return new Set(policy.grants.filter((g) => g.duty === duty).flatMap((g) => g.roles));
}

function exclusivePair(policy: CheckedPolicy, a: string, b: string): boolean {
  return policy.exclusives.some((x) => x.atLeast === 2 && x.roles.includes(a) && x.roles.includes(b));
}

/** Whether two routes can match one same path (same method assumed). */
function routesOverlap(a: readonly Segment[], b: readonly Segment[]): boolean {
  for (let i = 0; ; i++) {
    const x = a[i], y = b[i];
    if (x?.kind === "wildcard" || y?.kind === "wildcard") return true;
    if (!x || !y) return !x && !y;
    if (x.kind === "literal" && y.kind === "literal" && x.text !== y.text) return false;
  }
}

export function analyzeSeparation(policy: CheckedPolicy): SeparationAnalysis {
  const rows: ReachabilityRow[] = [];
  const diagnostics: Diagnostic[] = [];

  for (const s of policy.separations) {
    for (let i = 0; i < s.duties.length; i++) {
      for (let j = i + 1; j < s.duties.length; j++) {
        const a = s.duties[i]!, b = s.duties[j]!;
        const ra = rolesFor(policy, a), rb = rolesFor(policy, b);
        const single = [...ra].filter((r) => rb.has(r)).sort();
        const combos: Array<[string, string]> = [];
        for (const x of [...ra].sort()) for (const y of [...rb].sort()) if (x !== y && !exclusivePair(policy, x, y)) combos.push([x, y]);
        const verdict = single.length ? "warning" : "ok";
        const note = single.length
          ? `one role alone can ${a} and ${b}: only the duty ledger keeps them apart`
          : combos.length
            ? "different roles; a person holding both is kept apart by the duty ledger"
            : "no person can hold roles for both sides";
        rows.push({ constraint: s.id, kind: "separate", sides: [a, b], singleRoles: single, combinations: combos, verdict, note });
        if (single.length) {
          diagnostics.push(diagnostic("W_SEPARATE_SAME_ROLE", "warning", `role${single.length > 1 ? "s" : ""} ${single.map((r) => `\`${r}\``).join(", ")} can perform both \`${a}\` and \`${b}\`, which this constraint keeps apart`, s.span, "only the history check separates them; consider granting the duties to different roles and making those roles `exclusive`"));
        }
      }
    }
  }

  for (const x of policy.exclusives) {
    for (let i = 0; i < x.roles.length; i++) {
      for (let j = i + 1; j < x.roles.length; j++) {
        const a = x.roles[i]!, b = x.roles[j]!;
        const da = new Set(policy.grants.filter((g) => g.roles.includes(a)).map((g) => g.duty));
        const shared = policy.grants.filter((g) => g.roles.includes(b) && da.has(g.duty)).map((g) => g.duty);
        rows.push({
          constraint: x.id, kind: "exclusive", sides: [a, b], singleRoles: [], combinations: [],
          verdict: "ok",
          note: x.atLeast === 2 ? `never held together${shared.length ? `; both may ${[...new Set(shared)].join(", ")}` : ""}` : `held together only with fewer than ${x.atLeast} of the set`,
        });
      }
    }
  }

  // Admin-channel upstreams must not be reachable through operational duties.
  const admin = policy.duties.filter((d) => d.channel === "admin");
  const operational = policy.duties.filter((d) => d.channel === "operational");
  for (const o of operational) {
    const viaUpstream = admin.find((a) => a.upstream === o.upstream);
    const viaRoute = admin.find((a) => a.method === o.method && routesOverlap(a.segments, o.segments));
    const clash: CheckedDuty | undefined = viaUpstream ?? viaRoute;
    if (!clash) continue;
    const how = viaUpstream ? `forwards to \`${o.upstream}\`, the upstream of admin duty \`${clash.name}\`` : `matches the same paths as admin duty \`${clash.name}\` (${clash.method} ${clash.pattern})`;
    rows.push({ constraint: `channel:${o.name}`, kind: "channel", sides: [o.name, clash.name], singleRoles: [...rolesFor(policy, o.name)].sort(), combinations: [], verdict: "error", note: `operational duty ${how}` });
    diagnostics.push(diagnostic("E_ADMIN_REACHABLE_OPERATIONALLY", "error", `operational duty \`${o.name}\` ${how}`, o.span, "admin functions must only be reachable on the admin channel: add `channel admin` or use another upstream"));
  }
  return { rows, diagnostics };
}

/** Renders the reachability table as aligned text. */
export function renderReachabilityTable(rows: readonly ReachabilityRow[]): string[] {
  const header = ["constraint", "sides", "one role reaches both", "role combinations", "verdict"];
  const body = rows.map((r) => [
    r.constraint.replace(/^(separate|exclusive):/, "$1 "),
    `${r.sides[0]} / ${r.sides[1]}`,
    r.singleRoles.join(", ") || "-",
    r.combinations.map(([a, b]) => `${a}+${b}`).join(", ") || "-",
    `${r.verdict}: ${r.note}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  return [fmt(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(fmt)];
}

export interface AssignmentViolation {
  sub: string;
  roles: string[];
  constraint: string;
  held: string[];
  unknownRoles: string[];
}

/**
 * Checks a role-assignment export (who holds which roles) against the `exclusive` sets.
 * Unknown roles are reported too: an export that drifted from the policy is worth knowing about.
 */
export function checkAssignments(policy: CheckedPolicy, people: ReadonlyArray<{ sub: string; roles: readonly string[] }>): AssignmentViolation[] {
  const known = new Set(policy.roles);
  const out: AssignmentViolation[] = [];
  for (const p of people) {
    const unknownRoles = p.roles.filter((r) => !known.has(r));
    for (const x of policy.exclusives) {
      const held = x.roles.filter((r) => p.roles.includes(r));
      if (held.length >= x.atLeast) out.push({ sub: p.sub, roles: [...p.roles], constraint: x.id, held, unknownRoles });
    }
    if (unknownRoles.length && !out.some((v) => v.sub === p.sub)) out.push({ sub: p.sub, roles: [...p.roles], constraint: "", held: [], unknownRoles });
  }
  return out;
}
