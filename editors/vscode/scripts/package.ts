// `npm run package:vscode`: the editor extension as a `.vsix`, offline.
//
//   1. bundles src/extension.ts and vscode-languageclient into dist/extension.cjs (the editor
//      provides `vscode`), so the package needs no node_modules of its own;
//   2. runs `vsce package --no-dependencies` on this directory.
//
//   npm run package:vscode -- [--out DIR]     (default editors/vscode/dist/)
//
// Prints the path of the .vsix; exits 1 with the tool's output when a step fails.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const EXTENSION_DIR = resolve(fileURLToPath(new URL("..", import.meta.url)));
const REPO_ROOT = resolve(EXTENSION_DIR, "..", "..");

/** The file name vsce gives the package: `NAME-VERSION.vsix`. */
export function vsixName(): string {
  const manifest = JSON.parse(readFileSync(join(EXTENSION_DIR, "package.json"), "utf8")) as { name: string; version: string };
  return `${manifest.name}-${manifest.version}.vsix`;
}

/** Bundles the client into dist/extension.cjs; throws with the bundler's messages on failure. */
export async function bundleExtension(): Promise<string> {
  const outfile = join(EXTENSION_DIR, "dist", "extension.cjs");
  const result = await Bun.build({
    entrypoints: [join(EXTENSION_DIR, "src", "extension.ts")],
    target: "node",
    format: "cjs",
    external: ["vscode"],
    naming: "extension.cjs",
    outdir: join(EXTENSION_DIR, "dist"),
  });
  if (!result.success) throw new Error(`bundling the extension failed:\n${result.logs.map(String).join("\n")}`);
  return outfile;
}

/** Bundles and packages the extension into `outDir`; returns the .vsix path. */
export async function packageExtension(outDir: string = join(EXTENSION_DIR, "dist")): Promise<string> {
  await bundleExtension();
  mkdirSync(outDir, { recursive: true });
  const vsix = join(resolve(outDir), vsixName());
  // No repository URL and no LICENSE file of its own: say so up front, or vsce asks on a terminal.
  const run = spawnSync(join(REPO_ROOT, "node_modules", ".bin", "vsce"), ["package", "--no-dependencies", "--skip-license", "--allow-missing-repository", "--out", vsix], {
    cwd: EXTENSION_DIR,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`vsce package failed (exit ${run.status ?? run.signal}):\n${run.stdout}${run.stderr}`);
  return vsix;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  let outDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out" && args[i + 1]) outDir = args[++i];
    else {
      console.error(`error: unknown argument \`${args[i]}\` (usage: npm run package:vscode -- [--out DIR])`);
      process.exit(64);
    }
  }
  try {
    console.log(await packageExtension(outDir));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(1);
  }
}
