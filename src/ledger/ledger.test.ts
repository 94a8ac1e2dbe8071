import { describe, expect, test } from "bun:test";
import { schedulePrune, settleOutcomeOf, settleReservation, type SettleOutcome } from "./ledger.ts";
import { MemoryDutyLedger } from "./memory.ts";

const CHECK = { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] };

describe("settleReservation", () => {
  // [status, outcome, entries left, of them pending]
  const cases: Array<[number | null, SettleOutcome, number, number]> = [
    [200, "confirmed", 1, 0],
    [204, "confirmed", 1, 0],
    [299, "confirmed", 1, 0],
    [199, "released", 0, 0],
    [302, "released", 0, 0],
    [403, "released", 0, 0],
    [500, "released", 0, 0],
    [502, "released", 0, 0],
    // The request went out and no answer came: the upstream may have performed it.
    [504, "unknown", 1, 1],
    [499, "unknown", 1, 1],
    // Nothing was sent.
    [null, "released", 0, 0],
  ];
  test.each(cases)("upstream status %p is %s", async (status, outcome, size, pending) => {
    const ledger = new MemoryDutyLedger({ retentionDays: 30 });
    const result = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    if (!result.ok) throw new Error("reserve refused");
    expect(settleOutcomeOf(status)).toBe(outcome);
    expect(await settleReservation(ledger, result.reservation, status)).toBe(outcome);
    expect(await ledger.size()).toBe(size);
    expect((await ledger.pending(2)).map((p) => p.state)).toEqual(pending ? ["unknown"] : []);
  });
});

describe("schedulePrune", () => {
  test("prunes on its interval with the given clock until stopped", async () => {
    const ledger = new MemoryDutyLedger({ retentionDays: 1 });
    await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 0 });
    const pruned: number[] = [];
    let resolveFirst!: () => void;
    const first = new Promise<void>((resolve) => { resolveFirst = resolve; });
    const schedule = schedulePrune(ledger, { everyMs: 5, now: () => 2 * 86_400_000, onPruned: (n) => { pruned.push(n); resolveFirst(); } });
    await first;
    schedule.stop();
    expect(pruned[0]).toBe(1);
    expect(await ledger.size()).toBe(0);
  });

  test("reports errors and keeps running", async () => {
    const ledger = new MemoryDutyLedger({ retentionDays: 1 });
    await ledger.close();
    const errors: unknown[] = [];
    let resolveTwo!: () => void;
    const two = new Promise<void>((resolve) => { resolveTwo = resolve; });
    const schedule = schedulePrune(ledger, { everyMs: 5, onError: (e) => { errors.push(e); if (errors.length === 2) resolveTwo(); } });
    await two;
    schedule.stop();
    expect((errors[0] as { code?: string }).code).toBe("LEDGER_CLOSED");
  });
});
