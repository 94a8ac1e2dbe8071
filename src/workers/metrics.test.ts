// One `/-/metrics` for all workers: counters and histograms summed, gauges per worker, shared
// figures once. The workers' texts are real renders of the gateway's Metrics.
import { describe, expect, test } from "bun:test";
import { Metrics } from "../gateway/metrics.ts";
import { foldCounters, mergeWorkerMetrics } from "./metrics.ts";

function workerMetrics(requests: number, revision: number): string {
  const m = new Metrics();
  for (let i = 0; i < requests; i++) {
    m.requests.inc({ channel: "operational", duty: "submit_change", decision: "allow", status: "200" });
    m.addedLatency.observe(0.002);
  }
  m.activeRevision.set(revision);
  return m.render();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("mergeWorkerMetrics", () => {
  const merged = mergeWorkerMetrics([{ worker: 1, text: workerMetrics(3, 7) }, { worker: 0, text: workerMetrics(5, 8) }], "# HELP dutygate_workers x\n# TYPE dutygate_workers gauge\ndutygate_workers 2\n");

  test("counters and histograms are the sum over the workers", () => {
    expect(sample(merged, 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}')).toBe(8);
    expect(sample(merged, "dutygate_request_duration_seconds_count")).toBe(8);
    expect(sample(merged, 'dutygate_request_duration_seconds_bucket{le="0.0025"}')).toBe(8);
  });

  test("gauges keep one series per worker; process CPU time too", () => {
    expect(sample(merged, 'dutygate_policy_revision{worker="0"}')).toBe(8);
    expect(sample(merged, 'dutygate_policy_revision{worker="1"}')).toBe(7);
    expect(sample(merged, "dutygate_policy_revision")).toBeUndefined();
    expect(sample(merged, 'process_cpu_seconds_total{worker="1"}')).toBeGreaterThan(0);
    expect(merged.split("\n").filter((l) => l.startsWith("process_resident_memory_bytes{worker=")).length).toBe(2);
  });

  test("what the workers share is given once, unlabelled; every family once; the supervisor's appended", () => {
    expect(merged.split("\n").filter((l) => l.startsWith("dutygate_build_info{")).length).toBe(1);
    expect(merged.split("\n").filter((l) => l === "# TYPE dutygate_requests_total counter").length).toBe(1);
    expect(merged.endsWith("dutygate_workers 2\n")).toBe(true);
  });
});

describe("counts of dead processes (a worker restarted)", () => {
  // Worker 1's first process counted 3 requests and died; its successor has counted 2 so far.
  const dead = workerMetrics(3, 7);
  const retired = foldCounters(["", dead]);

  test("foldCounters keeps counters and histograms, drops gauges, and sums process after process", () => {
    expect(sample(retired, 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}')).toBe(3);
    expect(sample(retired, "dutygate_request_duration_seconds_count")).toBe(3);
    expect(retired).not.toContain("dutygate_policy_revision");
    expect(retired).not.toContain("process_resident_memory_bytes");
    const twice = foldCounters([retired, workerMetrics(4, 7)]);
    expect(sample(twice, 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}')).toBe(7);
    expect(sample(twice, 'dutygate_request_duration_seconds_bucket{le="0.0025"}')).toBe(7);
    expect(foldCounters([])).toBe("");
  });

  test("merged with the live workers, the totals include what the dead process counted; its gauges do not appear", () => {
    const merged = mergeWorkerMetrics([
      { worker: 0, text: workerMetrics(5, 8) },
      { worker: 1, text: retired, countersOnly: true },
      { worker: 1, text: workerMetrics(2, 9) },
    ]);
    expect(sample(merged, 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}')).toBe(10);
    expect(sample(merged, "dutygate_request_duration_seconds_count")).toBe(10);
    expect(sample(merged, 'dutygate_policy_revision{worker="1"}')).toBe(9);
    // Worker 1's CPU time is its processes' together: the dead one's and its successor's.
    const cpuOf = (text: string) => sample(text, "process_cpu_seconds_total")!;
    expect(sample(merged, 'process_cpu_seconds_total{worker="1"}')).toBeGreaterThanOrEqual(cpuOf(retired));
    // The families keep a live worker's order, whichever part came first.
    const order = (text: string) => text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]);
    expect(order(merged)).toEqual(order(workerMetrics(1, 1)));
  });

  test("a worker that did not answer: its last counters count, its stale gauges are left out", () => {
    const merged = mergeWorkerMetrics([{ worker: 0, text: workerMetrics(5, 8) }, { worker: 1, text: workerMetrics(3, 7), countersOnly: true }]);
    expect(sample(merged, 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}')).toBe(8);
    expect(sample(merged, 'dutygate_policy_revision{worker="1"}')).toBeUndefined();
    expect(sample(merged, 'dutygate_policy_revision{worker="0"}')).toBe(8);
  });
});
