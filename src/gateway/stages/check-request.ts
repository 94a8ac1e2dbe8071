// The request's own checks, before anyone is asked who calls: Host, request-target, `_method`,
// declared body length (request-context.ts), then whether the bundle in force has expired.
import { readRequestContext } from "../request-context.ts";
import { bundleExpired, bundleExpiredMessage } from "../policy-manager.ts";
import { refuse, type StageDeps } from "./env.ts";
import type { Stage } from "./stage.ts";

export function checkRequest(deps: StageDeps): Stage {
  const { maxBodyBytes } = deps.config;
  return {
    name: "checkRequest",
    enter(s) {
      const context = readRequestContext(s.request, maxBodyBytes);
      if ("code" in context) return refuse(s, deps, { status: context.status, code: context.code, detail: context.message, path: context.path, verdict: "deny" });
      s.target = context;
      return undefined;
    },
  };
}

/** A bundle that expired while active decides nothing more (fail closed) until a newer one loads. */
export function policyInForce(deps: StageDeps): Stage {
  return {
    name: "policyInForce",
    enter(s) {
      const active = s.active;
      if (!bundleExpired(active, s.now)) return undefined;
      return refuse(s, deps, { status: 503, code: "BUNDLE_EXPIRED", detail: bundleExpiredMessage(active), path: s.target.path, verdict: "error" });
    },
  };
}
