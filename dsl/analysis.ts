// Static separation-of-duties analysis over a checked policy: which roles (alone or in
// combination) can reach both sides of every `separate` and `exclusive` constraint, whether an
// admin-channel upstream is reachable from the operational channel, and which people in a role
// assignment export break an `exclusive` set. Conditions (`when`) are over-approximated as
// "may hold": the analysis reports what *can* happen, never less.
import { diagnostic } from "./diagnostics.ts";
import type { CheckedDuty, CheckedPolicy, Segment } from "./typed-ast.ts";
import type { Diagnostic, Span } from "./types.ts";

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
  /** On a summary row only: how many pairs of the constraint it stands for (not listed one by one). */
  omittedPairs?: number;
  /** How many role combinations were left out of `combinations` (it lists at most 20). */
  omittedCombinations?: number;
}

/**
 * Each constraint lists at most this many pairs, then one summary row: `exclusive 2 of` over
 * 1,500 roles has 1,124,250 pairs, and a table (or JSON report) of them helps nobody.
 */
export const MAX_PAIRS_PER_CONSTRAINT = 20;
/** Role combinations listed per row; the rest are counted in `omittedCombinations`. */
export const MAX_COMBINATIONS_PER_ROW = 20;

export interface SeparationAnalysis {
  rows: ReachabilityRow[];
  diagnostics: Diagnostic[];
}

/** Roles granted each duty, computed once: the pair loops below look them up per pair. */
function rolesByDuty(policy: CheckedPolicy): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const g of policy.grants) {
    const set = out.get(g.duty) ?? new Set<string>();
    for (const r of g.roles) set.add(r);
    out.set(g.duty, set);
  }
  return out;
}

/** Whether two roles are in one `exclusive 2 of` set, by set membership (no scan of the sets per pair). */
function exclusivePairTest(policy: CheckedPolicy): (a: string, b: string) => boolean {
  const setsOf = new Map<string, number[]>();
  policy.exclusives.forEach((x, i) => {
    if (x.atLeast !== 2) return;
    for (const r of x.roles) setsOf.set(r, [...(setsOf.get(r) ?? []), i]);
  });
  return (a, b) => {
    const sa = setsOf.get(a), sb = setsOf.get(b);
    return !!sa && !!sb && sa.some((i) => sb.includes(i));
  };
}

/** All index pairs (i < j) of a list of n items, in row order. */
function* pairs(n: number): Generator<[number, number]> {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) yield [i, j];
}

const count = (n: number) => n.toLocaleString("en-US");

/** Whether two routes can match one same path (same method assumed). */
function routesOverlap(a: readonly Segment[], b: readonly Segment[]): boolean {
  for (let i = 0; ; i++) {
    const x = a[i], y = b[i];
    if (x?.kind === "wildcard" || y?.kind === "wildcard") return true;
    if (!x || !y) return !x && !y;
    if (x.kind === "literal" && y.kind === "literal" && x.text !== y.text) return false;
  }
}

/**
 * The first admin duty (in source order) whose route an operational duty's route can match with
 * one of its methods. Admin duties are bucketed by method and first literal segment, so each
 * lookup compares routes only with the admin duties that could overlap (a scan of every admin duty
 * per operational duty took most of the analysis of a 10,000-duty policy).
 */
function adminRouteIndex(admin: readonly CheckedDuty[]): (o: CheckedDuty) => CheckedDuty | undefined {
  const byMethod = new Map<string, number[]>();
  /** `method \0 first literal`, or `method \0` for a route whose first segment matches any literal. */
  const byHead = new Map<string, number[]>();
  const push = (map: Map<string, number[]>, key: string, i: number) => {
    const list = map.get(key);
    if (list) list.push(i);
    else map.set(key, [i]);
  };
  admin.forEach((a, i) => {
    const head = a.segments[0];
    for (const m of new Set(a.methods)) {
      push(byMethod, m, i);
      push(byHead, head?.kind === "literal" ? `${m}\u0000${head.text}` : `${m}\u0000`, i);
    }
  });
  return (o) => {
    const head = o.segments[0];
    let first = Infinity;
    for (const m of o.methods) {
      const candidates = head?.kind === "literal" ? [...(byHead.get(`${m}\u0000${head.text}`) ?? []), ...(byHead.get(`${m}\u0000`) ?? [])] : (byMethod.get(m) ?? []);
      for (const i of candidates) if (i < first && routesOverlap(admin[i]!.segments, o.segments)) first = i;
    }
    return first === Infinity ? undefined : admin[first];
  };
}

export function analyzeSeparation(policy: CheckedPolicy): SeparationAnalysis {
  const rows: ReachabilityRow[] = [];
  const diagnostics: Diagnostic[] = [];
  const dutyRoles = rolesByDuty(policy);
  const rolesFor = (duty: string) => dutyRoles.get(duty) ?? new Set<string>();
  const exclusivePair = exclusivePairTest(policy);

  for (const s of policy.separations) {
    const total = (s.duties.length * (s.duties.length - 1)) / 2;
    let listed = 0, omittedWarnings = 0;
    const omittedRoles = new Set<string>();
    for (const [i, j] of pairs(s.duties.length)) {
      const a = s.duties[i]!, b = s.duties[j]!;
      const ra = rolesFor(a), rb = rolesFor(b);
      const single = [...ra].filter((r) => rb.has(r)).sort();
      if (listed === MAX_PAIRS_PER_CONSTRAINT) {
        if (single.length) { omittedWarnings++; for (const r of single) omittedRoles.add(r); }
        continue;
      }
      listed++;
      const combos: Array<[string, string]> = [];
      let moreCombos = 0;
      for (const x of [...ra].sort()) {
        for (const y of [...rb].sort()) {
          if (x === y || exclusivePair(x, y)) continue;
          if (combos.length < MAX_COMBINATIONS_PER_ROW) combos.push([x, y]);
          else moreCombos++;
        }
      }
      const verdict = single.length ? "warning" : "ok";
      const note = single.length
        ? `one role alone can ${a} and ${b}: only the duty ledger keeps them apart`
        : combos.length
          ? "different roles; a person holding both is kept apart by the duty ledger"
          : "no person can hold roles for both sides";
      const row: ReachabilityRow = { constraint: s.id, kind: "separate", sides: [a, b], singleRoles: single, combinations: combos, verdict, note };
      if (moreCombos) row.omittedCombinations = moreCombos;
      rows.push(row);
      if (single.length) {
        diagnostics.push(diagnostic("W_SEPARATE_SAME_ROLE", "warning", `role${single.length > 1 ? "s" : ""} ${single.map((r) => `\`${r}\``).join(", ")} can perform both \`${a}\` and \`${b}\`, which this constraint keeps apart`, s.span, "only the history check separates them; consider granting the duties to different roles and making those roles `exclusive`"));
      }
    }
    if (total > listed) {
      const omitted = total - listed;
      rows.push({
        constraint: s.id, kind: "separate", sides: ["…", "…"], singleRoles: [...omittedRoles].sort().slice(0, MAX_COMBINATIONS_PER_ROW), combinations: [],
        verdict: omittedWarnings ? "warning" : "ok",
        note: `${count(omitted)} more pairs of ${count(s.duties.length)} duties not listed${omittedWarnings ? `; ${count(omittedWarnings)} of them reachable by one role` : ""}`,
        omittedPairs: omitted,
      });
      if (omittedWarnings) {
        diagnostics.push(diagnostic("W_SEPARATE_SAME_ROLE", "warning", `${count(omittedWarnings)} more pairs of duties that this constraint keeps apart can each be performed by one role`, s.span, "only the history check separates them; consider granting the duties to different roles and making those roles `exclusive`"));
      }
    }
  }

  const dutiesOfRole = new Map<string, Set<string>>();
  for (const g of policy.grants) for (const r of g.roles) dutiesOfRole.set(r, (dutiesOfRole.get(r) ?? new Set<string>()).add(g.duty));
  for (const x of policy.exclusives) {
    const total = (x.roles.length * (x.roles.length - 1)) / 2;
    let listed = 0;
    for (const [i, j] of pairs(x.roles.length)) {
      if (listed === MAX_PAIRS_PER_CONSTRAINT) break;
      listed++;
      const a = x.roles[i]!, b = x.roles[j]!;
      const da = dutiesOfRole.get(a) ?? new Set<string>();
      const shared = policy.grants.filter((g) => g.roles.includes(b) && da.has(g.duty)).map((g) => g.duty);
      rows.push({
        constraint: x.id, kind: "exclusive", sides: [a, b], singleRoles: [], combinations: [],
        verdict: "ok",
        note: x.atLeast === 2 ? `never held together${shared.length ? `; both may ${[...new Set(shared)].join(", ")}` : ""}` : `held together only with fewer than ${x.atLeast} of the set`,
      });
    }
    if (total > listed) {
      rows.push({
        constraint: x.id, kind: "exclusive", sides: ["…", "…"], singleRoles: [], combinations: [], verdict: "ok",
        note: `${count(total - listed)} more pairs of ${count(x.roles.length)} roles not listed`,
        omittedPairs: total - listed,
      });
    }
  }

  // Admin-channel upstreams must not be reachable through operational duties.
  const admin = policy.duties.filter((d) => d.channel === "admin");
  const operational = policy.duties.filter((d) => d.channel === "operational");
  const adminByUpstream = new Map<string, CheckedDuty>();
  for (const a of admin) if (!adminByUpstream.has(a.upstream)) adminByUpstream.set(a.upstream, a);
  const overlappingAdmin = adminRouteIndex(admin);
  for (const o of operational) {
    const viaUpstream = adminByUpstream.get(o.upstream);
    const viaRoute = overlappingAdmin(o);
    const clash: CheckedDuty | undefined = viaUpstream ?? viaRoute;
    if (!clash) continue;
    const how = viaUpstream ? `forwards to \`${o.upstream}\`, the upstream of admin duty \`${clash.name}\`` : `matches the same paths as admin duty \`${clash.name}\` (${clash.method} ${clash.pattern})`;
    rows.push({ constraint: `channel:${o.name}`, kind: "channel", sides: [o.name, clash.name], singleRoles: [...rolesFor(o.name)].sort(), combinations: [], verdict: "error", note: `operational duty ${how}` });
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
    [...r.combinations.map(([a, b]) => `${a}+${b}`), ...(r.omittedCombinations ? [`… ${count(r.omittedCombinations)} more`] : [])].join(", ") || "-",
    `${r.verdict}: ${r.note}`,
  ]);
  // A loop, not Math.max(...column): spreading a long column overflows the call stack.
  const widths = header.map((h, i) => body.reduce((w, row) => Math.max(w, row[i]!.length), h.length));
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

/** One grant behind a cell of the role × duty matrix. */
export interface MatrixGrant {
  /** The grant's rule id (`grant:changes.duty:10:1`). */
  rule: string;
  /** The grant's `when` condition, when it has one (its span; the text is in the source). */
  when: Span | null;
  /** `until` as written, when the grant has one. */
  until: string | null;
}

/** Who may perform what, at a glance: roles down, duties across, the grants in each cell. */
export interface RoleDutyMatrix {
  roles: string[];
  duties: Array<{ name: string; route: string; upstream: string; channel: "operational" | "admin"; span: Span }>;
  /** `cells[role][duty]`: the grants of that duty to that role, in source order (absent: none). */
  cells: Record<string, Record<string, MatrixGrant[]>>;
  /** Per duty: the `forbid` rules that apply to it (a `forbid *` applies to all). */
  forbids: Record<string, string[]>;
}

/**
 * The role × duty matrix of a checked policy, straight from its grants and forbids: a cell lists
 * each grant of the duty to the role with its condition and end date. It says what the policy
 * may allow; whether a request is allowed also depends on `exclusive`, `forbid` and the ledger.
 * @example roleDutyMatrix(policy).cells.developer.submit_change // [{ rule: "grant:changes.duty:10:1", when: null, until: null }]
 */
export function roleDutyMatrix(policy: CheckedPolicy): RoleDutyMatrix {
  const cells: Record<string, Record<string, MatrixGrant[]>> = {};
  for (const role of policy.roles) cells[role] = {};
  for (const g of policy.grants) {
    for (const role of g.roles) {
      const row = (cells[role] ??= {});
      (row[g.duty] ??= []).push({ rule: g.id, when: g.when?.span ?? null, until: g.untilText });
    }
  }
  const forbids: Record<string, string[]> = {};
  for (const d of policy.duties) forbids[d.name] = policy.forbids.filter((f) => f.duties === null || f.duties.includes(d.name)).map((f) => f.id);
  return {
    roles: [...policy.roles],
    duties: policy.duties.map((d) => ({ name: d.name, route: `${d.method} ${d.pattern}`, upstream: d.upstream, channel: d.channel, span: d.span })),
    cells,
    forbids,
  };
}
