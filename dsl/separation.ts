// History separation (`separate submit_change, approve_change by change`): the one rule for what
// conflicts with a person's earlier steps, and the one sentence that says so. The duty ledger
// stores (SQLite, PostgreSQL, memory), the gateway's pipeline, policy tests, `gateway explain` and
// `gateway check --replay` all judge and word a conflict through here, so they cannot disagree.
import type { Decision, LedgerFact, SeparationCheck } from "./types.ts";

/** A broken history separation: the check of the decision, and the earlier step it conflicts with. */
export interface SeparationConflict {
  check: SeparationCheck;
  fact: LedgerFact;
}

/**
 * The history rule of `separate`: a principal may not perform a duty of a separation on a key
 * when it already performed *another* duty of that separation on the same key. Facts of other
 * people, other keys, other constraints, the same duty, or a duty the separation no longer names
 * (the policy changed under a ledger that kept its facts) never conflict. Returns the first
 * conflict in the order of `checks`, then of `facts`.
 *
 * @example
 * findSeparationConflict(decision.separations, "alice", "approve_change", facts)
 * // → { check: { constraint: "separate:changes.duty:20:1", param: "change", key: "42", … },
 * //     fact: { duty: "submit_change", sub: "alice", key: "42", … } }
 */
export function findSeparationConflict(checks: readonly SeparationCheck[], sub: string, duty: string, facts: readonly LedgerFact[]): SeparationConflict | null {
  for (const check of checks) {
    for (const fact of facts) {
      if (fact.constraint === check.constraint && fact.key === check.key && fact.sub === sub && fact.duty !== duty && check.duties.includes(fact.duty)) return { check, fact };
    }
  }
  return null;
}

/** How a deny message for a broken separation is worded. */
export interface SeparationWording {
  /**
   * Who reads it: `caller`, the person denied (the gateway's 403: "you performed …"), or
   * `operator`, someone else (`gateway explain`, a replay, a policy test: "alice performed …").
   */
  reader: "caller" | "operator";
  /** Say only that another person is needed: neither the earlier duty nor its time. */
  hideDetails?: boolean;
  /** Whether the earlier step's time is real (a ledger's); a given history's is assumed, and left out. */
  showTime?: boolean;
}

/** Longest key shown; keys come from the URL and can be long. */
const MAX_KEY_CHARS = 64;

/**
 * The one sentence of a history-separation denial: the earlier step (who, which duty, on which
 * key, when) and the duty that now needs another person.
 *
 * @example
 * const conflict = { check: { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] },
 *   fact: { constraint: "separate:changes.duty:20:1", key: "42", duty: "submit_change", sub: "alice", at: Date.UTC(2026, 10, 20, 10, 3) } };
 * describeSeparationConflict(conflict, "approve_change", { reader: "caller", showTime: true })
 * // → "you performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person"
 * describeSeparationConflict(conflict, "approve_change", { reader: "operator" })
 * // → "alice performed submit_change on change `42`; approve_change needs another person"
 * describeSeparationConflict(conflict, "approve_change", { reader: "caller", hideDetails: true })
 * // → "approve_change on change `42` needs another person than an earlier step"
 */
export function describeSeparationConflict(conflict: SeparationConflict, duty: string, wording: SeparationWording): string {
  const { check, fact } = conflict;
  const on = `on ${check.param} \`${showKey(fact.key)}\``;
  if (wording.hideDetails) return `${duty} ${on} needs another person than an earlier step`;
  const who = wording.reader === "caller" ? "you" : showKey(fact.sub);
  const when = wording.showTime ? ` at ${formatMinute(fact.at)}` : "";
  return `${who} performed ${fact.duty} ${on}${when}; ${duty} needs another person`;
}

/** `2026-11-20T10:03Z`: minutes are precise enough for a person, seconds add noise. */
function formatMinute(at: number): string {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return "an unknown time";
  return `${date.toISOString().slice(0, 16)}Z`;
}

/** `key` (user input) as safe to print: control characters and backticks masked, long ones cut. */
export function showKey(key: string): string {
  // Control characters and backticks would break the message (and log lines that quote it).
  const clean = key.replace(/[\u0000-\u001f\u007f`]/g, "?");
  return clean.length > MAX_KEY_CHARS ? `${clean.slice(0, MAX_KEY_CHARS)}…` : clean;
}

/**
 * Turns an allowed decision into a history-separation denial (`DENY_SOD_HISTORY`), decided by the
 * broken constraint, with the one message ({@link describeSeparationConflict}) as its reason.
 */
export function denyForSeparation(decision: Decision, conflict: SeparationConflict, facts: LedgerFact[], wording: SeparationWording): Decision {
  const message = describeSeparationConflict(conflict, decision.duty ?? "", wording);
  const { constraint } = conflict.check;
  return {
    ...decision,
    allow: false,
    code: "DENY_SOD_HISTORY",
    decidedBy: constraint,
    reasons: [...decision.reasons, { rule: constraint, kind: "separate", at: conflict.check.at ?? "", held: true, why: message }],
    ledger: facts,
    message,
  };
}

/** A duty someone performed before: a step of a test's `history` (or of `gateway explain --history`). */
export interface HistoryStep {
  duty: string;
  sub: string;
  /** The ledger key, canonical (`canonicalLedgerKey`, or composite); absent: the request's own key. */
  key?: string;
}

/**
 * Judges an allowed decision's history separations against given prior steps, as the duty ledger
 * would: the steps become facts of each separation (on their own key, or the request's), and the
 * one rule decides. Steps are taken to have happened a minute before `time`; since that time is
 * assumed, the message leaves it out. The reader is an operator (a test's author, `explain`).
 */
export function applyHistory(decision: Decision, sub: string, steps: readonly HistoryStep[], time: number): Decision {
  if (!decision.allow || decision.separations.length === 0 || steps.length === 0) return decision;
  const facts: LedgerFact[] = steps.flatMap((h) =>
    decision.separations.map((c) => ({ constraint: c.constraint, key: h.key ?? c.key, duty: h.duty, sub: h.sub, at: time - 60_000 })));
  const conflict = findSeparationConflict(decision.separations, sub, decision.duty!, facts);
  return conflict ? denyForSeparation(decision, conflict, facts, { reader: "operator" }) : decision;
}
