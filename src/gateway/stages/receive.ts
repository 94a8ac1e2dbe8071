// The first stage: the request's id and time, the policy in force (none: 503), and, once the
// request is answered, its metric. An exception no later stage recorded is answered (500) and
// recorded here.
import type { MiddlewareHandler } from "hono";
import { problemResponse, requestIdFor } from "../../http/mod.ts";
import { failureRecord } from "../audit-records.ts";
import { answer, RequestState, tookException, type GatewayEnv, type StageDeps } from "./env.ts";

export function receive(deps: StageDeps): MiddlewareHandler<GatewayEnv> {
  const { channel, metrics } = deps;
  const trust = { trustIncoming: deps.config.trustRequestId };
  return async (c, next) => {
    const started = performance.now();
    const requestId = requestIdFor(c.req.raw, trust);
    const state = new RequestState(requestId, started, Date.now());
    c.set("state", state);
    const active = deps.policy.active;
    if (active === null) {
      c.res = answer(c, problemResponse({ status: 503, code: "POLICY_UNAVAILABLE", detail: "no valid policy is active", requestId }), { duty: "", decision: "error" });
    } else {
      state.active = active;
      // An exception before the decision record was written: a deny record with code
      // INTERNAL_ERROR. Later ones are recorded by the decision record's stage.
      let failed: boolean;
      try {
        await next();
        failed = tookException(c, deps.log);
      } catch (error) {
        failed = tookException(c, deps.log, error);
      }
      if (failed) {
        state.verdict = { duty: "", decision: "error" };
        if (deps.audit) {
          await deps.audit.append(failureRecord({ requestId, channel, method: c.req.method, clientIp: c.env.remoteAddress }))
            .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
        }
      }
    }
    const { verdict } = state;
    metrics.requests.inc({ channel, duty: verdict.duty, decision: verdict.decision, status: String(c.res.status) });
    metrics.addedLatency.observe((performance.now() - started) / 1000);
  };
}
