// Finds where keys sit in TOML text, so validation errors (which work on the parsed value)
// can point at `file:line:col`. A line scanner, not a parser: it understands table headers,
// arrays of tables and (dotted) keys, and skips multi-line strings; keys inside inline tables
// fall back to the key that holds the inline table.

/** A 1-based position in the config file. */
export interface SourcePosition {
  line: number;
  col: number;
}

/** One segment of a key path: a table key or an array index. */
export type KeySegment = string | number;

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/**
 * Renders a key path the way errors name it: `upstreams.changes.url`, `listen.sni[0].cert`,
 * `listen.identities."spiffe://example.org/sa/ci".roles`.
 */
export function formatKeyPath(segments: readonly KeySegment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += (out === "" ? "" : ".") + (BARE_KEY.test(segment) ? segment : JSON.stringify(segment));
  }
  return out;
}

/** Splits a header or dotted key (`a."b.c".d`) into its keys, each with its column offset. */
function splitDottedKey(text: string): { key: string; offset: number }[] | null {
  const keys: { key: string; offset: number }[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === " " || text[i] === "\t") i++;
    const start = i;
    let key: string;
    const quote = text[i];
    if (quote === '"' || quote === "'") {
      const end = text.indexOf(quote, i + 1);
      if (end < 0) return null;
      const raw = text.slice(i, end + 1);
      try { key = quote === '"' ? JSON.parse(raw) : raw.slice(1, -1); } catch { key = raw.slice(1, -1); }
      i = end + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i));
      if (!m) return null;
      key = m[0];
      i += key.length;
    }
    keys.push({ key, offset: start });
    while (text[i] === " " || text[i] === "\t") i++;
    if (i >= text.length) break;
    if (text[i] !== ".") return null;
    i++;
  }
  return keys.length > 0 ? keys : null;
}

/**
 * Maps every key path found in `text` (formatted with {@link formatKeyPath}) to its position.
 *
 * @example
 * locateKeys('[upstreams.changes]\nurl = "x"').get("upstreams.changes.url") // { line: 2, col: 1 }
 */
export function locateKeys(text: string): Map<string, SourcePosition> {
  const positions = new Map<string, SourcePosition>();
  const arrayCounts = new Map<string, number>();
  let prefix: KeySegment[] = [];
  let openMultiline: string | null = null;
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (openMultiline) {
      if (line.includes(openMultiline)) openMultiline = null;
      continue;
    }
    const header = /^(\s*)(\[\[?)(.*?)\]\]?\s*(#.*)?$/.exec(line);
    if (header) {
      const keys = splitDottedKey(header[3]!);
      if (!keys) continue;
      const segments: KeySegment[] = keys.map((k) => k.key);
      const col = header[1]!.length + header[2]!.length + keys[0]!.offset + 1;
      if (header[2] === "[[") {
        const arrayPath = formatKeyPath(segments);
        const n = arrayCounts.get(arrayPath) ?? 0;
        arrayCounts.set(arrayPath, n + 1);
        segments.push(n);
      }
      prefix = segments;
      // `[a.b.c]` also defines `a` and `a.b` implicitly: errors about those point here too.
      for (let n = 1; n <= prefix.length; n++) {
        const path = formatKeyPath(prefix.slice(0, n));
        if (!positions.has(path)) positions.set(path, { line: index + 1, col });
      }
      continue;
    }
    const assignment = /^(\s*)([^=#]+?)\s*=(.*)$/.exec(line);
    if (!assignment) continue;
    const keys = splitDottedKey(assignment[2]!);
    if (!keys) continue;
    for (let k = 1; k <= keys.length; k++) {
      const path = formatKeyPath([...prefix, ...keys.slice(0, k).map((x) => x.key)]);
      if (!positions.has(path)) positions.set(path, { line: index + 1, col: assignment[1]!.length + keys[k - 1]!.offset + 1 });
    }
    const value = assignment[3]!;
    for (const delimiter of ['"""', "'''"]) {
      const count = value.split(delimiter).length - 1;
      if (count % 2 === 1) openMultiline = delimiter;
    }
  }
  return positions;
}

/** The position of `path`, or of its closest enclosing key that was found in the text. */
export function positionOf(positions: ReadonlyMap<string, SourcePosition>, segments: readonly KeySegment[]): SourcePosition | undefined {
  for (let n = segments.length; n > 0; n--) {
    const found = positions.get(formatKeyPath(segments.slice(0, n)));
    if (found) return found;
  }
  return undefined;
}
