// Policy tests: `*.test.toml` files beside the policies. Each `[[test]]` names a principal and a
// request and states the expected decision. They run against the compiled policy, with history
// separation judged against the `history` the test gives (the same rule the duty ledger applies).
import { parse as parseToml, TomlError } from "smol-toml";
import type { CompiledPolicy } from "./compile.ts";
import { canonicalLedgerKey } from "./ledger_key.ts";
import type { Channel, Decision, LedgerFact, PolicyRequest, Principal, SeparationCheck } from "./types.ts";
import { coercePrincipal, parseIp, parseTime } from "./values.ts";
import type { PolicySource } from "./load.ts";

export interface PolicyTestResult {
  file: string;
  line: number;
  name: string;
  passed: boolean;
  /** Why it failed, or the error that kept it from running. */
  failure?: string;
  decision?: Decision;
}

/**
 * The history rule of `separate`: a principal may not perform a duty of a separation on a key
 * when it already performed *another* duty of that separation on the same key.
 */
export function findSeparationConflict(checks: readonly SeparationCheck[], sub: string, duty: string, facts: readonly LedgerFact[]): LedgerFact | null {
  for (const c of checks) {
    for (const f of facts) {
      if (f.constraint === c.constraint && f.key === c.key && f.sub === sub && f.duty !== duty && c.duties.includes(f.duty)) return f;
    }
  }
  return null;
}

/** Turns an allowed decision into a history-separation denial. */
export function denyForSeparation(decision: Decision, conflict: LedgerFact, facts: LedgerFact[], message: string): Decision {
  return {
    ...decision,
    allow: false,
    code: "DENY_SOD_HISTORY",
    decidedBy: conflict.constraint,
    reasons: [...decision.reasons, { rule: conflict.constraint, kind: "separate", at: conflict.constraint.slice("separate:".length), held: true, why: message }],
    ledger: facts,
    message,
  };
}

function lineOf(text: string, name: string): number {
  const idx = text.indexOf(`"${name}"`);
  if (idx < 0) return 1;
  return text.slice(0, idx).split("\n").length;
}

const TEST_KEYS = new Set(["name", "principal", "request", "channel", "ip", "time", "headers", "query", "history", "expect", "code", "rule"]);

/** A policy test as its file names it: where it is, before it runs. */
export interface PolicyTestName {
  file: string;
  line: number;
  name: string;
}

interface PolicyTestCase extends PolicyTestName {
  raw: Record<string, unknown>;
}

/** The `[[test]]` tables of one file, or why the file holds none (a failing `(file)` result). */
function readTestFile(src: PolicySource): { cases: PolicyTestCase[]; principals: Record<string, Record<string, unknown>> } | PolicyTestResult {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(src.text) as Record<string, unknown>;
  } catch (e) {
    const line = e instanceof TomlError ? e.line : 1;
    return { file: src.path, line, name: "(file)", passed: false, failure: `bad TOML: ${(e as Error).message.split("\n")[0]}` };
  }
  const tests = doc.test;
  if (!Array.isArray(tests)) return { file: src.path, line: 1, name: "(file)", passed: false, failure: "no `[[test]]` tables" };
  const cases = tests.map((raw, i) => {
    const t = raw as Record<string, unknown>;
    const name = typeof t.name === "string" ? t.name : `test #${i + 1}`;
    return { file: src.path, line: lineOf(src.text, name), name, raw: t };
  });
  return { cases, principals: (doc.principals ?? {}) as Record<string, Record<string, unknown>> };
}

/**
 * The policy tests of the given `*.test.toml` sources without running them (a report lists them
 * as skipped when the policy did not compile); a file that holds none is listed as `(file)`.
 */
export function listPolicyTests(sources: readonly PolicySource[]): PolicyTestName[] {
  return sources.flatMap((src) => {
    const read = readTestFile(src);
    return "cases" in read ? read.cases.map(({ file, line, name }) => ({ file, line, name })) : [{ file: read.file, line: read.line, name: read.name }];
  });
}

/** Runs every `[[test]]` of the given `*.test.toml` sources against a compiled policy. */
export function runPolicyTests(compiled: CompiledPolicy, sources: readonly PolicySource[], options: { now?: number } = {}): PolicyTestResult[] {
  const results: PolicyTestResult[] = [];
  for (const src of sources) {
    const read = readTestFile(src);
    if (!("cases" in read)) {
      results.push(read);
      continue;
    }
    const { principals } = read;
    for (const { raw: t, name, line } of read.cases) {
      const fail = (failure: string, decision?: Decision) => results.push({ file: src.path, line, name, passed: false, failure, decision });
      const unknown = Object.keys(t).filter((k) => !TEST_KEYS.has(k));
      if (unknown.length) { fail(`unknown key \`${unknown[0]}\``); continue; }
      const rawPrincipal = typeof t.principal === "string" ? principals[t.principal] : (t.principal as Record<string, unknown> | undefined);
      if (!rawPrincipal) { fail(typeof t.principal === "string" ? `no principal \`${t.principal}\` in [principals]` : "missing `principal`"); continue; }
      const coerced = coercePrincipal(compiled.policy.schema, rawPrincipal);
      if (!coerced.ok) { fail(coerced.message); continue; }
      const requestLine = typeof t.request === "string" ? /^([A-Z]+)\s+(\/\S*)$/.exec(t.request.trim()) : null;
      if (!requestLine) { fail("`request` must look like \"POST /changes/42/approve\""); continue; }
      const [pathOnly, queryString = ""] = requestLine[2]!.split("?", 2) as [string, string?];
      const ip = parseIp(typeof t.ip === "string" ? t.ip : "127.0.0.1");
      if (!ip) { fail(`bad ip \`${String(t.ip)}\``); continue; }
      const time = t.time === undefined ? (options.now ?? Date.now()) : t.time instanceof Date ? t.time.getTime() : typeof t.time === "string" ? parseTime(t.time, false) : null;
      if (time === null) { fail(`bad time \`${String(t.time)}\``); continue; }
      const channel = (t.channel ?? "operational") as Channel;
      if (channel !== "operational" && channel !== "admin") { fail(`bad channel \`${String(t.channel)}\``); continue; }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries((t.headers ?? {}) as Record<string, unknown>)) headers[k.toLowerCase()] = String(v);
      const query: Record<string, string> = Object.fromEntries(new URLSearchParams(queryString));
      for (const [k, v] of Object.entries((t.query ?? {}) as Record<string, unknown>)) query[k] = String(v);
      const request: PolicyRequest = { method: requestLine[1]!, path: pathOnly, ip, time, headers, query };
      const principal: Principal = coerced.principal;
      let decision = compiled.decide(channel, principal, request);
      if (decision.allow && decision.separations.length) {
        const facts: LedgerFact[] = ((t.history ?? []) as Array<Record<string, unknown>>).flatMap((h) =>
          decision.separations.map((c) => ({ constraint: c.constraint, key: typeof h.key === "string" ? canonicalLedgerKey(h.key) : c.key, duty: String(h.duty), sub: String(h.sub), at: time - 60_000 })));
        const conflict = findSeparationConflict(decision.separations, principal.sub, decision.duty!, facts);
        if (conflict) decision = denyForSeparation(decision, conflict, facts, `${principal.sub} performed ${conflict.duty} on ${conflict.key}; ${decision.duty} needs another person`);
      }
      const expect = t.expect;
      if (expect !== "allow" && expect !== "deny") { fail("`expect` must be \"allow\" or \"deny\""); continue; }
      if (decision.allow !== (expect === "allow")) { fail(`expected ${expect}, got ${decision.allow ? "allow" : "deny"} (${decision.code}: ${decision.message})`, decision); continue; }
      if (typeof t.code === "string" && decision.code !== t.code) { fail(`expected code ${t.code}, got ${decision.code}`, decision); continue; }
      if (typeof t.rule === "string" && !(decision.decidedBy ?? "").includes(t.rule)) { fail(`expected rule ${t.rule}, decided by ${decision.decidedBy ?? "(default)"}`, decision); continue; }
      results.push({ file: src.path, line, name, passed: true, decision });
    }
  }
  return results;
}
