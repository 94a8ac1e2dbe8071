// Bundle listing: which files make up a policy bundle, and their bytes and hashes.
import { readdir, readFile, stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { BundleCodes, type BundleProblem } from "./problems.ts";

/** File name of the signed manifest at the top of a bundle directory; never part of the bundle itself. */
export const MANIFEST_FILE_NAME = "bundle.sig.json";

/** One file of a bundle as read from disk. */
export interface BundleFile {
  /** Relative to the bundle directory, `/`-separated. */
  path: string;
  /** Content decoded as UTF-8 (invalid sequences become U+FFFD; the hash covers the raw bytes). */
  text: string;
  /** Lowercase hex SHA-256 of the raw bytes. */
  sha256: string;
  /** The raw bytes, as hashed: what a copy of the bundle must hold to verify again. */
  bytes: Uint8Array;
}

/** What reading a bundle directory produced: the files that could be read, and problems for the rest. */
export interface BundleFilesRead {
  /** Sorted by path (UTF-16 code units, as `Array.prototype.sort`). */
  files: BundleFile[];
  problems: BundleProblem[];
}

// Bounds, so a symlink loop or a mistaken `dir = /` cannot run away.
const MAX_DEPTH = 32;
const MAX_FILES = 10_000;
const READ_CONCURRENCY = 16;

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * True for names a bundle listing skips: those starting with `..`. Kubernetes mounts a ConfigMap
 * as `DIR/..data -> ..2026_11_22_…/` plus `DIR/x.duty -> ..data/x.duty`; the files are read through
 * the top-level symlinks, and the timestamped directories behind them are not listed twice.
 */
export function isSkippedName(name: string): boolean {
  return name.startsWith("..");
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOENT") return "it vanished or is a dangling symlink";
  if (typeof code === "string") return code.toLowerCase();
  return String(error);
}

/**
 * Lists the bundle's regular files under `dir`, recursively, following symlinks; paths relative
 * with `/`, sorted. Skips names starting with `..`, the top-level manifest, and anything that is
 * neither a regular file nor a directory (FIFOs would block a reader).
 */
export async function listBundlePaths(dir: string): Promise<{ paths: string[]; problems: BundleProblem[] }> {
  const paths: string[] = [];
  const problems: BundleProblem[] = [];
  const visited = new Set<string>();

  const walk = async (absolute: string, relative: string, depth: number): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(absolute)).sort();
    } catch (error) {
      if (relative === "") {
        problems.push({ code: BundleCodes.DIR_UNREADABLE, message: `cannot list bundle directory \`${dir}\`: ${describeFsError(error)}` });
      } else {
        problems.push({ code: BundleCodes.FILE_UNREADABLE, message: `cannot list directory: ${describeFsError(error)}`, path: relative });
      }
      return;
    }
    for (const name of names) {
      if (isSkippedName(name)) continue;
      const rel = relative === "" ? name : `${relative}/${name}`;
      if (rel === MANIFEST_FILE_NAME) continue;
      const abs = join(absolute, name);
      let info;
      try {
        info = await stat(abs); // follows symlinks on purpose
      } catch (error) {
        problems.push({ code: BundleCodes.FILE_UNREADABLE, message: `cannot read file: ${describeFsError(error)}`, path: rel });
        continue;
      }
      if (info.isDirectory()) {
        const identity = `${info.dev}:${info.ino}`;
        if (visited.has(identity) || depth >= MAX_DEPTH) {
          problems.push({ code: BundleCodes.FILE_UNREADABLE, message: "directory loop or nesting deeper than 32 levels", path: rel });
          continue;
        }
        visited.add(identity);
        await walk(abs, rel, depth + 1);
      } else if (info.isFile()) {
        if (paths.length >= MAX_FILES) {
          problems.push({ code: BundleCodes.FILE_UNREADABLE, message: `bundle has more than ${MAX_FILES} files`, path: rel });
          return;
        }
        paths.push(rel);
      }
    }
  };

  try {
    const top = await stat(dir);
    if (!top.isDirectory()) {
      return { paths, problems: [{ code: BundleCodes.DIR_UNREADABLE, message: `bundle path \`${dir}\` is not a directory` }] };
    }
    visited.add(`${top.dev}:${top.ino}`);
  } catch (error) {
    return { paths, problems: [{ code: BundleCodes.DIR_UNREADABLE, message: `cannot open bundle directory \`${dir}\`: ${describeFsError(error)}` }] };
  }
  await walk(dir, "", 0);
  paths.sort();
  return { paths, problems };
}

/**
 * Reads every bundle file under `dir` (see {@link listBundlePaths}) with its SHA-256. A file that
 * vanishes between listing and reading becomes a `BUNDLE_FILE_UNREADABLE` problem, never a throw.
 *
 * @example
 * const { files, problems } = await readBundleFiles("policies");
 */
export async function readBundleFiles(dir: string): Promise<BundleFilesRead> {
  const { paths, problems } = await listBundlePaths(dir);
  const read = await readListedBundleFiles(dir, paths);
  return { files: read.files, problems: sortProblems([...problems, ...read.problems]) };
}

/**
 * Reads the given bundle-relative `paths` under `dir` with their SHA-256; a path that cannot be
 * read (it vanished since it was listed) becomes a `BUNDLE_FILE_UNREADABLE` problem.
 */
export async function readListedBundleFiles(dir: string, paths: readonly string[]): Promise<BundleFilesRead> {
  const problems: BundleProblem[] = [];
  const results: (BundleFile | null)[] = new Array(paths.length).fill(null);
  const decoder = new TextDecoder("utf-8");
  for (let start = 0; start < paths.length; start += READ_CONCURRENCY) {
    const batch = paths.slice(start, start + READ_CONCURRENCY);
    await Promise.all(
      batch.map(async (path, offset) => {
        try {
          const bytes = await readFile(join(dir, ...path.split("/")));
          results[start + offset] = { path, text: decoder.decode(bytes), sha256: sha256Hex(bytes), bytes };
        } catch (error) {
          problems.push({ code: BundleCodes.FILE_UNREADABLE, message: `cannot read file: ${describeFsError(error)}`, path });
        }
      }),
    );
  }
  return { files: results.filter((file): file is BundleFile => file !== null), problems: sortProblems(problems) };
}

/** Orders problems by path, then code, so output is stable across runs. */
export function sortProblems(problems: BundleProblem[]): BundleProblem[] {
  const compare = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return problems.sort((a, b) => compare(a.path ?? "", b.path ?? "") || compare(a.code, b.code));
}
