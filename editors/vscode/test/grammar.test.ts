// The TextMate grammar: golden snapshots over the shipped policies and fixtures under a real
// TextMate engine, the playground's scanner agreeing with that engine token for token, and
// every rule of the grammar in use. Regenerate the snapshots after a deliberate change with
// `node_modules/.bin/bun scripts/update-golden.ts` and review the diff.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { compileGrammar, tokenizeLine } from "../../../src/play/page/highlight.js";
import { GRAMMAR_PATH, loadTextMateGrammar, renderSnapshot, SNAPSHOT_DIR, snapshotSources, tokenizeText } from "./textmate.ts";

const grammarJson = JSON.parse(readFileSync(GRAMMAR_PATH, "utf8"));
const sources = snapshotSources();

test("the snapshots cover the shipped policies and nothing stale", () => {
  expect(sources.filter((s) => s.path.includes("/policies/")).length).toBeGreaterThanOrEqual(4);
  expect(readdirSync(SNAPSHOT_DIR).sort()).toEqual(sources.map((s) => basename(s.snapshot)).sort());
});

for (const { path, snapshot } of sources) {
  test(`${basename(path)} tokenises as its snapshot`, async () => {
    const text = readFileSync(path, "utf8");
    expect(existsSync(snapshot)).toBe(true);
    expect(renderSnapshot(text, tokenizeText(await loadTextMateGrammar(), text))).toBe(readFileSync(snapshot, "utf8"));
  });

  test(`the playground's scanner tokenises ${basename(path)} as the TextMate engine does`, async () => {
    const text = readFileSync(path, "utf8");
    const engine = tokenizeText(await loadTextMateGrammar(), text);
    const compiled = compileGrammar(grammarJson);
    text.split("\n").forEach((line, i) => {
      expect({ line: i + 1, tokens: tokenizeLine(compiled, line) }).toEqual({ line: i + 1, tokens: engine[i]! });
    });
  });
}

test("every rule of the grammar colours some token of the snapshots", () => {
  const text = sources.map((s) => readFileSync(s.snapshot, "utf8")).join("\n");
  const named = (grammarJson.patterns as Array<{ name?: string; captures?: Record<string, { name: string }> }>)
    .flatMap((p) => [...(p.name ? [p.name] : []), ...Object.values(p.captures ?? {}).map((c) => c.name)]);
  const unused = [...new Set(named)].filter((scope) => !new RegExp(`\\^ ([\\w.-]+ )*${scope.replace(/\./g, "\\.")}( |$)`, "m").test(text));
  expect(unused).toEqual([]);
});

test("keywords as names of attributes stay attributes, and methods, routes and comments keep their scopes", async () => {
  const grammar = await loadTextMateGrammar();
  const scopeAt = (line: string, text: string) => {
    const [tokens] = tokenizeText(grammar, line);
    const start = line.indexOf(text);
    return tokens!.find((t) => t.start <= start && start < t.end)!.scopes.slice(1);
  };
  expect(scopeAt("grant a b when request.time < 2026-01-01", "time")).toEqual(["variable.other.property.duty"]);
  expect(scopeAt("grant a b when request.ip in 10.0.0.0/8", "10.0.0.0/8")).toEqual(["constant.other.cidr.duty"]);
  expect(scopeAt("duty d POST /a/:id/b -> up # approve", "/a/:id/b")).toEqual(["string.unquoted.route.duty"]);
  expect(scopeAt("duty d POST /a/:id/b -> up # approve", "# approve")).toEqual(["comment.line.number-sign.duty"]);
  expect(scopeAt("upstream changes, admin", "admin")).toEqual([]);
  expect(scopeAt("grant reviewer approve_duty", "approve_duty")).toEqual([]);
});

test("the playground's scanner refuses a rule it cannot run instead of misreading it", () => {
  expect(() => compileGrammar({ scopeName: "source.duty", patterns: [{ begin: "\"", end: "\"" } as never] })).toThrow(/not a single-line `match` rule/);
});
