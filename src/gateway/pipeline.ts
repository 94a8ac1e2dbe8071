// The request pipeline: the order of its stages, and nothing else. Each stage is a named pair of
// functions over the request's state (stages/stage.ts), run in order by one loop, which both
// listener backends call (`pipeline(request, connection)`):
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
import { problemResponse } from "../http/mod.ts";
import type { ConnectionInfo, ListenerRefusal, RefusalHandler } from "../tls/mod.ts";
import { adminFunctions, probes, unknownAdminFunction, type AdminDeps } from "./admin.ts";
import { authenticate } from "./stages/authenticate.ts";
import { checkRequest, policyInForce } from "./stages/check-request.ts";
import { decide, reserve } from "./stages/decide.ts";
import { dispatch } from "./stages/dispatch.ts";
import { appendRefusal, RequestState, type PipelineDeps, type StageDeps } from "./stages/env.ts";
import { receive } from "./stages/receive.ts";
import { recordDecision } from "./stages/record-decision.ts";
import { runStages, type AfterStages, type Stage } from "./stages/stage.ts";

export type { Forwarder, PipelineDeps } from "./stages/env.ts";

/** The stages of every channel, in order (the admin channel adds `probes` after checkRequest). */
export const PIPELINE_STAGES = ["receive", "checkRequest", "policyInForce", "authenticate", "decide", "reserve", "recordDecision", "dispatch"] as const;

/** One channel's request handling: the listener's fetch handler, and its refusal handler. */
export interface Pipeline {
  (request: Request, connection: ConnectionInfo): Promise<Response>;
  /** Records and answers a request the listener refused before it became a `Request`. */
  refuse: RefusalHandler;
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
 * One channel's stages, in order. With `admin`, the admin channel answers its probes between the
 * request's checks and authentication.
 */
export function channelStages(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Stage[] {
  const stage = stageDeps(deps, channel);
  return [
    receive(stage),
    checkRequest(stage),
    ...(channel === "admin" && admin ? [probes(admin)] : []),
    policyInForce(stage),
    authenticate(stage, listener),
    decide(stage),
    reserve(stage),
    recordDecision(stage),
    dispatch(stage),
  ];
}

/**
 * Builds the fetch handler (and refusal handler) of one channel's listener. With `admin`, an
 * allowed duty on the built-in upstream `gateway` reaches the admin functions after the stages.
 */
export function createPipeline(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Pipeline {
  const stages = channelStages(deps, channel, listener, admin);
  // The decide stage keeps `gateway` duties to the admin channel, whatever the policy says.
  const after: AfterStages = admin ? adminFunctions(admin) : (s) => unknownAdminFunction(s.target.path, s.requestId);
  const handle = (request: Request, connection: ConnectionInfo): Promise<Response> => {
    const answered = runStages(stages, new RequestState(request, connection), after, deps.log);
    // HEAD is answered as GET would be, without the body (as Hono's `app.fetch` answers it).
    return request.method === "HEAD" ? answered.then(withoutBody) : answered;
  };
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
  return Object.assign(handle, { refuse });
}

/**
 * The pipeline as a Hono app, for tests in process: `app.request(url, init, connection)`, the
 * connection facts as the environment.
 */
export function createGatewayApp(deps: PipelineDeps, channel: Channel, listener: ListenerConfig, admin?: AdminDeps): Hono<{ Bindings: ConnectionInfo }> {
  const pipeline = createPipeline(deps, channel, listener, admin);
  return new Hono<{ Bindings: ConnectionInfo }>().all("*", (c) => pipeline(c.req.raw, c.env));
}

function withoutBody(response: Response): Response {
  return new Response(null, response);
}
