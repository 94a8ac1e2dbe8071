// One `/-/metrics` for all workers: each worker renders its own figures (Prometheus text), and
// worker 0 merges them. Counters and histograms are summed (requests, decisions, latencies: the
// gateway's totals); gauges are states of one process (its policy revision, its connections,
// its memory) and keep one series per worker under a `worker` label; a few figures of what all
// workers share (the ledger, the build) are taken once. Process CPU time is per worker too: an
// uneven spread over the cores is what it would show.

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
export function mergeWorkerMetrics(parts: ReadonlyArray<{ worker: number; text: string }>, extra = ""): string {
  const merged = new Map<string, Family>();
  for (const { worker, text } of [...parts].sort((a, b) => a.worker - b.worker)) {
    for (const family of parseText(text)) {
      let into = merged.get(family.name);
      if (!into) merged.set(family.name, (into = { ...family, samples: new Map() }));
      const perWorker = !SHARED.has(family.name) && (family.type === "gauge" || PER_WORKER_COUNTERS.has(family.name));
      for (const sample of family.samples.values()) {
        if (perWorker) {
          const labels = withWorker(sample.labels, worker);
          into.samples.set(`${sample.name}{${labels}}`, { name: sample.name, labels, value: sample.value });
          continue;
        }
        const key = `${sample.name}{${sample.labels}}`;
        const seen = into.samples.get(key);
        if (!seen) into.samples.set(key, { ...sample });
        else if (!SHARED.has(family.name)) seen.value += sample.value;
      }
    }
  }
  const lines: string[] = [];
  for (const family of merged.values()) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const s of family.samples.values()) lines.push(`${s.name}${s.labels === "" ? "" : `{${s.labels}}`} ${s.value}`);
  }
  return lines.join("\n") + "\n" + extra;
}
