// The decision: the policy's inputs, the compiled policy's decision, the query readings check,
// the admin-channel guard; then the duty ledger's reservation for a duty with a history separation.
import { denyForSeparation, policyInputNames, type CheckedDuty, type CheckedPolicy, type Decision, type PolicyRequest } from "../../../dsl/mod.ts";
import { ambiguousQueryParameter } from "../../http/mod.ts";
import { settleReservation, type Reservation } from "../../ledger/mod.ts";
import { INTERNAL_UPSTREAM } from "../policy-manager.ts";
import { clientIp, policyHeaders, policyQuery } from "../request-context.ts";
import { refuse, type RequestState, type StageDeps } from "./env.ts";
import type { Stage } from "./stage.ts";

export function decide(deps: StageDeps): Stage {
  const { channel, metrics } = deps;
  return { name: "decide", enter };
  function enter(s: RequestState) {
    const active = s.active;
    const target = s.target;
    const request = s.request;
    const ip = clientIp(s.connection.remoteAddress);
    const policyRequest: PolicyRequest = {
      method: request.method,
      path: target.path,
      ip,
      time: s.now,
      headers: policyHeaders(request.headers, policyInputNames(active.compiled.policy).headers),
      query: policyQuery(target.query),
    };
    const decideStart = performance.now();
    let decision: Decision = active.compiled.decide(channel, s.caller.principal, policyRequest);
    metrics.decisionLatency.observe((performance.now() - decideStart) / 1000);
    // The policy read the first value of each query parameter; the upstream may read the last, all
    // of them, or `name[]` as the name. A parameter the matched duty's conditions read must have one
    // value every reading agrees on, or the decision was taken on another value than the upstream's.
    const ambiguous = decision.duty === null ? null : ambiguousQueryParameter(target.query, active.compiled.queryNamesRead(decision.duty));
    if (ambiguous !== null) {
      return refuse(s, deps, { status: 400, code: "QUERY_PARAMETER_AMBIGUOUS", detail: ambiguous.detail, path: target.path, duty: decision.duty, verdict: "deny", extra: { parameter: ambiguous.name } });
    }
    const duty = decision.duty === null ? null : dutiesOf(active.compiled.policy).get(decision.duty) ?? null;
    // The admin functions answer on the admin listener only, whatever the active policy says. The
    // checker refuses a duty on `gateway` off the admin channel; this holds for one that got past it.
    if (decision.allow && channel !== "admin" && duty?.upstream === INTERNAL_UPSTREAM) {
      decision = { ...decision, allow: false, code: "DENY_ADMIN_CHANNEL_ONLY", decidedBy: null, separations: [], message: "the gateway's admin functions answer on the admin listener only" };
    }
    s.ip = ip;
    s.policyRequest = policyRequest;
    s.decision = decision;
    s.duty = duty;
    return undefined;
  }
}

/** The refusal of a guarded duty while the duty ledger cannot answer (503). */
const LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE";

/**
 * History separation: an allowed duty that carries one reserves its place in the duty ledger
 * (atomic: two racing requests cannot both pass), or is denied for the history found. Once the
 * request is answered, the reservation is settled by the upstream's answer (`upstreamAnswer`):
 * confirmed on 2xx, left unknown on 504/499, released otherwise and when nothing was sent
 * (a refusal after this stage, an exception).
 */
export function reserve(deps: StageDeps): Stage {
  const { ledger, log } = deps;
  const guarded = async (s: RequestState): Promise<Response | undefined> => {
    const decision = s.decision;
    let r: Awaited<ReturnType<typeof ledger.reserve>>;
    try {
      r = await ledger.reserve({ checks: decision.separations, duty: decision.duty!, sub: s.caller.principal.sub, at: s.now });
    } catch (e) {
      // Unguarded duties never reach the ledger and still pass. No reservation, no forward. A
      // refusal for a failing dependency (503, worth a retry), not a policy decision: its record
      // keeps `sub` null, so replay does not take it for a deny.
      log.error("duty ledger unavailable; denying", { request_id: s.requestId, error: (e as Error).message, code: (e as { code?: string }).code });
      const detail = "the duty ledger is unavailable; duties guarded by a separation of duties are refused until it answers again";
      return refuse(s, deps, { status: 503, code: LEDGER_UNAVAILABLE, detail, path: s.target.path, duty: decision.duty, verdict: "error" });
    }
    s.ledgerFacts = r.facts;
    if (!r.ok) {
      s.decision = denyForSeparation(decision, { check: r.check, fact: r.conflict }, r.facts, { reader: "caller", showTime: true, hideDetails: deps.config.ledger.hideDetails });
      return undefined;
    }
    s.decision = { ...decision, ledger: r.facts };
    s.reservation = r.reservation;
    return undefined;
  };
  return {
    name: "reserve",
    enter(s) {
      const decision = s.decision;
      return decision.allow && decision.separations.length > 0 ? guarded(s) : undefined;
    },
    // Only a guarded duty holds a reservation: the others pass by without a promise.
    leave: (s) => (s.reservation === null ? undefined : settle(s, s.reservation)),
  };

  async function settle(s: RequestState, reservation: Reservation): Promise<void> {
    // An exception on the way leaves no answer from the upstream: released.
    try {
      await settleReservation(ledger, reservation, s.upstreamAnswer);
    } catch (e) {
      log.error("duty ledger settle failed", { request_id: s.requestId, error: (e as Error).message });
    }
  }
}

const dutyIndex = new WeakMap<CheckedPolicy, Map<string, CheckedDuty>>();

/** Duties by name, built once per policy (a request must not scan every duty). */
function dutiesOf(policy: CheckedPolicy): Map<string, CheckedDuty> {
  let index = dutyIndex.get(policy);
  if (!index) dutyIndex.set(policy, (index = new Map(policy.duties.map((d) => [d.name, d]))));
  return index;
}
