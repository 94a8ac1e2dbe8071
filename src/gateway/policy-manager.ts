// The active policy and how it changes: verify the bundle → the one policy build (parse, check,
// separation analysis, configured upstreams, compile, the bundle's own policy tests:
// src/policy/build.ts), all off the request path, then one atomic swap. Any failure keeps
// the last good policy and is kept as `lastError` (with file:line:col) for /policy, metrics and
// the status file. Requests read `active` once and finish under the policy they started with.
// Every bundle that goes live is copied to the state directory; a start whose policy directory
// fails serves that copy (verified again) instead of refusing, and says so everywhere.
// The digest of the last bundle whose policy tests passed is kept in the state directory too, so
// a restart onto the same bundle does not run them again (they cost start-up time, and the
// bundle, the code that judges it and therefore their outcome are the same).
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GATEWAY_UPSTREAM, renderDiagnostic, type CompiledPolicy } from "../../dsl/mod.ts";
import { writeFileAtomicSync } from "../lib/mod.ts";
import { checkRollback, readLastGoodBundle, readTrustedKeysFile, readUnsignedBundle, storeLastGoodBundle, verifyBundle, watchPolicyDirectory, FileRevisionStore, formatBundleProblem, type BundleVerification, type PolicyDirectoryWatch, type RevisionStore, type VerifiedBundle } from "../bundle/mod.ts";
import type { PolicyConfig, UpstreamConfig } from "../config/mod.ts";
import { buildPolicy } from "../policy/mod.ts";
import { classifyPolicyFiles } from "../policy/mod.ts";
import type { ErrorCode } from "../error-codes.ts";
import { GatewayError } from "../errors.ts";
import { COMMIT, VERSION } from "../version.ts";

/** `<stateDir>/policy-tests-passed.json`: the bundle whose policy tests last passed, and the gateway that ran them. */
export const TESTS_PASSED_FILE = "policy-tests-passed.json";

/** The build that judged the tests: another version or commit may decide differently, so it runs them again. */
const GATEWAY_BUILD = `${VERSION} (${COMMIT})`;

/** The digest whose tests passed under this very build, or null (none recorded, another build, unreadable). */
function readTestsPassedDigest(stateDir: string): string | null {
  try {
    const record = JSON.parse(readFileSync(join(stateDir, TESTS_PASSED_FILE), "utf8")) as { digest?: unknown; gateway?: unknown };
    return typeof record.digest === "string" && record.gateway === GATEWAY_BUILD ? record.digest : null;
  } catch {
    return null;
  }
}

/** The built-in upstream served by the gateway itself (admin functions); never configured. */
export const INTERNAL_UPSTREAM = GATEWAY_UPSTREAM;

export interface ActivePolicy {
  compiled: CompiledPolicy;
  revision: number;
  digest: string;
  signers: string[];
  signed: boolean;
  loadedAt: Date;
  /** The signed manifest's `expires_at`; null when it has none (or the bundle is unsigned). */
  expiresAt: Date | null;
  /** Display paths of the `.duty` files. */
  files: string[];
  /**
   * Where it was loaded from: the policy directory, or the last good bundle in the state
   * directory (a start whose policy directory failed; the gateway serves, degraded).
   */
  source: PolicySource;
}

export type PolicySource = "policy_dir" | "last_good";

/**
 * Whether the active bundle's validity has ended (`expires_at` ≤ now, as in bundle verification).
 * Verification refuses an expired bundle at load; this is the same rule for one that expires
 * while active: from then on it decides nothing.
 */
export function bundleExpired(active: ActivePolicy, now: number): boolean {
  return active.expiresAt !== null && active.expiresAt.getTime() <= now;
}

/** Why an expired bundle decides nothing, for the 503 problem, the audit record and readiness. */
export function bundleExpiredMessage(active: ActivePolicy): string {
  return `policy bundle revision ${active.revision} expired at ${active.expiresAt?.toISOString()}; load a newer bundle`;
}

export interface ReloadFailure {
  at: Date;
  trigger: string;
  /** Stable code: BUNDLE_*, POLICY_INVALID, POLICY_TESTS_FAILED, POLICY_UPSTREAM_UNKNOWN. */
  code: ErrorCode;
  /** One line per problem, `file:line:col: …` where the problem has a position. */
  problems: string[];
}

export type ReloadResult = { ok: true; changed: boolean; active: ActivePolicy } | { ok: false; error: ReloadFailure };

/** A build that went through, with the bundle it came from (what the state directory keeps). */
type BuildResult = { ok: true; changed: boolean; active: ActivePolicy; bundle: VerifiedBundle | null } | { ok: false; error: ReloadFailure };

export interface PolicyManagerOptions {
  policy: PolicyConfig;
  stateDir: string;
  upstreams: Readonly<Record<string, UpstreamConfig>>;
  log: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
  /** Called after every successful swap (metrics, token cache). */
  onSwap?: (active: ActivePolicy) => void;
  onFailure?: (error: ReloadFailure) => void;
  revisionStore?: RevisionStore;
  now?: () => number;
}

export class PolicyManager {
  #active: ActivePolicy | null = null;
  #lastError: ReloadFailure | null = null;
  #running: Promise<ReloadResult> | null = null;
  #queued: { trigger: string; promise: Promise<ReloadResult> } | null = null;
  #watch: PolicyDirectoryWatch | null = null;
  readonly #options: PolicyManagerOptions;
  readonly #store: RevisionStore;
  /** Digest of the copy in the state directory (null: none yet). */
  #storedDigest: string | null;
  /** Digest of the last bundle whose policy tests passed under this build (from the state directory). */
  #testsPassedDigest: string | null;
  reloads = { ok: 0, failed: 0 };

  constructor(options: PolicyManagerOptions) {
    this.#options = options;
    mkdirSync(options.stateDir, { recursive: true });
    this.#store = options.revisionStore ?? new FileRevisionStore(options.stateDir);
    this.#storedDigest = readLastGoodBundle(options.stateDir)?.digest ?? null;
    this.#testsPassedDigest = readTestsPassedDigest(options.stateDir);
  }

  /** True while the active policy is the last good bundle because the policy directory fails. */
  get degraded(): boolean {
    return this.#active?.source === "last_good";
  }

  /** The policy in force; null only before the first successful load. */
  get active(): ActivePolicy | null {
    return this.#active;
  }

  get lastError(): ReloadFailure | null {
    return this.#lastError;
  }

  /**
   * Reloads the policy. Reloads never run concurrently: a trigger during a reload schedules
   * exactly one more reload after it (later triggers share that one).
   */
  reload(trigger: string): Promise<ReloadResult> {
    if (!this.#running) {
      this.#running = this.#reloadOnce(trigger).finally(() => {
        this.#running = null;
        const next = this.#queued;
        this.#queued = null;
        if (next) void next.promise;
      });
      return this.#running;
    }
    if (!this.#queued) {
      const current = this.#running;
      const promise = current.then(() => this.reload(trigger));
      this.#queued = { trigger, promise };
    }
    return this.#queued.promise;
  }

  /** Watches the policy directory; any change triggers a debounced reload. */
  watch(): void {
    if (this.#watch) return;
    this.#watch = watchPolicyDirectory(this.#options.policy.dir, () => void this.reload("watch"), { debounceMs: this.#options.policy.debounceMs });
  }

  close(): void {
    this.#watch?.close();
    this.#watch = null;
  }

  async #reloadOnce(trigger: string): Promise<ReloadResult> {
    const started = performance.now();
    let result = await this.#build(trigger, this.#options.policy.dir, "policy_dir");
    let directoryFailure: ReloadFailure | null = null;
    if (!result.ok && this.#active === null) {
      // No policy yet (the start): the last good bundle, verified again, beats refusing to serve.
      const fallback = await this.#startFromLastGood(trigger, result.error);
      if (fallback.ok) directoryFailure = result.error;
      result = fallback;
    }
    if (!result.ok) {
      this.#lastError = result.error;
      this.reloads.failed++;
      this.#writeStatus();
      this.#options.log("error", `policy reload failed (${trigger}): ${result.error.code}; keeping ${this.#active ? `revision ${this.#active.revision} (${this.#active.digest.slice(0, 12)})` : "no policy"}`, { problems: result.error.problems });
      this.#options.onFailure?.(result.error);
      return result;
    }
    if (result.changed) {
      this.#active = result.active; // the one atomic swap
      this.#lastError = directoryFailure;
      this.#options.onSwap?.(result.active);
      this.#options.log("info", `policy active: revision ${result.active.revision}, digest ${result.active.digest.slice(0, 12)}, ${result.active.compiled.policy.duties.length} duties (${trigger}, ${(performance.now() - started).toFixed(1)} ms)`, { signers: result.active.signers, source: result.active.source });
    } else {
      this.#lastError = null;
      if (this.#active?.source === "last_good" && result.active.source === "policy_dir") {
        // The policy directory verifies again and holds the very bundle being served.
        this.#active = { ...this.#active, source: "policy_dir" };
        this.#options.log("info", `the policy directory verifies again; serving it (revision ${this.#active.revision}, digest ${this.#active.digest.slice(0, 12)})`);
      }
    }
    if (result.active.source === "policy_dir" && result.bundle && this.#storedDigest !== result.active.digest) this.#storeLastGood(result.bundle);
    this.reloads.ok++;
    this.#writeStatus();
    return result;
  }

  /** The start's second chance: the last good bundle of the state directory, through every check again. */
  async #startFromLastGood(trigger: string, directoryFailure: ReloadFailure): Promise<BuildResult> {
    const stored = readLastGoodBundle(this.#options.stateDir);
    if (stored === null) return { ok: false, error: directoryFailure };
    const fallback = await this.#build(trigger, stored.dir, "last_good");
    if (!fallback.ok) {
      const why = `the last good bundle \`${stored.dir}\` (revision ${stored.revision}) fails too (${fallback.error.code}): ${fallback.error.problems[0] ?? ""}`;
      return { ok: false, error: { ...directoryFailure, problems: [...directoryFailure.problems, why] } };
    }
    this.#options.log("error", `the policy directory fails (${directoryFailure.code}); serving the last good bundle from the state directory: revision ${fallback.active.revision}, digest ${fallback.active.digest.slice(0, 12)}. Fix the policy directory, then reload`, { problems: directoryFailure.problems, last_good: stored.dir });
    return fallback;
  }

  #recordTestsPassed(digest: string): void {
    try {
      writeFileAtomicSync(join(this.#options.stateDir, TESTS_PASSED_FILE), `${JSON.stringify({ digest, gateway: GATEWAY_BUILD, at: new Date().toISOString() })}\n`, 0o600);
      this.#testsPassedDigest = digest;
    } catch (e) {
      // Only a cost: the next start runs the tests again.
      this.#options.log("warn", `cannot record the bundle whose policy tests passed: ${(e as Error).message}`);
    }
  }

  #storeLastGood(bundle: VerifiedBundle): void {
    try {
      storeLastGoodBundle(this.#options.stateDir, bundle);
      this.#storedDigest = bundle.digest;
    } catch (e) {
      this.#options.log("warn", `cannot keep a copy of the active bundle in the state directory: ${(e as Error).message}; a restart with a broken policy directory would refuse to start`);
    }
  }

  async #build(trigger: string, dir: string, source: PolicySource): Promise<BuildResult> {
    const fail = (code: ErrorCode, problems: string[]): BuildResult => ({ ok: false, error: { at: new Date(), trigger, code, problems } });
    const { policy: pc } = this.#options;
    let verification: BundleVerification;
    try {
      if (pc.requireSignature || pc.trustedKeysFile) {
        const trustedKeys = pc.trustedKeysFile ? await readTrustedKeysFile(pc.trustedKeysFile) : { keys: [] };
        verification = await verifyBundle(dir, { trustedKeys, minSigners: pc.minSigners, requireSignature: pc.requireSignature });
      } else {
        verification = await readUnsignedBundle(dir);
      }
    } catch (e) {
      return fail("BUNDLE_UNREADABLE", [(e as Error).message]);
    }
    if (!verification.ok) return fail(verification.problems[0]?.code ?? "BUNDLE_INVALID", verification.problems.map(formatBundleProblem));
    const bundle = verification.bundle;
    if (this.#active && this.#active.digest === bundle.digest) return { ok: true, changed: false, active: { ...this.#active, source }, bundle };
    if (bundle.signed) {
      // A shared store (the fleet's ledger database) first learns what other instances accepted;
      // when it cannot, the reload fails rather than skipping the check.
      const refused = await this.#storeStep(() => this.#store.refresh?.());
      if (refused) return fail(refused.code, [`error[${refused.code}]: ${refused.message}`]);
      const rollback = checkRollback(this.#store, bundle.revision, bundle.digest);
      if (rollback) return fail(rollback.code, [formatBundleProblem(rollback)]);
    }
    // Paths relative to the bundle: rule ids (`grant:changes.duty:12:1`) are the same on every
    // instance and in `gateway check`, and reveal nothing of the server's directory layout.
    const files = classifyPolicyFiles(bundle.files, "");
    const skipTests = bundle.digest === this.#testsPassedDigest;
    const build = buildPolicy(files, { now: this.#options.now?.(), upstreams: new Set(Object.keys(this.#options.upstreams)), skipTests });
    if (build.failure) return fail(build.failure.code, build.failure.code === "POLICY_EMPTY" ? [`no \`.duty\` files in ${dir}`] : build.failure.problems);
    const compiled = build.compiled!;
    if (skipTests) {
      this.#options.log("info", `policy tests skipped: bundle ${bundle.digest.slice(0, 12)} passed them under this gateway build before (${TESTS_PASSED_FILE} in the state directory)`);
    } else {
      this.#recordTestsPassed(bundle.digest);
    }
    // Recorded before the swap: on a shared store another instance may have accepted a newer
    // revision since the check above, and then this bundle is a rollback after all.
    if (bundle.signed) {
      const refused = await this.#storeStep(() => this.#store.accept(bundle.revision, bundle.digest));
      if (refused) return fail(refused.code, [`error[${refused.code}]: ${refused.message}`]);
    }
    for (const w of build.diagnostics) this.#options.log("warn", renderDiagnostic(w, build.sources).split("\n")[0]!);
    return {
      ok: true,
      changed: true,
      active: { compiled, revision: bundle.revision, digest: bundle.digest, signers: bundle.signers, signed: bundle.signed, loadedAt: new Date(), expiresAt: bundle.expiresAt, files: files.policies.map((p) => p.path), source },
      bundle,
    };
  }

  /** Runs a revision store call; a coded failure (rollback, store unavailable) comes back as a problem. */
  async #storeStep(step: () => void | Promise<void>): Promise<{ code: ErrorCode; message: string } | null> {
    try {
      await step();
      return null;
    } catch (e) {
      // A coded error keeps its code (BUNDLE_ROLLBACK); anything else, a file-system error
      // included, is the store being unavailable (an errno such as `EACCES` is no stable code).
      return { code: e instanceof GatewayError ? e.code : "BUNDLE_REVISION_STATE_UNAVAILABLE", message: (e as Error).message };
    }
  }

  /** The status the admin API shows, also written to `<stateDir>/policy-status.json`. */
  status(): Record<string, unknown> {
    const a = this.#active;
    return {
      active: a ? { revision: a.revision, digest: a.digest, signers: a.signers, signed: a.signed, loaded_at: a.loadedAt.toISOString(), expires_at: a.expiresAt?.toISOString() ?? null, files: a.files, duties: a.compiled.policy.duties.length, source: a.source } : null,
      degraded: this.degraded,
      last_error: this.#lastError ? { at: this.#lastError.at.toISOString(), trigger: this.#lastError.trigger, code: this.#lastError.code, problems: this.#lastError.problems } : null,
      reloads: this.reloads,
    };
  }

  #writeStatus(): void {
    try {
      writeFileAtomicSync(join(this.#options.stateDir, "policy-status.json"), JSON.stringify(this.status(), null, 2) + "\n");
    } catch (e) {
      this.#options.log("warn", `cannot write policy status file: ${(e as Error).message}`);
    }
  }
}
