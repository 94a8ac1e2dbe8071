// Worker processes through node:child_process with an IPC channel: the same code under Bun, in
// the compiled binary, and under Node (Bun.spawn's `ipc` would tie it to Bun alone).
import { spawn } from "node:child_process";
import { WORKER_ENV, type WorkerToSupervisor } from "./protocol.ts";
import type { SpawnWorkerOptions, WorkerProcess } from "./spawn.ts";

export function spawnChildWorker(command: readonly string[], options: SpawnWorkerOptions): WorkerProcess {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.env)) if (v !== undefined) env[k] = v;
  // The launcher's lifeline is the supervisor's; a worker watches its IPC channel instead.
  delete env.DUTYGATE_LIFELINE_FD;
  env[WORKER_ENV] = JSON.stringify(options.identity);
  const child = spawn(command[0]!, [...command.slice(1), ...options.args], { cwd: options.cwd, env, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    // A spawn that failed (no executable) never exits: it is reported as an exit.
    child.once("error", () => resolve({ code: child.exitCode ?? 127, signal: null }));
  });
  child.on("error", () => {});
  return {
    pid: child.pid ?? -1,
    send(message) {
      if (!child.connected) return false;
      try {
        child.send(message);
        return true;
      } catch {
        return false;
      }
    },
    onMessage(handler) {
      child.on("message", (m) => handler(m as WorkerToSupervisor));
    },
    kill(signal) {
      try { child.kill(signal); } catch { /* gone already */ }
    },
    exited,
  };
}
