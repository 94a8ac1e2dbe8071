// `matches` patterns: the NFA simulation (reference) and the lazy DFA (compiled) agree with each
// other and with JavaScript's own engine on the supported subset; what needs backtracking is
// refused with its offset; and no pattern makes matching blow up.
import { describe, expect, test } from "bun:test";
import { compileRegexMatcher, parseRegex, regexMatches } from "./regex.ts";

const PATTERNS = [
  "abc", "a.c", "a*", "a+b", "(ab)*", "(a|b)*abb", "[a-c]+x?", "[^/]+", "/es/_security(/.*)?",
  "[A-Z]{2,4}-[0-9]+", "x{3}", "x{2,}", "(?:ab|a)(bc|c)?d?", "\\d+\\.\\d+", "\\w+@\\w+\\.com",
  "[\\w.-]+", "[\\D]", "\\s*", "^anchored$", "(a|)+", "(a*)*b", "caf.", "[😀-😂]", "a{0,3}b{1}", "",
];
const INPUTS = ["", "a", "ab", "abc", "abb", "aabb", "xx", "xxx", "xxxx", "abcd", "abd", "/es/_security", "/es/_security/u",
  "/es/_securityx", "OPS-42", "O-1", "1.25", "ann@x.com", "a.b-c", " ", "\t\n", "anchored", "café", "cafe", "😁", "aab", "ab ", "b", "bbb"];

describe("matching agrees with JavaScript's engine on the subset", () => {
  for (const source of PATTERNS) {
    test(source || "(empty)", () => {
      const parsed = parseRegex(source);
      if (!parsed.ok) throw new Error(parsed.message);
      const js = new RegExp(`^(?:${source.replace(/^\^/, "").replace(/\$$/, "")})$`, "u");
      const dfa = compileRegexMatcher(parsed.program);
      for (const input of INPUTS) {
        const want = js.test(input);
        expect({ input, nfa: regexMatches(parsed.program, input), dfa: dfa(input) }).toEqual({ input, nfa: want, dfa: want });
      }
    });
  }
});

describe("what needs backtracking, or makes no sense anchored, is refused with its offset", () => {
  test.each([
    ["(a)\\1", "backreference `\\1` is not supported", 3],
    ["\\k<x>", "backreference `\\k` is not supported", 0],
    ["a(?=b)", "lookaround `(?=` is not supported", 1],
    ["(?<!a)b", "lookaround `(?<!` is not supported", 0],
    ["(?<n>a)", "this group syntax `(?<` is not supported", 0],
    ["\\bword", "`\\b` is not supported", 0],
    ["a^b", "`^` is only allowed at the start", 1],
    ["a$b", "`$` is only allowed at the end", 1],
    ["*a", "`*` has nothing to repeat", 0],
    ["a{2", "a repeat count is `{n}`, `{n,}` or `{n,m}`", 1],
    ["a{101}", "repeat counts are at most 100", 1],
    ["a{3,2}", "repeat `{3,2}` is out of order", 1],
    ["a++", "possessive quantifiers are not supported", 2],
    ["(ab", "`(` is never closed", 0],
    ["ab)", "`)` has no `(`", 2],
    ["[ab", "`[` is never closed", 0],
    ["[z-a]", "range `z-a` is out of order", 1],
    ["\\q", "unknown escape `\\q`", 0],
    ["[[:alpha:]]", "POSIX classes like `[:alpha:]` are not supported", 1],
    ["é(", "`(` is never closed", 1],
  ] as const)("%s", (source, message, offset) => {
    const parsed = parseRegex(source);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect({ message: parsed.message, offset: parsed.offset }).toEqual({ message, offset });
  });

  test("a pattern too large once expanded is refused", () => {
    const parsed = parseRegex("((a{100}){100}){100}");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toContain("too large");
  });
});

describe("matching never backtracks", () => {
  // A backtracking engine takes 2^n steps on these; here each is one pass over the input.
  test.each(["(a+)+b", "(a|a)*b", "(a*)*b", "(a|aa)+b", "(.*a){20}"])("%s on 10,000 characters", (source) => {
    const parsed = parseRegex(source);
    if (!parsed.ok) throw new Error(parsed.message);
    const input = "a".repeat(10_000) + "c";
    expect(regexMatches(parsed.program, input)).toBe(false);
    expect(compileRegexMatcher(parsed.program)(input)).toBe(false);
  });

  test("the compiled matcher's memory stays bounded on an input meeting many states", () => {
    const parsed = parseRegex("(.*a.{0,12})*z");
    if (!parsed.ok) throw new Error(parsed.message);
    const dfa = compileRegexMatcher(parsed.program);
    let input = "";
    for (let i = 0; i < 5000; i++) input += i % 7 === 0 ? "a" : "b";
    expect(dfa(input)).toBe(regexMatches(parsed.program, input));
    expect(dfa(input + "z")).toBe(true);
  });
});
