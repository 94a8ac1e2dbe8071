// The one way to regenerate every golden file: the diagnostics, compiled trees and policy-test
// reports of test/golden/, the table of docs/errors.md, the `explain`, `query` and SoD goldens,
// and the editor grammar's snapshots.
// Run: node_modules/.bin/bun scripts/update-golden.ts   — then review `git diff`.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { GOLDEN_DIR, goldenFiles } from "../test/golden/golden.ts";
import { ERRORS_DOC, renderErrorCodeTable, withErrorCodeTable } from "../test/support/error-catalogue.ts";

const ROOT = join(import.meta.dir, "..");

const files = goldenFiles();
for (const dir of ["diagnostics", "compiled", "policy-tests"]) {
  mkdirSync(join(GOLDEN_DIR, dir), { recursive: true });
  // Files no longer produced are removed so that the test's stale-file check stays meaningful.
  for (const f of readdirSync(join(GOLDEN_DIR, dir))) if (!files.has(`${dir}/${f}`)) rmSync(join(GOLDEN_DIR, dir, f));
}
for (const [path, content] of files) {
  mkdirSync(dirname(join(GOLDEN_DIR, path)), { recursive: true });
  writeFileSync(join(GOLDEN_DIR, path), content);
}
console.log(`wrote ${files.size} golden files under test/golden/`);

// The catalogue of error codes as docs/errors.md shows it.
writeFileSync(ERRORS_DOC, withErrorCodeTable(readFileSync(ERRORS_DOC, "utf8"), renderErrorCodeTable()));
console.log("wrote the error code table of docs/errors.md");

// Goldens a test writes itself: the test compares, or rewrites under UPDATE_GOLDEN=1.
const bun = process.execPath;
const writtenByTests = ["dsl/analysis.test.ts", "test/golden/explain/", "test/golden/query/"];
const run = spawnSync(bun, ["test", ...writtenByTests], { cwd: ROOT, env: { ...process.env, UPDATE_GOLDEN: "1" }, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 300_000 });
if (run.status !== 0) {
  console.error(run.stderr.split("\n").filter((l) => /fail|error/i.test(l)).slice(0, 20).join("\n"));
  throw new Error(`rewriting the goldens of ${writtenByTests.join(", ")} failed (exit ${run.status})`);
}
console.log(`rewrote the goldens of ${writtenByTests.join(", ")}`);

// The editor grammar's snapshots (a TextMate engine tokenises every shipped policy).
const snapshots = spawnSync(bun, ["editors/vscode/scripts/update-snapshots.ts"], { cwd: ROOT, stdio: "inherit", timeout: 300_000 });
if (snapshots.status !== 0) throw new Error(`rewriting the grammar snapshots failed (exit ${snapshots.status})`);
