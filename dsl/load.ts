// Source text → checked policy: lex, parse and build each file, then check them together.
import type { IRecognitionException, IToken } from "chevrotain";
import { buildAst, tokenSpan } from "./build-ast.ts";
import { checkPolicy, type CheckOptions } from "./check.ts";
import { describeInvisible, diagnostic, hasErrors, lineStarts, positionAt, sortDiagnostics } from "./diagnostics.ts";
import { Assign, dutyLexer, Identifier, SingleQuotedString, StringLiteral } from "./lexer.ts";
import { NAMED_DECLARATIONS, parseTokens } from "./parser.ts";
import type { PolicyFile } from "./ast.ts";
import type { CheckedPolicy } from "./typed-ast.ts";
import type { Diagnostic, Span } from "./types.ts";

/** One policy source: its display path (used in every span) and its text. */
export interface PolicySource {
  path: string;
  text: string;
}

export interface ParseResult {
  file: PolicyFile;
  diagnostics: Diagnostic[];
  /** The tokens of the file (comments are skipped by the lexer): the formatter reads its parentheses from them. */
  tokens: readonly IToken[];
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

/** How a token kind is named in a message: what the user would type, never an internal name. */
const TOKEN_LABELS: Readonly<Record<string, string>> = {
  Identifier: "a name", PathPattern: "a route like `/changes/:change`", Arrow: "`->`", When: "`when`", By: "`by`",
  Of: "`of`", RCurly: "`}`", LCurly: "`{`", RBracket: "`]`", LBracket: "`[`", RParen: "`)`", LParen: "`(`", Colon: "`:`",
  Comma: "`,`", Less: "`<`", Greater: "`>`", DateTimeLiteral: "a date like `2026-12-31`", StringLiteral: "a string in double quotes, like `\"x-freeze\"`",
  IntLiteral: "a whole number", DurationLiteral: "a duration like `15m`", CidrLiteral: "a CIDR like `10.0.0.0/8`", IpLiteral: "an IP address",
  EOF: "the end of the file",
};
const label = (name: string) => TOKEN_LABELS[name] ?? `\`${name.toLowerCase()}\``;
const COMPARISONS = new Set(["Eq", "NotEq", "Less", "LessEq", "Greater", "GreaterEq", "In", "Has", "StartsWith", "EndsWith"]);

interface SyntaxFinding { message: string; help?: string; afterPrevious?: boolean }

function describeSyntaxError(e: IRecognitionException): SyntaxFinding {
  const atEof = e.token.tokenType?.name === "EOF";
  const found = atEof ? "end of file" : `\`${e.token.image}\``;
  const expecting = /Expecting(?: token of type)? --> (\w+) <--/.exec(e.message)?.[1];
  const previous = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
  const declarationExpected: SyntaxFinding = { message: `expected a declaration, found ${found}`, help: "declarations start with principal, role, enum, upstream, duty, grant, forbid, exclusive, separate, condition or group" };
  // A declaration ended after a complete comparison and another comparison operator follows:
  // `a == b == c`. Comparisons take one operator per operand.
  const chained = (): SyntaxFinding | null => previous && !atEof && COMPARISONS.has(e.token.tokenType.name)
    ? { message: `comparisons do not chain: a second \`${e.token.image}\` follows a comparison`, help: "join two comparisons with `and`: `a == b and b == c`" }
    : null;
  // The top-level loop stops at a token no declaration starts with, then expects the end of the file.
  if (e.name === "MismatchedTokenException" && expecting === "EOF") return chained() ?? declarationExpected;
  // What is missing belongs at the end of the previous token, not at whatever comes next (the
  // next line, or the end of the file).
  const missingAtLineEnd = !!previous && !Number.isNaN(previous.startOffset) && (atEof || (e.token.startLine ?? 0) > (previous.endLine ?? previous.startLine ?? 0));
  if (e.name === "MismatchedTokenException" && expecting) {
    const rule = e.context?.ruleStack?.at(-1);
    const what = missingAtLineEnd ? `expected ${label(expecting)} after \`${previous!.image}\`` : `expected ${label(expecting)}, found ${found}`;
    if (rule === "forbidDecl" && expecting === "When") {
      return { message: `\`forbid\` needs a condition: ${what}`, help: "write `forbid DUTY when CONDITION`, e.g. `forbid deploy_change when request.header[\"x-freeze\"] == \"1\"`; a duty that no grant names is denied anyway", afterPrevious: missingAtLineEnd };
    }
    return { message: what, afterPrevious: missingAtLineEnd };
  }
  if (e.name === "NoViableAltException") {
    const rule = e.context?.ruleStack?.at(-1);
    if (rule === "declaration") return chained() ?? declarationExpected;
    if (rule === "primary" || rule === "addExpr" || rule === "notExpr") {
      return { message: missingAtLineEnd ? `expected an expression after \`${previous!.image}\`` : `expected an expression, found ${found}`, afterPrevious: missingAtLineEnd, help: "an expression is a literal, `principal.<attr>`, `request.<field>`, a set `[…]` or `( … )`" };
    }
    return { message: `unexpected ${found}` };
  }
  if (e.name === "NotAllInputParsedException") return chained() ?? declarationExpected;
  if (e.name === "EarlyExitException") {
    // Chevrotain lists the token sequences that could start the missing item: `<[Identifier]>`.
    const starts = [...new Set([...e.message.matchAll(/\[(\w+)\]/g)].map((m) => label(m[1]!)))];
    if (starts.length) return { message: missingAtLineEnd ? `expected ${starts.join(" or ")} after \`${previous!.image}\`` : `expected ${starts.join(" or ")}, found ${found}`, afterPrevious: missingAtLineEnd };
  }
  return { message: `unexpected ${found}`, help: e.message.replace(/\s+/g, " ").slice(0, 200) };
}

/** What an unexpected character is, and what was probably meant. */
function describeLexError(chars: string): { code: string; message: string; help?: string } {
  const invisible = [...new Set(chars)].map(describeInvisible);
  if (invisible.every((x) => x !== null)) {
    const spaces = /^[\u00a0\u2000-\u200a\u202f\u205f\u3000]+$/.test(chars);
    return {
      code: "E_INVISIBLE_CHARACTER",
      message: `invisible character${chars.length > 1 ? "s" : ""} ${invisible.join(", ")}`,
      help: spaces ? "replace it with a plain space (it often comes with text copied from a web page or a document)" : "delete it (it often comes with text copied from a web page, a chat or a document)",
    };
  }
  const shown = [...chars].map((c) => (describeInvisible(c) ? `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}>` : c)).join("");
  const cut = shown.length > 20 ? shown.slice(0, 20) + "…" : shown;
  const message = `unexpected character${chars.length > 1 ? "s" : ""} ${cut.includes("`") ? `\`\` ${cut} \`\`` : `\`${cut}\``}`;
  const hints: Record<string, string> = {
    "&": "write `and` instead of `&&`", "|": "write `or` instead of `||` (the methods of one duty are written without spaces: `GET|HEAD`)", "!": "write `not` instead of `!` (`!=` is not-equal)",
    "=": "compare with `==`", ";": "declarations end at the next keyword; no `;` is needed",
  };
  return { code: "E_LEX", message, help: hints[chars[0]!] };
}

/**
 * Single quotes are no strings in the language; a single-quoted string is reported once and read
 * as the string it was meant to be, so that nothing else in the declaration is reported.
 */
function singleQuotedAsString(file: string, t: IToken): Diagnostic {
  const inner = t.image.slice(1, t.image.length > 1 && t.image.endsWith("'") ? -1 : undefined).replace(/\\'/g, "'");
  const fixed = `"${inner.replace(/(^|[^\\])"/g, '$1\\"')}"`;
  const d = diagnostic("E_SINGLE_QUOTED_STRING", "error", `strings are written in double quotes, not single: \`${t.image.length > 40 ? t.image.slice(0, 40) + "…" : t.image}\``, tokenSpan(file, t), `write \`${fixed.length > 40 ? fixed.slice(0, 40) + "…" : fixed}\``);
  t.image = fixed;
  t.tokenType = StringLiteral;
  t.tokenTypeIdx = StringLiteral.tokenTypeIdx!;
  return d;
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
  for (const [i, t] of tokens.entries()) {
    const kind = t.tokenType.name;
    const namedStart = kind === "Identifier" && NAMED_DECLARATIONS.has(t.image) && tokens[i + 2]?.tokenType.name === "Assign";
    if (DECLARATION_STARTS.has(kind) || namedStart) { depth = 0; operators = 0; }
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
  // A leading byte-order mark (editors on Windows write one) is ignored: lexed as a space, so that
  // every offset still points into the text as given.
  const lexed = dutyLexer.tokenize(source.text.startsWith("\uFEFF") ? " " + source.text.slice(1) : source.text);
  for (const e of lexed.errors) {
    const { code, message, help } = describeLexError(source.text.slice(e.offset, e.offset + e.length));
    diagnostics.push(diagnostic(code, "error", message, offsetSpan(e.offset, e.length), help));
  }
  for (const t of lexed.tokens) {
    if (t.tokenType === SingleQuotedString) diagnostics.push(singleQuotedAsString(source.path, t));
    else if (t.tokenType === StringLiteral) diagnostics.push(...checkStringToken(source.path, t));
  }
  // `=` names a condition or a group (`condition x = …`); anywhere else it is the newcomer's `==`,
  // reported as the lexer reports a character the language does not know, and left out.
  const tokens = lexed.tokens.filter((t, i) => {
    if (t.tokenType !== Assign) return true;
    const head = lexed.tokens[i - 2];
    if (head?.tokenType === Identifier && NAMED_DECLARATIONS.has(head.image) && lexed.tokens[i - 1]?.tokenType === Identifier) return true;
    const { code, message, help } = describeLexError("=");
    diagnostics.push(diagnostic(code, "error", message, tokenSpan(source.path, t), help));
    return false;
  });
  const tooComplex = findTooComplex(tokens);
  if (tooComplex) {
    diagnostics.push(diagnostic("E_TOO_COMPLEX", "error", tooComplex.message, tokenSpan(source.path, tooComplex.token), "split the condition over several grants or forbids"));
    return { file: { file: source.path, declarations: [] }, diagnostics, tokens: lexed.tokens };
  }
  const parsed = parseTokens(tokens);
  // One syntax error per token: after recovery resynchronises at a token that could start a
  // declaration (`group`, `condition`), that it does not is no second finding.
  const reported = new Set<number>();
  for (const e of parsed.errors) {
    const tok = e.token;
    if (!Number.isNaN(tok.startOffset) && tok.tokenType?.name !== "EOF") {
      if (reported.has(tok.startOffset)) continue;
      reported.add(tok.startOffset);
    }
    const { message, help, afterPrevious } = describeSyntaxError(e);
    const previous = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
    const span = afterPrevious && previous && !Number.isNaN(previous.endOffset ?? NaN)
      ? offsetSpan(previous.endOffset! + 1, 1)
      : Number.isNaN(tok.startOffset) || tok.tokenType?.name === "EOF"
        ? offsetSpan(source.text.length, 1)
        : tokenSpan(source.path, tok);
    diagnostics.push(diagnostic("E_SYNTAX", "error", message, span, help));
  }
  const file = buildAst(source.path, parsed.cst);
  return { file, diagnostics, tokens: lexed.tokens };
}

/** Lexical findings after which the token is repaired and parsing loses nothing. */
const DROPS_NOTHING = new Set(["E_UNTERMINATED_STRING", "E_BAD_ESCAPE", "E_SINGLE_QUOTED_STRING"]);

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
  return checkParsedPolicy(sources.map(parsePolicySource), options);
}

/**
 * `loadPolicy` over files already parsed (`parsePolicySource`): the language server keeps the
 * parse of each unchanged file and parses only the one being edited.
 */
export function checkParsedPolicy(parsed: readonly ParseResult[], options: LoadOptions = {}): LoadResult {
  const syntax = parsed.flatMap((p) => p.diagnostics);
  const checked = checkPolicy(parsed.map((p) => p.file), options);
  // After a syntax error the AST lacks the declarations recovery had to drop, so findings that a
  // dropped declaration could explain (an unknown name, a missing schema, a never-granted duty)
  // are held back; every other checker finding is still reported, so one run shows them all.
  const brokenFiles = new Set(parsed.filter((p) => p.diagnostics.some((d) => d.severity === "error" && !DROPS_NOTHING.has(d.code))).map((p) => p.file.file));
  const mayBeCausedByDroppedCode = new Set(["W_UNUSED_ROLE", "E_UNKNOWN_DUTY", "E_UNKNOWN_ROLE", "E_UNKNOWN_UPSTREAM", "E_UNKNOWN_TYPE", "E_UNKNOWN_NAME", "E_NO_PRINCIPAL", "E_PRINCIPAL_SUB", "E_PRINCIPAL_ROLES"]);
  const checkerDiags = brokenFiles.size
    ? checked.diagnostics.filter((d) => !mayBeCausedByDroppedCode.has(d.code) && (d.severity === "error" || !brokenFiles.has(d.span.file)))
    : checked.diagnostics;
  const { kept: diagnostics, omitted } = capErrorsPerFile(sortDiagnostics([...syntax, ...checkerDiags]), options.maxErrorsPerFile ?? DEFAULT_MAX_ERRORS_PER_FILE);
  return { policy: hasErrors(diagnostics) ? null : checked.policy, diagnostics, omittedErrors: omitted };
}
