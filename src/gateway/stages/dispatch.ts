// The last stage: a denied request gets its problem; an allowed one goes to its upstream with
// the gateway's identity token, or, for the built-in upstream `gateway`, on to the admin
// functions after the stages.
import { upstreamClient } from "../../config/mod.ts";
import { forwardToUpstream, problemResponse } from "../../http/mod.ts";
import { INTERNAL_UPSTREAM } from "../policy-manager.ts";
import { answer, type RequestState, type StageDeps } from "./env.ts";
import type { Stage } from "./stage.ts";

export function dispatch(deps: StageDeps): Stage {
  const { config, identity, metrics, log } = deps;
  const forward = deps.forward ?? forwardToUpstream;
  const stripHeaders = [...config.identity.stripHeaders];
  // The caller's bearer token was for the gateway: upstreams get the gateway's identity token
  // instead, so a credential never travels further than the hop it was issued for.
  const stripForJwt = [...stripHeaders, "authorization"];
  return {
    name: "dispatch",
    enter,
    // Reached only when the admin functions answered (an allowed duty on `gateway`).
    leave(s) {
      s.upstreamAnswer = s.response.status;
      if (!s.failed) s.verdict = { duty: s.decision.duty ?? "", decision: "allow" };
    },
  };

  async function enter(s: RequestState): Promise<Response | undefined> {
    const decision = s.decision;
    const requestId = s.requestId;
    const dutyName = decision.duty ?? "";
    if (!decision.allow) {
      const status = decision.code === "DENY_NO_ROUTE" ? config.noRouteStatus : 403;
      const extra = config.hideDenyDetails || decision.code === "DENY_NO_ROUTE" ? undefined : { duty: decision.duty, decision: decision.code, rule: decision.decidedBy, reasons: decision.reasons.filter((r) => r.held).map((r) => r.rule) };
      const detail = config.hideDenyDetails ? undefined : decision.message;
      // Hidden details hide the deny code too: `DENY_NO_ROUTE` vs `DENY_NO_GRANT` would tell a caller
      // which routes exist, defeating `no_route_status = 403`. The audit record keeps the real code.
      const code = config.hideDenyDetails ? "DENY" : decision.code;
      return answer(s, problemResponse({ status, code, detail, requestId, extra }), { duty: dutyName, decision: "deny" });
    }
    const upstreamName = s.duty?.upstream ?? null;
    if (upstreamName === INTERNAL_UPSTREAM) return undefined;
    const upstream = upstreamName ? config.upstreams[upstreamName] : undefined;
    if (!upstream) {
      return answer(s, problemResponse({ status: 502, code: "UPSTREAM_NOT_CONFIGURED", detail: `upstream \`${upstreamName}\` is not configured`, requestId }), { duty: dutyName, decision: "allow" });
    }
    const caller = s.caller;
    const target = s.target;
    const request = s.request;
    const identityExtra = { duty: dutyName };
    const identityToken = identity.cached(caller.principal, upstream.name, identityExtra) ?? await identity.sign(caller.principal, upstream.name, identityExtra);
    // forwardToUpstream sends nothing for a client already gone: then its 499 is no unknown outcome.
    const sent = !request.signal.aborted;
    let response: Response;
    try {
      response = await forward(request, {
        upstream, path: target.path, query: target.query, requestId, clientIp: s.ip.text,
        host: target.host, identityHeader: config.identity.header, identityToken,
        stripHeaders: caller.method === "jwt" ? stripForJwt : stripHeaders, maxBodyBytes: config.maxBodyBytes,
        client: upstreamClient(upstream),
      });
    } catch (e) {
      log.error("forwarding failed", { request_id: requestId, error: (e as Error).message });
      response = problemResponse({ status: 502, code: "UPSTREAM_UNAVAILABLE", detail: "the upstream could not be reached", requestId });
    }
    if (response.status >= 502 && response.headers.get("content-type") === "application/problem+json") metrics.upstreamErrors.inc({ upstream: upstream.name });
    s.upstreamAnswer = sent ? response.status : null;
    return answer(s, response, { duty: dutyName, decision: "allow" });
  }
}
