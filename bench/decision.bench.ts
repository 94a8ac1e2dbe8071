// Per-decision latency of the `.duty` language, routing included: the compiled decision trees
// against a hand-written evaluator of the same rules (bench/hand-written.ts) and the reference
// interpreter, on the shipped policies and on generated policies of 10, 100, 1,000 and 10,000
// duties. The target: the compiled p50 and p99 stay flat (≤ 1 µs and ≤ 5 µs) from 10 to 10,000.
//
// Run: npm run bench   (node_modules/.bin/bun bench/decision.bench.ts [--quick])
//
// Method: decisions are timed in batches of BATCH consecutive calls with Bun.nanoseconds()
// (process.hrtime.bigint() elsewhere); each batch's time / BATCH is one sample, so the timer's own
// cost (printed) is amortised instead of dominating. p50 and p99 are over all samples, after a
// warm-up. The compiled trees, the hand-written evaluator and routing alone are measured
// interleaved, in chunks of CHUNK batches taking turns, so that a swing of the machine's load
// falls on all of them alike. Requests and principals rotate through 2,000 and 200 samples from
// bench/gen-policy.ts (allowed and denied, unknown routes, exclusive role holders): consecutive
// decisions reach different duties, as the requests of many users do, so a policy's size shows
// in how much memory one decision touches. "fresh principal" uses a new principal object for
// every decision, as when nothing upstream caches the authenticated caller; otherwise principals
// are reused objects, as the authenticator's verified-token cache hands out.
import { cpus, loadavg, platform, arch } from "node:os";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generatePolicy, samplePrincipals, sampleRequests, SAMPLE_TIME, type GeneratedPolicy, type SampleRequest } from "./gen-policy.ts";
import { handWrittenEvaluator } from "./hand-written.ts";
import { coercePrincipal, compilePolicy, interpretDecision, loadPolicy } from "../dsl/mod.ts";
import type { CheckedPolicy, Principal, PolicySource } from "../dsl/mod.ts";

const QUICK = process.argv.includes("--quick");
const BATCH = 8;
const CHUNK = 250;
const SAMPLES = QUICK ? 5_000 : 40_000;
const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const NOW = Date.UTC(2026, 0, 1);

const now: () => number = typeof Bun !== "undefined" ? () => Bun.nanoseconds() : () => Number(process.hrtime.bigint());
const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`;

interface Stats { p50: number; p99: number; mean: number }

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Times `samples` batches of BATCH calls of decide(i); returns per-decision ns statistics. */
function measure(samples: number, decide: (i: number) => boolean): Stats {
  return measureInterleaved(samples, [decide])[0]!;
}

/**
 * Times each decider over `samples` batches, taking turns in chunks of CHUNK batches (after a
 * warm-up of each); returns per-decision ns statistics for each.
 */
function measureInterleaved(samples: number, deciders: ReadonlyArray<(i: number) => boolean>): Stats[] {
  let sink = 0;
  const warm = Math.min(20_000, samples * BATCH);
  for (const decide of deciders) for (let i = 0; i < warm; i++) sink += decide(i) ? 1 : 0;
  const out = deciders.map(() => new Float64Array(samples));
  const next = deciders.map(() => 0);
  for (let start = 0; start < samples; start += CHUNK) {
    const end = Math.min(samples, start + CHUNK);
    for (const [d, decide] of deciders.entries()) {
      const o = out[d]!;
      let i = next[d]!;
      for (let s = start; s < end; s++) {
        const t0 = now();
        for (let b = 0; b < BATCH; b++) sink += decide(i++) ? 1 : 0;
        o[s] = (now() - t0) / BATCH;
      }
      next[d] = i;
    }
  }
  if (sink < 0) console.log(sink); // keeps the work observable
  return out.map((o) => {
    o.sort();
    let total = 0;
    for (const v of o) total += v;
    return { p50: percentile(o, 0.5), p99: percentile(o, 0.99), mean: total / samples };
  });
}

function timerOverhead(): number {
  const out = new Float64Array(10_000);
  for (let s = 0; s < out.length; s++) { const t0 = now(); out[s] = now() - t0; }
  out.sort();
  return percentile(out, 0.5);
}

interface Subject { name: string; duties: number; policy: CheckedPolicy; gen: GeneratedPolicy | null; principals: Record<string, unknown>[]; requests: SampleRequest[]; loadMs: number; compileMs: number }

function subjectOf(name: string, sources: PolicySource[], gen: GeneratedPolicy, generated: boolean): Subject {
  const t0 = performance.now();
  const { policy, diagnostics } = loadPolicy(sources, { now: NOW });
  const loadMs = performance.now() - t0;
  if (!policy) throw new Error(`${name} does not load: ${diagnostics.map((d) => d.message).join("; ")}`);
  return { name, duties: policy.duties.length, policy, gen: generated ? gen : null, principals: samplePrincipals(gen, 200) as unknown as Record<string, unknown>[], requests: sampleRequests(gen, 2000), loadMs, compileMs: 0 };
}

function shippedSubject(): Subject {
  const dir = join(ROOT, "policies");
  const sources = readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") }));
  // Samples for the shipped policy: its roles, duties and teams, in the generator's proportions.
  const probe = loadPolicy(sources, { now: NOW }).policy!;
  const gen: GeneratedPolicy = {
    path: "shipped", text: "", roles: probe.roles, teams: ["core", "ops", "audit", "security"],
    duties: probe.duties.map((d) => ({ name: d.name, method: d.method, pattern: d.pattern.replace(/:change/g, ":id"), channel: d.channel })),
    rules: { grants: new Map(), frozen: new Set(), exclusives: [], separated: new Map() },
  };
  return subjectOf("shipped policies", sources, gen, false);
}

function typed(policy: CheckedPolicy, raw: Record<string, unknown>): Principal {
  // The shipped schema has no `level`; drop attributes the schema lacks.
  const r = coercePrincipal(policy.schema, Object.fromEntries(Object.entries(raw).filter(([k]) => k in policy.schema)));
  if (!r.ok) throw new Error(r.message);
  return r.principal;
}

function fmt(ns: number): string {
  return ns >= 10_000 ? `${(ns / 1000).toFixed(0)} µs` : ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`;
}

const cpu = cpus();
const load = () => loadavg().map((l) => l.toFixed(1)).join(" ");
console.log(`machine: ${cpu[0]?.model.trim() ?? "unknown cpu"}, ${cpu.length} cores, ${platform()}/${arch()}; load average at start ${load()}`);
console.log(`runtime: ${runtime}`);
console.log(`method: batches of ${BATCH} decisions timed with ${typeof Bun !== "undefined" ? "Bun.nanoseconds()" : "process.hrtime.bigint()"}, ${SAMPLES} batches per cell, compiled / hand-written / routing interleaved in chunks of ${CHUNK}; timer overhead ${timerOverhead().toFixed(0)} ns per batch (included)`);
console.log("");

const subjects: Subject[] = [shippedSubject()];
for (const n of [10, 100, 1000, 10_000]) {
  const gen = generatePolicy(n);
  subjects.push(subjectOf(`generated ${n}`, [{ path: gen.path, text: gen.text }], gen, true));
}

interface Row { s: Subject; compiled: Stats; hand: Stats | null; route: Stats; fresh: Stats; interp: Stats; allowed: number }
const results: Row[] = [];
for (const s of subjects) {
  const t0 = performance.now();
  const compiled = compilePolicy(s.policy);
  s.compileMs = performance.now() - t0;
  const principals = s.principals.map((p) => typed(s.policy, p));
  const reqs = s.requests.map((r) => ({ ...r, request: { ...r.request, time: r.request.time ?? SAMPLE_TIME } }));
  const np = principals.length, nr = reqs.length;
  const hand = s.gen ? handWrittenEvaluator(s.gen) : null;
  let allowed = 0;
  for (let i = 0; i < nr; i++) {
    const r = reqs[i]!, p = principals[i % np]!;
    const c = compiled.decide(r.channel, p, r.request).allow;
    if (c) allowed++;
    // The baseline must decide as the policy does, or the comparison means nothing.
    if (hand && hand(r.channel, p, r.request).allow !== c) throw new Error(`${s.name}: the hand-written evaluator disagrees on ${r.request.method} ${r.request.path} (compiled: ${c ? "allow" : "deny"})`);
  }
  const deciders: Array<(i: number) => boolean> = [
    (i) => { const r = reqs[i % nr]!; return compiled.decide(r.channel, principals[i % np]!, r.request).allow; },
    // Routing alone (compiled.match), to show where the compiled decision's time goes.
    (i) => { const r = reqs[i % nr]!; return compiled.match(r.channel, r.request.method, r.request.path) !== null; },
  ];
  if (hand) deciders.push((i) => { const r = reqs[i % nr]!; return hand(r.channel, principals[i % np]!, r.request).allow; });
  const [compiledStats, routeStats, handStats] = measureInterleaved(SAMPLES, deciders);
  // Fresh principal objects (and role sets) for every decision: the per-principal role facts are recomputed.
  const freshCount = Math.min(SAMPLES * BATCH + 20_000, 400_000);
  let fresh: Principal[] | null = Array.from({ length: freshCount }, (_, i) => typed(s.policy, s.principals[i % np]!));
  const f = fresh;
  const freshStats = measure(Math.floor((freshCount - 20_000) / BATCH), (i) => { const r = reqs[i % nr]!; return compiled.decide(r.channel, f[i % freshCount]!, r.request).allow; });
  fresh = null;
  // The interpreter scans every duty and grant: fewer samples on large policies keep the run short.
  const interpSamples = Math.max(200, Math.floor(SAMPLES / Math.max(1, s.duties / 50)));
  const interpStats = measure(interpSamples, (i) => { const r = reqs[i % nr]!; return interpretDecision(s.policy, r.channel, principals[i % np]!, r.request).allow; });
  results.push({ s, compiled: compiledStats!, hand: handStats ?? null, route: routeStats!, fresh: freshStats, interp: interpStats, allowed: (100 * allowed) / nr });
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const [i, r] of rows.entries()) {
    console.log("| " + r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ") + " |");
    if (i === 0) console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  }
}

const base = results.find((r) => r.s.name === "generated 10")!;
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
console.log("decisions (routing included), per decision:");
table([
  ["policy", "duties", "compiled p50", "compiled p99", "p50 ÷ 10 duties", "p99 ÷ 10 duties", "hand-written p50", "hand-written p99", "compiled ÷ hand-written (p50)", "of which routing p50"],
  ...results.map((r) => [
    r.s.name, String(r.s.duties), fmt(r.compiled.p50), fmt(r.compiled.p99), ratio(r.compiled.p50, base.compiled.p50), ratio(r.compiled.p99, base.compiled.p99),
    r.hand ? fmt(r.hand.p50) : "—", r.hand ? fmt(r.hand.p99) : "—", r.hand ? ratio(r.compiled.p50, r.hand.p50) : "—", fmt(r.route.p50),
  ]),
]);
console.log("\naround the decision:");
table([
  ["policy", "duties", "load+check", "compile", "fresh principal p50", "fresh p99", "interpreter p50", "interpreter p99", "interpreter ÷ compiled (p50)", "allowed"],
  ...results.map((r) => [
    r.s.name, String(r.s.duties), `${r.s.loadMs.toFixed(0)} ms`, `${r.s.compileMs.toFixed(0)} ms`, fmt(r.fresh.p50), fmt(r.fresh.p99),
    fmt(r.interp.p50), fmt(r.interp.p99), ratio(r.interp.p50, r.compiled.p50), `${r.allowed.toFixed(0)}%`,
  ]),
]);
const generated = results.filter((r) => r.s.name.startsWith("generated"));
const missed = generated.filter((r) => r.compiled.p50 > 1000 || r.compiled.p99 > 5000).map((r) => `${r.s.duties} duties (p50 ${fmt(r.compiled.p50)}, p99 ${fmt(r.compiled.p99)})`);
console.log(`\ntarget from 10 to 10,000 duties: compiled p50 ≤ 1 µs and p99 ≤ 5 µs: ${missed.length ? `missed at ${missed.join(", ")}` : "met"}`);
console.log(`load average at end ${load()}`);
