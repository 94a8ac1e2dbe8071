// The first stage: the request's id and time, the policy in force (none: 503), and, once the
// request is answered, its metric. An exception no later stage recorded is answered (500) and
// recorded here.
import type { MiddlewareHandler } from "hono";
import { problemResponse, requestIdFor } from "../../http/mod.ts";
import { failureRecord } from "../audit-records.ts";
import { answer, nextFailed, type GatewayEnv, type StageDeps } from "./env.ts";

export function receive(deps: StageDeps): MiddlewareHandler<GatewayEnv> {
  const { channel, metrics } = deps;
  const trust = { trustIncoming: deps.config.trustRequestId };
  return async (c, next) => {
    const started = performance.now();
    const requestId = requestIdFor(c.req.raw, trust);
    c.set("requestId", requestId);
    c.set("started", started);
    c.set("now", Date.now());
    const active = deps.policy.active;
    if (active === null) {
      c.res = answer(c, problemResponse({ status: 503, code: "POLICY_UNAVAILABLE", detail: "no valid policy is active", requestId }), { duty: "", decision: "error" });
    } else {
      c.set("active", active);
      // An exception before the decision record was written: a deny record with code
      // INTERNAL_ERROR. Later ones are recorded by the decision record's stage.
      if (await nextFailed(c, next, deps.log)) {
        c.set("verdict", { duty: "", decision: "error" });
        if (deps.audit) {
          await deps.audit.append(failureRecord({ requestId, channel, method: c.req.method, clientIp: c.env.remoteAddress }))
            .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
        }
      }
    }
    const verdict = c.get("verdict") ?? { duty: "", decision: "error" };
    metrics.requests.inc({ channel, duty: verdict.duty, decision: verdict.decision, status: String(c.res.status) });
    metrics.addedLatency.observe((performance.now() - started) / 1000);
  };
}
