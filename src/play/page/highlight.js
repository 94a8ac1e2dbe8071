// Highlighting of `.duty` text with the TextMate grammar of the editor extension
// (editors/vscode/syntaxes/duty.tmLanguage.json), without a TextMate engine: the grammar is a
// flat list of single-line `match` rules whose regular expressions mean the same in JavaScript
// and in Oniguruma, so scanning each line for the earliest match (the first rule wins a tie) is
// what a TextMate engine does with it. editors/vscode/test/grammar.test.ts checks that both
// agree on every line of the shipped policies. Plain JavaScript: the playground page loads this
// file as it is, and the tests import it.

/**
 * Compiles the grammar's rules; throws on a rule this scanner cannot run (`begin`/`end`,
 * `include`), so that a grammar change the page would silently misread fails the tests.
 * @param {{scopeName: string, patterns: Array<{name?: string, match?: string, captures?: Record<string, {name: string}>}>}} grammar
 */
export function compileGrammar(grammar) {
  const rules = grammar.patterns.map((p, i) => {
    if (typeof p.match !== "string") throw new Error(`grammar rule ${i} is not a single-line \`match\` rule`);
    return { re: new RegExp(p.match, "dg"), name: p.name ?? null, captures: p.captures ?? null };
  });
  return { scopeName: grammar.scopeName, rules };
}

/**
 * The tokens of one line (no line break), covering it whole: `{start, end, scopes}` with the
 * grammar's root scope first, adjacent tokens of equal scopes merged.
 */
export function tokenizeLine(compiled, line) {
  const root = compiled.scopeName;
  const out = [];
  const push = (start, end, scopes) => {
    if (end <= start) return;
    const last = out[out.length - 1];
    if (last && last.end === start && last.scopes.join(" ") === scopes.join(" ")) last.end = end;
    else out.push({ start, end, scopes });
  };
  let pos = 0;
  while (pos < line.length) {
    let best = null;
    for (const rule of compiled.rules) {
      rule.re.lastIndex = pos;
      const m = rule.re.exec(line);
      if (m && m[0].length > 0 && (!best || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) break;
    const { rule, m } = best;
    const start = m.index, end = start + m[0].length;
    push(pos, start, [root]);
    const outer = rule.name ? [root, rule.name] : [root];
    if (!rule.captures) {
      push(start, end, outer);
    } else {
      let at = start;
      for (let g = 1; g < m.length; g++) {
        const cap = rule.captures[String(g)];
        const range = m.indices[g];
        if (!cap || !range) continue;
        push(at, range[0], outer);
        push(range[0], range[1], [...outer, cap.name]);
        at = range[1];
      }
      push(at, end, outer);
    }
    pos = end;
  }
  push(pos, line.length, [root]);
  return out;
}

const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The CSS class of a token: its most specific scope, dots as dashes (`tok-keyword-control-duty`). */
export function scopeClass(scopes) {
  return scopes.length > 1 ? "tok-" + scopes[scopes.length - 1].replace(/\.duty$/, "").replace(/\./g, "-") : "";
}

/** HTML of a whole text, one `<span class="tok-…">` per scoped token; line breaks kept. */
export function highlightHtml(compiled, text) {
  return text.split("\n").map((line) => tokenizeLine(compiled, line).map((t) => {
    const cls = scopeClass(t.scopes);
    const body = escapeHtml(line.slice(t.start, t.end));
    return cls ? `<span class="${cls}">${body}</span>` : body;
  }).join("")).join("\n");
}
