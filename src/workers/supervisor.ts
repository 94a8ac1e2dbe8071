// The supervisor of `listen.workers` > 1: starts N worker processes on one address, passes
// SIGHUP and shutdown to all, relays worker 0's admin questions (metrics, reload) to the others,
// restarts a worker that dies, and gives up (exit 8) when workers keep dying. It serves nothing
// itself: nothing a request does can crash it. See docs/architecture.md "Workers".
import { GatewayError } from "../errors.ts";
import type { Logger } from "../gateway/mod.ts";
import { SupervisorMetrics } from "../gateway/mod.ts";
import { foldCounters, mergeWorkerMetrics, type WorkerMetricsPart } from "./metrics.ts";
import { READINESS_ANSWER_MS, type SupervisorToWorker, type WorkerIdentity, type WorkerReadinessAnswer, type WorkerReloadResult, type WorkerToSupervisor } from "./protocol.ts";
import { spawnWorker as spawnWorkerProcess, type WorkerProcess } from "./spawn.ts";

/** When workers "keep dying": more than `maxRestarts` deaths within `windowMs`. */
export interface CrashLoopBound {
  maxRestarts: number;
  windowMs: number;
}

/** 5 deaths in 60 s: a worker that dies at once after each start reaches it within seconds (the backoff doubles from 100 ms). */
export const DEFAULT_CRASH_LOOP_BOUND: CrashLoopBound = { maxRestarts: 5, windowMs: 60_000 };

/**
 * A serving worker silent this long is stuck (its event loop blocked or the process stopped): it
 * still holds its share of the port, so the kernel keeps handing it new connections that hang.
 * It is killed and restarted like a worker that died. Every serving worker sends its metrics
 * once a second (METRICS_SNAPSHOT_MS); the longest legitimate block of a worker's loop (a SQLite
 * busy wait, 5 s) is far below this.
 */
export const STUCK_WORKER_MS = 30_000;

/** `[listen] worker_start_timeout`'s default, for a supervisor built in code. */
export const DEFAULT_WORKER_START_TIMEOUT_MS = 30_000;

/** How a supervisor ended: stopped on request, or gave up because its workers kept dying. */
export type SupervisorEnd = "stopped" | "crash-loop";

export interface SupervisorOptions {
  count: number;
  listenPort: number;
  adminPort: number | null;
  /** The words that start `gateway serve` for a worker (after the executable). */
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  log: Logger;
  /** Prints a banner line (stdout). */
  out(line: string): void;
  crashLoop?: CrashLoopBound;
  /** Longest a worker may take to stop after SIGTERM before it is killed (its drain and stop deadline, plus margin). */
  stopDeadlineMs?: number;
  /**
   * Longest a worker may take from its spawn to serving (`[listen] worker_start_timeout`). At the
   * first start, past it the start fails (`WORKER_START_TIMEOUT`); after a restart, the worker is
   * killed and counted as a death.
   */
  startTimeoutMs?: number;
  /** Tests start workers their own way; default: {@link spawnWorkerProcess}. */
  spawn?: (identity: WorkerIdentity) => Promise<WorkerProcess>;
}

export interface RunningSupervisor {
  /** The pids of the running workers, by worker id (null while one restarts). */
  pids(): Array<number | null>;
  /** Passes SIGHUP to every worker. */
  reload(): void;
  /** Stops every worker (SIGTERM: each drains and stops gracefully), then resolves `exited` with `stopped`. */
  stop(): Promise<void>;
  /** Resolves with how the supervisor ended (the command line turns it into exit 0 or 8). */
  readonly exited: Promise<SupervisorEnd>;
}

/** One worker's answer to a question the supervisor relays; null, with why, when there is none. */
interface Asked {
  worker: number;
  answer: WorkerToSupervisor | null;
  missing?: string;
}

interface Slot {
  id: number;
  process: WorkerProcess | null;
  ready: boolean;
  /** Started again after it died: its `ready` is logged as the restart. */
  restarted: boolean;
  /** A SIGHUP came while it was not serving: it gets one once it serves. */
  reloadPending: boolean;
  /** The latest metrics text of its running process (a scrape's answer or a snapshot). */
  lastMetrics: string | null;
  /** What its dead processes counted (their last texts' counters and histograms, summed). */
  retired: string;
  /** When its running process last sent anything (Date.now()). */
  lastHeard: number;
  /** Kills its restarted process if it does not serve in time; cleared once it serves or exits. */
  startDeadline: ReturnType<typeof setTimeout> | null;
}

/**
 * Starts `count` workers and resolves once every one serves (the banner of worker 0 printed).
 * Rejects with the first worker's exit code when one fails its start (a bad policy, a port in
 * use): a failed start is not retried, it fails closed as a single process would.
 */
export async function startSupervisor(options: SupervisorOptions): Promise<RunningSupervisor> {
  const { log, count } = options;
  const bound = options.crashLoop ?? DEFAULT_CRASH_LOOP_BOUND;
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_WORKER_START_TIMEOUT_MS;
  const slots: Slot[] = Array.from({ length: count }, (_, id) => ({ id, process: null, ready: false, restarted: false, reloadPending: false, lastMetrics: null, retired: "", lastHeard: 0, startDeadline: null }));
  const metrics = new SupervisorMetrics(count, () => slots.filter((s) => s.ready).length);
  const deaths: number[] = [];
  let stopping = false;
  let finish!: (end: SupervisorEnd) => void;
  const exited = new Promise<SupervisorEnd>((resolve) => (finish = resolve));
  let nextQuestion = 1;
  /** Questions asked and not answered yet: `settle` with the answer, or with null and why there is none. */
  const pending = new Map<number, { worker: number; settle: (answer: WorkerToSupervisor | null, missing?: string) => void }>();
  let banner: string[] | null = null;
  let startFailed: ((code: number) => void) | null = null;
  let allReady: (() => void) | null = null;

  const spawn = options.spawn ?? ((identity: WorkerIdentity) => spawnWorkerProcess({ identity, args: options.args, cwd: options.cwd, env: options.env }));

  /** Why a worker has no answer to give while it does not serve. */
  const notServing = (slot: Slot): string =>
    stopping ? "not serving: stopped" : slot.process === null ? "not serving: it died and is being restarted" : slot.restarted ? "not serving yet: restarting after it died" : "not serving yet: starting";

  /**
   * Asks every worker but `except` one question. A worker that is not serving (restarting,
   * starting) is not asked; one that does not answer within `timeoutMs`, or dies first, is left
   * out. Either way its `answer` is null and `missing` says why.
   */
  const askOthers = (except: number, question: (id: number) => SupervisorToWorker, timeoutMs = 4_000): Promise<Asked[]> =>
    Promise.all(slots.filter((s) => s.id !== except).map((slot) => new Promise<Asked>((resolve) => {
      const worker = slot.id;
      if (!slot.ready || slot.process === null) {
        resolve({ worker, answer: null, missing: notServing(slot) });
        return;
      }
      const id = nextQuestion++;
      const settle = (answer: WorkerToSupervisor | null, missing?: string) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve({ worker, answer, missing });
      };
      const timer = setTimeout(() => settle(null, `did not answer within ${timeoutMs} ms`), timeoutMs);
      pending.set(id, { worker, settle });
      if (!slot.process.send(question(id))) settle(null, "not serving: its channel is closed");
    })));

  const onMessage = (slot: Slot, message: WorkerToSupervisor) => {
    switch (message.type) {
      case "ready": {
        slot.ready = true;
        clearStartDeadline(slot);
        if (slot.restarted) log.info("worker restarted", { worker: slot.id, pid: slot.process?.pid });
        if (slot.reloadPending) {
          slot.reloadPending = false;
          slot.process?.kill("SIGHUP");
        }
        if (slot.id === 0 && banner === null) banner = message.banner;
        if (slots.every((s) => s.ready)) allReady?.();
        return;
      }
      case "metrics-snapshot":
        slot.lastMetrics = message.text;
        return;
      case "metrics":
        slot.lastMetrics = message.text;
        pending.get(message.id)?.settle(message);
        return;
      case "reloaded":
      case "readiness": {
        pending.get(message.id)?.settle(message);
        return;
      }
      case "collect-metrics": {
        slot.lastMetrics = message.own;
        void askOthers(slot.id, (id) => ({ type: "render-metrics", id })).then((answers) => {
          slot.process?.send({ type: "collected-metrics", id: message.id, text: mergedMetrics(new Set([slot.id, ...answers.flatMap((a) => (a.answer ? [a.worker] : []))])) });
        });
        return;
      }
      case "collect-readiness": {
        void askOthers(slot.id, (id) => ({ type: "check-readiness", id }), READINESS_ANSWER_MS).then((answers) => {
          const workers: WorkerReadinessAnswer[] = answers.map(({ worker, answer, missing }) => (answer?.type === "readiness" ? { worker, report: answer.report, digest: answer.digest } : { worker, report: null, reason: missing ?? "answered something else" }));
          slot.process?.send({ type: "collected-readiness", id: message.id, workers });
        });
        return;
      }
      case "reload-others": {
        log.info("admin reload: reloading the policy in every worker", { from_worker: slot.id });
        void askOthers(slot.id, (id) => ({ type: "reload", id })).then((answers) => {
          const results: WorkerReloadResult[] = answers.map(({ worker, answer }) => (answer?.type === "reloaded" ? answer.result : { worker, ok: false, code: "WORKER_UNAVAILABLE" }));
          slot.process?.send({ type: "reloaded-others", id: message.id, results });
        });
        return;
      }
    }
  };

  /**
   * Every worker's figures: the latest text of each running one (only its counters when it did
   * not answer this scrape: its gauges would be stale), plus what each one's dead processes
   * counted, so that a total never goes backwards when a worker restarts.
   */
  const mergedMetrics = (fresh: ReadonlySet<number>): string => {
    const parts: WorkerMetricsPart[] = [];
    for (const slot of slots) {
      if (slot.retired !== "") parts.push({ worker: slot.id, text: slot.retired, countersOnly: true });
      if (slot.lastMetrics !== null) parts.push({ worker: slot.id, text: slot.lastMetrics, countersOnly: !fresh.has(slot.id) });
    }
    return mergeWorkerMetrics(parts, metrics.render());
  };

  const clearStartDeadline = (slot: Slot) => {
    if (slot.startDeadline !== null) clearTimeout(slot.startDeadline);
    slot.startDeadline = null;
  };

  const start = async (slot: Slot): Promise<void> => {
    const identity: WorkerIdentity = { id: slot.id, count, listenPort: options.listenPort, adminPort: options.adminPort };
    const worker = await spawn(identity);
    slot.process = worker;
    slot.ready = false;
    // A message the channel still delivers after the process's exit is not the slot's successor's.
    slot.lastHeard = Date.now();
    worker.onMessage((m) => {
      if (slot.process !== worker) return;
      slot.lastHeard = Date.now();
      onMessage(slot, m);
    });
    void worker.exited.then((how) => onExit(slot, worker, how));
    // A restarted worker stuck in its start (a ledger that never answers) serves nothing and
    // would hold its slot forever: past the deadline it is killed, and its exit counts as a death.
    // The first start has one deadline for all workers (below).
    if (slot.restarted) {
      slot.startDeadline = setTimeout(() => {
        slot.startDeadline = null;
        if (stopping || slot.process !== worker || slot.ready) return;
        log.error("a worker did not start in time: killing it", { worker: slot.id, pid: worker.pid, timeout_ms: startTimeoutMs });
        worker.kill("SIGKILL");
      }, startTimeoutMs);
    }
  };

  const onExit = (slot: Slot, worker: WorkerProcess, how: { code: number | null; signal: NodeJS.Signals | null }) => {
    if (slot.process !== worker) return;
    clearStartDeadline(slot);
    const wasReady = slot.ready;
    slot.process = null;
    slot.ready = false;
    if (slot.lastMetrics !== null) {
      slot.retired = foldCounters([slot.retired, slot.lastMetrics]);
      slot.lastMetrics = null;
    }
    // Questions it will never answer are answered now, not at their timeout.
    for (const question of [...pending.values()]) if (question.worker === slot.id) question.settle(null, stopping ? "not serving: stopped" : "not serving: it died and is being restarted");
    // Stopping: whoever stops decides the exit code once every worker is gone.
    if (stopping) return;
    if (!wasReady && startFailed) {
      // A worker that cannot start (bad policy, address in use) fails the whole start, closed.
      log.error("a worker failed to start; stopping the others", { worker: slot.id, pid: worker.pid, code: how.code, signal: how.signal });
      startFailed(how.code && how.code !== 0 ? how.code : 6);
      return;
    }
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - bound.windowMs) deaths.shift();
    if (deaths.length > bound.maxRestarts) {
      log.error("workers keep dying: giving up", { worker: slot.id, deaths: deaths.length, window_ms: bound.windowMs, max_restarts: bound.maxRestarts });
      void stopAll().then(() => finish("crash-loop"));
      return;
    }
    // Back off as deaths pile up: 100 ms, 200 ms, … at most 5 s.
    const delay = Math.min(5_000, 100 * 2 ** (deaths.length - 1));
    log.error("a worker died; restarting it", { worker: slot.id, pid: worker.pid, code: how.code, signal: how.signal, restart_in_ms: delay });
    metrics.restarts.inc({ worker: String(slot.id) });
    slot.restarted = true;
    setTimeout(() => {
      if (stopping) return;
      void start(slot).catch((e) => {
        log.error("cannot restart a worker", { worker: slot.id, error: (e as Error).message });
        onExit(slot, worker, { code: 127, signal: null });
      });
    }, delay);
  };

  // A serving worker that stopped answering is killed; its exit then restarts it (and counts it).
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const slot of slots) {
      if (stopping || !slot.ready || slot.process === null || now - slot.lastHeard <= STUCK_WORKER_MS) continue;
      log.error("a worker stopped answering: killing it", { worker: slot.id, pid: slot.process.pid, silent_ms: now - slot.lastHeard });
      slot.process.kill("SIGKILL");
      slot.lastHeard = now;
    }
  }, 1_000);
  watchdog.unref?.();

  const stopAll = async (): Promise<void> => {
    stopping = true;
    clearInterval(watchdog);
    for (const slot of slots) clearStartDeadline(slot);
    const live = slots.filter((s) => s.process !== null).map((s) => s.process!);
    for (const w of live) w.kill("SIGTERM");
    const deadline = options.stopDeadlineMs ?? 60_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, deadline); });
    await Promise.race([Promise.all(live.map((w) => w.exited)), late]);
    clearTimeout(timer);
    for (const w of live) w.kill("SIGKILL");
    await Promise.all(live.map((w) => w.exited));
  };

  const started = new Promise<void>((resolve, reject) => {
    allReady = resolve;
    startFailed = (code) => reject(Object.assign(new Error(`a worker failed to start (exit ${code})`), { exitCode: code }));
  });
  // One deadline for the whole first start: the workers start side by side.
  let startTimer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    startTimer = setTimeout(() => {
      const waiting = slots.filter((s) => !s.ready);
      const names = waiting.map((s) => `${s.id}${s.process ? ` (pid ${s.process.pid})` : ""}`).join(", ");
      reject(new GatewayError("WORKER_START_TIMEOUT", `worker${waiting.length === 1 ? "" : "s"} ${names} did not serve within ${startTimeoutMs} ms of the start: every worker is stopped`, {
        workers: waiting.map((s) => s.id),
        help: "a worker's start waits on its files and the duty ledger (a network file system or PostgreSQL that does not answer); if starts are only slow, raise `[listen] worker_start_timeout`",
      }));
    }, startTimeoutMs);
  });
  try {
    const starting = (async () => {
      for (const slot of slots) await start(slot);
      await started;
    })();
    starting.catch(() => {}); // a failure after the deadline won is already handled
    await Promise.race([starting, late]);
  } catch (e) {
    if (e instanceof GatewayError && e.code === "WORKER_START_TIMEOUT") {
      // A worker stuck in its start may not act on SIGTERM (a stopped process never does): killed now.
      stopping = true;
      for (const slot of slots) {
        if (slot.ready || slot.process === null) continue;
        log.error("a worker did not start in time: killing it", { worker: slot.id, pid: slot.process.pid, timeout_ms: startTimeoutMs });
        slot.process.kill("SIGKILL");
      }
    }
    await stopAll();
    throw e;
  } finally {
    clearTimeout(startTimer);
    startFailed = null;
  }
  log.info("workers serving", { workers: count, pids: slots.map((s) => s.process?.pid ?? null) });
  // Printed once every worker serves: the banner promises the address answers.
  const lines = banner as string[] | null;
  if (lines) options.out(lines.join("\n"));

  let stopped: Promise<void> | null = null;
  return {
    pids: () => slots.map((s) => s.process?.pid ?? null),
    reload() {
      // A worker still starting has no SIGHUP handler yet, and SIGHUP's default is to end the
      // process: it gets its SIGHUP once it serves (a policy edit after it read the directory is
      // not lost; one before is a reload that changes nothing).
      for (const s of slots) {
        if (s.ready && s.process) s.process.kill("SIGHUP");
        else s.reloadPending = true;
      }
    },
    stop() {
      stopped ??= stopAll().then(() => finish("stopped"));
      return stopped;
    },
    exited,
  };
}
