// `gateway check DIR --replay AUDIT...`: re-decide the requests an audit log recorded under the
// candidate policy and report every decision that would flip (allow → deny, deny → allow),
// grouped by duty and role. It is the CI answer to "what does this policy change break?".
//
// The pipeline writes what a replay needs into each decision record (see `replayFieldsOf`): the
// principal's full typed attributes, the request time, and the headers and query parameters the
// active policy reads. History separation (`separate … by …`) is replayed against a duty ledger
// rebuilt in memory from the log itself, seeded with the ledger facts each record consulted.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { CompiledPolicy, Decision, LedgerFact, PolicyRequest, SeparationCheck } from "../../dsl/mod.ts";
import { coercePrincipal, denyForSeparation, findSeparationConflict, parseIp } from "../../dsl/mod.ts";
import { ContextTable, outcomesOf, resolveAuditPaths } from "../audit/mod.ts";
import type { ErrorCode } from "../error-codes.ts";
import { GatewayError } from "../errors.ts";
import { type CheckAnnotation, type CheckContext, type CheckStep, type CheckStepResult } from "./check.ts";
import { EXIT } from "./io.ts";

export { policyInputNames, principalToJson, replayFieldsOf, type PolicyInputNames, type ReplayFields } from "../gateway/mod.ts";
import { policyInputNames, type PolicyInputNames } from "../gateway/mod.ts";
import { dutySpan, ruleSpan } from "../policy/mod.ts";

// ---------------------------------------------------------------------------------------------
// Reading and re-deciding.

/** One decision that changes under the candidate policy. */
export interface ReplayFlipExample {
  requestId: string;
  sub: string;
  request: string;
  /** `file:line` of the decision record. */
  at: string;
  from: string;
  to: string;
  /** The candidate's deciding rule (`forbid:changes.duty:18:1`), when one decided. */
  rule: string | null;
  /** The candidate's decision message: for a history separation, the earlier step it conflicts with. */
  message: string;
}

/** Flips of one direction, duty and role set. */
export interface ReplayFlipGroup {
  direction: "allow→deny" | "deny→allow";
  duty: string;
  /** The principal's roles, sorted and joined with `+`; `(none)` without roles. */
  roles: string;
  count: number;
  examples: ReplayFlipExample[];
}

/** Result of {@link replayAuditLog}. */
export interface ReplayReport {
  files: string[];
  /** Decision records read. */
  decisions: number;
  replayed: number;
  /**
   * Records refused before any policy decided (authentication failed, no route): no candidate
   * policy can change them, so they are neither replayed nor skipped.
   */
  refusedBeforePolicy: number;
  /** Records a policy decided that could not be replayed, by reason (`principal attribute \`x\` not recorded`, …). */
  skipped: Record<string, number>;
  flips: { total: number; allowToDeny: number; denyToAllow: number; groups: ReplayFlipGroup[] };
  /** Same allow/deny, another code or deciding reason code (e.g. DENY_NO_GRANT → DENY_FORBID): informational. */
  codeChanges: number;
  /** Inputs the candidate reads that the records did not carry (treated as absent), with counts. */
  unrecordedInputs: Record<string, number>;
  /** Lines that are not JSON records (a torn last line after a crash), by file. */
  unreadableLines: number;
}

/** Options of {@link replayAuditLog}. */
export interface ReplayOptions {
  /** Examples kept per group (default 3). */
  maxExamples?: number;
}

interface ReplayEntry { constraint: string | null; key: string; duty: string; sub: string; at: number }

/**
 * A duty ledger rebuilt from the log under the candidate policy. Entries come from requests the
 * candidate allows and the upstream accepted (2xx outcome): what would have been performed.
 * Seeds are the facts the live ledger held when the request was decided (`sod` in the record);
 * their constraint ids name the old policy, so they count for any candidate constraint over the
 * same key. What conflicts is decided by the one rule (`findSeparationConflict`), not here.
 */
class ReplayLedger {
  readonly #entries = new Map<string, ReplayEntry[]>();
  #add(e: ReplayEntry): void {
    const k = `${e.key}\u0000${e.sub}`;
    const list = this.#entries.get(k);
    if (!list) this.#entries.set(k, [e]);
    else if (!list.some((x) => x.constraint === e.constraint && x.duty === e.duty)) list.push(e);
  }
  perform(checks: readonly SeparationCheck[], duty: string, sub: string, at: number): void {
    for (const c of checks) this.#add({ constraint: c.constraint, key: c.key, duty, sub, at });
  }
  seed(facts: unknown): void {
    if (!Array.isArray(facts)) return;
    for (const f of facts as Array<Record<string, unknown>>) {
      if (typeof f?.key === "string" && typeof f.duty === "string" && typeof f.sub === "string") this.#add({ constraint: null, key: f.key, duty: f.duty, sub: f.sub, at: typeof f.at === "number" ? f.at : Number.NaN });
    }
  }
  /** The facts a store's `lookup` would give for `sub` on these checks; a seed is a fact of every check over its key. */
  lookup(checks: readonly SeparationCheck[], sub: string): LedgerFact[] {
    return checks.flatMap((c) => (this.#entries.get(`${c.key}\u0000${sub}`) ?? [])
      .filter((e) => e.constraint === null || e.constraint === c.constraint)
      .map((e) => ({ constraint: c.constraint, key: c.key, duty: e.duty, sub, at: e.at })));
  }
}

type AuditRecordJson = Record<string, unknown>;

/** Visits each record of a file whole (its context's members merged in); counts the lines that cannot be read. */
async function forEachRecord(file: string, visit: (record: AuditRecordJson, line: number) => void): Promise<number> {
  let unreadable = 0;
  let line = 0;
  const contexts = new ContextTable();
  const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  for await (const text of lines) {
    line++;
    if (text.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      unreadable++;
      continue;
    }
    const whole = record !== null && typeof record === "object" && !Array.isArray(record) ? contexts.resolve(record as AuditRecordJson) : null;
    if (whole !== null) visit(whole as AuditRecordJson, line);
    else unreadable++;
  }
  return unreadable;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/** Headers and query of the replayed request, noting inputs the candidate reads but the record lacks. */
function recordedInputs(record: AuditRecordJson, names: PolicyInputNames, unrecorded: Record<string, number>): { headers: Record<string, string>; query: Record<string, string> } {
  const headers: Record<string, string> = {};
  const query: Record<string, string> = {};
  const recordedHeaders = (record.policy_headers ?? {}) as Record<string, unknown>;
  const allowlisted = (record.headers ?? {}) as Record<string, unknown>;
  for (const name of names.headers) {
    if (name in recordedHeaders) {
      const v = recordedHeaders[name];
      if (typeof v === "string") headers[name] = v;
    } else if (typeof allowlisted[name] === "string") {
      headers[name] = allowlisted[name] as string;
    } else {
      bump(unrecorded, `header \`${name}\``);
    }
  }
  const recordedQuery = (record.policy_query ?? {}) as Record<string, unknown>;
  for (const name of names.query) {
    if (name in recordedQuery) {
      const v = recordedQuery[name];
      if (typeof v === "string") query[name] = v;
    } else {
      bump(unrecorded, `query parameter \`${name}\``);
    }
  }
  return { headers, query };
}

/**
 * Re-decides every decision record of the audit logs in `paths` (files or directories; each
 * argument one chain, read in chain order) under `compiled`. Outcome records (`outcome` of
 * format 1, `outcomes` of format 2) are read for the upstream's answers; checkpoint, rotate and
 * recovery records are skipped. Rejects with `AUDIT_READ_FAILED` or
 * `AUDIT_NO_FILES` when a path holds no readable log.
 *
 * @example
 * const report = await replayAuditLog(compiled, ["/var/lib/gateway/audit"]);
 * if (report.flips.total) for (const g of report.flips.groups) console.log(g.direction, g.duty, g.roles, g.count);
 */
export async function replayAuditLog(compiled: CompiledPolicy, paths: readonly string[], options: ReplayOptions = {}): Promise<ReplayReport> {
  const maxExamples = options.maxExamples ?? 3;
  const schema = compiled.policy.schema;
  const names = policyInputNames(compiled.policy);
  const report: ReplayReport = { files: [], decisions: 0, replayed: 0, refusedBeforePolicy: 0, skipped: {}, flips: { total: 0, allowToDeny: 0, denyToAllow: 0, groups: [] }, codeChanges: 0, unrecordedInputs: {}, unreadableLines: 0 };
  const groups = new Map<string, ReplayFlipGroup>();

  for (const path of paths) {
    const files = await resolveAuditPaths([path]);
    report.files.push(...files);
    // Pass 1: outcomes by request id (an outcome follows its decision, possibly in a later file):
    // `outcome` records of format 1, entries of `outcomes` records of format 2.
    const outcomes = new Map<string, number>();
    for (const file of files) {
      report.unreadableLines += await forEachRecord(file, (r) => {
        for (const o of outcomesOf(r)) if (typeof o.request_id === "string" && typeof o.status === "number") outcomes.set(o.request_id, o.status);
      });
    }
    // Pass 2: decisions in chain order, against a ledger rebuilt as the candidate would have.
    const ledger = new ReplayLedger();
    for (const file of files) {
      await forEachRecord(file, (r, line) => {
        if (r.type !== "decision") return;
        report.decisions++;
        const sub = str(r.sub);
        const method = str(r.method);
        const path = str(r.path);
        const channel = r.channel === "admin" ? "admin" : r.channel === "operational" ? "operational" : null;
        if (sub === null || method === null || path === null) return void report.refusedBeforePolicy++;
        if (channel === null) return bump(report.skipped, "no channel recorded");
        // Attributes the candidate no longer declares are dropped; one it added cannot be guessed.
        const recorded = (r.principal ?? { sub, roles: r.roles ?? [] }) as Record<string, unknown>;
        const raw: Record<string, unknown> = {};
        for (const name of Object.keys(schema)) if (name in recorded) raw[name] = recorded[name];
        const p = coercePrincipal(schema, raw);
        if (!p.ok) return bump(report.skipped, p.code === "PRINCIPAL_MISSING_ATTRIBUTE" ? `principal attribute \`${p.attribute}\` not recorded` : `principal attribute \`${p.attribute}\` does not fit the candidate schema`);
        const ip = parseIp(str(r.client_ip) ?? "") ?? parseIp("0.0.0.0")!;
        const time = Date.parse(str(r.request_time) ?? str(r.time) ?? "");
        if (Number.isNaN(time)) return bump(report.skipped, "no request time recorded");
        const { headers, query } = recordedInputs(r, names, report.unrecordedInputs);
        const request: PolicyRequest = { method, path, ip, time, headers, query };

        let decision: Decision = compiled.decide(channel, p.principal, request);
        ledger.seed(r.sod);
        if (decision.allow && decision.separations.length) {
          const facts = ledger.lookup(decision.separations, sub);
          const conflict = findSeparationConflict(decision.separations, sub, decision.duty!, facts);
          if (conflict) {
            // The reader is whoever reviews the replay, not the caller: the message names the person.
            decision = denyForSeparation(decision, conflict, facts, { reader: "operator", showTime: true });
          } else {
            const status = typeof r.request_id === "string" ? outcomes.get(r.request_id) : undefined;
            if (status !== undefined && status >= 200 && status < 300) ledger.perform(decision.separations, decision.duty!, sub, time);
          }
        }
        report.replayed++;

        const wasAllowed = r.decision === "allow";
        const fromCode = str(r.code) ?? (wasAllowed ? "ALLOW" : "DENY");
        if (wasAllowed === decision.allow) {
          if (fromCode !== decision.code) report.codeChanges++;
          return;
        }
        const direction = wasAllowed ? "allow→deny" : "deny→allow";
        if (wasAllowed) report.flips.allowToDeny++;
        else report.flips.denyToAllow++;
        report.flips.total++;
        const duty = decision.duty ?? str(r.duty) ?? compiled.match(channel, method, path)?.duty ?? "(no duty)";
        const roles = [...p.principal.roles].sort().join("+") || "(none)";
        const key = `${direction}\u0000${duty}\u0000${roles}`;
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { direction, duty, roles, count: 0, examples: [] }));
        group.count++;
        if (group.examples.length < maxExamples) {
          group.examples.push({ requestId: str(r.request_id) ?? "?", sub, request: `${method} ${path}`, at: `${file}:${line}`, from: fromCode, to: decision.code, rule: decision.decidedBy, message: decision.message });
        }
      });
    }
  }
  report.flips.groups = [...groups.values()].sort((a, b) => b.count - a.count || a.direction.localeCompare(b.direction) || a.duty.localeCompare(b.duty) || a.roles.localeCompare(b.roles));
  return report;
}

/** Records a policy decided that the replay could not re-decide. */
export function skippedCount(report: ReplayReport): number {
  return Object.values(report.skipped).reduce((a, b) => a + b, 0);
}

/** The text lines of a replay report. */
export function renderReplayReport(report: ReplayReport, options: { allowFlips?: boolean } = {}): string[] {
  const skipped = skippedCount(report);
  const refused = report.refusedBeforePolicy ? `, ${report.refusedBeforePolicy} refused before a policy decision (authentication or path; nothing to replay)` : "";
  const lines = [`replay: ${report.decisions} decision records in ${report.files.length} file${report.files.length === 1 ? "" : "s"}: ${report.replayed} replayed, ${skipped} skipped${refused}`];
  for (const [why, n] of Object.entries(report.skipped)) lines.push(`  skipped ${n}: ${why}`);
  if (report.unreadableLines) lines.push(`  ${report.unreadableLines} unreadable line${report.unreadableLines === 1 ? "" : "s"} (a torn last line after a crash is one)`);
  for (const [input, n] of Object.entries(report.unrecordedInputs)) lines.push(`  note: the candidate reads ${input}, which ${n} record${n === 1 ? "" : "s"} did not record; replayed as absent`);
  const f = report.flips;
  if (f.total === 0 && report.replayed === 0) {
    lines.push("replay: no decision replayed, so no flip could be seen");
    return lines;
  }
  if (f.total === 0) {
    lines.push(`replay: no decision flips${skipped ? ` among the ${report.replayed} replayed` : ""}${report.codeChanges ? ` (${report.codeChanges} denial${report.codeChanges === 1 ? "" : "s"} with another code)` : ""}`);
    return lines;
  }
  lines.push(`replay: ${f.total} decision flip${f.total === 1 ? "" : "s"} (allow→deny ${f.allowToDeny}, deny→allow ${f.denyToAllow})${options.allowFlips ? " — allowed by --allow-flips" : ""}`);
  const dutyWidth = Math.max(4, ...f.groups.map((g) => g.duty.length));
  const roleWidth = Math.max(5, ...f.groups.map((g) => g.roles.length));
  lines.push(`  ${"direction".padEnd(10)}  ${"duty".padEnd(dutyWidth)}  ${"roles".padEnd(roleWidth)}  count`);
  for (const g of f.groups) {
    lines.push(`  ${g.direction.padEnd(10)}  ${g.duty.padEnd(dutyWidth)}  ${g.roles.padEnd(roleWidth)}  ${g.count}`);
    for (const e of g.examples) {
      lines.push(`      ${e.requestId}  ${e.sub}  ${e.request}  ${e.from} → ${e.to}${e.rule ? ` (${e.rule})` : ""}`);
      // The rule alone does not say which earlier step a history separation ran into.
      if (e.to === "DENY_SOD_HISTORY") lines.push(`        ${e.message}`);
    }
  }
  if (report.codeChanges) lines.push(`  ${report.codeChanges} denial${report.codeChanges === 1 ? "" : "s"} keep their outcome with another code`);
  return lines;
}

/** Parameters of the `--replay` step of `gateway check`. */
export interface ReplayStepParams {
  paths: readonly string[];
  allowFlips: boolean;
  maxExamples?: number;
  /**
   * The largest share (0–1) of the records a policy decided that may go unreplayed (skipped)
   * before the gate fails; default 0: a replay that skips any record proves nothing about it.
   * 1 (`--allow-skipped`) also accepts a replay that judged no record at all.
   */
  maxSkipped?: number;
}

/**
 * The `--replay` gate of `gateway check`: exit code 3 (`EXIT.decisionFlips`) on any flip unless
 * `allowFlips`, 64 when a log cannot be read or more than `maxSkipped` of its records were skipped
 * (`REPLAY_TOO_MANY_SKIPPED`). Each flip group's annotation points at the
 * candidate's deciding rule, or at the duty when no rule decided (no grant).
 *
 * @example runCheck({ dir, format, extraSteps: [replayStep({ paths: ["audit/"], allowFlips: false })] }, io)
 */
export function replayStep(params: ReplayStepParams): CheckStep {
  return { name: "replay", title: "replay", run: (ctx) => runReplayGate(ctx, params) };
}

async function runReplayGate(ctx: CheckContext, params: ReplayStepParams): Promise<CheckStepResult> {
  const failure = (message: string, code: ErrorCode | null): CheckStepResult =>
    ({ exitCode: EXIT.usage, text: [code ? `error[${code}]: ${message}` : `error: replay: ${message}`], annotations: [{ level: "error", title: "replay", message }], json: { error: message, code } });
  let report: ReplayReport;
  try {
    report = await replayAuditLog(ctx.compiled, params.paths, { maxExamples: params.maxExamples });
  } catch (e) {
    return failure(e instanceof GatewayError ? `${e.message} (${e.code})` : (e as Error).message, e instanceof GatewayError ? e.code : null);
  }
  if (report.decisions === 0 && report.unreadableLines > 0) {
    // Nothing was replayed because nothing could be read: proving "no flips" needs records.
    return failure(`no decision records in ${params.paths.join(", ")} (${report.unreadableLines} unreadable lines): not an audit log?`, "REPLAY_NO_RECORDS");
  }
  const level = params.allowFlips ? "warning" : "error";
  const { policy } = ctx.compiled;
  const tooManySkipped = skippedBeyondLimit(report, params.maxSkipped ?? 0);
  const text = renderReplayReport(report, { allowFlips: params.allowFlips });
  if (tooManySkipped) text.push(`error[REPLAY_TOO_MANY_SKIPPED]: ${tooManySkipped.message}`, `  = help: ${tooManySkipped.help}`);
  return {
    // Flips found are flips (3) even when records were skipped; else too few judged is "could not judge" (64).
    exitCode: report.flips.total && !params.allowFlips ? EXIT.decisionFlips : tooManySkipped ? EXIT.usage : EXIT.ok,
    text,
    annotations: [...(tooManySkipped ? [{ level: "error" as const, title: "replay", message: `${tooManySkipped.message} (${tooManySkipped.help})` }] : []), ...report.flips.groups.map((g): CheckAnnotation => {
      const e = g.examples[0];
      const span = ruleSpan(policy, e?.rule ?? null) ?? dutySpan(policy, g.duty);
      return {
        level, title: "decision flip",
        message: `${g.direction} ${g.duty} (${g.roles}): ${g.count} request${g.count === 1 ? "" : "s"}${e ? `, e.g. ${e.requestId} ${e.sub} ${e.request} ${e.from} → ${e.to} (${e.at})` : ""}`,
        at: span ? { file: span.file, line: span.line, col: span.col } : undefined,
      };
    })],
    json: { ...report, allowFlips: params.allowFlips, maxSkipped: params.maxSkipped ?? 0, ...(tooManySkipped ? { error: tooManySkipped.message, code: "REPLAY_TOO_MANY_SKIPPED" } : {}) },
  };
}

/**
 * Why the replay judged too little to vouch for the candidate, or null: more than `maxSkipped`
 * of the records a policy decided were skipped, or (below 1) there was no such record at all.
 */
function skippedBeyondLimit(report: ReplayReport, maxSkipped: number): { message: string; help: string } | null {
  const skipped = skippedCount(report);
  const judgeable = report.replayed + skipped;
  const percent = (share: number) => `${Math.round(share * 1000) / 10}%`;
  if (judgeable === 0) {
    if (maxSkipped >= 1) return null;
    return { message: `replay judged no decision: ${report.decisions} decision record${report.decisions === 1 ? "" : "s"}, none decided by a policy`, help: "replay a log of traffic the policy decided, or pass --allow-skipped to accept an empty replay" };
  }
  if (skipped / judgeable <= maxSkipped) return null;
  const reasons = Object.entries(report.skipped).sort((a, b) => b[1] - a[1]).map(([why, n]) => `${why} (${n})`).join("; ");
  return {
    message: `replay skipped ${skipped} of ${judgeable} records (${percent(skipped / judgeable)}), more than the ${percent(maxSkipped)} allowed: ${reasons}`,
    help: "a skipped record is not judged, so its flips go unseen; record what the candidate needs, or pass --max-skipped SHARE (e.g. 5%) or --allow-skipped to accept",
  };
}

/** Reads `--max-skipped`: a share as `5%` or `0.05`; null when it is not one. */
export function parseSkippedShare(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  if (!m) return null;
  const share = m[2] ? Number(m[1]) / 100 : Number(m[1]);
  return share >= 0 && share <= 1 ? share : null;
}
