import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BundleCodes, FileRevisionStore, MemoryRevisionStore, REVISION_STATE_FILE, checkRollback, type RevisionStore } from "./mod.ts";

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-state-"));
  roots.push(dir);
  return dir;
}

const D5 = "d5".repeat(32);
const OTHER = "ee".repeat(32);

const stores: [string, () => RevisionStore][] = [
  ["MemoryRevisionStore", () => new MemoryRevisionStore()],
  ["FileRevisionStore", () => new FileRevisionStore(stateDir())],
];

describe.each(stores)("%s", (_name, makeStore) => {
  test("starts empty and accepts any first revision", () => {
    const store = makeStore();
    expect(store.highest()).toBeNull();
    expect(checkRollback(store, 5, D5)).toBeNull();
    store.accept(5, D5);
    expect(store.highest()).toBe(5);
  });

  test.each([
    ["an older revision", 4, D5, BundleCodes.ROLLBACK],
    ["the same revision with other content", 5, OTHER, BundleCodes.ROLLBACK],
    ["the same revision without a digest", 5, undefined, BundleCodes.ROLLBACK],
    ["the same bundle again (restart, no-op reload)", 5, D5, null],
    ["a newer revision", 6, OTHER, null],
  ] as [string, number, string | undefined, string | null][])("after accepting 5: %s", (_case, revision, digest, expected) => {
    const store = makeStore();
    store.accept(5, D5);
    expect<string | null>(checkRollback(store, revision, digest)?.code ?? null).toBe(expected);
  });

  test("accept refuses to go backwards", () => {
    const store = makeStore();
    store.accept(5, D5);
    expect(() => store.accept(3, OTHER)).toThrow(expect.objectContaining({ code: BundleCodes.ROLLBACK }));
    expect(() => store.accept(5, OTHER)).toThrow(expect.objectContaining({ code: BundleCodes.ROLLBACK }));
    expect(store.highest()).toBe(5);
  });

  test("accept refuses a non-positive revision", () => {
    expect(() => makeStore().accept(0, D5)).toThrow(expect.objectContaining({ code: BundleCodes.USAGE }));
  });
});

describe("FileRevisionStore persistence", () => {
  test("the highest revision survives a restart (a fresh instance on the same directory)", () => {
    const dir = stateDir();
    const first = new FileRevisionStore(dir);
    first.accept(3, OTHER);
    first.accept(7, D5);
    const restarted = new FileRevisionStore(dir);
    expect(restarted.highest()).toBe(7);
    expect(restarted.current()).toEqual({ revision: 7, digest: D5 });
    expect(checkRollback(restarted, 6, OTHER)?.code).toBe(BundleCodes.ROLLBACK);
    expect(checkRollback(restarted, 7, OTHER)?.code).toBe(BundleCodes.ROLLBACK);
    expect(checkRollback(restarted, 7, D5)).toBeNull();
  });

  test("state is written atomically: no temporary files remain, mode 0600", () => {
    const dir = stateDir();
    new FileRevisionStore(dir).accept(2, D5);
    expect(readdirSync(dir)).toEqual([REVISION_STATE_FILE]);
    expect(JSON.parse(readFileSync(join(dir, REVISION_STATE_FILE), "utf8"))).toMatchObject({ revision: 2, digest: D5 });
    if (process.platform !== "win32") expect(statSync(join(dir, REVISION_STATE_FILE)).mode & 0o777).toBe(0o600);
  });

  test.each([
    ["not JSON", "{"],
    ["a negative revision", JSON.stringify({ revision: -1, digest: D5 })],
    ["no digest", JSON.stringify({ revision: 3 })],
    ["empty", ""],
  ])("a corrupt state file (%s) fails closed", (_name, text) => {
    const dir = stateDir();
    writeFileSync(join(dir, REVISION_STATE_FILE), text);
    expect(() => new FileRevisionStore(dir)).toThrow(expect.objectContaining({ code: BundleCodes.REVISION_STATE_CORRUPT }));
  });

  test("the state directory is created when absent", () => {
    const dir = join(stateDir(), "nested", "state");
    new FileRevisionStore(dir).accept(1, D5);
    expect(new FileRevisionStore(dir).highest()).toBe(1);
  });
});
