// Audit before forward, outcome after: the decision record is written (to the OS; fsync per
// setting) before anything reaches the upstream, and the answer follows in a linked outcome
// record once the request is answered (docs/audit.md).
import type { MiddlewareHandler } from "hono";
import { problemResponse } from "../../http/mod.ts";
import { settleOutcomeOf } from "../../ledger/mod.ts";
import { decisionRecord, outcomeRecord } from "../audit-records.ts";
import { INTERNAL_UPSTREAM } from "../policy-manager.ts";
import { answer, tookException, type GatewayContext, type GatewayEnv, type StageDeps } from "./env.ts";

export function recordDecision(deps: StageDeps): MiddlewareHandler<GatewayEnv> {
  const { audit, channel, metrics, log, config } = deps;
  return async (c, next) => {
    const s = c.get("state");
    const decision = s.decision;
    const duty = s.duty;
    const requestId = s.requestId;
    let decisionSeq: number | null = null;
    if (audit) {
      const auditStart = performance.now();
      try {
        const record = decisionRecord({
          requestId, channel, request: c.req.raw, path: s.target.path, ip: s.ip, caller: s.caller, decision,
          policyRequest: s.policyRequest, active: s.active, ledgerFacts: s.ledgerFacts, upstream: duty?.upstream ?? null, headers: deps.recorded,
        });
        decisionSeq = (await audit.append(record)).seq;
        metrics.auditRecords.inc();
        metrics.auditWriteLatency.observe((performance.now() - auditStart) / 1000);
      } catch (e) {
        metrics.auditFailures.inc();
        log.error("audit record could not be written", { request_id: requestId, error: (e as Error).message, on_failure: config.audit.onFailure });
        if (config.audit.onFailure === "deny") {
          return answer(c, problemResponse({ status: 503, code: "AUDIT_UNAVAILABLE", detail: "the audit log cannot be written; requests are refused until it can", requestId }), { duty: decision.duty ?? "", decision: "error" });
        }
      }
    }
    metrics.decisions.inc({ channel, duty: decision.duty ?? "", decision: decision.allow ? "allow" : "deny", code: decision.code });
    if (audit === null || decisionSeq === null) return next();
    // An exception after the decision record is answered and recorded here, as the decision's
    // outcome: the receive stage then has nothing more to record.
    let failed: boolean;
    try {
      await next();
      failed = tookException(c, log);
    } catch (error) {
      failed = tookException(c, log, error);
    }
    if (failed) {
      s.verdict = { duty: "", decision: "error" };
      await audit.append(outcomeRecord({ requestId, decisionSeq, status: 500, code: "INTERNAL_ERROR", ledger: ledgerOutcome(c) }))
        .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
      return;
    }
    if (!decision.allow) return;
    const outcome = outcomeRecord({ requestId, decisionSeq, status: c.res.status, latencyMs: performance.now() - s.started, ledger: ledgerOutcome(c) });
    if (duty?.upstream === INTERNAL_UPSTREAM) {
      await audit.append(outcome).then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
      return;
    }
    // The outcome of a forwarded request need not hold up the response: it joins the next batch
    // of decision records rather than costing a write of its own.
    audit.append(outcome, { deferred: true })
      .then(() => metrics.auditRecords.inc())
      .catch((e: Error) => {
        metrics.auditFailures.inc();
        log.error("audit outcome record could not be written", { request_id: requestId, error: e.message });
      });
  };
}

/** What the reserve stage makes of the reservation, from the same answer it settles by. */
function ledgerOutcome(c: GatewayContext): string | undefined {
  const s = c.get("state");
  return s.reservation ? settleOutcomeOf(s.upstreamAnswer ?? null) : undefined;
}
