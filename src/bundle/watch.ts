// Directory watching for hot reload. Events are treated as "something changed, re-read": editors,
// `mv`-over saves and Kubernetes symlink swaps all produce different event sequences, and the only
// reliable reaction to any of them is a debounced full re-read by the caller.
import { lstatSync, readdirSync, readlinkSync, statSync, watch, type FSWatcher } from "node:fs";
import { join, parse, resolve, sep } from "node:path";
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
/** As the kernel's own bound on symlinks followed while resolving one path (Linux MAXSYMLINKS). */
const MAX_LINKS = 40;

/** `dev:ino` of what `path` names (symlinks followed), or undefined when it names nothing. */
function identityOf(path: string): string | undefined {
  try {
    const info = statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}

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
 * The directories that hold a symlink met while resolving `dir`, with their identities. Renaming a
 * new link over one of those links (`ln -s v2 tmp && mv -T tmp current`, the way to publish a whole
 * bundle at once) changes what `dir` names without any event under `dir`: only the link's parent
 * sees it. A chain of links (`current -> live -> v2`) yields the parent of each.
 */
function linkParentDirectories(dir: string): Map<string, string> {
  const parents = new Map<string, string>();
  let path = resolve(dir);
  let current = parse(path).root;
  let rest = path.slice(current.length).split(sep).filter((name) => name !== "");
  for (let links = 0; rest.length > 0; ) {
    const next = join(current, rest.shift()!);
    let target: string;
    try {
      if (!lstatSync(next).isSymbolicLink()) {
        current = next;
        continue;
      }
      target = readlinkSync(next);
    } catch {
      break; // the rest does not exist (yet): the re-arm timer covers it
    }
    if (++links > MAX_LINKS) break;
    const identity = identityOf(current);
    if (identity !== undefined) parents.set(current, identity);
    path = resolve(current, target);
    current = parse(path).root;
    rest = [...path.slice(current.length).split(sep).filter((name) => name !== ""), ...rest];
  }
  return parents;
}

/**
 * Calls `onChange` (debounced) after any change under `dir`: in-place edits, atomic
 * rename-over saves, truncate-then-write editors, deletions, new subdirectories, and Kubernetes
 * ConfigMap `..data` symlink swaps, and `dir` itself being a symlink switched to another directory
 * by `rename`. Watches `dir` and each subdirectory with a non-recursive `fs.watch` and re-scans
 * the tree after every burst, so new or swapped subdirectories are followed the same way on every
 * platform and runtime. When `dir` is reached through symlinks, the directory holding each link is
 * watched too, and every event there re-resolves `dir`: a change of what it names is a change. Under continuous events `onChange` still
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

  // "tree": `dir` and its subdirectories, any event is a change. "link parent": a directory holding
  // a link on the way to `dir`, whose events matter only when `dir` then names another directory.
  type Role = "tree" | "link parent";
  const watchers = new Map<string, { watcher: FSWatcher; identity: string; role: Role }>();
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

  const onLinkParentEvent = (): void => {
    if (identityOf(dir) !== watchers.get(dir)?.identity) schedule();
  };

  function arm(): void {
    const desired = new Map<string, { identity: string; role: Role }>();
    const tree = scanDirectories(dir);
    for (const [path, identity] of tree) desired.set(path, { identity, role: "tree" });
    // A parent that is also in the tree is watched once, as tree: its events schedule anyway.
    const treeIdentities = new Set(tree.values());
    for (const [path, identity] of linkParentDirectories(dir)) {
      if (!treeIdentities.has(identity) && !desired.has(path)) desired.set(path, { identity, role: "link parent" });
    }
    for (const [path, entry] of [...watchers]) {
      const want = desired.get(path);
      if (want?.identity !== entry.identity || want.role !== entry.role) closeOne(path);
    }
    let failed = !desired.has(dir);
    for (const [path, { identity, role }] of desired) {
      if (watchers.has(path)) continue;
      try {
        const watcher = watch(path, { persistent: true }, role === "tree" ? () => schedule() : onLinkParentEvent);
        watcher.on("error", (error) => {
          report(error);
          if (watchers.get(path)?.watcher === watcher) closeOne(path);
          schedule();
          scheduleRearm();
        });
        watchers.set(path, { watcher, identity, role });
      } catch (error) {
        report(error);
        // A link's parent that cannot be watched (no permission on `/srv`, say) costs only the
        // rename case, which SIGHUP still covers; it is not retried like the tree itself.
        if (role === "tree") failed = true;
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
