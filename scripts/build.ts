// `npm run build`: the single-file `gateway` binaries for bare Linux VMs.
//
//   dist/gateway               linux-x64   (bun-linux-x64)
//   dist/gateway-linux-arm64   linux-arm64 (bun-linux-arm64, cross-compiled)
//   dist/SHA256SUMS            `sha256sum -c` format
//
// The output directory holds exactly one build: the binaries are made in a sibling directory and
// swapped in whole, so `--target x64` after a full build leaves no arm64 binary that SHA256SUMS
// no longer lists, and an interrupted build leaves the previous set intact.
//
// Each binary is `bun build --compile --bytecode --format=esm --minify` of src/main.ts with the
// git commit injected as the global `DUTYGATE_COMMIT` (read by src/version.ts), and the entry of
// each worker thread the program starts ({@link WORKER_ENTRYPOINTS}) beside it. Everything the
// program needs at run time is inside it: the example policies and starter config come from the
// generated src/init/embedded.ts, the playground's page from src/play/embedded.ts; this script
// regenerates both first.
//
//   npm run build -- [--target x64|arm64|all] [--out DIR]
//   DUTYGATE_COMMIT=<id> npm run build               (building from a tree without git)
//
// Cross-compiling needs the Bun runtime of the other platform: `bun build` fetches it once from
// the npm registry (package `@oven/bun-linux-aarch64`, the same version as the Bun in
// node_modules) and caches it in ~/.bun/install/cache, after which builds are offline.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EMBEDDED_MODULE_PATH, renderEmbeddedModule } from "../src/init/generate.ts";
import { regeneratePlayEmbedded } from "../src/play/generate.ts";

export const REPO_ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const BUN = join(REPO_ROOT, "node_modules", ".bin", "bun");

/** Build targets: Bun's `--target` and the file name in `dist/`. */
export const TARGETS = {
  x64: { bunTarget: "bun-linux-x64", file: "gateway" },
  arm64: { bunTarget: "bun-linux-arm64", file: "gateway-linux-arm64" },
} as const;
export type TargetName = keyof typeof TARGETS;

/**
 * The entries of the program's worker threads, compiled into the executable beside src/main.ts.
 * With `--root src` each keeps its path under src/ (with `.js` for `.ts`): the program finds it at
 * `/$bunfs/root/<path>` (src/ledger/checkpointer.ts).
 */
export const WORKER_ENTRYPOINTS = ["src/ledger/checkpoint-worker.ts"] as const;

/** The commit id baked into `gateway --version`: `DUTYGATE_COMMIT`, else git's short id (`-dirty` with uncommitted tracked changes), else `unknown`. */
export function buildCommit(): string {
  if (process.env.DUTYGATE_COMMIT) return process.env.DUTYGATE_COMMIT;
  const head = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8" });
  if (head.status !== 0) return "unknown";
  const dirty = spawnSync("git", ["diff", "--quiet", "HEAD", "--", "src", "dsl", "policies", "package.json"], { cwd: REPO_ROOT }).status === 1;
  return head.stdout.trim() + (dirty ? "-dirty" : "");
}

/** Rewrites src/init/embedded.ts when policies/ or the starter config changed; true when it did. */
export function regenerateEmbedded(): boolean {
  const wanted = renderEmbeddedModule(REPO_ROOT);
  let current = "";
  try { current = readFileSync(EMBEDDED_MODULE_PATH, "utf8"); } catch { /* first build */ }
  if (current === wanted) return false;
  writeFileSync(EMBEDDED_MODULE_PATH, wanted);
  return true;
}

export interface BuiltBinary {
  target: TargetName;
  outfile: string;
  bytes: number;
  sha256: string;
  commit: string;
}

/**
 * Compiles src/main.ts (and the worker entries) into one executable for `target`. Throws `Error` with bun's output when
 * the build fails.
 */
export function buildBinary(options: { target: TargetName; outfile: string; commit?: string }): BuiltBinary {
  const commit = options.commit ?? buildCommit();
  mkdirSync(resolve(options.outfile, ".."), { recursive: true });
  const args = [
    "build", "--compile", "--bytecode", "--format=esm", "--minify",
    `--target=${TARGETS[options.target].bunTarget}`,
    "--define", `DUTYGATE_COMMIT=${JSON.stringify(commit)}`,
    "--root", join(REPO_ROOT, "src"),
    join(REPO_ROOT, "src", "main.ts"),
    ...WORKER_ENTRYPOINTS.map((entry) => join(REPO_ROOT, entry)),
    "--outfile", options.outfile,
  ];
  const run = spawnSync(BUN, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: 300_000 });
  if (run.status !== 0) throw new Error(`bun build for ${options.target} failed (exit ${run.status ?? run.signal}):\n${run.stdout}${run.stderr}`);
  const bytes = readFileSync(options.outfile);
  return { target: options.target, outfile: options.outfile, bytes: statSync(options.outfile).size, sha256: createHash("sha256").update(bytes).digest("hex"), commit };
}

/** `sha256sum -c` compatible lines for the built files. */
export function renderChecksums(built: readonly BuiltBinary[]): string {
  return built.map((b) => `${b.sha256}  ${basename(b.outfile)}\n`).join("");
}

/** Every file a build writes into its output directory. */
const RELEASE_FILES: ReadonlySet<string> = new Set([...Object.values(TARGETS).map((t) => t.file), "SHA256SUMS"]);

/**
 * Builds `targets` into `outDir` so that it holds exactly this build: the binaries and
 * `SHA256SUMS` listing each of them, nothing left from an earlier build. They are made in a
 * sibling directory that then replaces `outDir` (two renames). A directory holding files a build
 * does not make is refused rather than emptied: `--out .` must never delete a checkout.
 */
export function buildRelease(options: { targets: readonly TargetName[]; outDir: string; commit?: string; onBuilt?: (b: BuiltBinary, ms: number) => void }): BuiltBinary[] {
  const outDir = resolve(options.outDir);
  const foreign = existsSync(outDir) ? readdirSync(outDir).filter((name) => !RELEASE_FILES.has(name)) : [];
  if (foreign.length > 0) throw new Error(`\`${outDir}\` holds files a build does not make (${foreign.join(", ")}); the build replaces the whole directory, so name an empty or new one with --out`);
  const commit = options.commit ?? buildCommit();
  const staging = `${outDir}.building-${process.pid}`;
  const previous = `${outDir}.previous-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const built: BuiltBinary[] = [];
    for (const target of options.targets) {
      const started = performance.now();
      const b = buildBinary({ target, outfile: join(staging, TARGETS[target].file), commit });
      built.push(b);
      options.onBuilt?.({ ...b, outfile: join(outDir, TARGETS[target].file) }, Math.round(performance.now() - started));
    }
    writeFileSync(join(staging, "SHA256SUMS"), renderChecksums(built));
    if (existsSync(outDir)) renameSync(outDir, previous);
    renameSync(staging, outDir);
    rmSync(previous, { recursive: true, force: true });
    return built.map((b) => ({ ...b, outfile: join(outDir, basename(b.outfile)) }));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function parseTargets(argv: string[]): { targets: TargetName[]; outDir: string } {
  let targets: TargetName[] = ["x64", "arm64"];
  let outDir = join(REPO_ROOT, "dist");
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--target") {
      const t = argv[++i];
      if (t === "all") targets = ["x64", "arm64"];
      else if (t === "x64" || t === "arm64") targets = [t];
      else throw new Error(`unknown target \`${t}\` (x64, arm64 or all)`);
    } else if (a === "--out") {
      outDir = resolve(argv[++i] ?? "dist");
    } else {
      throw new Error(`unknown argument \`${a}\` (usage: npm run build -- [--target x64|arm64|all] [--out DIR])`);
    }
  }
  return { targets, outDir };
}

if (import.meta.main) {
  try {
    const { targets, outDir } = parseTargets(process.argv.slice(2));
    if (regenerateEmbedded()) console.log("regenerated src/init/embedded.ts (policies/ or the starter config changed)");
    if (regeneratePlayEmbedded()) console.log("regenerated src/play/embedded.ts (the playground page or the grammar changed)");
    buildRelease({
      targets,
      outDir,
      onBuilt: (b, ms) => console.log(`${b.outfile}  ${(b.bytes / 1024 / 1024).toFixed(1)} MiB  ${TARGETS[b.target].bunTarget}  commit ${b.commit}  (${ms} ms)`),
    });
    console.log(`${join(outDir, "SHA256SUMS")}  (verify: cd ${outDir} && sha256sum -c SHA256SUMS)`);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    // Not process.exit: the message above may still be on its way out (src/stdio.ts).
    process.exitCode = 1;
  }
}
