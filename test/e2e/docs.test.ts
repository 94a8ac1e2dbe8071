// Keeps the documentation true: what README.md and docs/ promise is checked against the code.
// - every key of gateway.example.toml is documented in docs/configuration.md, every documented
//   key is in the example, the loader accepts the example, and the documented defaults are the
//   loader's defaults;
// - the flags `gateway --help` lists are exactly the flags each command accepts, and README's
//   command-line summary uses only those; the exit codes agree everywhere;
// - every ```duty block loads without errors, every ```duty-fragment block parses, and no
//   untagged block holds policy text;
// - every error code in a table of the docs exists in the source; admin paths carry `/-/`;
//   metric names exist; README links resolve.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { loadPolicy, parsePolicySource } from "../../dsl/mod.ts";
import { AUDIT_VERIFY_USAGE } from "../../src/audit/cli.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { parseConfigText } from "../../src/config/mod.ts";
import { openSqliteLedger } from "../../src/ledger/mod.ts";
import { HELP, main } from "../../src/main.ts";

const ROOT = resolve(import.meta.dir, "..", "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const DOC_FILES = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
const DOCS: ReadonlyArray<{ file: string; text: string }> = DOC_FILES.map((file) => ({ file, text: read(file) }));

// ---------------------------------------------------------------- markdown helpers

interface Fence { file: string; line: number; info: string; body: string }

/** Fenced code blocks with their info string and 1-based opening line. */
function fences(file: string, text: string): Fence[] {
  const out: Fence[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trim().startsWith(open[2]!); j++) body.push(lines[j]!.slice(open[1]!.length));
    out.push({ file, line: i + 1, info: open[3]!.trim(), body: body.join("\n") });
    i = j;
  }
  return out;
}

/** Text outside fenced code blocks (tables and prose). */
function prose(text: string): string {
  return text.replace(/^\s*```[\s\S]*?^\s*```/gm, "");
}

/** The cells of every table row (`| a | b |`), header and separator rows excluded. */
function tableRows(text: string): Array<{ line: number; cells: string[] }> {
  const rows: Array<{ line: number; cells: string[] }> = [];
  const lines = text.split("\n");
  let inFence = false;
  for (const [i, raw] of lines.entries()) {
    if (raw.trim().startsWith("```")) inFence = !inFence;
    if (inFence || !raw.trim().startsWith("|")) continue;
    if (/^\|[\s|:-]+\|$/.test(raw.trim())) continue;
    if (i + 1 < lines.length && /^\|[\s|:-]+\|$/.test(lines[i + 1]!.trim())) continue; // header
    rows.push({ line: i + 1, cells: raw.trim().replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => c.trim()) });
  }
  return rows;
}

const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

// ---------------------------------------------------------------- configuration

/** Flattens a parsed TOML document into key paths; named tables become `NAME`, identity tables are leaves. */
function configKeyPaths(doc: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const walk = (value: unknown, path: string) => {
    if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v))) {
      // An array of tables (`[[listen.sni]]`) is one documented row; its keys are named in that row.
      out.add(path);
      for (const v of value) for (const k of Object.keys(v as Record<string, unknown>)) out.add(`${path}[].${k}`);
      return;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Date) {
      out.add(path);
      return;
    }
    if (/(^|\.)identities$/.test(path) || /\.constants$/.test(path) || /\.claims$/.test(path)) {
      out.add(path); // keys are identities / principal attributes, chosen by the user
      return;
    }
    if (path !== "") out.add(path);
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const named = path === "issuers" || path === "upstreams";
      walk(v, path === "" ? k : `${path}.${named ? "NAME" : k}`);
    }
  };
  walk(doc, "");
  return out;
}

/** Keys documented in docs/configuration.md: the first column of each section's table. */
function documentedConfigKeys(): Map<string, { line: number; type: string; fallback: string; what: string }> {
  const text = read("docs/configuration.md");
  const keys = new Map<string, { line: number; type: string; fallback: string; what: string }>();
  let prefix: string | null = null;
  for (const [i, line] of text.split("\n").entries()) {
    const heading = /^## (.*)$/.exec(line);
    if (heading) {
      const title = heading[1]!;
      const table = /`\[([^\]]+)\]`/.exec(title);
      prefix = title === "Top level" ? "" : table ? table[1]! : null;
      continue;
    }
    if (prefix === null || !line.startsWith("| `")) continue;
    const cells = line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => c.trim());
    for (const key of backticked(cells[0]!)) {
      const sub = /^\[\[?([^\]]+)\]\]?$/.exec(key);
      const path = sub ? sub[1]!.replace(/\."<[^>]+>"$/, "") : prefix === "" ? key : `${prefix}.${key}`;
      keys.set(path, { line: i + 1, type: cells[1] ?? "", fallback: cells[2] ?? "", what: cells.slice(3).join(" | ") });
    }
  }
  return keys;
}

describe("configuration: gateway.example.toml, docs/configuration.md and the loader agree", () => {
  const exampleText = read("gateway.example.toml");
  const exampleKeys = configKeyPaths(parseToml(exampleText) as Record<string, unknown>);
  const documented = documentedConfigKeys();

  test("the tables of docs/configuration.md were found", () => {
    for (const key of ["state_dir", "listen.address", "issuers.NAME.issuer", "upstreams.NAME.url", "audit.fsync", "log.level"]) expect(documented.has(key)).toBe(true);
  });

  test("every key in gateway.example.toml is documented", () => {
    const undocumented = [...exampleKeys].filter((k) => {
      const inArray = /^(.*)\[\]\.(.*)$/.exec(k);
      if (inArray) return !documented.get(inArray[1]!)?.what.includes(`\`${inArray[2]}\``);
      return !documented.has(k) && !/^(listen|admin|issuers|upstreams|policy|audit|ledger|identity|log|issuers\.NAME|upstreams\.NAME)$/.test(k);
    });
    expect(undocumented).toEqual([]);
  });

  test("every documented key is in gateway.example.toml (it claims to use every key)", () => {
    // `hmac_secret` is the inline alternative to the `hmac_secret_file` the example uses; `jwks_file` and
    // `jwks_ca` likewise (the example's corp issuer uses jwks_url; its comment shows jwks_ca).
    const alternatives = new Set(["issuers.NAME.hmac_secret", "issuers.NAME.jwks_file", "issuers.NAME.jwks_ca"]);
    const missing = [...documented.keys()].filter((k) => !exampleKeys.has(k) && !alternatives.has(k));
    // `[issuers.NAME.claims]` / `constants`, `[listen.identities."<id>"]`: tables of the user's own names.
    expect(missing).toEqual([]);
    for (const k of alternatives) expect(exampleText).toContain(k.split(".").at(-1)!);
  });

  test("the loader accepts gateway.example.toml (files not checked: they are placeholders)", () => {
    const result = parseConfigText(exampleText, join(ROOT, "gateway.example.toml"), false);
    expect(result.ok ? [] : result.errors.map((e) => `${e.line}:${e.col} ${e.code} ${e.path}: ${e.message}`)).toEqual([]);
  });

  test("every documented key is accepted by the loader (no CONFIG_UNKNOWN_KEY)", () => {
    const result = parseConfigText(exampleText.replace(/^# ?(jwks_ca|hmac_secret) .*$/gm, ""), join(ROOT, "gateway.example.toml"), false);
    expect(result.ok).toBe(true);
    // Keys only a comment of the example shows: add them one at a time to a minimal config.
    for (const [key, table] of [["jwks_ca", "issuers.corp"], ["jwks_file", "issuers.file"]] as const) {
      const base = `[${table}]\nissuer = "https://x.example/${key}"\naudience = "a"\n`;
      const line = key === "jwks_ca" ? `jwks_url = "https://x.example/jwks"\njwks_ca = "ca.pem"\n` : `jwks_file = "keys.jwks"\n`;
      const r = parseConfigText(`${base}${line}[policy]\nrequire_signature = false\n`, join(ROOT, "gateway.toml"), false);
      expect(r.ok ? "" : r.errors.map((e) => `${e.code} ${e.path}`).join(", ")).toBe("");
    }
    const hmac = parseConfigText(`[issuers.ci]\nissuer = "https://ci"\naudience = "a"\nalgorithms = ["HS256"]\nhmac_secret = "${"s".repeat(32)}"\n[policy]\nrequire_signature = false\n`, join(ROOT, "gateway.toml"), false);
    expect(hmac.ok).toBe(true);
  });

  test("documented defaults are the loader's defaults", () => {
    // A minimal config with one issuer and one upstream; each documented default is set
    // explicitly and must leave the loaded config unchanged.
    const base: Record<string, string[]> = {
      "": [],
      policy: ["require_signature = false"],
      "issuers.NAME": ['issuer = "https://idp.example"', 'audience = "dutygate"', 'jwks_url = "https://idp.example/jwks"'],
      "upstreams.NAME": ['url = "http://127.0.0.1:8081"'],
    };
    const render = (extra: { table: string; line: string } | null) => {
      const tables = new Map(Object.entries(base).map(([t, lines]) => [t, [...lines]]));
      if (extra) (tables.get(extra.table) ?? tables.set(extra.table, []).get(extra.table)!).push(extra.line);
      return [...tables].map(([t, lines]) => `${t === "" ? "" : `[${t.replace("NAME", t.startsWith("issuers") ? "idp" : "app")}]\n`}${lines.join("\n")}`).join("\n\n") + "\n";
    };
    const load = (text: string) => {
      const r = parseConfigText(text, join(ROOT, "gateway.toml"), false);
      if (!r.ok) throw new Error(r.errors.map((e) => `${e.code} ${e.path}: ${e.message}`).join("; "));
      return JSON.stringify(r.config);
    };
    const reference = load(render(null));
    let checked = 0;
    const wrong: string[] = [];
    for (const [key, { line, fallback }] of documented) {
      const literal = fallback.replace(/^\*\*|\*\*$/g, "").replace(/^`|`$/g, "");
      if (!/^("[^"]*"|\d+|true|false|\[.*\])$/.test(literal)) continue; // "—", "required", prose
      const dot = key.lastIndexOf(".");
      const table = dot < 0 ? "" : key.slice(0, dot);
      if (!(table in base) && !["listen", "audit", "ledger", "identity", "log", "admin"].includes(table)) continue;
      if (table === "admin") continue; // an [admin] table turns the admin listener on
      const name = key.slice(dot + 1);
      if (base[table]?.some((l) => l.startsWith(`${name} =`))) continue; // the minimal config sets it already
      try {
        if (load(render({ table, line: `${name} = ${literal}` })) !== reference) wrong.push(`configuration.md:${line}: ${key} = ${literal} is not the default`);
      } catch (e) {
        wrong.push(`configuration.md:${line}: ${key} = ${literal}: ${(e as Error).message}`);
      }
      checked++;
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThan(25);
  });
});

// ---------------------------------------------------------------- command line

/** `--flag` names per command, as `gateway --help` lists them. */
function helpFlags(): Map<string, Set<string>> {
  const flags = new Map<string, Set<string>>();
  let current: string | null = null;
  for (const line of HELP.split("\n")) {
    const cmd = /^ {2}gateway (audit verify|[a-z]+)\b(.*)$/.exec(line);
    if (cmd) {
      current = cmd[1]!.startsWith("-") ? null : cmd[1]!;
      if (current) flags.set(current, new Set());
    } else if (!/^ {4,}/.test(line)) current = null;
    if (current) for (const m of line.matchAll(/--([a-z][a-z-]*)/g)) flags.get(current)!.add(m[1]!);
  }
  return flags;
}

/** The flags a command really accepts, from its own "unknown flag" answer. */
async function acceptedFlags(command: string): Promise<Set<string>> {
  if (command === "audit verify") return new Set([...AUDIT_VERIFY_USAGE.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
  const io = memoryIo();
  const code = await main([command, "--no-such-flag-zz"], io);
  expect(code).toBe(EXIT.usage);
  const known = /\(known flags: ([^)]*)\)/.exec(io.stderr.join("\n"));
  return new Set(known ? [...known[1]!.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!) : []);
}

describe("command line: --help, README and the parsers agree", () => {
  const help = helpFlags();

  test("--help lists every command", () => {
    expect([...help.keys()].sort()).toEqual(["audit verify", "check", "explain", "init", "keygen", "keys", "ledger", "serve", "sign", "verify"]);
  });

  for (const command of ["serve", "check", "explain", "keygen", "keys", "sign", "verify", "init", "ledger", "audit verify"]) {
    test(`\`gateway ${command}\`: the flags in --help are exactly the flags it parses`, async () => {
      const accepted = await acceptedFlags(command);
      expect([...(help.get(command) ?? [])].sort()).toEqual([...accepted].sort());
    });
  }

  test("every flag README's command-line summary shows is one --help lists for that command", () => {
    const block = fences("README.md", read("README.md")).find((f) => f.body.includes("gateway serve") && f.body.includes("gateway check"));
    expect(block).toBeDefined();
    let current: string | null = null;
    const unknown: string[] = [];
    for (const line of block!.body.split("\n")) {
      // `gateway keygen … | sign DIR … | verify DIR …` puts three commands on one line.
      for (const part of line.split(/ \| (?=[a-z]+ )/)) {
        const cmd = /^(?:gateway )?(audit verify|serve|check|explain|keygen|keys|sign|verify|init|ledger)\b/.exec(part.trim());
        if (cmd) current = cmd[1]!;
        for (const m of part.matchAll(/--([a-z][a-z-]*)/g)) if (m[1] !== "version" && !help.get(current ?? "")?.has(m[1]!)) unknown.push(`${current}: --${m[1]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  test("the exit codes of --help, README and EXIT agree", () => {
    const helpCodes = [...HELP.matchAll(/^ {2}(\d+) {2,}/gm)].map((m) => Number(m[1]));
    expect(helpCodes).toEqual(Object.values(EXIT).sort((a, b) => a - b));
    const readmeLine = /exit codes \(([^)]*)\)/.exec(read("README.md").replace(/\s+/g, " "));
    expect(readmeLine).not.toBeNull();
    expect([...readmeLine![1]!.matchAll(/(\d+) [A-Za-z]/g)].map((m) => Number(m[1]))).toEqual(helpCodes);
  });

  test("`gateway --version` and `gateway --help` answer 0", async () => {
    for (const argv of [["--version"], ["--help"]]) expect(await main(argv, memoryIo())).toBe(EXIT.ok);
  });
});

// ---------------------------------------------------------------- .duty code blocks

describe("policy code in the docs", () => {
  const all = DOCS.flatMap(({ file, text }) => fences(file, text));
  const complete = all.filter((f) => f.info === "duty");
  const fragments = all.filter((f) => f.info === "duty-fragment");

  test("the docs hold complete policies and fragments", () => {
    expect(complete.length).toBeGreaterThanOrEqual(2);
    expect(fragments.length).toBeGreaterThanOrEqual(1);
  });

  for (const f of complete) {
    test(`${f.file}:${f.line}: a \`duty\` block loads without errors`, () => {
      const { policy, diagnostics } = loadPolicy([{ path: `${f.file}:${f.line}`, text: f.body }]);
      expect(diagnostics.filter((d) => d.severity === "error").map((d) => `${d.span.line}:${d.span.col} ${d.code} ${d.message}`)).toEqual([]);
      expect(policy).not.toBeNull();
    });
  }

  for (const f of fragments) {
    test(`${f.file}:${f.line}: a \`duty-fragment\` block parses`, () => {
      const { diagnostics } = parsePolicySource({ path: `${f.file}:${f.line}`, text: f.body });
      expect(diagnostics.map((d) => `${d.span.line}:${d.span.col} ${d.code} ${d.message}`)).toEqual([]);
    });
  }

  test("no untagged block holds policy text (tag it `duty` or `duty-fragment` so it is checked)", () => {
    const policyLine = /^(principal \{|role [a-z_]|duty [a-z_]+ +[A-Z]+ \/|grant [a-z_]|forbid [a-z_*]|exclusive [a-z0-9_]|separate [a-z_])/m;
    const untagged = all.filter((f) => f.info === "" && policyLine.test(f.body)).map((f) => `${f.file}:${f.line}`);
    expect(untagged).toEqual([]);
  });
});

// ---------------------------------------------------------------- codes, paths, names, links

/** Source text of the product (tests excluded), where every code must be spelled. */
const SOURCE = (() => {
  const texts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) texts.push(readFileSync(join(ROOT, path), "utf8"));
    }
  };
  walk("src");
  walk("dsl");
  return texts.join("\n");
})();

const CODE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

describe("names the docs promise exist in the source", () => {
  test("every error code in a table of the docs exists in the source", () => {
    const missing: string[] = [];
    let seen = 0;
    for (const { file, text } of DOCS) {
      for (const row of tableRows(text)) {
        for (const code of backticked(row.cells[0] ?? "")) {
          if (!CODE.test(code)) continue;
          seen++;
          // Quoted as a string, or as the value of a codes object (`KEY_INVALID: "BUNDLE_KEY_INVALID"`).
          if (!new RegExp(`["'\`]${code}["'\`]`).test(SOURCE)) missing.push(`${file}:${row.line}: ${code}`);
        }
      }
    }
    expect(missing).toEqual([]);
    expect(seen).toBeGreaterThan(100);
  });

  test("every code a table's other column names (e.g. `MTLS_REQUIRED`) exists in the source", () => {
    const missing = new Set<string>();
    for (const { file, text } of DOCS) {
      for (const row of tableRows(text)) {
        for (const cell of row.cells.slice(1)) {
          for (const code of backticked(cell)) {
            if (!CODE.test(code) || /^(E|W)_/.test(code) === false && !/^(AUTHN|MTLS|BUNDLE|AUDIT|CONFIG|POLICY|PATH|QUERY|UPSTREAM|LEDGER|EXPLAIN|ADMIN|DENY|PRINCIPAL|TLS|IDENTITY|INIT|ASSIGNMENTS|DEMO)_/.test(code)) continue;
            if (!new RegExp(`["'\`]${code}["'\`]`).test(SOURCE)) missing.add(`${file}:${row.line}: ${code}`);
          }
        }
      }
    }
    expect([...missing]).toEqual([]);
  });

  test("admin paths are written with their `/-/` prefix and exist in the gateway", () => {
    const gatewaySource = ["src/gateway/admin.ts", "src/gateway/pipeline.ts", "policies/admin.duty"].map(read).join("\n");
    const bare: string[] = [];
    const unknown = new Set<string>();
    for (const { file, text } of DOCS) {
      for (const [i, line] of text.split("\n").entries()) {
        for (const m of line.matchAll(/(?<![-\w/.])\/(healthz|readyz|metrics|policy|explain)\b(?![-\w.])/g)) {
          if (!line.slice(0, m.index).endsWith("/-")) bare.push(`${file}:${i + 1}: /${m[1]}`);
        }
        for (const m of line.matchAll(/\/-\/([a-z]+(?:\/[a-z]+)?)/g)) if (!gatewaySource.includes(`/-/${m[1]}`)) unknown.add(`${file}:${i + 1}: /-/${m[1]}`);
      }
    }
    expect(bare).toEqual([]);
    expect([...unknown]).toEqual([]);
  });

  test("every metric in docs/observability.md is exported by src/gateway/metrics.ts", () => {
    const metrics = read("src/gateway/metrics.ts");
    const names = new Set([...read("docs/observability.md").matchAll(/`(dutygate_[a-z_]+)`/g)].map((m) => m[1]!));
    expect(names.size).toBeGreaterThan(8);
    expect([...names].filter((n) => !metrics.includes(`"${n}"`))).toEqual([]);
  });

  test("README's links resolve to files in the repository", () => {
    const readme = read("README.md");
    const targets = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    expect(targets.length).toBeGreaterThan(10);
    expect(targets.filter((t) => !existsSync(join(ROOT, t)))).toEqual([]);
  });

  test("links between docs resolve", () => {
    const broken: string[] = [];
    for (const { file, text } of DOCS) {
      for (const m of prose(text).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(join(ROOT, dirname(file), target))) broken.push(`${file}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  test("files the docs name as `src/…`, `dsl/…`, `test/…`, `bench/…`, `scripts/…`, `deploy/…` exist", () => {
    const missing = new Set<string>();
    for (const { file, text } of DOCS) {
      for (const m of text.matchAll(/`((?:src|dsl|test|bench|scripts|deploy|policies)\/[A-Za-z0-9_./-]*[A-Za-z0-9_])`/g)) {
        const path = m[1]!;
        if (!existsSync(join(ROOT, path))) missing.add(`${file}: ${path}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});

// ---------------------------------------------------------------- output the docs quote

describe("output quoted in the docs is what the commands print", () => {
  const previousCwd = process.cwd();

  test("docs/admin.md: the `gateway explain` example, for bob the reviewer", async () => {
    const block = fences("docs/admin.md", read("docs/admin.md")).find((f) => f.body.startsWith("$ gateway explain policies"));
    expect(block).toBeDefined();
    const [command, ...expected] = block!.body.split("\n");
    expect(command).toBe('$ gateway explain policies --principal bob.json --request "POST /changes/42/approve"');
    const tmp = mkdtempSync(join(tmpdir(), "dutygate-docs-"));
    const bob = join(tmp, "bob.json");
    writeFileSync(bob, JSON.stringify({ sub: "bob", roles: ["reviewer"], mfa: false, team: "core" }));
    process.chdir(ROOT);
    try {
      const io = memoryIo();
      expect(await main(["explain", "policies", "--principal", bob, "--request", "POST /changes/42/approve"], io)).toBe(EXIT.ok);
      expect(io.stdout.join("\n").split("\n")).toEqual(expected.filter((l) => l !== ""));
    } finally {
      process.chdir(previousCwd);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("docs/ledger.md: the operator's commands for reservations of unknown outcome run as shown", async () => {
    const block = fences("docs/ledger.md", read("docs/ledger.md")).find((f) => f.body.includes("gateway ledger list-pending"));
    expect(block).toBeDefined();
    const commands = block!.body.split("\n").map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l !== "");
    expect(commands.map((c) => c.split(" ").slice(0, 3).join(" "))).toEqual(["gateway ledger list-pending", "gateway ledger confirm", "gateway ledger release"]);
    const tmp = mkdtempSync(join(tmpdir(), "dutygate-docs-ledger-"));
    try {
      // Two reservations a gateway left when it stopped before the upstream answered.
      const ledger = await openSqliteLedger({ path: join(tmp, "ledger.sqlite"), retentionDays: 30 });
      const ids: string[] = [];
      for (const key of ["42", "43"]) {
        const r = await ledger.reserve({ checks: [{ constraint: "separate:changes.duty:20:1", param: "change", key, duties: ["submit_change", "approve_change"] }], duty: "submit_change", sub: "alice", at: Date.now() });
        if (r.ok) ids.push(r.reservation.id);
      }
      await ledger.close();
      expect(ids).toHaveLength(2);
      for (const command of commands) {
        const argv = command.split(/\s+/).slice(1).map((a) => (a === "/var/lib/dutygate" ? tmp : a === "RESERVATION-ID" ? ids.shift()! : a));
        const io = memoryIo();
        expect({ command, code: await main(argv, io), err: io.stderr }).toEqual({ command, code: EXIT.ok, err: [] });
      }
      const after = memoryIo();
      expect(await main(["ledger", "list-pending", "--state-dir", tmp], after)).toBe(EXIT.ok);
      expect(after.stdout).toEqual(["no reservations pending"]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test("docs/separation-of-duties.md: the reachability table of the shipped policy", async () => {
    const block = fences("docs/separation-of-duties.md", read("docs/separation-of-duties.md")).find((f) => f.body.startsWith("separation of duties (reachability"));
    expect(block).toBeDefined();
    process.chdir(ROOT);
    try {
      const io = memoryIo();
      expect(await main(["check", "policies"], io)).toBe(EXIT.ok);
      const printed = io.stdout.join("\n").split("\n").filter((l) => !/^\s*-{3,}/.test(l));
      for (const line of block!.body.split("\n").filter((l) => l.trim() !== "")) expect(printed).toContain(line);
    } finally {
      process.chdir(previousCwd);
    }
  });
});
