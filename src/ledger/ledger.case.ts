// The conformance suite every DutyLedger implementation runs (like Hono's router cases):
// `runDutyLedgerConformance("sqlite", harness)` from the implementation's own test file.
import { afterEach, describe, expect, test } from "bun:test";
import type { SeparationCheck } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import type { ErrorCode } from "../error-codes.ts";
import type { DutyLedger, LedgerOptions, Reservation, ReserveRequest, ReserveResult } from "./ledger.ts";

/** How the suite gets ledgers of one implementation. */
export interface LedgerHarness {
  /** Opens a fresh, empty ledger. */
  open(options: LedgerOptions): Promise<DutyLedger>;
  /** Closes `ledger` and opens its store again (a restart); absent for a store that forgets on close. */
  reopen?(ledger: DutyLedger, options: LedgerOptions): Promise<DutyLedger>;
  /**
   * A process of its own opens a fresh store, reserves `request` and is killed (SIGKILL) before
   * settling it; returns the store opened again by this process (a restart after kill -9).
   * Absent for a store that forgets when its process ends.
   */
  crashWhileReserved?(request: ReserveRequest, options: LedgerOptions): Promise<DutyLedger>;
}

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 10, 3);
const OPTIONS: LedgerOptions = { retentionDays: 30, reservationTtlMs: 60_000 };
const CHANGE_DUTIES = ["submit_change", "approve_change", "deploy_change"] as const;
const CONSTRAINT = "separate:changes.duty:20:1";

function changeCheck(key: string, constraint = CONSTRAINT): SeparationCheck {
  return { constraint, param: "change", key, duties: CHANGE_DUTIES };
}

function expectOk(result: ReserveResult): Reservation {
  if (!result.ok) throw new Error(`expected the reserve to pass, it conflicted with ${JSON.stringify(result.conflict)}`);
  return result.reservation;
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(GatewayError);
  expect((error as GatewayError).code).toBe(code);
}

/** Runs the shared DutyLedger cases against `harness`. */
export function runDutyLedgerConformance(name: string, harness: LedgerHarness): void {
  describe(`DutyLedger conformance: ${name}`, () => {
    const opened: DutyLedger[] = [];
    const open = async (options: LedgerOptions = OPTIONS) => {
      const ledger = await harness.open(options);
      opened.push(ledger);
      return ledger;
    };
    afterEach(async () => {
      for (const ledger of opened.splice(0)) await ledger.close();
    });

    /** Reserves and confirms; fails the test if the ledger refuses. */
    const perform = async (ledger: DutyLedger, sub: string, duty: string, key: string, at = T0, check = changeCheck(key)) => {
      const reservation = expectOk(await ledger.reserve({ checks: [check], duty, sub, at }));
      await ledger.confirm(reservation);
      return reservation;
    };

    test("three different people pass all three duties of one change", async () => {
      const ledger = await open();
      await perform(ledger, "alice", "submit_change", "42", T0);
      await perform(ledger, "bob", "approve_change", "42", T0 + 1);
      await perform(ledger, "carol", "deploy_change", "42", T0 + 2);
      expect(await ledger.size()).toBe(3);
      expect(await ledger.lookup([changeCheck("42")], "bob")).toEqual([
        { constraint: CONSTRAINT, key: "42", duty: "approve_change", sub: "bob", at: T0 + 1 },
      ]);
    });

    const twoSteps: Array<[string, string]> = [
      ["submit_change", "approve_change"],
      ["approve_change", "submit_change"],
      ["approve_change", "deploy_change"],
      ["deploy_change", "submit_change"],
    ];
    test.each(twoSteps)("one person doing %s then %s on one change is denied", async (first, second) => {
      const ledger = await open();
      await perform(ledger, "alice", first, "42", T0);
      const result = await ledger.reserve({ checks: [changeCheck("42")], duty: second, sub: "alice", at: T0 + 1000 });
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.conflict).toEqual({ constraint: CONSTRAINT, key: "42", duty: first, sub: "alice", at: T0 });
      expect(result.check).toEqual(changeCheck("42"));
      expect(result.facts).toEqual([result.conflict]);
      expect(await ledger.size()).toBe(1);
    });

    // Regression: the stores denied on any other duty under the constraint id, while policy tests
    // and explain applied the rule (only the separation's own duties conflict) and allowed.
    test("a fact of a duty the constraint no longer names does not conflict (the policy changed under the ledger)", async () => {
      const ledger = await open();
      await perform(ledger, "alice", "submit_change", "42", T0);
      // The constraint at the same place now keeps approve and deploy apart; submit is not one of them.
      const changed: SeparationCheck = { constraint: CONSTRAINT, param: "change", key: "42", duties: ["approve_change", "deploy_change"] };
      const result = await ledger.reserve({ checks: [changed], duty: "approve_change", sub: "alice", at: T0 + 1000 });
      expect(result.ok).toBe(true);
      expect(result.facts).toEqual([{ constraint: CONSTRAINT, key: "42", duty: "submit_change", sub: "alice", at: T0 }]);
      // The separation still holds between the duties it names.
      await ledger.confirm(expectOk(result));
      const deploy = await ledger.reserve({ checks: [changed], duty: "deploy_change", sub: "alice", at: T0 + 2000 });
      expect(deploy.ok ? null : deploy.conflict.duty).toBe("approve_change");
    });

    test("repeating the same duty is allowed and keeps one entry with the latest time", async () => {
      const ledger = await open();
      await perform(ledger, "alice", "submit_change", "42", T0);
      const again = await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 + 5000 });
      expect(again.ok).toBe(true);
      if (!again.ok) return;
      expect(again.facts.map((f) => f.duty)).toEqual(["submit_change"]);
      await ledger.confirm(again.reservation);
      expect(await ledger.size()).toBe(1);
      expect((await ledger.lookup([changeCheck("42")], "alice")).map((f) => f.at)).toEqual([T0 + 5000]);
    });

    test("another key and another constraint are independent", async () => {
      const ledger = await open();
      await perform(ledger, "alice", "submit_change", "42");
      await perform(ledger, "alice", "approve_change", "43");
      await perform(ledger, "alice", "approve_change", "42", T0, changeCheck("42", "separate:other.duty:3:1"));
      // Another person on the first change is untouched by all of it.
      await perform(ledger, "bob", "approve_change", "42");
      expect(await ledger.size()).toBe(4);
    });

    test("a released reservation leaves no trace, and release is idempotent", async () => {
      const ledger = await open();
      const reservation = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      expect(await ledger.size()).toBe(1);
      await ledger.release(reservation);
      await ledger.release(reservation);
      expect(await ledger.size()).toBe(0);
      expect(await ledger.lookup([changeCheck("42")], "alice")).toEqual([]);
      await perform(ledger, "alice", "approve_change", "42", T0 + 1);
    });

    test("release after confirm keeps the confirmed fact; confirm is idempotent", async () => {
      const ledger = await open();
      const reservation = await perform(ledger, "alice", "submit_change", "42");
      await ledger.confirm(reservation);
      await ledger.release(reservation);
      expect(await ledger.size()).toBe(1);
      const denied = await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 1 });
      expect(denied.ok).toBe(false);
    });

    test("a pending reservation blocks the same person's other step but nobody else", async () => {
      const ledger = await open();
      const pending = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      const race = await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 10 });
      expect(race.ok).toBe(false);
      if (!race.ok) expect(race.conflict).toMatchObject({ duty: "submit_change", sub: "alice", at: T0 });
      expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "bob", at: T0 + 10 }));
      expect(pending.checks).toEqual([{ constraint: CONSTRAINT, key: "42" }]);
    });

    // Regression: a reservation older than the TTL used to stop blocking, so after a kill -9
    // between forwarding and confirm the person's next duty passed though the upstream had
    // performed the first. Its outcome is unknown, so it counts as performed.
    test("an unsettled reservation counts as performed whatever its age; past the TTL its outcome is unknown", async () => {
      const ledger = await open();
      const first = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      for (const at of [T0 + 60_000, T0 + 60_001, T0 + 29 * DAY]) {
        const next = await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at });
        expect({ at, ok: next.ok }).toEqual({ at, ok: false });
        if (!next.ok) expect(next.conflict).toEqual({ constraint: CONSTRAINT, key: "42", duty: "submit_change", sub: "alice", at: T0 });
      }
      expect((await ledger.pending(T0 + 60_000)).map((p) => [p.id, p.state])).toEqual([[first.id, "in_flight"]]);
      expect((await ledger.pending(T0 + 60_001)).map((p) => [p.id, p.state])).toEqual([[first.id, "unknown"]]);
      expect(await ledger.prune(T0 + 29 * DAY)).toBe(0);
      expect(await ledger.size()).toBe(1);
    });

    test("pending lists unsettled reservations oldest first, each with its keys; settled ones leave the list", async () => {
      const ledger = await open();
      const checks = [changeCheck("42"), changeCheck("42", "separate:release.duty:7:1")];
      const later = expectOk(await ledger.reserve({ checks, duty: "approve_change", sub: "bob", at: T0 + 5 }));
      const earlier = expectOk(await ledger.reserve({ checks: [changeCheck("43")], duty: "submit_change", sub: "alice", at: T0 }));
      const settled = expectOk(await ledger.reserve({ checks: [changeCheck("44")], duty: "submit_change", sub: "carol", at: T0 + 1 }));
      await ledger.confirm(settled);
      expectOk(await ledger.reserve({ checks: [], duty: "read_logs", sub: "dave", at: T0 }));
      const listed = await ledger.pending(T0 + 10);
      expect(listed).toEqual([{ ...earlier, state: "in_flight" }, { ...later, state: "in_flight" }]);
      expect(listed[1]!.checks).toEqual([{ constraint: CONSTRAINT, key: "42" }, { constraint: "separate:release.duty:7:1", key: "42" }]);
      await ledger.release(earlier);
      expect((await ledger.pending(T0 + 10)).map((p) => p.id)).toEqual([later.id]);
    });

    test("an operator settles a reservation of unknown outcome from the pending list: release lets the person on, confirm records the fact", async () => {
      const ledger = await open();
      expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      expectOk(await ledger.reserve({ checks: [changeCheck("43")], duty: "submit_change", sub: "alice", at: T0 }));
      const [notPerformed, performed] = await ledger.pending(T0 + DAY);
      expect([notPerformed?.state, performed?.state]).toEqual(["unknown", "unknown"]);
      await ledger.release(notPerformed!);
      await ledger.confirm(performed!);
      expect(await ledger.pending(T0 + DAY)).toEqual([]);
      const [checkNotPerformed, checkPerformed] = [notPerformed!.checks[0]!.key, performed!.checks[0]!.key].map((key) => changeCheck(key));
      expect((await ledger.reserve({ checks: [checkNotPerformed!], duty: "approve_change", sub: "alice", at: T0 + DAY })).ok).toBe(true);
      expect((await ledger.reserve({ checks: [checkPerformed!], duty: "approve_change", sub: "alice", at: T0 + DAY })).ok).toBe(false);
      expect(await ledger.lookup([checkPerformed!], "alice")).toEqual([{ constraint: CONSTRAINT, key: checkPerformed!.key, duty: "submit_change", sub: "alice", at: T0 }]);
    });

    // Regression: a request that timed out, or whose client left, after it was sent was released,
    // so the person's next duty passed though the upstream may have performed the first.
    test("an abandoned reservation (no answer will come) stays, counts as performed, and is of unknown outcome at once", async () => {
      const ledger = await open();
      const timedOut = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      const settled = expectOk(await ledger.reserve({ checks: [changeCheck("43")], duty: "submit_change", sub: "alice", at: T0 }));
      await ledger.release(settled);
      await ledger.abandon(timedOut);
      await ledger.abandon(timedOut);
      await ledger.abandon(settled);
      expect((await ledger.pending(T0 + 1)).map((p) => [p.id, p.state])).toEqual([[timedOut.id, "unknown"]]);
      expect((await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 2 })).ok).toBe(false);
      await ledger.release(expectOk(await ledger.reserve({ checks: [changeCheck("43")], duty: "approve_change", sub: "alice", at: T0 + 2 })));
      expect(await ledger.size()).toBe(1);
      // The operator's word still settles it.
      await ledger.confirm(timedOut);
      expect(await ledger.pending(T0 + 3)).toEqual([]);
      expect((await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 3 })).ok).toBe(false);
    });

    test("a confirmed fact settles the person's other reservations for that duty on that key (a retry that got through)", async () => {
      const ledger = await open();
      const other = changeCheck("42", "separate:release.duty:7:1");
      const timedOut = expectOk(await ledger.reserve({ checks: [changeCheck("42"), other], duty: "submit_change", sub: "alice", at: T0 }));
      await ledger.abandon(timedOut);
      const bobs = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "bob", at: T0 }));
      const retry = await perform(ledger, "alice", "submit_change", "42", T0 + 10);
      // Only the retried key went: the other constraint still waits for an operator; bob's is his own.
      expect((await ledger.pending(T0 + 20)).map((p) => [p.id, p.checks, p.state])).toEqual([
        [timedOut.id, [{ constraint: "separate:release.duty:7:1", key: "42" }], "unknown"],
        [bobs.id, [{ constraint: CONSTRAINT, key: "42" }], "in_flight"],
      ]);
      expect(await ledger.lookup([changeCheck("42")], "alice")).toEqual([{ constraint: CONSTRAINT, key: "42", duty: "submit_change", sub: "alice", at: T0 + 10 }]);
      expect((await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 20 })).ok).toBe(false);
      expect((await ledger.reserve({ checks: [other], duty: "approve_change", sub: "alice", at: T0 + 20 })).ok).toBe(false);
      expect(retry.id).not.toBe(timedOut.id);
    });

    test("200 concurrent reserve pairs by one person: exactly one of each pair wins", async () => {
      const ledger = await open();
      const keys = Array.from({ length: 200 }, (_, i) => `change-${i}`);
      const pairs = await Promise.all(keys.map((key) => Promise.all([
        ledger.reserve({ checks: [changeCheck(key)], duty: "submit_change", sub: "alice", at: T0 }),
        ledger.reserve({ checks: [changeCheck(key)], duty: "approve_change", sub: "alice", at: T0 }),
      ])));
      const winnersPerPair = pairs.map(([a, b]) => Number(a.ok) + Number(b.ok));
      expect(winnersPerPair.every((n) => n === 1)).toBe(true);
      expect(await ledger.size()).toBe(200);
      // Settling all winners concurrently keeps the invariant too.
      await Promise.all(pairs.flat().map((r) => (r.ok ? ledger.confirm(r.reservation) : null)));
      const thirdSteps = await Promise.all(keys.map((key) => ledger.reserve({ checks: [changeCheck(key)], duty: "deploy_change", sub: "alice", at: T0 + 1 })));
      expect(thirdSteps.filter((r) => r.ok).length).toBe(0);
    });

    test("reserve checks every constraint together: one conflict reserves nothing", async () => {
      const ledger = await open();
      const other = changeCheck("42", "separate:release.duty:7:1");
      await perform(ledger, "alice", "submit_change", "42", T0, other);
      const result = await ledger.reserve({ checks: [changeCheck("42"), other], duty: "approve_change", sub: "alice", at: T0 + 1 });
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.check.constraint).toBe("separate:release.duty:7:1");
      expect(await ledger.size()).toBe(1);
      expect(await ledger.lookup([changeCheck("42")], "alice")).toEqual([]);
    });

    test("confirm records every check's fact", async () => {
      const ledger = await open();
      const checks = [changeCheck("42"), changeCheck("42", "separate:release.duty:7:1")];
      await ledger.confirm(expectOk(await ledger.reserve({ checks, duty: "submit_change", sub: "alice", at: T0 })));
      expect((await ledger.lookup(checks, "alice")).map((f) => f.constraint)).toEqual(checks.map((c) => c.constraint));
    });

    test("prune removes entries older than the retention, confirmed or unsettled, and keeps younger ones", async () => {
      const ledger = await open();
      const now = T0 + 40 * DAY;
      await perform(ledger, "old", "submit_change", "1", now - 30 * DAY - 1);
      await perform(ledger, "fresh", "submit_change", "2", now - 30 * DAY);
      expectOk(await ledger.reserve({ checks: [changeCheck("3")], duty: "submit_change", sub: "unsettled-old", at: now - 30 * DAY - 1 }));
      expectOk(await ledger.reserve({ checks: [changeCheck("4")], duty: "submit_change", sub: "unsettled", at: now - 60_001 }));
      expect(await ledger.size()).toBe(4);
      expect(await ledger.prune(now)).toBe(2);
      expect(await ledger.size()).toBe(2);
      expect(await ledger.lookup([changeCheck("1")], "old")).toEqual([]);
      expect(await ledger.lookup([changeCheck("2")], "fresh")).toHaveLength(1);
      expect(await ledger.lookup([changeCheck("3")], "unsettled-old")).toEqual([]);
      expect(await ledger.lookup([changeCheck("4")], "unsettled")).toHaveLength(1);
      expect((await ledger.pending(now)).map((p) => p.sub)).toEqual(["unsettled"]);
      expect(await ledger.prune(now)).toBe(0);
    });

    test("infinite retention keeps confirmed entries and unsettled reservations", async () => {
      const ledger = await open({ retentionDays: Infinity, reservationTtlMs: 60_000 });
      await perform(ledger, "alice", "submit_change", "1", T0);
      expectOk(await ledger.reserve({ checks: [changeCheck("2")], duty: "submit_change", sub: "bob", at: T0 }));
      expect(await ledger.prune(T0 + 10_000 * DAY)).toBe(0);
      expect(await ledger.size()).toBe(2);
    });

    test("confirm of a reservation an operator already released still records the fact (the upstream did perform it)", async () => {
      const ledger = await open();
      const slow = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      await ledger.release(slow);
      expect(await ledger.size()).toBe(0);
      await ledger.confirm(slow);
      expect(await ledger.pending(T0 + 1)).toEqual([]);
      const next = await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 130_000 });
      expect(next.ok).toBe(false);
    });

    test("lookup and pending have no side effects; lookup sees unsettled reservations", async () => {
      const ledger = await open();
      expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      const facts = await ledger.lookup([changeCheck("42")], "alice");
      expect(facts).toEqual([{ constraint: CONSTRAINT, key: "42", duty: "submit_change", sub: "alice", at: T0 }]);
      expect(await ledger.pending(T0 + DAY)).toHaveLength(1);
      expect(await ledger.lookup([changeCheck("42")], "alice")).toEqual(facts);
      expect(await ledger.size()).toBe(1);
    });

    test("a request with no separations reserves nothing", async () => {
      const ledger = await open();
      const reservation = expectOk(await ledger.reserve({ checks: [], duty: "read_logs", sub: "alice", at: T0 }));
      await ledger.confirm(reservation);
      await ledger.release(reservation);
      expect(await ledger.size()).toBe(0);
    });

    test("a duty outside the constraint is a wiring mistake: LEDGER_DUTY_NOT_IN_CONSTRAINT", async () => {
      const ledger = await open();
      await expectCode(ledger.reserve({ checks: [changeCheck("42")], duty: "read_logs", sub: "alice", at: T0 }), "LEDGER_DUTY_NOT_IN_CONSTRAINT");
      expect(await ledger.size()).toBe(0);
    });

    test.each([
      ["retentionDays 0", { retentionDays: 0 }],
      ["retentionDays -1", { retentionDays: -1 }],
      ["retentionDays NaN", { retentionDays: Number.NaN }],
      ["reservationTtlMs 0", { retentionDays: 30, reservationTtlMs: 0 }],
      ["reservationTtlMs Infinity", { retentionDays: 30, reservationTtlMs: Infinity }],
    ] as Array<[string, LedgerOptions]>)("options with %s are refused with LEDGER_BAD_OPTIONS", async (_label, options) => {
      await expectCode(open(options), "LEDGER_BAD_OPTIONS");
    });

    test("every call after close fails with LEDGER_CLOSED; close is idempotent", async () => {
      const ledger = await harness.open(OPTIONS);
      const reservation = expectOk(await ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }));
      await ledger.close();
      await ledger.close();
      await expectCode(ledger.reserve({ checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: T0 }), "LEDGER_CLOSED");
      await expectCode(ledger.confirm(reservation), "LEDGER_CLOSED");
      await expectCode(ledger.release(reservation), "LEDGER_CLOSED");
      await expectCode(ledger.abandon(reservation), "LEDGER_CLOSED");
      await expectCode(ledger.lookup([changeCheck("42")], "alice"), "LEDGER_CLOSED");
      await expectCode(ledger.pending(T0), "LEDGER_CLOSED");
      await expectCode(ledger.prune(T0), "LEDGER_CLOSED");
      await expectCode(ledger.size(), "LEDGER_CLOSED");
    });

    const { reopen, crashWhileReserved } = harness;
    if (reopen) {
      test("a reopened ledger remembers confirmed facts, and a reservation left unsettled by a stop is of unknown outcome (restart)", async () => {
        const first = await harness.open(OPTIONS);
        await perform(first, "alice", "submit_change", "42");
        const cut = expectOk(await first.reserve({ checks: [changeCheck("43")], duty: "submit_change", sub: "alice", at: T0 }));
        const second = await reopen(first, OPTIONS);
        opened.push(second);
        expect(await second.size()).toBe(2);
        const denied = await second.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: T0 + 1 });
        expect(denied.ok).toBe(false);
        // The process that made it has ended: nobody will settle it, whatever its age.
        expect(await second.pending(T0 + 1)).toEqual([{ ...cut, state: "unknown" }]);
        for (const at of [T0 + 1, T0 + 60_001]) {
          expect((await second.reserve({ checks: [changeCheck("43")], duty: "approve_change", sub: "alice", at })).ok).toBe(false);
        }
      });
    }
    if (crashWhileReserved) {
      // Regression: kill -9 between forwarding and confirm; the restarted store let the person's
      // next duty through once the reservation was older than the TTL.
      test("a reservation of a process killed before settling is of unknown outcome at once and counts as performed until an operator settles it", async () => {
        const request: ReserveRequest = { checks: [changeCheck("42")], duty: "submit_change", sub: "alice", at: Date.now() };
        const ledger = await crashWhileReserved(request, OPTIONS);
        opened.push(ledger);
        const [left, ...others] = await ledger.pending(request.at + 1);
        expect(others).toEqual([]);
        expect(left).toMatchObject({ duty: "submit_change", sub: "alice", at: request.at, checks: [{ constraint: CONSTRAINT, key: "42" }], state: "unknown" });
        for (const at of [request.at + 1, request.at + OPTIONS.reservationTtlMs! + 1, request.at + 29 * DAY]) {
          expect((await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at })).ok).toBe(false);
        }
        await ledger.release(left!);
        expect((await ledger.reserve({ checks: [changeCheck("42")], duty: "approve_change", sub: "alice", at: request.at + 2 })).ok).toBe(true);
      });
    }
  });
}
