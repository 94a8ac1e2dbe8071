// Diagnostics are values: built by every stage, sorted by position, rendered here.
import type { Diagnostic, Severity, Span } from "./types.ts";

/** User input quoted in a message (`…`) is cut to this many characters; the span points at all of it. */
export const MAX_QUOTED = 60;

/** Cuts each backticked quote longer than MAX_QUOTED: a 26 KB name must not make a 26 KB message. */
function shortenQuotes(text: string): string {
  return text.replace(/`([^`]{61,})`/g, (_, q: string) => `\`${q.slice(0, MAX_QUOTED - 1)}…\``);
}

export function diagnostic(code: string, severity: Severity, message: string, span: Span, help?: string): Diagnostic {
  const m = shortenQuotes(message);
  return help === undefined ? { code, severity, message: m, span } : { code, severity, message: m, span, help: shortenQuotes(help) };
}

/** Damerau–Levenshtein (optimal string alignment) distance. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate within a distance that scales with the word, for "did you mean". */
export function closestMatch(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  const limit = Math.max(1, Math.floor(word.length / 3));
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDistance && dist <= limit) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const m = closestMatch(word, candidates);
  return m ? `did you mean \`${m}\`?` : undefined;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  // Most comparisons are within one file: skip localeCompare there (it dominated sorting 200,000).
  return (a.span.file === b.span.file ? 0 : a.span.file.localeCompare(b.span.file)) || a.span.start - b.span.start || (a.code === b.code ? 0 : a.code.localeCompare(b.code));
}

export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort(compareDiagnostics);
}

export function hasErrors(list: readonly Diagnostic[]): boolean {
  return list.some((d) => d.severity === "error");
}

/** Offsets at which each line of `text` starts: line n (1-based) starts at `starts[n - 1]`. */
export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** 1-based line and column of an offset, by binary search over `lineStarts(text)`. */
export function positionAt(starts: readonly number[], offset: number): { line: number; col: number } {
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, col: offset - starts[lo]! + 1 };
}

// Rendering many diagnostics of one file must not split the file once per diagnostic (that was
// quadratic: 20,000 diagnostics of a 10,000-line file took seconds): the line index of the last
// text rendered is kept.
let indexed: { text: string; starts: number[] } | null = null;
function sourceLine(text: string, line: number): string | undefined {
  if (indexed?.text !== text) indexed = { text, starts: lineStarts(text) };
  const start = indexed.starts[line - 1];
  if (start === undefined) return undefined;
  const next = indexed.starts[line];
  return text.slice(start, next === undefined ? text.length : next - 1).replace(/\r$/, "");
}

/** A snippet shows at most this many columns of its line, cut around the caret. */
export const SNIPPET_WIDTH = 100;
/** Columns shown left of the caret when a long line is cut. */
const SNIPPET_CONTEXT = 30;

/**
 * Characters that print as nothing or as a plain space but are not one to the lexer: shown by
 * their code point in a snippet, so that the caret points at something visible.
 */
const INVISIBLE = /[\u00a0\u00ad\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]/;
const INVISIBLE_NAMES: Readonly<Record<string, string>> = {
  "\u00a0": "no-break space", "\u00ad": "soft hyphen", "\u200b": "zero-width space", "\u200c": "zero-width non-joiner",
  "\u200d": "zero-width joiner", "\u200e": "left-to-right mark", "\u200f": "right-to-left mark", "\u2028": "line separator",
  "\u2029": "paragraph separator", "\u202f": "narrow no-break space", "\u2060": "word joiner", "\u3000": "ideographic space",
  "\ufeff": "byte-order mark",
};

/** `U+200B (zero-width space)` for an invisible character, null for any other. */
export function describeInvisible(ch: string): string | null {
  if (!INVISIBLE.test(ch)) return null;
  const code = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  const name = INVISIBLE_NAMES[ch];
  return name ? `${code} (${name})` : code;
}

/**
 * The source line as printed, with the caret's first column and width in printed columns: tabs
 * print as one space, invisible characters as `<U+200B>`, and a line longer than SNIPPET_WIDTH
 * is cut to a window around the caret with `…` where it was cut.
 */
function snippet(srcLine: string, col: number, width: number): { text: string; caretCol: number; caretWidth: number } {
  let from = 0, to = srcLine.length;
  if (srcLine.length > SNIPPET_WIDTH) {
    from = Math.max(0, Math.min(col - 1 - SNIPPET_CONTEXT, srcLine.length - SNIPPET_WIDTH));
    to = Math.min(srcLine.length, from + SNIPPET_WIDTH);
  }
  let text = from > 0 ? "…" : "";
  let caretCol = -1, caretEnd = -1;
  const caretFrom = Math.max(col - 1, from), caretTo = Math.min(col - 1 + width, to + 1);
  for (let i = from; i <= to; i++) {
    if (i === caretFrom) caretCol = text.length;
    if (i === caretTo) caretEnd = text.length;
    if (i === to) break;
    const ch = srcLine[i]!;
    text += ch === "\t" ? " " : INVISIBLE.test(ch) ? `<U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}>` : ch;
  }
  if (caretCol < 0) caretCol = text.length;
  if (caretEnd < 0) caretEnd = text.length + 1;
  if (to < srcLine.length) text += "…";
  return { text, caretCol, caretWidth: Math.max(1, caretEnd - caretCol) };
}

/**
 * Renders one diagnostic as
 * ```
 * policies/changes.duty:12:7: error[E_UNKNOWN_ROLE]: unknown role `reviwer`
 *    |
 * 12 | grant reviwer approve_change
 *    |       ^^^^^^^
 *    = help: did you mean `reviewer`?
 * ```
 * `sources` maps file name to its text; without the text only the first line is printed. A long
 * line is cut around the caret (SNIPPET_WIDTH columns); invisible characters print as `<U+…>`.
 */
export function renderDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string>): string {
  const head = `${d.span.file}:${d.span.line}:${d.span.col}: ${d.severity}[${d.code}]: ${d.message}`;
  const text = sources.get(d.span.file);
  const lines = [head];
  if (text !== undefined) {
    const srcLine = sourceLine(text, d.span.line);
    if (srcLine !== undefined) {
      const gutter = String(d.span.line).length;
      const pad = " ".repeat(gutter);
      const width = d.span.endLine === d.span.line ? Math.max(1, d.span.endCol - d.span.col) : Math.max(1, srcLine.length - d.span.col + 1);
      const shown = snippet(srcLine, d.span.col, width);
      lines.push(`${pad} |`, `${d.span.line} | ${shown.text}`, `${pad} | ${" ".repeat(shown.caretCol)}${"^".repeat(shown.caretWidth)}`);
      if (d.help) lines.push(`${pad} = help: ${d.help}`);
      return lines.join("\n");
    }
  }
  if (d.help) lines.push(`  = help: ${d.help}`);
  return lines.join("\n");
}

/** GitHub Actions workflow-command annotation for one diagnostic. */
export function renderGithubAnnotation(d: Diagnostic): string {
  const msg = d.help ? `${d.message} (${d.help})` : d.message;
  const { file, line, col, endLine, endCol } = d.span;
  return githubAnnotation(d.severity === "error" ? "error" : "warning", { file, line, col, endLine, endColumn: endCol, title: d.code }, msg);
}

/** Where a GitHub annotation points, and its title. */
export interface GithubAnnotationProperties {
  file?: string;
  line?: number;
  col?: number;
  endLine?: number;
  endColumn?: number;
  title?: string;
}

/**
 * One GitHub Actions annotation (`::error file=…,line=…,title=…::message`), escaped as the
 * runner's own toolkit escapes workflow commands (actions/toolkit `command.ts`): `%`, CR and LF
 * everywhere, and `:` and `,` in properties, where they would end the property — a file named
 * `we,ird:name.duty` stays one property.
 *
 * @example githubAnnotation("error", { file: "policies/a.duty", line: 3, title: "E_UNKNOWN_ROLE" }, "unknown role `x`")
 */
export function githubAnnotation(level: "error" | "warning" | "notice", properties: GithubAnnotationProperties, message: string): string {
  const props = Object.entries(properties).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${escapeGithubProperty(String(v))}`);
  return `::${level}${props.length ? " " + props.join(",") : ""}::${escapeGithubData(message)}`;
}

function escapeGithubData(s: string): string {
  return s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}

function escapeGithubProperty(s: string): string {
  return escapeGithubData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");
}
