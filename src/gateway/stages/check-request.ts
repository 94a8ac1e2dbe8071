// The request's own checks, before anyone is asked who calls: Host, request-target, `_method`,
// declared body length (request-context.ts), then whether the bundle in force has expired.
import type { MiddlewareHandler } from "hono";
import { readRequestContext } from "../request-context.ts";
import { bundleExpired, bundleExpiredMessage } from "../policy-manager.ts";
import { refuse, type GatewayEnv, type StageDeps } from "./env.ts";

export function checkRequest(deps: StageDeps): MiddlewareHandler<GatewayEnv> {
  const { maxBodyBytes } = deps.config;
  return (c, next) => {
    const s = c.get("state");
    const context = readRequestContext(c.req.raw, maxBodyBytes);
    if ("code" in context) return refuse(c, deps, { status: context.status, code: context.code, detail: context.message, path: context.path, verdict: "deny" });
    s.target = context;
    return next();
  };
}

/** A bundle that expired while active decides nothing more (fail closed) until a newer one loads. */
export function policyInForce(deps: StageDeps): MiddlewareHandler<GatewayEnv> {
  return (c, next) => {
    const s = c.get("state");
    const active = s.active;
    if (!bundleExpired(active, s.now)) return next();
    return refuse(c, deps, { status: 503, code: "BUNDLE_EXPIRED", detail: bundleExpiredMessage(active), path: s.target.path, verdict: "error" });
  };
}
