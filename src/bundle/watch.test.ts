import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { waitFor } from "../../test/support/wait-for.ts";
import { watchPolicyDirectory, type PolicyDirectoryWatch } from "./mod.ts";

// Every wait polls for an outcome with a deadline; nothing asserts how long anything took.
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const open: PolicyDirectoryWatch[] = [];
afterEach(() => {
  for (const watch of open.splice(0)) watch.close();
});

function policyDir(): string {
  const dir = tempDir("dutygate-watch-");
  mkdirSync(join(dir, "teams"));
  writeFileSync(join(dir, "main.duty"), "v1\n");
  writeFileSync(join(dir, "teams/ops.duty"), "ops v1\n");
  return dir;
}

/** Starts a watch whose callback records what `file` holds at each call, as a reloader would read it. */
function watchRecording(dir: string, file = "main.duty", options: Parameters<typeof watchPolicyDirectory>[2] = {}) {
  const seen: string[] = [];
  const errors: unknown[] = [];
  const watch = watchPolicyDirectory(
    dir,
    () => {
      try {
        seen.push(readFileSync(join(dir, file), "utf8"));
      } catch {
        seen.push("<unreadable>");
      }
    },
    { debounceMs: 50, onError: (error) => errors.push(error), ...options },
  );
  open.push(watch);
  return { seen, errors, watch };
}

describe("watchPolicyDirectory fires for", () => {
  test("an in-place edit", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir);
    appendFileSync(join(dir, "main.duty"), "more\n");
    await waitFor("the edit", () => seen.at(-1) === "v1\nmore\n");
  });

  test("an atomic save (write a temp file, rename it over)", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir);
    writeFileSync(join(dir, ".main.duty.swp"), "v2\n");
    renameSync(join(dir, ".main.duty.swp"), join(dir, "main.duty"));
    await waitFor("the rename", () => seen.at(-1) === "v2\n");
  });

  test("a truncating editor: the file is briefly empty, the last callback sees the final content", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir);
    truncateSync(join(dir, "main.duty"), 0);
    await pause(20);
    writeFileSync(join(dir, "main.duty"), "v3\n");
    await waitFor("the final content", () => seen.at(-1) === "v3\n");
  });

  test("a deleted file", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir);
    rmSync(join(dir, "main.duty"));
    await waitFor("the deletion", () => seen.at(-1) === "<unreadable>");
  });

  test("an edit in a subdirectory", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir, "teams/ops.duty");
    writeFileSync(join(dir, "teams/ops.duty"), "ops v2\n");
    await waitFor("the nested edit", () => seen.at(-1) === "ops v2\n");
  });

  test("a file in a subdirectory created after the watch started", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir, "late/new.duty");
    mkdirSync(join(dir, "late"));
    await waitFor("the new directory", () => seen.length > 0);
    writeFileSync(join(dir, "late/new.duty"), "late v1\n");
    await waitFor("the file in it", () => seen.at(-1) === "late v1\n");
    writeFileSync(join(dir, "late/new.duty"), "late v2\n");
    await waitFor("an edit in it", () => seen.at(-1) === "late v2\n");
  });

  test("a Kubernetes ConfigMap update (`..data` symlink swap)", async () => {
    const dir = tempDir("dutygate-watch-k8s-");
    const first = "..2026_11_22_05_34_00.000000001";
    const second = "..2026_11_22_05_40_00.000000002";
    mkdirSync(join(dir, first));
    writeFileSync(join(dir, first, "main.duty"), "configmap v1\n");
    symlinkSync(first, join(dir, "..data"));
    symlinkSync(join("..data", "main.duty"), join(dir, "main.duty"));
    const { seen } = watchRecording(dir);
    // What the kubelet does: new timestamped dir, `..data_tmp` link to it, rename over `..data`, drop the old dir.
    mkdirSync(join(dir, second));
    writeFileSync(join(dir, second, "main.duty"), "configmap v2\n");
    symlinkSync(second, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    rmSync(join(dir, first), { recursive: true });
    await waitFor("the swap", () => seen.at(-1) === "configmap v2\n");
  });

  test("a symlinked policy directory switched with rename (`ln -s v2 tmp && mv -T tmp current`), then back", async () => {
    const root = tempDir("dutygate-watch-link-");
    for (const version of ["v1", "v2", "v3"]) {
      mkdirSync(join(root, version));
      writeFileSync(join(root, version, "main.duty"), `${version}\n`);
    }
    symlinkSync("v1", join(root, "current"));
    const { seen } = watchRecording(join(root, "current"));
    const publish = (version: string): void => {
      symlinkSync(version, join(root, "tmp"));
      renameSync(join(root, "tmp"), join(root, "current"));
    };
    publish("v2");
    await waitFor("v2", () => seen.at(-1) === "v2\n");
    publish("v3");
    await waitFor("v3", () => seen.at(-1) === "v3\n");
    publish("v2");
    await waitFor("the swap back to v2", () => seen.at(-1) === "v2\n");
    // The watch follows the new target: an edit inside it is seen without another swap.
    writeFileSync(join(root, "v2", "main.duty"), "v2 edited\n");
    await waitFor("an edit in the target swapped back to", () => seen.at(-1) === "v2 edited\n");
    // ...while the directory no longer linked is not watched: an edit there calls nothing.
    await pause(200);
    const count = seen.length;
    writeFileSync(join(root, "v3", "main.duty"), "v3 edited\n");
    await pause(300);
    expect(seen.length).toBe(count);
  }, 60_000);
});

describe("watchPolicyDirectory behaviour", () => {
  test("a burst of writes is coalesced into fewer callbacks than writes", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir, "main.duty", { debounceMs: 200 });
    for (let i = 0; i < 50; i++) writeFileSync(join(dir, "main.duty"), `burst ${i}\n`);
    await waitFor("the burst", () => seen.at(-1) === "burst 49\n");
    expect(seen.length).toBeLessThan(50);
  });

  test("no callback after close()", async () => {
    const dir = policyDir();
    const { seen, watch } = watchRecording(dir);
    writeFileSync(join(dir, "main.duty"), "before close\n");
    await waitFor("the first edit", () => seen.at(-1) === "before close\n");
    watch.close();
    const count = seen.length;
    writeFileSync(join(dir, "main.duty"), "after close\n");
    await pause(300);
    expect(seen.length).toBe(count);
  });

  test("an error thrown by onChange is reported and the watch keeps working", async () => {
    const dir = policyDir();
    const errors: unknown[] = [];
    let calls = 0;
    const watch = watchPolicyDirectory(dir, () => {
      calls++;
      throw new Error(`reload ${calls} failed`);
    }, { debounceMs: 20, onError: (error) => errors.push(error) });
    open.push(watch);
    writeFileSync(join(dir, "main.duty"), "a\n");
    await waitFor("the first callback", () => calls >= 1);
    const after = calls;
    await pause(60);
    writeFileSync(join(dir, "main.duty"), "b\n");
    await waitFor("a callback after the error", () => calls > after);
    expect(errors.some((e) => e instanceof Error && e.message === "reload 1 failed")).toBe(true);
  });

  test("a directory that does not exist yet: no throw, an error reported, a callback once it appears", async () => {
    const parent = tempDir("dutygate-watch-late-");
    const dir = join(parent, "policies");
    const errors: unknown[] = [];
    let calls = 0;
    const watch = watchPolicyDirectory(dir, () => void calls++, { debounceMs: 20, rearmMs: 20, onError: (error) => errors.push(error) });
    open.push(watch);
    expect(errors.length).toBeGreaterThan(0);
    mkdirSync(dir);
    writeFileSync(join(dir, "main.duty"), "v1\n");
    await waitFor("the directory to appear", () => calls >= 1);
    const after = calls;
    writeFileSync(join(dir, "main.duty"), "v2\n");
    await waitFor("an edit after re-arming", () => calls > after);
  });

  test("the directory removed and recreated: the watch re-arms on the new directory", async () => {
    const dir = policyDir();
    const { seen } = watchRecording(dir, "main.duty", { rearmMs: 20 });
    rmSync(dir, { recursive: true });
    await waitFor("the removal", () => seen.at(-1) === "<unreadable>");
    mkdirSync(dir);
    writeFileSync(join(dir, "main.duty"), "recreated\n");
    await waitFor("the recreated directory", () => seen.at(-1) === "recreated\n");
    writeFileSync(join(dir, "main.duty"), "recreated v2\n");
    await waitFor("an edit in the recreated directory", () => seen.at(-1) === "recreated v2\n");
  });
});
