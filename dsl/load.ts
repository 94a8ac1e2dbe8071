// Source text → checked policy: lex, parse and build each file, then check them together.
import type { IRecognitionException, IToken } from "chevrotain";
import { buildAst, tokenSpan } from "./build_ast.ts";
import { checkPolicy, type CheckOptions } from "./check.ts";
import { diagnostic, hasErrors, sortDiagnostics } from "./diagnostics.ts";
import { dutyLexer } from "./lexer.ts";
import { parseTokens } from "./parser.ts";
import type { PolicyFile } from "./ast.ts";
import type { CheckedPolicy } from "./typed_ast.ts";
import type { Diagnostic, Span } from "./types.ts";

/** One policy source: its display path (used in every span) and its text. */
export interface PolicySource {
  path: string;
  text: string;
}

export interface ParseResult {
  file: PolicyFile;
  diagnostics: Diagnostic[];
}

function offsetSpan(file: string, text: string, offset: number, length: number): Span {
  let line = 1, col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; col = 1; } else col++;
  }
  // At end of file the span is empty (start = end = text length); the caret still shows one column.
  return { file, line, col, endLine: line, endCol: col + Math.max(1, length), start: offset, end: Math.min(text.length, offset + Math.max(1, length)) };
}

function describeSyntaxError(e: IRecognitionException): { message: string; help?: string } {
  const found = e.token.tokenType?.name === "EOF" ? "end of file" : `\`${e.token.image}\``;
  const expecting = /Expecting(?: token of type)? --> (\w+) <--/.exec(e.message)?.[1];
  const label = (name: string) => ({ Identifier: "a name", PathPattern: "a route like `/changes/:change`", Arrow: "`->`", When: "`when`", By: "`by`", RCurly: "`}`", LCurly: "`{`", RBracket: "`]`", RParen: "`)`", Colon: "`:`", DateTimeLiteral: "a date like `2026-12-31`" } as Record<string, string>)[name] ?? name;
  const declarationExpected = { message: `expected a declaration, found ${found}`, help: "declarations start with principal, role, enum, upstream, duty, grant, forbid, exclusive or separate" };
  // The top-level loop stops at a token no declaration starts with, then expects the end of the file.
  if (e.name === "MismatchedTokenException" && expecting === "EOF") return declarationExpected;
  if (e.name === "MismatchedTokenException" && expecting) return { message: `expected ${label(expecting)}, found ${found}` };
  if (e.name === "NoViableAltException") {
    const rule = e.context?.ruleStack?.at(-1);
    if (rule === "declaration") return declarationExpected;
    if (rule === "primary" || rule === "addExpr" || rule === "notExpr") {
      return { message: `expected an expression, found ${found}`, help: "an expression is a literal, `principal.<attr>`, `request.<field>`, a set `[…]` or `( … )`" };
    }
    return { message: `unexpected ${found}` };
  }
  if (e.name === "NotAllInputParsedException") return declarationExpected;
  if (e.name === "EarlyExitException") {
    // Chevrotain lists the token sequences that could start the missing item: `<[Identifier]>`.
    const starts = [...new Set([...e.message.matchAll(/\[(\w+)\]/g)].map((m) => label(m[1]!)))];
    if (starts.length) return { message: `expected ${starts.join(" or ")}, found ${found}` };
  }
  return { message: `unexpected ${found}`, help: e.message.replace(/\s+/g, " ").slice(0, 200) };
}

// Every stage after the lexer recurses over expressions (parser, AST builder, checker, both
// evaluators), so nesting and operator chains are bounded here, before any of them runs: a
// hostile or generated policy gets a diagnostic instead of a stack overflow.
const MAX_NESTING = 64;
const MAX_OPERATORS = 512;
const OPERATORS = new Set(["And", "Or", "Plus", "Minus", "Eq", "NotEq", "Less", "LessEq", "Greater", "GreaterEq", "In", "Has", "StartsWith", "EndsWith"]);
// `principal` also starts references inside expressions, so it does not end a declaration here.
const DECLARATION_STARTS = new Set(["Role", "Enum", "Upstream", "Duty", "Grant", "Forbid", "Exclusive", "Separate"]);

function findTooComplex(tokens: readonly IToken[]): { token: IToken; message: string } | null {
  let depth = 0, nots = 0, operators = 0;
  for (const t of tokens) {
    const kind = t.tokenType.name;
    if (DECLARATION_STARTS.has(kind)) { depth = 0; operators = 0; }
    nots = kind === "Not" ? nots + 1 : 0;
    if (kind === "LParen" || kind === "LBracket") depth++;
    else if ((kind === "RParen" || kind === "RBracket") && depth > 0) depth--;
    if (depth + nots > MAX_NESTING) return { token: t, message: `expression nests deeper than ${MAX_NESTING} levels` };
    if (OPERATORS.has(kind) && ++operators > MAX_OPERATORS) return { token: t, message: `declaration has more than ${MAX_OPERATORS} operators` };
  }
  return null;
}

/** Parses one file: every lexical and syntax error becomes a diagnostic; the AST keeps what parsed. */
export function parsePolicySource(source: PolicySource): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const lexed = dutyLexer.tokenize(source.text);
  for (const e of lexed.errors) {
    const ch = source.text.slice(e.offset, e.offset + e.length);
    diagnostics.push(diagnostic("E_LEX", "error", `unexpected character${e.length > 1 ? "s" : ""} \`${ch.length > 20 ? ch.slice(0, 20) + "…" : ch}\``, offsetSpan(source.path, source.text, e.offset, e.length)));
  }
  const tooComplex = findTooComplex(lexed.tokens);
  if (tooComplex) {
    diagnostics.push(diagnostic("E_TOO_COMPLEX", "error", tooComplex.message, tokenSpan(source.path, tooComplex.token), "split the condition over several grants or forbids"));
    return { file: { file: source.path, declarations: [] }, diagnostics };
  }
  const parsed = parseTokens(lexed.tokens);
  for (const e of parsed.errors) {
    const tok = e.token;
    const span = Number.isNaN(tok.startOffset) || tok.tokenType?.name === "EOF"
      ? offsetSpan(source.path, source.text, source.text.length, 1)
      : tokenSpan(source.path, tok);
    const { message, help } = describeSyntaxError(e);
    diagnostics.push(diagnostic("E_SYNTAX", "error", message, span, help));
  }
  const file = buildAst(source.path, parsed.cst);
  return { file, diagnostics };
}

export interface LoadResult {
  policy: CheckedPolicy | null;
  diagnostics: Diagnostic[];
}

/**
 * Parses and checks several `.duty` sources as one policy. The policy is null when any
 * diagnostic is an error; warnings come with a policy.
 */
export function loadPolicy(sources: readonly PolicySource[], options: CheckOptions = {}): LoadResult {
  const parsed = sources.map(parsePolicySource);
  const syntax = parsed.flatMap((p) => p.diagnostics);
  const checked = checkPolicy(parsed.map((p) => p.file), options);
  // After a syntax error the AST lacks the declarations recovery had to drop, so findings that a
  // dropped declaration could explain (an unknown name, a missing schema, a never-granted duty)
  // are held back; every other checker finding is still reported, so one run shows them all.
  const brokenFiles = new Set(parsed.filter((p) => hasErrors(p.diagnostics)).map((p) => p.file.file));
  const mayBeCausedByDroppedCode = new Set(["E_UNKNOWN_DUTY", "E_UNKNOWN_ROLE", "E_UNKNOWN_UPSTREAM", "E_UNKNOWN_TYPE", "E_UNKNOWN_NAME", "E_NO_PRINCIPAL", "E_PRINCIPAL_SUB", "E_PRINCIPAL_ROLES"]);
  const checkerDiags = brokenFiles.size
    ? checked.diagnostics.filter((d) => !mayBeCausedByDroppedCode.has(d.code) && (d.severity === "error" || !brokenFiles.has(d.span.file)))
    : checked.diagnostics;
  const diagnostics = sortDiagnostics([...syntax, ...checkerDiags]);
  return { policy: hasErrors(diagnostics) ? null : checked.policy, diagnostics };
}
