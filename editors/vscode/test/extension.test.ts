// The editor extension as a package: `npm run package:vscode` makes a .vsix offline holding the
// grammar, the language configuration and a client bundled to need no node_modules; the
// manifest points at files that exist; the client starts `gateway lsp` as configured; editor
// packages stay out of the gateway's runtime dependencies.
import { afterAll, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLspSession, uriOf } from "../../../test/support/lsp-client.ts";
import { serverCommand } from "../src/server-command.ts";
import { EXTENSION_DIR, GRAMMAR_PATH, REPO_ROOT } from "./textmate.ts";
import { readZipEntries } from "./zip.ts";

const manifest = JSON.parse(readFileSync(join(EXTENSION_DIR, "package.json"), "utf8"));
const rootManifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
const tmp = mkdtempSync(join(tmpdir(), "dutygate-vsix-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Whether this process may run a command without network (`unshare -n`: root, and a kernel that allows it). */
const offline = spawnSync("unshare", ["-n", "true"]).status === 0;

/** Runs argv in its own process group, killed by its PID when the deadline passes or the test ends. */
async function runInGroup(argv: string[], deadlineMs: number): Promise<{ code: number | null; out: string }> {
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const timer = setTimeout(() => { try { process.kill(-child.pid!, "SIGKILL"); } catch { /* gone */ } }, deadlineMs);
  try {
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    return { code, out };
  } finally {
    clearTimeout(timer);
    try { process.kill(-child.pid!, "SIGKILL"); } catch { /* the group has exited */ }
  }
}

test(`npm run package:vscode makes a .vsix with the grammar, the language configuration and the client${offline ? ", without network" : ""}`, async () => {
  const npmRun = ["npm", "run", "--silent", "package:vscode", "--", "--out", tmp];
  const { code, out } = await runInGroup(offline ? ["unshare", "-n", ...npmRun] : npmRun, 180_000);
  expect({ code, out }).toEqual({ code: 0, out: expect.stringContaining(`${manifest.name}-${manifest.version}.vsix`) });
  const entries = readZipEntries(join(tmp, `${manifest.name}-${manifest.version}.vsix`));
  expect(entries.get("extension/syntaxes/duty.tmLanguage.json")?.toString("utf8")).toBe(readFileSync(GRAMMAR_PATH, "utf8"));
  expect(entries.get("extension/language-configuration.json")?.toString("utf8")).toBe(readFileSync(join(EXTENSION_DIR, "language-configuration.json"), "utf8"));
  expect(JSON.parse(entries.get("extension/package.json")!.toString("utf8")).contributes).toEqual(manifest.contributes);
  // Sources, tests and scripts stay out; the client is one bundled file.
  expect([...entries.keys()].filter((n) => n.startsWith("extension/")).sort()).toEqual([
    "extension/dist/extension.cjs", "extension/language-configuration.json", "extension/package.json", "extension/readme.md", "extension/syntaxes/duty.tmLanguage.json",
  ]);
  // The bundle needs nothing but the editor's `vscode` and Node's own modules at run time.
  const bundle = entries.get("extension/dist/extension.cjs")!.toString("utf8");
  const required = new Set([...bundle.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!));
  expect([...required].filter((m) => m !== "vscode" && !builtinModules.includes(m.replace(/^node:/, "")))).toEqual([]);
  expect(bundle).toContain("vscode-languageclient");
}, 200_000);

test("the manifest is a valid extension manifest whose files exist", () => {
  expect(manifest).toMatchObject({ name: "dutygate-duty", publisher: "dutygate", version: rootManifest.version, main: "./dist/extension.cjs" });
  // vscode-languageclient states the oldest editor it runs in; the extension may not claim older.
  const minimum = (range: string) => range.replace(/^\^/, "").split(".").map(Number);
  const client = JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/vscode-languageclient/package.json"), "utf8"));
  const [ours, theirs] = [minimum(manifest.engines.vscode), minimum(client.engines.vscode)];
  expect(ours[0]! * 1000 + ours[1]!).toBeGreaterThanOrEqual(theirs[0]! * 1000 + theirs[1]!);
  const [language] = manifest.contributes.languages;
  expect(language).toMatchObject({ id: "duty", extensions: [".duty"] });
  const config = JSON.parse(readFileSync(join(EXTENSION_DIR, language.configuration), "utf8"));
  expect(config.comments).toEqual({ lineComment: "#" });
  expect(config.brackets).toEqual([["{", "}"], ["[", "]"], ["(", ")"]]);
  for (const pattern of [config.wordPattern, config.indentationRules.increaseIndentPattern, config.indentationRules.decreaseIndentPattern]) expect(() => new RegExp(pattern)).not.toThrow();
  expect(new RegExp(config.indentationRules.increaseIndentPattern).test("principal {  # the caller")).toBe(true);
  const [grammar] = manifest.contributes.grammars;
  expect(grammar).toMatchObject({ language: "duty", scopeName: "source.duty" });
  expect(JSON.parse(readFileSync(join(EXTENSION_DIR, grammar.path), "utf8")).scopeName).toBe("source.duty");
  expect(Object.keys(manifest.contributes.configuration.properties).sort()).toEqual(["dutygate.lspArgs", "dutygate.path"]);
  expect(manifest.contributes.configuration.properties["dutygate.path"].default).toBe("gateway");
});

test("the client starts `gateway lsp`, or the configured binary with extra arguments", () => {
  expect(serverCommand({})).toEqual({ command: "gateway", args: ["lsp"] });
  expect(serverCommand({ path: "  " })).toEqual({ command: "gateway", args: ["lsp"] });
  expect(serverCommand({ path: "/opt/dutygate/gateway", lspArgs: ["--verbose"] })).toEqual({ command: "/opt/dutygate/gateway", args: ["lsp", "--verbose"] });
  expect(serverCommand({ path: "./node_modules/.bin/gateway", lspArgs: [3 as never, "x"] })).toEqual({ command: "./node_modules/.bin/gateway", args: ["lsp", "x"] });
});

test("the command the client starts — `gateway lsp` and the `--stdio` its library adds — is a language server that checks .duty files", async () => {
  // vscode-languageclient appends `--stdio` to a command it runs with TransportKind.stdio.
  const library = readFileSync(join(REPO_ROOT, "node_modules/vscode-languageclient/lib/node/main.js"), "utf8");
  expect(library).toMatch(/transport === TransportKind\.stdio\) \{\s*args\.push\('--stdio'\)/);
  // `dutygate.path` naming a `gateway` binary: here a wrapper that runs the source.
  const bin = join(tmp, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "gateway"), `#!/bin/sh\nexec "${join(REPO_ROOT, "node_modules/.bin/bun")}" "${join(REPO_ROOT, "src/main.ts")}" "$@"\n`);
  chmodSync(join(bin, "gateway"), 0o755);
  const project = join(tmp, "project");
  cpSync(join(REPO_ROOT, "policies"), join(project, "policies"), { recursive: true });
  const { command, args } = serverCommand({ path: join(bin, "gateway") });
  const session = await startLspSession([command, ...args, "--stdio"], { cwd: project });
  try {
    const file = join(project, "policies", "changes.duty");
    const broken = await session.open(uriOf(file), readFileSync(file, "utf8") + "grant developer approve_chnge\n");
    expect(broken.map((d) => d.code)).toEqual(["E_UNKNOWN_DUTY"]);
    expect(broken[0]!.range.start).toEqual({ line: readFileSync(file, "utf8").split("\n").length - 1, character: 16 });
  } finally {
    await session.close().catch(() => session.kill());
  }
}, 60_000);

test("editor packages are development dependencies only, never the gateway's runtime ones", () => {
  const editorPackages = ["@vscode/vsce", "vscode-languageclient", "vscode-textmate", "vscode-oniguruma", "@types/vscode", "playwright-core"];
  for (const name of editorPackages) {
    expect({ name, runtime: name in (rootManifest.dependencies ?? {}) }).toEqual({ name, runtime: false });
    expect({ name, dev: name in rootManifest.devDependencies }).toEqual({ name, dev: true });
  }
  expect(manifest.dependencies ?? {}).toEqual({});
});
