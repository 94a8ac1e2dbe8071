// `gateway check [DIR]`: the CI dry-run. Parse, type-check, compile, run the policy tests,
// and (with flags) verify the bundle's signatures, analyse separation of duties, check role
// assignments, and replay recorded traffic. A plain function over a params struct.
import { existsSync, statSync } from "node:fs";
import { compilePolicy, hasErrors, loadPolicy, renderDiagnostic, renderGithubAnnotation, type CompiledPolicy, type Diagnostic, runPolicyTests, type PolicyTestResult, analyzeSeparation, checkAssignments, renderReachabilityTable, type ReachabilityRow } from "../../dsl/mod.ts";
import { readFileSync } from "node:fs";
import { parse as parseToml, TomlError } from "smol-toml";
import { GatewayError } from "../errors.ts";
import { classifyPolicyFiles, readPolicyDirectory } from "../policy/sources.ts";
import { EXIT, type Io, fileErrorReason } from "./io.ts";

export type CheckFormat = "text" | "json" | "github" | "junit";

export interface CheckParams {
  dir: string;
  format: CheckFormat;
  /** "Now" for `until` checks and policy tests without a time (epoch ms). */
  now?: number;
  /** Errors reported per policy file (default 100, 0 for all); the rest are counted in `E_TOO_MANY_ERRORS`. */
  maxErrors?: number;
  /** A role-assignment export (TOML or JSON) to check against the `exclusive` sets. */
  assignments?: string;
  /** Extra steps that run after the policy compiled; each returns its exit code (0 = fine). */
  extraSteps?: Array<(ctx: CheckContext) => Promise<CheckStepResult>>;
}

export interface CheckContext {
  dir: string;
  compiled: CompiledPolicy;
  format: CheckFormat;
  io: Io;
}

export interface CheckStepResult {
  exitCode: number;
  /** Lines for text output. */
  text: string[];
  /** Annotations for GitHub output. */
  github?: string[];
  /** Merged into the JSON report under `name`. */
  json?: unknown;
  name: string;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function junit(tests: PolicyTestResult[], diagnostics: Diagnostic[]): string {
  const failures = tests.filter((t) => !t.passed).length;
  const errs = diagnostics.filter((d) => d.severity === "error");
  const lines = [`<?xml version="1.0" encoding="UTF-8"?>`, `<testsuites tests="${tests.length + 1}" failures="${failures + (errs.length ? 1 : 0)}">`];
  lines.push(`  <testsuite name="policy check" tests="1" failures="${errs.length ? 1 : 0}">`);
  lines.push(`    <testcase classname="check" name="parse and type-check">${errs.length ? `<failure message="${errs.length} error(s)">${xmlEscape(errs.map((d) => `${d.span.file}:${d.span.line}:${d.span.col}: ${d.code}: ${d.message}`).join("\n"))}</failure>` : ""}</testcase>`);
  lines.push(`  </testsuite>`);
  const byFile = new Map<string, PolicyTestResult[]>();
  for (const t of tests) byFile.set(t.file, [...(byFile.get(t.file) ?? []), t]);
  for (const [file, ts] of byFile) {
    lines.push(`  <testsuite name="${xmlEscape(file)}" tests="${ts.length}" failures="${ts.filter((t) => !t.passed).length}">`);
    for (const t of ts) {
      lines.push(`    <testcase classname="${xmlEscape(file)}" name="${xmlEscape(t.name)}">${t.passed ? "" : `<failure message="${xmlEscape(t.failure ?? "failed")}">${xmlEscape(`${t.file}:${t.line}`)}</failure>`}</testcase>`);
    }
    lines.push(`  </testsuite>`);
  }
  lines.push(`</testsuites>`);
  return lines.join("\n");
}

/** Runs the check; returns the exit code (see EXIT). */
export async function runCheck(params: CheckParams, io: Io): Promise<number> {
  const { dir, format } = params;
  if (!existsSync(dir)) {
    io.err(`error: policy directory \`${dir}\` does not exist`);
    return EXIT.usage;
  }
  if (!statSync(dir).isDirectory()) {
    io.err(`error: \`${dir}\` is not a directory`);
    return EXIT.usage;
  }
  const files = classifyPolicyFiles(readPolicyDirectory(dir), dir);
  const sourceMap = new Map([...files.policies, ...files.tests].map((s) => [s.path, s.text]));
  const loaded = loadPolicy(files.policies, { now: params.now, maxErrorsPerFile: params.maxErrors });
  const { policy } = loaded;
  const diagnostics = [...loaded.diagnostics];
  if (files.policies.length === 0) {
    io.err(`error: no \`.duty\` files under \`${dir}\``);
    return EXIT.policyErrors;
  }
  let reachability: ReachabilityRow[] = [];
  if (policy) {
    const analysis = analyzeSeparation(policy);
    reachability = analysis.rows;
    diagnostics.push(...analysis.diagnostics);
    diagnostics.sort((a, b) => a.span.file.localeCompare(b.span.file) || a.span.start - b.span.start);
  }
  let exitCode: number = hasErrors(diagnostics) ? EXIT.policyErrors : EXIT.ok;
  const compiled = policy && exitCode === EXIT.ok ? compilePolicy(policy) : null;
  const tests = compiled ? runPolicyTests(compiled, files.tests, { now: params.now }) : [];
  const failed = tests.filter((t) => !t.passed);
  if (exitCode === EXIT.ok && failed.length) exitCode = EXIT.testsFailed;

  const steps: CheckStepResult[] = [];
  if (compiled && params.assignments) {
    const r = assignmentsStep(compiled, params.assignments);
    steps.push(r);
    if (exitCode === EXIT.ok && r.exitCode !== EXIT.ok) exitCode = r.exitCode;
  }
  if (compiled) {
    for (const step of params.extraSteps ?? []) {
      const r = await step({ dir, compiled, format, io });
      steps.push(r);
      if (exitCode === EXIT.ok && r.exitCode !== EXIT.ok) exitCode = r.exitCode;
    }
  }

  // E_TOO_MANY_ERRORS stands for the errors it counts: the summary counts them, not it.
  const errors = diagnostics.filter((d) => d.severity === "error" && d.code !== "E_TOO_MANY_ERRORS").length + loaded.omittedErrors;
  const warnings = diagnostics.filter((d) => d.severity !== "error").length;
  const n = (count: number, word: string) => `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
  const summary = compiled
    ? `${n(files.policies.length, "file")}, ${compiled.policy.duties.length} duties, ${compiled.policy.grants.length} grants; ${n(errors, "error")}, ${n(warnings, "warning")}; policy tests: ${tests.length - failed.length} passed, ${failed.length} failed`
    : `${n(files.policies.length, "file")}; ${n(errors, "error")}, ${n(warnings, "warning")}; policy not compiled`;

  switch (format) {
    case "json":
      io.out(JSON.stringify({
        ok: exitCode === EXIT.ok,
        exitCode,
        summary,
        diagnostics,
        reachability,
        tests: tests.map((t) => ({ file: t.file, line: t.line, name: t.name, passed: t.passed, failure: t.failure, decision: t.decision && { allow: t.decision.allow, code: t.decision.code, duty: t.decision.duty, decidedBy: t.decision.decidedBy } })),
        ...Object.fromEntries(steps.map((s) => [s.name, s.json])),
      }, null, 2));
      break;
    case "github":
      for (const d of diagnostics) io.out(renderGithubAnnotation(d));
      for (const t of failed) io.out(`::error file=${t.file},line=${t.line},title=policy test failed::${t.name}: ${t.failure}`);
      for (const s of steps) for (const line of s.github ?? []) io.out(line);
      io.out(summary);
      break;
    case "junit":
      io.out(junit(tests, diagnostics));
      break;
    default:
      for (const d of diagnostics) io.out(renderDiagnostic(d, sourceMap) + "\n");
      if (reachability.length) {
        io.out("separation of duties (reachability, conditions counted as may-hold):");
        for (const line of renderReachabilityTable(reachability)) io.out("  " + line);
        io.out("");
      }
      for (const t of failed) {
        io.out(`${t.file}:${t.line}: FAIL ${t.name}: ${t.failure}`);
        if (t.decision) for (const r of t.decision.reasons) io.out(`    ${r.held ? "held" : "not held"}  ${r.rule}  ${r.why}`);
      }
      for (const s of steps) for (const line of s.text) io.out(line);
      io.out(`${exitCode === EXIT.ok ? "ok" : "FAILED"}: ${summary}`);
  }
  return exitCode;
}

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

function assignmentsStep(compiled: CompiledPolicy, path: string): CheckStepResult {
  let people: Array<{ sub: string; roles: string[] }>;
  try {
    people = readAssignments(path);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    return { name: "assignments", exitCode: EXIT.usage, text: [`error[${e.code}]: ${e.message}`], github: [`::error title=role assignments::${e.message}`], json: { error: e.message, code: e.code } };
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
    name: "assignments",
    exitCode: breaking.length ? EXIT.sodViolations : EXIT.ok,
    text,
    github: breaking.map((v) => `::error title=separation of duties::${v.sub} holds ${v.held.join(" and ")} (${v.constraint})`),
    json: { people: people.length, violations },
  };
}
