// Latency and throughput measurement shared by every engine of the peer benchmark, on Bun and Node.

/** A monotonic clock in nanoseconds: Bun.nanoseconds() under Bun, process.hrtime.bigint() elsewhere. */
export const nowNs: () => number = typeof Bun !== "undefined" ? () => Bun.nanoseconds() : () => Number(process.hrtime.bigint());
export const clockName = typeof Bun !== "undefined" ? "Bun.nanoseconds()" : "process.hrtime.bigint()";

/** Per-decision statistics in nanoseconds, and throughput in decisions per second. */
export interface LatencyStats {
  p50: number;
  p99: number;
  mean: number;
  perSecond: number;
  /** Process CPU time (user + system) per decision in the throughput passes, ns: less sensitive than
   * wall time to other processes on a shared machine (time spent descheduled is not counted). */
  cpuPerDecision: number;
  /** Decisions timed for p50/p99/mean. */
  timed: number;
}

export interface MeasureOptions {
  /** Number of tuples to rotate through. */
  tuples: number;
  /** Consecutive decisions per timed sample. */
  batch: number;
  /** Wall-clock budget per engine for the latency samples and for throughput (each), ns. */
  budgetNs: number;
  /** Bounds on the number of samples. */
  minSamples: number;
  maxSamples: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/**
 * Warms `decide` up, then times samples of `batch` consecutive decisions (different tuples, in a
 * fixed rotation) with the clock around each batch: one sample = batch time / batch. The number
 * of samples fits the budget, estimated from the warm-up. Throughput is a separate untimed-inside
 * loop over whole passes of the tuples.
 */
export function measureEngine(decide: (i: number) => boolean, o: MeasureOptions): LatencyStats {
  let sink = 0;
  // Warm-up: one pass (at least 20,000 calls, at most the budget) so the JIT has settled.
  const warmStart = nowNs();
  let w = 0;
  for (; w < Math.max(o.tuples, 20_000); w++) {
    sink += decide(w % o.tuples) ? 1 : 0;
    if ((w & 63) === 0 && nowNs() - warmStart > o.budgetNs) break;
  }
  const estimate = (nowNs() - warmStart) / Math.max(1, w);
  const samples = Math.max(o.minSamples, Math.min(o.maxSamples, Math.floor(o.budgetNs / (estimate * o.batch))));
  const out = new Float64Array(samples);
  let i = 0;
  for (let s = 0; s < samples; s++) {
    const t0 = nowNs();
    for (let b = 0; b < o.batch; b++) {
      sink += decide(i) ? 1 : 0;
      i = i + 1 === o.tuples ? 0 : i + 1;
    }
    out[s] = (nowNs() - t0) / o.batch;
  }
  out.sort();
  let total = 0;
  for (const v of out) total += v;
  // Throughput: whole passes over the tuples (or slices of one pass for slow engines).
  const chunk = Math.min(o.tuples, Math.max(100, Math.floor(o.budgetNs / estimate / 4)));
  let decided = 0;
  const cpuStart = process.cpuUsage();
  const tStart = nowNs();
  let elapsed = 0;
  for (let pass = 0; pass < 1000 && (pass === 0 || elapsed < o.budgetNs); pass++) {
    for (let k = 0; k < chunk; k++) sink += decide(k) ? 1 : 0;
    decided += chunk;
    elapsed = nowNs() - tStart;
  }
  const cpu = process.cpuUsage(cpuStart);
  if (sink < 0) console.log(sink); // keeps the work observable
  return {
    p50: percentile(out, 0.5), p99: percentile(out, 0.99), mean: total / samples, perSecond: (decided * 1e9) / elapsed,
    cpuPerDecision: ((cpu.user + cpu.system) * 1000) / decided, timed: samples * o.batch,
  };
}

/** Median cost of one clock read pair (what a batch's time includes on top of the decisions). */
export function clockOverheadNs(): number {
  const out = new Float64Array(10_000);
  for (let s = 0; s < out.length; s++) { const t0 = nowNs(); out[s] = nowNs() - t0; }
  out.sort();
  return percentile(out, 0.5);
}

/** `812 ns`, `3.41 µs`, `41 µs`, `1.20 ms`. */
export function formatNs(ns: number): string {
  if (ns >= 1_000_000) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 10_000) return `${(ns / 1000).toFixed(0)} µs`;
  if (ns >= 1000) return `${(ns / 1000).toFixed(2)} µs`;
  return `${ns.toFixed(0)} ns`;
}

/** `12.3 M/s`, `45.6 k/s`. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k/s`;
  return `${perSecond.toFixed(0)} /s`;
}
