// Policy tests: `*.test.toml` files beside the policies. Each `[[test]]` names a principal and a
// request and states the expected decision. They run against the compiled policy, with history
// separation judged against the `history` the test gives (the same rule the duty ledger applies:
// separation.ts).
import { parse as parseToml, TomlError } from "smol-toml";
import type { CompiledPolicy } from "./compile.ts";
import { canonicalLedgerKey, compositeLedgerKey } from "./ledger-key.ts";
import { interpretDecision } from "./interpret.ts";
import { applyHistory, type HistoryStep } from "./separation.ts";
import type { Channel, Decision, PolicyRequest, Principal, Reason, Type } from "./types.ts";
import { didYouMean } from "./diagnostics.ts";
import { coercePrincipal, coerceValue, parseIp } from "./values.ts";
import type { PolicySource } from "./load.ts";

export interface PolicyTestResult {
  file: string;
  line: number;
  name: string;
  passed: boolean;
  /** Why it failed, or the error that kept it from running. */
  failure?: string;
  decision?: Decision;
  /** Every rule the reference interpreter considered for the test's request (rule coverage). */
  considered?: Reason[];
}

/**
 * Whether a test's `rule` names the rule `id`: a rule written with `@id("…")` is named by that id
 * exactly (`approve-by-reviewer` or `grant:approve-by-reviewer`), one known by its location by
 * any part of it (`changes.duty:10:`).
 */
function namesRule(rule: string, id: string): boolean {
  const bare = id.slice(id.indexOf(":") + 1);
  if (rule === id || rule === bare) return true;
  // `@id` values hold no `:`; a location always does.
  return bare.includes(":") && id.includes(rule);
}

function lineOf(text: string, name: string): number {
  const idx = text.indexOf(`"${name}"`);
  if (idx < 0) return 1;
  return text.slice(0, idx).split("\n").length;
}

/** Where a table of a test file starts and where each of its keys is written. */
interface TableLines {
  header: number;
  keys: Map<string, number>;
}

/**
 * The `[[test]]` tables of a test file in order, and its `[principals.NAME]` tables, with the line
 * of each key: an error about `history` points at the `history` line of that test, not at the
 * first line that happens to hold the test's name.
 */
function tableLines(text: string): { tests: TableLines[]; principals: Map<string, TableLines> } {
  const tests: TableLines[] = [];
  const principals = new Map<string, TableLines>();
  let current: TableLines | null = null;
  for (const [i, line] of text.split("\n").entries()) {
    if (/^\s*\[\[\s*test\s*\]\]/.test(line)) {
      tests.push((current = { header: i + 1, keys: new Map() }));
      continue;
    }
    const principal = /^\s*\[\s*principals\s*\.\s*(?:"([^"]*)"|([A-Za-z0-9_-]+))\s*\]/.exec(line);
    if (principal) {
      principals.set(principal[1] ?? principal[2]!, (current = { header: i + 1, keys: new Map() }));
      continue;
    }
    if (/^\s*\[/.test(line)) {
      current = null;
      continue;
    }
    const key = /^\s*(?:"([^"]*)"|([A-Za-z0-9_-]+))\s*=/.exec(line);
    const name = key?.[1] ?? key?.[2];
    if (current && name !== undefined && !current.keys.has(name)) current.keys.set(name, i + 1);
  }
  return { tests, principals };
}

const HISTORY_KEYS = new Set(["duty", "sub", "key"]);
const TIME: Type = { kind: "time" };

/**
 * A test's `history` as ledger steps, or why it is not one. A duty the policy does not declare is
 * refused: its step could never conflict, so the test would pass without testing the separation.
 */
export function readHistory(raw: unknown, duties: ReadonlySet<string>): { steps: HistoryStep[] } | { error: string } {
  if (raw === undefined) return { steps: [] };
  const shape = '`history` must be a list of `{ duty = "…", sub = "…" }` (optional `key`)';
  if (!Array.isArray(raw)) return { error: shape };
  const steps: HistoryStep[] = [];
  for (const [i, h] of raw.entries()) {
    const entry = `\`history\` entry ${i + 1}`;
    if (h === null || typeof h !== "object" || Array.isArray(h) || h instanceof Date) return { error: shape };
    const fields = h as Record<string, unknown>;
    const unknown = Object.keys(fields).find((k) => !HISTORY_KEYS.has(k));
    if (unknown !== undefined) return { error: `${entry}: unknown key \`${unknown}\` (duty, sub, key)` };
    if (typeof fields.duty !== "string") return { error: `${entry}: missing \`duty\`` };
    if (!duties.has(fields.duty)) {
      const help = didYouMean(fields.duty, duties);
      return { error: `${entry}: unknown duty \`${fields.duty}\`${help ? ` (${help})` : ""}` };
    }
    if (typeof fields.sub !== "string") return { error: `${entry}: missing \`sub\`` };
    // A separation by several params has a composite key: the test gives its values as a list.
    const key = fields.key;
    const isList = Array.isArray(key) && key.length > 0 && key.every((v) => typeof v === "string");
    if (key !== undefined && typeof key !== "string" && !isList) return { error: `${entry}: \`key\` must be a string, or a list of strings for a key of several params` };
    steps.push({ duty: fields.duty, sub: fields.sub, ...(typeof key === "string" ? { key: canonicalLedgerKey(key) } : isList ? { key: compositeLedgerKey(key as string[]) } : {}) });
  }
  return { steps };
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
  /** Lines of its keys (empty when the file writes its tests another way than `[[test]]`). */
  keys: Map<string, number>;
  /** The line of the first test of the same name in the file, for a later one. */
  duplicateOf: number | null;
}

/** The `[[test]]` tables of one file, or why the file holds none (a failing `(file)` result). */
function readTestFile(src: PolicySource): { cases: PolicyTestCase[]; principals: Record<string, Record<string, unknown>>; principalLines: Map<string, TableLines> } | PolicyTestResult {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(src.text) as Record<string, unknown>;
  } catch (e) {
    const line = e instanceof TomlError ? e.line : 1;
    return { file: src.path, line, name: "(file)", passed: false, failure: `bad TOML: ${(e as Error).message.split("\n")[0]}` };
  }
  const tests = doc.test;
  if (!Array.isArray(tests)) return { file: src.path, line: 1, name: "(file)", passed: false, failure: "no `[[test]]` tables" };
  const lines = tableLines(src.text);
  // `[[test]]` tables map one to one onto the parsed list; another spelling (`test = [...]`)
  // falls back to the first line naming the test.
  const located = lines.tests.length === tests.length;
  const firstByName = new Map<string, number>();
  const cases = tests.map((raw, i): PolicyTestCase => {
    const t = raw as Record<string, unknown>;
    const name = typeof t.name === "string" ? t.name : `test #${i + 1}`;
    const table = located ? lines.tests[i]! : null;
    const line = table ? (table.keys.get("name") ?? table.header) : lineOf(src.text, name);
    const first = firstByName.get(name);
    if (first === undefined) firstByName.set(name, line);
    return { file: src.path, line, name, raw: t, keys: table?.keys ?? new Map(), duplicateOf: first ?? null };
  });
  return { cases, principals: (doc.principals ?? {}) as Record<string, Record<string, unknown>>, principalLines: lines.principals };
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
    const { principals, principalLines } = read;
    const duties = new Set(compiled.policy.duties.map((d) => d.name));
    const { grants, forbids, exclusives, separations } = compiled.policy;
    const ruleIds = [...grants, ...forbids, ...exclusives, ...separations].map((r) => r.id);
    for (const { raw: t, name, line, keys, duplicateOf } of read.cases) {
      /** A failure, at the line of `key` (or of a principal's attribute) when it concerns one. */
      let considered: Reason[] | undefined;
      const fail = (failure: string, decision?: Decision, at?: number) => results.push({ file: src.path, line: at ?? line, name, passed: false, failure, decision, considered });
      if (duplicateOf !== null) { fail(`duplicate test name \`${name}\`: the first is at line ${duplicateOf} (a report could not tell them apart)`); continue; }
      const unknown = Object.keys(t).filter((k) => !TEST_KEYS.has(k));
      if (unknown.length) { fail(`unknown key \`${unknown[0]}\``, undefined, keys.get(unknown[0]!)); continue; }
      const rawPrincipal = typeof t.principal === "string" ? principals[t.principal] : (t.principal as Record<string, unknown> | undefined);
      if (!rawPrincipal) { fail(typeof t.principal === "string" ? `no principal \`${t.principal}\` in [principals]` : "missing `principal`", undefined, keys.get("principal")); continue; }
      const coerced = coercePrincipal(compiled.policy.schema, rawPrincipal);
      if (!coerced.ok) {
        const table = typeof t.principal === "string" ? principalLines.get(t.principal) : undefined;
        fail(typeof t.principal === "string" ? `principal \`${t.principal}\`: ${coerced.message}` : coerced.message, undefined, table ? (table.keys.get(coerced.attribute) ?? table.header) : keys.get("principal"));
        continue;
      }
      const requestLine = typeof t.request === "string" ? /^([A-Z]+)\s+(\/\S*)$/.exec(t.request.trim()) : null;
      if (!requestLine) { fail("`request` must look like \"POST /changes/42/approve\"", undefined, keys.get("request")); continue; }
      const [pathOnly, queryString = ""] = requestLine[2]!.split("?", 2) as [string, string?];
      const ip = parseIp(typeof t.ip === "string" ? t.ip : "127.0.0.1");
      if (!ip) { fail(`bad ip \`${String(t.ip)}\``, undefined, keys.get("ip")); continue; }
      const givenTime = t.time === undefined ? null : coerceValue(TIME, t.time);
      if (givenTime && !givenTime.ok) { fail(`\`time\`: ${givenTime.message}`, undefined, keys.get("time")); continue; }
      const time = givenTime ? (givenTime.value as number) : (options.now ?? Date.now());
      const history = readHistory(t.history, duties);
      if ("error" in history) { fail(history.error, undefined, keys.get("history")); continue; }
      const channel = (t.channel ?? "operational") as Channel;
      if (channel !== "operational" && channel !== "admin") { fail(`bad channel \`${String(t.channel)}\``, undefined, keys.get("channel")); continue; }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries((t.headers ?? {}) as Record<string, unknown>)) headers[k.toLowerCase()] = String(v);
      const query: Record<string, string> = Object.fromEntries(new URLSearchParams(queryString));
      for (const [k, v] of Object.entries((t.query ?? {}) as Record<string, unknown>)) query[k] = String(v);
      const request: PolicyRequest = { method: requestLine[1]!, path: pathOnly, ip, time, headers, query };
      const principal: Principal = coerced.principal;
      const decision = applyHistory(compiled.decide(channel, principal, request), principal.sub, history.steps, time);
      considered = interpretDecision(compiled.policy, channel, principal, request).reasons;
      const expect = t.expect;
      if (expect !== "allow" && expect !== "deny") { fail("`expect` must be \"allow\" or \"deny\"", undefined, keys.get("expect")); continue; }
      if (decision.allow !== (expect === "allow")) { fail(`expected ${expect}, got ${decision.allow ? "allow" : "deny"} (${decision.code}: ${decision.message})`, decision); continue; }
      if (typeof t.code === "string" && decision.code !== t.code) { fail(`expected code ${t.code}, got ${decision.code}`, decision); continue; }
      if (typeof t.rule === "string") {
        const rule = t.rule;
        if (!ruleIds.some((id) => namesRule(rule, id))) {
          const help = didYouMean(rule, ruleIds.map((id) => id.slice(id.indexOf(":") + 1)).filter((bare) => !bare.includes(":")));
          fail(`\`rule\` names no rule of the policy: \`${rule}\`${help ? ` (${help})` : ""}`, undefined, keys.get("rule"));
          continue;
        }
        if (!namesRule(rule, decision.decidedBy ?? "")) { fail(`expected rule ${rule}, decided by ${decision.decidedBy ?? "(default)"}`, decision); continue; }
      }
      results.push({ file: src.path, line, name, passed: true, decision, considered });
    }
  }
  return results;
}
