// Diagnostics are values: built by every stage, sorted by position, rendered here.
import type { Diagnostic, Severity, Span } from "./types.ts";

export function diagnostic(code: string, severity: Severity, message: string, span: Span, help?: string): Diagnostic {
  return help === undefined ? { code, severity, message, span } : { code, severity, message, span, help };
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
  return a.span.file.localeCompare(b.span.file) || a.span.start - b.span.start || a.code.localeCompare(b.code);
}

export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort(compareDiagnostics);
}

export function hasErrors(list: readonly Diagnostic[]): boolean {
  return list.some((d) => d.severity === "error");
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
 * `sources` maps file name to its text; without the text only the first line is printed.
 */
export function renderDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string>): string {
  const head = `${d.span.file}:${d.span.line}:${d.span.col}: ${d.severity}[${d.code}]: ${d.message}`;
  const text = sources.get(d.span.file);
  const lines = [head];
  if (text !== undefined) {
    const srcLine = text.split("\n")[d.span.line - 1];
    if (srcLine !== undefined) {
      const gutter = String(d.span.line).length;
      const pad = " ".repeat(gutter);
      const width = d.span.endLine === d.span.line ? Math.max(1, d.span.endCol - d.span.col) : Math.max(1, srcLine.length - d.span.col + 1);
      lines.push(`${pad} |`, `${d.span.line} | ${srcLine.replace(/\t/g, " ")}`, `${pad} | ${" ".repeat(Math.max(0, d.span.col - 1))}${"^".repeat(width)}`);
      if (d.help) lines.push(`${pad} = help: ${d.help}`);
      return lines.join("\n");
    }
  }
  if (d.help) lines.push(`  = help: ${d.help}`);
  return lines.join("\n");
}

/** GitHub Actions workflow-command annotation for one diagnostic. */
export function renderGithubAnnotation(d: Diagnostic): string {
  const esc = (s: string) => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
  const kind = d.severity === "error" ? "error" : "warning";
  const msg = d.help ? `${d.message} (${d.help})` : d.message;
  return `::${kind} file=${d.span.file},line=${d.span.line},col=${d.span.col},endLine=${d.span.endLine},endColumn=${d.span.endCol},title=${d.code}::${esc(msg)}`;
}
