// One `/-/metrics` for all workers: each worker renders its own figures (Prometheus text), and
// the supervisor merges them. Counters and histograms are summed (requests, decisions, latencies:
// the gateway's totals); gauges are states of one process (its policy revision, its connections,
// its memory) and keep one series per worker under a `worker` label; a few figures of what all
// workers share (the ledger, the build) are taken once. Process CPU time is per worker too: an
// uneven spread over the cores is what it would show. The counts of a worker's dead processes
// stay in the sums (`countersOnly` parts, folded by `foldCounters`), so no total goes backwards
// when a worker restarts.

/** Figures of what the workers share: the same in each, so one worker's is the answer. */
const SHARED = new Set(["dutygate_ledger_entries", "dutygate_ledger_unknown_reservations", "dutygate_build_info"]);
/** Counters that are still per process. */
const PER_WORKER_COUNTERS = new Set(["process_cpu_seconds_total"]);

interface Family {
  name: string;
  help: string;
  type: string;
  /** Sample lines by series (name and label set), in first-seen order. */
  samples: Map<string, { name: string; labels: string; value: number }>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;

function parseText(text: string): Family[] {
  const families: Family[] = [];
  let current: Family | null = null;
  const helps = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) {
      const rest = line.slice(7);
      const space = rest.indexOf(" ");
      helps.set(rest.slice(0, space), rest.slice(space + 1));
    } else if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      current = { name: name!, help: helps.get(name!) ?? "", type: type ?? "untyped", samples: new Map() };
      families.push(current);
    } else if (current && line !== "") {
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const labels = m[2] ?? "";
      current.samples.set(`${m[1]}{${labels}}`, { name: m[1]!, labels, value: Number(m[3]) });
    }
  }
  return families;
}

/** Counters and histograms: figures that only grow within a process, and that a dead one leaves behind. */
const isCounting = (family: Family) => family.type === "counter" || family.type === "histogram";

function render(families: Iterable<Family>): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const s of family.samples.values()) lines.push(`${s.name}${s.labels === "" ? "" : `{${s.labels}}`} ${s.value}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The counters and histograms of several texts of one worker's processes, summed series by series;
 * gauges dropped. What a worker's dead processes counted, kept for the merged totals.
 *
 * @example
 * retired = foldCounters([retired, lastTextOfTheDeadProcess])
 */
export function foldCounters(texts: readonly string[]): string {
  const folded = new Map<string, Family>();
  for (const text of texts) {
    for (const family of parseText(text)) {
      if (!isCounting(family)) continue;
      let into = folded.get(family.name);
      if (!into) folded.set(family.name, (into = { ...family, samples: new Map() }));
      for (const [key, sample] of family.samples) {
        const seen = into.samples.get(key);
        if (seen) seen.value += sample.value;
        else into.samples.set(key, { ...sample });
      }
    }
  }
  return folded.size === 0 ? "" : render(folded.values());
}

/**
 * One worker's metrics text. `countersOnly`: only its counters and histograms count (the folded
 * counts of its dead processes, or the last text of one that did not answer this scrape: its
 * gauges would be stale).
 */
export interface WorkerMetricsPart {
  worker: number;
  text: string;
  countersOnly?: boolean;
}

function withWorker(labels: string, worker: number): string {
  return labels === "" ? `worker="${worker}"` : `worker="${worker}",${labels}`;
}

/**
 * Merges the metrics texts of several workers into one exposition (text format 0.0.4), each
 * family once, in the order the first worker lists them; `extra` (the supervisor's own
 * families) is appended as it is.
 *
 * @example
 * mergeWorkerMetrics([{ worker: 0, text: a }, { worker: 1, text: b }], supervisorText)
 */
export function mergeWorkerMetrics(parts: readonly WorkerMetricsPart[], extra = ""): string {
  const merged = new Map<string, Family>();
  // Full texts first, so the order of families is a live worker's.
  const ordered = [...parts].sort((a, b) => Number(a.countersOnly ?? false) - Number(b.countersOnly ?? false) || a.worker - b.worker);
  for (const { worker, text, countersOnly } of ordered) {
    for (const family of parseText(text)) {
      if (countersOnly && !isCounting(family)) continue;
      let into = merged.get(family.name);
      if (!into) merged.set(family.name, (into = { ...family, samples: new Map() }));
      const perWorker = !SHARED.has(family.name) && (family.type === "gauge" || PER_WORKER_COUNTERS.has(family.name));
      for (const sample of family.samples.values()) {
        if (perWorker) {
          // A worker's own series, summed only with what its dead processes counted.
          const labels = withWorker(sample.labels, worker);
          const key = `${sample.name}{${labels}}`;
          const seen = into.samples.get(key);
          if (seen) seen.value += sample.value;
          else into.samples.set(key, { name: sample.name, labels, value: sample.value });
          continue;
        }
        const key = `${sample.name}{${sample.labels}}`;
        const seen = into.samples.get(key);
        if (!seen) into.samples.set(key, { ...sample });
        else if (!SHARED.has(family.name)) seen.value += sample.value;
      }
    }
  }
  return render(merged.values()) + extra;
}
