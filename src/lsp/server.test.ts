// Which files form the policy of an open `.duty` file (the rest of the server is tested over
// stdio in test/e2e/lsp.test.ts).
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { policyFilesUnder } from "./server.ts";

const root = mkdtempSync(join(tmpdir(), "dutygate-lsp-files-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("the policy of a directory: its .duty files and its subdirectories', hidden entries and node_modules skipped, nothing above", () => {
  const dir = join(root, "policies");
  for (const [path, text] of Object.entries({ "a.duty": "role a\n", "sub/d.duty": "role d\n", ".hidden/b.duty": "role b\n", "node_modules/x/c.duty": "role c\n", "a.test.toml": "", ".e.duty": "role e\n" })) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(join(root, "above.duty"), "role above\n");
  expect([...policyFilesUnder(dir)]).toEqual([["a.duty", "role a\n"], ["sub/d.duty", "role d\n"]]);
});

test("the walk stops after its bound of entries (a .duty file opened in a home directory)", () => {
  const dir = join(root, "wide");
  mkdirSync(dir);
  for (let i = 0; i < 60; i++) writeFileSync(join(dir, `f${String(i).padStart(2, "0")}.duty`), "");
  expect(policyFilesUnder(dir, 50).size).toBe(50);
  expect(policyFilesUnder(dir).size).toBe(60);
});
