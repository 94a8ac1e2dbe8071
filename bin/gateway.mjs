#!/usr/bin/env node
// Runs the gateway CLI from source with the project's own Bun (a devDependency),
// so that `npx gateway <command>` works right after `npm ci` on a machine with only Node.
//
// Signals, as dumb-init handles them: `serve` runs in a session of its own, so the signals
// a terminal sends its foreground group (Ctrl-C) reach it once, through this wrapper, instead of
// twice (from the terminal and forwarded; a second SIGINT stops Bun outright). The two never
// outlive each other: the wrapper exits with the gateway; the gateway holds the read end of a
// pipe ("lifeline") whose write end only the wrapper holds, and stops gracefully when it closes
// (the wrapper killed, even by SIGKILL); and the wrapper stops the gateway when its own parent
// is gone (`kill -TERM` of npm, which forwards to its shell and exits, orphaning the wrapper).
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bun = join(root, "node_modules", ".bin", process.platform === "win32" ? "bun.exe" : "bun");
const LIFELINE_FD = 3;
// Other commands finish on their own and stay in the wrapper's group: a kill of the group (or a
// second Ctrl-C) ends them with it.
const serving = process.argv[2] === "serve";
const child = spawn(bun, [join(root, "src", "main.ts"), ...process.argv.slice(2)], {
  stdio: ["inherit", "inherit", "inherit", "pipe"],
  detached: serving && process.platform !== "win32",
  env: { ...process.env, DUTYGATE_LIFELINE_FD: String(LIFELINE_FD) },
});
// The wrapper writes nothing: the pipe being open is the whole message.
child.stdio[LIFELINE_FD]?.on("error", () => {});

let stopSent = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (sig !== "SIGHUP") stopSent = true;
    try { child.kill(sig); } catch { /* already gone */ }
  });
}

// Orphaned (the parent died without passing on a signal): the gateway stops as on SIGTERM.
const parent = process.ppid;
const orphanWatch = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(orphanWatch);
  if (!stopSent) {
    stopSent = true;
    try { child.kill("SIGTERM"); } catch { /* already gone */ }
  }
}, 250);

child.on("error", (error) => {
  process.stderr.write(`error: cannot run \`${bun}\`: ${error.message}\n`);
  process.exit(1);
});
// A child killed by a signal exits as a shell reports it: 128 + the signal's number (SIGKILL: 137).
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + (constants.signals[signal] ?? 1) : 1)));
