// Outcomes as readers see them, from logs of either format: format 1 wrote one `outcome` record
// per forwarded request; format 2 writes one `outcomes` record per write batch, an entry per
// request. Readers that think in requests (replay, tests, tools) go through these two functions.
import { OUTCOMES_TYPE, OUTCOME_TYPE } from "./record.ts";

type AuditRecord = Readonly<Record<string, unknown>>;

/**
 * The outcomes a record holds: the record itself for a format-1 `outcome` record, each entry of
 * an `outcomes` record (`{decision_seq, status, latency_ms, request_id, ledger?, code?}`), none
 * for any other record.
 *
 * @example for (const o of outcomesOf(record)) statusByRequest.set(o.request_id, o.status);
 */
export function outcomesOf(record: AuditRecord): AuditRecord[] {
  if (record.type === OUTCOME_TYPE) return [record];
  if (record.type !== OUTCOMES_TYPE || !Array.isArray(record.outcomes)) return [];
  return (record.outcomes as unknown[]).filter((e): e is AuditRecord => typeof e === "object" && e !== null && !Array.isArray(e));
}

/**
 * A record in format-1 shape: an `outcomes` record becomes one `outcome` record per entry (the
 * entry's members with the holding record's `seq`, `time` and `worker`); any other record stays
 * as it is. For readers that look for a request's `outcome` by `request_id` in either format.
 *
 * @example const records = lines.map((l) => JSON.parse(l)).flatMap(expandOutcomes);
 */
export function expandOutcomes(record: AuditRecord): AuditRecord[] {
  if (record.type !== OUTCOMES_TYPE) return [record];
  const chain = record.worker === undefined ? { seq: record.seq, time: record.time } : { seq: record.seq, time: record.time, worker: record.worker };
  return outcomesOf(record).map((entry) => ({ ...entry, ...chain, type: OUTCOME_TYPE }));
}
