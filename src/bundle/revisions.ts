// Rollback protection: remember the highest bundle revision ever accepted, so an attacker (or an
// old checkout) cannot bring back an older, validly signed bundle with weaker rules.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GatewayError } from "../errors.ts";
import { writeFileAtomicSync } from "../lib/mod.ts";
import { BundleCodes, type BundleProblem } from "./problems.ts";

/** The highest accepted revision and the digest of the bundle accepted at it. */
export interface AcceptedRevision {
  revision: number;
  digest: string;
}

/**
 * Where the highest accepted bundle revision lives. The embedded default is a file in the state
 * directory; a shared implementation lets several instances agree.
 */
export interface RevisionStore {
  /** Highest accepted revision, or null when none was ever accepted. */
  highest(): number | null;
  /** Records `revision` as accepted with its bundle digest. Refuses to go backwards (`BUNDLE_ROLLBACK`). */
  accept(revision: number, digest: string): void | Promise<void>;
  /** The record behind {@link highest}, with its digest. */
  current(): AcceptedRevision | null;
  /** A shared store reads what other instances accepted; called before each rollback check. */
  refresh?(): Promise<void>;
}

function assertAcceptable(current: AcceptedRevision | null, revision: number, digest: string): void {
  if (!Number.isSafeInteger(revision) || revision < 1) throw new GatewayError(BundleCodes.USAGE, `revision \`${revision}\` must be a positive integer`);
  if (typeof digest !== "string" || digest === "") throw new GatewayError(BundleCodes.USAGE, "digest must be a non-empty string");
  const problem = rollbackProblem(current, revision, digest);
  if (problem !== null) throw new GatewayError(problem.code, problem.message, { revision, highest: current?.revision });
}

/** A revision store in memory: for tests and for gateways configured without a state directory. */
export class MemoryRevisionStore implements RevisionStore {
  #current: AcceptedRevision | null = null;
  highest(): number | null {
    return this.#current?.revision ?? null;
  }
  current(): AcceptedRevision | null {
    return this.#current;
  }
  accept(revision: number, digest: string): void {
    assertAcceptable(this.#current, revision, digest);
    this.#current = { revision, digest };
  }
}

/** File name of the revision state inside the state directory. */
export const REVISION_STATE_FILE = "bundle-revision.json";

/**
 * Persists the highest accepted revision in `stateDir/bundle-revision.json`, replaced atomically
 * (write temp, fsync, rename, fsync directory) so a crash leaves the old or the new state, never
 * none. A state file that exists but cannot be parsed throws `BUNDLE_REVISION_STATE_CORRUPT` at
 * construction: failing closed beats silently forgetting what was accepted.
 */
export class FileRevisionStore implements RevisionStore {
  readonly path: string;
  #current: AcceptedRevision | null;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true });
    this.path = join(stateDir, REVISION_STATE_FILE);
    this.#current = FileRevisionStore.#load(this.path);
  }

  static #load(path: string): AcceptedRevision | null {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      if ((error as { code?: unknown }).code === "ENOENT") return null;
      throw new GatewayError(BundleCodes.REVISION_STATE_CORRUPT, `cannot read revision state \`${path}\`: ${String((error as { code?: unknown }).code ?? error).toLowerCase()}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = null;
    }
    const record = value as { revision?: unknown; digest?: unknown } | null;
    if (record === null || typeof record !== "object" || !Number.isSafeInteger(record.revision) || (record.revision as number) < 1 || typeof record.digest !== "string") {
      throw new GatewayError(BundleCodes.REVISION_STATE_CORRUPT, `revision state \`${path}\` is corrupt; restore it or remove it deliberately to reset rollback protection`);
    }
    return { revision: record.revision as number, digest: record.digest };
  }

  highest(): number | null {
    return this.#current?.revision ?? null;
  }

  current(): AcceptedRevision | null {
    return this.#current;
  }

  accept(revision: number, digest: string): void {
    assertAcceptable(this.#current, revision, digest);
    if (this.#current?.revision === revision && this.#current.digest === digest) return;
    const record = { revision, digest, accepted_at: new Date().toISOString() };
    writeFileAtomicSync(this.path, `${JSON.stringify(record)}\n`, 0o600);
    this.#current = { revision, digest };
  }
}

/** Where a fleet keeps its highest accepted revision: the shared duty ledger's database. */
export interface SharedRevisionBackend {
  /** The fleet's record, or null when none was accepted yet. */
  acceptedRevision(): Promise<AcceptedRevision | null>;
  /** Records `revision` unless a higher one (or this one with another digest) is there, atomically; returns the record afterwards. */
  advanceRevision(revision: number, digest: string): Promise<AcceptedRevision>;
}

/**
 * The highest accepted revision of a whole fleet: kept in the shared ledger's database, so a
 * rollback is refused by every instance, also one that never saw the newer bundle. The state
 * directory's file is kept too, and the higher of the two counts: pointing an instance at a fresh
 * database does not lower its own floor. When the database cannot be read, the reload fails (the
 * last good policy stays) rather than skipping the check.
 */
export class SharedRevisionStore implements RevisionStore {
  readonly #local: FileRevisionStore;
  readonly #backend: SharedRevisionBackend;
  #shared: AcceptedRevision | null = null;

  constructor(stateDir: string, backend: SharedRevisionBackend) {
    this.#local = new FileRevisionStore(stateDir);
    this.#backend = backend;
  }

  highest(): number | null {
    return this.current()?.revision ?? null;
  }

  current(): AcceptedRevision | null {
    const local = this.#local.current();
    const shared = this.#shared;
    if (local === null || shared === null) return shared ?? local;
    return local.revision > shared.revision ? local : shared;
  }

  async refresh(): Promise<void> {
    this.#shared = await this.#backend.acceptedRevision();
  }

  async accept(revision: number, digest: string): Promise<void> {
    assertAcceptable(this.current(), revision, digest);
    // The database decides: another instance may have accepted a newer revision since the refresh.
    const after = await this.#backend.advanceRevision(revision, digest);
    this.#shared = after;
    if (after.revision !== revision || after.digest !== digest) assertAcceptable(after, revision, digest);
    this.#local.accept(revision, digest);
  }
}

function rollbackProblem(current: AcceptedRevision | null, revision: number, digest: string | undefined): BundleProblem | null {
  if (current === null || revision > current.revision) return null;
  // The bundle accepted last time, loaded again (restart, a watch event without change) is not a rollback.
  if (revision === current.revision && digest !== undefined && digest === current.digest) return null;
  const message =
    revision === current.revision
      ? `revision ${revision} was already accepted with other content (digest ${current.digest.slice(0, 12)}…); a changed bundle needs a new revision`
      : `revision ${revision} is older than the accepted revision ${current.revision}`;
  return { code: BundleCodes.ROLLBACK, message };
}

/**
 * Rollback check: a `BUNDLE_ROLLBACK` problem when `revision` is not newer than the highest
 * accepted one, else null. The very bundle accepted at the highest revision (same `digest`) passes,
 * so a restart or a no-op reload does not lock the gateway out of its own bundle; without a
 * `digest`, an equal revision is refused.
 *
 * @example
 * const problem = checkRollback(store, bundle.revision, bundle.digest);
 * if (problem === null) store.accept(bundle.revision, bundle.digest);
 */
export function checkRollback(store: RevisionStore, revision: number, digest?: string): BundleProblem | null {
  return rollbackProblem(store.current(), revision, digest);
}
