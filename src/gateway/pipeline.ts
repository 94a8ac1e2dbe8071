// The request pipeline, one way through:
//   request id → normalised path → authentication → decision (policy, then duty ledger)
//   → audit record written → forward (streaming) → ledger settled → outcome record.
// Authentication yields a Principal and knows nothing of policy; the policy knows nothing of
// tokens. The audit record of the decision is written before anything reaches the upstream.
import { policyInputNames, type Channel, type Decision, type IpValue, type LedgerFact, type PolicyRequest, type CheckedPolicy, type CheckedDuty, denyForSeparation } from "../../dsl/mod.ts";
import type { AuditLog } from "../audit/mod.ts";
import { bearerCredential, certificateCredential, isRefusal, type Caller, type JwtAuthenticator } from "../authn/mod.ts";
import { upstreamClient } from "../config/defaults.ts";
import type { GatewayConfig, ListenerConfig } from "../config/types.ts";
import { ambiguousQueryParameter, forwardToUpstream, problemResponse, requestIdFor, type IdentityTokenSigner } from "../http/mod.ts";
import { decisionRecord, failureRecord, outcomeRecord, refusalRecord, type RecordedHeaders } from "./audit-records.ts";
import { channelAuthentication } from "./stages/authenticate.ts";
import { clientIp, policyHeaders, policyQuery, readRequestContext } from "./request-context.ts";
import { settleOutcomeOf, settleReservation, type DutyLedger, type Reservation } from "../ledger/mod.ts";
import type { ConnectionInfo, ListenerRefusal, RefusalHandler } from "../tls/types.ts";
import type { Metrics } from "./metrics.ts";
import type { Logger } from "./log.ts";
import { bundleExpired, bundleExpiredMessage, INTERNAL_UPSTREAM, type ActivePolicy, type PolicyManager } from "./policy-manager.ts";

export interface PipelineDeps {
  config: GatewayConfig;
  /** The policy in force; read once per request. */
  policy: Pick<PolicyManager, "active">;
  authn: JwtAuthenticator;
  ledger: DutyLedger;
  audit: AuditLog | null;
  identity: IdentityTokenSigner;
  metrics: Metrics;
  log: Logger;
  /**
   * The built-in upstream `gateway`: admin functions the gateway serves itself (metrics, policy
   * status, reload, explain), reached only through duties the policy grants on the admin channel.
   */
  internal?: (request: Request, path: string, requestId: string) => Promise<Response>;
  /** Unauthenticated probes of the admin channel (`/-/healthz`, `/-/readyz`). */
  probes?: (path: string, requestId: string) => Response | null;
}


/** What the failure path needs to know about a request that threw half-way. */
interface RequestProgress {
  requestId: string | null;
  reservation: Reservation | null;
  decisionSeq: number | null;
}

/** One channel's request handling: the listener's fetch handler, and its refusal handler. */
export interface Pipeline {
  (request: Request, info: ConnectionInfo): Promise<Response>;
  /** Records and answers a request the listener refused before it became a `Request`. */
  refuse: RefusalHandler;
}

/** Builds the fetch handler (and refusal handler) of one channel's listener. */
export function createPipeline(deps: PipelineDeps, channel: Channel, listener: ListenerConfig): Pipeline {
  const { config, metrics, log } = deps;
  const trust = { trustIncoming: config.trustRequestId };
  const stripHeaders = [...config.identity.stripHeaders];
  // The caller's bearer token was for the gateway: upstreams get the gateway's identity token
  // instead, so a credential never travels further than the hop it was issued for.
  const stripForJwt = [...stripHeaders, "authorization"];
  // Never in an audit record, whatever the allow-list says: the gateway's own identity token.
  const recorded: RecordedHeaders = { allowlist: config.audit.headerAllowlist, neverLogged: [config.identity.header] };

  const authenticate = channelAuthentication(channel, { bearer: bearerCredential(deps.authn), certificate: certificateCredential(listener.certificateMapping) });

  /**
   * The fail-closed wrapper: an exception anywhere in the pipeline becomes a 500 problem with the
   * request id, the ledger reservation is released, and the audit log records the failure.
   */
  const handle = async (request: Request, info: ConnectionInfo): Promise<Response> => {
    const progress: RequestProgress = { requestId: null, reservation: null, decisionSeq: null };
    try {
      return await handleRequest(request, info, progress);
    } catch (e) {
      return failInternally(e, request, info, progress);
    }
  };

  // The same deny record and problem as the pipeline's own refusals of a malformed request, so
  // every answer the gateway gives has its record, whichever layer refused.
  const refuse = async (refusal: ListenerRefusal, info: ConnectionInfo): Promise<Response> => {
    const requestId = crypto.randomUUID();
    const active = deps.policy.active;
    if (active) await auditDeny({ requestId, method: refusal.method, path: null, reasonCode: refusal.code, message: refusal.detail, active, caller: null, info, request: refusal });
    metrics.requests.inc({ channel, duty: "", decision: "deny", status: String(refusal.status) });
    return problemResponse({ status: refusal.status, code: refusal.code, detail: refusal.detail, requestId });
  };

  return Object.assign(handle, { refuse });

  async function failInternally(error: unknown, request: Request, info: ConnectionInfo, progress: RequestProgress): Promise<Response> {
    const requestId = progress.requestId ?? crypto.randomUUID();
    log.error("request failed inside the gateway", { request_id: requestId, error: (error as Error)?.message ?? String(error) });
    if (progress.reservation) await deps.ledger.release(progress.reservation).catch(() => {});
    if (deps.audit) {
      const record = progress.decisionSeq !== null
        ? outcomeRecord({ requestId, decisionSeq: progress.decisionSeq, status: 500, code: "INTERNAL_ERROR", ledger: progress.reservation ? "released" : undefined })
        : failureRecord({ requestId, channel, method: request.method, clientIp: info.remoteAddress });
      await deps.audit.append(record).then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
    }
    metrics.requests.inc({ channel, duty: "", decision: "error", status: "500" });
    return problemResponse({ status: 500, code: "INTERNAL_ERROR", detail: "the gateway failed to handle the request; nothing was forwarded", requestId });
  }

  async function handleRequest(request: Request, info: ConnectionInfo, progress: RequestProgress): Promise<Response> {
    const started = performance.now();
    const now = Date.now();
    const requestId = (progress.requestId = requestIdFor(request, trust));
    const active = deps.policy.active;
    const finish = (response: Response, labels: { duty: string; decision: string }) => {
      metrics.requests.inc({ channel, duty: labels.duty, decision: labels.decision, status: String(response.status) });
      metrics.addedLatency.observe((performance.now() - started) / 1000);
      return response;
    };
    if (!active) {
      return finish(problemResponse({ status: 503, code: "POLICY_UNAVAILABLE", detail: "no valid policy is active", requestId }), { duty: "", decision: "error" });
    }

    const context = readRequestContext(request, config.maxBodyBytes);
    if ("code" in context) {
      await auditDeny({ requestId, method: request.method, path: context.path, reasonCode: context.code, message: context.message, active, caller: null, info, request });
      return finish(problemResponse({ status: context.status, code: context.code, detail: context.message, requestId }), { duty: "", decision: "deny" });
    }
    const { host } = context;
    const target = context;

    if (channel === "admin" && deps.probes && request.method === "GET") {
      const probe = deps.probes(target.path, requestId);
      if (probe) return finish(probe, { duty: "", decision: "probe" });
    }
    // A bundle that expired while active decides nothing more (fail closed) until a newer one loads.
    if (bundleExpired(active, now)) {
      const message = bundleExpiredMessage(active);
      await auditDeny({ requestId, method: request.method, path: target.path, reasonCode: "BUNDLE_EXPIRED", message, active, caller: null, info, request });
      return finish(problemResponse({ status: 503, code: "BUNDLE_EXPIRED", detail: message, requestId }), { duty: "", decision: "error" });
    }

    const authenticated = authenticate(request, info, active.compiled.policy.schema);
    const caller = authenticated instanceof Promise ? await authenticated : authenticated;
    if (isRefusal(caller)) {
      metrics.authnFailures.inc({ code: caller.code });
      await auditDeny({ requestId, method: request.method, path: target.path, reasonCode: caller.code, message: caller.message, active, caller: null, info, request });
      const response = problemResponse({ status: caller.status, code: caller.code, detail: caller.message, requestId, headers: caller.challenge ? { "www-authenticate": caller.challenge } : undefined });
      return finish(response, { duty: "", decision: "unauthenticated" });
    }

    const ip: IpValue = clientIp(info.remoteAddress);
    const policyRequest: PolicyRequest = {
      method: request.method,
      path: target.path,
      ip,
      time: now,
      headers: policyHeaders(request.headers, policyInputNames(active.compiled.policy).headers),
      query: policyQuery(target.query),
    };
    const decideStart = performance.now();
    let decision: Decision = active.compiled.decide(channel, caller.principal, policyRequest);
    metrics.decisionLatency.observe((performance.now() - decideStart) / 1000);
    // The policy read the first value of each query parameter; the upstream may read the last, all
    // of them, or `name[]` as the name. A parameter the matched duty's conditions read must have one
    // value every reading agrees on, or the decision was taken on another value than the upstream's.
    const ambiguous = decision.duty === null ? null : ambiguousQueryParameter(target.query, active.compiled.queryNamesRead(decision.duty));
    if (ambiguous !== null) {
      await auditDeny({ requestId, method: request.method, path: target.path, reasonCode: "QUERY_PARAMETER_AMBIGUOUS", message: ambiguous.detail, active, caller, info, request, duty: decision.duty });
      return finish(problemResponse({ status: 400, code: "QUERY_PARAMETER_AMBIGUOUS", detail: ambiguous.detail, requestId, extra: { parameter: ambiguous.name } }), { duty: decision.duty ?? "", decision: "deny" });
    }
    // The admin functions answer on the admin listener only, whatever the active policy says. The
    // checker refuses a duty on `gateway` off the admin channel; this holds for one that got past it.
    if (decision.allow && channel !== "admin" && dutiesOf(active.compiled.policy).get(decision.duty ?? "")?.upstream === INTERNAL_UPSTREAM) {
      decision = { ...decision, allow: false, code: "DENY_ADMIN_CHANNEL_ONLY", decidedBy: null, separations: [], message: "the gateway's admin functions answer on the admin listener only" };
    }

    let reservation: Reservation | null = null;
    let ledgerFacts: LedgerFact[] = [];
    if (decision.allow && decision.separations.length) {
      try {
        const r = await deps.ledger.reserve({ checks: decision.separations, duty: decision.duty!, sub: caller.principal.sub, at: now });
        ledgerFacts = r.facts;
        if (r.ok) {
          reservation = progress.reservation = r.reservation;
          decision = { ...decision, ledger: r.facts };
        } else {
          decision = denyForSeparation(decision, { check: r.check, fact: r.conflict }, r.facts, { reader: "caller", showTime: true, hideDetails: config.ledger.hideDetails });
        }
      } catch (e) {
        // Unguarded duties never reach the ledger and still pass. No reservation, no forward. A refusal for a failing dependency (503, worth a retry), not a
        // policy decision: its record keeps `sub` null, so replay does not take it for a deny.
        log.error("duty ledger unavailable; denying", { request_id: requestId, error: (e as Error).message, code: (e as { code?: string }).code });
        const detail = "the duty ledger is unavailable; duties guarded by a separation of duties are refused until it answers again";
        await auditDeny({ requestId, method: request.method, path: target.path, reasonCode: LEDGER_UNAVAILABLE, message: detail, active, caller, info, request, duty: decision.duty });
        return finish(problemResponse({ status: 503, code: LEDGER_UNAVAILABLE, detail, requestId }), { duty: decision.duty ?? "", decision: "error" });
      }
    }

    const duty = decision.duty ? dutiesOf(active.compiled.policy).get(decision.duty) ?? null : null;
    const upstreamName = duty?.upstream ?? null;
    let decisionSeq: number | null = null;
    if (deps.audit) {
      const auditStart = performance.now();
      try {
        decisionSeq = progress.decisionSeq = (await deps.audit.append(decisionRecord({ requestId, channel, request, path: target.path, ip, caller, decision, policyRequest, active, ledgerFacts, upstream: upstreamName, headers: recorded }))).seq;
        metrics.auditRecords.inc();
        metrics.auditWriteLatency.observe((performance.now() - auditStart) / 1000);
      } catch (e) {
        metrics.auditFailures.inc();
        log.error("audit record could not be written", { request_id: requestId, error: (e as Error).message, on_failure: config.audit.onFailure });
        if (config.audit.onFailure === "deny") {
          if (reservation) await deps.ledger.release(reservation).catch(() => {});
          return finish(problemResponse({ status: 503, code: "AUDIT_UNAVAILABLE", detail: "the audit log cannot be written; requests are refused until it can", requestId }), { duty: decision.duty ?? "", decision: "error" });
        }
      }
    }
    metrics.decisions.inc({ channel, duty: decision.duty ?? "", decision: decision.allow ? "allow" : "deny", code: decision.code });

    if (!decision.allow) {
      const status = decision.code === "DENY_NO_ROUTE" ? config.noRouteStatus : 403;
      const extra = config.hideDenyDetails || decision.code === "DENY_NO_ROUTE" ? undefined : { duty: decision.duty, decision: decision.code, rule: decision.decidedBy, reasons: decision.reasons.filter((r) => r.held).map((r) => r.rule) };
      const detail = config.hideDenyDetails ? undefined : decision.message;
      // Hidden details hide the deny code too: `DENY_NO_ROUTE` vs `DENY_NO_GRANT` would tell a caller
      // which routes exist, defeating `no_route_status = 403`. The audit record keeps the real code.
      const code = config.hideDenyDetails ? "DENY" : decision.code;
      return finish(problemResponse({ status, code, detail, requestId, extra }), { duty: decision.duty ?? "", decision: "deny" });
    }

    if (upstreamName === INTERNAL_UPSTREAM && deps.internal) {
      const response = await deps.internal(request, target.path, requestId);
      if (deps.audit && decisionSeq !== null) {
        await deps.audit.append(outcomeRecord({ decisionSeq, requestId, status: response.status, latencyMs: performance.now() - started }))
          .then(() => metrics.auditRecords.inc(), () => metrics.auditFailures.inc());
      }
      return finish(response, { duty: decision.duty ?? "", decision: "allow" });
    }
    const upstream = upstreamName ? config.upstreams[upstreamName] : undefined;
    if (!upstream) {
      if (reservation) await deps.ledger.release(reservation).catch(() => {});
      return finish(problemResponse({ status: 502, code: "UPSTREAM_NOT_CONFIGURED", detail: `upstream \`${upstreamName}\` is not configured`, requestId }), { duty: decision.duty ?? "", decision: "allow" });
    }
    const identityExtra = { duty: decision.duty! };
    const identityToken = deps.identity.cached(caller.principal, upstream.name, identityExtra) ?? await deps.identity.sign(caller.principal, upstream.name, identityExtra);
    // forwardToUpstream sends nothing for a client already gone: then its 499 is no unknown outcome.
    const sent = !request.signal.aborted;
    let response: Response;
    try {
      response = await forwardToUpstream(request, {
        upstream, path: target.path, query: target.query, requestId, clientIp: ip.text,
        host, identityHeader: config.identity.header, identityToken,
        stripHeaders: caller.method === "jwt" ? stripForJwt : stripHeaders, maxBodyBytes: config.maxBodyBytes,
        client: upstreamClient(upstream),
      });
    } catch (e) {
      log.error("forwarding failed", { request_id: requestId, error: (e as Error).message });
      response = problemResponse({ status: 502, code: "UPSTREAM_UNAVAILABLE", detail: "the upstream could not be reached", requestId });
    }
    if (response.status >= 502 && response.headers.get("content-type") === "application/problem+json") metrics.upstreamErrors.inc({ upstream: upstream.name });
    const answer = sent ? response.status : null;
    if (reservation) {
      try {
        await settleReservation(deps.ledger, reservation, answer);
      } catch (e) {
        log.error("duty ledger settle failed", { request_id: requestId, error: (e as Error).message });
      }
      progress.reservation = null;
    }
    if (deps.audit && decisionSeq !== null) {
      // The outcome follows in its own chained record; it need not hold up the response, and it
      // joins the next batch of decision records rather than costing a write of its own.
      deps.audit.append(outcomeRecord({ decisionSeq, requestId, status: response.status, latencyMs: performance.now() - started, ledger: reservation ? settleOutcomeOf(answer) : undefined }), { deferred: true })
        .then(() => metrics.auditRecords.inc())
        .catch((e: Error) => {
          metrics.auditFailures.inc();
          log.error("audit outcome record could not be written", { request_id: requestId, error: e.message });
        });
    }
    return finish(response, { duty: decision.duty ?? "", decision: "allow" });
  }

  async function auditDeny(r: { requestId: string; method: string; path: string | null; reasonCode: string; message: string; active: ActivePolicy; caller: Caller | null; info: ConnectionInfo; request: { headers: Headers }; duty?: string | null }): Promise<void> {
    if (!deps.audit) return;
    try {
      await deps.audit.append(refusalRecord({
        requestId: r.requestId, channel, method: r.method, path: r.path, clientIp: r.info.remoteAddress, code: r.reasonCode, detail: r.message,
        active: r.active, requestHeaders: r.request.headers, duty: r.duty, headers: recorded,
      }));
      metrics.auditRecords.inc();
    } catch (e) {
      metrics.auditFailures.inc();
      log.error("audit record could not be written", { request_id: r.requestId, error: (e as Error).message });
    }
  }
}

/** The refusal of a guarded duty while the duty ledger cannot answer (503). */
const LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE";

const dutyIndex = new WeakMap<CheckedPolicy, Map<string, CheckedDuty>>();

/** Duties by name, built once per policy (a request must not scan every duty). */
function dutiesOf(policy: CheckedPolicy): Map<string, CheckedDuty> {
  let index = dutyIndex.get(policy);
  if (!index) dutyIndex.set(policy, (index = new Map(policy.duties.map((d) => [d.name, d]))));
  return index;
}
