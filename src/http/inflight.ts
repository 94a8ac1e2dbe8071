// Deadlines and client-gone watches of forwarded requests, kept by one shared sweep instead of a
// timer and an abort listener per request. Most upstream calls answer within a few milliseconds:
// for them the gateway only adds and removes a set entry. A call still waiting for its response
// head at a sweep gets the per-request machinery then: its abort listener on the client's
// request, and its deadline checked at every sweep (at most `SWEEP_MS` late).

/** How often pending calls are looked at: the resolution of header timeouts and of client-gone detection. */
export const SWEEP_MS = 25;

/** One upstream call waiting for its response head. */
export interface InflightCall {
  /** `performance.now()` after which the call is aborted with `onDeadline()`. */
  readonly deadline: number;
  /** Aborts the call because the upstream sent no response head in time. */
  onDeadline(): void;
  /**
   * Called once, at the first sweep that finds the call still pending: attach what watches the
   * client (reading `request.signal` and listening on it costs more than most calls last).
   */
  onSlow(): void;
  /** Set by the sweep when `onSlow` ran. */
  slow?: boolean;
}

const pending = new Set<InflightCall>();
let timer: ReturnType<typeof setInterval> | null = null;

function sweep(): void {
  const now = performance.now();
  for (const call of pending) {
    if (now >= call.deadline) {
      pending.delete(call);
      call.onDeadline();
      continue;
    }
    if (!call.slow) {
      call.slow = true;
      call.onSlow();
    }
  }
  if (pending.size === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}

/** Starts watching `call`; `settle(call)` stops it. */
export function watch(call: InflightCall): void {
  pending.add(call);
  if (timer === null) {
    timer = setInterval(sweep, SWEEP_MS);
    (timer as { unref?: () => void }).unref?.();
  }
}

/** Stops watching `call` (its response head arrived, or it failed). */
export function settle(call: InflightCall): void {
  pending.delete(call);
}

/** Calls being watched now (tests, metrics). */
export function inflightCount(): number {
  return pending.size;
}
