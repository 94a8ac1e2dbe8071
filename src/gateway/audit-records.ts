// Every record the request path writes to the audit log, built in one place: what each member
// means is here, how records are chained and written is in src/audit/. docs/audit.md describes
// the shapes; `gateway check --replay` reads the decision record's replay fields back.
//
// Members are written in sorted key order (RFC 8785's order): the audit log then serialises a
// record with one JSON.stringify instead of sorting every object (src/lib/canonical-json.ts).
// The decision record also holds the chain fields' slots (`prev`, `seq`, `time`, `worker`, left
// undefined) in their sorted places, so the log writes it as it is instead of copying it.
import type { Channel, Decision, IpValue, LedgerFact, PolicyRequest, Principal } from "../../dsl/mod.ts";
import { redactHeaders } from "../audit/mod.ts";
import type { Caller } from "../authn/mod.ts";
import type { ActivePolicy } from "./policy-manager.ts";
import { replayFieldsOf } from "./replay-fields.ts";
import type { ErrorCode } from "../error-codes.ts";

/** What decides which request headers a record may carry. */
export interface RecordedHeaders {
  /** `audit.header_allowlist`. */
  allowlist: readonly string[];
  /** Never recorded whatever the allow-list says (the gateway's own identity-token header). */
  neverLogged: readonly string[];
}

/** The decision record of a request the policy decided: who, what, which rule, and the replay fields. */
export interface DecisionRecordInput {
  requestId: string;
  channel: Channel;
  request: { method: string; headers: Headers };
  path: string;
  ip: IpValue;
  caller: Caller;
  decision: Decision;
  /** The inputs the policy decided on (the replay fields are taken from them). */
  policyRequest: PolicyRequest;
  active: ActivePolicy;
  /** What the duty ledger said, when the duty carries a history separation. */
  ledgerFacts: readonly LedgerFact[];
  /** The upstream the request goes to; null when denied. */
  upstream: string | null;
  headers: RecordedHeaders;
}

export function decisionRecord(r: DecisionRecordInput): Record<string, unknown> {
  const { caller, decision } = r;
  // Full typed principal, request time and the inputs the policy reads: `gateway check --replay`.
  const replay = replayFieldsOf(r.active.compiled.policy, caller.principal, r.policyRequest, r.headers.neverLogged);
  return {
    channel: r.channel,
    client_ip: r.ip.text,
    code: decision.code,
    context: contextMember(caller, decision.branch, r.active, replay.principal),
    decided_by: decision.decidedBy,
    decision: decision.allow ? "allow" : "deny",
    duty: decision.duty,
    exclusive_violation: decision.code === "DENY_EXCLUSIVE" ? true : undefined,
    headers: redactHeaders(r.request.headers, r.headers.allowlist, r.headers.neverLogged),
    method: r.request.method,
    path: r.path,
    policy_headers: replay.policy_headers,
    policy_query: replay.policy_query,
    prev: undefined,
    reasons: reasonsMember(decision.reasons),
    request_id: r.requestId,
    request_time: replay.request_time,
    seq: undefined,
    sod: r.ledgerFacts.length ? r.ledgerFacts : undefined,
    sub: caller.principal.sub,
    time: undefined,
    type: "decision",
    upstream: decision.allow ? r.upstream : null,
    worker: undefined,
  };
}

/** A request refused before the policy decided it (bad request, authentication, an unavailable dependency). */
export interface RefusalRecordInput {
  requestId: string;
  channel: Channel;
  method: string;
  /** The normalised path, or null when the refusal came before normalisation. */
  path: string | null;
  /** The client's address as the connection gave it. */
  clientIp: string;
  code: ErrorCode;
  detail: string;
  active: ActivePolicy;
  requestHeaders: Headers;
  /** The duty when the policy had matched one before the refusal. */
  duty?: string | null;
  headers: RecordedHeaders;
}

export function refusalRecord(r: RefusalRecordInput): Record<string, unknown> {
  return {
    bundle: { digest: r.active.digest, revision: r.active.revision },
    channel: r.channel,
    client_ip: r.clientIp,
    code: r.code,
    decision: "deny",
    detail: r.detail,
    duty: r.duty ?? null,
    headers: redactHeaders(r.requestHeaders, r.headers.allowlist, r.headers.neverLogged),
    method: r.method,
    path: r.path,
    request_id: r.requestId,
    // `sub` stays null: the request was refused before a decision counted, and `gateway check
    // --replay` skips such records rather than re-deciding them without the replay fields.
    sub: null,
    type: "decision",
  };
}

/** A request the gateway failed on itself before a decision record was written (answered 500). */
export function failureRecord(r: { requestId: string; channel: Channel; method: string; clientIp: string }): Record<string, unknown> {
  return { channel: r.channel, client_ip: r.clientIp, code: "INTERNAL_ERROR", decision: "deny", duty: null, method: r.method, request_id: r.requestId, sub: null, type: "decision" };
}

/** The outcome that follows a decision record: the status answered, and what became of the ledger reservation. */
export interface OutcomeRecordInput {
  decisionSeq: number;
  requestId: string;
  status: number;
  /** Time since the request arrived, in milliseconds; absent when the gateway failed on it. */
  latencyMs?: number;
  /** `confirmed`, `released` or `unknown` when the duty held a reservation. */
  ledger?: string;
  /** `INTERNAL_ERROR` when the gateway failed after the decision record. */
  code?: ErrorCode;
}

export function outcomeRecord(r: OutcomeRecordInput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.code !== undefined) out.code = r.code;
  out.decision_seq = r.decisionSeq;
  if (r.latencyMs !== undefined) out.latency_ms = Math.round(r.latencyMs * 1000) / 1000;
  if (r.ledger !== undefined) out.ledger = r.ledger;
  out.request_id = r.requestId;
  out.status = r.status;
  out.type = "outcome";
  return out;
}

// Record members that repeat across requests — the decision tree leaf's branch and reasons, the
// roles of a cached token's principal, the active bundle — are built once per source object and
// shared by every record that carries them. They are not frozen (the decision tree's own arrays
// are): the engine's JSON.stringify, which writes the canonical record, leaves its fast path on
// frozen objects (~5 µs per record). Only the audit log reads them.
function memberCache<K extends object, V>(build: (key: K) => V): (key: K) => V {
  const cache = new WeakMap<K, V>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = build(key)));
    return v;
  };
}

/**
 * The decision record's `context`: who asked (`auth`, `issuer`, `principal`, `roles`), under which
 * bundle, down which branch of the decision tree. One object per principal and branch (and bundle
 * and credential), so that the audit log writes it once per file and refers to it by seq after
 * that (docs/audit.md, format 3): about a third of a record's bytes.
 */
function contextMember(caller: Caller, branch: Decision["branch"], active: ActivePolicy, principal: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  let byBranch = contexts.get(caller.principal);
  if (byBranch === undefined) contexts.set(caller.principal, (byBranch = new WeakMap()));
  let held = byBranch.get(branch);
  if (held === undefined || held.active !== active || held.auth !== caller.method || held.issuer !== caller.issuer || held.member.principal !== principal) {
    const member = { auth: caller.method, branch: branchMember(branch), bundle: bundleMember(active), issuer: caller.issuer, principal, roles: rolesMember(caller.principal) };
    held = { active, auth: caller.method, issuer: caller.issuer, member };
    byBranch.set(branch, held);
  }
  return held.member;
}

const contexts = new WeakMap<Principal, WeakMap<Decision["branch"], { active: ActivePolicy; auth: string; issuer: string | null; member: Readonly<Record<string, unknown>> }>>();

const branchMember = memberCache((branch: Decision["branch"]): readonly string[] => [...branch]);
const reasonsMember = memberCache((reasons: Decision["reasons"]): readonly object[] => reasons.map((r) => ({ held: r.held, rule: r.rule })));
const rolesMember = memberCache((p: Principal): readonly string[] => [...p.roles]);
const bundleMember = memberCache((a: ActivePolicy): Readonly<Record<string, unknown>> => ({ digest: a.digest, revision: a.revision }));
