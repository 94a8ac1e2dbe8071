// Patterns of `matches`: a small regular-expression language compiled to a Thompson NFA and run
// without backtracking, so matching costs O(length of input × size of pattern) whatever the
// pattern and the input (no ReDoS: `(a+)+$` on "aaaa…b" is as cheap as `a`). Features that need
// backtracking (backreferences, lookaround) or that a full-string match makes meaningless
// (`\b`, anchors inside the pattern) are refused when the policy is checked.
//
// Supported: literals, `.`, `[…]` / `[^…]` with ranges, `\d \w \s` (and `\D \W \S`), escapes of
// punctuation, `\n \t`, groups `(…)` and `(?:…)`, `|`, `* + ?`, `{n}` `{n,}` `{n,m}` (n, m ≤ 100;
// a lazy `?` suffix is accepted and changes nothing), a leading `^` and a trailing `$` (the
// pattern is anchored at both ends anyway). Characters are Unicode code points.

/** One NFA state: consume a character of a set, split two ways, or accept. */
export type RegexState =
  | { t: "set"; ranges: number[]; neg: boolean; out: number }
  | { t: "split"; out: number; out2: number }
  | { t: "match" };

/** A checked pattern, plain data: the NFA's states and its start state. */
export interface RegexProgram {
  source: string;
  states: RegexState[];
  start: number;
}

export type RegexParse = { ok: true; program: RegexProgram } | { ok: false; message: string; offset: number; help?: string };

/** Limits that keep a pattern's NFA small: repeat counts, and states in all. */
const MAX_REPEAT = 100;
const MAX_STATES = 10_000;

type Node =
  | { k: "set"; ranges: number[]; neg: boolean }
  | { k: "cat"; items: Node[] }
  | { k: "alt"; items: Node[] }
  | { k: "rep"; node: Node; min: number; max: number };

const DIGIT = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE = [0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
const ANY = { k: "set" as const, ranges: [], neg: true };

class RegexError extends Error {
  constructor(message: string, readonly offset: number, readonly help?: string) {
    super(message);
  }
}

/** Parses and compiles a `matches` pattern, or says what is wrong with it and where. */
export function parseRegex(source: string): RegexParse {
  try {
    const chars = [...source];
    // Offsets in the message are in code points; `at` maps them back to UTF-16 for spans.
    let pos = 0;
    const fail = (message: string, help?: string, at = pos): never => {
      throw new RegexError(message, chars.slice(0, at).join("").length, help);
    };
    const peek = () => chars[pos];
    const cp = (c: string) => c.codePointAt(0)!;
    if (peek() === "^") pos++;
    const classEscape = (c: string): Node | null => {
      switch (c) {
        case "d": return { k: "set", ranges: DIGIT, neg: false };
        case "D": return { k: "set", ranges: DIGIT, neg: true };
        case "w": return { k: "set", ranges: WORD, neg: false };
        case "W": return { k: "set", ranges: WORD, neg: true };
        case "s": return { k: "set", ranges: SPACE, neg: false };
        case "S": return { k: "set", ranges: SPACE, neg: true };
      }
      return null;
    };
    /** The character an escape stands for, after the backslash at pos - 1. */
    const escapedChar = (): number => {
      const c = chars[pos];
      if (c === undefined) return fail("the pattern ends with a lone `\\`");
      pos++;
      if (/[1-9]/.test(c) || c === "k") return fail(`backreference \`\\${c}\` is not supported`, "patterns run on a linear-time engine, which cannot match backreferences", pos - 2);
      if (c === "b" || c === "B") return fail(`\`\\${c}\` is not supported`, "the pattern matches the whole string; spell the boundary out, e.g. `(/.*)?`", pos - 2);
      if (c === "n") return 0x0a;
      if (c === "t") return 0x09;
      if (c === "r") return 0x0d;
      if (/[\\^$.|?*+()[\]{}/\-,:=!<>#&~"'@%`;_ ]/.test(c)) return cp(c);
      return fail(`unknown escape \`\\${c}\``, "escape only punctuation (`\\.`), or use `\\d`, `\\w`, `\\s`, `\\n`, `\\t`", pos - 2);
    };
    const parseClass = (): Node => {
      // At "[": a set of single characters, ranges and class escapes.
      const open = pos++;
      const neg = peek() === "^";
      if (neg) pos++;
      const ranges: number[] = [];
      const negatedParts: number[][] = [];
      let first = true;
      for (;;) {
        const c = peek();
        if (c === undefined) return fail("`[` is never closed", undefined, open);
        if (c === "]" && !first) { pos++; break; }
        first = false;
        let lo: number;
        if (c === "\\") {
          pos++;
          const cls = chars[pos] !== undefined ? classEscape(chars[pos]!) : null;
          if (cls && cls.k === "set") {
            pos++;
            if (cls.neg) negatedParts.push(cls.ranges);
            else ranges.push(...cls.ranges);
            continue;
          }
          lo = escapedChar();
        } else {
          if (c === "[" && chars[pos + 1] === ":") return fail("POSIX classes like `[:alpha:]` are not supported", "use ranges: `[A-Za-z]`");
          lo = cp(c);
          pos++;
        }
        let hi = lo;
        if (peek() === "-" && chars[pos + 1] !== undefined && chars[pos + 1] !== "]") {
          pos++;
          const d = peek()!;
          if (d === "\\") { pos++; hi = escapedChar(); }
          else { hi = cp(d); pos++; }
          if (hi < lo) return fail(`range \`${String.fromCodePoint(lo)}-${String.fromCodePoint(hi)}\` is out of order`, undefined, pos - 3);
        }
        ranges.push(lo, hi);
      }
      if (negatedParts.length) {
        // `[\D]`, `[a\W]`: the union with a complement is a complement of what is left.
        if (negatedParts.length > 1 || ranges.length) return fail("a class may not mix `\\D`, `\\W` or `\\S` with other members", undefined, open);
        return { k: "set", ranges: negatedParts[0]!, neg: !neg };
      }
      return { k: "set", ranges, neg };
    };
    const parseAtom = (): Node => {
      const c = peek()!;
      if (c === "(") {
        const open = pos++;
        if (peek() === "?") {
          if (chars[pos + 1] === ":") pos += 2;
          else {
            const behind = chars[pos + 1] === "<" && (chars[pos + 2] === "=" || chars[pos + 2] === "!");
            const kind = chars[pos + 1] === "=" || chars[pos + 1] === "!" || behind ? "lookaround" : "this group syntax";
            return fail(`${kind} \`${chars.slice(open, open + (behind ? 4 : 3)).join("")}\` is not supported`, kind === "lookaround" ? "patterns run on a linear-time engine, which cannot look around; match the text itself, or combine conditions with `and not`" : "groups are `(…)` and `(?:…)`", open);
          }
        }
        const inner = parseAlt();
        if (peek() !== ")") return fail("`(` is never closed", undefined, open);
        pos++;
        return inner;
      }
      if (c === "[") return parseClass();
      if (c === ".") { pos++; return ANY; }
      if (c === "\\") {
        pos++;
        const cls = chars[pos] !== undefined ? classEscape(chars[pos]!) : null;
        if (cls) { pos++; return cls; }
        const ch = escapedChar();
        return { k: "set", ranges: [ch, ch], neg: false };
      }
      if (c === "^") return fail("`^` is only allowed at the start", "the pattern is anchored at both ends already; to match a literal `^` write `\\^`");
      if (c === "$") return fail("`$` is only allowed at the end", "the pattern is anchored at both ends already; to match a literal `$` write `\\$`");
      if (c === "*" || c === "+" || c === "?" || c === "{") return fail(`\`${c}\` has nothing to repeat`, "escape it to match it: `\\" + c + "`");
      if (c === ")") return fail("`)` has no `(`", "escape it to match it: `\\)`");
      if (c === "]" || c === "}") return fail(`unescaped \`${c}\``, "escape it to match it: `\\" + c + "`");
      pos++;
      return { k: "set", ranges: [cp(c), cp(c)], neg: false };
    };
    const number = (): number | null => {
      let text = "";
      while (peek() !== undefined && /[0-9]/.test(peek()!)) text += chars[pos++];
      return text === "" ? null : Number(text);
    };
    const parseRepeat = (): Node => {
      let node = parseAtom();
      for (;;) {
        const c = peek();
        let min: number, max: number;
        const at = pos;
        if (c === "*") { min = 0; max = Infinity; pos++; }
        else if (c === "+") { min = 1; max = Infinity; pos++; }
        else if (c === "?") { min = 0; max = 1; pos++; }
        else if (c === "{") {
          pos++;
          const lo = number();
          if (lo === null) return fail("`{` must start a repeat count like `{2,5}`", "escape it to match it: `\\{`", at);
          let hi: number | null = lo;
          if (peek() === ",") { pos++; hi = number() ?? Infinity; }
          if (peek() !== "}") return fail("a repeat count is `{n}`, `{n,}` or `{n,m}`", undefined, at);
          pos++;
          if (lo > MAX_REPEAT || (hi !== Infinity && hi > MAX_REPEAT)) return fail(`repeat counts are at most ${MAX_REPEAT}`, undefined, at);
          if (hi < lo) return fail(`repeat \`{${lo},${hi}}\` is out of order`, undefined, at);
          min = lo; max = hi;
        } else return node;
        if (peek() === "?") pos++; // lazy: the same strings match
        else if (peek() === "+") return fail("possessive quantifiers are not supported", undefined, pos);
        node = { k: "rep", node, min, max };
      }
    };
    const parseCat = (): Node => {
      const items: Node[] = [];
      while (peek() !== undefined && peek() !== "|" && peek() !== ")") {
        if (peek() === "$" && pos === chars.length - 1) break;
        items.push(parseRepeat());
      }
      return { k: "cat", items };
    };
    function parseAlt(): Node {
      const items = [parseCat()];
      while (peek() === "|") { pos++; items.push(parseCat()); }
      return items.length === 1 ? items[0]! : { k: "alt", items };
    }
    const tree = parseAlt();
    if (peek() === "$" && pos === chars.length - 1) pos++;
    if (peek() === ")") fail("`)` has no `(`", "escape it to match it: `\\)`");
    if (pos !== chars.length) fail("unexpected character");
    return { ok: true, program: compileNfa(source, tree) };
  } catch (e) {
    if (e instanceof RegexError) return { ok: false, message: e.message, offset: e.offset, help: e.help };
    throw e;
  }
}

/** Thompson's construction: each node becomes a fragment with a start and dangling exits. */
function compileNfa(source: string, tree: Node): RegexProgram {
  const states: RegexState[] = [];
  const add = (s: RegexState): number => {
    if (states.length >= MAX_STATES) throw new RegexError(`the pattern is too large (over ${MAX_STATES} states once its repeats are expanded)`, 0, "use smaller repeat counts");
    states.push(s);
    return states.length - 1;
  };
  // A fragment: its start state, and the states whose `out` (or `out2`) must be patched.
  interface Frag { start: number; exits: Array<[number, "out" | "out2"]> }
  const patch = (exits: Frag["exits"], to: number) => {
    for (const [s, field] of exits) (states[s] as { out: number; out2: number })[field] = to;
  };
  const build = (n: Node): Frag => {
    switch (n.k) {
      case "set": {
        const s = add({ t: "set", ranges: n.ranges, neg: n.neg, out: -1 });
        return { start: s, exits: [[s, "out"]] };
      }
      case "cat": {
        if (n.items.length === 0) {
          // The empty string: a split whose both ways lead on.
          const s = add({ t: "split", out: -1, out2: -1 });
          return { start: s, exits: [[s, "out"], [s, "out2"]] };
        }
        const frags = n.items.map(build);
        for (let i = 0; i < frags.length - 1; i++) patch(frags[i]!.exits, frags[i + 1]!.start);
        return { start: frags[0]!.start, exits: frags.at(-1)!.exits };
      }
      case "alt": {
        const frags = n.items.map(build);
        let start = frags.at(-1)!.start;
        for (let i = frags.length - 2; i >= 0; i--) start = add({ t: "split", out: frags[i]!.start, out2: start });
        return { start, exits: frags.flatMap((f) => f.exits) };
      }
      case "rep": {
        const parts: Node[] = [];
        for (let i = 0; i < n.min; i++) parts.push(n.node);
        if (n.max === Infinity) {
          // x* : a split that loops back through x.
          const body = build(n.node);
          const loop = add({ t: "split", out: body.start, out2: -1 });
          patch(body.exits, loop);
          const star: Frag = { start: loop, exits: [[loop, "out2"]] };
          if (parts.length === 0) return star;
          const head = build({ k: "cat", items: parts });
          patch(head.exits, star.start);
          return { start: head.start, exits: star.exits };
        }
        // x{min,max}: min copies, then max - min optional ones.
        let frag: Frag | null = parts.length ? build({ k: "cat", items: parts }) : null;
        for (let i = n.min; i < n.max; i++) {
          const body = build(n.node);
          const opt = add({ t: "split", out: body.start, out2: -1 });
          const f: Frag = { start: opt, exits: [...body.exits, [opt, "out2"]] };
          if (frag) { patch(frag.exits, f.start); frag = { start: frag.start, exits: f.exits }; }
          else frag = f;
        }
        return frag ?? build({ k: "cat", items: [] });
      }
    }
  };
  const frag = build(tree);
  const match = add({ t: "match" });
  patch(frag.exits, match);
  return { source, states, start: frag.start };
}

function inSet(s: Extract<RegexState, { t: "set" }>, c: number): boolean {
  let hit = false;
  for (let i = 0; i < s.ranges.length; i += 2) if (c >= s.ranges[i]! && c <= s.ranges[i + 1]!) { hit = true; break; }
  return hit !== s.neg;
}

/** Adds `s` and every state reachable from it without consuming a character. */
function closure(p: RegexProgram, s: number, into: Set<number>): void {
  if (into.has(s)) return;
  into.add(s);
  const st = p.states[s]!;
  if (st.t === "split") {
    closure(p, st.out, into);
    closure(p, st.out2, into);
  }
}

function step(p: RegexProgram, current: ReadonlySet<number>, c: number): Set<number> {
  const next = new Set<number>();
  for (const s of current) {
    const st = p.states[s]!;
    if (st.t === "set" && inSet(st, c)) closure(p, st.out, next);
  }
  return next;
}

function accepts(p: RegexProgram, set: ReadonlySet<number>): boolean {
  for (const s of set) if (p.states[s]!.t === "match") return true;
  return false;
}

/**
 * Whether the whole of `input` matches, by simulating the NFA on the set of current states: the
 * plain reference the compiled matcher is checked against.
 */
export function regexMatches(p: RegexProgram, input: string): boolean {
  let current = new Set<number>();
  closure(p, p.start, current);
  for (const ch of input) {
    current = step(p, current, ch.codePointAt(0)!);
    if (current.size === 0) return false;
  }
  return accepts(p, current);
}

interface DfaState {
  accept: boolean;
  /** Transitions on ASCII characters, filled as they are met. */
  ascii: Array<DfaState | undefined>;
  other: Map<number, DfaState>;
  nfa: ReadonlySet<number>;
  /** In the cache: only transitions between kept states are stored. */
  kept: boolean;
}

/** DFA states kept per pattern; beyond that new states are built per call and not kept. */
const MAX_DFA_STATES = 2_000;

/**
 * The same language as `regexMatches`, as a DFA built lazily from the NFA's state sets: each
 * input character costs one table lookup once its state is known; never backtracks.
 */
export function compileRegexMatcher(p: RegexProgram): (input: string) => boolean {
  const cache = new Map<string, DfaState>();
  const stateOf = (set: Set<number>): DfaState => {
    const key = [...set].sort((a, b) => a - b).join(",");
    let d = cache.get(key);
    if (d === undefined) {
      const kept = cache.size < MAX_DFA_STATES;
      d = { accept: accepts(p, set), ascii: new Array(128), other: new Map(), nfa: set, kept };
      if (kept) cache.set(key, d);
    }
    return d;
  };
  const initial = new Set<number>();
  closure(p, p.start, initial);
  const start = stateOf(initial);
  return (input) => {
    let d = start;
    for (let i = 0; i < input.length; i++) {
      let c = input.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < input.length) {
        const lo = input.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00); i++; }
      }
      let next = c < 128 ? d.ascii[c] : d.other.get(c);
      if (next === undefined) {
        next = stateOf(step(p, d.nfa, c));
        if (d.kept && next.kept) {
          if (c < 128) d.ascii[c] = next;
          else if (d.other.size < 256) d.other.set(c, next);
        }
      }
      if (next.nfa.size === 0) return false;
      d = next;
    }
    return d.accept;
  };
}
