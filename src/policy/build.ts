// The one policy build: `.duty` sources → parse and type-check → separation analysis → (the
// configured upstreams) → compile → the policy's own tests. The gateway's reload, `gateway
// check`, `gateway explain`, `gateway query`, the playground and the language server all build
// through here, so a policy that one of them refuses, none of them runs.
//
// The stages run in order and stop at the first that fails, or at `until`. The result is plain
// data: what each stage found, and the first failure as a stable code with one line per problem.
import { analyzeSeparation, checkParsedPolicy, compilePolicy, GATEWAY_UPSTREAM, hasErrors, parsePolicySource, renderDiagnostic, runPolicyTests, sortDiagnostics } from "../../dsl/mod.ts";
import type { CheckedPolicy, CompiledPolicy, Diagnostic, ParseResult, PolicyTestResult, ReachabilityRow } from "../../dsl/mod.ts";
import { classifyPolicyFiles, readPolicyDirectory, type PolicyFiles } from "./sources.ts";

/** The stages of a build, in order; `until` names the last one to run. */
export type BuildStage = "check" | "compile" | "tests";

/**
 * Why a build stopped, as a stable code:
 * - `POLICY_EMPTY`: no `.duty` source;
 * - `POLICY_INVALID`: the checker or the separation analysis found an error;
 * - `POLICY_UPSTREAM_UNKNOWN`: the policy declares an upstream `upstreams` does not hold;
 * - `POLICY_TESTS_FAILED`: a policy test failed.
 */
export type BuildFailureCode = "POLICY_EMPTY" | "POLICY_INVALID" | "POLICY_UPSTREAM_UNKNOWN" | "POLICY_TESTS_FAILED";

export interface BuildFailure {
  code: BuildFailureCode;
  /** One line per problem, `file:line:col: …` where the problem has a position. */
  problems: string[];
}

export interface PolicyBuildOptions {
  /** "Now" (epoch ms) for `until` dates and for policy tests without a `time`; default the clock. */
  now?: number;
  /** Errors reported per policy file (default 100, 0 for all); the rest are counted in `E_TOO_MANY_ERRORS`. */
  maxErrorsPerFile?: number;
  /** The last stage to run (default `tests`): the language server stops after `check`, explain after `compile`. */
  until?: BuildStage;
  /**
   * The upstreams configured: an upstream the policy declares that is neither one of them nor the
   * built-in `gateway` fails the build (`POLICY_UPSTREAM_UNKNOWN`). Absent: not checked.
   */
  upstreams?: ReadonlySet<string>;
  /**
   * Do not run the policy tests (they passed on this very bundle before); `tests` stays empty and
   * `testsRun` false. The policy still compiles.
   */
  skipTests?: boolean;
  /** The `.duty` files already parsed, one per `files.policies` (the language server keeps each file's parse between edits). */
  parsed?: readonly ParseResult[];
}

/** What a build found. */
export interface PolicyBuild {
  files: PolicyFiles;
  /** Display path → text of every policy and test file, for rendering diagnostics. */
  sources: Map<string, string>;
  /** The checker's and the separation analysis's findings, sorted by position. */
  diagnostics: Diagnostic[];
  /** Errors left out by `maxErrorsPerFile` (each file's are counted in its `E_TOO_MANY_ERRORS`). */
  omittedErrors: number;
  /** The separation analysis's reachability table (empty when the policy did not check). */
  reachability: ReachabilityRow[];
  /** The checked policy: null when the checker found an error (not when only the analysis did). */
  policy: CheckedPolicy | null;
  /** Null when a stage before `compile` failed, or `until` is `check`. */
  compiled: CompiledPolicy | null;
  /** Whether the policy tests ran (`tests` holds every result then, passed or not). */
  testsRun: boolean;
  tests: PolicyTestResult[];
  /** The first stage that failed, or null. */
  failure: BuildFailure | null;
  /** Milliseconds spent in each stage that ran. */
  ms: { check: number; compile: number; tests: number };
}

const STAGES: readonly BuildStage[] = ["check", "compile", "tests"];
const NO_SOURCES: ReadonlyMap<string, string> = new Map();

/**
 * Builds a policy from its files: `.duty` sources and `*.test.toml` policy tests.
 *
 * @example
 * const build = buildPolicy(classifyPolicyFiles(bundle.files, ""), { upstreams: new Set(["changes"]) });
 * if (build.failure) console.error(build.failure.code, build.failure.problems);
 * else serve(build.compiled!);
 */
export function buildPolicy(files: PolicyFiles, options: PolicyBuildOptions = {}): PolicyBuild {
  const until = STAGES.indexOf(options.until ?? "tests");
  const sources = new Map([...files.policies, ...files.tests].map((s) => [s.path, s.text]));
  const build: PolicyBuild = { files, sources, diagnostics: [], omittedErrors: 0, reachability: [], policy: null, compiled: null, testsRun: false, tests: [], failure: null, ms: { check: 0, compile: 0, tests: 0 } };
  const timed = <T>(stage: keyof PolicyBuild["ms"], run: () => T): T => {
    const started = performance.now();
    try {
      return run();
    } finally {
      build.ms[stage] = performance.now() - started;
    }
  };
  const fail = (code: BuildFailureCode, problems: string[]): PolicyBuild => Object.assign(build, { failure: { code, problems } });

  if (files.policies.length === 0) return fail("POLICY_EMPTY", ["no `.duty` files"]);

  // Stage `check`: parse, type-check, and the static separation analysis, whose errors (an admin
  // function reachable on the operational channel) refuse the policy like the checker's.
  timed("check", () => {
    const loaded = checkParsedPolicy(options.parsed ?? files.policies.map(parsePolicySource), { now: options.now, maxErrorsPerFile: options.maxErrorsPerFile });
    build.policy = loaded.policy;
    build.omittedErrors = loaded.omittedErrors;
    build.diagnostics = loaded.diagnostics;
    if (loaded.policy) {
      const analysis = analyzeSeparation(loaded.policy);
      build.reachability = analysis.rows;
      build.diagnostics = sortDiagnostics([...loaded.diagnostics, ...analysis.diagnostics]);
    }
  });
  if (!build.policy || hasErrors(build.diagnostics)) {
    // The head line of each error (`file:line:col: error[CODE]: message`): without the sources, no snippet is cut.
    return fail("POLICY_INVALID", build.diagnostics.filter((d) => d.severity === "error").map((d) => renderDiagnostic(d, NO_SOURCES).split("\n")[0]!));
  }
  if (options.upstreams) {
    const known = options.upstreams;
    const missing = build.policy.upstreams.filter((u) => u !== GATEWAY_UPSTREAM && !known.has(u));
    if (missing.length) return fail("POLICY_UPSTREAM_UNKNOWN", missing.map((u) => `upstream \`${u}\` is declared by the policy but not configured (add [upstreams.${u}] to the config)`));
  }
  if (until < STAGES.indexOf("compile")) return build;

  const policy = build.policy;
  build.compiled = timed("compile", () => compilePolicy(policy));
  if (until < STAGES.indexOf("tests") || options.skipTests) return build;

  const compiled = build.compiled;
  build.tests = timed("tests", () => runPolicyTests(compiled, files.tests, { now: options.now }));
  build.testsRun = true;
  const failed = build.tests.filter((t) => !t.passed);
  if (failed.length) return fail("POLICY_TESTS_FAILED", failed.map((t) => `${t.file}:${t.line}: ${t.name}: ${t.failure}`));
  return build;
}

/**
 * Builds the policy of a directory on disk; rule ids and diagnostics name its files as
 * `displayDir/<path>` (default `dir` as given). The directory must exist.
 */
export function buildPolicyDirectory(dir: string, options: PolicyBuildOptions & { displayDir?: string } = {}): PolicyBuild {
  return buildPolicy(classifyPolicyFiles(readPolicyDirectory(dir), options.displayDir ?? dir), options);
}
