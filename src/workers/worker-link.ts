// A worker's end of the IPC channel to its supervisor: it announces it serves, answers for its
// metrics and reloads, and asks (worker 0, which serves the admin listener) for the others'.
import { METRICS_SNAPSHOT_MS, READINESS_ANSWER_MS, type OwnReadiness, type SupervisorToWorker, type WorkerIdentity, type WorkerReadinessAnswer, type WorkerReloadResult, type WorkerToSupervisor } from "./protocol.ts";

/** What the worker's gateway does when the supervisor asks. */
export interface WorkerLinkHandlers {
  renderMetrics(): string;
  reload(): Promise<WorkerReloadResult>;
  readiness(): OwnReadiness;
  /** The channel closed: the supervisor is gone, however it died. */
  supervisorGone(): void;
}

/** The worker's side of the channel; create with {@link connectToSupervisor}. */
export interface WorkerLink {
  readonly identity: WorkerIdentity;
  /** Sets the handlers (once the gateway runs); questions before that get no answer. */
  serve(handlers: WorkerLinkHandlers): void;
  ready(banner: string[]): void;
  /** Every worker's metrics merged with `own` (this worker's) and the supervisor's; null when the supervisor does not answer. */
  collectMetrics(own: string): Promise<string | null>;
  /** The other workers' readiness, one answer per worker, within about twice {@link READINESS_ANSWER_MS}. */
  collectReadiness(): Promise<WorkerReadinessAnswer[]>;
  /** Reloads policy in the other workers; their results, one per worker. */
  reloadOthers(): Promise<WorkerReloadResult[]>;
}

/** Longest a question to the supervisor waits: a scrape or reload must not hang on a stuck worker. */
const ASK_TIMEOUT_MS = 5_000;

/**
 * The channel of a worker process started by a supervisor (`process.send` exists), or null.
 *
 * @example
 * const link = connectToSupervisor(identity);
 * link?.serve({ renderMetrics: () => metrics.render(), reload, supervisorGone: () => void gw.stop() });
 */
export function connectToSupervisor(identity: WorkerIdentity): WorkerLink | null {
  if (typeof process.send !== "function") return null;
  const send = (message: WorkerToSupervisor) => {
    try { process.send!(message); } catch { /* the channel closed: `disconnect` follows */ }
  };
  let handlers: WorkerLinkHandlers | null = null;
  let nextId = 1;
  const waiting = new Map<number, (message: SupervisorToWorker) => void>();
  const ask = <T extends SupervisorToWorker | null>(question: WorkerToSupervisor & { id: number }, fallback: () => T, timeoutMs = ASK_TIMEOUT_MS): Promise<T> =>
    new Promise<T>((resolve) => {
      const timer = setTimeout(() => { waiting.delete(question.id); resolve(fallback()); }, timeoutMs);
      waiting.set(question.id, (answer) => { clearTimeout(timer); resolve(answer as T); });
      send(question);
    });

  const others = () => Array.from({ length: identity.count }, (_, w) => w).filter((w) => w !== identity.id);

  process.on("message", (raw) => {
    const message = raw as SupervisorToWorker;
    switch (message.type) {
      case "render-metrics":
        if (handlers) send({ type: "metrics", id: message.id, text: handlers.renderMetrics() });
        return;
      case "reload":
        if (handlers) void handlers.reload().then((result) => send({ type: "reloaded", id: message.id, result }));
        return;
      case "check-readiness":
        if (handlers) send({ type: "readiness", id: message.id, ...handlers.readiness() });
        return;
      case "collected-metrics":
      case "collected-readiness":
      case "reloaded-others": {
        const answer = waiting.get(message.id);
        waiting.delete(message.id);
        answer?.(message);
        return;
      }
    }
  });
  let snapshots: ReturnType<typeof setInterval> | undefined;
  process.on("disconnect", () => {
    clearInterval(snapshots);
    handlers?.supervisorGone();
  });

  return {
    identity,
    serve(h) {
      handlers = h;
      snapshots = setInterval(() => send({ type: "metrics-snapshot", text: h.renderMetrics() }), METRICS_SNAPSHOT_MS);
      snapshots.unref?.();
    },
    ready(banner) { send({ type: "ready", banner }); },
    async collectMetrics(own) {
      const answer = await ask<Extract<SupervisorToWorker, { type: "collected-metrics" }> | null>({ type: "collect-metrics", id: nextId++, own }, () => null);
      return answer?.text ?? null;
    },
    async collectReadiness() {
      // The supervisor answers within READINESS_ANSWER_MS whatever the workers do; past twice
      // that, it is the supervisor that does not answer.
      const bound = 2 * READINESS_ANSWER_MS;
      const answer = await ask<Extract<SupervisorToWorker, { type: "collected-readiness" }>>({ type: "collect-readiness", id: nextId++ }, () => ({
        type: "collected-readiness", id: 0, workers: others().map((worker) => ({ worker, report: null, reason: `the supervisor did not answer within ${bound} ms` })),
      }), bound);
      return answer.workers;
    },
    async reloadOthers() {
      const answer = await ask<Extract<SupervisorToWorker, { type: "reloaded-others" }>>({ type: "reload-others", id: nextId++ }, () => ({
        type: "reloaded-others", id: 0, results: others().map((worker) => ({ worker, ok: false, code: "WORKER_UNAVAILABLE" })),
      }));
      return answer.results;
    },
  };
}
