// `gateway fmt [DIR|FILE…] [--check] [--diff]`: rewrites `.duty` files in the canonical layout
// (dsl/format.ts). `--check` changes nothing and lists the files that are not formatted (exit 7,
// for CI); `--diff` changes nothing and prints what formatting would change. A file that does not
// parse is left untouched and its diagnostics are printed (exit 1).
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatPolicySource, renderDiagnostic } from "../../dsl/mod.ts";
import { readPolicyDirectory } from "../policy/mod.ts";
import { unifiedDiff } from "./diff.ts";
import { fileErrorReason } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

export interface FmtParams {
  /** Directories (every `.duty` file below them) and files; `policies` when empty. */
  paths: string[];
  check: boolean;
  diff: boolean;
}

/** The `.duty` files named by `paths`, in order, each once. Throws nothing: a missing path is reported. */
function policyFilesOf(paths: readonly string[], io: Io): string[] | null {
  const files: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) {
      io.err(`error: \`${p}\` does not exist`);
      return null;
    }
    if (statSync(p).isDirectory()) {
      for (const f of readPolicyDirectory(p)) if (f.path.endsWith(".duty")) files.push(join(p, f.path));
    } else files.push(p);
  }
  return [...new Set(files)];
}

/**
 * Which files of a policy are not in the canonical layout (`gateway check` hints at `gateway fmt`);
 * files that do not parse are not counted (their errors are reported on their own).
 */
export function unformattedFiles(sources: ReadonlyArray<{ path: string; text: string }>): string[] {
  return sources.filter((s) => {
    const r = formatPolicySource(s);
    return r.text !== null && r.text !== s.text;
  }).map((s) => s.path);
}

/** Runs `gateway fmt`; returns the exit code (see EXIT). */
export function runFmt(params: FmtParams, io: Io): number {
  const files = policyFilesOf(params.paths.length ? params.paths : ["policies"], io);
  if (!files) return EXIT.usage;
  if (files.length === 0) {
    io.err(`error: no \`.duty\` files under ${params.paths.map((p) => `\`${p}\``).join(", ") || "`policies`"}`);
    return EXIT.usage;
  }
  let broken = 0;
  const changed: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      io.err(`error: cannot read \`${file}\`: ${fileErrorReason(e)}`);
      return EXIT.usage;
    }
    const r = formatPolicySource({ path: file, text });
    if (r.text === null) {
      broken++;
      for (const d of r.diagnostics) io.err(renderDiagnostic(d, new Map([[file, text]])) + "\n");
      continue;
    }
    if (r.text === text) continue;
    changed.push(file);
    if (params.diff) io.out(unifiedDiff(file, text, r.text).trimEnd());
    else if (params.check) io.out(file);
    else {
      writeAtomically(file, r.text);
      io.out(`formatted ${file}`);
    }
  }
  if (broken) {
    io.err(`error: ${broken} file${broken === 1 ? "" : "s"} not formatted: fix the syntax errors above`);
    return EXIT.policyErrors;
  }
  if ((params.check || params.diff) && changed.length) {
    if (params.check) io.err(`${changed.length} file${changed.length === 1 ? " is" : "s are"} not formatted; \`gateway fmt ${params.paths.join(" ") || "policies"}\` formats ${changed.length === 1 ? "it" : "them"}`);
    return params.check ? EXIT.notFormatted : EXIT.ok;
  }
  return EXIT.ok;
}

/** Replaces a file by renaming a complete copy over it, so a crash never leaves half a policy. */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.fmt-${process.pid}.tmp`;
  writeFileSync(tmp, text);
  chmodSync(tmp, statSync(file).mode & 0o7777);
  renameSync(tmp, file);
}
