// Fuzzing the `.duty` language with a fixed seed: token soup, character and token mutations of
// the shipped policies, and mutated generated policies. For every input, loadPolicy
//  - never throws,
//  - finishes within a bounded number of parser steps (a watchdog counts them; no timers),
//  - gives diagnostics whose spans lie inside their file and agree with their offsets,
//    with stable codes and lowercase messages,
// and whenever it returns a policy, the interpreter and the compiled trees agree on random
// principals and requests (routing, decision, rule, separations).
// A failure prints the kind, the seed and the input, so it can be pasted into a regression test.
import { test, expect, describe, afterAll } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRng, generatePolicy, type Rng } from "../../bench/gen-policy.ts";
import { mutateChars, mutateTokens, tokenSoup } from "./mutations.ts";
import { dutyParser } from "../../dsl/parser.ts";
import { coercePrincipal, compilePolicy, interpretDecision, interpretRoute, loadPolicy, parseIp } from "../../dsl/mod.ts";
import type { Channel, CheckedPolicy, Diagnostic, PolicyRequest, PolicySource, Principal, Type } from "../../dsl/mod.ts";

const ROOT = resolve(import.meta.dir, "../..");
/** Generous per-test limit: the machine is shared and the work is counted, not timed. */
const LIMIT_MS = 120_000;
const NOW = Date.UTC(2026, 0, 1);
const SHIPPED: PolicySource[] = readdirSync(join(ROOT, "policies"))
  .filter((f) => f.endsWith(".duty"))
  .sort()
  .map((f) => ({ path: f, text: readFileSync(join(ROOT, "policies", f), "utf8") }));

// --- the watchdog: counts parser steps; an input past its budget is a hang -------------------------
class WatchdogExpired extends Error {}
let steps = 0;
let budget = Infinity;
const parser = dutyParser as unknown as Record<string, (...args: unknown[]) => unknown>;
const originals = { consumeInternal: parser.consumeInternal!, subruleInternal: parser.subruleInternal! };
for (const name of ["consumeInternal", "subruleInternal"] as const) {
  const original = originals[name];
  parser[name] = function (this: unknown, ...args: unknown[]) {
    if (++steps > budget) throw new WatchdogExpired(`more than ${budget} parser steps`);
    return original.apply(this, args);
  };
}
afterAll(() => {
  // Restore the shared parser instance for any suite that runs after this one in the same process.
  delete parser.consumeInternal;
  delete parser.subruleInternal;
});

// --- checks ----------------------------------------------------------------------------------------
interface Failure { kind: string; seed: number; problem: string; sources: PolicySource[] }
const failures: Failure[] = [];
const stats = { inputs: 0, policies: 0, decisions: 0, diagnostics: 0, maxSteps: 0, codes: new Set<string>() };

function spanProblem(d: Diagnostic, texts: ReadonlyMap<string, string>): string | null {
  const text = texts.get(d.span.file);
  if (text === undefined) return `span names unknown file ${d.span.file}`;
  const lines = text.split("\n");
  const s = d.span;
  if (!(s.line >= 1 && s.line <= lines.length)) return `line ${s.line} outside 1..${lines.length}`;
  if (!(s.endLine >= s.line && s.endLine <= lines.length)) return `endLine ${s.endLine} outside ${s.line}..${lines.length}`;
  if (!(s.col >= 1 && s.col <= lines[s.line - 1]!.length + 1)) return `col ${s.col} outside 1..${lines[s.line - 1]!.length + 1}`;
  if (!(s.endCol >= 1 && s.endCol <= lines[s.endLine - 1]!.length + 2)) return `endCol ${s.endCol} beyond its line`;
  if (s.endLine === s.line && s.endCol < s.col) return `endCol ${s.endCol} before col ${s.col}`;
  if (!(s.start >= 0 && s.start <= s.end && s.end <= text.length)) return `offsets ${s.start}..${s.end} outside 0..${text.length}`;
  let lineStart = 0;
  for (let i = 0; i < s.line - 1; i++) lineStart += lines[i]!.length + 1;
  if (lineStart + s.col - 1 !== s.start) return `line:col ${s.line}:${s.col} is offset ${lineStart + s.col - 1}, span starts at ${s.start}`;
  return null;
}

function diagnosticProblem(d: Diagnostic, texts: ReadonlyMap<string, string>): string | null {
  if (!/^[EW]_[A-Z_]+$/.test(d.code)) return `bad code ${d.code}`;
  if (d.severity !== (d.code.startsWith("W_") ? "warning" : "error")) return `${d.code} has severity ${d.severity}`;
  if (!/^[a-z`]/.test(d.message) || d.message.endsWith(".")) return `${d.code} message not lowercase or ends with a period: ${d.message}`;
  const span = spanProblem(d, texts);
  return span ? `${d.code} ${span}` : null;
}

const STRINGS = ["", "1", "0", "core", "x", "a", "safe", "on", "p1", "42"];
function randomRaw(rng: Rng, type: Type): unknown {
  switch (type.kind) {
    case "string": return rng.pick(STRINGS);
    case "int": return rng.int(10);
    case "bool": return rng.chance(0.5);
    case "ip": return rng.pick(["10.1.2.3", "127.0.0.1", "192.168.0.9", "203.0.113.5", "::1", "fd00::1"]);
    case "cidr": return rng.pick(["10.0.0.0/8", "0.0.0.0/0", "fd00::/8"]);
    case "time": return rng.pick(["2026-01-01T00:00:00Z", "2027-06-01T12:00:00Z"]);
    case "duration": return rng.pick(["0s", "1h", "90m"]);
    case "enum": return type.values.length ? rng.pick(type.values) : "none";
    case "set": return type.of.kind === "enum" && type.of.values.length === 0 ? [] : Array.from({ length: rng.int(4) }, () => randomRaw(rng, type.of));
    case "any": return null;
  }
}

function randomRequest(rng: Rng, policy: CheckedPolicy, texts: readonly string[]): { channel: Channel; request: PolicyRequest } {
  const words = [...new Set(texts.flatMap((t) => [...t.matchAll(/"([^"\\\n]{0,20})"/g)].map((m) => m[1]!)))].concat(STRINGS);
  const duty = policy.duties.length && rng.chance(0.85) ? rng.pick(policy.duties) : null;
  const path = duty
    ? "/" + duty.segments.flatMap((s) => (s.kind === "literal" ? [s.text] : s.kind === "param" ? [rng.pick(["42", "p1", "x"])] : Array.from({ length: rng.int(3) }, () => "w"))).join("/")
    : rng.pick(["/", "/changes", "/changes/42/approve", "/logs", "/x/y"]);
  const headers: Record<string, string> = {};
  const query: Record<string, string> = {};
  for (let i = rng.int(4); i > 0; i--) headers[rng.pick(words).toLowerCase()] = rng.pick(words);
  for (let i = rng.int(3); i > 0; i--) query[rng.pick(words)] = rng.pick(words);
  return {
    channel: duty && rng.chance(0.9) ? duty.channel : rng.pick(["operational", "admin"] as const),
    request: {
      method: duty && rng.chance(0.9) ? duty.method : rng.pick(["GET", "POST", "PUT", "DELETE"]),
      path: path === "" ? "/" : path,
      ip: parseIp(rng.pick(["10.1.2.3", "127.0.0.1", "192.168.1.1", "203.0.113.9", "::1", "fd00::5", "2001:db8::1"]))!,
      time: rng.pick([Date.UTC(2026, 5, 1), Date.UTC(2028, 0, 1), Date.UTC(2025, 0, 1)]),
      headers,
      query,
    },
  };
}

function essence(d: ReturnType<typeof interpretDecision>) {
  return JSON.stringify({ allow: d.allow, code: d.code, duty: d.duty, decidedBy: d.decidedBy, separations: d.separations });
}

/** Runs one input through every check; records failures instead of stopping at the first. */
function fuzzOne(kind: string, seed: number, sources: PolicySource[]): void {
  stats.inputs++;
  const totalLength = sources.reduce((n, s) => n + s.text.length, 0);
  steps = 0;
  budget = 10_000 + 400 * totalLength;
  const fail = (problem: string) => failures.push({ kind, seed, problem, sources });
  let result: ReturnType<typeof loadPolicy>;
  try {
    result = loadPolicy(sources, { now: NOW });
  } catch (e) {
    fail(e instanceof WatchdogExpired ? `hang: ${e.message}` : `threw ${(e as Error).name}: ${(e as Error).message}`);
    return;
  } finally {
    stats.maxSteps = Math.max(stats.maxSteps, steps);
    budget = Infinity;
  }
  const texts = new Map(sources.map((s) => [s.path, s.text]));
  for (const d of result.diagnostics) {
    stats.diagnostics++;
    stats.codes.add(d.code);
    const problem = diagnosticProblem(d, texts);
    if (problem) { fail(problem); return; }
  }
  if (result.policy === null) {
    if (!result.diagnostics.some((d) => d.severity === "error")) fail("no policy and no error");
    return;
  }
  if (result.diagnostics.some((d) => d.severity === "error")) { fail("a policy despite errors"); return; }
  stats.policies++;
  const policy = result.policy;
  try {
    const compiled = compilePolicy(policy);
    compiled.describe();
    const rng = createRng(seed ^ 0x5eed);
    for (let i = 0; i < 20; i++) {
      const raw = Object.fromEntries(Object.entries(policy.schema).map(([k, t]) => [k, randomRaw(rng, t)]));
      raw.sub = `user${i}`;
      const coerced = coercePrincipal(policy.schema, raw);
      if (!coerced.ok) { fail(`a well-typed principal does not coerce: ${coerced.message}`); return; }
      const principal: Principal = coerced.principal;
      const { channel, request } = randomRequest(rng, policy, sources.map((s) => s.text));
      const route = interpretRoute(policy, channel, request.method, request.path);
      const match = compiled.match(channel, request.method, request.path);
      if (JSON.stringify(route) !== JSON.stringify(match)) { fail(`routes differ on ${channel} ${request.method} ${request.path}: ${JSON.stringify(route)} vs ${JSON.stringify(match)}`); return; }
      const a = interpretDecision(policy, channel, principal, request);
      const b = compiled.decide(channel, principal, request);
      stats.decisions++;
      if (essence(a) !== essence(b)) { fail(`decisions differ on ${channel} ${request.method} ${request.path}: ${essence(a)} vs ${essence(b)}`); return; }
    }
  } catch (e) {
    fail(`deciding threw ${(e as Error).name}: ${(e as Error).message}`);
  }
}

function report(): string {
  return failures.slice(0, 5).map((f) => `${f.kind} seed ${f.seed}: ${f.problem}\n${f.sources.map((s) => `--- ${s.path}\n${JSON.stringify(s.text)}`).join("\n")}`).join("\n\n");
}

describe("fuzz (fixed seed)", () => {
  test("token soup: 1,500 inputs", () => {
    const rng = createRng(0xd07);
    for (let i = 0; i < 1500; i++) fuzzOne("soup", i, [{ path: "soup.duty", text: tokenSoup(rng) }]);
    expect(report()).toBe("");
  }, LIMIT_MS);

  test("the shipped policies with character mutations: 1,500 inputs", () => {
    const rng = createRng(0xc4a5);
    for (let i = 0; i < 1500; i++) {
      const victim = rng.int(SHIPPED.length);
      fuzzOne("chars", i, SHIPPED.map((s, j) => (j === victim ? { path: s.path, text: mutateChars(rng, s.text) } : s)));
    }
    expect(report()).toBe("");
  }, LIMIT_MS);

  test("the shipped policies with token mutations: 1,000 inputs", () => {
    const rng = createRng(0x70c);
    for (let i = 0; i < 1000; i++) {
      const victim = rng.int(SHIPPED.length);
      fuzzOne("tokens", i, SHIPPED.map((s, j) => (j === victim ? { path: s.path, text: mutateTokens(rng, s.text) } : s)));
    }
    expect(report()).toBe("");
  }, LIMIT_MS);

  test("generated policies, intact and mutated: 300 inputs", () => {
    const rng = createRng(0x9e7);
    for (let i = 0; i < 300; i++) {
      const gen = generatePolicy(5 + rng.int(20), 1000 + i);
      const text = i % 3 === 0 ? gen.text : i % 3 === 1 ? mutateTokens(rng, gen.text) : mutateChars(rng, gen.text);
      fuzzOne("generated", i, [{ path: gen.path, text }]);
    }
    expect(report()).toBe("");
  }, LIMIT_MS);

  test("the watchdog stops a load past its step budget", () => {
    steps = 0;
    budget = 50;
    try {
      expect(() => loadPolicy(SHIPPED, { now: NOW })).toThrow(WatchdogExpired);
    } finally {
      budget = Infinity;
    }
  });

  test("the fuzzer reached every stage", () => {
    expect(stats.inputs).toBe(4300);
    // The watchdog was attached (it counted steps) and inputs reached the checker and both evaluators.
    expect(stats.maxSteps).toBeGreaterThan(0);
    expect(stats.policies).toBeGreaterThan(300);
    expect(stats.decisions).toBeGreaterThan(6000);
    console.log(`fuzz: ${stats.inputs} inputs, ${stats.policies} policies, ${stats.decisions} decisions compared, ${stats.diagnostics} diagnostics of ${stats.codes.size} codes, max ${stats.maxSteps} parser steps`);
    for (const code of ["E_LEX", "E_SYNTAX", "E_UNKNOWN_ROLE", "E_UNKNOWN_DUTY", "E_TYPE_MISMATCH"]) expect([...stats.codes]).toContain(code);
  });
});
