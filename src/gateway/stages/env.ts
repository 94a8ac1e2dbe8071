// What the request pipeline's stages share: the Hono environment of the gateway's app (the
// connection facts as bindings, what earlier stages established as variables), the
// dependencies every stage is built from, and the two ways a stage answers by itself.
import type { Context } from "hono";
import type { Channel, Decision, IpValue, LedgerFact, PolicyRequest, CheckedDuty } from "../../../dsl/mod.ts";
import type { AuditLog } from "../../audit/mod.ts";
import type { Caller, JwtAuthenticator } from "../../authn/mod.ts";
import type { GatewayConfig } from "../../config/mod.ts";
import { problemResponse, type forwardToUpstream, type IdentityTokenSigner } from "../../http/mod.ts";
import type { DutyLedger, Reservation } from "../../ledger/mod.ts";
import type { ErrorCode } from "../../error-codes.ts";
import type { ConnectionInfo } from "../../tls/mod.ts";
import { refusalRecord, type RecordedHeaders } from "../audit-records.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { ActivePolicy, PolicyManager } from "../policy-manager.ts";
import type { RequestContext } from "../request-context.ts";

/**
 * What the stages establish about one request, for the stages after them: each field is set
 * once, by the stage named (a plain object with every field from the start, rather than one
 * `c.set` per field: Hono keeps variables in a Map, which cost about 1.5 µs per request here).
 */
export class RequestState {
  /** receive */
  readonly requestId: string;
  /** receive: `performance.now()` when the request arrived. */
  readonly started: number;
  /** receive: the request time the policy decides at. */
  readonly now: number;
  /** receive: the policy in force, read once per request. */
  active!: ActivePolicy;
  /** checkRequest */
  target!: RequestContext;
  /** authenticate */
  caller!: Caller;
  /** decide */
  ip!: IpValue;
  /** decide */
  policyRequest!: PolicyRequest;
  /** decide; reserve adds what the duty ledger said. */
  decision!: Decision;
  /** decide: the matched duty (null when none matched). */
  duty: CheckedDuty | null = null;
  /** reserve: the ledger reservation of a guarded duty. */
  reservation: Reservation | null = null;
  /** reserve */
  ledgerFacts: readonly LedgerFact[] = NO_FACTS;
  /** dispatch: the status the upstream answered; null when nothing was sent to it. */
  upstreamAnswer: number | null = null;
  /** Set by the stage that answered, read by receive for the request metric. */
  verdict: Verdict = { duty: "", decision: "error" };

  constructor(requestId: string, started: number, now: number) {
    this.requestId = requestId;
    this.started = started;
    this.now = now;
  }
}

const NO_FACTS: readonly never[] = Object.freeze([]);

/** The gateway app's variables: the request's state, set by the first stage. */
export interface GatewayVariables {
  state: RequestState;
}

/** The labels of `dutygate_requests_total` other than channel and status. */
export interface Verdict {
  duty: string;
  decision: "allow" | "deny" | "unauthenticated" | "probe" | "error";
}

/** The gateway app's Hono environment: `app.fetch(request, connectionInfo)`. */
export interface GatewayEnv {
  Bindings: ConnectionInfo;
  Variables: GatewayVariables;
}

export type GatewayContext = Context<GatewayEnv>;

/** Forwards a request to its upstream (src/http/forward.ts); passed in, so tests can answer in-process. */
export type Forwarder = typeof forwardToUpstream;

/** What the pipeline is built from. */
export interface PipelineDeps {
  config: GatewayConfig;
  /** The policy in force; read once per request. */
  policy: Pick<PolicyManager, "active">;
  authn: Pick<JwtAuthenticator, "authenticate">;
  ledger: DutyLedger;
  audit: AuditLog | null;
  identity: IdentityTokenSigner;
  metrics: Metrics;
  log: Logger;
  /** How requests reach upstreams; `forwardToUpstream` unless a test answers in-process. */
  forward?: Forwarder;
}

/** The dependencies of one channel's stages. */
export interface StageDeps extends PipelineDeps {
  channel: Channel;
  /** Request headers a record may carry. */
  recorded: RecordedHeaders;
}

/** Answers with `response`, labelled for the request metric. */
export function answer(c: GatewayContext, response: Response, verdict: Verdict): Response {
  const s = c.get("state");
  s.verdict = verdict;
  return response;
}

/** A refusal the gateway answers itself: a deny record in the audit log, then the problem. */
export interface Refusal {
  status: number;
  code: ErrorCode;
  detail: string;
  /** The normalised path, once known. */
  path: string | null;
  /** The matched duty, once known. */
  duty?: string | null;
  verdict: Verdict["decision"];
  headers?: Record<string, string>;
  extra?: Record<string, unknown>;
}

/** Records a refusal (a deny record) and answers it as a problem. */
export async function refuse(c: GatewayContext, deps: StageDeps, r: Refusal): Promise<Response> {
  const s = c.get("state");
  const requestId = s.requestId;
  await appendRefusal(deps, { requestId, method: c.req.method, path: r.path, code: r.code, detail: r.detail, duty: r.duty, headers: c.req.raw.headers, clientIp: c.env.remoteAddress, active: s.active });
  return answer(c, problemResponse({ status: r.status, code: r.code, detail: r.detail, requestId, headers: r.headers, extra: r.extra }), { duty: r.duty ?? "", decision: r.verdict });
}

/** Appends a refusal's deny record; a failed write is counted and logged, not answered. */
export async function appendRefusal(deps: StageDeps, r: { requestId: string; method: string; path: string | null; code: ErrorCode; detail: string; duty?: string | null; headers: Headers; clientIp: string; active: ActivePolicy }): Promise<void> {
  if (!deps.audit) return;
  try {
    await deps.audit.append(refusalRecord({
      requestId: r.requestId, channel: deps.channel, method: r.method, path: r.path, clientIp: r.clientIp, code: r.code, detail: r.detail,
      active: r.active, requestHeaders: r.headers, duty: r.duty, headers: deps.recorded,
    }));
    deps.metrics.auditRecords.inc();
  } catch (e) {
    deps.metrics.auditFailures.inc();
    deps.log.error("audit record could not be written", { request_id: r.requestId, error: (e as Error).message });
  }
}

/** The answer to an exception inside the gateway: 500, nothing forwarded. */
export function internalErrorResponse(requestId: string): Response {
  return problemResponse({ status: 500, code: "INTERNAL_ERROR", detail: "the gateway failed to handle the request; nothing was forwarded", requestId });
}

/**
 * Takes over an exception the stages after this one ended in, so that no stage before it sees
 * it: one thrown through `next()` (`thrown`) is logged and answered here (500); one the app's
 * error handler already answered (a route after the stages, `c.error`) is taken as it is.
 * False when there was none. Called right after `await next()` (in a catch with the exception).
 *
 * @example
 * let failed: boolean;
 * try { await next(); failed = tookException(c, log); } catch (e) { failed = tookException(c, log, e); }
 */
export function tookException(c: GatewayContext, log: Logger, ...thrown: [unknown?]): boolean {
  if (thrown.length === 0) {
    if (c.error === undefined) return false;
    c.error = undefined;
    return true;
  }
  const error = thrown[0];
  const requestId = c.get("state").requestId;
  log.error("request failed inside the gateway", { request_id: requestId, error: (error as Error)?.message ?? String(error) });
  // Cleared first: Hono's setter would otherwise carry the earlier answer's headers over.
  c.res = undefined;
  c.res = internalErrorResponse(requestId);
  return true;
}
