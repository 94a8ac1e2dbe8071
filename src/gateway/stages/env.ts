// What the request pipeline's stages share: the request's state (what arrived, what earlier
// stages established), the dependencies every stage is built from, and the two ways a stage
// answers by itself.
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
 * One request on its way through the stages: what arrived, and what each stage establishes for
 * the stages after it, each field set once, by the stage named. One plain object with every
 * field from the start, handed from stage to stage (no per-field `Map` as Hono's context
 * variables, no per-request closures).
 */
export class RequestState {
  /** The request as the listener gave it. */
  readonly request: Request;
  /** The connection it came on (client address, client certificate). */
  readonly connection: ConnectionInfo;
  /** receive */
  requestId!: string;
  /** receive: `performance.now()` when the request arrived. */
  started = 0;
  /** receive: the request time the policy decides at. */
  now = 0;
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
  /** recordDecision: the decision record's place in the audit chain; null when none was written. */
  decisionSeq: number | null = null;
  /** dispatch: the status the upstream answered; null when nothing was sent to it. */
  upstreamAnswer: number | null = null;
  /** The answer, once there is one (what `leave` sees). */
  response!: Response;
  /** True when an exception ended the request (answered 500 INTERNAL_ERROR, nothing forwarded). */
  failed = false;
  /** Set by the stage that answered, read by receive for the request metric. */
  verdict: Verdict = { duty: "", decision: "error" };

  constructor(request: Request, connection: ConnectionInfo) {
    this.request = request;
    this.connection = connection;
  }
}

const NO_FACTS: readonly never[] = Object.freeze([]);

/** The labels of `dutygate_requests_total` other than channel and status. */
export interface Verdict {
  duty: string;
  decision: "allow" | "deny" | "unauthenticated" | "probe" | "error";
}

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
export function answer(s: RequestState, response: Response, verdict: Verdict): Response {
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
export async function refuse(s: RequestState, deps: StageDeps, r: Refusal): Promise<Response> {
  const { requestId, request } = s;
  await appendRefusal(deps, { requestId, method: request.method, path: r.path, code: r.code, detail: r.detail, duty: r.duty, headers: request.headers, clientIp: s.connection.remoteAddress, active: s.active });
  return answer(s, problemResponse({ status: r.status, code: r.code, detail: r.detail, requestId, headers: r.headers, extra: r.extra }), { duty: r.duty ?? "", decision: r.verdict });
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
