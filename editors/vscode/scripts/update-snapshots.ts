// Regenerates the grammar's golden files (test/snapshots/*.snap) with vscode-textmate.
// Run from the repository root: node_modules/.bin/bun editors/vscode/scripts/update-snapshots.ts
// — then review `git diff editors/vscode/test/snapshots`.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { loadTextMateGrammar, renderSnapshot, SNAPSHOT_DIR, snapshotSources, tokenizeText } from "../test/textmate.ts";

const grammar = await loadTextMateGrammar();
const sources = snapshotSources();
mkdirSync(SNAPSHOT_DIR, { recursive: true });
const wanted = new Set(sources.map((s) => basename(s.snapshot)));
// Snapshots of sources that are gone are removed, so the test's stale-file check means something.
for (const f of readdirSync(SNAPSHOT_DIR)) if (!wanted.has(f)) rmSync(join(SNAPSHOT_DIR, f));
for (const { path, snapshot } of sources) {
  const text = readFileSync(path, "utf8");
  writeFileSync(snapshot, renderSnapshot(text, tokenizeText(grammar, text)));
}
console.log(`wrote ${sources.length} snapshots under ${SNAPSHOT_DIR}`);
