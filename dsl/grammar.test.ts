// The shared lexer and parser skip Chevrotain's definition checks (a start-up cost); these build
// both with the checks on, so a grammar or token change that Chevrotain would reject fails here.
import { expect, test } from "bun:test";
import { Lexer } from "chevrotain";
import { allTokens, LEXER_OPTIONS } from "./lexer.ts";
import { DutyParser } from "./parser.ts";

test("the token list passes Chevrotain's lexer definition checks", () => {
  const lexer = new Lexer(allTokens, { ...LEXER_OPTIONS, skipValidations: false });
  expect(lexer.lexerDefinitionErrors).toEqual([]);
});

test("the grammar passes Chevrotain's grammar checks (performSelfAnalysis throws otherwise)", () => {
  expect(() => new DutyParser({ validate: true })).not.toThrow();
});
