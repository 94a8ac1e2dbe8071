// Compares the files a manifest lists with the files on disk, one problem per difference.
import type { ManifestFileEntry } from "./manifest.ts";
import { BundleCodes, type BundleProblem } from "./problems.ts";

/**
 * Differences between the manifest's file list and the files read from disk: changed, extra and
 * missing files. A rename shows as one missing and one extra file with the same hash, and both
 * messages say so. Paths in `unreadable` were already reported by the reader and are not reported
 * again as missing.
 */
export function compareBundleFiles(
  expected: readonly ManifestFileEntry[],
  actual: readonly ManifestFileEntry[],
  unreadable: ReadonlySet<string> = new Set(),
): BundleProblem[] {
  const expectedByPath = new Map(expected.map((file) => [file.path, file.sha256]));
  const actualByPath = new Map(actual.map((file) => [file.path, file.sha256]));
  const missing = expected.filter((file) => !actualByPath.has(file.path) && !unreadable.has(file.path));
  const extra = actual.filter((file) => !expectedByPath.has(file.path));
  const problems: BundleProblem[] = [];

  for (const file of actual) {
    const want = expectedByPath.get(file.path);
    if (want !== undefined && want !== file.sha256) {
      problems.push({ code: BundleCodes.FILE_CHANGED, message: `content differs from the manifest (sha256 ${file.sha256.slice(0, 12)}…, signed ${want.slice(0, 12)}…)`, path: file.path });
    }
  }
  for (const file of missing) {
    const renamedTo = extra.find((other) => other.sha256 === file.sha256);
    const hint = renamedTo === undefined ? "" : ` (renamed to \`${renamedTo.path}\`?)`;
    problems.push({ code: BundleCodes.FILE_MISSING, message: `file is in the manifest but not in the directory${hint}`, path: file.path });
  }
  for (const file of extra) {
    const renamedFrom = missing.find((other) => other.sha256 === file.sha256);
    const hint = renamedFrom === undefined ? "" : ` (renamed from \`${renamedFrom.path}\`?)`;
    problems.push({ code: BundleCodes.FILE_EXTRA, message: `file is not in the manifest${hint}`, path: file.path });
  }
  return problems;
}
