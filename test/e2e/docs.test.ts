// Keeps the documentation true: what README.md and docs/ promise is checked against the code.
// - every key of gateway.example.toml is documented in docs/configuration.md, every documented
//   key is in the example, the loader accepts the example, and the documented defaults are the
//   loader's defaults;
// - the flags `gateway --help` lists are exactly the flags each command accepts, and README's
//   command-line summary uses only those; the exit codes agree everywhere;
// - every ```duty block loads without errors, every ```duty-fragment block parses, and no
//   untagged block holds policy text;
// - every error code in a table of the docs exists in the source; admin paths carry `/-/`;
//   metric names exist; README links resolve;
// - every command the docs show runs here in a sandbox (README's tools beside a running gateway,
//   deploy.md's install, signer keys and upgrade, audit.md's `audit verify` transcript), is a
//   synopsis whose commands, flags, npm scripts and files are checked, or is listed in NOT_RUN
//   with the reason it cannot run (systemctl on a VM); none assumes a bare `bun` or `deno`.
import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { loadPolicy, parsePolicySource } from "../../dsl/mod.ts";
import { AUDIT_VERIFY_USAGE } from "../../src/cli/mod.ts";
import { openAuditLog } from "../../src/audit/mod.ts";
import { logOptions, makeSigner } from "../support/audit-log.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { parseConfigText } from "../../src/config/mod.ts";
import { openSqliteLedger } from "../../src/ledger/mod.ts";
import { HELP, main } from "../../src/cli/mod.ts";
import { startTestGateway } from "../support/harness.ts";

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
      return !documented.has(k) && !/^(listen|admin|issuers|upstreams|policy|audit|ledger|identity|log|shutdown|issuers\.NAME|upstreams\.NAME)$/.test(k);
    });
    expect(undocumented).toEqual([]);
  });

  test("every documented key is in gateway.example.toml (it claims to use every key)", () => {
    // `hmac_secret` is the inline alternative to the `hmac_secret_file` the example uses; `jwks_file` and
    // `jwks_ca` likewise (the example's corp issuer uses jwks_url; its comment shows jwks_ca).
    // `[ledger] url` and its keys replace `path`; the example shows them in a comment.
    const alternatives = new Set(["issuers.NAME.hmac_secret", "issuers.NAME.jwks_file", "issuers.NAME.jwks_ca", "ledger.url", "ledger.password_file", "ledger.password_env", "ledger.ca"]);
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
    const shared = parseConfigText(`[ledger]\nurl = "postgres://dutygate@db.internal:5432/dutygate"\npassword_env = "PGPASS"\nca = "ca.pem"\n[policy]\nrequire_signature = false\n`, join(ROOT, "gateway.toml"), false);
    expect(shared.ok ? "" : shared.errors.map((e) => `${e.code} ${e.path}`).join(", ")).toBe("");
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
    expect([...help.keys()].sort()).toEqual(["audit verify", "check", "explain", "fmt", "init", "keygen", "keys", "ledger", "lsp", "play", "query", "serve", "sign", "verify"]);
  });

  for (const command of ["serve", "check", "explain", "query", "keygen", "keys", "sign", "verify", "init", "ledger", "fmt", "play", "lsp", "audit verify"]) {
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
        const cmd = /^(?:gateway )?(audit verify|serve|check|explain|query|keygen|keys|sign|verify|init|ledger|fmt|play|lsp)\b/.exec(part.trim());
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

  test("docs/language.md: each transcript runs as shown, on a copy of the shipped policies", async () => {
    const blocks = fences("docs/language.md", read("docs/language.md")).filter((f) => f.body.startsWith("$ "));
    expect(blocks.length).toBeGreaterThanOrEqual(1);
    const box = sandbox();
    cpSync(join(ROOT, "policies"), join(box.cwd, "policies"), { recursive: true });
    try {
      for (const block of blocks) {
        // Each `$ command` with the lines under it; `…` stands for lines left out.
        const steps: Array<{ line: number; expected: string[] }> = [];
        for (const [i, l] of block.body.split("\n").entries()) {
          if (l.startsWith("$ ")) steps.push({ line: block.line + 1 + i, expected: [] });
          else steps.at(-1)!.expected.push(l);
        }
        for (const step of steps) {
          const command = COMMANDS.find((c) => c.key === `docs/language.md:${step.line}`)!;
          const r = await runDocCommand(command, box);
          const actual = [...r.stdout.flatMap((l) => l.split("\n")), ...r.stderr];
          expect({ command: command.text, code: r.code }).toEqual({ command: command.text, code: EXIT.ok });
          const shown = step.expected.filter((l) => l !== "");
          if (!shown.includes("…")) {
            expect(actual.filter((l) => l !== "")).toEqual(shown);
            continue;
          }
          // The shown lines appear in this order; `…` may stand for any number of lines.
          let at = 0;
          for (const l of shown.filter((l) => l !== "…")) {
            const found = actual.indexOf(l, at);
            expect({ command: command.text, line: l, found: found >= 0 }).toEqual({ command: command.text, line: l, found: true });
            at = found + 1;
          }
        }
      }
    } finally {
      box.remove();
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

  test("docs/authoring.md: the `gateway fmt` commands run as shown, and its policy is in the canonical layout", async () => {
    const text = read("docs/authoring.md");
    const block = fences("docs/authoring.md", text).find((f) => f.info === "sh" && f.body.includes("gateway fmt"));
    expect(block).toBeDefined();
    const commands = block!.body.split("\n").map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l !== "");
    expect(commands).toEqual(["gateway fmt policies", "gateway fmt --check policies", "gateway fmt --diff policies/admin.duty"]);
    const tmp = mkdtempSync(join(tmpdir(), "dutygate-docs-fmt-"));
    cpSync(join(ROOT, "policies"), join(tmp, "policies"), { recursive: true });
    const admin = join(tmp, "policies", "admin.duty");
    writeFileSync(admin, readFileSync(admin, "utf8").replace("upstream gateway", "upstream   gateway"));
    process.chdir(tmp);
    try {
      const results: Array<{ code: number; out: string[] }> = [];
      for (const command of commands) {
        const io = memoryIo();
        results.push({ code: await main(command.split(/\s+/).slice(1), io), out: io.stdout });
        ran.add(one("docs/authoring.md", command).key);
      }
      // The first rewrites the file it names; then nothing is left to check or to diff.
      expect(results).toEqual([{ code: EXIT.ok, out: ["formatted policies/admin.duty"] }, { code: EXIT.ok, out: [] }, { code: EXIT.ok, out: [] }]);
      expect(readFileSync(admin, "utf8")).toBe(read("policies/admin.duty"));
    } finally {
      process.chdir(previousCwd);
      rmSync(tmp, { recursive: true, force: true });
    }
    const { formatPolicySource } = await import("../../dsl/mod.ts");
    for (const f of fences("docs/authoring.md", text).filter((f) => f.info === "duty")) {
      expect(formatPolicySource({ path: `authoring.md:${f.line}`, text: f.body + "\n" }).text).toBe(f.body + "\n");
    }
  });

  test("docs/authoring.md: `npm run package:vscode` writes the .vsix it names", async () => {
    const command = one("docs/authoring.md", "npm run package:vscode");
    const named = /writes (editors\/vscode\/dist\/dutygate-duty-VERSION\.vsix)/.exec(read("docs/authoring.md"))![1]!;
    const vsix = join(ROOT, named.replace("VERSION", (JSON.parse(read("editors/vscode/package.json")) as { version: string }).version));
    rmSync(vsix, { force: true });
    const box = sandbox();
    try {
      const result = await runDocCommand(command, box, { cwd: ROOT });
      // npm may add a notice of its own (a newer npm); anything else on stderr is the script's.
      expect({ code: result.code, stderr: result.stderr.filter((l) => !l.startsWith("npm notice")) }).toEqual({ code: 0, stderr: [] });
      expect(existsSync(vsix)).toBe(true);
      // The install command in the prose names the same file.
      expect(read("docs/authoring.md")).toContain(`code --install-extension ${vsix.slice(ROOT.length + 1)}`);
    } finally {
      box.remove();
    }
  }, 120_000);
  test("docs/authoring.md: `gateway lsp` runs as shown and answers an LSP client over stdio", async () => {
    const command = one("docs/authoring.md", "gateway lsp");
    const { startLspSession, SOURCE_LSP } = await import("../support/lsp-client.ts");
    // The docs' words after `gateway`, run from source as the test suite runs every command.
    const session = await startLspSession([...SOURCE_LSP.slice(0, 2), ...command.text.split(/\s+/).slice(1)]);
    try {
      expect(session.initializeResult.serverInfo?.name).toBe("dutygate");
      expect(await session.close()).toBe(0);
      ran.add(command.key);
    } finally {
      session.kill();
    }
  });

  test("docs/authoring.md: `gateway play policies` serves the page it describes, on loopback", async () => {
    const command = one("docs/authoring.md", "gateway play policies");
    const { parsePlayArgs, runPlay } = await import("../../src/cli/play.ts");
    const words = command.text.split(/\s+/).slice(2); // after `gateway play`
    const params = parsePlayArgs(words);
    // The documented default address, on a free port (another test may hold 8800).
    expect({ host: params.host, port: params.port }).toEqual({ host: "127.0.0.1", port: 8800 });
    expect(read("docs/authoring.md")).toContain("then open http://127.0.0.1:8800/");
    ran.add(command.key);
    const box = sandbox();
    cpSync(join(ROOT, "policies"), join(box.cwd, "policies"), { recursive: true });
    process.chdir(box.cwd);
    const io = memoryIo();
    const server = await runPlay({ ...params, port: 0 }, io);
    try {
      expect(io.stdout).toEqual([`dutygate playground on http://127.0.0.1:${server.port}/ (policy: policies/; edits stay in the page, nothing is written)`]);
      expect(await (await fetch(server.url)).text()).toContain("<title>dutygate playground</title>");
      const files = (await (await fetch(`${server.url}api/files`)).json()) as { files: Array<{ path: string }> };
      const shipped = readdirSync(join(ROOT, "policies")).sort();
      expect(files.files.map((f) => f.path)).toEqual([...shipped.filter((f) => f.endsWith(".duty")), ...shipped.filter((f) => f.endsWith(".test.toml"))]);
    } finally {
      await server.close();
      process.chdir(previousCwd);
      box.remove();
    }
    const refused = await runPlay({ ...params, host: "0.0.0.0", port: 0 }, memoryIo()).then(() => "started", (e: { code?: string }) => e.code);
    expect(refused).toBe("PLAY_NOT_LOOPBACK");
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

// ---------------------------------------------------------------- every command the docs show

/**
 * A command a reader would type: each line of a `sh` block, each `$ ` line of a transcript, each
 * line of an untagged block of `gateway`/`npx`/`npm`/`node_modules/.bin/` lines (indented lines
 * continue the one above). `key` is `file:line`.
 */
interface DocCommand { file: string; line: number; key: string; text: string; synopsis: boolean }

const SHELL_INFOS = new Set(["sh", "bash", "shell", "console"]);
const COMMAND_START = /^(gateway|npx|npm|node_modules\/\.bin\/)\b/;

/** The command of a line without its prompt and trailing comment (a `#` after whitespace, outside quotes). */
function commandText(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) quote = c === quote ? null : quote;
    else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trim();
  }
  return line.trim();
}

function docCommands(): DocCommand[] {
  const out: DocCommand[] = [];
  for (const { file, text } of DOCS) {
    for (const f of fences(file, text)) {
      const lines = f.body.split("\n");
      const transcript = lines.some((l) => l.startsWith("$ "));
      const shell = SHELL_INFOS.has(f.info);
      if (!shell && f.info !== "") continue;
      if (!shell && !transcript && !lines.some((l) => COMMAND_START.test(l))) continue;
      for (const [i, raw] of lines.entries()) {
        const lineNo = f.line + 1 + i;
        if (transcript && !raw.startsWith("$ ")) continue;
        if (!shell && !transcript && /^\s/.test(raw) && out.at(-1)?.file === file) {
          // A continuation of the synopsis line above.
          out.at(-1)!.text += ` ${commandText(raw)}`;
          continue;
        }
        const text = commandText(raw.replace(/^\$ /, ""));
        if (text === "") continue;
        out.push({ file, line: lineNo, key: `${file}:${lineNo}`, text, synopsis: false });
      }
    }
  }
  // A block with one synopsis line (`[--flag]`, `...`) is a synopsis as a whole (README's command summary).
  const blockOf = (c: DocCommand) => fences(c.file, DOCS.find((d) => d.file === c.file)!.text).findLast((f) => f.line < c.line)!.line;
  const synopsisBlocks = new Set(out.filter((c) => /\[|\.\.\.|…/.test(c.text)).map((c) => `${c.file}:${blockOf(c)}`));
  for (const c of out) c.synopsis = synopsisBlocks.has(`${c.file}:${blockOf(c)}`);
  return out;
}

/** Inline code spans that are commands: `` `gateway check …` ``, `` `npm run …` ``, `` `npx …` ``, and bare tools. */
function inlineCommands(): Array<{ key: string; text: string }> {
  const out: Array<{ key: string; text: string }> = [];
  for (const { file, text } of DOCS) {
    let inFence = false;
    for (const [i, line] of text.split("\n").entries()) {
      if (line.trim().startsWith("```")) inFence = !inFence;
      if (inFence) continue;
      for (const m of line.matchAll(/`([^`]+)`/g)) {
        if (/^(gateway|npx|npm|bun|bunx|deno|tsc|node_modules\/\.bin\/[a-z]+) /.test(m[1]!)) out.push({ key: `${file}:${i + 1}`, text: m[1]! });
      }
    }
  }
  return out;
}

/**
 * Commands no test can run, each with the reason. Listed by their exact text, so a new command
 * in the docs is either run by a test below or added here on purpose, never skipped in silence.
 */
const NOT_RUN: Readonly<Record<string, string>> = {
  "npm install && npx gateway serve": "the built-in default binds the fixed ports 8443 and 18081–18084, which another test may hold; test/e2e/config.test.ts starts that default on free ports",
  "npm install && npm test": "it is the whole suite (npm's `test` script, checked to exist)",
  "npm ci": "installs from the registry; the tests run on the installed node_modules",
  "npm run build": "two 110 MiB cross-compiled binaries; test/binary builds one with the same buildBinary and tests it",
  "cd /tmp && sha256sum -c SHA256SUMS --ignore-missing": "needs the release files of a VM install; `SHA256SUMS` is checked by scripts/build.ts's test",
  "install -o root -g root -m 0755 gateway /usr/local/bin/gateway": "writes a system path as root on the VM",
  "useradd --system --user-group --no-create-home --home-dir /var/lib/dutygate --shell /usr/sbin/nologin dutygate": "creates a system user as root on the VM",
  "$EDITOR /etc/dutygate/gateway.toml": "an interactive edit",
  "install -m 0644 deploy/dutygate.service /etc/systemd/system/dutygate.service": "writes a system path as root on the VM; test/binary/systemd.test.ts verifies the unit",
  "systemctl daemon-reload": "systemd on a VM; test/binary/systemd.test.ts checks the unit with systemd-analyze",
  "systemctl enable --now dutygate": "systemd on a VM",
  "journalctl -u dutygate -f": "the journal of a VM",
  "install -m 0755 gateway-new /usr/local/bin/gateway": "writes a system path as root on the VM",
  "systemctl restart dutygate": "systemd on a VM",
  "npm run bench:proxy": "a benchmark (minutes of both cores); the script is checked to exist",
  "npm run bench:proxy-peers": "a benchmark (minutes of both cores); the script is checked to exist",
  "node_modules/.bin/bun bench/proxy/micro.ts": "a benchmark; the file is checked to exist",
  "node_modules/.bin/bun bench/proxy/hop.ts": "a benchmark; the file is checked to exist",
  "node_modules/.bin/bun bench/proxy/stage-layer.ts": "a benchmark; the file is checked to exist",
  "node_modules/.bin/bun bench/pipeline.bench.ts": "a benchmark (a minute of one core); the file is checked to exist",
  "node_modules/.bin/bun bench/proxy/profile.ts": "a benchmark (a loaded gateway under the profiler); the file is checked to exist",
};

/** `file:line` of every command a test below ran as the docs show it. */
const ran = new Set<string>();

/** Splits a command line into words the way a shell would for these docs (quotes, no expansion but `~`). */
function shellWords(text: string, home: string): string[] {
  const words: string[] = [];
  for (const m of text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]!.replace(/^~(?=\/|$)/, home));
  return words;
}

interface Sandbox { root: string; cwd: string; home: string; remove(): void }

/** A temp directory standing in for a machine: absolute paths of the docs are placed under it. */
function sandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), "dutygate-docs-cmd-"));
  const cwd = join(root, "cwd");
  const home = join(root, "home");
  mkdirSync(cwd, { recursive: true });
  mkdirSync(home, { recursive: true });
  return { root, cwd, home, remove: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * Runs one documented command as the docs show it: `gateway`, `npx gateway` and `gateway-new`
 * through the command line's `main` (in `cwd`), anything else with bash. Absolute paths are moved
 * into the sandbox, `~` is its home.
 */
async function runDocCommand(command: DocCommand, box: Sandbox, opts: { cwd?: string; home?: string; edit?: (argv: string[]) => string[] } = {}): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const cwd = opts.cwd ?? box.cwd;
  const words = shellWords(command.text, opts.home ?? box.home).map((w) => (w.startsWith("/") && !w.startsWith(box.root) && !/^\/[A-Z]+ /.test(w) ? join(box.root, w) : w));
  ran.add(command.key);
  const gatewayAt = words[0] === "npx" && words[1] === "gateway" ? 2 : words[0] === "gateway" || words[0] === "gateway-new" ? 1 : -1;
  if (gatewayAt > 0) {
    const argv = (opts.edit ?? ((a) => a))(words.slice(gatewayAt));
    const io = memoryIo();
    const previous = process.cwd();
    process.chdir(cwd);
    try {
      return { code: await main(argv, io), stdout: io.stdout, stderr: io.stderr };
    } finally {
      process.chdir(previous);
    }
  }
  const run = Bun.spawnSync(["bash", "-euc", command.text.replace(/(^|\s)\/(?=[a-z])/g, `$1${box.root}/`)], { cwd, env: { ...process.env, HOME: opts.home ?? box.home } });
  return { code: run.exitCode, stdout: run.stdout.toString().split("\n").filter(Boolean), stderr: run.stderr.toString().split("\n").filter(Boolean) };
}

const COMMANDS = docCommands();
const commandsOf = (file: string, first: string) => {
  const block = COMMANDS.filter((c) => c.file === file);
  const start = block.findIndex((c) => c.text.startsWith(first));
  expect(start).toBeGreaterThanOrEqual(0);
  return block.slice(start);
};
const one = (file: string, text: string) => {
  const found = COMMANDS.find((c) => c.file === file && c.text.startsWith(text));
  expect(found).toBeDefined();
  return found!;
};

describe("every command the docs show runs in a test, or is listed as one that cannot", () => {
  test("README: the tools on the shipped policies, beside a running gateway and after it stopped", async () => {
    // No timed checkpoint while the test runs: the running gateway's newest records stay unsigned.
    const t = await startTestGateway({ configure: (config) => ({ ...config, audit: { ...config.audit, checkpointIntervalMs: 3_600_000 } }) });
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      expect((await t.fetch("/changes", { token })).status).toBe(200);
      const box = { ...sandbox(), cwd: t.dir };
      try {
        const check = await runDocCommand(one("README.md", "npx gateway check policies"), box);
        expect(check.code).toBe(EXIT.ok);
        expect((await runDocCommand(one("README.md", "echo '{\"sub\":\"alice\""), box)).code).toBe(0);
        const explain = await runDocCommand(one("README.md", "npx gateway explain policies --principal alice.json"), box);
        expect({ code: explain.code, first: explain.stdout[0]?.split(" ")[0] }).toEqual({ code: EXIT.ok, first: "DENY" });
        const verify = one("README.md", "npx gateway audit verify audit --keys .state/gateway-key/public.jwks");
        // While it runs, the newest records are not signed yet: the comment's flag is needed.
        expect((await runDocCommand(verify, box)).code).toBe(EXIT.verificationFailed);
        expect((await runDocCommand(verify, box, { edit: (argv) => [...argv, "--allow-unsigned-tail"] })).code).toBe(EXIT.ok);
        await t.gw.stop({ drainMs: 0, deadlineMs: 2000 });
        expect(await runDocCommand(verify, box)).toMatchObject({ code: EXIT.ok, stderr: [] });
      } finally {
        box.remove();
      }
    } finally {
      await t.stop();
    }
  });

  test("docs/deploy.md: install, signer keys and upgrade, on a sandbox standing in for the VM", async () => {
    const box = sandbox();
    try {
      const install = COMMANDS.filter((c) => c.file === "docs/deploy.md" && /^gateway (--version|init|check)/.test(c.text));
      expect(install.map((c) => c.text.split(" ").slice(0, 2).join(" "))).toEqual(["gateway --version", "gateway init", "gateway check"]);
      for (const command of install) expect({ command: command.text, code: (await runDocCommand(command, box)).code }).toEqual({ command: command.text, code: EXIT.ok });
      for (const dir of ["etc/dutygate/gateway.toml", "etc/dutygate/policies/changes.duty"]) expect(existsSync(join(box.root, dir))).toBe(true);

      // Each reviewer on their own machine (the comment: "bob: --kid bob"), then the VM's set.
      const keygen = one("docs/deploy.md", "gateway keygen --out ~/dutygate-keys --kid alice");
      const bobHome = join(box.root, "home-bob");
      expect((await runDocCommand(keygen, box)).code).toBe(EXIT.ok);
      expect((await runDocCommand(keygen, box, { home: bobHome, edit: (argv) => argv.map((a) => (a === "alice" ? "bob" : a)) })).code).toBe(EXIT.ok);
      for (const [home, kid] of [[box.home, "alice"], [bobHome, "bob"]] as const) writeFileSync(join(box.cwd, `${kid}.public.jwk`), readFileSync(join(home, "dutygate-keys", `${kid}.public.jwk`)));
      expect((await runDocCommand(one("docs/deploy.md", "gateway keys add /etc/dutygate/trusted-signers.jwks"), box)).code).toBe(EXIT.ok);
      const list = await runDocCommand(one("docs/deploy.md", "gateway keys list /etc/dutygate/trusted-signers.jwks"), box);
      expect(list.stdout.map((l) => l.split(" ")[0])).toEqual(["alice", "bob"]);

      for (const command of COMMANDS.filter((c) => c.file === "docs/deploy.md" && c.text.startsWith("gateway-new "))) {
        expect({ command: command.text, code: (await runDocCommand(command, box)).code }).toEqual({ command: command.text, code: EXIT.ok });
      }
    } finally {
      box.remove();
    }
  });

  test("docs/audit.md: the `gateway audit verify` transcript, on a real log while open, after close, and edited", async () => {
    const block = fences("docs/audit.md", read("docs/audit.md")).find((f) => f.body.startsWith("$ gateway audit verify"))!;
    // Each command with the output lines that follow it; numbers and the log's path vary.
    const shown: Array<{ command: DocCommand; output: string[] }> = [];
    for (const [i, line] of block.body.split("\n").entries()) {
      if (line.startsWith("$ ")) shown.push({ command: COMMANDS.find((c) => c.file === "docs/audit.md" && c.line === block.line + 1 + i)!, output: [] });
      else if (line.trim() !== "") shown.at(-1)!.output.push(line);
    }
    expect(shown.map((s) => s.command?.text.split(" ").slice(4).join(" "))).toEqual(["--keys signers.jwks", "--keys signers.jwks --allow-unsigned-tail", "--keys signers.jwks", "--keys signers.jwks"]);
    const box = sandbox();
    const auditDir = join(box.root, "var/lib/gateway/audit");
    const pattern = (docLine: string) =>
      new RegExp(`^${docLine.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("/var/lib/gateway/audit", auditDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).replace(/\d+/g, "\\d+")}$`);
    const expectOutput = (result: { stdout: string[]; stderr: string[] }, docLines: string[]) => {
      const printed = [...result.stdout, ...result.stderr];
      expect(printed.length).toBe(docLines.length);
      for (const [i, docLine] of docLines.entries()) expect(printed[i]!).toMatch(pattern(docLine));
    };
    try {
      const { signingKey, jwks } = await makeSigner();
      writeFileSync(join(box.cwd, "signers.jwks"), JSON.stringify(jwks));
      const log = await openAuditLog(logOptions(auditDir, signingKey, { checkpointEvery: 100, rotateBytes: 20_000 }));
      let closed = false;
      try {
        // Denials: no outcome follows them, so a live log's report has no unknown outcomes to note.
        for (let i = 0; i < 345; i++) await log.append({ type: "decision", decision: "deny", i });
        const whileRunning = await runDocCommand(shown[0]!.command, box);
        expect(whileRunning.code).toBe(EXIT.verificationFailed);
        expectOutput(whileRunning, shown[0]!.output);
        const tail = await runDocCommand(shown[1]!.command, box);
        expect(tail.code).toBe(EXIT.ok);
        expectOutput(tail, shown[1]!.output);
        await log.close();
        closed = true;
      } finally {
        if (!closed) await log.close();
      }
      const stopped = await runDocCommand(shown[2]!.command, box);
      expect(stopped.code).toBe(EXIT.ok);
      expectOutput(stopped, shown[2]!.output);
      // One file, record seq 56 (line 57) edited: the break the last example shows, to the line.
      const lines = readFileSync(readdirSync(auditDir).filter((n) => n.endsWith(".jsonl")).sort().map((n) => join(auditDir, n))[0]!, "utf8").split("\n");
      lines[56] = lines[56]!.replace('"deny"', '"allow"');
      writeFileSync(join(box.cwd, "audit.jsonl"), lines.join("\n"));
      const edited = await runDocCommand(shown[3]!.command, box);
      expect(edited.code).toBe(EXIT.verificationFailed);
      expect([...edited.stdout, ...edited.stderr]).toEqual(shown[3]!.output);
    } finally {
      box.remove();
    }
  });

  test("docs/audit.md: the per-chain report of `gateway audit verify` on a directory written by two workers", async () => {
    const block = fences("docs/audit.md", read("docs/audit.md")).find((f) => f.body.startsWith("$ gateway audit verify") && f.body.includes("two workers"))!;
    const [first, ...output] = block.body.split("\n").filter((l) => l.trim() !== "");
    const command = COMMANDS.find((c) => c.file === "docs/audit.md" && c.line === block.line + 1 && first!.includes(c.text))!;
    const box = sandbox();
    try {
      const { signingKey, jwks } = await makeSigner();
      writeFileSync(join(box.cwd, "gateway.jwks"), JSON.stringify(jwks));
      const auditDir = join(box.root, "var/lib/gateway/audit");
      const logs = await Promise.all([0, 1].map((worker) => openAuditLog(logOptions(auditDir, signingKey, { checkpointEvery: 100, worker }))));
      for (let i = 0; i < 300; i++) await logs[i % 2]!.append({ type: "decision", decision: "deny", i });
      await Promise.all(logs.map((log) => log.close()));
      const result = await runDocCommand(command, box);
      expect(result.code).toBe(EXIT.ok);
      expect(result.stdout.length).toBe(output.length);
      for (const [i, docLine] of output.entries()) expect(result.stdout[i]!).toMatch(new RegExp(`^${docLine.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\d+/g, "\\d+")}$`));
    } finally {
      box.remove();
    }
  });

  test("docs/deploy.md: after older audit files were shipped away, verify needs `--partial`", async () => {
    const partial = inlineCommands().find((c) => c.key.startsWith("docs/deploy.md:") && c.text.startsWith("gateway audit verify") && c.text.includes("--partial"));
    expect(partial).toBeDefined();
    const box = sandbox();
    try {
      const auditDir = join(box.root, "var/log/dutygate/audit");
      const { signingKey, jwks } = await makeSigner();
      mkdirSync(join(box.root, "var/lib/dutygate/gateway-key"), { recursive: true });
      writeFileSync(join(box.root, "var/lib/dutygate/gateway-key/public.jwks"), JSON.stringify(jwks));
      const log = await openAuditLog(logOptions(auditDir, signingKey, { checkpointEvery: 50, rotateBytes: 10_000 }));
      try {
        for (let i = 0; i < 200; i++) await log.append({ type: "decision", decision: "deny", i });
      } finally {
        await log.close();
      }
      const files = readdirSync(auditDir).filter((n) => n.endsWith(".jsonl")).sort();
      expect(files.length).toBeGreaterThan(2);
      for (const shipped of files.slice(0, 2)) rmSync(join(auditDir, shipped));
      const command: DocCommand = { file: "docs/deploy.md", line: 0, key: partial!.key, text: partial!.text, synopsis: false };
      const withoutPartial = await runDocCommand(command, box, { edit: (argv) => argv.filter((a) => a !== "--partial") });
      expect(withoutPartial.code).toBe(EXIT.verificationFailed);
      expect(await runDocCommand(command, box)).toMatchObject({ code: EXIT.ok, stderr: [] });
    } finally {
      box.remove();
    }
  });

  test("docs/hot-reload.md: the symlink switch moves `current` to v2 in one rename", async () => {
    const command = one("docs/hot-reload.md", "cd /srv/dutygate");
    const box = sandbox();
    try {
      const srv = join(box.root, "srv/dutygate");
      for (const v of ["v1", "v2"]) mkdirSync(join(srv, v), { recursive: true });
      symlinkSync("v1", join(srv, "current"));
      const block = COMMANDS.filter((c) => c.file === "docs/hot-reload.md" && c.line >= command.line && c.line <= command.line + 1);
      const script = { ...command, text: block.map((c) => c.text).join("\n") };
      for (const c of block) ran.add(c.key);
      expect(await runDocCommand(script, box)).toMatchObject({ code: 0, stderr: [] });
      expect(readlinkSync(join(srv, "current"))).toBe("v2");
      expect(existsSync(join(srv, "tmp"))).toBe(false);
    } finally {
      box.remove();
    }
  });

  test("every npm script, file and `gateway` flag a command or synopsis names exists", () => {
    const help = helpFlags();
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    const wrong: string[] = [];
    const check = (key: string, text: string) => {
      for (const part of text.split(/\s*(?:&&|;)\s*/)) {
        const npmRun = /^npm (?:run (\S+)|(test|start)\b)/.exec(part);
        if (npmRun && !scripts[npmRun[1] ?? npmRun[2]!]) wrong.push(`${key}: no npm script \`${npmRun[1] ?? npmRun[2]}\``);
        const file = /^(?:node_modules\/\.bin\/(?:bun|deno)|npx (?:bun|deno))(?: run(?: -A)?| test)? ([\w./-]+\.ts)\b/.exec(part);
        if (file && !existsSync(join(ROOT, file[1]!))) wrong.push(`${key}: no file \`${file[1]}\``);
        const gateway = /^(?:npx )?gateway (audit verify|[a-z]+)\b(.*)$/.exec(part);
        if (gateway) {
          if (!help.has(gateway[1]!)) wrong.push(`${key}: no command \`gateway ${gateway[1]}\``);
          // `keygen … | sign DIR … | verify …` names several commands on one synopsis line.
          const flags = [...gateway[2]!.split(/ \| (?=[a-z]+ )/)[0]!.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!);
          for (const flag of flags) if (!help.get(gateway[1]!)?.has(flag)) wrong.push(`${key}: \`gateway ${gateway[1]}\` has no \`--${flag}\``);
        }
      }
    };
    for (const c of COMMANDS) check(c.key, c.text);
    for (const c of inlineCommands()) check(c.key, c.text);
    expect(wrong).toEqual([]);
  });

  test("no command assumes a tool `npm install` does not put on the PATH (bare `bun`, `deno`, `tsc`)", () => {
    const bare = [...COMMANDS.map((c) => ({ key: c.key, text: c.text })), ...inlineCommands()].filter((c) => /(^|&&\s*|;\s*)(bun|bunx|deno|tsc) /.test(c.text));
    expect(bare.map((c) => `${c.key}: ${c.text}`)).toEqual([]);
  });

  test("README says what `npm test` installs as root (each package test/run.sh may apt-get install)", () => {
    const installs = [...read("test/run.sh").matchAll(/apt-get install[^']*?--no-install-recommends ([a-z0-9 .+-]+)'/g)];
    expect(installs.length).toBeGreaterThanOrEqual(2);
    const readme = read("README.md").replace(/\s+/g, " ");
    expect(readme).toContain("apt-get");
    for (const install of installs) for (const pkg of install[1]!.split(" ").filter((p) => !p.startsWith("lib"))) expect(readme).toContain(`\`${pkg}\``);
  });

  // Last: the tests above recorded what they ran.
  test("each command block line was run above, is a synopsis checked above, or is listed with the reason it cannot run", () => {
    ran.add(one("docs/admin.md", "gateway explain policies --principal bob.json").key); // "output quoted in the docs" above
    for (const c of COMMANDS.filter((c) => c.file === "docs/ledger.md")) ran.add(c.key); // likewise
    const uncovered = COMMANDS.filter((c) => !ran.has(c.key) && !c.synopsis && NOT_RUN[c.text] === undefined).map((c) => `${c.key}: ${c.text}`);
    expect(uncovered).toEqual([]);
    const stale = Object.keys(NOT_RUN).filter((text) => !COMMANDS.some((c) => c.text === text));
    expect(stale).toEqual([]);
    expect(COMMANDS.filter((c) => ran.has(c.key) && NOT_RUN[c.text] !== undefined).map((c) => c.key)).toEqual([]);
    expect(ran.size).toBeGreaterThan(15);
  });
});
