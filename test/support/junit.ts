// A strict reader of the JUnit XML `gateway check --format junit` writes, for tests: a small
// well-formedness parser (mismatched tags, a bare `&` or `<`, a control character and a second
// root all throw) and the structure strict consumers expect (the Ant / Jenkins JUnit schema).

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(raw: string, where: number): string {
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/.test(raw)) throw new Error(`control character in XML at ${where}`);
  return raw.replace(/&([^;]*);|&|</g, (m, name: string | undefined) => {
    if (m === "&" || m === "<") throw new Error(`bare \`${m}\` in XML at ${where}`);
    if (name!.startsWith("#x")) return String.fromCodePoint(parseInt(name!.slice(2), 16));
    if (name!.startsWith("#")) return String.fromCodePoint(Number(name!.slice(1)));
    if (!(name! in ENTITIES)) throw new Error(`unknown entity &${name}; at ${where}`);
    return ENTITIES[name!]!;
  });
}

/** Parses one XML document (declaration, one root element); throws on anything malformed. */
export function parseXml(text: string): XmlElement {
  let i = 0;
  const declaration = /^<\?xml [^?]*\?>\s*/.exec(text);
  if (!declaration) throw new Error("no XML declaration");
  i = declaration[0].length;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  while (i < text.length) {
    if (text.startsWith("</", i)) {
      const m = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(text.slice(i));
      const open = stack.pop();
      if (!m || !open || open.name !== m[1]) throw new Error(`mismatched closing tag at ${i}`);
      i += m[0].length;
      continue;
    }
    if (text[i] === "<") {
      const m = /^<([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"]*")*)\s*(\/?)>/.exec(text.slice(i));
      if (!m) throw new Error(`malformed tag at ${i}: ${text.slice(i, i + 40)}`);
      const attributes: Record<string, string> = {};
      for (const a of m[2]!.matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)) {
        if (a[1]! in attributes) throw new Error(`duplicate attribute ${a[1]} at ${i}`);
        attributes[a[1]!] = decode(a[2]!, i);
      }
      const element: XmlElement = { name: m[1]!, attributes, children: [], text: "" };
      const parent = stack.at(-1);
      if (parent) parent.children.push(element);
      else if (root) throw new Error(`a second root element at ${i}`);
      else root = element;
      if (!m[3]) stack.push(element);
      i += m[0].length;
      continue;
    }
    const end = text.indexOf("<", i);
    const chunk = text.slice(i, end < 0 ? text.length : end);
    const parent = stack.at(-1);
    if (parent) parent.text += decode(chunk, i);
    else if (chunk.trim() !== "") throw new Error(`text outside the root element at ${i}`);
    i += chunk.length;
  }
  if (stack.length || !root) throw new Error("unclosed element at the end of the document");
  return root;
}

/** What a JUnit report counts, read from the document after checking its structure. */
export interface JunitSummary {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  /** Every test case as `suite / name: outcome`. */
  cases: Array<{ suite: string; classname: string; name: string; outcome: "passed" | "failure" | "error" | "skipped"; message: string | null; body: string }>;
  root: XmlElement;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;
const COUNT = /^\d+$/;
const TIME = /^\d+(\.\d+)?$/;

/**
 * Checks `text` as strict JUnit consumers do and returns its counts: a `testsuites` root whose
 * `tests`/`failures`/`errors`/`skipped` are the sums of its suites', each `testsuite` with `name`,
 * `timestamp` (no zone, as the schema's pattern), `time` and counts equal to its test cases, each
 * `testcase` with `classname`, `name` and `time`, and at most one `failure`, `error` or `skipped`
 * (the first two with a `message` and a `type`). Throws naming the first deviation.
 */
export function readJunit(text: string): JunitSummary {
  const root = parseXml(text);
  const need = (e: XmlElement, name: string, pattern?: RegExp) => {
    const v = e.attributes[name];
    if (v === undefined) throw new Error(`<${e.name}> without \`${name}\``);
    if (pattern && !pattern.test(v)) throw new Error(`<${e.name} ${name}="${v}"> is not ${pattern}`);
    return v;
  };
  if (root.name !== "testsuites") throw new Error(`root is <${root.name}>, not <testsuites>`);
  const summary: JunitSummary = { tests: 0, failures: 0, errors: 0, skipped: 0, cases: [], root };
  for (const suite of root.children) {
    if (suite.name !== "testsuite") throw new Error(`<${suite.name}> inside <testsuites>`);
    const suiteName = need(suite, "name");
    need(suite, "timestamp", TIMESTAMP);
    need(suite, "time", TIME);
    const counted = { tests: 0, failures: 0, errors: 0, skipped: 0 };
    for (const child of suite.children) {
      if (child.name === "properties") {
        for (const p of child.children) if (p.name !== "property" || !("name" in p.attributes) || !("value" in p.attributes)) throw new Error("a malformed <property>");
        continue;
      }
      if (child.name !== "testcase") throw new Error(`<${child.name}> inside <testsuite>`);
      need(child, "classname");
      const name = need(child, "name");
      need(child, "time", TIME);
      if (child.children.length > 1) throw new Error(`test case \`${name}\` has ${child.children.length} outcomes`);
      const outcome = child.children[0];
      if (outcome && !["failure", "error", "skipped"].includes(outcome.name)) throw new Error(`<${outcome.name}> inside <testcase>`);
      if (outcome && outcome.name !== "skipped") { need(outcome, "message"); need(outcome, "type"); }
      counted.tests++;
      if (outcome?.name === "failure") counted.failures++;
      if (outcome?.name === "error") counted.errors++;
      if (outcome?.name === "skipped") counted.skipped++;
      summary.cases.push({ suite: suiteName, classname: child.attributes.classname!, name, outcome: (outcome?.name ?? "passed") as JunitSummary["cases"][number]["outcome"], message: outcome?.attributes.message ?? null, body: outcome?.text ?? "" });
    }
    for (const key of ["tests", "failures", "errors", "skipped"] as const) {
      if (Number(need(suite, key, COUNT)) !== counted[key]) throw new Error(`suite \`${suiteName}\`: ${key}="${suite.attributes[key]}" but ${counted[key]} test cases`);
      summary[key] += counted[key];
    }
  }
  for (const key of ["tests", "failures", "errors", "skipped"] as const) {
    if (Number(need(root, key, COUNT)) !== summary[key]) throw new Error(`<testsuites ${key}="${root.attributes[key]}"> but the suites count ${summary[key]}`);
  }
  need(root, "time", TIME);
  return summary;
}

/**
 * Reads one GitHub workflow command (`::error file=a%2Cb,line=3::message`) back into its parts,
 * undoing the escaping of the runner's toolkit; null for a line that is not one.
 */
export function parseGithubCommand(line: string): { command: string; properties: Record<string, string>; message: string } | null {
  const m = /^::([a-z]+)(?: ([^:]*))?::(.*)$/.exec(line);
  if (!m) return null;
  const unescape = (s: string) => s.replace(/%3A/g, ":").replace(/%2C/g, ",").replace(/%0D/g, "\r").replace(/%0A/g, "\n").replace(/%25/g, "%");
  const properties: Record<string, string> = {};
  for (const pair of (m[2] ?? "").split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq < 0) return null;
    properties[pair.slice(0, eq)] = unescape(pair.slice(eq + 1));
  }
  return { command: m[1]!, properties, message: unescape(m[3]!) };
}
