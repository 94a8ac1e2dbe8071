import { describe, expect, test } from "bun:test";
import { Counter, Gauge, Histogram, Metrics } from "./metrics.ts";

describe("Prometheus text exposition", () => {
  test("one series per label set; values escaped per the format", () => {
    const c = new Counter("dutygate_test_total", "A test counter.");
    c.inc({ channel: "operational", duty: "a" });
    c.inc({ channel: "operational", duty: "a" }, 2);
    c.inc({ channel: "admin", duty: 'q"u\\o\nte' });
    expect(c.get({ channel: "operational", duty: "a" })).toBe(3);
    expect(c.render()).toEqual([
      "# HELP dutygate_test_total A test counter.",
      "# TYPE dutygate_test_total counter",
      'dutygate_test_total{channel="operational",duty="a"} 3',
      'dutygate_test_total{channel="admin",duty="q\\"u\\\\o\\nte"} 1',
    ]);
  });

  test("an unlabelled counter renders 0 before its first increment", () => {
    expect(new Counter("dutygate_empty_total", "Empty.").render().at(-1)).toBe("dutygate_empty_total 0");
  });

  test("a labelled counter renders no sample before its first series; a declared series is 0 from the start", () => {
    const c = new Counter("dutygate_failures_total", "Failures by upstream.", { labels: ["upstream"] });
    expect(c.render()).toEqual(["# HELP dutygate_failures_total Failures by upstream.", "# TYPE dutygate_failures_total counter"]);
    c.declare({ upstream: "changes" });
    c.inc({ upstream: "deploy" });
    expect(c.render().slice(2)).toEqual(['dutygate_failures_total{upstream="changes"} 0', 'dutygate_failures_total{upstream="deploy"} 1']);
  });

  test("a collected counter reads its values at every scrape (one source for the number)", () => {
    const owner = { ok: 1, failed: 0 };
    const c = new Counter("dutygate_reloads_total", "Reloads.", { collect: () => [[{ result: "ok" }, owner.ok], [{ result: "failed" }, owner.failed]] });
    owner.ok = 34;
    expect(c.render().slice(2)).toEqual(['dutygate_reloads_total{result="ok"} 34', 'dutygate_reloads_total{result="failed"} 0']);
    expect(c.get({ result: "ok" })).toBe(34);
  });

  test("Metrics renders the standard process metrics and dutygate_build_info", () => {
    const text = new Metrics().render();
    for (const line of ["# TYPE process_cpu_seconds_total counter", "# TYPE process_resident_memory_bytes gauge", "# TYPE process_start_time_seconds gauge", "# TYPE process_open_fds gauge"]) expect(text).toContain(line);
    expect(text).toMatch(/^dutygate_build_info\{version="[^"]+",commit="[^"]+",runtime="bun\/[^"]+"\} 1$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
  });

  test("histogram buckets are cumulative and end with +Inf, _sum and _count", () => {
    const h = new Histogram("dutygate_test_seconds", "A test histogram.", [0.001, 0.01]);
    for (const v of [0.0005, 0.005, 0.5]) h.observe(v);
    expect(h.render().slice(2)).toEqual([
      'dutygate_test_seconds_bucket{le="0.001"} 1',
      'dutygate_test_seconds_bucket{le="0.01"} 2',
      'dutygate_test_seconds_bucket{le="+Inf"} 3',
      "dutygate_test_seconds_sum 0.5055",
      "dutygate_test_seconds_count 3",
    ]);
  });

  test("a gauge collected per label set renders one series each, read at every scrape", () => {
    let open = 2;
    const g = new Gauge("dutygate_test_connections", "A test gauge.", () => [[{ upstream: "a", state: "idle" }, open], [{ upstream: "b", state: "busy" }, 0]]);
    expect(g.render().slice(2)).toEqual(['dutygate_test_connections{upstream="a",state="idle"} 2', 'dutygate_test_connections{upstream="b",state="busy"} 0']);
    open = 5;
    expect(g.render()[2]).toBe('dutygate_test_connections{upstream="a",state="idle"} 5');
  });
});
