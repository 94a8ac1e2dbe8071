// The safety net of every test that starts processes: a group registered with killGroupOnExit
// dies with the test process, even when the test never reached its own `finally`.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { killGroupOnExit, killProcessGroup } from "./process-group.ts";

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
