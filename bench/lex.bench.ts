// Front-end cost on pathological inputs: lexing long strings (terminated, and unterminated lines
// of `\"` that a failing string pattern rescanned from every quote), and loading plus rendering
// files of many broken lines (spans and snippets once computed by scanning from the file start).
// Linear inputs should show time proportional to size: compare each row with the one above it.
//
// Run: node_modules/.bin/bun bench/lex.bench.ts [--quick]   (also: deno run --allow-read bench/lex.bench.ts)
import { cpus, platform, arch } from "node:os";
import { dutyLexer } from "../dsl/lexer.ts";
import { loadPolicy, renderDiagnostic } from "../dsl/mod.ts";

const QUICK = process.argv.includes("--quick");
const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`;
const HEAD = "principal { sub: string roles: set<role> }\nrole a\nupstream u\nduty d GET /x -> u\n";

function time(run: () => unknown): number {
  run(); // warm-up, also of the regex JIT
  const t0 = performance.now();
  run();
  return performance.now() - t0;
}

const rows: Array<[string, string, number]> = [];
const KiB = 1024;
for (const size of QUICK ? [256 * KiB, 512 * KiB] : [1024 * KiB, 2048 * KiB]) {
  const text = HEAD + `grant a d when principal.sub == "${"x".repeat(size)}"\n`;
  rows.push(["string, terminated", `${size / KiB} KiB`, time(() => dutyLexer.tokenize(text))]);
}
for (const size of QUICK ? [32 * KiB, 64 * KiB] : [64 * KiB, 128 * KiB, 1024 * KiB]) {
  const text = HEAD + `grant a d when principal.sub == "${'\\"'.repeat(size / 2)}\n`;
  rows.push(["string, unterminated, of \\\"", `${size / KiB} KiB`, time(() => dutyLexer.tokenize(text))]);
}
for (const lines of QUICK ? [5_000, 10_000] : [10_000, 100_000]) {
  const text = HEAD + "grant a d when principal.sub == $x$\n".repeat(lines);
  const sources = new Map([["p.duty", text]]);
  rows.push(["broken lines, load + render (2 errors each)", `${lines.toLocaleString("en-US")} lines`, time(() => {
    const r = loadPolicy([{ path: "p.duty", text }], { maxErrorsPerFile: 0 });
    for (const d of r.diagnostics) renderDiagnostic(d, sources);
  })]);
}

console.log(`lexer and loader on pathological inputs — ${runtime}, ${platform()} ${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`);
console.log("input                                         size            ms");
for (const [what, size, ms] of rows) console.log(`${what.padEnd(45)} ${size.padEnd(15)} ${ms.toFixed(0).padStart(6)}`);
