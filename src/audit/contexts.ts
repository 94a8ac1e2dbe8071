// Contexts as readers see them (format 3): a record's `context` — the members many of its records
// share, such as who asked and under which bundle — is written out by the first record of a file
// that carries it, and each later record of that file names that record's seq instead. Readers
// that want a record whole (replay, tests, tools) go through a ContextTable, one per file.

type AuditRecord = Readonly<Record<string, unknown>>;

/** The member of a record that holds its context, or the seq of the record of the same file that does. */
export const CONTEXT_MEMBER = "context";

/** What a record's `context` member is: none, the context itself, a reference, or neither (malformed). */
export type ContextForm = { kind: "none" } | { kind: "inline"; context: AuditRecord } | { kind: "ref"; seq: number } | { kind: "bad" };

export function contextForm(record: AuditRecord): ContextForm {
  const context = record.context;
  if (context === undefined) return { kind: "none" };
  if (typeof context === "object" && context !== null && !Array.isArray(context)) return { kind: "inline", context: context as AuditRecord };
  if (Number.isSafeInteger(context) && (context as number) >= 0) return { kind: "ref", seq: context as number };
  return { kind: "bad" };
}

/**
 * The contexts of one file, read in order. `resolve` gives a record back whole: its context's
 * members merged in, as a format-1 or format-2 record carries them itself, and no `context`
 * member; a record without one as it is. Use one table per file: a reference never crosses a file.
 *
 * @example
 * const contexts = new ContextTable();
 * for (const line of lines) { const record = contexts.resolve(JSON.parse(line)); if (record) use(record.principal); }
 */
export class ContextTable {
  private readonly bySeq = new Map<number, AuditRecord>();

  /** The record whole, or null when it names a context no earlier record of this file holds (or its `context` is malformed). */
  resolve(record: AuditRecord): AuditRecord | null {
    const form = contextForm(record);
    if (form.kind === "none") return record;
    if (form.kind === "bad") return null;
    let context: AuditRecord | undefined;
    if (form.kind === "inline") {
      context = form.context;
      if (typeof record.seq === "number") this.bySeq.set(record.seq, context);
    } else {
      context = this.bySeq.get(form.seq);
      if (context === undefined) return null;
    }
    const { context: _context, ...own } = record;
    return { ...context, ...own };
  }
}
