// The last good bundle: a copy of the last bundle that went live, kept in the state directory, so
// a restart after a stray edit of the policy directory (a comment, an editor's swap file, a
// half-finished rsync) serves what was served before instead of refusing to start. The copy holds
// the files and the manifest byte for byte, and it is verified again like the live directory
// before use: a copy made under other trusted keys, expired, or below the rollback floor is refused.
// As OPA keeps its downloaded bundles on disk (`persist = true`).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { writeFileAtomicSync } from "../lib/mod.ts";
import { MANIFEST_FILE_NAME } from "./files.ts";
import type { VerifiedBundle } from "./verify.ts";

/** Directory of the stored copy inside the state directory. */
export const LAST_GOOD_BUNDLE_DIR = "last-good-bundle";
const POINTER_FILE = "current.json";

/** What the state directory says about its stored copy. */
export interface StoredBundle {
  /** The directory holding the copy (files and `bundle.sig.json`). */
  dir: string;
  digest: string;
  revision: number;
  signed: boolean;
  storedAt: string;
}

/**
 * Stores `bundle` as the last good bundle of `stateDir`. The copy is written under a temporary
 * name, renamed to its digest, and only then named by `current.json` (replaced atomically): a
 * crash leaves the previous copy in force, never half of a new one. Older copies are removed.
 *
 * @example
 * if (result.ok) storeLastGoodBundle(config.stateDir, result.bundle);
 */
export function storeLastGoodBundle(stateDir: string, bundle: VerifiedBundle): StoredBundle {
  const root = join(stateDir, LAST_GOOD_BUNDLE_DIR);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const target = join(root, bundle.digest);
  if (!existsSync(target)) {
    // `..` names are skipped by bundle listings, as the atomic writer's temporary files are.
    const staging = join(root, `..staging-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      for (const file of bundle.files) {
        const path = join(staging, ...file.path.split("/"));
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        writeFileAtomicSync(path, file.bytes, 0o600);
      }
      mkdirSync(staging, { recursive: true, mode: 0o700 });
      if (bundle.manifest) {
        const body = { payload: bundle.manifest.payload, signatures: bundle.manifest.signatures.map((s) => ({ protected: s.protected, signature: s.signature })) };
        writeFileAtomicSync(join(staging, MANIFEST_FILE_NAME), `${JSON.stringify(body, null, 2)}\n`, 0o600);
      }
      renameSync(staging, target);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      // Another worker of the same gateway stored the same bundle first: its copy is this one.
      const code = (error as NodeJS.ErrnoException).code;
      if (!((code === "ENOTEMPTY" || code === "EEXIST") && existsSync(target))) throw error;
    }
  }
  const stored: StoredBundle = { dir: target, digest: bundle.digest, revision: bundle.revision, signed: bundle.signed, storedAt: new Date().toISOString() };
  writeFileAtomicSync(join(root, POINTER_FILE), `${JSON.stringify({ digest: stored.digest, revision: stored.revision, signed: stored.signed, stored_at: stored.storedAt })}\n`, 0o600);
  for (const name of readdirSync(root)) {
    if (name === POINTER_FILE || name === bundle.digest || stagedByLiveProcess(name)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
  }
  return stored;
}

/**
 * A copy, or a pointer's temporary file, another process (a sibling worker) is still writing:
 * removing it would fail that process's store. A crashed writer's leftover is removed by the
 * next store.
 */
function stagedByLiveProcess(name: string): boolean {
  const owner = /^\.\.staging-(\d+)-/.exec(name) ?? /^\.\..*\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
  const pid = Number(owner?.[1] ?? NaN);
  if (!Number.isSafeInteger(pid) || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The last good bundle stored in `stateDir`, or null when there is none (first start, or a
 * pointer that names no copy). The copy is not verified here: the caller verifies it as it
 * verifies the live directory.
 */
export function readLastGoodBundle(stateDir: string): StoredBundle | null {
  const root = join(stateDir, LAST_GOOD_BUNDLE_DIR);
  let record: { digest?: unknown; revision?: unknown; signed?: unknown; stored_at?: unknown };
  try {
    record = JSON.parse(readFileSync(join(root, POINTER_FILE), "utf8")) as typeof record;
  } catch {
    return null;
  }
  if (typeof record?.digest !== "string" || !/^[0-9a-f]{64}$/.test(record.digest) || typeof record.revision !== "number") return null;
  const dir = join(root, record.digest);
  if (!existsSync(dir)) return null;
  return { dir, digest: record.digest, revision: record.revision, signed: record.signed === true, storedAt: String(record.stored_at ?? "") };
}
