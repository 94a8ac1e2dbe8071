// The first stage: the request's id and time, the policy in force (none: 503), and, once the
// request is answered, its metric. A failure no later stage recorded (one before the decision
// record) is recorded here.
import { problemResponse, requestIdFor } from "../../http/mod.ts";
import { failureRecord } from "../audit-records.ts";
import { answer, type StageDeps } from "./env.ts";
import type { Stage } from "./stage.ts";

export function receive(deps: StageDeps): Stage {
  const { channel, metrics, audit } = deps;
  const trust = { trustIncoming: deps.config.trustRequestId };
  return {
    name: "receive",
    enter(s) {
      s.started = performance.now();
      s.requestId = requestIdFor(s.request, trust);
      s.now = Date.now();
      const active = deps.policy.active;
      if (active === null) {
        // Answered here, so no leave: the metric is counted now.
        const response = answer(s, problemResponse({ status: 503, code: "POLICY_UNAVAILABLE", detail: "no valid policy is active", requestId: s.requestId }), { duty: "", decision: "error" });
        countRequest(s.started, s.verdict, response.status);
        return response;
      }
      s.active = active;
      return undefined;
    },
    leave(s) {
      // A failure after the decision record was written is that record's outcome (recordDecision).
      if (s.failed && s.decisionSeq === null && audit) {
        return audit.append(failureRecord({ requestId: s.requestId, channel, method: s.request.method, clientIp: s.connection.remoteAddress }))
          .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc())
          .then(() => countRequest(s.started, s.verdict, s.response.status));
      }
      countRequest(s.started, s.verdict, s.response.status);
    },
  };

  function countRequest(started: number, verdict: { duty: string; decision: string }, status: number): void {
    metrics.requests.inc({ channel, duty: verdict.duty, decision: verdict.decision, status: String(status) });
    metrics.addedLatency.observe((performance.now() - started) / 1000);
  }
}
