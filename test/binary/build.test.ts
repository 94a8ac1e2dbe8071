// `npm run build` as a release manager runs it: the output directory holds exactly the binaries
// of this build and a SHA256SUMS that lists each of them, whatever an earlier build left there.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drainText, REPO_ROOT } from "../support/harness.ts";
import { TEST_COMMIT } from "./support.ts";
import { killGroupOnExit, killProcessGroup } from "../support/process-group.ts";

const work = mkdtempSync(join(tmpdir(), "dutygate-build-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `bun scripts/build.ts ARGS` in its own process group, killed by its PID whatever happens. */
async function runBuildScript(args: string[]): Promise<{ code: number; output: string }> {
  const child = Bun.spawn([join(REPO_ROOT, "node_modules/.bin/bun"), join(REPO_ROOT, "scripts/build.ts"), ...args], {
    cwd: work, stdout: "pipe", stderr: "pipe", detached: true, env: { ...process.env, DUTYGATE_COMMIT: TEST_COMMIT },
  });
  killGroupOnExit(child.pid);
  let output = "";
  try {
    await Promise.all([drainText(child.stdout, (s) => (output += s)), drainText(child.stderr, (s) => (output += s)), child.exited]);
    return { code: child.exitCode!, output };
  } finally {
    killProcessGroup(child.pid);
  }
}

/** The names SHA256SUMS lists, after `sha256sum -c` confirmed every line. */
function checkedSums(dir: string): string[] {
  const check = Bun.spawnSync(["sha256sum", "-c", "--strict", "SHA256SUMS"], { cwd: dir });
  expect({ code: check.exitCode, err: check.stderr.toString() }).toEqual({ code: 0, err: "" });
  return readFileSync(join(dir, "SHA256SUMS"), "utf8").trim().split("\n").map((l) => l.split(/\s+\*?/)[1]!);
}

test("--target x64 after a full build leaves no stale arm64 binary: dist/ holds what SHA256SUMS lists", async () => {
  const dist = join(work, "dist");
  // What a full build left: both binaries and their sums.
  mkdirSync(dist);
  writeFileSync(join(dist, "gateway"), "old x64 build\n");
  writeFileSync(join(dist, "gateway-linux-arm64"), "old arm64 build\n");
  writeFileSync(join(dist, "SHA256SUMS"), "0".repeat(64) + "  gateway\n" + "1".repeat(64) + "  gateway-linux-arm64\n");

  const run = await runBuildScript(["--target", "x64", "--out", dist]);
  expect({ code: run.code, output: run.output }).toMatchObject({ code: 0 });
  expect(readdirSync(dist).sort()).toEqual(["SHA256SUMS", "gateway"]);
  expect(checkedSums(dist)).toEqual(["gateway"]);
  expect(readdirSync(work).filter((n) => n !== "dist")).toEqual([]); // no staging directory left
  expect(run.output).toContain(`${join(dist, "gateway")}  `);
}, 300_000);

test("an --out directory holding files a build does not make is refused, untouched", async () => {
  const mine = join(work, "mine");
  mkdirSync(mine);
  writeFileSync(join(mine, "notes.txt"), "keep me\n");
  const run = await runBuildScript(["--target", "x64", "--out", mine]);
  expect(run.code).toBe(1);
  expect(run.output).toContain("holds files a build does not make (notes.txt)");
  expect(readdirSync(mine)).toEqual(["notes.txt"]);
});
