// Decisions side by side: dutygate (compiled trees and the reference interpreter), a hand-written
// JavaScript evaluator, Cedar (cedar-wasm) and Casbin, on one scenario written once as data
// (scenario.ts) and translated into each engine's language (translate.ts).
//
//   npm run bench:peers -- [--quick] [--variants base,scaled] [--no-node] [--dump DIR]
//
// 1. Agreement: every engine decides all 10,000 request tuples of each variant; every answer must
//    equal dutygate's compiled tree, which must equal the interpreter (allow, code, duty, rule).
//    Any disagreement prints the tuple and exits 1 before anything is timed.
// 2. Latency: after a warm-up, samples of BATCH consecutive decisions are timed with the clock
//    around each batch (Bun.nanoseconds() / process.hrtime.bigint()); a sample is the batch time
//    divided by BATCH. p50/p99/mean over all samples; decisions/s from separate untimed passes.
// 3. The same under Node 20: this file is bundled with `bun build --target=node` (dsl/ and the
//    evaluator included, casbin and cedar-wasm left as packages) and run by node as a child.
// --dump DIR writes every translation (the .duty file, Cedar schema/policies, Casbin model and
// lines, the hand-written evaluator) for reading.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getCedarVersion } from "@cedar-policy/cedar-wasm/nodejs";
import { buildBench, checkAgreement } from "./engines.ts";
import { clockName, clockOverheadNs, formatNs, formatRate, measureEngine, type LatencyStats } from "./measure.ts";
import { baseScenario, ruleCount, scaledScenario, scenarioPrincipals, scenarioRequests, type Scenario } from "./scenario.ts";
import {
  CASBIN_MODEL_KEYMATCH, CASBIN_MODEL_ROUTED, toCasbinKeyMatchPolicy, toCasbinRoleLinks, toCasbinRoutedPolicy, toCedarPolicies, toCedarSchema,
  toDutyPolicy, toHandwrittenSource,
} from "./translate.ts";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const JSON_OUT = args.includes("--json");
const NO_NODE = args.includes("--no-node");
const flag = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const VARIANTS = (flag("variants") ?? "base,scaled").split(",").filter((v) => v === "base" || v === "scaled");
const DUMP = flag("dump");
const BATCH = 10;
const BUDGET_NS = (QUICK ? 0.25 : 1.5) * 1e9;

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root: the nearest directory up whose package.json is dutygate's (works from the bundle too). */
function findRoot(from: string): string {
  for (let dir = from, i = 0; i < 10; i++, dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).name === "dutygate") return dir;
  }
  throw new Error(`no dutygate package.json above \`${from}\``);
}
const ROOT = findRoot(HERE);
const versionOf = (pkg: string) => JSON.parse(readFileSync(join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version as string;
const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;

interface Row { variant: string; engine: string; routing: string; runtime: string; stats: LatencyStats }
interface Result { loadBefore: number; loadAfter: number; runtime: string; clock: string; clockOverheadNs: number; rows: Row[]; sizes: Record<string, Record<string, number>>; allowed: Record<string, number> }

function scenarioFor(name: string): Scenario {
  return name === "base" ? baseScenario() : scaledScenario();
}

function dump(dir: string, s: Scenario): void {
  mkdirSync(dir, { recursive: true });
  const principals = scenarioPrincipals(s);
  const csv = (rows: string[][]) => rows.map((r) => r.map((c) => (/[,"]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(", ")).join("\n") + "\n";
  writeFileSync(join(dir, `${s.name}.duty`), toDutyPolicy(s));
  writeFileSync(join(dir, `${s.name}.cedarschema`), toCedarSchema(s));
  writeFileSync(join(dir, `${s.name}.cedar`), toCedarPolicies(s));
  writeFileSync(join(dir, `${s.name}.keymatch2.conf`), CASBIN_MODEL_KEYMATCH.trimStart());
  writeFileSync(join(dir, `${s.name}.keymatch2.csv`), csv([...toCasbinKeyMatchPolicy(s).map((l) => ["p", ...l]), ...toCasbinRoleLinks(principals).map((l) => ["g", ...l])]));
  writeFileSync(join(dir, `${s.name}.routed.conf`), CASBIN_MODEL_ROUTED.trimStart());
  writeFileSync(join(dir, `${s.name}.routed.csv`), csv([...toCasbinRoutedPolicy(s).map((l) => ["p", ...l]), ...toCasbinRoleLinks(principals).map((l) => ["g", ...l])]));
  writeFileSync(join(dir, `${s.name}.handwritten.js`), toHandwrittenSource(s));
}

const log = (line: string) => { if (!JSON_OUT) console.log(line); else console.error(line); };

async function runHere(): Promise<Result> {
  const loadBefore = loadavg()[0]!;
  const rows: Row[] = [];
  const sizes: Record<string, Record<string, number>> = {};
  const allowedShare: Record<string, number> = {};
  for (const name of VARIANTS) {
    const s = scenarioFor(name);
    if (DUMP) dump(resolve(DUMP), s);
    const principals = scenarioPrincipals(s);
    const tuples = scenarioRequests(s, principals);
    const bench = await buildBench(s, principals, tuples);
    sizes[name] = bench.sizes;
    const t0 = performance.now();
    const { disagreements, allowed } = checkAgreement(bench, tuples);
    allowedShare[name] = allowed / tuples.length;
    log(`[${runtime}] ${name}: ${tuples.length} tuples, every engine agrees with dutygate: ${disagreements.length === 0 ? "yes" : "NO"} (${(100 * allowed / tuples.length).toFixed(1)}% allowed, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    if (disagreements.length) {
      for (const d of disagreements.slice(0, 20)) {
        console.error(`disagreement: ${d.engine} on tuple ${d.index}: expected allow=${d.expected}, got ${d.got}; dutygate ${d.dutygate.code} ${d.dutygate.duty ?? "-"} ${d.dutygate.decidedBy ?? "-"}; tuple ${JSON.stringify(d.tuple)} principal ${JSON.stringify(principals[d.tuple.principal])}`);
      }
      console.error(`${disagreements.length} disagreements on the ${name} variant`);
      process.exit(1);
    }
    for (const e of bench.engines) {
      const slow = !e.name.startsWith("dutygate compiled") && !e.name.startsWith("hand-written");
      const stats = measureEngine(e.decide, { tuples: tuples.length, batch: BATCH, budgetNs: BUDGET_NS, minSamples: slow ? 200 : 10_000, maxSamples: 200_000 });
      rows.push({ variant: name, engine: e.name, routing: e.routing, runtime, stats });
      log(`[${runtime}] ${name}: ${e.name}: p50 ${formatNs(stats.p50)}, p99 ${formatNs(stats.p99)}, mean ${formatNs(stats.mean)}, ${formatRate(stats.perSecond)}`);
    }
  }
  return { loadBefore, loadAfter: loadavg()[0]!, runtime, clock: clockName, clockOverheadNs: clockOverheadNs(), rows, sizes, allowed: allowedShare };
}

function runUnderNode(): Result | null {
  const out = join(HERE, ".out");
  mkdirSync(out, { recursive: true });
  const bundle = join(out, "run.node.mjs");
  const bunBin = join(ROOT, "node_modules", ".bin", "bun");
  const built = spawnSync(bunBin, ["build", join(HERE, "run.ts"), "--target=node", "--format=esm", "--external", "casbin", "--external", "@cedar-policy/cedar-wasm", "--outfile", bundle], { encoding: "utf8" });
  if (built.status !== 0) { console.error(`bun build for node failed:\n${built.stderr}`); return null; }
  const child = spawnSync("node", [bundle, "--json", ...args.filter((a) => a !== "--dump" && a !== DUMP)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 15 * 60_000, maxBuffer: 64 << 20 });
  if (child.status !== 0) { console.error(`the node run failed (exit ${child.status})`); process.exit(child.status ?? 1); }
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as Result;
}

function table(results: Result[]): string {
  const header = ["variant", "engine", "runtime", "p50", "p99", "mean", "decisions/s", "CPU/decision", "p50 vs dutygate", "mean vs dutygate"];
  const rows: string[][] = [header];
  for (const name of VARIANTS) {
    for (const r of results) {
      const mine = r.rows.filter((x) => x.variant === name);
      const base = mine.find((x) => x.engine === "dutygate compiled")!;
      for (const x of mine) {
        const ratio = (a: number, b: number) => (x === base ? "1×" : a >= b ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}× slower` : `${(b / a).toFixed(1)}× faster`);
        rows.push([name, x.engine, x.runtime, formatNs(x.stats.p50), formatNs(x.stats.p99), formatNs(x.stats.mean), formatRate(x.stats.perSecond), formatNs(x.stats.cpuPerDecision), ratio(x.stats.p50, base.stats.p50), ratio(x.stats.mean, base.stats.mean)]);
      }
    }
  }
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r, i) => "| " + r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ") + " |" + (i === 0 ? "\n|" + widths.map((w, c) => (c < 3 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|" : "")).join("\n");
}

function goals(results: Result[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    for (const name of VARIANTS) {
      const get = (engine: string) => r.rows.find((x) => x.variant === name && x.engine === engine)!.stats;
      const dg = get("dutygate compiled"), hw = get("hand-written JS");
      const mark = (ok: boolean) => (ok ? "met" : "MISSED");
      lines.push(`${r.runtime}, ${name}: p50 ≤ 1 µs ${mark(dg.p50 <= 1000)} (${formatNs(dg.p50)}); p99 ≤ 5 µs ${mark(dg.p99 <= 5000)} (${formatNs(dg.p99)}); within 2× of hand-written ${mark(dg.p50 <= 2 * hw.p50 && dg.mean <= 2 * hw.mean)} (p50 ${(dg.p50 / hw.p50).toFixed(1)}×, mean ${(dg.mean / hw.mean).toFixed(1)}×)`);
      for (const peer of ["Cedar (cedar-wasm)", "Cedar, sliced per duty", "Casbin keyMatch2", "Casbin routed"]) {
        const p = get(peer);
        lines.push(`  ${peer} ≥ 100× slower: ${mark(p.p50 >= 100 * dg.p50 && p.mean >= 100 * dg.mean)} (p50 ${(p.p50 / dg.p50).toFixed(0)}×, mean ${(p.mean / dg.mean).toFixed(0)}×)`);
      }
    }
  }
  return lines;
}

const here = await runHere();
if (JSON_OUT) {
  console.log(JSON.stringify(here));
} else {
  const results = [here];
  if (!NO_NODE) {
    log(`\nbundling for node and running the same under ${spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim()} …`);
    const node = runUnderNode();
    if (node) results.push(node);
  }
  const cpu = cpus();
  const scen = VARIANTS.map((v) => {
    const s = scenarioFor(v);
    const sz = here.sizes[v]!;
    return `${v}: ${s.duties.length} duties, ${s.roles.length} roles, ${ruleCount(s)} rules (${s.grants.length} grants, ${s.forbids.length} forbids) = ${sz.cedarPolicies} Cedar policies, ${sz.casbinKeyMatchLines} Casbin p lines (keyMatch2) / ${sz.casbinRoutedLines} (routed) + ${sz.casbinRoleLinks} g lines; 500 principals, 10,000 tuples, ${(100 * here.allowed[v]!).toFixed(1)}% allowed`;
  });
  console.log("");
  console.log(`machine: ${cpu[0]?.model.trim() ?? "unknown cpu"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()}/${arch()}`);
  console.log(`load average (1 min) before/after each run: ${results.map((r) => `${r.runtime} ${r.loadBefore.toFixed(1)}/${r.loadAfter.toFixed(1)}`).join(", ")} on ${cpu.length} cores`);
  console.log(`runtimes: ${results.map((r) => `${r.runtime} (clock ${r.clock}, ${r.clockOverheadNs.toFixed(0)} ns per read pair, included in each batch)`).join("; ")}`);
  console.log(`packages: @cedar-policy/cedar-wasm ${versionOf("@cedar-policy/cedar-wasm")} (Cedar ${getCedarVersion()}), casbin ${versionOf("casbin")}, hono ${versionOf("hono")}`);
  console.log(`method: agreement on all tuples first; then per engine a warm-up, samples of ${BATCH} consecutive decisions timed together (sample = batch / ${BATCH}), p50/p99/mean over the samples, decisions/s and process CPU time per decision from separate passes${QUICK ? " (--quick: short budgets)" : ""}`);
  for (const line of scen) console.log(`scenario ${line}`);
  console.log("");
  console.log(table(results));
  console.log("");
  console.log("routing: dutygate compiled: its compiled segment trie; interpreter: scans every duty; hand-written: method switch + per-segment switch; Cedar and Casbin routed: dutygate's compiled router resolves the duty first (its time included); Casbin keyMatch2: Casbin routes itself (keyMatch2 on the path, method compared in the matcher)");
  console.log("");
  console.log("goals:");
  for (const line of goals(results)) console.log(`  ${line}`);
}
