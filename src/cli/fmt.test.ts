// `gateway fmt` and the hint of `gateway check`, run in-process on temp directories.
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { main } from "./main.ts";
import { unifiedDiff } from "./diff.ts";
import { EXIT, memoryIo } from "./io.ts";

const ROOT = resolve(import.meta.dir, "../..");
const root = mkdtempSync(join(tmpdir(), "dutygate-fmt-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

const MESSY = "role   developer,reviewer\nupstream changes\nduty submit POST /c/:id/submit -> changes  # maker\nduty approve_change POST /c/:id/approve -> changes\n";
const TIDY = "role developer, reviewer\nupstream changes\nduty submit         POST /c/:id/submit  -> changes  # maker\nduty approve_change POST /c/:id/approve -> changes\n";

function policyDir(files: Record<string, string>): string {
  const dir = join(root, `p${++dirs}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

async function run(argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout.join("\n"), err: io.stderr.join("\n") };
}

describe("gateway fmt", () => {
  test("rewrites unformatted files below a directory and names them; a second run changes nothing", async () => {
    const dir = policyDir({ "a.duty": MESSY, "sub/b.duty": TIDY, "a.test.toml": "# not a policy\n" });
    const r = await run(["fmt", dir]);
    expect(r).toMatchObject({ code: EXIT.ok, out: `formatted ${join(dir, "a.duty")}` });
    expect(readFileSync(join(dir, "a.duty"), "utf8")).toBe(TIDY);
    expect(readFileSync(join(dir, "a.test.toml"), "utf8")).toBe("# not a policy\n");
    expect(readdirSync(dir).sort()).toEqual(["a.duty", "a.test.toml", "sub"]);
    expect(await run(["fmt", dir])).toMatchObject({ code: EXIT.ok, out: "" });
  });

  test("--check lists the unformatted files, exits 7 and writes nothing", async () => {
    const dir = policyDir({ "a.duty": MESSY, "b.duty": TIDY });
    const r = await run(["fmt", "--check", dir]);
    expect(r.code).toBe(EXIT.notFormatted);
    expect(r.out).toBe(join(dir, "a.duty"));
    expect(r.err).toContain("1 file is not formatted");
    expect(readFileSync(join(dir, "a.duty"), "utf8")).toBe(MESSY);
    expect((await run(["fmt", "--check", join(dir, "b.duty")])).code).toBe(EXIT.ok);
  });

  test("--diff prints a unified diff and writes nothing", async () => {
    const dir = policyDir({ "a.duty": MESSY });
    const r = await run(["fmt", "--diff", join(dir, "a.duty")]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out.split("\n").slice(2)).toEqual([
      "@@ -1,4 +1,4 @@",
      "-role   developer,reviewer",
      "+role developer, reviewer",
      " upstream changes",
      "-duty submit POST /c/:id/submit -> changes  # maker",
      "+duty submit         POST /c/:id/submit  -> changes  # maker",
      " duty approve_change POST /c/:id/approve -> changes",
    ]);
    expect(readFileSync(join(dir, "a.duty"), "utf8")).toBe(MESSY);
    expect((await run(["fmt", "--diff", "--check", join(dir, "a.duty")])).code).toBe(EXIT.notFormatted);
  });

  test("a file that does not parse is left untouched; its diagnostics are printed (exit 1); the others are formatted", async () => {
    const broken = "role developer\ngrant developer\n";
    const dir = policyDir({ "bad.duty": broken, "good.duty": MESSY });
    const before = statSync(join(dir, "bad.duty")).mtimeMs;
    const r = await run(["fmt", dir]);
    expect(r.code).toBe(EXIT.policyErrors);
    expect(r.err.startsWith(`${join(dir, "bad.duty")}:2:`)).toBe(true);
    expect(r.err).toContain(": error[E_SYNTAX]: ");
    expect(readFileSync(join(dir, "bad.duty"), "utf8")).toBe(broken);
    expect(statSync(join(dir, "bad.duty")).mtimeMs).toBe(before);
    expect(readFileSync(join(dir, "good.duty"), "utf8")).toBe(TIDY);
  });

  test("a missing path or a directory without policies is a usage error", async () => {
    expect((await run(["fmt", join(root, "nope")])).code).toBe(EXIT.usage);
    expect((await run(["fmt", policyDir({ "x.toml": "" })])).code).toBe(EXIT.usage);
    expect((await run(["fmt", "--write"])).code).toBe(EXIT.usage);
  });

  test("the shipped policies are in the canonical layout", async () => {
    expect(await run(["fmt", "--check", join(ROOT, "policies")])).toMatchObject({ code: EXIT.ok, out: "" });
  });
});

describe("gateway check hints at gateway fmt", () => {
  test("an unformatted policy passes the check with one hint line naming the file", async () => {
    const dir = join(root, `p${++dirs}`);
    cpSync(join(ROOT, "policies"), dir, { recursive: true });
    writeFileSync(join(dir, "logs.duty"), readFileSync(join(dir, "logs.duty"), "utf8").replace("grant auditor, sre read_logs", "grant auditor,sre   read_logs"));
    const r = await run(["check", dir]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out.split("\n").filter((l) => l.startsWith("hint:"))).toEqual([`hint: not in the canonical layout: ${join(dir, "logs.duty")} (\`gateway fmt ${dir}\` rewrites it)`]);
    const tidy = await run(["check", join(ROOT, "policies")]);
    expect(tidy.out).not.toContain("hint:");
  });
});

describe("unified diff", () => {
  test("equal texts give nothing; a missing final newline is shown", () => {
    expect(unifiedDiff("a", "x\n", "x\n")).toBe("");
    expect(unifiedDiff("a", "x", "x\n")).toBe("--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n");
  });

  test("distant changes are separate hunks with three lines of context", () => {
    const before = Array.from({ length: 20 }, (_, i) => `l${i}`).join("\n") + "\n";
    const after = before.replace("l2\n", "L2\n").replace("l17\n", "L17\n");
    const hunks = unifiedDiff("f", before, after).split("\n").filter((l) => l.startsWith("@@"));
    expect(hunks).toEqual(["@@ -1,6 +1,6 @@", "@@ -15,6 +15,6 @@"]);
  });
});
