// The formatter: its layout case by case, and three properties over every policy in the
// repository (shipped, conformance, golden, generated) and over fuzzed ones — formatting keeps
// the meaning (same AST and same compiled decision trees, spans aside), keeps every comment in
// order, and is idempotent.
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { createRng, generatePolicy } from "../bench/gen-policy.ts";
import { mutateChars, mutateTokens } from "../test/fuzz/mutations.ts";
import { formatPolicySource, MAX_WIDTH } from "./format.ts";
import { compilePolicy, loadPolicy, parsePolicySource } from "./mod.ts";
import type { PolicySource } from "./mod.ts";

const ROOT = resolve(import.meta.dir, "..");
const NOW = Date.UTC(2026, 0, 1);
const fmt = (text: string) => formatPolicySource({ path: "t.duty", text }).text;

describe("layout", () => {
  const cases: Array<[string, string, string]> = [
    ["spacing and commas", "role   a,b ,c\nupstream x,y", "role a, b, c\nupstream x, y\n"],
    ["a role declaration's channel is kept", "role   a,b   channel   admin", "role a, b channel admin\n"],
    ["one declaration per line", "role a upstream u", "role a\nupstream u\n"],
    ["blank lines kept, several become one", "role a\n\n\n\nrole b\nrole c", "role a\n\nrole b\nrole c\n"],
    ["a duty table is aligned", "duty a GET /a -> u\nduty long_name POST /a/:id/approve -> u channel admin", "duty a         GET  /a             -> u\nduty long_name POST /a/:id/approve -> u channel admin\n"],
    ["a blank line ends the table", "duty a GET /a -> u\n\nduty long_name POST /b -> u", "duty a GET /a -> u\n\nduty long_name POST /b -> u\n"],
    ["grants are aligned", "grant a,b d1\ngrant c d_two when principal.mfa", "grant a, b d1\ngrant c    d_two when principal.mfa\n"],
    ["operators spaced, brackets tight", "forbid * when request.header[ \"x\" ]==\"1\"and not(principal.level>=2)", "forbid * when request.header[\"x\"] == \"1\" and not (principal.level >= 2)\n"],
    ["parentheses kept, doubled ones dropped", "forbid d when ((a or b)) and c", "forbid d when (a or b) and c\n"],
    ["sets and typed literals", "forbid d when request.ip in[ 10.0.0.0/8 ,cidr( \"fd00::/8\" ) ]", "forbid d when request.ip in [10.0.0.0/8, cidr(\"fd00::/8\")]\n"],
    ["principal one attribute per line", "principal { sub: string, roles: set< role >, mfa: bool }", "principal {\n  sub: string\n  roles: set<role>\n  mfa: bool\n}\n"],
    ["exclusive and separate", "exclusive 2 of a,b,c\nseparate s ,t by  change", "exclusive 2 of a, b, c\nseparate s, t by change\n"],
    ["separate by several params", "separate s ,t by  tenant ,invoice", "separate s, t by tenant, invoice\n"],
    ["a rule id on a line of its own, out of the grant table", "grant a d1\n@id( \"r-1\" ) grant b d2\ngrant c d3", "grant a d1\n@id(\"r-1\")\ngrant b d2\ngrant c d3\n"],
    ["rule ids on every rule kind", "@id(\"f\") forbid d when x\n@id(\"x\")exclusive a,b\n@id(\"s\") separate s,t by c", "@id(\"f\")\nforbid d when x\n@id(\"x\")\nexclusive a, b\n@id(\"s\")\nseparate s, t by c\n"],
    ["a named condition and a group", "condition  same_tenant=principal.team==request.param.t\ngroup  writes=a ,b", "condition same_tenant = principal.team == request.param.t\ngroup writes = a, b\n"],
    ["a method set stays tight in the duty table", "duty a GET|HEAD /a -> u\nduty bb POST /b -> u", "duty a  GET|HEAD /a -> u\nduty bb POST     /b -> u\n"],
    ["forbid … until", "forbid d when x   until 2026-12-31", "forbid d when x until 2026-12-31\n"],
    ["unary minus sits tight", "forbid d when principal.level >  - 3 and a - -1h > b", "forbid d when principal.level > -3 and a - -1h > b\n"],
    ["an optional attribute", "principal { sub: string, team ?: string }", "principal {\n  sub: string\n  team?: string\n}\n"],
    ["enum", "enum tier{gold,silver}", "enum tier { gold, silver }\n"],
    ["comments kept: own line, trailing, aligned, at the end", "# head\n\nrole a # the a\nrole bb   # the b\n# tail\n", "# head\n\nrole a   # the a\nrole bb  # the b\n# tail\n"],
    ["comments inside the principal block", "principal { # schema\n  sub: string # who\n\n  # roles\n  roles: set<role>\n}", "principal {  # schema\n  sub: string  # who\n\n  # roles\n  roles: set<role>\n}\n"],
    ["a comment inside a condition keeps the declaration's lines", "grant a d when x # why\n     and y", "grant a d when x # why\n     and y\n"],
    ["matches and lower()", "forbid d when lower( request.path )matches\"/x(/.*)?\"", "forbid d when lower(request.path) matches \"/x(/.*)?\"\n"],
    ["an empty file stays empty", "", ""],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      expect(fmt(input)).toBe(expected);
      expect(fmt(expected)).toBe(expected);
    });
  }

  test("a long condition breaks before its top-level `or`s, then its `and`s", () => {
    const cond = Array.from({ length: 6 }, (_, i) => `principal.team == "team_number_${i}" and principal.level > ${i}`).join(" or ");
    const out = fmt(`grant developer deploy_change when ${cond} until 2027-12-31`)!;
    expect(out).toBe([
      "grant developer deploy_change",
      "  when principal.team == \"team_number_0\" and principal.level > 0",
      ...Array.from({ length: 5 }, (_, i) => `    or principal.team == "team_number_${i + 1}" and principal.level > ${i + 1}`),
      "  until 2027-12-31",
      "",
    ].join("\n"));
    expect(fmt(out)).toBe(out);
  });

  test("a long list of names fills lines within the width", () => {
    const roles = Array.from({ length: 40 }, (_, i) => `role_number_${i}`);
    const out = fmt(`role ${roles.join(", ")}`)!;
    expect(out.split("\n").length).toBeGreaterThan(2);
    for (const line of out.trimEnd().split("\n")) expect(line.length).toBeLessThanOrEqual(MAX_WIDTH);
    expect(out.replace(/\s+/g, " ").trim()).toBe(`role ${roles.join(", ")}`);
  });

  test("unparsable input is not formatted: the parse diagnostics say why", () => {
    const r = formatPolicySource({ path: "bad.duty", text: "role a\ngrant a\n" });
    expect(r.text).toBeNull();
    expect(r.diagnostics.map((d) => d.code)).toEqual(["E_SYNTAX"]);
    const lexical = formatPolicySource({ path: "bad.duty", text: "role a $" });
    expect(lexical.text).toBeNull();
    expect(lexical.diagnostics.some((d) => d.severity === "error")).toBe(true);
  });
});

// --- properties over every policy in the repository ----------------------------------------------

/** The policies of the repository: shipped, conformance corpus, golden, generated. */
function repositoryPolicies(): Array<{ name: string; sources: PolicySource[]; now: number }> {
  const out: Array<{ name: string; sources: PolicySource[]; now: number }> = [];
  const dir = (d: string) => readdirSync(join(ROOT, d)).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(ROOT, d, f), "utf8") }));
  out.push({ name: "policies/", sources: dir("policies"), now: NOW });
  for (const f of readdirSync(join(ROOT, "test/conformance")).filter((f) => f.endsWith(".toml"))) {
    const doc = parseToml(readFileSync(join(ROOT, "test/conformance", f), "utf8")) as Record<string, unknown>;
    const now = doc.now instanceof Date ? doc.now.getTime() : typeof doc.now === "string" ? Date.parse(doc.now) : NOW;
    for (const [name, raw] of Object.entries((doc.policies ?? {}) as Record<string, { text?: string }>)) {
      if (typeof raw.text === "string") out.push({ name: `${f} ${name}`, sources: [{ path: `${name}.duty`, text: raw.text }], now });
    }
  }
  for (const s of dir("test/golden/compiled")) out.push({ name: `golden ${s.path}`, sources: [s], now: NOW });
  for (const s of dir("test/golden/broken")) out.push({ name: `golden broken ${s.path}`, sources: [s], now: NOW });
  for (const [size, seed] of [[10, 7], [60, 2], [300, 3]] as const) {
    const g = generatePolicy(size, seed);
    out.push({ name: `generated ${size}/${seed}`, sources: [{ path: g.path, text: g.text }], now: NOW });
  }
  return out;
}

/** A value with every span removed and every rule id (`grant:file:line:col`) numbered in order of appearance. */
function spanFree(value: unknown): string {
  const ids = new Map<string, string>();
  const json = JSON.stringify(value, (key, v) => (key === "span" || key === "opSpan" || key === "file" ? undefined : typeof v === "bigint" ? String(v) : v));
  return json.replace(/\b(grant|forbid|exclusive|separate):[^":\s]+:\d+:\d+/g, (id, kind: string) => {
    if (!ids.has(id)) ids.set(id, `${kind}#${ids.size}`);
    return ids.get(id)!;
  });
}

function commentsOf(text: string): string[] {
  // Comments as the lexer sees them: outside strings, to the end of the line.
  return [...text.replace(/"(?:[^"\\\n]|\\.)*"/g, '""').matchAll(/#[^\n]*/g)].map((m) => m[0].trimEnd());
}

describe("formatting keeps the meaning, the comments, and is idempotent", () => {
  for (const { name, sources, now } of repositoryPolicies()) {
    test(name, () => {
      const formatted = sources.map((s) => {
        const r = formatPolicySource(s);
        if (r.text === null) return s; // a broken golden policy with a syntax error stays as it is
        expect(formatPolicySource({ path: s.path, text: r.text }).text).toBe(r.text);
        expect(commentsOf(r.text)).toEqual(commentsOf(s.text));
        return { path: s.path, text: r.text };
      });
      const before = loadPolicy(sources, { now });
      const after = loadPolicy(formatted, { now });
      // Messages may cite a rule by its position (`forbidden by a.duty:9:1`), which moves.
      const findings = (l: typeof before) => l.diagnostics.map((d) => `${d.code} ${d.message.replace(/\S+\.duty:\d+:\d+/g, "RULE")}`);
      expect(findings(after)).toEqual(findings(before));
      expect(spanFree(after.policy)).toBe(spanFree(before.policy));
      if (before.policy) expect(spanFree(compilePolicy(after.policy!).describe())).toBe(spanFree(compilePolicy(before.policy).describe()));
    });
  }

  test("fuzzed sources that parse: same AST, same comments, idempotent (1,200 inputs)", () => {
    const shipped = readdirSync(join(ROOT, "policies")).filter((f) => f.endsWith(".duty")).map((f) => readFileSync(join(ROOT, "policies", f), "utf8"));
    const rng = createRng(0xf0a7);
    let formattedCount = 0;
    for (let i = 0; i < 1200; i++) {
      const base = i % 4 === 3 ? generatePolicy(5 + rng.int(15), 500 + i).text : shipped[i % shipped.length]!;
      let text = i % 2 ? mutateTokens(rng, base) : mutateChars(rng, base);
      // Comments in random places between lines and at line ends.
      text = text.split("\n").map((l) => (rng.chance(0.15) ? `${l} # c${i}` : rng.chance(0.1) ? `# n${i}\n${l}` : l)).join("\n");
      const source = { path: "f.duty", text };
      const r = formatPolicySource(source);
      if (r.text === null) continue;
      formattedCount++;
      const where = `seed ${i}:\n${text}\n--- formatted:\n${r.text}`;
      expect(spanFree(parsePolicySource({ path: "f.duty", text: r.text }).file), where).toBe(spanFree(parsePolicySource(source).file));
      expect(formatPolicySource({ path: "f.duty", text: r.text }).text, where).toBe(r.text);
      expect(commentsOf(r.text), where).toEqual(commentsOf(text));
    }
    // The mutations must leave enough parsable inputs for the property to mean something.
    expect(formattedCount).toBeGreaterThan(300);
  }, 120_000);
});
