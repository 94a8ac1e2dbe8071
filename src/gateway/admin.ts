// What the gateway serves itself on the admin listener: the admin functions of the built-in
// upstream `gateway` (metrics, policy status, reload, explain) as the routes of a Hono app,
// reached through the policy's admin-channel duties, and the probes, a stage answered before
// authentication.
import { Hono } from "hono";
import type { DutyLedger } from "../ledger/mod.ts";
import type { AuditLog } from "../audit/mod.ts";
import { problemResponse } from "../http/mod.ts";
import { explainRequest, type ExplainInput } from "./explain.ts";
import type { Metrics } from "./metrics.ts";
import type { OwnReadiness, ReadinessReport, WorkerReadinessAnswer, WorkerReloadResult } from "../workers/mod.ts";
import type { WorkerLink } from "../workers/mod.ts";
import { bundleExpired, bundleExpiredMessage, type PolicyManager } from "./policy-manager.ts";
import { answer, type RequestState } from "./stages/env.ts";
import type { AfterStages, Stage } from "./stages/stage.ts";

export interface AdminDeps {
  metrics: Metrics;
  policy: PolicyManager;
  ledger: DutyLedger;
  audit: AuditLog | null;
  /** True once a stop began (the drain): readiness fails first, so traffic moves away. */
  stopping?: () => boolean;
  /**
   * The other workers, when this is worker 0 of a supervisor: `/-/metrics` covers them all and
   * `POST /-/policy/reload` reaches every one.
   */
  fleet?: {
    /** This worker's id (0: the one with the admin listener). */
    worker: number;
    /** Every worker's metrics merged with `own`; null when the supervisor does not answer. */
    renderMetrics(own: string): Promise<string | null>;
    reloadOthers(): Promise<WorkerReloadResult[]>;
    /** The other workers' readiness, within a bound (a worker that does not answer is not ready). */
    readiness(): Promise<WorkerReadinessAnswer[]>;
  };
}

function json(status: number, body: unknown, requestId: string): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", { status, headers: { "content-type": "application/json", "cache-control": "no-store", "x-request-id": requestId } });
}

/** The admin functions' Hono environment: the request's state, which the stages established. */
export interface AdminFunctionEnv {
  Bindings: RequestState;
}

/**
 * The admin functions, what answers after the pipeline's last stage: the pipeline reaches them
 * only for an allowed admin-channel duty on `gateway`. A Hono app routes them by the normalised
 * path the policy judged; any method the policy granted reaches them. Their exceptions are the
 * pipeline's to answer and record.
 */
export function adminFunctions(deps: AdminDeps): AfterStages {
  const app = adminFunctionRoutes(deps);
  return (s) => app.fetch(s.request, s);
}

/** The admin functions as the routes of a Hono app (`adminFunctions`). */
export function adminFunctionRoutes({ metrics, policy, ledger, fleet }: AdminDeps): Hono<AdminFunctionEnv> {
  const app = new Hono<AdminFunctionEnv>({ getPath: (_request, options) => options!.env!.target.path });
  app.onError((error) => { throw error; });
  // A path of `gateway` that names no admin function.
  app.notFound((c) => unknownAdminFunction(c.env.target.path, c.env.requestId));
  app.all("/-/metrics", async (c) => {
    const s = c.env;
    const text = fleet ? await fleet.renderMetrics(metrics.render()) : metrics.render();
    // Worker 0's figures alone would be lower totals than the last scrape's: no answer rather than a wrong one.
    if (text === null) return problemResponse({ status: 503, code: "WORKER_UNAVAILABLE", detail: "the supervisor did not answer: the other workers' metrics are unknown", requestId: s.requestId });
    return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "x-request-id": s.requestId } });
  });
  app.all("/-/policy", (c) => json(200, policy.status(), c.env.requestId));
  app.all("/-/policy/reload", async (c) => {
    const s = c.env;
    const requestId = s.requestId;
    const [r, others] = await Promise.all([policy.reload("admin"), fleet ? fleet.reloadOthers() : Promise.resolve(null)]);
    const body = r.ok ? { ok: true, changed: r.changed, revision: r.active.revision, digest: r.active.digest } : { ok: false, ...r.error };
    if (others === null) return json(r.ok ? 200 : 422, body, requestId);
    // Every worker reloads; the answer is ok only when each did (`other_workers` says which did not):
    // 422 when this worker refused the policy, 503 when only another did not reload.
    const allOk = r.ok && others.every((o) => o.ok);
    return json(allOk ? 200 : r.ok ? 503 : 422, { ...body, ok: allOk, other_workers: others }, requestId);
  });
  app.all("/-/explain", async (c) => {
    const s = c.env;
    const requestId = s.requestId;
    const active = policy.active;
    if (!active) return problemResponse({ status: 503, code: "POLICY_UNAVAILABLE", requestId });
    let input: ExplainInput;
    try {
      input = (await c.req.raw.json()) as ExplainInput;
    } catch {
      return problemResponse({ status: 400, code: "EXPLAIN_BAD_BODY", detail: "body must be JSON: {principal, request, channel?, ip?, headers?, time?}", requestId });
    }
    const r = await explainRequest(active.compiled, input, ledger);
    return r.ok ? json(200, r.explanation, requestId) : problemResponse({ status: 400, code: r.code, detail: r.message, requestId });
  });
  return app;
}

/** The answer for a path of `gateway` that names no admin function (the app's not-found handler). */
export function unknownAdminFunction(path: string, requestId: string): Response {
  return problemResponse({ status: 404, code: "ADMIN_UNKNOWN_FUNCTION", detail: `the gateway serves no admin function at \`${path}\``, requestId });
}

/**
 * This process's readiness: requests can be decided and audited; `reasons` says what stands in
 * the way. Degraded still serves: the last good bundle decides while the policy directory fails.
 */
export function readinessOf({ policy, audit, stopping, ledger }: AdminDeps): ReadinessReport {
  const active = policy.active;
  const expired = active !== null && bundleExpired(active, Date.now());
  const auditWritable = audit === null || audit.healthy();
  const reasons: string[] = [];
  if (active === null) reasons.push("no policy is active");
  if (expired) reasons.push(bundleExpiredMessage(active));
  if (!auditWritable) reasons.push("the audit log cannot be written");
  if (stopping?.()) reasons.push("the gateway is shutting down");
  // Unguarded duties still pass while the ledger is down, but a load balancer should prefer an
  // instance that can serve every duty.
  const ledgerState = ledger.availability?.() ?? { available: true };
  if (!ledgerState.available) reasons.push(`the duty ledger is unavailable: ${ledgerState.reason}`);
  const ready = reasons.length === 0;
  const degraded = policy.degraded;
  const warnings = degraded ? [`serving the last good bundle from the state directory: the policy directory fails (${policy.lastError?.code ?? "unknown"})`] : [];
  const status = !ready ? "unavailable" : degraded ? "degraded" : "ready";
  return { status, ready, degraded, policy: active !== null, bundle_expired: expired, audit_writable: auditWritable, ledger_available: ledgerState.available, reasons, warnings };
}

/** One worker's line in the readiness of a fleet of workers. */
export interface WorkerReadiness {
  worker: number;
  ready: boolean;
  /** A worker's own status, or `not_serving` when it has none to give (restarting, starting, no answer). */
  status: ReadinessReport["status"] | "not_serving";
  /** Why it is not ready, or why it is degraded, in words. */
  reason?: string;
}

/**
 * The readiness of a supervisor's workers, answered by one of them: ready only when every worker
 * is (the kernel hands new connections to every worker serving the port, so one that cannot
 * decide or audit fails a share of them; one that is not serving means fewer cores than
 * configured, or a crash loop under way). The flags are over the workers that answered; the
 * reasons and warnings name their worker; `workers` has each one's line. Workers that serve
 * different policies still serve (degraded, with a warning): the same request may be decided
 * differently by each until a reload reaches them all.
 */
export function fleetReadiness(self: number, own: OwnReadiness, others: readonly WorkerReadinessAnswer[]): ReadinessReport & { workers: WorkerReadiness[] } {
  const all: WorkerReadinessAnswer[] = [{ worker: self, ...own }, ...others].sort((a, b) => a.worker - b.worker);
  const reports = all.flatMap((a) => (a.report ? [a.report] : []));
  const named = (worker: number, texts: readonly string[]) => texts.map((t) => `worker ${worker}: ${t}`);
  const workers: WorkerReadiness[] = all.map(({ worker, report, reason }) => {
    if (report === null) return { worker, ready: false, status: "not_serving", reason: reason ?? "no answer" };
    const why = [...report.reasons, ...report.warnings];
    return { worker, ready: report.ready, status: report.status, ...(why.length > 0 ? { reason: why.join("; ") } : {}) };
  });
  const ready = workers.every((w) => w.ready);
  const served = all.flatMap((a) => (a.report && a.digest ? [`worker ${a.worker}: ${a.digest.slice(0, 12)}`] : []));
  const split = new Set(served.map((s) => s.slice(s.indexOf(": ") + 2))).size > 1;
  const degraded = reports.some((r) => r.degraded) || split;
  const splitWarning = split ? [`the workers serve different policies (${served.join(", ")}): a reload reached some of them only; reload again (SIGHUP or POST /-/policy/reload)`] : [];
  return {
    status: !ready ? "unavailable" : degraded ? "degraded" : "ready",
    ready,
    degraded,
    policy: reports.every((r) => r.policy),
    bundle_expired: reports.some((r) => r.bundle_expired),
    audit_writable: reports.every((r) => r.audit_writable),
    ledger_available: reports.every((r) => r.ledger_available),
    reasons: all.flatMap((a) => (a.report ? named(a.worker, a.report.reasons) : named(a.worker, [a.reason ?? "no answer"]))),
    warnings: [...all.flatMap((a) => (a.report ? named(a.worker, a.report.warnings) : [])), ...splitWarning],
    workers,
  };
}

/**
 * The probes of the admin listener (`GET /-/healthz`, `GET /-/readyz`), a stage after the
 * request's own checks and before authentication; other methods and paths go on to it.
 * Liveness is this process's; readiness is every worker's when there are workers.
 */
export function probes(deps: AdminDeps): Stage {
  const probe = (s: RequestState, response: Response) => answer(s, response, { duty: "", decision: "probe" });
  const readiness = async (s: RequestState): Promise<Response> => {
    const own = readinessOf(deps);
    const fleet = deps.fleet;
    const body = fleet ? fleetReadiness(fleet.worker, { report: own, digest: deps.policy.active?.digest ?? null }, await fleet.readiness()) : own;
    return probe(s, json(body.ready ? 200 : 503, body, s.requestId));
  };
  return {
    name: "probes",
    enter(s) {
      if (s.request.method !== "GET") return undefined;
      // Matched on the normalised path, as the policy's routes are.
      const path = s.target.path;
      if (path === "/-/healthz") return probe(s, json(200, { status: "live" }, s.requestId));
      if (path === "/-/readyz") return readiness(s);
      return undefined;
    },
  };
}

/** What worker 0's admin functions ask of the other workers, through the supervisor. */
export function workerFleet(link: WorkerLink): NonNullable<AdminDeps["fleet"]> {
  return {
    worker: link.identity.id,
    renderMetrics: (own) => link.collectMetrics(own),
    reloadOthers: () => link.reloadOthers(),
    readiness: () => link.collectReadiness(),
  };
}
