// Prometheus metrics in the text exposition format (version 0.0.4), written directly: a few
// counters and histograms do not need a client library, and this keeps the binary small.
// https://prometheus.io/docs/instrumenting/exposition_formats/
import { readdirSync } from "node:fs";
import { COMMIT, VERSION } from "../version.ts";

type Labels = Readonly<Record<string, string>>;

const NEEDS_ESCAPE = /[\\\n"]/;
const escapeLabel = (v: string) => (NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"') : v);

/**
 * The series key of a label set, in the labels' own order: the exposition format does not
 * require sorted labels, and every call site of a metric passes its labels in one fixed order,
 * so no sort is needed on the request path.
 */
function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  let out = "";
  for (const k in labels) out += (out ? "," : "") + k + '="' + escapeLabel(labels[k]!) + '"';
  return out;
}

export interface Metric {
  render(): string[];
}

/** Options of a counter: the names of its labels, or a function that reads its series at each scrape. */
export interface CounterOptions {
  /**
   * The counter's label names. A labelled counter with no series yet renders no sample: an
   * unlabelled `0` would be a series of its own that vanishes at the first increment.
   */
  labels?: readonly string[];
  /** Read at every scrape, for a count another part of the gateway owns (one source per number). */
  collect?: () => ReadonlyArray<readonly [Labels, number]>;
}

/** One series of a counter: its rendered label set and its value. */
interface Series {
  readonly key: string;
  value: number;
}

export class Counter implements Metric {
  // Series by rendered label set (what /-/metrics prints), and the same series by the raw
  // labels (names and values joined, unescaped): the request path finds its series without
  // escaping, and the escaped label set is built once per new series, not per increment.
  readonly #series = new Map<string, Series>();
  // The request path finds its series through nested maps keyed by label name, then value:
  // no string is built or escaped per increment; the escaped label set is made once per series.
  readonly #tree: Map<string, unknown> = new Map();
  #unlabelled: Series | null = null;
  constructor(readonly name: string, readonly help: string, readonly options: CounterOptions = {}) {}
  /** Creates the series at 0, so it exists (and `rate()` sees its first increase) before any event. */
  declare(labels: Labels): void {
    this.inc(labels, 0);
  }
  inc(labels?: Labels, by = 1): void {
    let node = this.#tree;
    let series: Series | undefined;
    if (labels) {
      for (const k in labels) {
        let byName = node.get(k) as Map<string, unknown> | undefined;
        if (byName === undefined) node.set(k, (byName = new Map()));
        const v = labels[k]!;
        let next = byName.get(v) as Map<string, unknown> | undefined;
        if (next === undefined) byName.set(v, (next = new Map()));
        node = next;
      }
      series = node.get("") as Series | undefined;
    } else series = this.#unlabelled ?? undefined;
    if (series === undefined) {
      const key = labelKey(labels);
      series = this.#series.get(key);
      if (series === undefined) this.#series.set(key, (series = { key, value: 0 }));
      if (labels) node.set("", series);
      else this.#unlabelled = series;
    }
    series.value += by;
  }
  get(labels?: Labels): number {
    const key = labelKey(labels);
    const collected = this.options.collect?.().find(([l]) => labelKey(l) === key);
    if (collected) return collected[1];
    return this.#series.get(key)?.value ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.options.collect) {
      for (const [labels, value] of this.options.collect()) lines.push(`${this.name}{${labelKey(labels)}} ${value}`);
      return lines;
    }
    if (this.#series.size === 0 && !this.options.labels?.length) lines.push(`${this.name} 0`);
    for (const { key, value } of this.#series.values()) lines.push(`${this.name}${key ? `{${key}}` : ""} ${value}`);
    return lines;
  }
}

export class Gauge implements Metric {
  readonly #values = new Map<string, number>();
  /** `collect`: read at every scrape, one value, or one value per label set. */
  constructor(readonly name: string, readonly help: string, readonly collect?: () => number | ReadonlyArray<readonly [Labels, number]>) {}
  set(value: number, labels?: Labels): void {
    this.#values.set(labelKey(labels), value);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const collected = this.collect?.();
    if (typeof collected === "number") lines.push(`${this.name} ${collected}`);
    else if (collected !== undefined) for (const [labels, v] of collected) lines.push(`${this.name}{${labelKey(labels)}} ${v}`);
    else for (const [k, v] of this.#values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines;
  }
}

export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = new Array<number>(buckets.length).fill(0);
  }
  observe(seconds: number): void {
    this.#sum += seconds;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) { this.#counts[i]!++; break; }
  }
  get count(): number {
    return this.#count;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.#counts[i]!;
      lines.push(`${this.name}_bucket{le="${this.buckets[i]}"} ${cumulative}`);
    }
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`, `${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines;
  }
}

/** A histogram per label set (one label set per call site, as with {@link Counter}). */
export class HistogramVec implements Metric {
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {}
  observe(labels: Labels, seconds: number): void {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (!series) this.#series.set(key, (series = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 }));
    series.sum += seconds;
    series.count++;
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) { series.counts[i]!++; break; }
  }
  count(labels: Labels): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, { counts, sum, count }] of this.#series) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += counts[i]!;
        lines.push(`${this.name}_bucket{${key},le="${this.buckets[i]}"} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket{${key},le="+Inf"} ${count}`, `${this.name}_sum{${key}} ${sum}`, `${this.name}_count{${key}} ${count}`);
    }
    return lines;
  }
}

const FAST = [0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005];
const LEDGER = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const SLOW = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric the gateway exposes on the admin listener's `/metrics`. */
export class Metrics {
  readonly requests = new Counter("dutygate_requests_total", "Requests answered, by channel, duty, decision and HTTP status.", { labels: ["channel", "duty", "decision", "status"] });
  readonly decisions = new Counter("dutygate_decisions_total", "Policy decisions, by channel, duty, decision and reason code.", { labels: ["channel", "duty", "decision", "code"] });
  readonly decisionLatency = new Histogram("dutygate_decision_duration_seconds", "Time spent evaluating the policy (routing and decision tree).", FAST);
  readonly addedLatency = new Histogram("dutygate_request_duration_seconds", "Time from request received to response headers, upstream included.", SLOW);
  readonly authnFailures = new Counter("dutygate_authn_failures_total", "Authentication failures by error code.", { labels: ["code"] });
  /** Replaced by `startGateway` with one that reads the policy manager's counts, which `/-/policy` shows too. */
  reloads: Counter = new Counter("dutygate_policy_reloads_total", "Policy reloads by result (ok, failed).", { labels: ["result"] });
  readonly activeRevision = new Gauge("dutygate_policy_revision", "Revision of the active policy bundle (0 when unsigned).");
  readonly auditRecords = new Counter("dutygate_audit_records_total", "Audit records written.");
  readonly auditFailures = new Counter("dutygate_audit_write_failures_total", "Audit records that could not be written.");
  readonly auditWriteLatency = new Histogram("dutygate_audit_write_duration_seconds", "Time to hand an audit record to the OS (and fsync, per setting).", SLOW);
  /** `startGateway` declares a series per configured upstream, so each exists at 0 from the start. */
  readonly upstreamErrors = new Counter("dutygate_upstream_errors_total", "Upstream failures (unreachable, timeout) by upstream.", { labels: ["upstream"] });
  readonly buildInfo = new Gauge("dutygate_build_info", "Always 1: the gateway's version, the commit it was built from, and the runtime running it.", () => [[buildLabels(), 1]]);
  /** Prometheus' standard process metrics (`process_*`), read at every scrape. */
  readonly process: readonly Metric[] = processMetrics();
  ledgerSize: Gauge = new Gauge("dutygate_ledger_entries", "Entries in the duty ledger.");
  readonly ledgerLatency = new HistogramVec("dutygate_ledger_duration_seconds", "Duty ledger calls of requests, by operation (reserve, confirm, release, abandon, lookup), failed ones included.", LEDGER);
  readonly ledgerErrors = new Counter("dutygate_ledger_errors_total", "Duty ledger calls that failed, by operation and error code.", { labels: ["op", "code"] });
  ledgerAvailable: Gauge = new Gauge("dutygate_ledger_available", "1 while the duty ledger answers, 0 while it is unavailable (guarded duties get 503).");
  ledgerUnknownReservations: Gauge = new Gauge("dutygate_ledger_unknown_reservations", "Duty-ledger reservations of unknown outcome, counted as performed until an operator settles them.");
  policyExpiry: Gauge = new Gauge("dutygate_policy_expiry_timestamp_seconds", "Unix time at which the active policy bundle expires (no sample when it never does).");
  policyDegraded: Gauge = new Gauge("dutygate_policy_degraded", "1 while the gateway serves the last good bundle from its state directory because the policy directory fails, else 0.");
  upstreamConnections: Gauge = new Gauge("dutygate_upstream_connections", "Connections the HTTP/1.1 upstream client holds, by upstream and state (idle, busy).");
  upstreamWaiting: Gauge = new Gauge("dutygate_upstream_waiting_requests", "Requests waiting for an upstream connection (the client is at its cap), by upstream.");

  render(): string {
    const all: Metric[] = [this.requests, this.decisions, this.decisionLatency, this.addedLatency, this.authnFailures, this.reloads, this.activeRevision, this.policyExpiry, this.policyDegraded, this.auditRecords, this.auditFailures, this.auditWriteLatency, this.upstreamErrors, this.upstreamConnections, this.upstreamWaiting, this.ledgerSize, this.ledgerUnknownReservations, this.ledgerAvailable, this.ledgerLatency, this.ledgerErrors];
    return [...all, this.buildInfo, ...this.process].flatMap((m) => m.render()).join("\n") + "\n";
  }
}

/**
 * The supervisor's own figures (`listen.workers` above 1), appended to worker 0's scrape: workers
 * serving, and restarts per worker (each series at 0 from the start, so `increase()` sees the first).
 */
export class SupervisorMetrics {
  readonly restarts = new Counter("dutygate_worker_restarts_total", "Worker processes restarted by the supervisor after they died, by worker.", { labels: ["worker"] });
  readonly workers: Gauge;
  constructor(count: number, serving: () => number) {
    for (let id = 0; id < count; id++) this.restarts.declare({ worker: String(id) });
    this.workers = new Gauge("dutygate_workers", "Worker processes serving (`listen.workers` when all are up; fewer while one restarts).", serving);
  }
  render(): string {
    return [...this.restarts.render(), ...this.workers.render()].join("\n") + "\n";
  }
}

/** The runtime as `name/version` (`bun/1.4.5`, `deno/2.1.0`, `node/20.19.0`): one binary, but which engine runs it matters. */
export function runtimeName(): string {
  const v = process.versions as Record<string, string | undefined>;
  return v.bun ? `bun/${v.bun}` : v.deno ? `deno/${v.deno}` : `node/${v.node}`;
}

function buildLabels(): Labels {
  return { version: VERSION, commit: COMMIT, runtime: runtimeName() };
}

/** Open file descriptors, from `/proc/self/fd` (Linux); null where there is no such directory. */
function openFileDescriptors(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

/**
 * The process metrics every Prometheus client library exports, under their standard names
 * (https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics), so the usual
 * dashboards and alerts work unchanged.
 */
function processMetrics(): Metric[] {
  // The process start, not the gateway's: the time origin is when the runtime started this process.
  const startSeconds = Math.floor(performance.timeOrigin / 1000);
  const cpu: Metric = {
    render() {
      const { user, system } = process.cpuUsage();
      return ["# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.", "# TYPE process_cpu_seconds_total counter", `process_cpu_seconds_total ${(user + system) / 1e6}`];
    },
  };
  const fds: Metric = {
    render() {
      const open = openFileDescriptors();
      return ["# HELP process_open_fds Number of open file descriptors.", "# TYPE process_open_fds gauge", ...(open === null ? [] : [`process_open_fds ${open}`])];
    },
  };
  return [
    cpu,
    new Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", () => process.memoryUsage().rss),
    new Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", () => startSeconds),
    fds,
  ];
}
