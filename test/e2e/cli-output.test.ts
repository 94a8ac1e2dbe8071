// What CI reads from `gateway check`: every byte of the report, whatever the format, however slow
// the reader, under Bun and Deno (the compiled binary: test/binary/binary.test.ts).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { main } from "../../src/cli/mod.ts";
import { REPO_ROOT, runWithSlowReader, writeLargeReportPolicies } from "../support/harness.ts";

const tmp = mkdtempSync(join(tmpdir(), "dutygate-cli-output-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const large = writeLargeReportPolicies(join(tmp, "large"));

const FORMATS = ["text", "json", "github", "junit"] as const;

/** The report as `main` produces it in process: what a reader must get byte for byte. */
async function inProcessReport(format: string): Promise<{ code: number; bytes: number }> {
  const io = memoryIo();
  const code = await main(["check", large, "--format", format], io);
  return { code, bytes: io.stdout.reduce((n, line) => n + Buffer.byteLength(line) + 1, 0) };
}

const RUNTIMES = {
  bun: [join(REPO_ROOT, "node_modules/.bin/bun"), join(REPO_ROOT, "src/main.ts")],
  deno: [join(REPO_ROOT, "node_modules/.bin/deno"), "run", "--allow-read", "--allow-env", join(REPO_ROOT, "src/main.ts")],
};

describe("regression: reports were cut at 64 KiB when stdout is a pipe read late", () => {
  for (const [runtime, command] of Object.entries(RUNTIMES)) {
    test(`${runtime}: every format arrives whole, with the exit code`, async () => {
      // All formats at once: the reader of each waits for its command, not for the others.
      const runs = await Promise.all(FORMATS.map((format) => runWithSlowReader([...command, "check", large, "--format", format], { cwd: tmp })));
      for (const [i, format] of FORMATS.entries()) {
        const expected = await inProcessReport(format);
        expect(expected.bytes).toBeGreaterThan(2 * 65_536);
        expect({ format, code: runs[i]!.code, bytes: runs[i]!.stdout.length }).toEqual({ format, code: EXIT.testsFailed, bytes: expected.bytes });
      }
      const json = JSON.parse(runs[FORMATS.indexOf("json")]!.stdout.toString("utf8")) as { exitCode: number };
      expect(json.exitCode).toBe(EXIT.testsFailed);
      expect(runs[FORMATS.indexOf("junit")]!.stdout.toString("utf8").trimEnd()).toEndWith("</testsuites>");
    }, 120_000);
  }
});
