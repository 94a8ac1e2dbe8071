// Directory watching for hot reload. Events are treated as "something changed, re-read": editors,
// `mv`-over saves and Kubernetes symlink swaps all produce different event sequences, and the only
// reliable reaction to any of them is a debounced full re-read by the caller.
import { statSync, readdirSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { isSkippedName } from "./files.ts";

/** Options of {@link watchPolicyDirectory}. */
export interface WatchPolicyDirectoryOptions {
  /** Quiet time after the last event before `onChange` runs. Default 100 ms. */
  debounceMs?: number;
  /** Receives watcher errors and errors thrown by `onChange`; they never escape. */
  onError?: (error: unknown) => void;
  /** Retry interval while the directory (or a watch on it) cannot be armed. Default 1000 ms. */
  rearmMs?: number;
}

/** A running watch; `close()` stops it and cancels any pending `onChange`. */
export interface PolicyDirectoryWatch {
  close(): void;
}

const MAX_DEPTH = 32;
const MAX_DIRECTORIES = 1_000;

/** The directories to watch: `dir` and every subdirectory (following symlinks, skipping `..` names). */
function scanDirectories(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const seen = new Set<string>();
  const walk = (path: string, depth: number): void => {
    if (found.size >= MAX_DIRECTORIES || depth > MAX_DEPTH) return;
    let identity: string;
    try {
      const info = statSync(path);
      if (!info.isDirectory()) return;
      identity = `${info.dev}:${info.ino}`;
    } catch {
      return;
    }
    if (seen.has(identity)) return;
    seen.add(identity);
    found.set(path, identity);
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) if (!isSkippedName(name)) walk(join(path, name), depth + 1);
  };
  walk(dir, 0);
  return found;
}

/**
 * Calls `onChange` (debounced) after any change under `dir`: in-place edits, atomic
 * rename-over saves, truncate-then-write editors, deletions, new subdirectories, and Kubernetes
 * ConfigMap `..data` symlink swaps. Watches `dir` and each subdirectory with a non-recursive
 * `fs.watch` and re-scans the tree after every burst, so new or swapped subdirectories are
 * followed the same way on every platform and runtime. Under continuous events `onChange` still
 * runs at least every `max(10 × debounceMs, 1 s)`.
 *
 * A missing directory or a failing watcher is reported to `onError` and re-armed every
 * `rearmMs`; nothing is thrown. Once re-armed after a failure, `onChange` runs once.
 *
 * @example
 * const watch = watchPolicyDirectory("policies", () => void reload(), { debounceMs: 100 });
 * // later: watch.close();
 */
export function watchPolicyDirectory(dir: string, onChange: () => void, options: WatchPolicyDirectoryOptions = {}): PolicyDirectoryWatch {
  const debounceMs = Math.max(0, options.debounceMs ?? 100);
  const maxWaitMs = Math.max(debounceMs * 10, 1_000);
  const rearmMs = Math.max(10, options.rearmMs ?? 1_000);
  const report = (error: unknown): void => {
    try {
      options.onError?.(error);
    } catch {
      // an error reporter that throws must not take the watch down
    }
  };

  const watchers = new Map<string, { watcher: FSWatcher; identity: string }>();
  let closed = false;
  let debounceTimer: ReturnType<typeof setTimeout> | null = null;
  let burstStartedAt: number | null = null;
  let rearmTimer: ReturnType<typeof setTimeout> | null = null;
  let degraded = false;

  const closeOne = (path: string): void => {
    const entry = watchers.get(path);
    if (entry === undefined) return;
    watchers.delete(path);
    try {
      entry.watcher.close();
    } catch (error) {
      report(error);
    }
  };

  const fire = (): void => {
    debounceTimer = null;
    burstStartedAt = null;
    if (closed) return;
    // Re-arm before notifying: events caused while the caller re-reads are then not lost.
    arm();
    try {
      onChange();
    } catch (error) {
      report(error);
    }
  };

  const schedule = (): void => {
    if (closed) return;
    const now = Date.now();
    burstStartedAt ??= now;
    if (debounceTimer !== null) clearTimeout(debounceTimer);
    debounceTimer = setTimeout(fire, Math.min(debounceMs, Math.max(0, burstStartedAt + maxWaitMs - now)));
  };

  const scheduleRearm = (): void => {
    if (closed || rearmTimer !== null) return;
    degraded = true;
    rearmTimer = setTimeout(() => {
      rearmTimer = null;
      if (closed) return;
      arm();
      if (!degraded) schedule(); // recovered: whatever happened meanwhile was missed, so re-read
    }, rearmMs);
  };

  function arm(): void {
    const desired = scanDirectories(dir);
    for (const [path, entry] of [...watchers]) {
      if (desired.get(path) !== entry.identity) closeOne(path);
    }
    let failed = !desired.has(dir);
    for (const [path, identity] of desired) {
      if (watchers.has(path)) continue;
      try {
        const watcher = watch(path, { persistent: true }, () => schedule());
        watcher.on("error", (error) => {
          report(error);
          if (watchers.get(path)?.watcher === watcher) closeOne(path);
          schedule();
          scheduleRearm();
        });
        watchers.set(path, { watcher, identity });
      } catch (error) {
        report(error);
        failed = true;
      }
    }
    if (failed) scheduleRearm();
    else degraded = false;
  }

  arm();
  if (!watchers.has(dir)) report(new Error(`cannot watch policy directory \`${dir}\`; retrying every ${rearmMs} ms`));

  return {
    close(): void {
      closed = true;
      if (debounceTimer !== null) clearTimeout(debounceTimer);
      if (rearmTimer !== null) clearTimeout(rearmTimer);
      debounceTimer = rearmTimer = null;
      for (const path of [...watchers.keys()]) closeOne(path);
    },
  };
}
