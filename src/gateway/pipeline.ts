// The request pipeline: the order of its stages, and nothing else. Each stage is Hono middleware
// of one app per channel, which both listener backends serve (`app.fetch(request, connection)`):
//
//   receive → checkRequest → [probes] → policyInForce → authenticate → decide → reserve
//     → recordDecision → dispatch → [admin functions]
//
// Authentication yields a Principal and knows nothing of policy; the policy knows nothing of
// tokens. The decision record is written before anything reaches the upstream. A stage that
// holds something releases it itself once the request is answered (the reserve stage its
// reservation, the decision record's stage its outcome record), an exception included: it is
// answered 500 (nothing forwarded) and recorded once, by the decision record's stage when that
// record was written, else by the receive stage.
import { Hono } from "hono";
import type { Channel } from "../../dsl/mod.ts";
import type { ListenerConfig } from "../config/mod.ts";
import { normalizeRequestPath, problemResponse, requestTargetOf } from "../http/mod.ts";
import type { ConnectionInfo, ListenerRefusal, RefusalHandler } from "../tls/mod.ts";
import { adminFunctionRoutes, probeRoutes, unknownAdminFunction, type AdminDeps } from "./admin.ts";
import { authenticate } from "./stages/authenticate.ts";
import { checkRequest, policyInForce } from "./stages/check-request.ts";
import { decide, reserve } from "./stages/decide.ts";
import { dispatch } from "./stages/dispatch.ts";
import { appendRefusal, internalErrorResponse, type GatewayEnv, type PipelineDeps, type StageDeps } from "./stages/env.ts";
import { inOrder } from "./stages/in-order.ts";
import { receive } from "./stages/receive.ts";
import { recordDecision } from "./stages/record-decision.ts";

export type { Forwarder, GatewayEnv, PipelineDeps } from "./stages/env.ts";

/** The middleware of every channel's app, in order (bench/proxy/hono-layer.ts builds an app of this shape). */
export const PIPELINE_STAGES = ["receive", "checkRequest", "policyInForce", "authenticate", "decide", "reserve", "recordDecision", "dispatch"] as const;

/** One channel's request handling: the listener's fetch handler, and its refusal handler. */
export interface Pipeline {
  (request: Request, info: ConnectionInfo): Response | Promise<Response>;
  /** Records and answers a request the listener refused before it became a `Request`. */
  refuse: RefusalHandler;
  /** The channel's Hono app (`app.request(...)` in tests needs a `ConnectionInfo` as its env). */
  app: Hono<GatewayEnv>;
}

/** What every stage of one channel is given. */
function stageDeps(deps: PipelineDeps, channel: Channel): StageDeps {
  return {
    ...deps, channel,
    // Never in an audit record, whatever the allow-list says: the gateway's own identity token.
    recorded: { allowlist: deps.config.audit.headerAllowlist, neverLogged: [deps.config.identity.header] },
  };
}

/**
 * The gateway's app for one channel. With `admin`, it answers the admin functions for duties on
 * the built-in upstream `gateway`, and the admin channel's app answers the probes.
 */
export function createGatewayApp(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Hono<GatewayEnv> {
  const stage = stageDeps(deps, channel);
  // Routes (probes, admin functions) are matched on the path the policy judges, not on the path
  // as sent; an app without them has nothing to match and skips computing it.
  const app = new Hono<GatewayEnv>({ getPath: admin ? routePath : () => "/" });
  // An exception in a route after the stages (an admin function); the stages answer their own.
  app.onError((error, c) => {
    const requestId = c.get("state")?.requestId ?? crypto.randomUUID();
    deps.log.error("request failed inside the gateway", { request_id: requestId, error: error.message });
    return internalErrorResponse(requestId);
  });
  // Reached only for an allowed duty on `gateway` whose path names no admin function.
  app.notFound((c) => unknownAdminFunction(c.get("state")?.target?.path ?? c.req.path, c.get("state")?.requestId ?? crypto.randomUUID()));

  // PIPELINE_STAGES names these, in this order. The stages run as one middleware (inOrder): the
  // operational app then has one handler per request, Hono's fast path. The admin app has the
  // probes between the request's checks and authentication.
  const beforeProbes = [receive(stage), checkRequest(stage)];
  const afterProbes = [policyInForce(stage), authenticate(stage, listener), decide(stage), reserve(stage), recordDecision(stage), dispatch(stage)];
  if (channel === "admin" && admin) {
    app.use(inOrder(...beforeProbes));
    app.route("/", probeRoutes(admin));
    app.use(inOrder(...afterProbes));
  } else {
    app.use(inOrder(...beforeProbes, ...afterProbes));
  }
  // The decide stage keeps `gateway` duties to the admin channel, whatever the policy says.
  if (admin) app.route("/", adminFunctionRoutes(admin));
  return app;
}

/** Builds the fetch handler (and refusal handler) of one channel's listener. */
export function createPipeline(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Pipeline {
  const app = createGatewayApp(deps, channel, listener, admin);
  const stage = stageDeps(deps, channel);
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
export function routePath(request: Request): string {
  const target = normalizeRequestPath(requestTargetOf(request));
  return target.ok ? target.path : "/";
}
