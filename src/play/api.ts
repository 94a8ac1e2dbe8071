// What the playground page asks of the language: a policy (the files being edited, in memory)
// checked into diagnostics, the role × duty matrix and the reachability table; and a request
// explained against it. Plain functions over plain data — the same build (src/policy/build.ts:
// checker, analysis, compiler, policy tests) and `explainRequest` as `gateway check` and
// `gateway explain`; no evaluator of its own.
import { renderDiagnostic, roleDutyMatrix, type Diagnostic, type ReachabilityRow, type Span } from "../../dsl/mod.ts";
import { explainRequest, type ExplainInput, type Explanation } from "../gateway/mod.ts";
import { buildPolicy, type BuildStage, type PolicyBuild, ruleSpan } from "../policy/mod.ts";
import type { ErrorCode, ProblemCode } from "../error-codes.ts";

/** A `.duty` or `*.test.toml` file as the page holds it: its name (relative to the policy directory) and text. */
export interface PlayFile {
  path: string;
  text: string;
}

/** A diagnostic for the page: the value, and its text as `gateway check` prints it. */
export interface PlayDiagnostic {
  code: string;
  severity: "error" | "warning";
  message: string;
  help: string | null;
  span: Span;
  rendered: string;
}

export interface PlayMatrix {
  roles: string[];
  duties: Array<{ name: string; route: string; upstream: string; channel: string; forbids: string[] }>;
  /** `cells[role][duty]`: each grant, its condition as written and its end date. */
  cells: Record<string, Record<string, Array<{ rule: string; when: string | null; until: string | null }>>>;
}

/** One policy test's outcome, as `gateway check` reports it. */
export interface PlayTestResult {
  file: string;
  line: number;
  name: string;
  passed: boolean;
  failure: string | null;
}

export interface PlayAnalysis {
  /** No errors: the policy compiles and requests can be explained. */
  ok: boolean;
  diagnostics: PlayDiagnostic[];
  matrix: PlayMatrix | null;
  reachability: ReachabilityRow[] | null;
  /** The policy tests of the `*.test.toml` files (null while the policy has errors). */
  tests: PlayTestResult[] | null;
}

export type PlayExplainResult =
  | { ok: true; explanation: Explanation; decidedBy: Span | null; duty: Span | null }
  | { ok: false; code: ProblemCode; message: string; diagnostics?: PlayDiagnostic[] };

const MAX_FILES = 200;
const MAX_TEXT = 1024 * 1024;

/** The files of a request body, or why they are unusable. */
export function readPlayFiles(body: unknown): PlayFile[] | { code: ErrorCode; message: string } {
  const files = (body as { files?: unknown } | null)?.files;
  if (!Array.isArray(files) || files.length === 0) return { code: "PLAY_BAD_FILES", message: "`files` must be a non-empty list of {path, text}" };
  if (files.length > MAX_FILES) return { code: "PLAY_BAD_FILES", message: `at most ${MAX_FILES} files` };
  let total = 0;
  const seen = new Set<string>();
  for (const f of files) {
    if (typeof f?.path !== "string" || typeof f?.text !== "string" || !(f.path.endsWith(".duty") || f.path.endsWith(".test.toml"))) return { code: "PLAY_BAD_FILES", message: "each file needs a `path` ending in `.duty` or `.test.toml` and a `text`" };
    if (seen.has(f.path)) return { code: "PLAY_BAD_FILES", message: `\`${f.path}\` is given twice` };
    seen.add(f.path);
    total += f.text.length;
  }
  if (total > MAX_TEXT) return { code: "PLAY_BAD_FILES", message: `the files hold more than ${MAX_TEXT} characters` };
  return files.map((f: PlayFile) => ({ path: f.path, text: f.text }));
}

/** The files built as the gateway builds a bundle (src/policy/build.ts), up to `until`, with their diagnostics for the page. */
function build(files: readonly PlayFile[], until: BuildStage): { built: PolicyBuild; diagnostics: PlayDiagnostic[] } {
  const pick = (suffix: string) => files.filter((f) => f.path.endsWith(suffix)).map((f) => ({ path: f.path, text: f.text }));
  const built = buildPolicy({ policies: pick(".duty"), tests: pick(".test.toml") }, { until });
  const diagnostics = built.diagnostics.map((d: Diagnostic) => ({
    code: d.code, severity: d.severity, message: d.message, help: d.help ?? null, span: d.span, rendered: renderDiagnostic(d, built.sources),
  }));
  return { built, diagnostics };
}

/** Checks the files as one policy: diagnostics, and (when it has no errors) the matrix, the reachability table and the policy tests. */
export function analyzePlayFiles(files: readonly PlayFile[]): PlayAnalysis {
  const { built, diagnostics } = build(files, "tests");
  const policy = built.policy;
  if (!policy || !built.compiled) return { ok: false, diagnostics, matrix: null, reachability: null, tests: null };
  const texts = new Map(files.map((f) => [f.path, f.text]));
  const sourceOf = (span: Span | null) => (span ? (texts.get(span.file) ?? "").slice(span.start, span.end) : null);
  const m = roleDutyMatrix(policy);
  const cells: PlayMatrix["cells"] = {};
  for (const role of m.roles) {
    cells[role] = {};
    for (const [duty, grants] of Object.entries(m.cells[role] ?? {})) cells[role]![duty] = grants.map((g) => ({ rule: g.rule, when: sourceOf(g.when), until: g.until }));
  }
  const tests = built.tests.map((t) => ({ file: t.file, line: t.line, name: t.name, passed: t.passed, failure: t.failure ?? null }));
  return {
    ok: true,
    // The checker's and the separation analysis's warnings, by position.
    diagnostics,
    matrix: { roles: m.roles, duties: m.duties.map((d) => ({ name: d.name, route: d.route, upstream: d.upstream, channel: d.channel, forbids: m.forbids[d.name] ?? [] })), cells },
    reachability: built.reachability,
    tests,
  };
}

/** Explains one request against the files: the decision with its reasons, and where its deciding rule and duty are written. */
export async function explainPlayRequest(files: readonly PlayFile[], input: ExplainInput): Promise<PlayExplainResult> {
  const { built, diagnostics } = build(files, "compile");
  const { policy, compiled } = built;
  if (!policy || !compiled) return { ok: false, code: "PLAY_POLICY_ERRORS", message: "the policy has errors; fix them to run a request", diagnostics };
  const result = await explainRequest(compiled, input, null);
  if (!result.ok) return result;
  const e = result.explanation;
  return { ok: true, explanation: e, decidedBy: ruleSpan(policy, e.decision.decidedBy), duty: e.duty ? (policy.duties.find((d) => d.name === e.duty!.name)?.span ?? null) : null };
}
