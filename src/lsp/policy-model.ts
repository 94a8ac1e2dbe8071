// What the language server knows about one policy (every `.duty` file of one directory tree):
// the parse of each file, the checker's diagnostics and separation analysis, and an index of
// every name — where it is declared and where it is used — built from the ASTs, so hover,
// go-to-definition and references work even while the policy has type errors.
import type { CheckedPolicy, Declaration, Diagnostic, Expr, ParseResult, PolicyFile, ReachabilityRow, Span, TypeRef } from "../../dsl/mod.ts";
import { buildPolicy } from "../policy/mod.ts";

/** The kinds of names a policy has. */
export type NameKind = "role" | "duty" | "upstream" | "type" | "value" | "attribute" | "param" | "field";

/** One place a name is written. */
export interface Occurrence {
  kind: NameKind;
  name: string;
  span: Span;
  /** Declares the name (`role reviewer`, `duty approve_change …`, `:change` in a route). */
  definition: boolean;
}

/** The fields of `request`, with their types, as docs/language.md lists them. */
export const REQUEST_FIELDS: ReadonlyArray<{ name: string; type: string; doc: string }> = [
  { name: "method", type: "string", doc: "the upper-case method" },
  { name: "path", type: "string", doc: "the normalised path" },
  { name: "ip", type: "ip", doc: "the client address" },
  { name: "time", type: "time", doc: "the request time" },
  { name: "header", type: "string", doc: "`request.header[\"Name\"]`: a header, name case-insensitive; absent reads as `\"\"`" },
  { name: "query", type: "string", doc: "`request.query[\"name\"]`: a query parameter; absent reads as `\"\"`" },
  { name: "param", type: "string", doc: "`request.param.NAME`: a route param of every duty the rule applies to" },
];

export interface PolicyModel {
  /** Display path (relative to the policy root) → its parse and text. */
  files: Map<string, { parsed: ParseResult; text: string }>;
  /** Null when the policy has errors. */
  policy: CheckedPolicy | null;
  /** The checker's and the separation analysis's findings, as `gateway check` reports them. */
  diagnostics: Diagnostic[];
  reachability: ReachabilityRow[];
  /** Every occurrence of a name, per file, in source order. */
  occurrences: Map<string, Occurrence[]>;
  /** Every occurrence of each name, by `kind:name`. */
  byName: Map<string, Occurrence[]>;
  /** Declarations with their file, in source order (hover reads them). */
  declarations: Array<{ file: string; decl: Declaration }>;
}

export const nameKey = (kind: NameKind, name: string) => `${kind}:${name}`;

/** Checks and indexes a policy from its parsed files. */
export function buildPolicyModel(files: ReadonlyMap<string, { parsed: ParseResult; text: string }>, options: { now?: number } = {}): PolicyModel {
  const parsed = [...files.values()].map((f) => f.parsed);
  // The gateway's own build, stopped after the check: the editor shows what `gateway check` reports.
  const built = buildPolicy({ policies: [...files].map(([path, f]) => ({ path, text: f.text })), tests: [] }, { now: options.now, until: "check", parsed });
  const { policy, diagnostics, reachability } = built;
  const model: PolicyModel = { files: new Map(files), policy, diagnostics, reachability, occurrences: new Map(), byName: new Map(), declarations: [] };
  const known = knownNames(parsed.map((p) => p.file));
  for (const p of parsed) indexFile(model, p.file, known);
  return model;
}

/** Roles and enum values declared anywhere: a bare name in a condition is one of them. */
function knownNames(files: readonly PolicyFile[]): { roles: Set<string>; values: Set<string> } {
  const roles = new Set<string>(), values = new Set<string>();
  for (const f of files) {
    for (const d of f.declarations) {
      if (d.kind === "role") for (const n of d.names) roles.add(n.text);
      if (d.kind === "enum") for (const n of d.values) values.add(n.text);
    }
  }
  return { roles, values };
}

function indexFile(model: PolicyModel, file: PolicyFile, known: { roles: Set<string>; values: Set<string> }): void {
  const list: Occurrence[] = [];
  const add = (kind: NameKind, name: string, span: Span, definition = false) => {
    const o = { kind, name, span, definition };
    list.push(o);
    const key = nameKey(kind, name);
    const all = model.byName.get(key);
    if (all) all.push(o);
    else model.byName.set(key, [o]);
  };
  const typeRef = (t: TypeRef) => {
    if (t.kind === "set") typeRef(t.of);
    else if (t.name.text === "role") add("type", "role", t.name.span);
    else if (!["string", "int", "bool", "ip", "cidr", "time", "duration"].includes(t.name.text)) add("type", t.name.text, t.name.span);
  };
  const expr = (e: Expr, params: boolean): void => {
    switch (e.kind) {
      case "set": for (const i of e.items) expr(i, params); return;
      case "not": expr(e.operand, params); return;
      case "apply": expr(e.arg, params); return;
      case "binary": expr(e.left, params); expr(e.right, params); return;
      case "ref": {
        const [first, second] = e.members;
        if (e.head.text === "principal") {
          if (first && !first.quoted) add("attribute", first.name, first.span);
        } else if (e.head.text === "request") {
          if (first && !first.quoted) add("field", first.name, first.span);
          if (first?.name === "param" && second && !second.quoted && params) add("param", second.name, second.span);
        } else if (e.members.length === 0) {
          if (known.roles.has(e.head.text)) add("role", e.head.text, e.head.span);
          else if (known.values.has(e.head.text)) add("value", e.head.text, e.head.span);
        }
        return;
      }
      default: return;
    }
  };
  for (const d of file.declarations) {
    model.declarations.push({ file: file.file, decl: d });
    switch (d.kind) {
      case "principal": for (const a of d.attrs) { add("attribute", a.name.text, a.name.span, true); typeRef(a.type); } break;
      case "role": for (const n of d.names) add("role", n.text, n.span, true); break;
      case "enum": add("type", d.name.text, d.name.span, true); for (const n of d.values) add("value", n.text, n.span, true); break;
      case "upstream": for (const n of d.names) add("upstream", n.text, n.span, true); break;
      case "duty": {
        add("duty", d.name.text, d.name.span, true);
        // `:change` in a route declares the param `change` (one token, so columns are offsets).
        for (const m of d.pattern.text.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)) {
          const at = m.index + 1;
          add("param", m[1]!, { ...d.pattern.span, col: d.pattern.span.col + at, endCol: d.pattern.span.col + at + m[1]!.length, start: d.pattern.span.start + at, end: d.pattern.span.start + at + m[1]!.length }, true);
        }
        add("upstream", d.upstream.text, d.upstream.span);
        break;
      }
      case "grant": for (const r of d.roles) add("role", r.text, r.span); add("duty", d.duty.text, d.duty.span); if (d.when) expr(d.when, true); break;
      case "forbid": for (const n of d.duties ?? []) add("duty", n.text, n.span); expr(d.when, true); break;
      case "exclusive": for (const r of d.roles) add("role", r.text, r.span); break;
      case "separate": for (const n of d.duties) add("duty", n.text, n.span); for (const n of d.params) add("param", n.text, n.span); break;
    }
  }
  list.sort((a, b) => a.span.start - b.span.start);
  model.occurrences.set(file.file, list);
}

/** The occurrence under an offset of a file, if a name is there. */
export function occurrenceAt(model: PolicyModel, file: string, offset: number): Occurrence | null {
  const list = model.occurrences.get(file) ?? [];
  // Binary search for the last occurrence starting at or before the offset.
  let lo = 0, hi = list.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.span.start <= offset) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  const o = found >= 0 ? list[found]! : null;
  return o && offset <= o.span.end ? o : null;
}
