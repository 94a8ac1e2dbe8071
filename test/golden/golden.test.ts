// Golden files: rendered diagnostics and compiled trees must match what is checked in.
// After an intended change, run `node_modules/.bin/bun scripts/update-golden.ts` and review the diff.
import { test, expect, describe } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { GOLDEN_DIR, goldenFiles } from "./golden.ts";

const expected = goldenFiles();

describe("golden files", () => {
  test.each([...expected.keys()].map((k) => [k]))("%s", (path) => {
    const file = join(GOLDEN_DIR, path);
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, "utf8")).toBe(expected.get(path)!);
  });

  test("no stale golden files", () => {
    const onDisk = ["diagnostics", "compiled", "policy-tests"].flatMap((dir) => readdirSync(join(GOLDEN_DIR, dir)).map((f) => `${dir}/${f}`));
    expect(onDisk.sort()).toEqual([...expected.keys()].sort());
  });
});
