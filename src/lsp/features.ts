// The answers of the language server, computed from a PolicyModel: diagnostics, hover, go to
// definition, references, completion, code lenses and formatting. Plain functions of the model,
// a file (its display path), an offset and a way to name files as URIs.
import { CodeLens, CompletionItem, CompletionItemKind, DiagnosticSeverity, InsertTextFormat, MarkupKind } from "vscode-languageserver";
import type { Diagnostic as LspDiagnostic, Hover, Location, Range, TextEdit } from "vscode-languageserver";
import { formatParsedPolicy, hasErrors } from "../../dsl/mod.ts";
import type { Declaration, Diagnostic, ReachabilityRow, Span, TypeRef } from "../../dsl/mod.ts";
import { nameKey, occurrenceAt, REQUEST_FIELDS, type NameKind, type Occurrence, type PolicyModel } from "./policy-model.ts";

export type UriOf = (file: string) => string;

/** A span as an LSP range (lines and characters from 0; spans count from 1). */
export function rangeOf(span: Span): Range {
  return { start: { line: span.line - 1, character: span.col - 1 }, end: { line: span.endLine - 1, character: span.endCol - 1 } };
}

/** Diagnostics of one file as LSP diagnostics: code, source, help, related places. */
export function diagnosticsOf(model: PolicyModel, file: string, uriOf: UriOf): LspDiagnostic[] {
  return model.diagnostics.filter((d) => d.span.file === file).map((d) => toLspDiagnostic(model, d, uriOf));
}

function toLspDiagnostic(model: PolicyModel, d: Diagnostic, uriOf: UriOf): LspDiagnostic {
  const out: LspDiagnostic = {
    range: rangeOf(d.span),
    severity: d.severity === "error" ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
    code: d.code,
    source: "dutygate",
    message: d.help ? `${d.message}\nhelp: ${d.help}` : d.message,
  };
  const related = relatedOf(model, d);
  if (related.length) out.relatedInformation = related.map((r) => ({ location: { uri: uriOf(r.span.file), range: rangeOf(r.span) }, message: r.message }));
  return out;
}

/**
 * The places a diagnostic points to besides its own: the checker cites them as `file:line:col`
 * in its message or help ("duty `a` is declared at changes.duty:4:1", "always forbidden by
 * changes.duty:17:1"). Each becomes a related location spanning the declaration written there.
 */
function relatedOf(model: PolicyModel, d: Diagnostic): Array<{ message: string; span: Span }> {
  const out: Array<{ message: string; span: Span }> = [];
  for (const sentence of [d.message, d.help ?? ""]) {
    for (const m of sentence.matchAll(/([^\s`(]+\.duty):(\d+):(\d+)/g)) {
      const [file, line, col] = [m[1]!, Number(m[2]), Number(m[3])];
      if (!model.files.has(file)) continue;
      const decl = model.declarations.find((x) => x.file === file && x.decl.span.line === line && x.decl.span.col === col)?.decl;
      const span = decl?.span ?? { file, line, col, endLine: line, endCol: col + 1, start: 0, end: 0 };
      out.push({ message: sentence, span });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hover

const list = (names: readonly string[], max = 12) => names.length <= max ? names.map((n) => `\`${n}\``).join(", ") : `${names.slice(0, max).map((n) => `\`${n}\``).join(", ")} and ${names.length - max} more`;

function sourceOf(model: PolicyModel, span: Span): string {
  const text = model.files.get(span.file)?.text ?? "";
  return text.slice(span.start, span.end).replace(/\s+/g, " ");
}

function typeText(t: TypeRef): string {
  return t.kind === "set" ? `set<${typeText(t.of)}>` : t.name.text;
}

function decls<K extends Declaration["kind"]>(model: PolicyModel, kind: K): Array<{ file: string; decl: Extract<Declaration, { kind: K }> }> {
  return model.declarations.filter((d): d is { file: string; decl: Extract<Declaration, { kind: K }> } => d.decl.kind === kind);
}

/** Markdown describing a name: a duty's route and upstream, a role's grants, an attribute's type… */
export function describeName(model: PolicyModel, kind: NameKind, name: string): string | null {
  const lines: string[] = [];
  switch (kind) {
    case "duty": {
      const duty = decls(model, "duty").find((d) => d.decl.name.text === name)?.decl;
      if (!duty) return null;
      lines.push(`**duty** \`${name}\`: \`${duty.method.text} ${duty.pattern.text}\` → upstream \`${duty.upstream.text}\`${duty.channel ? `, channel \`${duty.channel.text}\`` : ""}`);
      const grants = decls(model, "grant").filter((g) => g.decl.duty.text === name);
      if (grants.length === 0) lines.push("", "granted to no role: every request is denied");
      for (const g of grants.slice(0, 12)) lines.push(`- granted to ${list(g.decl.roles.map((r) => r.text))}${g.decl.when ? ` when \`${sourceOf(model, g.decl.when.span)}\`` : ""}${g.decl.until ? ` until ${g.decl.until.text}` : ""}`);
      if (grants.length > 12) lines.push(`- and ${grants.length - 12} more grants`);
      for (const f of decls(model, "forbid").filter((f) => f.decl.duties === null || f.decl.duties.some((n) => n.text === name)).slice(0, 6)) lines.push(`- forbidden when \`${sourceOf(model, f.decl.when.span)}\``);
      for (const s of decls(model, "separate").filter((s) => s.decl.duties.some((n) => n.text === name))) lines.push(`- kept apart from ${list(s.decl.duties.map((n) => n.text).filter((n) => n !== name))} by ${list(s.decl.params.map((n) => n.text))}`);
      break;
    }
    case "role": {
      lines.push(`**role** \`${name}\``);
      const granted = decls(model, "grant").filter((g) => g.decl.roles.some((r) => r.text === name));
      if (granted.length === 0) lines.push("", "granted no duty");
      for (const g of granted.slice(0, 12)) lines.push(`- may \`${g.decl.duty.text}\`${g.decl.when ? ` when \`${sourceOf(model, g.decl.when.span)}\`` : ""}${g.decl.until ? ` until ${g.decl.until.text}` : ""}`);
      if (granted.length > 12) lines.push(`- and ${granted.length - 12} more grants`);
      for (const x of decls(model, "exclusive").filter((x) => x.decl.roles.some((r) => r.text === name))) {
        lines.push(`- exclusive${x.decl.atLeast ? ` (${x.decl.atLeast.value} of)` : ""} with ${list(x.decl.roles.map((r) => r.text).filter((r) => r !== name))}`);
      }
      break;
    }
    case "upstream": {
      const duties = decls(model, "duty").filter((d) => d.decl.upstream.text === name).map((d) => d.decl.name.text);
      lines.push(`**upstream** \`${name}\`${name === "gateway" ? " (the gateway's own admin functions)" : ""}`, "", duties.length ? `duties forwarding to it: ${list(duties)}` : "no duty forwards to it");
      break;
    }
    case "attribute": {
      const attr = decls(model, "principal").flatMap((p) => p.decl.attrs).find((a) => a.name.text === name);
      if (!attr) return null;
      lines.push(`\`principal.${name}\`: \`${typeText(attr.type)}\``);
      break;
    }
    case "field": {
      const f = REQUEST_FIELDS.find((f) => f.name === name);
      if (!f) return null;
      lines.push(`\`request.${name}\`: \`${f.type}\` — ${f.doc}`);
      break;
    }
    case "param": {
      const duties = decls(model, "duty").filter((d) => new RegExp(`:${name}(?:/|$)`).test(d.decl.pattern.text)).map((d) => d.decl.name.text);
      lines.push(`route param \`${name}\`: \`string\``, "", duties.length ? `in the routes of ${list(duties)}` : "in no route");
      break;
    }
    case "type": {
      if (name === "role") {
        lines.push("**enum** `role`", "", `values: ${list(decls(model, "role").flatMap((r) => r.decl.names.map((n) => n.text)), 30)}`);
        break;
      }
      const e = decls(model, "enum").find((e) => e.decl.name.text === name)?.decl;
      if (!e) return null;
      lines.push(`**enum** \`${name}\` { ${e.values.map((v) => v.text).join(", ")} }`);
      break;
    }
    case "value": {
      const enums = decls(model, "enum").filter((e) => e.decl.values.some((v) => v.text === name)).map((e) => e.decl.name.text);
      lines.push(`\`${name}\`: a value of ${list(enums)}`);
      break;
    }
  }
  return lines.join("\n");
}

export function hoverAt(model: PolicyModel, file: string, offset: number): Hover | null {
  const o = occurrenceAt(model, file, offset);
  if (!o) return constraintHover(model, file, offset);
  const text = describeName(model, o.kind, o.name);
  return text ? { contents: { kind: MarkupKind.Markdown, value: text }, range: rangeOf(o.span) } : null;
}

/** On the keyword of a `separate` or `exclusive`: its rows of the reachability table, as a table. */
function constraintHover(model: PolicyModel, file: string, offset: number): Hover | null {
  if (!model.policy) return null;
  const constraint = [...model.policy.separations, ...model.policy.exclusives].find((c) => {
    const keyword = "duties" in c ? "separate" : "exclusive";
    return c.span.file === file && offset >= c.span.start && offset <= c.span.start + keyword.length;
  });
  if (!constraint) return null;
  const rows = model.reachability.filter((r) => r.constraint === constraint.id);
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    `**${"duties" in constraint ? "separate" : "exclusive"}**: reachability (conditions counted as may-hold)`,
    "",
    "| sides | one role reaches both | role combinations | verdict |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${cell(`${r.sides[0]} / ${r.sides[1]}`)} | ${cell(r.singleRoles.join(", ") || "-")} | ${cell([...r.combinations.map(([a, b]) => `${a}+${b}`), ...(r.omittedCombinations ? [`… ${r.omittedCombinations} more`] : [])].join(", ") || "-")} | ${cell(`${r.verdict}: ${r.note}`)} |`),
  ];
  const range = rangeOf(constraint.span);
  return { contents: { kind: MarkupKind.Markdown, value: lines.join("\n") }, range: { start: range.start, end: { line: range.start.line, character: range.start.character + ("duties" in constraint ? 8 : 9) } } };
}

// ---------------------------------------------------------------------------------------------
// Definition and references

const locationOf = (o: Occurrence, uriOf: UriOf): Location => ({ uri: uriOf(o.span.file), range: rangeOf(o.span) });

export function definitionAt(model: PolicyModel, file: string, offset: number, uriOf: UriOf): Location[] {
  const o = occurrenceAt(model, file, offset);
  if (!o) return [];
  return (model.byName.get(nameKey(o.kind, o.name)) ?? []).filter((x) => x.definition).map((x) => locationOf(x, uriOf));
}

export function referencesAt(model: PolicyModel, file: string, offset: number, includeDeclaration: boolean, uriOf: UriOf): Location[] {
  const o = occurrenceAt(model, file, offset);
  if (!o) return [];
  return (model.byName.get(nameKey(o.kind, o.name)) ?? []).filter((x) => includeDeclaration || !x.definition).map((x) => locationOf(x, uriOf));
}

// ---------------------------------------------------------------------------------------------
// Completion

const DECLARATION_KEYWORDS = ["principal", "role", "enum", "upstream", "duty", "grant", "forbid", "exclusive", "separate"];
const EXPRESSION_KEYWORDS = ["and", "or", "not", "in", "has", "starts_with", "ends_with", "matches", "true", "false"];
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const BASE_TYPES = ["string", "int", "bool", "ip", "cidr", "time", "duration", "role"];

function namesOf(model: PolicyModel, kind: NameKind): string[] {
  const out = new Set<string>();
  for (const [key, all] of model.byName) if (key.startsWith(kind + ":") && all.some((o) => o.definition)) out.add(key.slice(kind.length + 1));
  return [...out];
}

function items(labels: readonly string[], kind: CompletionItemKind, detail?: (label: string) => string | undefined): CompletionItem[] {
  return labels.map((label) => {
    const item: CompletionItem = { label, kind };
    const d = detail?.(label);
    if (d) item.detail = d;
    return item;
  });
}

/**
 * Completions at an offset of a document's current text. The context is read from the text
 * before the cursor (the model may be one edit behind while the user types); the names come
 * from the model.
 */
export function completionAt(model: PolicyModel, text: string, offset: number): CompletionItem[] {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  const before = text.slice(lineStart, offset);
  const attrs = decls(model, "principal").flatMap((p) => p.decl.attrs);
  if (/\bprincipal\.\w*$/.test(before)) return items(attrs.map((a) => a.name.text), CompletionItemKind.Field, (n) => typeText(attrs.find((a) => a.name.text === n)!.type));
  if (/\brequest\.param\.\w*$/.test(before)) return items(namesOf(model, "param"), CompletionItemKind.Variable, () => "string");
  if (/\brequest\.\w*$/.test(before)) return items(REQUEST_FIELDS.map((f) => f.name), CompletionItemKind.Field, (n) => REQUEST_FIELDS.find((f) => f.name === n)!.type);

  // The declaration being written: the last line at or above the cursor that starts with a keyword.
  let declStart = lineStart;
  let keyword: string | null = null;
  for (let at = lineStart; ; ) {
    const line = text.slice(at, text.indexOf("\n", at) === -1 ? text.length : text.indexOf("\n", at));
    const first = /^\s*([a-z_]+)/.exec(line)?.[1];
    if (first && DECLARATION_KEYWORDS.includes(first) && !(first === "principal" && /^\s*principal\s*\./.test(line))) { keyword = first; declStart = at; break; }
    if (at === 0) break;
    at = text.lastIndexOf("\n", at - 2) + 1;
  }
  const sofar = text.slice(declStart, offset);
  const words = sofar.trim().split(/[\s,]+/);
  const startOfDeclaration = /^\s*[a-z_]*$/.test(before) && (keyword === null || before.trim() === "" || words.length <= 1);
  const keywordItems = items(DECLARATION_KEYWORDS, CompletionItemKind.Keyword);
  const roles = () => items(namesOf(model, "role"), CompletionItemKind.EnumMember, () => "role");
  const duties = () => items(namesOf(model, "duty"), CompletionItemKind.Function, (n) => {
    const d = decls(model, "duty").find((d) => d.decl.name.text === n)?.decl;
    return d ? `${d.method.text} ${d.pattern.text} -> ${d.upstream.text}` : undefined;
  });
  const expression = () => [
    { label: "principal", kind: CompletionItemKind.Variable, detail: "the caller" },
    { label: "request", kind: CompletionItemKind.Variable, detail: "the request" },
    ...items(EXPRESSION_KEYWORDS, CompletionItemKind.Keyword),
    ...roles(),
    ...items(namesOf(model, "value"), CompletionItemKind.EnumMember, () => "enum value"),
    ...items(["ip", "cidr", "time", "duration"], CompletionItemKind.Function, (n) => `${n}("…")`).map((i) => ({ ...i, insertText: `${i.label}("$1")`, insertTextFormat: InsertTextFormat.Snippet })),
    { label: "lower", kind: CompletionItemKind.Function, detail: "lower(s): the string in lower case", insertText: "lower($1)", insertTextFormat: InsertTextFormat.Snippet },
  ];
  if (keyword === null || (startOfDeclaration && keyword !== "principal")) return keywordItems;
  switch (keyword) {
    case "principal":
      return /:\s*(set<)?\w*$/.test(before) ? items([...BASE_TYPES, ...namesOf(model, "type").filter((t) => t !== "role")], CompletionItemKind.TypeParameter) : [];
    case "grant":
      if (/\bwhen\b/.test(sofar)) return [...expression(), ...items(["until"], CompletionItemKind.Keyword)];
      return [...roles(), ...duties(), ...items(["when", "until"], CompletionItemKind.Keyword)];
    case "forbid":
      return /\bwhen\b/.test(sofar) ? expression() : [...duties(), ...items(["when"], CompletionItemKind.Keyword)];
    case "exclusive":
      return [...roles(), ...items(["of"], CompletionItemKind.Keyword)];
    case "separate":
      return /\bby\s+\w*$/.test(sofar) ? items(namesOf(model, "param"), CompletionItemKind.Variable) : [...duties(), ...items(["by"], CompletionItemKind.Keyword)];
    case "duty": {
      if (/\bchannel\s+\w*$/.test(sofar)) return items(["operational", "admin"], CompletionItemKind.EnumMember);
      if (/->\s*\w*$/.test(sofar)) return items(namesOf(model, "upstream"), CompletionItemKind.Module);
      if (/->\s*\w+\s+\w*$/.test(sofar)) return items(["channel"], CompletionItemKind.Keyword);
      if (/^\s*duty\s+\w+\s+\w*$/.test(sofar)) return items(METHODS, CompletionItemKind.Constant);
      return [];
    }
    default:
      return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Code lenses: the separation-of-duties reachability table, row by row, on its constraint

function lensTitle(r: ReachabilityRow): string {
  const sides = `${r.sides[0]} / ${r.sides[1]}`;
  const single = r.singleRoles.length ? `; one role reaches both: ${r.singleRoles.join(", ")}` : "";
  return `${r.verdict === "ok" ? "✓" : r.verdict === "warning" ? "⚠" : "✗"} ${sides}: ${r.note}${single}`;
}

export function codeLensesOf(model: PolicyModel, file: string): CodeLens[] {
  if (!model.policy) return [];
  const spans = new Map<string, Span>();
  for (const c of [...model.policy.separations, ...model.policy.exclusives]) if (c.span.file === file) spans.set(c.id, c.span);
  const lenses: CodeLens[] = [];
  for (const row of model.reachability) {
    const span = spans.get(row.constraint);
    if (!span) continue;
    const range = rangeOf(span);
    lenses.push(CodeLens.create({ start: range.start, end: range.start }, undefined));
    lenses.at(-1)!.command = { title: lensTitle(row), command: "" };
  }
  return lenses;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** One edit replacing the whole document by its canonical layout; none when it is formatted or does not parse. */
export function formattingEdits(model: PolicyModel, file: string): TextEdit[] {
  const entry = model.files.get(file);
  if (!entry || hasErrors(entry.parsed.diagnostics)) return [];
  const formatted = formatParsedPolicy(entry.text, entry.parsed);
  if (formatted === entry.text) return [];
  const lines = entry.text.split("\n");
  return [{ range: { start: { line: 0, character: 0 }, end: { line: lines.length - 1, character: lines.at(-1)!.length } }, newText: formatted }];
}
