// How fast `gateway lsp` answers on a large policy: a generated 1,000-duty policy (one file),
// opened in a real LSP client (test/support/lsp-client.ts) speaking JSON-RPC over the server's
// stdio, as an editor does. Each request kind is sent RUNS times on the settled document and
// timed from send to answer (JSON-RPC round trip included): hover, definition, references,
// completion, formatting, code lens. Also timed: diagnostics after an edit (from `didChange` to
// `publishDiagnostics`, which includes the server's 50 ms pause for more edits and the full
// re-check of the policy). Target: each request ≤ 50 ms (median and p95).
//
//   bun bench/lsp.bench.ts [--runs 30] [--duties 1000] [--binary dist/gateway]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { generatePolicy } from "./gen-policy.ts";
import { SOURCE_LSP, startLspSession, uriOf } from "../test/support/lsp-client.ts";

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg("runs") ?? 30);
const DUTIES = Number(arg("duties") ?? 1000);
const BINARY = arg("binary");
const TARGET_MS = 50;

const work = mkdtempSync(join(tmpdir(), "dutygate-lsp-bench-"));
const gen = generatePolicy(DUTIES, 1);
const file = join(work, gen.path);
writeFileSync(file, gen.text);
const uri = uriOf(file);
const text = gen.text;

/** LSP position of the `n`th match of `needle`, shifted by `shift` characters. */
function positionOf(needle: string, shift = 0, n = 0): { line: number; character: number } {
  let at = -1;
  for (let i = 0; i <= n; i++) at = text.indexOf(needle, at + 1);
  if (at < 0) throw new Error(`\`${needle}\` not in the policy`);
  at += shift;
  const before = text.slice(0, at);
  return { line: before.split("\n").length - 1, character: at - before.lastIndexOf("\n") - 1 };
}

process.once("exit", () => rmSync(work, { recursive: true, force: true }));
const session = await startLspSession(BINARY ? [BINARY, "lsp", "--stdio"] : SOURCE_LSP, { cwd: work });
try {
  const firstStart = performance.now();
  const first = await session.open(uri, text);
  const openMs = performance.now() - firstStart;
  // The generator puts some operational duties on admin upstreams, which the separation analysis
  // flags; the policy itself checks and compiles.
  const unexpected = first.filter((d) => d.severity === 1 && d.code !== "E_ADMIN_REACHABLE_OPERATIONALLY");
  if (unexpected.length) throw new Error(`the generated policy has errors: ${unexpected[0]!.message}`);

  // A duty in the middle of the file, used in a grant: hover, definition and references on it.
  const middle = gen.duties[Math.floor(gen.duties.length / 2)]!.name;
  const onDuty = positionOf(`${middle}`, 2, 1);
  const doc = { textDocument: { uri } };
  const kinds: Array<{ name: string; send: () => Promise<unknown>; check: (r: unknown) => boolean }> = [
    { name: "hover", send: () => session.connection.sendRequest("textDocument/hover", { ...doc, position: onDuty }), check: (r) => JSON.stringify(r).includes(middle) },
    { name: "definition", send: () => session.connection.sendRequest("textDocument/definition", { ...doc, position: onDuty }), check: (r) => Array.isArray(r) && r.length === 1 },
    { name: "references", send: () => session.connection.sendRequest("textDocument/references", { ...doc, position: onDuty, context: { includeDeclaration: true } }), check: (r) => Array.isArray(r) && r.length >= 2 },
    { name: "completion", send: () => session.connection.sendRequest("textDocument/completion", { ...doc, position: positionOf("principal.", "principal.".length, 100) }), check: (r) => Array.isArray(r) && r.length === 5 },
    { name: "formatting", send: () => session.connection.sendRequest("textDocument/formatting", { ...doc, options: { tabSize: 2, insertSpaces: true } }), check: (r) => Array.isArray(r) && r.length === 1 },
    { name: "codeLens", send: () => session.connection.sendRequest("textDocument/codeLens", doc), check: (r) => Array.isArray(r) && r.length > 100 },
  ];
  const rows: Array<{ name: string; samples: number[] }> = [];
  for (const k of kinds) {
    const samples: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const r = await k.send();
      samples.push(performance.now() - t);
      if (!k.check(r)) throw new Error(`${k.name}: unexpected answer ${JSON.stringify(r).slice(0, 300)}`);
    }
    rows.push({ name: k.name, samples });
  }
  // Diagnostics after an edit: a grant of an unknown role, then the original text again.
  const edits: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 10); i++) {
    const broken = `${text}grant no_such_role ${middle}\n`;
    let t = performance.now();
    const d = await session.change(uri, broken);
    edits.push(performance.now() - t);
    if (!d.some((x) => x.code === "E_UNKNOWN_ROLE")) throw new Error("the edit was not diagnosed");
    t = performance.now();
    await session.change(uri, text);
    edits.push(performance.now() - t);
  }

  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const ms = (x: number) => x.toFixed(1).padStart(7);
  console.log(`gateway lsp on a ${DUTIES.toLocaleString("en-US")}-duty policy (${text.split("\n").length.toLocaleString("en-US")} lines, ${(text.length / 1024).toFixed(0)} KiB, one file); ${BINARY ? `binary ${BINARY}` : "from source (bun src/main.ts lsp)"}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}; runtime: Bun ${Bun.version}; ${RUNS} runs per request kind`);
  console.log(`first open to first diagnostics: ${openMs.toFixed(0)} ms`);
  console.log("");
  console.log(`request kind          median      p95      max   target   median/target`);
  for (const r of rows) {
    const med = pct(r.samples, 50), p95 = pct(r.samples, 95);
    console.log(`${r.name.padEnd(18)} ${ms(med)}  ${ms(p95)}  ${ms(Math.max(...r.samples))}   ${String(TARGET_MS).padStart(4)} ms   ${(med / TARGET_MS).toFixed(2).padStart(5)}  ${p95 <= TARGET_MS ? "ok" : "OVER"}`);
  }
  console.log(`${"diagnostics/edit".padEnd(18)} ${ms(pct(edits, 50))}  ${ms(pct(edits, 95))}  ${ms(Math.max(...edits))}   (notification; includes the 50 ms pause for more edits and the full re-check)`);
  await session.close();
} finally {
  session.kill();
}
