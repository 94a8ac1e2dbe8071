// Rendering of diagnostics: the snippet under the first line, cut around the caret on long lines,
// with invisible characters made visible.
import { describe, expect, test } from "bun:test";
import { renderDiagnostic, SNIPPET_WIDTH } from "./diagnostics.ts";
import { loadPolicy } from "./mod.ts";
import type { Diagnostic } from "./types.ts";

const HEAD = "principal { sub: string roles: set<role> }\nrole a\nupstream u\nduty d GET /x -> u\n";

function firstRendered(text: string): { d: Diagnostic; lines: string[] } {
  const d = loadPolicy([{ path: "p.duty", text }], { now: Date.UTC(2026, 0, 1) }).diagnostics[0]!;
  return { d, lines: renderDiagnostic(d, new Map([["p.duty", text]])).split("\n") };
}

/** The snippet text and the text above the carets, from the rendered lines. */
function underCaret(lines: string[]): string {
  const src = lines[2]!, carets = lines[3]!;
  const bar = src.indexOf("| ") + 2;
  const from = carets.indexOf("^"), to = carets.lastIndexOf("^") + 1;
  return src.slice(from - (carets.indexOf("| ") + 2) + bar, to - (carets.indexOf("| ") + 2) + bar);
}

describe("regression: a 26 KB line was printed whole in a snippet", () => {
  test("a long line is cut to a window around the caret, marked with …", () => {
    const padding = "x".repeat(13_000);
    const { d, lines } = firstRendered(HEAD + `grant a d when principal.sub == "${padding}" or principal.sbu == "${padding}"\n`);
    expect(d.code).toBe("E_UNKNOWN_ATTRIBUTE");
    for (const line of lines) expect(line.length).toBeLessThan(SNIPPET_WIDTH + 20);
    expect(lines[2]).toMatch(/^5 \| ….*…$/);
    expect(underCaret(lines)).toBe("sbu");
  });

  test("a caret near the start of a long line keeps the start and cuts the end", () => {
    const { lines } = firstRendered(HEAD + `grant b d when principal.sub == "${"y".repeat(5_000)}"\n`);
    expect(lines[2]).toMatch(/^5 \| grant b d .*…$/);
    expect(underCaret(lines)).toBe("b");
  });

  test("short lines are printed as they are", () => {
    const { lines } = firstRendered(HEAD + "grant b d\n");
    expect(lines.slice(1, 4)).toEqual(["  |", "5 | grant b d", "  |       ^"]);
  });
});

describe("regression: a long name was quoted whole in the message", () => {
  test("quotes in messages and help are cut to 60 characters; the span still covers the name", () => {
    const name = "r".repeat(26_000);
    const { d } = firstRendered(HEAD + `grant ${name} d\n`);
    expect(d.code).toBe("E_UNKNOWN_ROLE");
    expect(d.message).toBe(`unknown role \`${"r".repeat(59)}…\``);
    expect(d.span.end - d.span.start).toBe(26_000);
  });
});
