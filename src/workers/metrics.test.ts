// One `/-/metrics` for all workers: counters and histograms summed, gauges per worker, shared
// figures once. The workers' texts are real renders of the gateway's Metrics.
import { describe, expect, test } from "bun:test";
import { Metrics } from "../gateway/metrics.ts";
import { mergeWorkerMetrics } from "./metrics.ts";

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
