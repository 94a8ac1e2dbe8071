// Processes a test starts run in a process group of their own and are killed by group, by PID,
// whatever happens: in the test's `finally`, and — for a test that timed out or threw before its
// `finally` could run — after the last test (test/support/preload.ts: `bun test` emits no `exit`
// event) or when a script's process exits. No test may leave a gateway listening.

const groups = new Set<number>();
let armed = false;

/** SIGKILL to the process group led by `pid` (everything it started too); a gone group is fine. */
export function killProcessGroup(pid: number | null | undefined): void {
  if (pid === null || pid === undefined) return;
  groups.delete(pid);
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

/** Registers the group led by `pid` to be killed when the tests end or the process exits. Returns `pid`. */
export function killGroupOnExit(pid: number): number {
  groups.add(pid);
  if (!armed) {
    armed = true;
    process.once("exit", killRegisteredGroups);
  }
  return pid;
}

/** Kills every group registered and not killed yet (after the last test; at exit). */
export function killRegisteredGroups(): void {
  for (const leader of [...groups]) killProcessGroup(leader);
}
