// One entry point for starting a worker process; the implementation is chosen by runtime (as
// src/tls/listener.ts chooses a listener backend). A worker is the same `gateway serve` command,
// run again with `DUTYGATE_WORKER` set and an IPC channel to the supervisor.
import { GatewayError } from "../errors.ts";
import type { SupervisorToWorker, WorkerIdentity, WorkerToSupervisor } from "./protocol.ts";

/** A running worker process, as the supervisor sees it. */
export interface WorkerProcess {
  readonly pid: number;
  /** Sends a message over the IPC channel; false when the channel is closed (the worker is going). */
  send(message: SupervisorToWorker): boolean;
  onMessage(handler: (message: WorkerToSupervisor) => void): void;
  /** Sends a signal; a worker already gone is not an error. */
  kill(signal: NodeJS.Signals): void;
  /** Resolves once the process exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of {@link spawnWorker}. */
export interface SpawnWorkerOptions {
  identity: WorkerIdentity;
  /** The words after the executable that start `gateway serve` (`serve --config FILE`). */
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
}

const bunMain = (globalThis as { Bun?: { main?: string } }).Bun?.main;
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/**
 * The command that runs this program again: the compiled binary is its own executable
 * (`/$bunfs/…` is the path Bun gives the program inside it); from source, the runtime with the
 * same entry file. Deno is refused: its process would need the permission flags it was started
 * with, which it cannot read back, and guessing `-A` would grant more than the operator did.
 *
 * @throws GatewayError `WORKERS_UNSUPPORTED` under Deno
 */
export function selfCommand(): string[] {
  if (isDeno) {
    throw new GatewayError("WORKERS_UNSUPPORTED", "`listen.workers` above 1 needs the compiled binary or Bun: a Deno process cannot start its workers with the permissions it was granted", {
      help: "run the compiled binary (or `bun src/main.ts serve`), or set `workers = 1` and start one `deno run` per core yourself",
    });
  }
  if (bunMain?.startsWith("/$bunfs/")) return [process.execPath];
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

/**
 * Starts one worker: `selfCommand()` + `args`, stdout and stderr shared with the supervisor (one
 * stream of log lines, each carrying its `worker`), in the supervisor's process group (a signal
 * to the group reaches all), with an IPC channel.
 *
 * @example
 * const w = await spawnWorker({ identity: { id: 1, count: 2, listenPort: 8443, adminPort: null }, args: ["serve", "--config", file], cwd, env: process.env });
 */
export async function spawnWorker(options: SpawnWorkerOptions): Promise<WorkerProcess> {
  const { spawnChildWorker } = await import("./child-process.ts");
  return spawnChildWorker(selfCommand(), options);
}
