// `gateway check [DIR]`: the CI dry-run. Builds the policy as the gateway does (parse, type-check,
// separation analysis, compile, the policy tests: src/policy/build.ts) and, with flags, verifies
// the bundle's signatures, checks role assignments and replays recorded traffic. A plain function
// over a params struct.
//
// Every run builds one `CheckReport` value — its gates, each passed, failed, errored or skipped,
// and the exit code they decide — and each format renders that value, so text, JSON, GitHub
// annotations and JUnit cannot disagree with the exit code or with each other.
import { existsSync, readFileSync, statSync } from "node:fs";
import { parse as parseToml, TomlError } from "smol-toml";
import { checkAssignments, policyCoverage, githubAnnotation, listPolicyTests, renderDiagnostic, renderGithubAnnotation, renderReachabilityTable } from "../../dsl/mod.ts";
import type { CheckedPolicy, CompiledPolicy, Diagnostic, PolicyTestName, PolicyTestResult, ReachabilityRow, Span } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import { buildPolicyDirectory, ruleSpan } from "../policy/mod.ts";
import { unformattedFiles } from "./fmt.ts";
import { fileErrorReason } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

export type CheckFormat = "text" | "json" | "github" | "junit";

/** Version of the `--format json` report's shape; a consumer checks it before reading. */
export const CHECK_JSON_SCHEMA_VERSION = 1;

export interface CheckParams {
  dir: string;
  format: CheckFormat;
  /** "Now" for `until` checks and policy tests without a time (epoch ms). */
  now?: number;
  /** Warnings fail the check as errors (exit 1); the policy is still compiled and its tests run. */
  warningsAsErrors?: boolean;
  /** Errors reported per policy file (default 100, 0 for all); the rest are counted in `E_TOO_MANY_ERRORS`. */
  maxErrors?: number;
  /** A role-assignment export (TOML or JSON) to check against the `exclusive` sets. */
  assignments?: string;
  /** Report which side of each rule the policy tests exercised (`--coverage`). */
  coverage?: boolean;
  /** Fail (exit 2) when the tests exercise less than this percentage of rule sides (`--min-coverage N`); implies `coverage`. */
  minCoverage?: number;
  /** Gates that run after the policy compiled (skipped, and reported so, when it did not). */
  extraSteps?: CheckStep[];
}

export interface CheckContext {
  dir: string;
  compiled: CompiledPolicy;
  format: CheckFormat;
  io: Io;
}

/** A finding of a step: a GitHub annotation, and a line of its JUnit failure. */
export interface CheckAnnotation {
  level: "error" | "warning";
  title: string;
  message: string;
  /** The place it concerns (a rule of the policy, a file), when there is one. */
  at?: { file: string; line: number; col?: number };
}

export interface CheckStepResult {
  /** 0 when the gate passes; else the exit code it asks for (64: it could not judge). */
  exitCode: number;
  /** Lines for text output (also the body of a JUnit failure). */
  text: string[];
  annotations?: CheckAnnotation[];
  /** The step's part of the JSON report, under its `name`. */
  json?: unknown;
}

/** A gate that runs once the policy compiled: bundle signatures, role assignments, replay. */
export interface CheckStep {
  /** Key of its part of the JSON report: `signatures`, `assignments`, `replay`. */
  name: string;
  /** What it checks, as its JUnit test case and in text: `bundle signatures`. */
  title: string;
  run(ctx: CheckContext): Promise<CheckStepResult>;
}

/** One gate's outcome: a JUnit test case, an entry of the JSON report's `gates`. */
export interface GateOutcome {
  name: string;
  title: string;
  /** `error`: the gate could not judge (an unreadable file; exit 64). */
  status: "passed" | "failed" | "error" | "skipped";
  exitCode: number;
  seconds: number;
  /** Why it failed or was skipped, in one line. */
  message?: string;
  /** The failure's detail lines. */
  detail: string[];
}

/** Everything one `gateway check` found; every format renders this value. */
export interface CheckReport {
  exitCode: number;
  summary: string;
  /** Errors found, also those past the per-file limit that are only counted. */
  errorCount: number;
  /** A problem that stopped the check before the policy was read (no directory, no `.duty` file). */
  fatal: string | null;
  startedAt: Date;
  seconds: number;
  diagnostics: Diagnostic[];
  reachability: ReachabilityRow[];
  tests: PolicyTestResult[];
  /** Policy tests that did not run because the policy did not compile. */
  testsNotRun: PolicyTestName[];
  /** The gates in the order they decide the exit code: `policy`, `tests`, then the steps. */
  gates: GateOutcome[];
  /** Results of the steps that ran, by step name. */
  steps: Map<string, CheckStepResult>;
  sources: Map<string, string>;
  /** Policy files not in the canonical layout: a hint to run `gateway fmt`, never a failure. */
  unformatted: string[];
  dir: string;
}

const NOT_COMPILED = "not run: the policy did not compile";

/** Errors among `diagnostics`; `E_TOO_MANY_ERRORS` stands for the errors it counts, so it is not one. */
function countErrors(diagnostics: readonly Diagnostic[]): number {
  return diagnostics.filter((d) => d.severity === "error" && d.code !== "E_TOO_MANY_ERRORS").length;
}

/** Runs the check and prints its report in `params.format`; returns the exit code (see EXIT). */
export async function runCheck(params: CheckParams, io: Io): Promise<number> {
  const report = await buildCheckReport(params, io);
  if (report.fatal) io.err(`error: ${report.fatal}`);
  if (report.fatal === null || params.format !== "text") for (const chunk of RENDERERS[params.format](report)) io.out(chunk);
  return report.exitCode;
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

/** Runs every gate of the check; the exit code is the first failing gate's. */
export async function buildCheckReport(params: CheckParams, io: Io): Promise<CheckReport> {
  const { dir, format } = params;
  const started = performance.now();
  const report: CheckReport = { exitCode: EXIT.ok, summary: "", errorCount: 0, fatal: null, startedAt: new Date(), seconds: 0, diagnostics: [], reachability: [], tests: [], testsNotRun: [], gates: [], steps: new Map(), sources: new Map(), unformatted: [], dir };
  const fatal = (message: string, exitCode: number): CheckReport => {
    report.gates.push({ name: "policy", title: "parse and type-check", status: exitCode === EXIT.usage ? "error" : "failed", exitCode, seconds: seconds(started), message, detail: [] });
    return Object.assign(report, { exitCode, fatal: message, summary: message, errorCount: 1, seconds: seconds(started) });
  };
  if (!existsSync(dir)) return fatal(`policy directory \`${dir}\` does not exist`, EXIT.usage);
  if (!statSync(dir).isDirectory()) return fatal(`\`${dir}\` is not a directory`, EXIT.usage);
  const build = buildPolicyDirectory(dir, { now: params.now, maxErrorsPerFile: params.maxErrors });
  const { files, compiled } = build;
  if (build.failure?.code === "POLICY_EMPTY") return fatal(`no \`.duty\` files under \`${dir}\``, EXIT.policyErrors);
  report.sources = build.sources;
  if (format === "text") report.unformatted = unformattedFiles(files.policies);

  // Gate `policy`: parse, type-check, separation analysis, compile.
  report.diagnostics = build.diagnostics;
  report.reachability = build.reachability;
  // `--warnings-as-errors`: every warning is reported as an error and fails this gate; the policy
  // compiled before, so its tests and the steps still run and CI sees everything at once.
  if (params.warningsAsErrors) report.diagnostics = report.diagnostics.map((d) => (d.severity === "warning" ? { ...d, severity: "error" } : d));
  const errors = report.diagnostics.filter((d) => d.severity === "error");
  const policyPassed = compiled !== null && errors.length === 0;
  report.gates.push({
    name: "policy", title: "parse and type-check", status: policyPassed ? "passed" : "failed", exitCode: policyPassed ? EXIT.ok : EXIT.policyErrors, seconds: (build.ms.check + build.ms.compile) / 1000,
    message: policyPassed ? undefined : `${countErrors(errors) + build.omittedErrors} error${countErrors(errors) + build.omittedErrors === 1 ? "" : "s"}${compiled && params.warningsAsErrors ? " (warnings, with --warnings-as-errors)" : ""}`,
    detail: errors.map((d) => `${d.span.file}:${d.span.line}:${d.span.col}: ${d.code}: ${d.message}`),
  });

  // Gate `tests`: the policy tests (listed as not run when the policy did not compile).
  report.tests = build.tests;
  if (!compiled) report.testsNotRun = listPolicyTests(files.tests);
  const failed = report.tests.filter((t) => !t.passed);
  report.gates.push({
    name: "tests", title: "policy tests", seconds: build.ms.tests / 1000,
    ...(!compiled ? { status: "skipped", exitCode: EXIT.ok, message: NOT_COMPILED } : failed.length ? { status: "failed", exitCode: EXIT.testsFailed, message: `${failed.length} of ${report.tests.length} failed` } : { status: "passed", exitCode: EXIT.ok }),
    detail: failed.map((t) => `${t.file}:${t.line}: ${t.name}: ${t.failure}`),
  });

  // The steps, each a gate of its own.
  const wantsCoverage = params.coverage || params.minCoverage !== undefined;
  const steps = [...(wantsCoverage ? [coverageStep(report.tests, params.minCoverage)] : []), ...(params.assignments ? [assignmentsStep(params.assignments)] : []), ...(params.extraSteps ?? [])];
  for (const step of steps) {
    if (!compiled) {
      report.gates.push({ name: step.name, title: step.title, status: "skipped", exitCode: EXIT.ok, seconds: 0, message: NOT_COMPILED, detail: [] });
      continue;
    }
    const stepStarted = performance.now();
    const r = await step.run({ dir, compiled, format, io });
    report.steps.set(step.name, r);
    const status = r.exitCode === EXIT.ok ? "passed" : r.exitCode === EXIT.usage ? "error" : "failed";
    const firstError = r.annotations?.find((a) => a.level === "error")?.message ?? r.text[0];
    report.gates.push({ name: step.name, title: step.title, status, exitCode: r.exitCode, seconds: seconds(stepStarted), message: status === "passed" ? undefined : firstError, detail: r.text });
  }

  report.exitCode = report.gates.find((g) => g.exitCode !== EXIT.ok)?.exitCode ?? EXIT.ok;
  report.errorCount = countErrors(report.diagnostics) + build.omittedErrors;
  const warnings = report.diagnostics.filter((d) => d.severity !== "error").length;
  const n = (count: number, word: string) => `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
  report.summary = compiled
    ? `${n(files.policies.length, "file")}, ${compiled.policy.duties.length} duties, ${compiled.policy.grants.length} grants; ${n(report.errorCount, "error")}, ${n(warnings, "warning")}; policy tests: ${report.tests.length - failed.length} passed, ${failed.length} failed${coverageSummary(report.steps.get("coverage"))}`
    : `${n(files.policies.length, "file")}; ${n(report.errorCount, "error")}, ${n(warnings, "warning")}; policy not compiled`;
  report.seconds = seconds(started);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Formats: each renders the one report.

/** Each format's output, as the chunks `Io.out` prints (one line or one block each). */
const RENDERERS: Record<CheckFormat, (report: CheckReport) => string[]> = { text: renderText, json: renderJson, github: renderGithub, junit: renderJunit };

function renderText(r: CheckReport): string[] {
  const lines: string[] = [];
  for (const d of r.diagnostics) lines.push(renderDiagnostic(d, r.sources) + "\n");
  if (r.reachability.length) {
    lines.push("separation of duties (reachability, conditions counted as may-hold):");
    for (const line of renderReachabilityTable(r.reachability)) lines.push("  " + line);
    lines.push("");
  }
  for (const t of r.tests.filter((t) => !t.passed)) {
    lines.push(`${t.file}:${t.line}: FAIL ${t.name}: ${t.failure}`);
    if (t.decision) for (const reason of t.decision.reasons) lines.push(`    ${reason.held ? "held" : "not held"}  ${reason.rule}  ${reason.why}`);
  }
  for (const gate of r.gates) {
    if (gate.status === "skipped") lines.push(`${gate.title}: ${gate.message}`);
    else lines.push(...(r.steps.get(gate.name)?.text ?? []));
  }
  // A hint, not a finding: the layout never changes what a policy decides.
  if (r.unformatted.length) lines.push(`hint: not in the canonical layout: ${r.unformatted.join(", ")} (\`gateway fmt ${r.dir}\` rewrites ${r.unformatted.length === 1 ? "it" : "them"})`);
  lines.push(`${r.exitCode === EXIT.ok ? "ok" : "FAILED"}: ${r.summary}`);
  return lines;
}

function renderJson(r: CheckReport): string[] {
  const passed = r.tests.filter((t) => t.passed).length;
  return [JSON.stringify({
    schema_version: CHECK_JSON_SCHEMA_VERSION,
    ok: r.exitCode === EXIT.ok,
    exitCode: r.exitCode,
    summary: r.summary,
    ...(r.fatal ? { error: r.fatal } : {}),
    counts: {
      errors: r.errorCount,
      warnings: r.diagnostics.filter((d) => d.severity !== "error").length,
      tests: r.tests.length + r.testsNotRun.length,
      passed,
      failed: r.tests.length - passed,
      skipped: r.testsNotRun.length,
    },
    gates: r.gates.map((g) => ({ name: g.name, title: g.title, status: g.status, exitCode: g.exitCode, ...(g.message ? { message: g.message } : {}) })),
    diagnostics: r.diagnostics,
    reachability: r.reachability,
    tests: r.tests.map((t) => ({ file: t.file, line: t.line, name: t.name, passed: t.passed, failure: t.failure, decision: t.decision && { allow: t.decision.allow, code: t.decision.code, duty: t.decision.duty, decidedBy: t.decision.decidedBy } })),
    ...Object.fromEntries([...r.steps].map(([name, s]) => [name, s.json])),
  }, null, 2)];
}

function renderGithub(r: CheckReport): string[] {
  const lines = r.diagnostics.map(renderGithubAnnotation);
  for (const t of r.tests) if (!t.passed) lines.push(githubAnnotation("error", { file: t.file, line: t.line, title: "policy test failed" }, `${t.name}: ${t.failure}`));
  for (const gate of r.gates) {
    const step = r.steps.get(gate.name);
    const annotations = step?.annotations ?? [];
    for (const a of annotations) lines.push(githubAnnotation(a.level, { file: a.at?.file, line: a.at?.line, col: a.at?.col, title: a.title }, a.message));
    // A gate that failed says so even when it had nothing to point at.
    const pointed = gate.name === "tests" || (gate.name === "policy" && !r.fatal) || annotations.some((a) => a.level === "error");
    if ((gate.status === "failed" || gate.status === "error") && !pointed) lines.push(githubAnnotation("error", { title: gate.title }, gate.message ?? r.summary));
    if (gate.status === "skipped" && gate.name !== "tests") lines.push(githubAnnotation("notice", { title: gate.title }, gate.message ?? "not run"));
  }
  lines.push(r.summary);
  return lines;
}

/** Text as XML 1.0 allows it: escaped, and without the control characters no XML document may hold. */
function xmlText(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "\uFFFD");
}

/** An attribute value: also keeps its line breaks (a parser folds literal ones into spaces). */
function xmlAttribute(s: string): string {
  return xmlText(s).replace(/\r/g, "&#13;").replace(/\n/g, "&#10;").replace(/\t/g, "&#9;");
}

interface JunitCase {
  classname: string;
  name: string;
  seconds: number;
  outcome: "passed" | "failed" | "error" | "skipped";
  message?: string;
  type?: string;
  body?: string;
}

/**
 * JUnit XML as strict consumers read it (the Ant / Jenkins schema): `testsuites` and each
 * `testsuite` carry `tests`, `failures`, `errors`, `skipped` and `time`, each suite its
 * `timestamp`; a failing gate is a `<failure>`, a gate that could not judge an `<error>`, a test
 * that did not run `<skipped>`. One suite holds the gates, one suite per test file its tests.
 */
function renderJunit(r: CheckReport): string[] {
  const timestamp = r.startedAt.toISOString().slice(0, 19);
  const suites: Array<{ name: string; cases: JunitCase[]; properties?: Record<string, string> }> = [];
  suites.push({
    name: "gateway check",
    properties: { exit_code: String(r.exitCode), summary: r.summary },
    cases: r.gates.filter((g) => g.name !== "tests").map((g) => ({ classname: "gateway check", name: g.title, seconds: g.seconds, outcome: g.status, message: g.message, type: g.name, body: g.detail.join("\n") })),
  });
  const byFile = new Map<string, JunitCase[]>();
  const add = (file: string, c: JunitCase) => byFile.set(file, [...(byFile.get(file) ?? []), c]);
  const testSeconds = (r.gates.find((g) => g.name === "tests")?.seconds ?? 0) / Math.max(1, r.tests.length);
  for (const t of r.tests) add(t.file, { classname: t.file, name: t.name, seconds: testSeconds, outcome: t.passed ? "passed" : "failed", message: t.failure, type: "policy test", body: `${t.file}:${t.line}` });
  for (const t of r.testsNotRun) add(t.file, { classname: t.file, name: t.name, seconds: 0, outcome: "skipped", message: NOT_COMPILED });
  for (const [file, cases] of byFile) suites.push({ name: file, cases });

  const count = (cases: JunitCase[], outcome: JunitCase["outcome"]) => cases.filter((c) => c.outcome === outcome).length;
  const time = (s: number) => s.toFixed(3);
  const totals = (cases: JunitCase[]) => `tests="${cases.length}" failures="${count(cases, "failed")}" errors="${count(cases, "error")}" skipped="${count(cases, "skipped")}"`;
  const all = suites.flatMap((s) => s.cases);
  const lines = [`<?xml version="1.0" encoding="UTF-8"?>`, `<testsuites name="gateway check" ${totals(all)} time="${time(r.seconds)}" timestamp="${timestamp}">`];
  for (const [id, suite] of suites.entries()) {
    const suiteSeconds = suite.cases.reduce((sum, c) => sum + c.seconds, 0);
    lines.push(`  <testsuite name="${xmlAttribute(suite.name)}" id="${id}" ${totals(suite.cases)} time="${time(suiteSeconds)}" timestamp="${timestamp}">`);
    if (suite.properties) {
      lines.push(`    <properties>`);
      for (const [name, value] of Object.entries(suite.properties)) lines.push(`      <property name="${xmlAttribute(name)}" value="${xmlAttribute(value)}"/>`);
      lines.push(`    </properties>`);
    }
    for (const c of suite.cases) {
      const open = `    <testcase classname="${xmlAttribute(c.classname)}" name="${xmlAttribute(c.name)}" time="${time(c.seconds)}"`;
      const attrs = `message="${xmlAttribute(c.message ?? c.outcome)}" type="${xmlAttribute(c.type ?? c.outcome)}"`;
      if (c.outcome === "passed") lines.push(`${open}/>`);
      else if (c.outcome === "skipped") lines.push(`${open}><skipped message="${xmlAttribute(c.message ?? "skipped")}"/></testcase>`);
      else lines.push(`${open}><${c.outcome === "error" ? "error" : "failure"} ${attrs}>${xmlText(c.body ?? "")}</${c.outcome === "error" ? "error" : "failure"}></testcase>`);
    }
    lines.push(`  </testsuite>`);
  }
  lines.push(`</testsuites>`);
  return [lines.join("\n")];
}

// ---------------------------------------------------------------------------------------------
// Rule coverage.

function coverageSummary(step: CheckStepResult | undefined): string {
  const json = step?.json as { percent: number } | undefined;
  return json ? `; rule coverage ${Math.floor(json.percent * 10) / 10}%` : "";
}

/** The `coverage` gate: every rule's sides the tests exercised; fails below `minimum` percent. */
function coverageStep(tests: readonly PolicyTestResult[], minimum: number | undefined): CheckStep {
  return {
    name: "coverage",
    title: "rule coverage",
    async run({ compiled }) {
      const c = policyCoverage(compiled.policy, tests);
      const percent = Math.floor(c.percent * 10) / 10;
      const below = minimum !== undefined && c.percent < minimum;
      const mark = (hit: boolean) => (hit ? "yes" : "NO ");
      const text = [
        `rule coverage: ${c.hit} of ${c.total} rule sides exercised by the policy tests (${percent}%)${minimum !== undefined ? `, minimum ${minimum}%` : ""}`,
        "  allow deny  rule",
        ...c.rules.map((r) => `  ${mark(r.allow)}   ${mark(r.deny)}  ${r.kind.padEnd(9)} ${r.at}${r.rule.endsWith(r.at) ? "" : `  ${r.rule}`}`),
      ];
      const missing = c.rules.filter((r) => !r.allow || !r.deny);
      const annotations: CheckAnnotation[] = missing.map((r) => {
        const span = ruleSpan(compiled.policy, r.rule);
        const sides = [!r.allow ? "allow" : null, !r.deny ? "deny" : null].filter(Boolean).join(" and ");
        return { level: "warning", title: "rule coverage", message: `no policy test exercises the ${sides} side of this ${r.kind}`, at: span ? { file: span.file, line: span.line, col: span.col } : undefined };
      });
      if (below) annotations.unshift({ level: "error", title: "rule coverage", message: `policy tests exercise ${percent}% of rule sides, below the minimum of ${minimum}%` });
      return { exitCode: below ? EXIT.testsFailed : EXIT.ok, text, annotations, json: { percent: c.percent, hit: c.hit, total: c.total, minimum: minimum ?? null, rules: c.rules } };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Role assignments.

/**
 * Reads `{ "alice": ["developer"] }`, `[people.alice] roles = [...]` or `[{ sub, roles }]` (JSON or TOML).
 * Throws `GatewayError` `ASSIGNMENTS_UNREADABLE` (cannot read the file) or `ASSIGNMENTS_MALFORMED`
 * (not JSON/TOML, or not one of the shapes; the message names the file, position or person).
 */
export function readAssignments(path: string): Array<{ sub: string; roles: string[] }> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new GatewayError("ASSIGNMENTS_UNREADABLE", `cannot read role assignments \`${path}\`: ${fileErrorReason(e)}`);
  }
  const malformed = (where: string, message: string) => new GatewayError("ASSIGNMENTS_MALFORMED", `\`${where}\`: ${message}`);
  let doc: unknown;
  if (path.endsWith(".json")) {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw malformed(path, `not valid JSON (${(e as Error).message.replace(/^JSON Parse error: /, "").toLowerCase()})`);
    }
  } else {
    try {
      doc = parseToml(text);
    } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      const reason = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw malformed(`${path}:${e.line}:${e.column}`, `invalid TOML: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`);
    }
  }
  const out: Array<{ sub: string; roles: string[] }> = [];
  const take = (sub: string, v: unknown) => {
    const roles = Array.isArray(v) ? v : (v as { roles?: unknown })?.roles;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === "string")) throw malformed(path, `\`${sub}\`: roles must be a list of strings`);
    out.push({ sub, roles: roles as string[] });
  };
  if (doc === null || typeof doc !== "object") throw malformed(path, "expected a table of people or a list of `{sub, roles}`");
  const list = Array.isArray(doc) ? doc : (doc as Record<string, unknown>).people ?? (doc as Record<string, unknown>).assignments ?? doc;
  if (Array.isArray(list)) {
    for (const [i, p] of list.entries()) {
      const sub = (p as { sub?: unknown } | null)?.sub;
      if (typeof sub !== "string") throw malformed(path, `entry ${i + 1}: missing \`sub\``);
      take(sub, p);
    }
  } else for (const [sub, v] of Object.entries(list as Record<string, unknown>)) take(sub, v);
  return out;
}

function assignmentsStep(path: string): CheckStep {
  return { name: "assignments", title: "role assignments", run: async ({ compiled }) => checkAssignmentsFile(compiled, path) };
}

function checkAssignmentsFile(compiled: CompiledPolicy, path: string): CheckStepResult {
  let people: Array<{ sub: string; roles: string[] }>;
  try {
    people = readAssignments(path);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    return { exitCode: EXIT.usage, text: [`error[${e.code}]: ${e.message}`], annotations: [{ level: "error", title: "role assignments", message: `${e.message} (${e.code})` }], json: { error: e.message, code: e.code } };
  }
  const violations = checkAssignments(compiled.policy, people);
  const breaking = violations.filter((v) => v.constraint);
  const text = [`role assignments: ${people.length} people, ${breaking.length} violation${breaking.length === 1 ? "" : "s"}`];
  for (const [i, v] of violations.entries()) {
    if (v.constraint) text.push(`  ${v.sub}: holds ${v.held.join(" and ")}, which ${v.constraint.slice("exclusive:".length)} makes exclusive`);
    // Each violation of a person repeats their unknown roles: say it once, after their last one.
    const lastOfPerson = violations[i + 1]?.sub !== v.sub;
    if (v.unknownRoles.length && lastOfPerson) text.push(`  ${v.sub}: role${v.unknownRoles.length > 1 ? "s" : ""} not in the policy: ${v.unknownRoles.join(", ")}`);
  }
  return {
    exitCode: breaking.length ? EXIT.sodViolations : EXIT.ok,
    text,
    // Each points at the `exclusive` it breaks; the message names the person and the export.
    annotations: breaking.map((v) => {
      const span = ruleSpan(compiled.policy, v.constraint);
      return { level: "error", title: "separation of duties", message: `${v.sub} holds ${v.held.join(" and ")} in ${path}, which this \`exclusive\` forbids`, at: span ? { file: span.file, line: span.line, col: span.col } : undefined };
    }),
    json: { people: people.length, violations },
  };
}
