// Audit before forward, outcome after: the decision record is written (to the OS; fsync per
// setting) before anything reaches the upstream, and the answer follows in a linked outcome
// record once the request is answered (docs/audit.md).
import { problemResponse } from "../../http/mod.ts";
import { settleOutcomeOf } from "../../ledger/mod.ts";
import { decisionRecord, outcomeRecord } from "../audit-records.ts";
import { INTERNAL_UPSTREAM } from "../policy-manager.ts";
import { answer, type RequestState, type StageDeps } from "./env.ts";
import type { Stage } from "./stage.ts";

export function recordDecision(deps: StageDeps): Stage {
  const { audit, channel, metrics, log, config } = deps;
  return { name: "recordDecision", enter, leave };

  async function enter(s: RequestState): Promise<Response | undefined> {
    const decision = s.decision;
    const duty = s.duty;
    const requestId = s.requestId;
    if (audit) {
      const auditStart = performance.now();
      try {
        const record = decisionRecord({
          requestId, channel, request: s.request, path: s.target.path, ip: s.ip, caller: s.caller, decision,
          policyRequest: s.policyRequest, active: s.active, ledgerFacts: s.ledgerFacts, upstream: duty?.upstream ?? null, headers: deps.recorded,
        });
        s.decisionSeq = (await audit.append(record)).seq;
        metrics.auditRecords.inc();
        metrics.auditWriteLatency.observe((performance.now() - auditStart) / 1000);
      } catch (e) {
        metrics.auditFailures.inc();
        log.error("audit record could not be written", { request_id: requestId, error: (e as Error).message, on_failure: config.audit.onFailure });
        if (config.audit.onFailure === "deny") {
          return answer(s, problemResponse({ status: 503, code: "AUDIT_UNAVAILABLE", detail: "the audit log cannot be written; requests are refused until it can", requestId }), { duty: decision.duty ?? "", decision: "error" });
        }
      }
    }
    metrics.decisions.inc({ channel, duty: decision.duty ?? "", decision: decision.allow ? "allow" : "deny", code: decision.code });
    return undefined;
  }

  // Once the request is answered: the decision's outcome, when its record was written. A failure
  // after the decision record is recorded here, as its outcome: the receive stage then has
  // nothing more to record.
  function leave(s: RequestState): Promise<void> | undefined {
    const decisionSeq = s.decisionSeq;
    if (audit === null || decisionSeq === null) return undefined;
    const requestId = s.requestId;
    if (s.failed) {
      return audit.append(outcomeRecord({ requestId, decisionSeq, status: 500, code: "INTERNAL_ERROR", ledger: ledgerOutcome(s) }))
        .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
    }
    if (!s.decision.allow) return undefined;
    const outcome = outcomeRecord({ requestId, decisionSeq, status: s.response.status, latencyMs: performance.now() - s.started, ledger: ledgerOutcome(s) });
    if (s.duty?.upstream === INTERNAL_UPSTREAM) {
      return audit.append(outcome).then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
    }
    // The outcome of a forwarded request need not hold up the response: it joins the next batch
    // of decision records rather than costing a write of its own.
    audit.append(outcome, { deferred: true })
      .then(() => metrics.auditRecords.inc())
      .catch((e: Error) => {
        metrics.auditFailures.inc();
        log.error("audit outcome record could not be written", { request_id: requestId, error: e.message });
      });
    return undefined;
  }
}

/** What the reserve stage makes of the reservation, from the same answer it settles by. */
function ledgerOutcome(s: RequestState): string | undefined {
  return s.reservation ? settleOutcomeOf(s.upstreamAnswer) : undefined;
}
