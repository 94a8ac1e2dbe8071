// The request pipeline: the order of its stages, and nothing else. Each stage is Hono middleware
// of one app per channel, which both listener backends serve (`app.fetch(request, connection)`):
//
//   receive → checkRequest → [probes] → policyInForce → authenticate → decide → reserve
//     → recordDecision → dispatch → [admin functions]
//
// Authentication yields a Principal and knows nothing of policy; the policy knows nothing of
// tokens. The decision record is written before anything reaches the upstream. A stage that
// holds something releases it itself once the request is answered (the reserve stage its
// reservation, the decision record's stage its outcome record), an exception included: the app's
// error handler answers 500 and nothing is forwarded.
import { Hono } from "hono";
import type { Channel } from "../../dsl/mod.ts";
import type { ListenerConfig } from "../config/types.ts";
import { normalizeRequestPath, problemResponse, requestTargetOf } from "../http/mod.ts";
import type { ConnectionInfo, ListenerRefusal, RefusalHandler } from "../tls/types.ts";
import { adminFunctionRoutes, probeRoutes, unknownAdminFunction, type AdminDeps } from "./admin.ts";
import { authenticate } from "./stages/authenticate.ts";
import { checkRequest, policyInForce } from "./stages/check-request.ts";
import { decide, reserve } from "./stages/decide.ts";
import { dispatch } from "./stages/dispatch.ts";
import { appendRefusal, type GatewayEnv, type PipelineDeps, type StageDeps } from "./stages/env.ts";
import { receive } from "./stages/receive.ts";
import { recordDecision } from "./stages/record-decision.ts";

export type { Forwarder, GatewayEnv, PipelineDeps } from "./stages/env.ts";

/** One channel's request handling: the listener's fetch handler, and its refusal handler. */
export interface Pipeline {
  (request: Request, info: ConnectionInfo): Response | Promise<Response>;
  /** Records and answers a request the listener refused before it became a `Request`. */
  refuse: RefusalHandler;
  /** The channel's Hono app (`app.request(...)` in tests needs a `ConnectionInfo` as its env). */
  app: Hono<GatewayEnv>;
}

/**
 * The gateway's app for one channel. With `admin`, it answers the admin functions for duties on
 * the built-in upstream `gateway`, and the admin channel's app answers the probes.
 */
export function createGatewayApp(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Hono<GatewayEnv> {
  const stage: StageDeps = {
    ...deps, channel,
    // Never in an audit record, whatever the allow-list says: the gateway's own identity token.
    recorded: { allowlist: deps.config.audit.headerAllowlist, neverLogged: [deps.config.identity.header] },
  };
  // Routes are matched on the path the policy judges, not on the path as sent.
  const app = new Hono<GatewayEnv>({ getPath: routePath });
  app.onError((error, c) => {
    const requestId = c.get("requestId") ?? crypto.randomUUID();
    deps.log.error("request failed inside the gateway", { request_id: requestId, error: error.message });
    return problemResponse({ status: 500, code: "INTERNAL_ERROR", detail: "the gateway failed to handle the request; nothing was forwarded", requestId });
  });
  // Reached only for an allowed duty on `gateway` whose path names no admin function.
  app.notFound((c) => unknownAdminFunction(c.get("target")?.path ?? c.req.path, c.get("requestId") ?? crypto.randomUUID()));

  app.use(receive(stage));
  app.use(checkRequest(stage));
  if (channel === "admin" && admin) app.route("/", probeRoutes(admin));
  app.use(policyInForce(stage));
  app.use(authenticate(stage, listener));
  app.use(decide(stage));
  app.use(reserve(stage));
  app.use(recordDecision(stage));
  app.use(dispatch(stage));
  // The decide stage keeps `gateway` duties to the admin channel, whatever the policy says.
  if (admin) app.route("/", adminFunctionRoutes(admin));
  return app;
}

/** Builds the fetch handler (and refusal handler) of one channel's listener. */
export function createPipeline(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Pipeline {
  const app = createGatewayApp(deps, channel, listener, admin);
  const stage = { ...deps, channel, recorded: { allowlist: deps.config.audit.headerAllowlist, neverLogged: [deps.config.identity.header] } };
  // The same deny record and problem as the pipeline's own refusals of a malformed request, so
  // every answer the gateway gives has its record, whichever layer refused.
  const refuse = async (refusal: ListenerRefusal, info: ConnectionInfo): Promise<Response> => {
    const requestId = crypto.randomUUID();
    const active = deps.policy.active;
    if (active) await appendRefusal(stage, { requestId, method: refusal.method, path: null, code: refusal.code, detail: refusal.detail, headers: refusal.headers, clientIp: info.remoteAddress, active });
    deps.metrics.requests.inc({ channel, duty: "", decision: "deny", status: String(refusal.status) });
    return problemResponse({ status: refusal.status, code: refusal.code, detail: refusal.detail, requestId });
  };
  return Object.assign((request: Request, info: ConnectionInfo) => app.fetch(request, info), { refuse, app });
}

/** The normalised path (the checkRequest stage refuses a request whose target does not normalise). */
function routePath(request: Request): string {
  const target = normalizeRequestPath(requestTargetOf(request));
  return target.ok ? target.path : "/";
}
