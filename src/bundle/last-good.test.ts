import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey } from "./keys.ts";
import { LAST_GOOD_BUNDLE_DIR, readLastGoodBundle, storeLastGoodBundle } from "./last-good.ts";
import { signBundleForTest } from "../../test/support/sign-bundle.ts";
import { readUnsignedBundle, verifyBundle } from "./verify.ts";

const work = mkdtempSync(join(tmpdir(), "dutygate-last-good-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the last good bundle", () => {
  test("a stored signed bundle verifies again from its copy, with the same digest", async () => {
    const source = join(work, "signed");
    const stateDir = join(work, "state-signed");
    const key = await generateSigningKey({ kid: "alice" });
    await Bun.write(join(source, "a.duty"), "duty x GET /x -> changes\n");
    await Bun.write(join(source, "nested", "b.test.toml"), "# tests\n");
    await signBundleForTest(source, [key], { revision: 3 });
    const verified = await verifyBundle(source, { trustedKeys: { keys: [key.publicJwk] }, minSigners: 1 });
    if (!verified.ok) throw new Error("fixture does not verify");
    const stored = storeLastGoodBundle(stateDir, verified.bundle);
    expect(readLastGoodBundle(stateDir)).toEqual(stored);
    const again = await verifyBundle(stored.dir, { trustedKeys: { keys: [key.publicJwk] }, minSigners: 1 });
    expect(again.ok && again.bundle.digest).toBe(verified.bundle.digest);
  });

  test("keeps raw bytes (not valid UTF-8) exactly, and only the newest copy", async () => {
    const source = join(work, "unsigned");
    const stateDir = join(work, "state-unsigned");
    await Bun.write(join(source, "a.duty"), new Uint8Array([0x23, 0xff, 0xfe, 0x0a]));
    const first = await readUnsignedBundle(source);
    if (!first.ok) throw new Error("fixture unreadable");
    storeLastGoodBundle(stateDir, first.bundle);
    await Bun.write(join(source, "a.duty"), "# v2\n");
    const second = await readUnsignedBundle(source);
    if (!second.ok) throw new Error("fixture unreadable");
    const stored = storeLastGoodBundle(stateDir, second.bundle);
    expect(readdirSync(join(stateDir, LAST_GOOD_BUNDLE_DIR)).sort()).toEqual([second.bundle.digest, "current.json"].sort());
    storeLastGoodBundle(stateDir, first.bundle);
    const copy = await readUnsignedBundle(readLastGoodBundle(stateDir)!.dir);
    expect(copy.ok && copy.bundle.digest).toBe(first.bundle.digest);
    expect(stored.digest).not.toBe(first.bundle.digest);
  });

  test("no copy, or a pointer naming a missing copy, reads as none", () => {
    const stateDir = join(work, "state-none");
    expect(readLastGoodBundle(stateDir)).toBeNull();
    mkdirSync(join(stateDir, LAST_GOOD_BUNDLE_DIR), { recursive: true });
    writeFileSync(join(stateDir, LAST_GOOD_BUNDLE_DIR, "current.json"), JSON.stringify({ digest: "a".repeat(64), revision: 1 }));
    expect(readLastGoodBundle(stateDir)).toBeNull();
  });

  test("two processes storing the same bundle at once both succeed, and neither removes the other's copy in progress", async () => {
    const source = join(work, "shared");
    const root = join(work, "state-shared");
    for (let f = 0; f < 20; f++) await Bun.write(join(source, `f${f}.duty`), `# file ${f}\n`.repeat(200));
    const start = Date.now() + 1_500;
    const script = join(import.meta.dir, "..", "..", "test", "support", "store-last-good.ts");
    const children = [0, 1].map(() => Bun.spawn([process.execPath, script, source, root, "40", String(start)], { stdout: "pipe", stderr: "pipe", detached: true }));
    try {
      const codes = await Promise.all(children.map((c) => c.exited));
      const errors = await Promise.all(children.map((c) => new Response(c.stderr).text()));
      expect(errors).toEqual(["", ""]);
      expect(codes).toEqual([0, 0]);
    } finally {
      for (const c of children) try { process.kill(-c.pid, "SIGKILL"); } catch { /* exited */ }
    }
    for (let i = 0; i < 40; i++) expect(readLastGoodBundle(join(root, `state-${i}`))).not.toBeNull();
  }, 60_000);

  test("a copy another live process is still writing is left alone; a dead writer's leftover is removed", async () => {
    const source = join(work, "staging");
    const stateDir = join(work, "state-staging");
    await Bun.write(join(source, "a.duty"), "# a\n");
    const read = await readUnsignedBundle(source);
    if (!read.ok) throw new Error("fixture unreadable");
    const dead = Bun.spawn([process.execPath, "-e", "0"]);
    await dead.exited;
    const root = join(stateDir, LAST_GOOD_BUNDLE_DIR);
    const live = `..staging-${process.ppid}-aaaaaaaa`;
    const leftover = `..staging-${dead.pid}-bbbbbbbb`;
    for (const name of [live, leftover]) mkdirSync(join(root, name), { recursive: true });
    // The pointer's temporary files too: removing a live one fails that process's rename.
    const livePointer = `..current.json.${process.ppid}.cccccccc.tmp`;
    const deadPointer = `..current.json.${dead.pid}.dddddddd.tmp`;
    for (const name of [livePointer, deadPointer]) writeFileSync(join(root, name), "{}");
    storeLastGoodBundle(stateDir, read.bundle);
    const names = readdirSync(root);
    expect(names).toContain(live);
    expect(names).not.toContain(leftover);
    expect(names).toContain(livePointer);
    expect(names).not.toContain(deadPointer);
  });
});
