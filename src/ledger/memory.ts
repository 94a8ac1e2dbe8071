// The in-process duty ledger: for tests of other modules, `gateway explain`, and a gateway that
// accepts losing its history on restart. JavaScript runs one reserve to completion before the
// next starts, so check-and-insert is atomic without locks.
import type { LedgerFact, SeparationCheck } from "../../dsl/mod.ts";
import {
  assertDutyInChecks,
  ledgerClosedError,
  resolveLedgerOptions,
  type DutyLedger,
  type LedgerOptions,
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
  #closed = false;

  constructor(options: LedgerOptions) {
    this.#options = resolveLedgerOptions(options);
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    this.#open();
    assertDutyInChecks(request.checks, request.duty);
    const facts: LedgerFact[] = [];
    for (const check of request.checks) {
      const found = this.#factsFor(check, request.sub, request.at);
      facts.push(...found);
      const conflict = found.find((f) => f.duty !== request.duty);
      if (conflict) return { ok: false, conflict, check, facts };
    }
    const reservation: Reservation = { id: crypto.randomUUID(), duty: request.duty, sub: request.sub, at: request.at, checks: [...request.checks] };
    for (const check of request.checks) {
      this.#bucket(check, true)!.push({ duty: request.duty, sub: request.sub, at: request.at, reservation: reservation.id });
    }
    return { ok: true, reservation, facts };
  }

  async confirm(reservation: Reservation): Promise<void> {
    this.#open();
    for (const check of reservation.checks) {
      const bucket = this.#bucket(check, true)!;
      // One confirmed entry per (sub, duty) is enough: keep the latest, so retention counts from the last time.
      const kept = bucket.filter((e) =>
        e.reservation !== reservation.id && !(e.reservation === null && e.sub === reservation.sub && e.duty === reservation.duty));
      const previous = bucket.filter((e) => e.reservation === null && e.sub === reservation.sub && e.duty === reservation.duty);
      const at = Math.max(reservation.at, ...previous.map((e) => e.at));
      kept.push({ duty: reservation.duty, sub: reservation.sub, at, reservation: null });
      this.#entries.set(bucketKey(check), kept);
    }
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
  }

  async lookup(checks: readonly SeparationCheck[], sub: string, at: number = Date.now()): Promise<LedgerFact[]> {
    this.#open();
    return checks.flatMap((check) => this.#factsFor(check, sub, at));
  }

  async prune(now: number): Promise<number> {
    this.#open();
    const confirmedBefore = now - this.#options.retentionMs;
    const pendingBefore = now - this.#options.reservationTtlMs;
    let removed = 0;
    for (const [key, bucket] of this.#entries) {
      const kept = bucket.filter((e) => (e.reservation === null ? e.at >= confirmedBefore : e.at >= pendingBefore));
      removed += bucket.length - kept.length;
      if (kept.length === 0) this.#entries.delete(key);
      else if (kept.length !== bucket.length) this.#entries.set(key, kept);
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
  }

  #open(): void {
    if (this.#closed) throw ledgerClosedError();
  }

  #bucket(check: SeparationCheck, create: boolean): MemoryEntry[] | undefined {
    const key = bucketKey(check);
    let bucket = this.#entries.get(key);
    if (!bucket && create) this.#entries.set(key, (bucket = []));
    return bucket;
  }

  /** This sub's confirmed entries and live reservations on the check's (constraint, key), oldest first. */
  #factsFor(check: SeparationCheck, sub: string, at: number): LedgerFact[] {
    const staleBefore = at - this.#options.reservationTtlMs;
    return (this.#entries.get(bucketKey(check)) ?? [])
      .filter((e) => e.sub === sub && (e.reservation === null || e.at >= staleBefore))
      .sort((a, b) => a.at - b.at)
      .map((e) => ({ constraint: check.constraint, key: check.key, duty: e.duty, sub: e.sub, at: e.at }));
  }
}

function bucketKey(check: SeparationCheck): string {
  return `${check.constraint}\u0000${check.key}`;
}
