// The safety net of every test that starts processes: a group registered with killGroupOnExit
// dies with the test process, even when the test never reached its own `finally`.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killGroupOnExit, killProcessGroup } from "./process-group.ts";
import { tempDir } from "./temp-dir.ts";

function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

test("a registered group is killed when the test process exits, however it exits", async () => {
  // A stand-in for a test process that gives up half-way (a timeout, an exception before `finally`).
  const script = `
    import { killGroupOnExit } from ${JSON.stringify(join(import.meta.dir, "process-group.ts"))};
    const child = Bun.spawn(["sleep", "300"], { detached: true, stdout: "ignore" });
    killGroupOnExit(child.pid);
    console.log(child.pid);
    process.exit(1);
  `;
  const runner = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(runner.pid);
  let sleeper = 0;
  try {
    const out = await new Response(runner.stdout).text();
    expect(await runner.exited).toBe(1);
    sleeper = Number(out.trim());
    expect(sleeper).toBeGreaterThan(0);
    for (let i = 0; i < 500 && !gone(sleeper); i++) await Bun.sleep(10);
    expect(gone(sleeper)).toBe(true);
  } finally {
    killProcessGroup(runner.pid);
    if (sleeper > 0) killProcessGroup(sleeper);
  }
});

// Regression: `bun test` ends without an `exit` event, so the hook above never ran in a test run
// and a test that timed out left its processes behind. test/support/preload.ts kills them (and
// removes the temp dirs) after the last test.
test("under bun test, registered groups are killed and temp dirs removed after the last test", async () => {
  const dir = tempDir("dutygate-preload-");
  const fixture = join(dir, "leaves-behind.test.ts");
  writeFileSync(fixture, `
    import { test } from "bun:test";
    import { writeFileSync } from "node:fs";
    import { killGroupOnExit } from ${JSON.stringify(join(import.meta.dir, "process-group.ts"))};
    import { tempDir } from ${JSON.stringify(join(import.meta.dir, "temp-dir.ts"))};
    test("starts a process and makes a directory, and cleans up neither", () => {
      // No pipe of the run is passed on, so the run's output ends with the run.
      const child = Bun.spawn(["sleep", "300"], { detached: true, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      killGroupOnExit(child.pid);
      writeFileSync(${JSON.stringify(join(dir, "left"))}, JSON.stringify({ pid: child.pid, dir: tempDir("dutygate-left-") }));
    });
  `);
  // From the project root, so that bunfig.toml (and its preload) applies as in every test run.
  const runner = Bun.spawn([process.execPath, "test", fixture], { cwd: join(import.meta.dir, "..", ".."), stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(runner.pid);
  let left = { pid: 0, dir: "" };
  try {
    const [, err, code] = await Promise.all([new Response(runner.stdout).text(), new Response(runner.stderr).text(), runner.exited]);
    expect({ code, err: err.includes("1 pass") }).toEqual({ code: 0, err: true });
    left = JSON.parse(readFileSync(join(dir, "left"), "utf8")) as typeof left;
    expect(left.pid).toBeGreaterThan(0);
    // The run has ended: the group is dead or dying (a SIGKILL is not instantaneous).
    for (let i = 0; i < 100 && !gone(left.pid); i++) await Bun.sleep(10);
    expect(gone(left.pid)).toBe(true);
    expect(existsSync(left.dir)).toBe(false);
  } finally {
    killProcessGroup(runner.pid);
    if (left.pid > 0) killProcessGroup(left.pid);
  }
});
