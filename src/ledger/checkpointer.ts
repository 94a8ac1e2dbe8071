// Where the SQLite ledger's WAL checkpoints run. A checkpoint copies the WAL into the database
// file and waits for two fsyncs: on a shared disk up to hundreds of milliseconds. On the event
// loop every request arriving meanwhile waits with it, so they run on a thread of their own
// (checkpoint-worker.ts, with its own connection to the file). When that thread cannot start,
// or ends, they run on a timer of the event loop as before, and the ledger says why once.
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { SqlDatabase } from "./sqlite-driver.ts";

/** The one message to the checkpoint thread. */
export type CheckpointerRequest = { type: "start"; path: string; everyMs: number; state: Int32Array };
/** Messages from the checkpoint thread. */
export type CheckpointerReply = { type: "ready" } | { type: "failed"; reason: string } | { type: "stopped" };

/** The slots of the state shared with the thread (an Int32Array on a SharedArrayBuffer). */
export const CHECKPOINT_STATE = {
  /** Bumped (and notified) to wake the thread. */
  wake: 0,
  /** 1 once the thread is to close its connection and end. */
  stop: 1,
} as const;


/**
 * How long the thread may take to open its connection (under `deno test` that includes
 * type-checking its modules: seconds on a loaded machine), and to finish its last checkpoint at a stop.
 */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5000;

/**
 * The checkpoint thread's entry. In the compiled binary every bundled module's `import.meta.url`
 * is the executable's (`file:///$bunfs/root/<name>`), and the worker, an entrypoint of its own
 * (scripts/build.ts, built with `--root src`), keeps its path under src/ with a `.js` name.
 */
export function checkpointWorkerUrl(): URL {
  if (import.meta.url.startsWith("file:///$bunfs/")) return new URL("file:///$bunfs/root/ledger/checkpoint-worker.js");
  return new URL("./checkpoint-worker.ts", import.meta.url);
}

/** The WAL checkpoints of one ledger file, every `everyMs`, PASSIVE. */
export class WalCheckpointer {
  readonly #db: SqlDatabase;
  readonly #everyMs: number;
  readonly #onFallback: (reason: string) => void;
  #worker: Worker | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly #state = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  private constructor(db: SqlDatabase, everyMs: number, onFallback: (reason: string) => void) {
    this.#db = db;
    this.#everyMs = everyMs;
    this.#onFallback = onFallback;
  }

  /**
   * Starts the checkpoints of the file `path` (open in `db`): on a thread when one starts within
   * {@link START_TIMEOUT_MS}, otherwise on the event loop, after telling `onFallback` why. Called
   * at most once more, when a running thread ends. Never throws.
   */
  static async start(options: { db: SqlDatabase; path: string; everyMs: number; workerUrl?: URL; onFallback: (reason: string) => void }): Promise<WalCheckpointer> {
    const checkpointer = new WalCheckpointer(options.db, options.everyMs, options.onFallback);
    try {
      await checkpointer.#startThread(options.workerUrl ?? checkpointWorkerUrl(), options.path);
    } catch (error) {
      checkpointer.#fallBack(`the checkpoint thread could not start: ${messageOf(error)}`);
    }
    return checkpointer;
  }

  /** Where the checkpoints run now. */
  get on(): "thread" | "event loop" | "stopped" {
    if (this.#stopped) return "stopped";
    return this.#worker ? "thread" : "event loop";
  }

  /** Stops the checkpoints; with a thread, waits (bounded) for it to close its connection and end. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    const worker = this.#worker;
    if (!worker) return;
    const stopped = new Promise<void>((resolve) => worker.on("message", (m: CheckpointerReply) => { if (m.type === "stopped") resolve(); }));
    Atomics.store(this.#state, CHECKPOINT_STATE.stop, 1);
    Atomics.add(this.#state, CHECKPOINT_STATE.wake, 1);
    Atomics.notify(this.#state, CHECKPOINT_STATE.wake);
    // A checkpoint in progress finishes first (its fsync cannot be interrupted), then the thread
    // closes its connection. Past the bound it is terminated all the same: whatever it still does
    // cannot harm the file.
    await within(stopped, STOP_TIMEOUT_MS);
    terminate(worker);
    await within(this.#exited, STOP_TIMEOUT_MS);
    this.#worker = undefined;
  }

  #startThread(url: URL, path: string): Promise<void> {
    // A path, which every runtime's node:worker_threads takes (and a URL object of another
    // runtime's typings does not type-check).
    const worker = new Worker(fileURLToPath(url.href));
    // Never what keeps a process running: the ledger's close() ends it.
    worker.unref();
    this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    return new Promise((resolve, reject) => {
      let running = false;
      let ended = false;
      const timeout = setTimeout(() => failed(new Error(`no answer within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const failed = (error: Error) => {
        clearTimeout(timeout);
        if (ended || this.#stopped) return;
        ended = true;
        terminate(worker);
        if (!running) {
          reject(error);
          return;
        }
        this.#worker = undefined;
        this.#fallBack(`the checkpoint thread ended: ${error.message}`);
      };
      worker.on("error", failed);
      worker.on("exit", (code) => failed(new Error(`it exited with code ${code}`)));
      worker.on("message", (message: CheckpointerReply) => {
        if (message.type === "failed") failed(new Error(message.reason));
        else if (message.type === "ready" && !running) {
          running = true;
          clearTimeout(timeout);
          this.#worker = worker;
          resolve();
        }
      });
      worker.postMessage({ type: "start", path, everyMs: this.#everyMs, state: this.#state } satisfies CheckpointerRequest);
    });
  }

  /** The checkpoints on the event loop, on the ledger's own connection. */
  #fallBack(reason: string): void {
    if (this.#stopped) return;
    try { this.#onFallback(reason); } catch { /* a failing log must not stop the checkpoints */ }
    const checkpoint = this.#db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    // PASSIVE never waits for other connections; what it cannot copy now, the next tick does.
    this.#timer = setInterval(() => {
      try { checkpoint.get(); } catch { /* busy or closing: the next tick retries */ }
    }, this.#everyMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }
}

/** Ends the thread; it may have ended already. */
function terminate(worker: Worker): void {
  worker.terminate().catch(() => { /* already gone */ });
}

/** Whether `promise` settled within `ms`. */
async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
