// Regenerates test/golden/ (diagnostics of the broken policies, compiled trees) from the sources.
// Run: node_modules/.bin/bun scripts/update-golden.ts   — then review `git diff test/golden`.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { GOLDEN_DIR, goldenFiles } from "../test/golden/golden.ts";

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
