// The one way a test gets a scratch directory: a fresh one under the system temp dir, removed
// after the last test (test/support/preload.ts; also after a failed or timed-out test, which an
// `afterAll` in each file would miss), or when a script (a benchmark) exits.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const created: string[] = [];
let armed = false;

/** A new empty directory `<tmp>/<prefix>XXXXXX`, removed with its contents after the tests or at exit. */
export function tempDir(prefix = "dutygate-test-"): string {
  if (!armed) {
    armed = true;
    process.once("exit", removeTempDirs);
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Removes `dir` now (a benchmark's large files, a test that deletes its directory on purpose). */
export function removeTempDir(dir: string): void {
  const i = created.indexOf(dir);
  if (i >= 0) created.splice(i, 1);
  rmSync(dir, { recursive: true, force: true });
}

/** Removes every directory `tempDir` made so far (after the last test; at exit); a gone one is fine. */
export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}
