// A unified diff of two texts, line by line (`gateway fmt --diff`), in the format `patch` and
// `git apply` read: `--- a/FILE`, `+++ b/FILE`, `@@ -l,n +l,n @@` hunks with 3 lines of context.

const CONTEXT = 3;
/** Above this many cells the middle of the two texts is shown as one replaced block. */
const MAX_CELLS = 16_000_000;

type Op = { kind: " " | "-" | "+"; line: string };

/** The edit script from `a` to `b` (longest common subsequence, after trimming the common ends). */
function editScript(a: readonly string[], b: readonly string[]): Op[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const x = a.slice(pre, a.length - suf), y = b.slice(pre, b.length - suf);
  const middle: Op[] = [];
  if ((x.length + 1) * (y.length + 1) > MAX_CELLS) {
    middle.push(...x.map((line): Op => ({ kind: "-", line })), ...y.map((line): Op => ({ kind: "+", line })));
  } else {
    // lcs[i][j]: length of the LCS of x[i..] and y[j..], in one flat array.
    const w = y.length + 1;
    const lcs = new Uint32Array((x.length + 1) * w);
    for (let i = x.length - 1; i >= 0; i--) {
      for (let j = y.length - 1; j >= 0; j--) {
        lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
      }
    }
    let i = 0, j = 0;
    while (i < x.length || j < y.length) {
      if (i < x.length && j < y.length && x[i] === y[j]) { middle.push({ kind: " ", line: x[i]! }); i++; j++; }
      // Deletions before insertions, as `diff -u` shows a changed line.
      else if (i < x.length && (j === y.length || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) middle.push({ kind: "-", line: x[i++]! });
      else middle.push({ kind: "+", line: y[j++]! });
    }
  }
  return [
    ...a.slice(0, pre).map((line): Op => ({ kind: " ", line })),
    ...middle,
    ...a.slice(a.length - suf).map((line): Op => ({ kind: " ", line })),
  ];
}

/** A last line without its newline differs from the same line with one, as in `diff -u`. */
const NO_NEWLINE = "\n\\ No newline at end of file";

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  else lines[lines.length - 1] += NO_NEWLINE;
  return lines;
}

/**
 * The unified diff turning `before` into `after`, or "" when they are equal.
 * @example unifiedDiff("p.duty", "role  a\n", "role a\n") // "--- a/p.duty\n+++ b/p.duty\n@@ -1 +1 @@\n-role  a\n+role a\n"
 */
export function unifiedDiff(file: string, before: string, after: string): string {
  if (before === after) return "";
  const ops = editScript(splitLines(before), splitLines(after));
  const absolute = file.startsWith("/");
  const out = [`--- ${absolute ? "" : "a/"}${file}`, `+++ ${absolute ? "" : "b/"}${file}`];
  // Line numbers (1-based) in `before` and `after` of each op.
  const pos: Array<[number, number]> = [];
  let la = 1, lb = 1;
  for (const op of ops) {
    pos.push([la, lb]);
    if (op.kind !== "+") la++;
    if (op.kind !== "-") lb++;
  }
  const changed = ops.map((op, i) => (op.kind === " " ? -1 : i)).filter((i) => i >= 0);
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - CONTEXT);
    let end = changed[k]!;
    while (k < changed.length && changed[k]! - end <= 2 * CONTEXT) end = changed[k++]!;
    const stop = Math.min(ops.length, end + CONTEXT + 1);
    const hunk = ops.slice(start, stop);
    const countA = hunk.filter((o) => o.kind !== "+").length, countB = hunk.filter((o) => o.kind !== "-").length;
    const range = (first: number, count: number) => (count === 1 ? `${first}` : `${count === 0 ? first - 1 : first},${count}`);
    out.push(`@@ -${range(pos[start]![0], countA)} +${range(pos[start]![1], countB)} @@`);
    for (const o of hunk) out.push(o.kind + o.line);
  }
  return out.join("\n") + "\n";
}
