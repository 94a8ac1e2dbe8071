// The readiness of a supervisor's workers, combined by the worker that answers the probe: ready
// only when every worker is; degraded (still 200) when any serves the last good bundle; each
// worker's line says why. The processes themselves are in test/e2e/workers.test.ts.
import { describe, expect, test } from "bun:test";
import type { ReadinessReport } from "../workers/mod.ts";
import { fleetReadiness } from "./admin.ts";

const READY: ReadinessReport = { status: "ready", ready: true, degraded: false, policy: true, bundle_expired: false, audit_writable: true, ledger_available: true, reasons: [], warnings: [] };
const DEGRADED: ReadinessReport = { ...READY, status: "degraded", degraded: true, warnings: ["serving the last good bundle from the state directory: the policy directory fails (POLICY_INVALID)"] };
const D = "a".repeat(64);
const NO_LEDGER: ReadinessReport = { ...READY, status: "unavailable", ready: false, ledger_available: false, reasons: ["the duty ledger is unavailable: connection refused"] };

describe("fleetReadiness", () => {
  test("every worker ready: ready, one line per worker, in worker order", () => {
    const r = fleetReadiness(0, { report: READY, digest: D }, [{ worker: 2, report: READY, digest: D }, { worker: 1, report: READY, digest: D }]);
    expect(r).toMatchObject({ status: "ready", ready: true, reasons: [], warnings: [] });
    expect(r.workers).toEqual([0, 1, 2].map((worker) => ({ worker, ready: true, status: "ready" })));
  });

  test("one worker degraded: still ready (it serves), degraded, the warning names the worker", () => {
    const r = fleetReadiness(0, { report: READY, digest: D }, [{ worker: 1, report: DEGRADED, digest: D }]);
    expect(r).toMatchObject({ status: "degraded", ready: true, degraded: true, reasons: [] });
    expect(r.warnings).toEqual([`worker 1: ${DEGRADED.warnings[0]}`]);
    expect(r.workers[1]).toEqual({ worker: 1, ready: true, status: "degraded", reason: DEGRADED.warnings[0] });
  });

  test("one worker not ready, another not serving: unavailable, each reason named, the flags cover the workers that answered", () => {
    const r = fleetReadiness(0, { report: READY, digest: D }, [{ worker: 1, report: NO_LEDGER, digest: D }, { worker: 2, report: null, reason: "not serving: it died and is being restarted" }]);
    expect(r).toMatchObject({ status: "unavailable", ready: false, ledger_available: false, policy: true, audit_writable: true });
    expect(r.reasons).toEqual(["worker 1: the duty ledger is unavailable: connection refused", "worker 2: not serving: it died and is being restarted"]);
    expect(r.workers).toEqual([
      { worker: 0, ready: true, status: "ready" },
      { worker: 1, ready: false, status: "unavailable", reason: "the duty ledger is unavailable: connection refused" },
      { worker: 2, ready: false, status: "not_serving", reason: "not serving: it died and is being restarted" },
    ]);
  });

  test("the answering worker itself not ready (draining): unavailable although the others are ready", () => {
    const draining: ReadinessReport = { ...READY, status: "unavailable", ready: false, reasons: ["the gateway is shutting down"] };
    const r = fleetReadiness(0, { report: draining, digest: D }, [{ worker: 1, report: READY, digest: D }]);
    expect(r).toMatchObject({ status: "unavailable", ready: false, reasons: ["worker 0: the gateway is shutting down"] });
  });

  test("workers serving different policies: still ready, degraded, one warning naming each worker's digest", () => {
    const other = "b".repeat(64);
    const r = fleetReadiness(0, { report: READY, digest: D }, [{ worker: 1, report: READY, digest: other }, { worker: 2, report: READY, digest: D }]);
    expect(r).toMatchObject({ status: "degraded", ready: true, degraded: true, reasons: [] });
    expect(r.warnings).toEqual([`the workers serve different policies (worker 0: ${D.slice(0, 12)}, worker 1: ${other.slice(0, 12)}, worker 2: ${D.slice(0, 12)}): a reload reached some of them only; reload again (SIGHUP or POST /-/policy/reload)`]);
    expect(r.workers.every((w) => w.ready && w.status === "ready")).toBe(true);
  });
});
