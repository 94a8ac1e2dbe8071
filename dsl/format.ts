// The canonical layout of `.duty` files (`gateway fmt`, the language server's formatting).
// It prints the AST the parser built — no second parser — and puts back the comments the lexer
// skips, found in the gaps between tokens. The layout:
//  - one declaration per line; blank lines between declarations kept (several become one);
//  - consecutive `duty` lines aligned as a table (name, method, route), consecutive one-line
//    `grant`s aligned (roles, duty), trailing comments of consecutive lines aligned;
//  - single spaces around operators and after commas, none inside brackets and parentheses;
//    redundant double parentheses dropped, every other parenthesis kept as written;
//  - a declaration longer than MAX_WIDTH puts `when` and `until` on lines of their own and
//    breaks a long condition before its top-level `or`s, then its `and`s; name lists fill lines;
//  - `principal { … }` one attribute per line.
// Consecutive grants whose role lists differ much in width are aligned in separate sections.
// A declaration with a comment inside it keeps its own lines (trailing spaces removed): moving a
// comment the author put between two operands would change what it annotates.
import { hasErrors } from "./diagnostics.ts";
import { parsePolicySource, type ParseResult, type PolicySource } from "./load.ts";
import type { Declaration, DutyDecl, Expr, GrantDecl, TypeRef } from "./ast.ts";
import type { Diagnostic } from "./types.ts";

/** Lines are kept within this many columns where the layout can break them. */
export const MAX_WIDTH = 120;
const INDENT = "  ";

export interface FormatResult {
  /** The formatted text; null when the source does not parse (see `diagnostics`). */
  text: string | null;
  /** The parse diagnostics; formatting never runs the checker. */
  diagnostics: Diagnostic[];
}

/**
 * Formats one `.duty` source. A source with syntax errors is not formatted: `text` is null and
 * `diagnostics` says why.
 * @example
 * formatPolicySource({ path: "a.duty", text: "role  a,b" }).text // "role a, b\n"
 */
export function formatPolicySource(source: PolicySource): FormatResult {
  const parsed = parsePolicySource(source);
  if (hasErrors(parsed.diagnostics)) return { text: null, diagnostics: parsed.diagnostics };
  return { text: formatParsedPolicy(source.text, parsed), diagnostics: parsed.diagnostics };
}

interface Comment {
  start: number;
  end: number;
  text: string;
  /** Nothing but whitespace before it on its line. */
  ownLine: boolean;
}

/** A printed unit: a declaration, an attribute or a comment on its own line. */
interface Block {
  start: number;
  end: number;
  kind: string;
  decl: Declaration | null;
  lines: string[];
  trailing: string | null;
  blankBefore: boolean;
}

/**
 * Formats a source already parsed without errors (`parsePolicySource`): the language server
 * formats from its cached parse. Comments are found in the gaps between the parse's tokens.
 */
export function formatParsedPolicy(text: string, parsed: Pick<ParseResult, "file" | "tokens">): string {
  const { file, tokens } = parsed;
  const comments: Comment[] = [];
  const parens = new Map<number, number>();
  const open: number[] = [];
  let gapStart = 0;
  // The next `#` at or after the gap being scanned: most gaps hold only spaces, so only those
  // reaching it are searched (one pass over the text, not one search per gap).
  let nextHash = text.indexOf("#");
  const scanGap = (from: number, to: number) => {
    if (nextHash !== -1 && nextHash < from) nextHash = text.indexOf("#", from);
    if (nextHash === -1 || nextHash >= to) return;
    nextHash = text.indexOf("#", to);
    const gap = text.slice(from, to);
    for (const m of gap.matchAll(/#[^\n]*/g)) {
      const start = from + m.index;
      const lineStart = text.lastIndexOf("\n", start - 1) + 1;
      comments.push({ start, end: start + m[0].length, text: m[0].trimEnd(), ownLine: text.slice(lineStart, start).trim() === "" });
    }
  };
  for (const t of tokens) {
    scanGap(gapStart, t.startOffset);
    gapStart = (t.endOffset ?? t.startOffset) + 1;
    if (t.tokenType.name === "LParen") open.push(t.startOffset);
    else if (t.tokenType.name === "RParen" && open.length) parens.set(open.pop()!, t.startOffset);
  }
  scanGap(gapStart, text.length);

  const printer = new Printer(text, parens);
  const blocks = arrange(
    text,
    file.declarations.map((d) => ({ start: d.annotation?.span.start ?? d.span.start, end: d.span.end, kind: d.kind, decl: d })),
    comments,
    0,
    (entry, inner) => (inner.length && entry.decl!.kind !== "principal" ? verbatim(text, entry.start, entry.end) : printer.declaration(entry.decl!, inner)),
  );
  alignDuties(blocks, printer);
  alignGrants(blocks, printer);
  const lines = render(blocks, "");
  return lines.length ? lines.join("\n") + "\n" : "";
}

/**
 * Interleaves entries (declarations or attributes) with the comments between them: a comment
 * after an entry on the same line trails it, any other comment is a block of its own. Returns
 * blocks whose `lines` are filled by `print` (given the comments inside the entry).
 */
function arrange(
  text: string,
  entries: Array<{ start: number; end: number; kind: string; decl: Declaration | null }>,
  comments: readonly Comment[],
  from: number,
  print: (entry: { start: number; end: number; decl: Declaration | null }, inner: Comment[]) => string[],
  to = text.length,
): Block[] {
  const blocks: Block[] = [];
  const mine = comments.filter((c) => c.start >= from && c.start < to);
  let prevEnd = from;
  let last: Block | null = null;
  let ci = 0;
  const blankBetween = (a: number, b: number) => last !== null && (text.slice(a, b).match(/\n/g)?.length ?? 0) >= 2;
  const takeComment = (c: Comment) => {
    if (last && !c.ownLine && last.trailing === null && !text.slice(last.end, c.start).includes("\n")) {
      last.trailing = c.text;
      prevEnd = c.end;
      return;
    }
    const b: Block = { start: c.start, end: c.end, kind: "comment", decl: null, lines: [c.text], trailing: null, blankBefore: blankBetween(prevEnd, c.start) };
    blocks.push(b);
    last = b;
    prevEnd = c.end;
  };
  for (const e of entries) {
    while (ci < mine.length && mine[ci]!.start < e.start) takeComment(mine[ci++]!);
    const inner: Comment[] = [];
    while (ci < mine.length && mine[ci]!.start < e.end) inner.push(mine[ci++]!);
    const b: Block = { start: e.start, end: e.end, kind: e.kind, decl: e.decl, lines: print(e, inner), trailing: null, blankBefore: blankBetween(prevEnd, e.start) };
    if (inner.length && e.decl?.kind !== "principal") b.kind = "verbatim";
    blocks.push(b);
    last = b;
    prevEnd = e.end;
  }
  while (ci < mine.length) takeComment(mine[ci++]!);
  return blocks;
}

/** The source lines of a span as written, trailing spaces removed. */
function verbatim(text: string, start: number, end: number): string[] {
  return text.slice(start, end).split("\n").map((l) => l.trimEnd());
}

/** Output lines: blank lines where the source had them, trailing comments aligned per run. */
function render(blocks: readonly Block[], indent: string): string[] {
  const out: string[] = [];
  // A run of consecutive one-line blocks with trailing comments aligns those comments.
  let runStart = 0;
  const flush = (endIndex: number) => {
    const run = blocks.slice(runStart, endIndex);
    const width = run.reduce((w, b) => Math.max(w, b.lines[0]!.length), 0);
    for (const b of run) out.push(indent + b.lines[0]!.padEnd(width) + "  " + b.trailing);
  };
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i]!;
    const aligned = b.trailing !== null && b.lines.length === 1 && b.kind !== "comment" && b.kind !== "verbatim";
    const continues = aligned && i > runStart && !b.blankBefore && blocks[i - 1]!.trailing !== null && blocks[i - 1]!.lines.length === 1 && blocks[i - 1]!.kind !== "verbatim";
    if (!continues) runStart = i;
    if (b.blankBefore) out.push("");
    if (aligned) {
      // Printed when the run ends, so its width is known.
      const next = blocks[i + 1];
      const nextContinues = next && !next.blankBefore && next.trailing !== null && next.lines.length === 1 && next.kind !== "comment" && next.kind !== "verbatim";
      if (!nextContinues) flush(i + 1);
      continue;
    }
    for (const [j, line] of b.lines.entries()) {
      const last = j === b.lines.length - 1;
      out.push(line === "" ? "" : indent + line + (last && b.trailing !== null ? "  " + b.trailing : ""));
    }
  }
  return out;
}

/** Consecutive one-line duties (no blank line or comment between them) form a table. */
function runsOf(blocks: Block[], kind: string, fits: (b: Block) => boolean): Block[][] {
  const runs: Block[][] = [];
  let run: Block[] = [];
  for (const b of blocks) {
    const joins = b.kind === kind && fits(b);
    if (!joins || b.blankBefore) {
      if (run.length > 1) runs.push(run);
      run = [];
    }
    if (joins) run.push(b);
  }
  if (run.length > 1) runs.push(run);
  return runs;
}

function alignDuties(blocks: Block[], printer: Printer): void {
  for (const run of runsOf(blocks, "duty", (b) => b.lines.length === 1)) {
    const decls = run.map((b) => b.decl as DutyDecl);
    const w = (f: (d: DutyDecl) => string) => decls.reduce((m, d) => Math.max(m, f(d).length), 0);
    const widths = [w((d) => d.name.text), w((d) => d.method.text), w((d) => d.pattern.text)];
    run.forEach((b, i) => (b.lines = [printer.duty(decls[i]!, widths)]));
  }
}

/** Role lists whose widths differ by more than this start a new aligned section of grants. */
const GRANT_SECTION_JUMP = 8;

function alignGrants(blocks: Block[], printer: Printer): void {
  for (const whole of runsOf(blocks, "grant", (b) => b.lines.length === 1)) {
    // Padding short role lists to a much longer one makes wide gaps that hide the rows' shape.
    const sections: Block[][] = [];
    let prev = -Infinity;
    for (const b of whole) {
      const width = printer.roleList(b.decl as GrantDecl).length;
      if (Math.abs(width - prev) > GRANT_SECTION_JUMP) sections.push([]);
      sections.at(-1)!.push(b);
      prev = width;
    }
    for (const run of sections) alignGrantSection(run, printer);
  }
}

function alignGrantSection(run: Block[], printer: Printer): void {
  {
    const decls = run.map((b) => b.decl as GrantDecl);
    const roles = decls.reduce((m, d) => Math.max(m, printer.roleList(d).length), 0);
    const duty = decls.some((d) => d.when || d.until) ? decls.reduce((m, d) => Math.max(m, d.duty.text.length), 0) : 0;
    run.forEach((b, i) => (b.lines = [printer.grantLine(decls[i]!, roles, duty)]));
  }
}

const quote = (s: string) => `"${s.replace(/[\\"\n\t]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : "\\" + c))}"`;

/** Prints declarations and expressions of one source (it knows where its parentheses were). */
class Printer {
  constructor(private readonly text: string, private readonly parens: ReadonlyMap<number, number>) {}

  /** A declaration's lines; an annotation (`@id("…")`) on a line of its own above it. */
  declaration(d: Declaration, comments: readonly Comment[]): string[] {
    const body = this.body(d, comments);
    return d.annotation ? [`@${d.annotation.name.text}(${quote(d.annotation.value.text)})`, ...body] : body;
  }

  private body(d: Declaration, comments: readonly Comment[]): string[] {
    switch (d.kind) {
      case "principal": return this.principal(d, comments);
      case "role": return fill("role ", d.names.map((n) => n.text), d.channel ? ` channel ${d.channel.text}` : "");
      case "upstream": return fill("upstream ", d.names.map((n) => n.text), "");
      case "enum": return fill(`enum ${d.name.text} { `, d.values.map((n) => n.text), " }");
      case "duty": return [this.duty(d, [0, 0, 0])];
      case "grant": {
        const one = this.grantLine(d, 0, 0);
        if (one.length <= MAX_WIDTH) return [one];
        const lines = [`grant ${this.roleList(d)} ${d.duty.text}`];
        if (d.when) lines.push(...this.condition(d.when, INDENT + "when ", INDENT + INDENT));
        if (d.until) lines.push(`${INDENT}until ${d.until.text}`);
        return lines;
      }
      case "forbid": {
        const head = `forbid ${d.duties ? d.duties.map((n) => n.text).join(", ") : "*"}`;
        const until = d.until ? ` until ${d.until.text}` : "";
        const one = `${head} when ${this.expr(d.when)}${until}`;
        if (one.length <= MAX_WIDTH) return [one];
        return [head, ...this.condition(d.when, INDENT + "when ", INDENT + INDENT), ...(d.until ? [`${INDENT}until ${d.until.text}`] : [])];
      }
      case "exclusive": return fill(`exclusive ${d.atLeast ? `${d.atLeast.value} of ` : ""}`, d.roles.map((n) => n.text), "");
      case "condition": return this.condition(d.body, `condition ${d.name.text} = `, INDENT);
      case "group": return fill(`group ${d.name.text} = `, d.members.map((n) => n.text), "");
      case "separate": return fill("separate ", d.duties.map((n) => n.text), ` by ${d.params.map((n) => n.text).join(", ")}`);
    }
  }

  principal(d: Extract<Declaration, { kind: "principal" }>, comments: readonly Comment[]): string[] {
    const open = this.text.indexOf("{", d.span.start) + 1;
    const close = d.span.end - 1;
    const attrs = d.attrs.map((a) => ({ start: a.name.span.start, end: a.type.span.end, kind: "attr", decl: null, attr: a }));
    // A comment between `principal` and `{`, or inside an attribute, keeps the block as written.
    if (comments.some((c) => c.start < open || attrs.some((a) => c.start > a.start && c.start < a.end))) return verbatim(this.text, d.span.start, d.span.end);
    if (attrs.length === 0 && !comments.length) return ["principal {}"];
    const printAttr = new Map(attrs.map((a) => [a.start, `${a.attr.name.text}${a.attr.optional ? "?" : ""}: ${typeText(a.attr.type)}`]));
    const body = arrange(this.text, attrs, comments, open, (e) => [printAttr.get(e.start)!], close);
    // A comment right after `{` on its line trails the opening line.
    let head = "principal {";
    const first = body[0];
    if (first && first.kind === "comment" && !this.text.slice(open, first.start).includes("\n")) {
      head += "  " + first.lines[0];
      body.shift();
      if (body[0]) body[0].blankBefore = false;
    }
    if (body[0]) body[0].blankBefore = false;
    return [head, ...render(body, INDENT), "}"];
  }

  duty(d: DutyDecl, widths: readonly number[]): string {
    const cols = [d.name.text.padEnd(widths[0]!), d.method.text.padEnd(widths[1]!), d.pattern.text.padEnd(widths[2]!)];
    return `duty ${cols.join(" ")} -> ${d.upstream.text}${d.channel ? ` channel ${d.channel.text}` : ""}`;
  }

  roleList(d: GrantDecl): string {
    return d.roles.map((n) => n.text).join(", ");
  }

  grantLine(d: GrantDecl, rolesWidth: number, dutyWidth: number): string {
    const tail = [d.when ? `when ${this.expr(d.when)}` : "", d.until ? `until ${d.until.text}` : ""].filter(Boolean).join(" ");
    const head = `grant ${this.roleList(d).padEnd(rolesWidth)} ${tail ? d.duty.text.padEnd(dutyWidth) : d.duty.text}`;
    return tail ? `${head} ${tail}` : head;
  }

  /**
   * A condition over lines: `head` and the expression if it fits, else its top-level `or` (or
   * `and`) chain one operand per line, continuation lines at `cont`; a first operand that is
   * itself too long breaks with a deeper indent, so the nesting stays visible.
   */
  condition(e: Expr, head: string, cont: string): string[] {
    const flat = head + this.expr(e);
    const chain = this.chain(e);
    if (flat.length <= MAX_WIDTH || !chain) return [flat];
    const lines = this.condition(chain.operands[0]!, head, cont + INDENT);
    for (const operand of chain.operands.slice(1)) lines.push(...this.condition(operand, `${cont}${chain.op} `, cont + INDENT));
    return lines;
  }

  /** The operands of an unparenthesised `a or b or c` (or `and`) chain, left to right. */
  private chain(e: Expr): { op: "and" | "or"; operands: Expr[] } | null {
    if (e.kind !== "binary" || (e.op !== "and" && e.op !== "or") || this.parenthesised(e)) return null;
    const operands: Expr[] = [];
    let cur: Expr = e;
    while (cur.kind === "binary" && cur.op === e.op && !this.parenthesised(cur)) {
      operands.unshift(cur.right);
      cur = cur.left;
    }
    operands.unshift(cur);
    return { op: e.op, operands };
  }

  /** Whether the source wrote parentheses around exactly this expression. */
  private parenthesised(e: Expr): boolean {
    return this.parens.get(e.span.start) === e.span.end - 1;
  }

  /** Printed expressions: a grant's condition is printed again when its run is aligned. */
  private readonly printed = new Map<Expr, string>();

  expr(e: Expr): string {
    let s = this.printed.get(e);
    if (s === undefined) {
      s = this.bare(e);
      if (this.parenthesised(e)) s = `(${s})`;
      this.printed.set(e, s);
    }
    return s;
  }

  private bare(e: Expr): string {
    switch (e.kind) {
      case "string": return quote(e.value);
      case "int": return String(e.value);
      case "bool": return String(e.value);
      case "duration": case "datetime": case "cidr": case "ip": return e.text;
      case "set": return `[${e.items.map((i) => this.expr(i)).join(", ")}]`;
      case "call": return `${e.fn.text}(${quote(e.arg)})`;
      case "apply": return `${e.fn.text}(${this.expr(e.arg)})`;
      case "ref": return e.head.text + e.members.map((m) => (m.quoted ? `[${quote(m.name)}]` : `.${m.name}`)).join("");
      case "not": return `not ${this.expr(e.operand)}`;
      case "neg": return `-${this.expr(e.operand)}`;
      case "binary": return `${this.expr(e.left)} ${e.op} ${this.expr(e.right)}`;
    }
  }
}

function typeText(t: TypeRef): string {
  return t.kind === "set" ? `set<${typeText(t.of)}>` : t.name.text;
}

/** `prefix a, b, c suffix` on one line, or filled over lines of MAX_WIDTH, continued indented. */
function fill(prefix: string, names: readonly string[], suffix: string): string[] {
  const one = prefix + names.join(", ") + suffix;
  if (one.length <= MAX_WIDTH) return [one];
  const lines: string[] = [];
  let line = prefix;
  names.forEach((n, i) => {
    const piece = n + (i < names.length - 1 ? "," : suffix);
    const sep = line === prefix || line === INDENT ? "" : " ";
    if (line !== prefix && line !== INDENT && (line + sep + piece).length > MAX_WIDTH) {
      lines.push(line);
      line = INDENT + piece;
    } else line += sep + piece;
  });
  lines.push(line);
  return lines;
}
