import { describe, expect, test } from "bun:test";
import { schedulePrune, settleReservation } from "./ledger.ts";
import { MemoryDutyLedger } from "./memory.ts";

const CHECK = { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] };

describe("settleReservation", () => {
  const cases: Array<[number | null, "confirmed" | "released", number]> = [
    [200, "confirmed", 1],
    [204, "confirmed", 1],
    [299, "confirmed", 1],
    [199, "released", 0],
    [302, "released", 0],
    [403, "released", 0],
    [502, "released", 0],
    [null, "released", 0],
  ];
  test.each(cases)("upstream status %p is %s", async (status, outcome, size) => {
    const ledger = new MemoryDutyLedger({ retentionDays: 30 });
    const result = await ledger.reserve({ checks: [CHECK], duty: "submit_change", sub: "alice", at: 1 });
    if (!result.ok) throw new Error("reserve refused");
    expect(await settleReservation(ledger, result.reservation, status)).toBe(outcome);
    expect(await ledger.size()).toBe(size);
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
