import { describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BundleCodes, MANIFEST_FILE_NAME, generateSigningKey, listBundlePaths, readBundleFiles, readListedBundleFiles, sha256Hex, verifyBundle } from "./mod.ts";
import { tempDir } from "../../test/support/temp-dir.ts";
import { signBundleForTest } from "../../test/support/sign-bundle.ts";


/** Lays out `dir` as Kubernetes mounts a ConfigMap: timestamped data dir, `..data` link, per-file links. */
function kubernetesLayout(dir: string, stamp: string, files: Record<string, string>): void {
  mkdirSync(join(dir, stamp));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, stamp, name), text);
  symlinkSync(stamp, join(dir, "..data"));
  for (const name of Object.keys(files)) symlinkSync(join("..data", name), join(dir, name));
}

describe("listBundlePaths / readBundleFiles", () => {
  test("recursive, sorted, `/`-separated; the manifest and `..` names are skipped", async () => {
    const dir = tempDir("dutygate-files-");
    mkdirSync(join(dir, "teams/ops"), { recursive: true });
    writeFileSync(join(dir, "z.duty"), "z");
    writeFileSync(join(dir, "a.duty"), "a");
    writeFileSync(join(dir, "teams/ops/deploy.duty"), "d");
    writeFileSync(join(dir, "teams/b.test.toml"), "t");
    writeFileSync(join(dir, MANIFEST_FILE_NAME), "{}");
    writeFileSync(join(dir, "..hidden-tmp"), "x");
    writeFileSync(join(dir, "teams", MANIFEST_FILE_NAME), "nested manifests are ordinary files");
    const { paths, problems } = await listBundlePaths(dir);
    expect(problems).toEqual([]);
    expect(paths).toEqual(["a.duty", "teams/b.test.toml", `teams/${MANIFEST_FILE_NAME}`, "teams/ops/deploy.duty", "z.duty"]);
    const read = await readBundleFiles(dir);
    expect(read.files.find((f) => f.path === "a.duty")).toEqual({ path: "a.duty", text: "a", sha256: sha256Hex("a"), bytes: new TextEncoder().encode("a") });
  });

  test("Kubernetes ConfigMap layout: files read through the symlinks, timestamped dirs not listed", async () => {
    const dir = tempDir("dutygate-files-");
    kubernetesLayout(dir, "..2026_11_22_05_34_00.123", { "main.duty": "role sre\n", "main.test.toml": "[[case]]\n" });
    const read = await readBundleFiles(dir);
    expect(read.problems).toEqual([]);
    expect(read.files.map((f) => [f.path, f.text])).toEqual([
      ["main.duty", "role sre\n"],
      ["main.test.toml", "[[case]]\n"],
    ]);
  });

  test("a signed Kubernetes-style bundle verifies", async () => {
    const dir = tempDir("dutygate-files-");
    kubernetesLayout(dir, "..2026_11_22_05_34_00.123", { "main.duty": "role sre\n" });
    const key = await generateSigningKey({ kid: "k" });
    await signBundleForTest(dir, [key], { revision: 1 });
    const result = await verifyBundle(dir, { trustedKeys: { keys: [key.publicJwk] }, minSigners: 1 });
    expect(result.ok && result.bundle.files.map((f) => f.path)).toEqual(["main.duty"]);
  });

  test("a dangling symlink (a file vanished between list and read) is a problem, not a crash", async () => {
    const dir = tempDir("dutygate-files-");
    writeFileSync(join(dir, "ok.duty"), "ok");
    symlinkSync("gone.duty", join(dir, "vanished.duty"));
    const read = await readBundleFiles(dir);
    expect(read.files.map((f) => f.path)).toEqual(["ok.duty"]);
    expect(read.problems).toEqual([{ code: BundleCodes.FILE_UNREADABLE, message: "cannot read file: it vanished or is a dangling symlink", path: "vanished.duty" }]);
  });

  test("a file deleted between listing and reading is reported, the others are read", async () => {
    const dir = tempDir("dutygate-files-");
    writeFileSync(join(dir, "stays.duty"), "stays");
    writeFileSync(join(dir, "goes.duty"), "goes");
    const { paths } = await listBundlePaths(dir);
    expect(paths).toEqual(["goes.duty", "stays.duty"]);
    rmSync(join(dir, "goes.duty"));
    const read = await readListedBundleFiles(dir, paths);
    expect(read.files.map((f) => f.path)).toEqual(["stays.duty"]);
    expect(read.problems).toEqual([{ code: BundleCodes.FILE_UNREADABLE, message: "cannot read file: it vanished or is a dangling symlink", path: "goes.duty" }]);
  });

  test("deletions racing a full read never throw; files not deleted are always read", async () => {
    const dir = tempDir("dutygate-files-");
    const names = Array.from({ length: 200 }, (_, i) => `f${String(i).padStart(3, "0")}.duty`);
    for (const name of names) writeFileSync(join(dir, name), name);
    const reading = readBundleFiles(dir);
    for (const name of names.filter((_, i) => i % 2 === 0)) {
      rmSync(join(dir, name));
      await new Promise((resolve) => setImmediate(resolve)); // let the reader interleave
    }
    const read = await reading;
    for (const p of read.problems) expect(p.code).toBe(BundleCodes.FILE_UNREADABLE);
    for (const f of read.files) expect(f.text).toBe(f.path);
    const reported = new Set(read.problems.map((p) => p.path));
    expect(read.files.filter((f) => reported.has(f.path))).toEqual([]);
    for (const name of names.filter((_, i) => i % 2 === 1)) expect(read.files.some((f) => f.path === name)).toBe(true);
  });

  test("a symlink loop is reported once and does not recurse forever", async () => {
    const dir = tempDir("dutygate-files-");
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub/a.duty"), "a");
    symlinkSync("..", join(dir, "sub/loop"));
    const { paths, problems } = await listBundlePaths(dir);
    expect(paths).toEqual(["sub/a.duty"]);
    expect(problems.map((p) => [p.code, p.path])).toEqual([[BundleCodes.FILE_UNREADABLE, "sub/loop"]]);
  });

  test("a path that is a file, not a directory", async () => {
    const dir = tempDir("dutygate-files-");
    writeFileSync(join(dir, "file"), "x");
    const { problems } = await listBundlePaths(join(dir, "file"));
    expect(problems.map((p) => p.code)).toEqual([BundleCodes.DIR_UNREADABLE]);
  });
});
