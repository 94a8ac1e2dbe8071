// Loading: lexing and parsing errors as diagnostics, error recovery (one run reports many
// errors), multi-file policies, and the guarantees every caller relies on (never throws, spans
// inside the text).
import { test, expect, describe } from "bun:test";
import { DEFAULT_MAX_ERRORS_PER_FILE, loadPolicy } from "./mod.ts";
import { dutyLexer, StringLiteral } from "./lexer.ts";
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
    expect(eof.message).toBe("expected a name after `a`");
  });

  test("a parser's internal message leaks into help: a missing list item says what was expected", () => {
    const r = load(HEAD + "exclusive\nrole b\n");
    expect(r.diagnostics.map(where)).toEqual(["E_SYNTAX p.duty:5:10"]);
    expect(r.diagnostics[0]!.message).toBe("expected a name after `exclusive`");
    expect(r.diagnostics[0]!.help).toBeUndefined();
  });
});

describe("regressions: syntax messages", () => {
  test("a stray token between declarations says `expected EOF`: it says a declaration was expected", () => {
    for (const [body, at, found] of [["when a\n", "E_SYNTAX p.duty:5:1", "`when`"], ["grant a d\n42\n", "E_SYNTAX p.duty:6:1", "`42`"]] as const) {
      const first = load(HEAD + body).diagnostics.find((d) => d.code === "E_SYNTAX")!;
      expect({ at: where(first), message: first.message }).toEqual({ at, message: `expected a declaration, found ${found}` });
      expect(first.help).toBe("declarations start with principal, role, enum, upstream, duty, grant, forbid, exclusive, separate, condition or group");
    }
  });
});

describe("lexical and syntax errors", () => {
  test("E_LEX for each character outside the language, with its position", () => {
    const r = load(HEAD + "grant a d when principal.sub == `x`\ngrant a d when principal.mfa $ ~\n");
    expect(r.diagnostics.map(where)).toEqual(["E_LEX p.duty:5:33", "E_LEX p.duty:5:35", "E_LEX p.duty:6:30", "E_LEX p.duty:6:32"]);
    expect(r.diagnostics[0]!.message).toBe("unexpected character `` ` ``");
    expect(r.policy).toBeNull();
  });

  test("E_SYNTAX names what was expected and what was found", () => {
    const rows: Array<[string, string, string]> = [
      ["duty e GET /e u\n", "E_SYNTAX p.duty:5:15", "expected `->`, found `u`"],
      ["duty e GET e -> u\n", "E_SYNTAX p.duty:5:12", "expected a route like `/changes/:change`, found `e`"],
      ["forbid d\n", "E_SYNTAX p.duty:5:9", "`forbid` needs a condition: expected `when` after `d`"],
      ["separate d, d\n", "E_SYNTAX p.duty:5:14", "expected `by` after `d`"],
      ["grant a d until tomorrow\n", "E_SYNTAX p.duty:5:17", "expected a date like `2026-12-31`, found `tomorrow`"],
      ["principal { x string }\n", "E_SYNTAX p.duty:5:15", "expected `:`, found `string`"],
      ["enum role { x }\n", "E_SYNTAX p.duty:5:6", "expected a name, found `role`"],
    ];
    for (const [body, at, message] of rows) {
      const first = load(HEAD + body).diagnostics.find((d) => d.code === "E_SYNTAX")!;
      expect({ body, at: where(first), message: first.message }).toEqual({ body, at, message });
    }
  });

  test("error recovery: one run reports every syntax error, in order", () => {
    const text = [
      "principal { sub: string roles: set<role> }", // 1
      "role a, b", // 2
      "upstream u", // 3
      "duty d GET /x -> u", // 4
      "grant a d when", // 5
      "grant b d when principal.", // 6
      "duty e GET /y u", // 7
      "grant a e", // 8
      "forbid d", // 9
      "exclusive", // 10
      "role c,", // 11
      "separate d, e", // 12
      "grant ) d", // 13
    ].join("\n") + "\n";
    const r = load(text);
    // A missing token is reported where it belongs, after the token it should follow (the end of
    // the line), not at the next line's first token.
    expect(r.diagnostics.map(where)).toEqual([
      "E_SYNTAX p.duty:5:15",
      "E_SYNTAX p.duty:6:26",
      "E_SYNTAX p.duty:7:15",
      "E_SYNTAX p.duty:9:9",
      "E_SYNTAX p.duty:10:10",
      "E_SYNTAX p.duty:11:8",
      "E_SYNTAX p.duty:12:14",
      "E_SYNTAX p.duty:13:7",
      "E_SYNTAX p.duty:13:10",
    ]);
    expect(r.policy).toBeNull();
  });

  test("after a syntax error, findings a dropped declaration could explain are held back; the rest are reported", () => {
    const r = loadPolicy([
      { path: "a.duty", text: HEAD + "grant a d when (\n" },
      { path: "b.duty", text: "grant reviwer d\n" },
    ], { now: NOW });
    // b.duty's unknown role would be a consequence of a.duty being broken (roles may be missing), so it is held back too.
    expect(r.diagnostics.map(where)).toEqual(["E_SYNTAX a.duty:5:17"]);
    const clean = loadPolicy([
      { path: "a.duty", text: HEAD + "grant a d when (\n" },
      { path: "b.duty", text: "duty e GET /e -> u\nduty f GET /e -> u\n" },
    ], { now: NOW });
    expect(clean.diagnostics.map(where)).toEqual(["E_SYNTAX a.duty:5:17", "W_DUTY_NEVER_GRANTED b.duty:1:1", "E_OVERLAPPING_DUTY b.duty:2:12"]);
  });

  test("one run reports syntax errors and the type errors of the same broken file", () => {
    const r = load(HEAD + "grant a d when principal.mfa == 1\nduty e GET /e\ngrant a d when principal.mfaa\n");
    expect(r.diagnostics.map(where)).toEqual(["E_TYPE_MISMATCH p.duty:5:30", "E_SYNTAX p.duty:6:14", "E_UNKNOWN_ATTRIBUTE p.duty:7:26"]);
  });

  test("several files are one policy: names resolve across files, spans name their file", () => {
    const r = loadPolicy([
      { path: "base.duty", text: "principal { sub: string roles: set<role> }\nrole a\nupstream u\n" },
      { path: "rules.duty", text: "duty d GET /d -> u\ngrant a d\ngrant b d\n" },
    ], { now: NOW });
    expect(r.diagnostics.map(where)).toEqual(["E_UNKNOWN_ROLE rules.duty:3:7"]);
    expect(r.diagnostics[0]!.help).toBe("did you mean `a`?");
  });

  test("diagnostics are sorted by file, then position", () => {
    const r = loadPolicy([
      { path: "z.duty", text: "duty d GET /d -> nope\n" },
      { path: "a.duty", text: "principal { sub: string roles: set<role> }\nrole a\nupstream u\nduty e GET /e -> u\ngrant x e\n" },
    ], { now: NOW });
    expect(r.diagnostics.map(where)).toEqual(["E_UNKNOWN_ROLE a.duty:5:7", "E_UNKNOWN_UPSTREAM z.duty:1:18"]);
  });
});

describe("regression: pathological inputs stay linear and bounded", () => {
  test("a string token never fails once started at `\"` (a failing one was retried at every later quote: quadratic)", () => {
    // Each text is one line the old pattern failed on from every `"` it held.
    const hostile = ['"' + '\\"'.repeat(2_000), '"abc' + ' \\"x'.repeat(1_000), '"' + "x".repeat(5_000), '"a\\qb' + '"'.repeat(3)];
    const sticky = new RegExp(StringLiteral.PATTERN as RegExp, "y");
    for (const text of hostile) {
      let failures = 0;
      for (let i = 0; i < text.length; i++) {
        if (text[i] !== '"') continue;
        sticky.lastIndex = i;
        if (!sticky.test(text)) failures++;
      }
      expect(failures).toBe(0);
    }
    // Counting, not timing: the lexer covers the unterminated line with one token, tried once.
    const lexed = dutyLexer.tokenize(hostile[0]!);
    expect(lexed.tokens.length).toBe(1);
    expect(lexed.tokens[0]!.image.length).toBe(hostile[0]!.length);
  });

  test("an unterminated string is one E_UNTERMINATED_STRING at its quote; the rest of the file still checks", () => {
    const r = load(HEAD + 'grant a d when principal.sub == "abc\ngrant a dd\n');
    expect(r.diagnostics.map(where)).toEqual(["E_UNTERMINATED_STRING p.duty:5:33", "E_UNKNOWN_DUTY p.duty:6:9"]);
    expect(r.diagnostics[0]!.help).toBe("close the string with `\"` on the same line; a string cannot span lines");
  });

  test("an unknown escape is E_BAD_ESCAPE at the backslash; the known ones load", () => {
    const bad = load(HEAD + 'grant a d when principal.sub == "a\\x" or principal.sub == "q\\"\\\\\\n\\t"\n');
    expect(bad.diagnostics.map(where)).toEqual(["E_BAD_ESCAPE p.duty:5:35"]);
    expect(bad.diagnostics[0]!.message).toBe("unknown escape `\\x` in a string");
  });

  test("errors are capped per file (default 100) and the rest counted in one E_TOO_MANY_ERRORS", () => {
    const text = HEAD + "grant a d when principal.sub == $x$\n".repeat(300);
    const r = load(text);
    const errors = r.diagnostics.filter((d) => d.severity === "error");
    expect(errors.length).toBe(DEFAULT_MAX_ERRORS_PER_FILE + 1);
    expect(r.omittedErrors).toBe(600 - 100);
    const last = errors.at(-1)!;
    expect(where(last)).toBe("E_TOO_MANY_ERRORS p.duty:55:33");
    expect(last.message).toBe("500 more errors in `p.duty` not shown, from here on");
    expect(loadPolicy([{ path: "p.duty", text }], { now: NOW, maxErrorsPerFile: 0 }).diagnostics.length).toBe(600);
    expect(loadPolicy([{ path: "p.duty", text }], { now: NOW, maxErrorsPerFile: 3 }).diagnostics.map((d) => d.code)).toEqual(["E_LEX", "E_LEX", "E_LEX", "E_TOO_MANY_ERRORS"]);
    // The cap is per file: a second file keeps its own first errors.
    const two = loadPolicy([{ path: "a.duty", text }, { path: "b.duty", text: "grant a d when $x$\n" }], { now: NOW, maxErrorsPerFile: 3 });
    expect(two.diagnostics.filter((d) => d.span.file === "b.duty").map((d) => d.code)).toEqual(["E_LEX", "E_LEX"]);
  });

  test("spans of errors far into a file are exact (one line index per file, not a scan per error)", () => {
    const r = load(HEAD + "\n".repeat(20_000) + "grant a d when $\n", "p.duty");
    expect(r.diagnostics.map(where)).toContain("E_LEX p.duty:20005:16");
  });
});

describe("regression: messages a newcomer trips on, each with a fix hint", () => {
  const SCHEMA = "principal { sub: string roles: set<role> mfa: bool team: string }\nrole a\nupstream u\nduty d GET /x/:id -> u\n";
  const rows: Array<{ name: string; text: string; expect: Array<[string, string, string]> }> = [
    {
      name: "a date-time without offset (was: expected a declaration, found `T10`)",
      text: SCHEMA + "grant a d until 2026-12-31T10:00\ngrant a d when request.time > 2026-06-01T08:30:00 or request.time > time(\"2026-06-01T08:30\")\n",
      expect: [
        ["E_BAD_LITERAL p.duty:5:17", "date-time `2026-12-31T10:00` has no UTC offset", "a time of day needs its offset: `2026-12-31T10:00Z` for UTC, or e.g. `2026-12-31T10:00+02:00`"],
        ["E_BAD_LITERAL p.duty:6:31", "date-time `2026-06-01T08:30:00` has no UTC offset", "a time of day needs its offset: `2026-06-01T08:30:00Z` for UTC, or e.g. `2026-06-01T08:30:00+02:00`"],
        ["E_BAD_LITERAL p.duty:6:69", "date-time `2026-06-01T08:30` has no UTC offset", "a time of day needs its offset: `2026-06-01T08:30Z` for UTC, or e.g. `2026-06-01T08:30+02:00`"],
      ],
    },
    {
      name: "single quotes (was: six errors, one naming the internal token StringLiteral)",
      text: SCHEMA + "forbid d when request.header['x-freeze'] == '1'\n",
      expect: [
        ["E_SINGLE_QUOTED_STRING p.duty:5:30", "strings are written in double quotes, not single: `'x-freeze'`", 'write `"x-freeze"`'],
        ["E_SINGLE_QUOTED_STRING p.duty:5:45", "strings are written in double quotes, not single: `'1'`", 'write `"1"`'],
      ],
    },
    {
      name: "an unterminated string (was: unexpected character `\"`)",
      text: SCHEMA + 'grant a d when principal.team == "core\n',
      expect: [["E_UNTERMINATED_STRING p.duty:5:34", "unterminated string: no closing `\"` on this line", "close the string with `\"` on the same line; a string cannot span lines"]],
    },
    {
      name: "a == b == c (was: expected a declaration, found `==`)",
      text: SCHEMA + "grant a d when principal.team == \"x\" != \"y\"\n",
      expect: [["E_SYNTAX p.duty:5:38", "comparisons do not chain: a second `!=` follows a comparison", "join two comparisons with `and`: `a == b and b == c`"]],
    },
    {
      name: "a leading byte-order mark is ignored (was: unexpected character, invisible)",
      text: "\uFEFF" + SCHEMA + "grant a d\n",
      expect: [],
    },
    {
      name: "zero-width space, no-break space and a byte-order mark inside are named (were printed invisibly)",
      text: SCHEMA + "grant a\u200B d\ngrant\u00A0a d\ngrant a d \uFEFF\n",
      expect: [
        ["E_INVISIBLE_CHARACTER p.duty:5:8", "invisible character U+200B (zero-width space)", "delete it (it often comes with text copied from a web page, a chat or a document)"],
        ["E_INVISIBLE_CHARACTER p.duty:6:6", "invisible character U+00A0 (no-break space)", "replace it with a plain space (it often comes with text copied from a web page or a document)"],
        ["E_INVISIBLE_CHARACTER p.duty:7:11", "invisible character U+FEFF (byte-order mark)", "delete it (it often comes with text copied from a web page, a chat or a document)"],
      ],
    },
    {
      name: "one bad schema type is one error (was: one more per use of the attribute)",
      text: "principal { sub: string roles: set<role> level: integer }\nrole a\nupstream u\nduty d GET /x/:id -> u\n" + "grant a d when principal.level > 1 and principal.level < 9\n".repeat(8),
      expect: [["E_UNKNOWN_TYPE p.duty:1:49", "unknown type `integer`", "the type is spelled `int` here"]],
    },
    {
      name: "forbid without when (was: expected `when`, found end of file, pointing past the text)",
      text: SCHEMA + "grant a d\nforbid d\n\n# the end\n",
      expect: [["E_SYNTAX p.duty:6:9", "`forbid` needs a condition: expected `when` after `d`", 'write `forbid DUTY when CONDITION`, e.g. `forbid deploy_change when request.header["x-freeze"] == "1"`; a duty that no grant names is denied anyway']],
    },
  ];
  test.each(rows)("$name", (row) => {
    const r = load(row.text);
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => [where(d), d.message, d.help ?? ""])).toEqual(row.expect);
  });

  test("a message never names an internal token kind", () => {
    const r = load(SCHEMA + "grant a d when request.header[x] == \"1\"\ngrant a d when 1 + \n");
    for (const d of r.diagnostics) expect(d.message).not.toMatch(/StringLiteral|Identifier|IntLiteral|RBracket|Literal\b/);
    expect(r.diagnostics.map((d) => d.message)).toContain("expected a string in double quotes, like `\"x-freeze\"`, found `x`");
  });

  test("&&, ||, ! and = get the word the language uses", () => {
    const r = load(SCHEMA + "grant a d when principal.mfa && principal.mfa\ngrant a d when principal.team = \"x\"\n");
    expect(r.diagnostics.filter((d) => d.code === "E_LEX").map((d) => d.help)).toEqual(["write `and` instead of `&&`", "compare with `==`"]);
  });
});
