// The grammar under a real TextMate engine (vscode-textmate with the Oniguruma regex library, as
// in the editor), and the snapshot text the grammar tests compare with their golden files.
import { readdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { createRequire } from "node:module";
import * as oniguruma from "vscode-oniguruma";
import { INITIAL, parseRawGrammar, Registry, type IGrammar } from "vscode-textmate";

export const EXTENSION_DIR = resolve(import.meta.dir, "..");
export const REPO_ROOT = resolve(EXTENSION_DIR, "..", "..");
export const GRAMMAR_PATH = join(EXTENSION_DIR, "syntaxes", "duty.tmLanguage.json");
export const SNAPSHOT_DIR = join(EXTENSION_DIR, "test", "snapshots");

/** The sources with a snapshot: the shipped policies, then fixtures that use every rule. */
export function snapshotSources(): Array<{ path: string; snapshot: string }> {
  const from = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".duty")).sort().map((n) => join(dir, n));
  return [...from(join(REPO_ROOT, "policies")), ...from(join(EXTENSION_DIR, "test", "fixtures"))].map((path) => ({ path, snapshot: join(SNAPSHOT_DIR, `${basename(path)}.snap`) }));
}

let loaded: Promise<IGrammar> | null = null;

/** The grammar, loaded once into a vscode-textmate registry. */
export function loadTextMateGrammar(): Promise<IGrammar> {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
    await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
    const registry = new Registry({
      onigLib: Promise.resolve({ createOnigScanner: (sources) => new oniguruma.OnigScanner(sources), createOnigString: (s) => new oniguruma.OnigString(s) }),
      loadGrammar: async (scopeName) => (scopeName === "source.duty" ? parseRawGrammar(readFileSync(GRAMMAR_PATH, "utf8"), GRAMMAR_PATH) : null),
    });
    const grammar = await registry.loadGrammar("source.duty");
    if (!grammar) throw new Error("vscode-textmate did not load source.duty");
    return grammar;
  })();
  return loaded;
}

export interface Token { start: number; end: number; scopes: string[] }

/** Tokens of each line of `text`, clipped to the line, adjacent equal scopes merged. */
export function tokenizeText(grammar: IGrammar, text: string): Token[][] {
  let stack = INITIAL;
  return text.split("\n").map((line) => {
    const r = grammar.tokenizeLine(line, stack);
    stack = r.ruleStack;
    const out: Token[] = [];
    r.tokens.forEach((t, i) => {
      const start = t.startIndex, end = Math.min(r.tokens[i + 1]?.startIndex ?? line.length, line.length);
      if (end <= start) return;
      const last = out[out.length - 1];
      if (last && last.end === start && last.scopes.join(" ") === t.scopes.join(" ")) last.end = end;
      else out.push({ start, end, scopes: [...t.scopes] });
    });
    return out;
  });
}

/**
 * The snapshot of a source: each line as `>line`, then under it one `^^^ scope…` line per
 * token that has a scope beyond `source.duty`, carets under the token's characters.
 */
export function renderSnapshot(text: string, lines: Token[][]): string {
  const out: string[] = [];
  text.split("\n").forEach((line, i) => {
    out.push(`>${line}`);
    for (const t of lines[i] ?? []) {
      const scopes = t.scopes.slice(1);
      if (scopes.length) out.push(`${" ".repeat(t.start + 1)}${"^".repeat(t.end - t.start)} ${scopes.join(" ")}`);
    }
  });
  return out.join("\n") + "\n";
}
