// Deny messages for a broken history separation. The fact is data (audit, explain); this is the
// sentence a person reads in a problem body.
import type { LedgerFact } from "../../dsl/mod.ts";

/** Options of {@link describeConflict}. */
export interface DescribeConflictOptions {
  /** The route param the constraint separates by (`SeparationCheck.param`), e.g. `change`. */
  param: string;
  /** Say only that another person is needed: no earlier duty, no time. */
  hideDetails: boolean;
}

/** Longest key shown; keys come from the URL and can be long. */
const MAX_KEY_CHARS = 64;

/**
 * Explains why `duty` was denied by the ledger fact `conflict` (the caller's own earlier step).
 *
 * @example
 * describeConflict({ constraint: "separate:changes.duty:20:1", key: "42", duty: "submit_change", sub: "alice", at: Date.UTC(2026, 10, 20, 10, 3) },
 *   "approve_change", { param: "change", hideDetails: false })
 * // → "you performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person"
 * // hidden: "approve_change on change `42` needs another person than an earlier step"
 */
export function describeConflict(conflict: LedgerFact, duty: string, options: DescribeConflictOptions): string {
  const on = `on ${options.param} \`${showKey(conflict.key)}\``;
  if (options.hideDetails) return `${duty} ${on} needs another person than an earlier step`;
  return `you performed ${conflict.duty} ${on} at ${formatMinute(conflict.at)}; ${duty} needs another person`;
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
