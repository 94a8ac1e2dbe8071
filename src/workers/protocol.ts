// What a supervisor and its workers say to each other over the IPC channel of each worker
// process. Plain JSON objects, one kind per `type`; an `id` pairs an answer with its question.
import type { ErrorCode } from "../error-codes.ts";

/** How a worker learns who it is: `DUTYGATE_WORKER`, JSON of this shape, set by the supervisor. */
export interface WorkerIdentity {
  /** 0 … count-1. Worker 0 also serves the admin listener. */
  id: number;
  count: number;
  /** The operational port all workers share (port 0 in the config is fixed once by the supervisor). */
  listenPort: number;
  /** The admin listener's port (worker 0 only), fixed likewise; null without an admin listener. */
  adminPort: number | null;
}

export const WORKER_ENV = "DUTYGATE_WORKER";

/**
 * How long the supervisor waits for another worker's readiness: a probe must get its answer
 * (503, with the reason) well within a prober's timeout (Kubernetes' default is 1 s), not hang
 * on a stuck worker.
 */
export const READINESS_ANSWER_MS = 500;

/**
 * How often a worker sends the supervisor its metrics between scrapes: what a worker killed
 * (SIGKILL) had counted since its last one is lost to the merged totals.
 */
export const METRICS_SNAPSHOT_MS = 1_000;

/** One policy reload's result in one worker, as `POST /-/policy/reload` reports it. */
export interface WorkerReloadResult {
  worker: number;
  ok: boolean;
  revision?: number;
  digest?: string;
  /** The reload's error code, or `WORKER_UNAVAILABLE` when the worker did not answer. */
  code?: ErrorCode;
}

/** One gateway process's readiness, as `GET /-/readyz` answers it (src/gateway/admin.ts). */
export interface ReadinessReport {
  /** `ready`, `degraded` (ready: the last good bundle serves) or `unavailable`. */
  status: "ready" | "degraded" | "unavailable";
  ready: boolean;
  degraded: boolean;
  policy: boolean;
  bundle_expired: boolean;
  audit_writable: boolean;
  ledger_available: boolean;
  /** What stands in the way of ready, in words; empty when ready. */
  reasons: string[];
  /** Ready, but someone should look (the degraded state). */
  warnings: string[];
}

/**
 * Another worker's readiness, as the supervisor found it: its own report, or null with the reason
 * when it has none to give (restarting, starting, or no answer within the bound).
 */
export interface WorkerReadinessAnswer {
  worker: number;
  report: ReadinessReport | null;
  /** The digest of the policy it serves (null: none); the workers should agree. */
  digest?: string | null;
  reason?: string;
}

/** What a worker says of its own readiness. */
export interface OwnReadiness {
  report: ReadinessReport;
  digest: string | null;
}

/** Worker → supervisor. */
export type WorkerToSupervisor =
  /** Serving; worker 0 sends the start-up banner the supervisor prints. */
  | { type: "ready"; banner: string[] }
  /** Worker 0's `/-/metrics`, with its own figures: every worker's, merged, please. */
  | { type: "collect-metrics"; id: number; own: string }
  /** A worker's figures, every {@link METRICS_SNAPSHOT_MS}: kept should the worker die. */
  | { type: "metrics-snapshot"; text: string }
  /** Worker 0's `GET /-/readyz`: are the other workers ready? */
  | { type: "collect-readiness"; id: number }
  /** Worker 0's `POST /-/policy/reload`: reload in the other workers too. */
  | { type: "reload-others"; id: number }
  /** Answers to the supervisor's questions. */
  | { type: "metrics"; id: number; text: string }
  | { type: "reloaded"; id: number; result: WorkerReloadResult }
  | { type: "readiness"; id: number; report: ReadinessReport; digest: string | null };

/** Supervisor → worker. */
export type SupervisorToWorker =
  | { type: "render-metrics"; id: number }
  | { type: "reload"; id: number }
  | { type: "check-readiness"; id: number }
  /** Answers to worker 0. `text`: the metrics of every worker (and of their dead processes), and the supervisor's own, merged. */
  | { type: "collected-metrics"; id: number; text: string }
  | { type: "reloaded-others"; id: number; results: WorkerReloadResult[] }
  | { type: "collected-readiness"; id: number; workers: WorkerReadinessAnswer[] };

/** Parses `DUTYGATE_WORKER`; null when unset, throws on a value the supervisor would not write. */
export function parseWorkerIdentity(text: string | undefined): WorkerIdentity | null {
  if (text === undefined || text === "") return null;
  const value = JSON.parse(text) as Partial<WorkerIdentity>;
  const whole = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  if (!whole(value.id) || !whole(value.count) || !whole(value.listenPort) || !(value.adminPort === null || whole(value.adminPort)) || value.id! >= value.count!) {
    throw new Error(`${WORKER_ENV} is not a worker identity: ${text}`);
  }
  return value as WorkerIdentity;
}
