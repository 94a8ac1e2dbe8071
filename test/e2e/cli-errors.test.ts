// What a user sees when a command meets bad input or an unusable file: one line
// `error[CODE]: message` and a documented exit code — never a stack trace. Each case was found
// by following the README as a new user; the test names say which bug they pin.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/mod.ts";
import { DEMO_UPSTREAM_PORTS } from "../../src/config/builtin.ts";
import { startDemoUpstreams } from "../../src/gateway/demo-upstream.ts";
import { GatewayError } from "../../src/errors.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { main, reportCommandFailure } from "../../src/cli/mod.ts";

const ROOT = join(import.meta.dir, "..", "..");
const POLICIES = join(ROOT, "policies");
const tmp = mkdtempSync(join(tmpdir(), "dutygate-cli-errors-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A path no command can create: its parent is a regular file (ENOTDIR, also as root). */
const blockedFile = join(tmp, "a-file");
writeFileSync(blockedFile, "not a directory\n");
const unwritable = join(blockedFile, "sub");

/** Runs `gateway …` in process; a thrown error (what prints a stack trace) fails the test. */
async function run(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, err: io.stderr.join("\n"), out: io.stdout.join("\n") };
}

describe("commands answer file-system failures with a coded error, not a stack trace", () => {
  const cases: Array<{ name: string; argv: () => string[]; code: number; says: RegExp }> = [
    // Under /proc nothing can be created (ENOENT, also as root); the key set there reads as absent.
    { name: "keygen --out where no directory can be created", argv: () => ["keygen", "--out", "/proc/dutygate-no-such-dir", "--kid", "alice"], code: EXIT.usage, says: /^error\[FILE_ACCESS_FAILED\]: cannot mkdir `\/proc\/dutygate-no-such-dir`: no such file or directory \(ENOENT\)$/ },
    { name: "init into an unwritable place", argv: () => ["init", unwritable], code: EXIT.usage, says: /^error\[FILE_ACCESS_FAILED\]: cannot mkdir `.*a-file\/sub`: not a directory/ },
    {
      name: "serve with a state_dir that cannot be created exits 6",
      argv: () => {
        const config = join(tmp, "bad-state.toml");
        writeFileSync(config, [
          `state_dir = ${JSON.stringify(unwritable)}`,
          `[listen]`, `address = "127.0.0.1:0"`,
          `[policy]`, `dir = ${JSON.stringify(POLICIES)}`, `require_signature = false`,
          ...["changes", "deploy", "logs", "admin"].flatMap((u) => [`[upstreams.${u}]`, `url = "http://127.0.0.1:9"`]),
        ].join("\n"));
        return ["serve", "--config", config];
      },
      code: EXIT.config,
      says: /^error\[FILE_ACCESS_FAILED\]: cannot mkdir `.*a-file\/sub`: not a directory/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { code, err } = await run(c.argv());
      expect(err).toMatch(c.says);
      expect(err).not.toContain("    at ");
      expect(code).toBe(c.code);
    });
  }
});

describe("gateway check and explain name the file and the problem with a code", () => {
  const badToml = join(tmp, "people.toml");
  writeFileSync(badToml, "this is = = not toml\n");
  const badJson = join(tmp, "people.json");
  writeFileSync(badJson, "{ nope");
  const principalJson = join(tmp, "principal.json");
  writeFileSync(principalJson, "# not json\n");
  const cases: Array<{ name: string; argv: string[]; code: number; says: RegExp }> = [
    { name: "--assignments file missing", argv: ["check", POLICIES, "--assignments", join(tmp, "missing.toml")], code: EXIT.usage, says: /^error\[ASSIGNMENTS_UNREADABLE\]: cannot read role assignments `.*missing\.toml`: no such file or directory/m },
    { name: "--assignments not TOML", argv: ["check", POLICIES, "--assignments", badToml], code: EXIT.usage, says: /^error\[ASSIGNMENTS_MALFORMED\]: `.*people\.toml:1:\d+`: invalid TOML: /m },
    { name: "--assignments not JSON", argv: ["check", POLICIES, "--assignments", badJson], code: EXIT.usage, says: /^error\[ASSIGNMENTS_MALFORMED\]: `.*people\.json`: not valid JSON/m },
    { name: "audit verify of a missing file", argv: ["audit", "verify", join(tmp, "no-audit.jsonl")], code: EXIT.usage, says: /^error\[AUDIT_READ_FAILED\]: cannot read `.*no-audit\.jsonl`/ },
    { name: "audit verify with a missing keys file", argv: ["audit", "verify", badJson, "--keys", join(tmp, "none.jwks")], code: EXIT.usage, says: /^error\[AUDIT_KEYS_UNREADABLE\]: cannot use keys file `.*none\.jwks`: no such file or directory$/ },
    { name: "audit verify with a keys file that is not JSON", argv: ["audit", "verify", badJson, "--keys", principalJson], code: EXIT.usage, says: /^error\[AUDIT_KEYS_UNREADABLE\]: cannot use keys file `.*principal\.json`: not valid JSON/ },
    { name: "check of a file instead of a directory", argv: ["check", badToml], code: EXIT.usage, says: /^error: `.*people\.toml` is not a directory$/ },
    { name: "explain with a missing principal file", argv: ["explain", POLICIES, "--principal", join(tmp, "nobody.json"), "--request", "GET /changes"], code: EXIT.usage, says: /^error\[EXPLAIN_BAD_PRINCIPAL_FILE\]: cannot read principal file `.*nobody\.json`: no such file or directory$/ },
    { name: "explain with a principal file that is not JSON", argv: ["explain", POLICIES, "--principal", principalJson, "--request", "GET /changes"], code: EXIT.usage, says: /^error\[EXPLAIN_BAD_PRINCIPAL_FILE\]: principal file `.*principal\.json` is not valid JSON/ },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { code, err, out } = await run(c.argv);
      // `check` prints its report, step errors included, on stdout; `explain` errors go to stderr.
      const said = c.argv[0] === "check" && c.argv.includes("--assignments") ? out : err;
      expect(said).toMatch(c.says);
      expect(`${out}\n${err}`).not.toMatch(/ENOENT:|JSON Parse error|Invalid TOML document/);
      expect(code).toBe(c.code);
    });
  }
});

describe("the built-in default", () => {
  test("a malformed demo admin identities file is a config error, not a crash", () => {
    const cwd = join(tmp, "demo-bad-identities");
    mkdirSync(join(cwd, ".state", "admin"), { recursive: true });
    writeFileSync(join(cwd, ".state", "admin", "ca.pem"), "placeholder\n");
    writeFileSync(join(cwd, ".state", "admin", "identities.json"), "not json\n");
    const result = loadConfig(null, { cwd });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors[0]!.code).toBe("CONFIG_BAD_VALUE");
    expect(result.errors[0]!.message).toMatch(/^`.*identities\.json` is not valid JSON/);
  });

  test("a demo upstream port already in use is DEMO_UPSTREAM_PORT_IN_USE naming the port", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startDemoUpstreams({ changes: port }, "x-dutygate-identity").then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe("DEMO_UPSTREAM_PORT_IN_USE");
      expect((error as GatewayError).message).toContain(`\`127.0.0.1:${port}\``);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
    expect(Object.keys(DEMO_UPSTREAM_PORTS)).toContain("changes");
  });
});

describe("check --replay", () => {
  test("a file with no decision records is REPLAY_NO_RECORDS (exit 64), not a proof of no flips", async () => {
    const notAudit = join(tmp, "notes.jsonl");
    writeFileSync(notAudit, "hello\nworld\n");
    const r = await run(["check", POLICIES, "--replay", notAudit]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.out).toContain("error[REPLAY_NO_RECORDS]: no decision records");
  });
});

describe("unexpected failures", () => {
  test("check of `exclusive 2 of` over 1,500 roles answers 0 with a bounded report (was RangeError, a stack trace and exit 1)", async () => {
    const dir = join(tmp, "many-roles");
    mkdirSync(dir, { recursive: true });
    const roles = Array.from({ length: 1500 }, (_, i) => `r${i}`).join(", ");
    writeFileSync(join(dir, "p.duty"), `principal { sub: string roles: set<role> }\nrole ${roles}\nupstream app\nduty x GET /x -> app\ngrant ${roles} x\nexclusive 2 of ${roles}\n`);
    const text = await run(["check", dir]);
    expect(text.code).toBe(EXIT.ok);
    expect(text.out).toContain("1,124,230 more pairs of 1,500 roles not listed");
    const json = await run(["check", dir, "--format", "json"]);
    expect(json.code).toBe(EXIT.ok);
    expect(json.out.length).toBeLessThan(100_000);
    expect(JSON.parse(json.out).reachability.length).toBe(21);
  });

  test("a bug in a command is one error[INTERNAL_ERROR] line and exit 70, never a stack trace", () => {
    const io = memoryIo();
    const bug = new RangeError("Maximum call stack size exceeded.");
    expect(reportCommandFailure("check", bug, io)).toBe(EXIT.internal);
    expect(EXIT.internal).toBe(70);
    expect(io.stderr[0]).toBe("error[INTERNAL_ERROR]: `gateway check` failed unexpectedly: RangeError: Maximum call stack size exceeded.");
    expect(io.stderr.join("\n")).not.toContain("    at ");
    expect(io.stderr.join("\n")).toContain("help: this is a bug");
  });
});

describe("check --max-errors", () => {
  test("100 errors per file by default, the rest counted; --max-errors N changes it, 0 shows all", async () => {
    const dir = join(tmp, "many-errors");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "p.duty"), "principal { sub: string roles: set<role> }\nrole a\nupstream u\nduty d GET /x -> u\n" + "grant a d when principal.sub == $x$\n".repeat(150));
    const count = (out: string, code: string) => out.split("\n").filter((l) => l.includes(`error[${code}]`)).length;
    const byDefault = await run(["check", dir]);
    expect(byDefault.code).toBe(EXIT.policyErrors);
    expect(count(byDefault.out, "E_LEX")).toBe(100);
    expect(byDefault.out).toContain("error[E_TOO_MANY_ERRORS]: 200 more errors in `");
    expect(byDefault.out).toContain("300 errors, 0 warnings");
    const all = await run(["check", dir, "--max-errors", "0"]);
    expect([count(all.out, "E_LEX"), count(all.out, "E_TOO_MANY_ERRORS")]).toEqual([300, 0]);
    const five = await run(["check", dir, "--max-errors=5", "--format", "json"]);
    expect(JSON.parse(five.out).diagnostics.map((d: { code: string }) => d.code)).toEqual(["E_LEX", "E_LEX", "E_LEX", "E_LEX", "E_LEX", "E_TOO_MANY_ERRORS"]);
    const bad = await run(["check", dir, "--max-errors", "many"]);
    expect(bad.code).toBe(EXIT.usage);
  });
});

describe("check --warnings-as-errors", () => {
  test("warnings alone pass by default; with the flag they are errors, exit 1, and the policy tests still run", async () => {
    const dir = join(tmp, "warnings-only");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "p.duty"), "principal { sub: string roles: set<role> }\nrole dev, intern\nupstream app\nduty read GET /x -> app\ngrant dev read\ngrant dev read\n");
    writeFileSync(join(dir, "p.test.toml"), '[[test]]\nname = "dev reads"\nprincipal = { sub = "d", roles = ["dev"] }\nrequest = "GET /x"\nexpect = "allow"\n');
    const lenient = await run(["check", dir]);
    expect(lenient.code).toBe(EXIT.ok);
    expect(lenient.out).toContain("warning[W_UNUSED_ROLE]: role `intern` is declared but no grant, exclusive or condition names it");
    expect(lenient.out).toContain("warning[W_DUPLICATE_GRANT]");
    const strict = await run(["check", dir, "--warnings-as-errors"]);
    expect(strict.code).toBe(EXIT.policyErrors);
    expect(strict.out).toContain("error[W_UNUSED_ROLE]");
    expect(strict.out).toContain("error[W_DUPLICATE_GRANT]");
    expect(strict.out).toContain("2 errors, 0 warnings; policy tests: 1 passed, 0 failed");
    const json = JSON.parse((await run(["check", dir, "--warnings-as-errors", "--format", "json"])).out);
    expect(json.exitCode).toBe(EXIT.policyErrors);
    expect(json.diagnostics.map((d: { severity: string }) => d.severity)).toEqual(["error", "error"]);
  });
});
