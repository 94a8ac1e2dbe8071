// The duty ledger contract: what history-based separation of duties needs from a store.
// Each implementation lives in its own file and runs the shared conformance suite
// (ledger.case.ts), so a shared engine (Redis first) can be added later behind the same contract.
import type { LedgerFact, SeparationCheck } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";

/**
 * A pending claim on duties, held between the decision and the upstream's answer.
 * Plain data (serialisable), so a shared store can keep it as-is.
 */
export interface Reservation {
  /** Random id, unique per reserve call. */
  readonly id: string;
  readonly duty: string;
  readonly sub: string;
  /** Request time, epoch milliseconds: the time the fact is recorded with. */
  readonly at: number;
  /** The (constraint, key) pairs it holds: one per check of the decision. */
  readonly checks: readonly ReservedKey[];
  /**
   * The boot (one process's use of the store) that made it. A reservation whose boot has ended
   * was left by a process that stopped or died before the upstream's answer settled it.
   */
  readonly boot: string;
}

/** One (constraint, key) a reservation holds. */
export interface ReservedKey {
  readonly constraint: string;
  readonly key: string;
}

/**
 * What is known of an unsettled reservation's request:
 * - `in_flight`: its process is running and the reservation is younger than the TTL, so the
 *   request may still be waiting for the upstream's answer;
 * - `unknown`: its process ended (killed, crashed, or stopped past its drain deadline) or the
 *   reservation is older than the TTL: nobody will settle it, and the upstream may or may not
 *   have performed the duty.
 * Both count as performed for the person's other duties; only an operator's (or the upstream
 * answer's) confirm or release ends a reservation.
 */
export type PendingState = "in_flight" | "unknown";

/** An unsettled reservation, as {@link DutyLedger.pending} lists it. */
export interface PendingReservation extends Reservation {
  readonly state: PendingState;
}

/** Input of {@link DutyLedger.reserve}. */
export interface ReserveRequest {
  /** The decision's `separations`: every history constraint the duty is part of. */
  checks: readonly SeparationCheck[];
  /** The duty this request performs; must be one of each check's `duties`. */
  duty: string;
  /** The principal's `sub`. */
  sub: string;
  /** Request time, epoch milliseconds: the time the reservation, and then the fact, carry. */
  at: number;
}

/**
 * The outcome of a reserve. `facts` are the entries consulted (this `sub`'s confirmed entries and
 * unsettled reservations on each checked (constraint, key)), for explanations and the audit record.
 */
export type ReserveResult =
  | { ok: true; reservation: Reservation; facts: LedgerFact[] }
  | { ok: false; conflict: LedgerFact; check: SeparationCheck; facts: LedgerFact[] };

/** Whether a store can answer now, and if not, why (for readiness and the log). */
export type LedgerAvailability =
  | { available: true }
  | { available: false; reason: string; since: number };

/** Options every ledger takes. */
export interface LedgerOptions {
  /** Confirmed entries older than this many days are deleted by `prune`. `Infinity` keeps them forever. */
  retentionDays: number;
  /**
   * The longest a request may be in flight (milliseconds): an unsettled reservation older than
   * this is no longer waiting for an answer, so {@link DutyLedger.pending} reports its outcome
   * `unknown`. It never stops the reservation from counting as performed. It must exceed the
   * longest upstream request. Default {@link DEFAULT_RESERVATION_TTL_MS}.
   */
  reservationTtlMs?: number;
}

/** Default reservation TTL: 10 minutes; the config refuses an upstream `timeout` above it. */
export const DEFAULT_RESERVATION_TTL_MS = 10 * 60 * 1000;

const DAY_MS = 86_400_000;

/**
 * The pluggable store of history-based separation of duties.
 *
 * A principal `sub` may perform duty D on key K of constraint C unless the ledger holds an entry
 * (confirmed, or an unsettled reservation of any age) for (C, K) by the same `sub` for a different
 * duty of C: each store reads the facts and leaves the judgement to the one rule,
 * `findSeparationConflict` (dsl/separation.ts), inside its atomic step. A reservation whose request's outcome is unknown (its process died between forwarding
 * and the upstream's answer) counts as performed: the gateway fails closed until an operator
 * confirms or releases it.
 * Repeating the same duty is allowed (one entry per person-duty is kept, with the latest time).
 * A store is correct when it passes `runDutyLedgerConformance` (ledger.case.ts).
 * The gateway reserves before forwarding, confirms when the upstream answered 2xx, abandons the
 * reservation when no answer came, and releases it otherwise (see {@link settleReservation}).
 *
 * @example
 * const r = await ledger.reserve({ checks: decision.separations, duty: "approve_change", sub: "bob", at: Date.now() });
 * if (!r.ok) return denyForSeparation(decision, { check: r.check, fact: r.conflict }, r.facts, { reader: "caller", showTime: true });
 * const res = await forward();
 * await settleReservation(ledger, r.reservation, res.status);
 */
export interface DutyLedger {
  /**
   * Checks every constraint and, when none is broken, records a pending reservation for each,
   * atomically: two concurrent reserves by one `sub` for two different duties of the same
   * (constraint, key) never both succeed, also across processes sharing one store.
   */
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  /** Turns the reservation into confirmed facts. Idempotent; records the facts even when the reservation was already released or pruned (the action did happen). */
  confirm(reservation: Reservation): Promise<void>;
  /** Drops the reservation without a trace. Idempotent; never removes confirmed facts. */
  release(reservation: Reservation): Promise<void>;
  /**
   * No answer will come for the reservation's request (it timed out, or its client left, after it
   * was sent): the reservation stays, counting as performed, and `pending` reports it `unknown`
   * from now on. Idempotent; nothing happens to a reservation already settled.
   */
  abandon(reservation: Reservation): Promise<void>;
  /** Read-only: the facts `reserve` would consult for `sub` (confirmed entries and unsettled reservations). */
  lookup(checks: readonly SeparationCheck[], sub: string): Promise<LedgerFact[]>;
  /**
   * Read-only: every unsettled reservation, oldest first, with what is known of its request as of
   * `now` (default now). An operator settles one by passing it to `confirm` (the upstream did
   * perform it) or `release` (it did not).
   */
  pending(now?: number): Promise<PendingReservation[]>;
  /**
   * Deletes entries older than `retentionDays` as of `now`, confirmed or not: an unsettled
   * reservation counts as performed, so it is kept exactly as long as the fact it may be.
   * Returns how many entries went.
   */
  prune(now: number): Promise<number>;
  /** Number of entries held (confirmed and pending), for a metric. */
  size(): Promise<number>;
  /** Releases the store; any later call fails with `LEDGER_CLOSED`. Idempotent. */
  close(): Promise<void>;
  /**
   * Whether the store can answer now. A store behind a network (PostgreSQL) goes unavailable when
   * its server cannot be reached or answers too slowly, and says why; an embedded one omits it.
   */
  availability?(): LedgerAvailability;
}

/** Options after validation, with defaults applied. */
export interface ResolvedLedgerOptions {
  retentionMs: number;
  reservationTtlMs: number;
}

/** Validates ledger options; throws `LEDGER_BAD_OPTIONS` for a value no store could honour. */
export function resolveLedgerOptions(options: LedgerOptions): ResolvedLedgerOptions {
  const { retentionDays } = options;
  const reservationTtlMs = options.reservationTtlMs ?? DEFAULT_RESERVATION_TTL_MS;
  if (typeof retentionDays !== "number" || Number.isNaN(retentionDays) || retentionDays <= 0) {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `retentionDays must be a positive number of days, got \`${String(retentionDays)}\``);
  }
  if (!Number.isFinite(reservationTtlMs) || reservationTtlMs <= 0) {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `reservationTtlMs must be a positive number of milliseconds, got \`${String(reservationTtlMs)}\``);
  }
  return { retentionMs: retentionDays * DAY_MS, reservationTtlMs };
}

/** A new reservation of `request` by `boot`: the keys only, so a stored one reads back equal. */
export function newReservation(request: ReserveRequest, boot: string): Reservation {
  return {
    id: crypto.randomUUID(), duty: request.duty, sub: request.sub, at: request.at, boot,
    checks: request.checks.map(({ constraint, key }) => ({ constraint, key })),
  };
}

/**
 * The one rule for what is known of an unsettled reservation as of `now`: in flight only while
 * its process runs and no request could have outlived the TTL since.
 */
export function pendingStateOf(at: number, now: number, options: ResolvedLedgerOptions, bootRunning: boolean): PendingState {
  return bootRunning && now - at <= options.reservationTtlMs ? "in_flight" : "unknown";
}

/** Throws `LEDGER_DUTY_NOT_IN_CONSTRAINT` when a check does not name the duty: a wiring mistake, never a deny. */
export function assertDutyInChecks(checks: readonly SeparationCheck[], duty: string): void {
  for (const check of checks) {
    if (!check.duties.includes(duty)) {
      throw new GatewayError(
        "LEDGER_DUTY_NOT_IN_CONSTRAINT",
        `duty \`${duty}\` is not one of the duties of \`${check.constraint}\` (${check.duties.join(", ")})`,
        { constraint: check.constraint, duty },
      );
    }
  }
}

/** The error every call on a closed ledger throws. */
export function ledgerClosedError(): GatewayError {
  return new GatewayError("LEDGER_CLOSED", "the duty ledger is closed");
}

/** What became of a reservation when its request ended: the outcome record's `ledger` member. */
export type SettleOutcome = "confirmed" | "released" | "unknown";

/**
 * What the upstream's answer says of the reserved duty: 2xx performed (`confirmed`); 504 (no
 * answer in time) or 499 (the client left while it was being performed) `unknown`, since the
 * upstream got the request and may have performed it; anything else, and `null` (nothing was
 * sent), not performed (`released`).
 */
export function settleOutcomeOf(upstreamStatus: number | null): SettleOutcome {
  if (upstreamStatus === null) return "released";
  if (upstreamStatus >= 200 && upstreamStatus < 300) return "confirmed";
  return upstreamStatus === 504 || upstreamStatus === 499 ? "unknown" : "released";
}

/**
 * Settles a reservation by the upstream's answer ({@link settleOutcomeOf}): confirms it, releases
 * it, or abandons it (it stays, counting as performed, until an operator settles it).
 */
export async function settleReservation(ledger: DutyLedger, reservation: Reservation, upstreamStatus: number | null): Promise<SettleOutcome> {
  const outcome = settleOutcomeOf(upstreamStatus);
  if (outcome === "confirmed") await ledger.confirm(reservation);
  else if (outcome === "released") await ledger.release(reservation);
  else await ledger.abandon(reservation);
  return outcome;
}

/** A running periodic prune; `stop()` ends it. */
export interface PruneSchedule {
  stop(): void;
}

/**
 * Prunes `ledger` every `everyMs` (default one hour) off the request path. The timer does not keep
 * the process alive; errors go to `onError` and never stop the schedule.
 */
export function schedulePrune(
  ledger: DutyLedger,
  options: { everyMs?: number; now?: () => number; onPruned?: (removed: number) => void; onError?: (error: unknown) => void } = {},
): PruneSchedule {
  const everyMs = options.everyMs ?? 3_600_000;
  const now = options.now ?? Date.now;
  let running = false;
  const timer = setInterval(() => {
    // A slow prune (a huge first run) must not overlap the next one.
    if (running) return;
    running = true;
    ledger.prune(now()).then(
      (removed) => options.onPruned?.(removed),
      (error) => options.onError?.(error),
    ).finally(() => { running = false; });
  }, everyMs);
  (timer as { unref?: () => void }).unref?.();
  return { stop: () => clearInterval(timer) };
}
