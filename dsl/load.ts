// Source text → checked policy: lex, parse and build each file, then check them together.
import type { IRecognitionException, IToken } from "chevrotain";
import { buildAst, tokenSpan } from "./build_ast.ts";
import { checkPolicy, type CheckOptions } from "./check.ts";
import { diagnostic, hasErrors, lineStarts, positionAt, sortDiagnostics } from "./diagnostics.ts";
import { dutyLexer, StringLiteral } from "./lexer.ts";
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

/** Spans from offsets, through one line index per file (a scan from the start per span was quadratic). */
function offsetSpans(file: string, text: string): (offset: number, length: number) => Span {
  const starts = lineStarts(text);
  return (offset, length) => {
    const { line, col } = positionAt(starts, Math.min(offset, text.length));
    // At end of file the span is empty (start = end = text length); the caret still shows one column.
    return { file, line, col, endLine: line, endCol: col + Math.max(1, length), start: offset, end: Math.min(text.length, offset + Math.max(1, length)) };
  };
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

/**
 * A string token is lexed to the end of its line or its closing quote, whichever comes first (so
 * the lexer stays linear); what is wrong with it is said here, once, and the token is completed
 * so that parsing goes on as if the string were closed.
 */
function checkStringToken(file: string, t: IToken): Diagnostic[] {
  const out: Diagnostic[] = [];
  // The body cannot hold a bare `"`, so the image is closed exactly when it matches with its final quote.
  const closed = /^"(?:[^"\\\n]|\\.)*"$/.test(t.image);
  for (const m of t.image.matchAll(/\\(.)/g)) {
    if ('"\\nt'.includes(m[1]!)) continue;
    const at = t.startOffset + m.index!;
    const span = { ...tokenSpan(file, t), col: (t.startColumn ?? 1) + m.index!, endCol: (t.startColumn ?? 1) + m.index! + 2, start: at, end: at + 2 };
    out.push(diagnostic("E_BAD_ESCAPE", "error", `unknown escape \`\\${m[1]}\` in a string`, span, "strings know the escapes `\\\"` `\\\\` `\\n` `\\t`; write a backslash as `\\\\`"));
  }
  if (!closed) {
    out.push(diagnostic("E_UNTERMINATED_STRING", "error", "unterminated string: no closing `\"` on this line", tokenSpan(file, t), "close the string with `\"` on the same line; a string cannot span lines"));
    t.image += '"';
  }
  return out;
}

/** Parses one file: every lexical and syntax error becomes a diagnostic; the AST keeps what parsed. */
export function parsePolicySource(source: PolicySource): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const offsetSpan = offsetSpans(source.path, source.text);
  const lexed = dutyLexer.tokenize(source.text);
  for (const e of lexed.errors) {
    const ch = source.text.slice(e.offset, e.offset + e.length);
    diagnostics.push(diagnostic("E_LEX", "error", `unexpected character${e.length > 1 ? "s" : ""} \`${ch.length > 20 ? ch.slice(0, 20) + "…" : ch}\``, offsetSpan(e.offset, e.length)));
  }
  for (const t of lexed.tokens) if (t.tokenType === StringLiteral) diagnostics.push(...checkStringToken(source.path, t));
  const tooComplex = findTooComplex(lexed.tokens);
  if (tooComplex) {
    diagnostics.push(diagnostic("E_TOO_COMPLEX", "error", tooComplex.message, tokenSpan(source.path, tooComplex.token), "split the condition over several grants or forbids"));
    return { file: { file: source.path, declarations: [] }, diagnostics };
  }
  const parsed = parseTokens(lexed.tokens);
  for (const e of parsed.errors) {
    const tok = e.token;
    const span = Number.isNaN(tok.startOffset) || tok.tokenType?.name === "EOF"
      ? offsetSpan(source.text.length, 1)
      : tokenSpan(source.path, tok);
    const { message, help } = describeSyntaxError(e);
    diagnostics.push(diagnostic("E_SYNTAX", "error", message, span, help));
  }
  const file = buildAst(source.path, parsed.cst);
  return { file, diagnostics };
}

/** Lexical findings after which the token is repaired and parsing loses nothing. */
const DROPS_NOTHING = new Set(["E_UNTERMINATED_STRING", "E_BAD_ESCAPE"]);

export interface LoadOptions extends CheckOptions {
  /**
   * At most this many errors are reported per file (default 100; 0 for no limit); the rest are
   * counted in one `E_TOO_MANY_ERRORS`. A file of 100,000 broken lines gave 200,000 diagnostics,
   * and after the first few most are consequences of the first.
   */
  maxErrorsPerFile?: number;
}

export const DEFAULT_MAX_ERRORS_PER_FILE = 100;

/** Keeps the first `max` errors of each file (warnings all) and says how many were left out. */
function capErrorsPerFile(sorted: readonly Diagnostic[], max: number): { kept: Diagnostic[]; omitted: number } {
  if (max <= 0) return { kept: [...sorted], omitted: 0 };
  const shown = new Map<string, number>();
  const omitted = new Map<string, { count: number; first: Diagnostic }>();
  const out: Diagnostic[] = [];
  for (const d of sorted) {
    if (d.severity !== "error") { out.push(d); continue; }
    const n = shown.get(d.span.file) ?? 0;
    if (n < max) { shown.set(d.span.file, n + 1); out.push(d); continue; }
    const o = omitted.get(d.span.file);
    if (o) o.count++;
    else omitted.set(d.span.file, { count: 1, first: d });
  }
  for (const [file, { count, first }] of omitted) {
    out.push(diagnostic("E_TOO_MANY_ERRORS", "error", `${count.toLocaleString("en-US")} more error${count === 1 ? "" : "s"} in \`${file}\` not shown, from here on`, first.span, `only the first ${max} errors of a file are reported; later ones are often consequences of the first, so fix those and check again`));
  }
  return { kept: sortDiagnostics(out), omitted: [...omitted.values()].reduce((sum, o) => sum + o.count, 0) };
}

export interface LoadResult {
  policy: CheckedPolicy | null;
  diagnostics: Diagnostic[];
  /** Errors left out by `maxErrorsPerFile` (each file's are counted in its `E_TOO_MANY_ERRORS`). */
  omittedErrors: number;
}

/**
 * Parses and checks several `.duty` sources as one policy. The policy is null when any
 * diagnostic is an error; warnings come with a policy.
 */
export function loadPolicy(sources: readonly PolicySource[], options: LoadOptions = {}): LoadResult {
  const parsed = sources.map(parsePolicySource);
  const syntax = parsed.flatMap((p) => p.diagnostics);
  const checked = checkPolicy(parsed.map((p) => p.file), options);
  // After a syntax error the AST lacks the declarations recovery had to drop, so findings that a
  // dropped declaration could explain (an unknown name, a missing schema, a never-granted duty)
  // are held back; every other checker finding is still reported, so one run shows them all.
  const brokenFiles = new Set(parsed.filter((p) => p.diagnostics.some((d) => d.severity === "error" && !DROPS_NOTHING.has(d.code))).map((p) => p.file.file));
  const mayBeCausedByDroppedCode = new Set(["E_UNKNOWN_DUTY", "E_UNKNOWN_ROLE", "E_UNKNOWN_UPSTREAM", "E_UNKNOWN_TYPE", "E_UNKNOWN_NAME", "E_NO_PRINCIPAL", "E_PRINCIPAL_SUB", "E_PRINCIPAL_ROLES"]);
  const checkerDiags = brokenFiles.size
    ? checked.diagnostics.filter((d) => !mayBeCausedByDroppedCode.has(d.code) && (d.severity === "error" || !brokenFiles.has(d.span.file)))
    : checked.diagnostics;
  const { kept: diagnostics, omitted } = capErrorsPerFile(sortDiagnostics([...syntax, ...checkerDiags]), options.maxErrorsPerFile ?? DEFAULT_MAX_ERRORS_PER_FILE);
  return { policy: hasErrors(diagnostics) ? null : checked.policy, diagnostics, omittedErrors: omitted };
}
