// The in-process duty ledger: for tests of other modules, `gateway explain`, and a gateway that
// accepts losing its history on restart. JavaScript runs one reserve to completion before the
// next starts, so check-and-insert is atomic without locks.
import { findSeparationConflict, type LedgerFact, type SeparationCheck } from "../../dsl/mod.ts";
import {
  assertDutyInChecks,
  ledgerClosedError,
  newReservation,
  pendingStateOf,
  resolveLedgerOptions,
  type DutyLedger,
  type LedgerOptions,
  type PendingReservation,
  type Reservation,
  type ReserveRequest,
  type ReserveResult,
  type ResolvedLedgerOptions,
} from "./ledger.ts";

interface MemoryEntry {
  duty: string;
  sub: string;
  at: number;
  /** Reservation id while pending; null once confirmed. */
  reservation: string | null;
}

/** The duty ledger held in memory; forgets everything on close. */
export class MemoryDutyLedger implements DutyLedger {
  readonly #options: ResolvedLedgerOptions;
  /** `constraint \0 key` → entries of that (constraint, key). */
  readonly #entries = new Map<string, MemoryEntry[]>();
  /** Unsettled reservations by id, in the order they were made. */
  readonly #pending = new Map<string, Reservation>();
  /** Reservations whose answer will never come. */
  readonly #abandoned = new Set<string>();
  /** This ledger's only boot: its reservations end with it. */
  readonly #boot = crypto.randomUUID();
  #closed = false;

  constructor(options: LedgerOptions) {
    this.#options = resolveLedgerOptions(options);
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    this.#open();
    assertDutyInChecks(request.checks, request.duty);
    const facts: LedgerFact[] = [];
    for (const check of request.checks) {
      const found = this.#factsFor(check, request.sub);
      facts.push(...found);
      const conflict = findSeparationConflict([check], request.sub, request.duty, found);
      if (conflict) return { ok: false, conflict: conflict.fact, check, facts };
    }
    const reservation = newReservation(request, this.#boot);
    for (const check of request.checks) {
      this.#bucket(check, true)!.push({ duty: request.duty, sub: request.sub, at: request.at, reservation: reservation.id });
    }
    if (reservation.checks.length > 0) this.#pending.set(reservation.id, reservation);
    return { ok: true, reservation, facts };
  }

  async confirm(reservation: Reservation): Promise<void> {
    this.#open();
    for (const check of reservation.checks) {
      const bucket = this.#bucket(check, true)!;
      // The person's other reservations for this duty on this key (a timed-out try before this
      // one) could only ever add what the fact now says: they are settled with it.
      for (const e of bucket) {
        if (e.reservation !== null && e.reservation !== reservation.id && e.sub === reservation.sub && e.duty === reservation.duty) {
          this.#dropPendingKey(e.reservation, check);
        }
      }
      // One confirmed entry per (sub, duty) is enough: keep the latest, so retention counts from the last time.
      const kept = bucket.filter((e) => e.sub !== reservation.sub || e.duty !== reservation.duty);
      const previous = bucket.filter((e) => e.reservation === null && e.sub === reservation.sub && e.duty === reservation.duty);
      const at = Math.max(reservation.at, ...previous.map((e) => e.at));
      kept.push({ duty: reservation.duty, sub: reservation.sub, at, reservation: null });
      this.#entries.set(bucketKey(check), kept);
    }
    this.#pending.delete(reservation.id);
    this.#abandoned.delete(reservation.id);
  }

  async release(reservation: Reservation): Promise<void> {
    this.#open();
    for (const check of reservation.checks) {
      const bucket = this.#bucket(check, false);
      if (!bucket) continue;
      const kept = bucket.filter((e) => e.reservation !== reservation.id);
      if (kept.length === 0) this.#entries.delete(bucketKey(check));
      else this.#entries.set(bucketKey(check), kept);
    }
    this.#pending.delete(reservation.id);
    this.#abandoned.delete(reservation.id);
  }

  async abandon(reservation: Reservation): Promise<void> {
    this.#open();
    if (this.#pending.has(reservation.id)) this.#abandoned.add(reservation.id);
  }

  async lookup(checks: readonly SeparationCheck[], sub: string): Promise<LedgerFact[]> {
    this.#open();
    return checks.flatMap((check) => this.#factsFor(check, sub));
  }

  async pending(now: number = Date.now()): Promise<PendingReservation[]> {
    this.#open();
    return [...this.#pending.values()]
      .sort((a, b) => a.at - b.at)
      .map((r) => ({ ...r, state: pendingStateOf(r.at, now, this.#options, !this.#abandoned.has(r.id)) }));
  }

  async prune(now: number): Promise<number> {
    this.#open();
    const before = now - this.#options.retentionMs;
    let removed = 0;
    for (const [key, bucket] of this.#entries) {
      const kept = bucket.filter((e) => e.at >= before);
      removed += bucket.length - kept.length;
      if (kept.length === 0) this.#entries.delete(key);
      else if (kept.length !== bucket.length) this.#entries.set(key, kept);
    }
    for (const [id, reservation] of this.#pending) {
      if (reservation.at < before) { this.#pending.delete(id); this.#abandoned.delete(id); }
    }
    return removed;
  }

  async size(): Promise<number> {
    this.#open();
    let n = 0;
    for (const bucket of this.#entries.values()) n += bucket.length;
    return n;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#entries.clear();
    this.#pending.clear();
    this.#abandoned.clear();
  }

  #open(): void {
    if (this.#closed) throw ledgerClosedError();
  }

  /** Takes one (constraint, key) out of a pending reservation; with the last, the reservation goes. */
  #dropPendingKey(id: string, check: { constraint: string; key: string }): void {
    const reservation = this.#pending.get(id);
    if (!reservation) return;
    const checks = reservation.checks.filter((c) => c.constraint !== check.constraint || c.key !== check.key);
    if (checks.length > 0) {
      this.#pending.set(id, { ...reservation, checks });
    } else {
      this.#pending.delete(id);
      this.#abandoned.delete(id);
    }
  }

  #bucket(check: { constraint: string; key: string }, create: boolean): MemoryEntry[] | undefined {
    const key = bucketKey(check);
    let bucket = this.#entries.get(key);
    if (!bucket && create) this.#entries.set(key, (bucket = []));
    return bucket;
  }

  /** This sub's confirmed entries and unsettled reservations on the check's (constraint, key), oldest first. */
  #factsFor(check: SeparationCheck, sub: string): LedgerFact[] {
    return (this.#entries.get(bucketKey(check)) ?? [])
      .filter((e) => e.sub === sub)
      .sort((a, b) => a.at - b.at)
      .map((e) => ({ constraint: check.constraint, key: check.key, duty: e.duty, sub: e.sub, at: e.at }));
  }
}

function bucketKey(check: { constraint: string; key: string }): string {
  return `${check.constraint}\u0000${check.key}`;
}
