// The conformance corpus (test/conformance/*.toml) as data: its policies, loaded and compiled,
// and its cases with typed principals and requests. The conformance suite runs every case
// against both evaluators; the query suite checks partial evaluation against them.
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { compilePolicy, loadPolicy, coercePrincipal, parseIp, parseTime, renderDiagnostic } from "../../dsl/mod.ts";
import type { Channel, CheckedPolicy, CompiledPolicy, PolicyRequest, Principal } from "../../dsl/mod.ts";
const ROOT = resolve(import.meta.dir, "..", "..");
export const CORPUS = import.meta.dir;
/** The checker's "now" unless a file says otherwise: fixed, so `until` dates never expire under the corpus. */
const DEFAULT_NOW = "2026-01-01T00:00:00Z";
/** The request time unless a case says otherwise. */
const DEFAULT_TIME = "2026-06-01T12:00:00Z";

const CASE_KEYS = new Set([
  "name", "policy", "principal", "request", "channel", "ip", "time", "headers", "query",
  "allow", "code", "duty", "decided_by", "separations", "params",
]);

export interface ExpectedSeparation { param: string; key: string; duties: string[]; constraint?: string }

export interface ConformanceCase {
  file: string;
  name: string;
  policy: string;
  principal: Principal;
  channel: Channel;
  request: PolicyRequest;
  allow: boolean;
  code: string;
  duty?: string | null;
  decidedBy?: string | null;
  separations?: ExpectedSeparation[];
  params?: Record<string, string>;
}

export interface CorpusFile {
  file: string;
  policies: Map<string, { policy: CheckedPolicy; compiled: CompiledPolicy }>;
  cases: ConformanceCase[];
}

function timeOf(raw: unknown, where: string): number {
  if (raw instanceof Date) return raw.getTime();
  const t = typeof raw === "string" ? parseTime(raw, false) : null;
  if (t === null) throw new Error(`${where}: bad time \`${String(raw)}\``);
  return t;
}

function stringRecord(raw: unknown, where: string, lower = false): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected a table`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string") throw new Error(`${where}.${k}: expected a string`);
    out[lower ? k.toLowerCase() : k] = v;
  }
  return out;
}

/** Loads one corpus file: its policies (inline `text` or repository `files`), principals and cases. */
export function loadCorpusFile(path: string): CorpusFile {
  const name = path.slice(CORPUS.length + 1);
  const doc = parseToml(readFileSync(path, "utf8")) as Record<string, unknown>;
  const now = timeOf(doc.now ?? DEFAULT_NOW, `${name}: now`);
  const policies = new Map<string, { policy: CheckedPolicy; compiled: CompiledPolicy }>();
  for (const [policyName, raw] of Object.entries((doc.policies ?? {}) as Record<string, Record<string, unknown>>)) {
    const sources = typeof raw.text === "string"
      ? [{ path: `${policyName}.duty`, text: raw.text }]
      : ((raw.files ?? []) as string[]).map((f) => ({ path: f.split("/").at(-1)!, text: readFileSync(join(ROOT, f), "utf8") }));
    if (sources.length === 0) throw new Error(`${name}: policy \`${policyName}\` has neither text nor files`);
    const loaded = loadPolicy(sources, { now });
    if (!loaded.policy) {
      const texts = new Map(sources.map((s) => [s.path, s.text]));
      throw new Error(`${name}: policy \`${policyName}\` does not load:\n${loaded.diagnostics.map((d) => renderDiagnostic(d, texts)).join("\n")}`);
    }
    policies.set(policyName, { policy: loaded.policy, compiled: compilePolicy(loaded.policy) });
  }
  const principals = (doc.principals ?? {}) as Record<string, Record<string, unknown>>;
  const defaults = (doc.defaults ?? {}) as Record<string, unknown>;
  const cases: ConformanceCase[] = [];
  for (const [i, raw] of ((doc.case ?? []) as Array<Record<string, unknown>>).entries()) {
    const merged: Record<string, unknown> = { ...defaults, ...raw };
    const where = `${name}: case #${i + 1} (${String(raw.name)})`;
    const unknown = Object.keys(raw).filter((k) => !CASE_KEYS.has(k));
    if (unknown.length) throw new Error(`${where}: unknown key \`${unknown[0]}\``);
    const policyName = String(merged.policy);
    const entry = policies.get(policyName);
    if (!entry) throw new Error(`${where}: no policy \`${policyName}\``);
    const rawPrincipal = typeof merged.principal === "string" ? principals[merged.principal] : (merged.principal as Record<string, unknown> | undefined);
    if (!rawPrincipal) throw new Error(`${where}: no principal \`${String(merged.principal)}\``);
    const coerced = coercePrincipal(entry.policy.schema, rawPrincipal);
    if (!coerced.ok) throw new Error(`${where}: ${coerced.message}`);
    const line = /^([A-Z]+) (\/\S*)$/.exec(String(merged.request));
    if (!line) throw new Error(`${where}: request must look like "GET /path?query"`);
    const [path, queryString = ""] = line[2]!.split("?", 2) as [string, string?];
    const ip = parseIp(typeof merged.ip === "string" ? merged.ip : "192.0.2.10");
    if (!ip) throw new Error(`${where}: bad ip`);
    const query = { ...Object.fromEntries(new URLSearchParams(queryString)), ...stringRecord(merged.query, `${where}.query`) };
    if (typeof merged.allow !== "boolean" || typeof merged.code !== "string") throw new Error(`${where}: needs \`allow\` and \`code\``);
    cases.push({
      file: name,
      name: String(merged.name),
      policy: policyName,
      principal: coerced.principal,
      channel: (merged.channel ?? "operational") as Channel,
      request: { method: line[1]!, path, ip, time: timeOf(merged.time ?? DEFAULT_TIME, `${where}.time`), headers: stringRecord(merged.headers, `${where}.headers`, true), query },
      allow: merged.allow,
      code: merged.code,
      // TOML has no null: an empty string expects "no duty" / "decided by no rule".
      duty: raw.duty === undefined ? undefined : raw.duty === "" ? null : String(raw.duty),
      decidedBy: raw.decided_by === undefined ? undefined : raw.decided_by === "" ? null : String(raw.decided_by),
      separations: raw.separations as ExpectedSeparation[] | undefined,
      params: raw.params as Record<string, string> | undefined,
    });
  }
  return { file: name, policies, cases };
}


/** Every file of the corpus, loaded, in name order. */
export function loadCorpus(): CorpusFile[] {
  return readdirSync(CORPUS).filter((f) => f.endsWith(".toml")).sort().map((f) => loadCorpusFile(join(CORPUS, f)));
}
