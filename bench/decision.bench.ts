// Per-decision latency of the `.duty` language: compiled decision trees (Hono router + tree) versus
// the reference interpreter, routing included, on the shipped policies and on generated policies
// of 10, 100, 1,000 and 10,000 duties.
//
// Run: node_modules/.bin/bun bench/decision.bench.ts [--quick]
//
// Method: decisions are timed in batches of BATCH consecutive calls with Bun.nanoseconds()
// (process.hrtime.bigint() elsewhere); each batch's time / BATCH is one sample, so the timer's own
// cost (printed) is amortised instead of dominating. p50 and p99 are over all samples, after a
// warm-up. Requests and principals rotate through 2,000 and 200 samples from bench/gen-policy.ts
// (allowed and denied, unknown routes, exclusive role holders). "fresh principal" uses a new
// principal object for every decision, as when nothing upstream caches the authenticated caller;
// otherwise principals are reused objects, as the authenticator's verified-token cache hands out.
import { cpus, platform, arch } from "node:os";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { generatePolicy, samplePrincipals, sampleRequests, SAMPLE_TIME, type GeneratedPolicy, type SampleRequest } from "./gen-policy.ts";
import { coercePrincipal, compilePolicy, interpretDecision, loadPolicy } from "../dsl/mod.ts";
import type { CheckedPolicy, Decision, Principal, PolicySource } from "../dsl/mod.ts";

const QUICK = process.argv.includes("--quick");
const BATCH = 8;
const SAMPLES = QUICK ? 5_000 : 40_000;
const ROOT = resolve(import.meta.dir, "..");
const NOW = Date.UTC(2026, 0, 1);

const now: () => number = typeof Bun !== "undefined" ? () => Bun.nanoseconds() : () => Number(process.hrtime.bigint());
const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`;

interface Stats { p50: number; p99: number; mean: number }

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Times `samples` batches of BATCH calls of decide(i); returns per-decision ns statistics. */
function measure(samples: number, decide: (i: number) => Decision): Stats {
  let sink = 0;
  const warm = Math.min(20_000, samples * BATCH);
  for (let i = 0; i < warm; i++) sink += decide(i).allow ? 1 : 0;
  const out = new Float64Array(samples);
  let i = 0;
  for (let s = 0; s < samples; s++) {
    const t0 = now();
    for (let b = 0; b < BATCH; b++) sink += decide(i++).allow ? 1 : 0;
    out[s] = (now() - t0) / BATCH;
  }
  if (sink < 0) console.log(sink); // keeps the work observable
  out.sort();
  let total = 0;
  for (const v of out) total += v;
  return { p50: percentile(out, 0.5), p99: percentile(out, 0.99), mean: total / samples };
}

function timerOverhead(): number {
  const out = new Float64Array(10_000);
  for (let s = 0; s < out.length; s++) { const t0 = now(); out[s] = now() - t0; }
  out.sort();
  return percentile(out, 0.5);
}

interface Subject { name: string; duties: number; policy: CheckedPolicy; principals: Record<string, unknown>[]; requests: SampleRequest[]; loadMs: number; compileMs: number }

function subjectOf(name: string, sources: PolicySource[], gen: GeneratedPolicy): Subject {
  const t0 = performance.now();
  const { policy, diagnostics } = loadPolicy(sources, { now: NOW });
  const loadMs = performance.now() - t0;
  if (!policy) throw new Error(`${name} does not load: ${diagnostics.map((d) => d.message).join("; ")}`);
  return { name, duties: policy.duties.length, policy, principals: samplePrincipals(gen, 200) as unknown as Record<string, unknown>[], requests: sampleRequests(gen, 2000), loadMs, compileMs: 0 };
}

function shippedSubject(): Subject {
  const dir = join(ROOT, "policies");
  const sources = readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") }));
  // Samples for the shipped policy: its roles, duties and teams, in the generator's proportions.
  const probe = loadPolicy(sources, { now: NOW }).policy!;
  const gen: GeneratedPolicy = {
    path: "shipped", text: "", roles: probe.roles, teams: ["core", "ops", "audit", "security"],
    duties: probe.duties.map((d) => ({ name: d.name, method: d.method, pattern: d.pattern.replace(/:change/g, ":id"), channel: d.channel })),
  };
  return subjectOf("shipped policies", sources, gen);
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

// Stand-ins so that measure() can time routing alone with the same loop.
const ALLOWED = { allow: true } as Decision;
const DENIED = { allow: false } as Decision;

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model.trim() ?? "unknown cpu"}, ${cpu.length} cores, ${platform()}/${arch()}`);
console.log(`runtime: ${runtime}`);
console.log(`method: batches of ${BATCH} decisions timed with ${typeof Bun !== "undefined" ? "Bun.nanoseconds()" : "process.hrtime.bigint()"}, ${SAMPLES} batches per cell; timer overhead ${timerOverhead().toFixed(0)} ns per batch (included)`);
console.log("");

const subjects: Subject[] = [shippedSubject()];
for (const n of [10, 100, 1000, 10_000]) {
  const gen = generatePolicy(n);
  subjects.push(subjectOf(`generated ${n}`, [{ path: gen.path, text: gen.text }], gen));
}

const rows: string[][] = [["policy", "duties", "load+check", "compile", "compiled p50", "compiled p99", "of which routing p50", "fresh principal p50", "fresh p99", "interpreter p50", "interpreter p99", "interp/compiled (p50)", "allowed"]];
for (const s of subjects) {
  const t0 = performance.now();
  const compiled = compilePolicy(s.policy);
  s.compileMs = performance.now() - t0;
  const principals = s.principals.map((p) => typed(s.policy, p));
  const reqs = s.requests.map((r) => ({ ...r, request: { ...r.request, time: r.request.time ?? SAMPLE_TIME } }));
  const np = principals.length, nr = reqs.length;
  const compiledStats = measure(SAMPLES, (i) => { const r = reqs[i % nr]!; return compiled.decide(r.channel, principals[i % np]!, r.request); });
  // Routing alone (compiled.match), to show where the compiled decision's time goes.
  const routeStats = measure(SAMPLES, (i) => { const r = reqs[i % nr]!; return compiled.match(r.channel, r.request.method, r.request.path) ? ALLOWED : DENIED; });
  // Fresh principal objects (and role sets) for every decision: the per-principal role facts are recomputed.
  const freshCount = Math.min(SAMPLES * BATCH + 20_000, 400_000);
  const fresh = Array.from({ length: freshCount }, (_, i) => typed(s.policy, s.principals[i % np]!));
  const freshStats = measure(Math.floor((freshCount - 20_000) / BATCH), (i) => { const r = reqs[i % nr]!; return compiled.decide(r.channel, fresh[i % freshCount]!, r.request); });
  // The interpreter scans every duty and grant: fewer samples on large policies keep the run short.
  const interpSamples = Math.max(200, Math.floor(SAMPLES / Math.max(1, s.duties / 50)));
  const interpStats = measure(interpSamples, (i) => { const r = reqs[i % nr]!; return interpretDecision(s.policy, r.channel, principals[i % np]!, r.request); });
  let allowed = 0;
  for (let i = 0; i < nr; i++) if (compiled.decide(reqs[i]!.channel, principals[i % np]!, reqs[i]!.request).allow) allowed++;
  rows.push([
    s.name, String(s.duties), `${s.loadMs.toFixed(0)} ms`, `${s.compileMs.toFixed(0)} ms`,
    fmt(compiledStats.p50), fmt(compiledStats.p99), fmt(routeStats.p50), fmt(freshStats.p50), fmt(freshStats.p99),
    fmt(interpStats.p50), fmt(interpStats.p99), `${(interpStats.p50 / compiledStats.p50).toFixed(1)}×`, `${((100 * allowed) / nr).toFixed(0)}%`,
  ]);
}

const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const [i, r] of rows.entries()) {
  console.log("| " + r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ") + " |");
  if (i === 0) console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
}
const at1000 = rows.find((r) => r[0] === "generated 1000");
if (at1000) console.log(`\ntarget at 1,000 duties: compiled p50 ≤ 1 µs (got ${at1000[4]}), p99 ≤ 5 µs (got ${at1000[5]})`);
