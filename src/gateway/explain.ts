// Explanations: one value that `gateway explain`, the admin `/-/explain` endpoint and test
// failures all print. It carries the compiled tree's decision (with the branch it took), the
// reference interpreter's full list of rules considered, and the duty-ledger facts consulted
// (read-only: explaining never writes the ledger).
import { applyHistory, coercePrincipal, explainDecision, interpretDecision, parseIp, readHistory, type Channel, type CompiledPolicy, type ConditionFact, type Decision, type LedgerFact, type PolicyRequest, denyForSeparation, findSeparationConflict } from "../../dsl/mod.ts";
import type { ProblemCode } from "../error-codes.ts";
import { normalizeRequestPath } from "../http/mod.ts";
import type { DutyLedger } from "../ledger/mod.ts";

export interface ExplainInput {
  principal: Record<string, unknown>;
  /** `POST /changes/42/approve?x=1` */
  request: string;
  channel?: Channel;
  ip?: string;
  headers?: Record<string, string>;
  /** RFC 3339; default now. */
  time?: string;
  /**
   * Duties performed before, instead of the ledger: `[{duty, sub, key?}]` as a policy test's
   * `history` (`key` absent: the request's own key). Explains a separation offline.
   */
  history?: unknown;
}

export interface Explanation {
  channel: Channel;
  request: { method: string; path: string; query: Record<string, string>; ip: string; time: string };
  principal: { sub: string; roles: string[] };
  duty: { name: string; route: string; upstream: string; channel: Channel; params: Record<string, string> } | null;
  decision: Decision;
  /** Every rule the reference interpreter considered, and whether it held. */
  considered: Decision["reasons"];
  /** Both evaluators reached the same decision (they must; a mismatch is a bug worth reporting). */
  evaluatorsAgree: boolean;
  ledger: LedgerFact[];
  /** By rule id: the sub-conditions that kept a grant from applying or made a forbid hold, with their values. */
  conditions: Record<string, ConditionFact[]>;
  /** Routes the request nearly matched (another method, without a trailing slash, the other channel). */
  hints: string[];
  /** Whether separations were judged against a given `history` rather than the ledger. */
  historyGiven: boolean;
}

export type ExplainResult = { ok: true; explanation: Explanation } | { ok: false; code: ProblemCode; message: string };

export async function explainRequest(compiled: CompiledPolicy, input: ExplainInput, ledger?: DutyLedger | null): Promise<ExplainResult> {
  // The input may come from a request body: check its shape before trusting any field.
  if (typeof input !== "object" || input === null) return { ok: false, code: "EXPLAIN_BAD_BODY", message: "expected an object {principal, request, channel?, ip?, headers?, time?}" };
  if (typeof input.request !== "string") return { ok: false, code: "EXPLAIN_BAD_REQUEST", message: "`request` must be a string like `POST /changes/42/approve`" };
  if (typeof input.principal !== "object" || input.principal === null || Array.isArray(input.principal)) return { ok: false, code: "EXPLAIN_BAD_PRINCIPAL", message: "`principal` must be an object of principal attributes" };
  if (input.channel !== undefined && input.channel !== "operational" && input.channel !== "admin") return { ok: false, code: "EXPLAIN_BAD_CHANNEL", message: `unknown channel \`${String(input.channel)}\` (operational or admin)` };
  if (input.headers !== undefined && (typeof input.headers !== "object" || input.headers === null || Object.values(input.headers).some((v) => typeof v !== "string"))) return { ok: false, code: "EXPLAIN_BAD_HEADERS", message: "`headers` must map names to strings" };
  if (input.ip !== undefined && typeof input.ip !== "string") return { ok: false, code: "EXPLAIN_BAD_IP", message: "`ip` must be a string" };
  if (input.time !== undefined && typeof input.time !== "string") return { ok: false, code: "EXPLAIN_BAD_TIME", message: "`time` must be an RFC 3339 string" };
  const m = /^([A-Z]+)\s+(\S+)$/.exec(input.request.trim());
  if (!m) return { ok: false, code: "EXPLAIN_BAD_REQUEST", message: "request must look like `POST /changes/42/approve`" };
  const target = normalizeRequestPath(m[2]!);
  if (!target.ok) return { ok: false, code: target.code, message: target.message };
  const p = coercePrincipal(compiled.policy.schema, input.principal);
  if (!p.ok) return { ok: false, code: p.code, message: p.message };
  const ip = parseIp(input.ip ?? "127.0.0.1");
  if (!ip) return { ok: false, code: "EXPLAIN_BAD_IP", message: `bad ip \`${input.ip}\`` };
  const time = input.time ? Date.parse(input.time) : Date.now();
  if (Number.isNaN(time)) return { ok: false, code: "EXPLAIN_BAD_TIME", message: `bad time \`${input.time}\`` };
  const channel = input.channel ?? "operational";
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;
  const query = Object.fromEntries(new URLSearchParams(target.query));
  const request: PolicyRequest = { method: m[1]!, path: target.path, ip, time, headers, query };
  const history = input.history === undefined ? null : readHistory(input.history, new Set(compiled.policy.duties.map((d) => d.name)));
  if (history && "error" in history) return { ok: false, code: "EXPLAIN_BAD_HISTORY", message: history.error };
  let decision = compiled.decide(channel, p.principal, request);
  const reference = interpretDecision(compiled.policy, channel, p.principal, request);
  let facts: LedgerFact[] = [];
  if (history) {
    decision = applyHistory(decision, p.principal.sub, history.steps, time);
    facts = decision.ledger;
  } else if (decision.allow && decision.separations.length && ledger) {
    facts = await ledger.lookup(decision.separations, p.principal.sub);
    const conflict = findSeparationConflict(decision.separations, p.principal.sub, decision.duty!, facts);
    // The reader is an operator asking about someone: the message names the person.
    decision = conflict ? denyForSeparation(decision, conflict, facts, { reader: "operator", showTime: true }) : { ...decision, ledger: facts };
  }
  const match = compiled.match(channel, request.method, request.path);
  const duty = match ? compiled.policy.duties.find((d) => d.name === match.duty)! : null;
  const detail = explainDecision(compiled.policy, channel, p.principal, request);
  return {
    ok: true,
    explanation: {
      channel,
      request: { method: request.method, path: request.path, query, ip: ip.text, time: new Date(time).toISOString() },
      principal: { sub: p.principal.sub, roles: [...p.principal.roles] },
      duty: duty && match ? { name: duty.name, route: `${duty.method} ${duty.pattern}`, upstream: duty.upstream, channel: duty.channel, params: { ...match.params } } : null,
      decision,
      considered: reference.reasons,
      evaluatorsAgree: reference.allow === (decision.code === "DENY_SOD_HISTORY" ? true : decision.allow) && (reference.decidedBy === decision.decidedBy || decision.code === "DENY_SOD_HISTORY"),
      ledger: facts,
      conditions: detail.conditions,
      hints: detail.hints,
      historyGiven: history !== null,
    },
  };
}

/** The deciding rule's id, and its location when the id (an `@id`) does not already say it. */
function decidedByAt(d: Decision): string {
  if (d.decidedBy === null) return "default deny";
  const at = d.reasons.find((r) => r.rule === d.decidedBy && r.held)?.at ?? d.separations.find((s) => s.constraint === d.decidedBy)?.at;
  return at && !d.decidedBy.endsWith(at) ? `${d.decidedBy} (${at})` : d.decidedBy;
}

/** The text form of an explanation. */
export function renderExplanation(e: Explanation): string[] {
  const d = e.decision;
  const lines = [
    `${d.allow ? "ALLOW" : "DENY"} (${d.code}) ${e.request.method} ${e.request.path} on the ${e.channel} channel`,
    `  principal  ${e.principal.sub} [${e.principal.roles.join(", ")}]`,
    `  duty       ${e.duty ? `${e.duty.name} (${e.duty.route} -> ${e.duty.upstream}${Object.keys(e.duty.params).length ? `, ${Object.entries(e.duty.params).map(([k, v]) => `${k}=${v}`).join(", ")}` : ""})` : "(none matched)"}`,
    `  decided by ${decidedByAt(d)}`,
    `  message    ${d.message}`,
    "  rules considered:",
    ...e.considered.flatMap((r) => [
      `    ${r.held ? "holds    " : "not held "} ${r.kind.padEnd(9)} ${r.at || "-"}  ${r.why}`,
      ...(e.conditions[r.rule] ?? []).map((f) => `                ${f.holds ? "holds: " : "fails: "} ${f.condition}${f.values.length ? `   (${f.values.map((v) => `${v.expr} = ${v.value}`).join(", ")})` : ""}  ${f.at}`),
    ]),
  ];
  if (e.hints.length) lines.push("  near misses:", ...e.hints.map((h) => `    ${h}`));
  if (d.branch.length) lines.push("  tree branch:", ...d.branch.map((b) => `    → ${b}`));
  if (d.separations.length) lines.push("  history separation:", ...d.separations.map((s) => `    ${s.constraint} by ${s.param}=${s.key} over ${s.duties.join(", ")}`));
  if (e.historyGiven && !e.ledger.length && d.separations.length) lines.push("  history: no prior duty of this person on this key");
  if (e.ledger.length) lines.push(e.historyGiven ? "  history given:" : "  ledger facts:", ...e.ledger.map((f) => `    ${f.sub} performed ${f.duty} on ${f.key}${e.historyGiven ? "" : ` at ${new Date(f.at).toISOString()}`}`));
  if (!e.evaluatorsAgree) lines.push("  WARNING: the compiled tree and the reference interpreter disagree — please report this");
  return lines;
}
