// Loading: lexing and parsing errors as diagnostics, error recovery (one run reports many
// errors), multi-file policies, and the guarantees every caller relies on (never throws, spans
// inside the text).
import { test, expect, describe } from "bun:test";
import { loadPolicy } from "./mod.ts";
import type { Diagnostic } from "./mod.ts";

const NOW = Date.UTC(2026, 0, 1);
const HEAD = "principal { sub: string roles: set<role> mfa: bool }\nrole a\nupstream u\nduty d GET /x -> u\n";
const where = (d: Diagnostic) => `${d.code} ${d.span.file}:${d.span.line}:${d.span.col}`;
const load = (text: string, path = "p.duty") => loadPolicy([{ path, text }], { now: NOW });

describe("regressions", () => {
  test("loadPolicy throws on deeply nested expressions: it reports E_TOO_COMPLEX instead", () => {
    // Each shape with the column of the token that crosses the limit (64 levels, 512 operators);
    // the expression starts at column 16.
    const deep: Record<string, [string, number]> = {
      parentheses: ["(".repeat(5000) + "true" + ")".repeat(5000), 16 + 64],
      brackets: ["[".repeat(5000) + "1" + "]".repeat(5000) + " == []", 16 + 64],
      nots: ["not ".repeat(50_000) + "true", 16 + 64 * 4],
      ands: [Array(50_000).fill("principal.mfa").join(" and "), 16 + 14 + 512 * 18],
      ors: [Array(50_000).fill("principal.mfa").join(" or "), 16 + 14 + 512 * 17],
      sums: [Array(50_000).fill("1").join(" + ") + " == 1", 16 + 2 + 512 * 4],
    };
    for (const [shape, [expr, col]] of Object.entries(deep)) {
      let r: ReturnType<typeof load> | undefined;
      expect(() => { r = load(HEAD + "grant a d when " + expr + "\n"); }).not.toThrow();
      expect({ shape, codes: r!.diagnostics.map(where) }).toEqual({ shape, codes: [`E_TOO_COMPLEX p.duty:5:${col}`] });
      expect(r!.policy).toBeNull();
    }
  });

  test("moderately nested expressions still load", () => {
    const r = load(HEAD + "grant a d when " + "(".repeat(30) + "not not principal.mfa" + ")".repeat(30) + " and " + Array(100).fill("principal.mfa").join(" or ") + "\n");
    expect(r.diagnostics).toEqual([]);
    expect(r.policy).not.toBeNull();
  });
});

describe("regressions: spans and messages", () => {
  test("a syntax error at end of file has a span past the text: its span ends at the text's end", () => {
    for (const text of [HEAD + "grant a", HEAD + "grant a\n", "principal {", ""]) {
      const r = load(text);
      for (const d of r.diagnostics) {
        expect(d.span.start).toBeGreaterThanOrEqual(0);
        expect(d.span.start).toBeLessThanOrEqual(d.span.end);
        expect({ code: d.code, end: d.span.end }).toEqual({ code: d.code, end: Math.min(d.span.end, text.length) });
      }
    }
    const eof = load(HEAD + "grant a").diagnostics.at(-1)!;
    expect(where(eof)).toBe("E_SYNTAX p.duty:5:8");
    expect(eof.message).toBe("expected a name, found end of file");
  });

  test("a parser's internal message leaks into help: a missing list item says what was expected", () => {
    const r = load(HEAD + "exclusive\nrole b\n");
    expect(r.diagnostics.map(where)).toEqual(["E_SYNTAX p.duty:6:1"]);
    expect(r.diagnostics[0]!.message).toBe("expected a name, found `role`");
    expect(r.diagnostics[0]!.help).toBeUndefined();
  });
});
