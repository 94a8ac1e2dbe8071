// docs/errors.md and the catalogue of error codes (src/error-codes.ts): the table the docs show
// is rendered from the catalogue (scripts/update-golden.ts writes it, a test compares), and the
// docs' topical error tables are read back to be held to the catalogue.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR_CODE_LIST, ERROR_CODES } from "../../src/error-codes.ts";

export const DOCS_DIR = join(import.meta.dir, "..", "..", "docs");
export const ERRORS_DOC = join(DOCS_DIR, "errors.md");
const BEGIN = "<!-- error-codes:begin (rendered from src/error-codes.ts by scripts/update-golden.ts) -->";
const END = "<!-- error-codes:end -->";

/** The catalogue as a Markdown table, one row per code in alphabetical order. */
export function renderErrorCodeTable(): string {
  const rows = [...ERROR_CODE_LIST].sort().map((code) => {
    const info: { meaning: string; http?: number; exit?: number } = ERROR_CODES[code];
    return `| \`${code}\` | ${info.http ?? ""} | ${info.exit ?? ""} | ${info.meaning.replace(/\|/g, "\\|")} |`;
  });
  return ["| code | HTTP | exit | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

/** docs/errors.md with its table section replaced by `table`. */
export function withErrorCodeTable(doc: string, table: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`docs/errors.md lacks the markers ${BEGIN} … ${END}`);
  return `${doc.slice(0, begin + BEGIN.length)}\n${table}\n${doc.slice(end)}`;
}

/** The table section of docs/errors.md as it stands. */
export function documentedErrorCodeTable(): string {
  const doc = readFileSync(ERRORS_DOC, "utf8");
  return doc.slice(doc.indexOf(BEGIN) + BEGIN.length, doc.indexOf(END)).trim();
}

/** One row of a docs error table: its codes (a cell may name several) and its HTTP status, if the table has one. */
export interface DocumentedCode {
  file: string;
  line: number;
  code: string;
  http: number | null;
}

/**
 * The codes of every error table of docs/ other than the catalogue itself: tables whose first
 * column is headed `code`, outside docs/language.md (whose code tables are the language's:
 * diagnostics and decisions). A wildcard such as `CONFIG_*` stands for its family and is skipped.
 */
export function topicalErrorTables(): DocumentedCode[] {
  const out: DocumentedCode[] = [];
  for (const name of readdirSync(DOCS_DIR).filter((n) => n.endsWith(".md") && n !== "language.md" && n !== "errors.md").sort()) {
    const lines = readFileSync(join(DOCS_DIR, name), "utf8").split("\n");
    let httpColumn: number | null | undefined; // undefined: not inside a code table
    for (const [i, line] of lines.entries()) {
      const cells = line.startsWith("|") ? line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()) : null;
      if (cells === null) {
        httpColumn = undefined;
        continue;
      }
      if (httpColumn === undefined) {
        if (/^code$/i.test(cells[0] ?? "")) {
          const at = cells.findIndex((c) => /^(http|status)$/i.test(c));
          httpColumn = at < 0 ? null : at;
        }
        continue;
      }
      if (/^-+$/.test(cells[0] ?? "")) continue;
      const status = httpColumn === null ? null : Number.parseInt(cells[httpColumn] ?? "", 10);
      for (const m of (cells[0] ?? "").matchAll(/`([A-Z][A-Z0-9_]*)`/g)) {
        out.push({ file: `docs/${name}`, line: i + 1, code: m[1]!, http: status === null || Number.isNaN(status) ? null : status });
      }
    }
  }
  return out;
}
