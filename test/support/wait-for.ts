// The one way a test waits for something that happens on its own time (a watcher firing, a
// worker restarting, a server refusing): poll a probe until it answers, fail after a deadline.
// Never a timing assertion: the deadline only bounds a test that would otherwise hang.

export interface WaitForOptions {
  /** Give up after this long (default 15 s; the machine may be loaded). */
  deadlineMs?: number;
  /** Pause between probes (default 20 ms). */
  intervalMs?: number;
  /** More to say when giving up (the last answers seen, log lines). */
  detail?: () => string;
}

/**
 * Calls `probe` until it returns a value other than `undefined`, `null` or `false`, and returns
 * that value; throws `timed out waiting for <what>` after the deadline.
 *
 * @example
 * await waitFor("the reload", () => manager.revision === 2);
 * const line = await waitFor("the banner", () => output().match(/listening on (\S+)/) ?? undefined);
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: WaitForOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 15_000);
  const interval = options.intervalMs ?? 20;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${options.detail ? `: ${options.detail()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
