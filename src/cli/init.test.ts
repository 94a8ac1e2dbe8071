import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { loadConfig } from "../config/mod.ts";
import { startGateway } from "../gateway/serve.ts";
import { createLogger } from "../gateway/log.ts";
import { EXAMPLE_POLICY_FILES, initFileList, starterConfigText } from "../init/mod.ts";
import { runCheck } from "./check.ts";
import { EXIT, memoryIo } from "./io.ts";
import { runInit } from "./init.ts";

/** A directory that does not exist yet, inside a fresh temp dir (init creates it). */
const freshDir = () => join(tempDir("dutygate-init-"), "case");

describe("runInit", () => {
  test("writes gateway.toml and policies/ that pass `gateway check`", async () => {
    const dir = freshDir();
    const io = memoryIo();
    expect(await runInit({ dir }, io)).toBe(EXIT.ok);
    for (const f of initFileList()) expect(existsSync(join(dir, f))).toBe(true);
    const check = memoryIo();
    expect(await runCheck({ dir: join(dir, "policies"), format: "text" }, check)).toBe(EXIT.ok);
    expect(check.text()).toContain("0 errors");
  });

  test("the starter config loads with every file check on, paths relative to it", async () => {
    const dir = freshDir();
    expect(await runInit({ dir }, memoryIo())).toBe(EXIT.ok);
    const loaded = loadConfig(join(dir, "gateway.toml"), { cwd: "/" });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.stateDir).toBe(join(dir, "state"));
    expect(loaded.config.audit.dir).toBe(join(dir, "audit"));
    expect(loaded.config.policy.dir).toBe(join(dir, "policies"));
    expect(loaded.config.audit.onFailure).toBe("deny");
    expect(Object.keys(loaded.config.upstreams).sort()).toEqual(["admin", "changes", "deploy", "logs"]);
  });

  test("the starter config starts a gateway (port from --listen)", async () => {
    const dir = freshDir();
    expect(await runInit({ dir, listenAddress: "127.0.0.1:0" }, memoryIo())).toBe(EXIT.ok);
    const loaded = loadConfig(join(dir, "gateway.toml"), { cwd: "/" });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const gw = await startGateway(loaded.config, { log: createLogger("error") });
    try {
      expect(gw.policy.active?.compiled.policy.duties.length).toBeGreaterThan(0);
      expect(gw.operational.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await gw.stop({ drainMs: 0 });
    }
  });

  // Regression: the starter config listened on every interface (0.0.0.0:8443) unless told otherwise.
  test("the starter config listens on loopback unless --listen says otherwise, and init says where", async () => {
    const plain = freshDir();
    const io = memoryIo();
    expect(await runInit({ dir: plain }, io)).toBe(EXIT.ok);
    const loaded = loadConfig(join(plain, "gateway.toml"), { cwd: "/" });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect([loaded.config.listen.host, loaded.config.listen.port]).toEqual(["127.0.0.1", 8443]);
    expect(io.text()).toContain("it listens on 127.0.0.1:8443 (loopback only;");

    const open = freshDir();
    const io2 = memoryIo();
    expect(await runInit({ dir: open, listenAddress: "0.0.0.0:9000" }, io2)).toBe(EXIT.ok);
    expect(readFileSync(join(open, "gateway.toml"), "utf8")).toContain('address = "0.0.0.0:9000"');
    expect(io2.text()).toContain("it listens on 0.0.0.0:9000");
  });

  test("--state-dir and --audit-dir go into the config (absolute paths for a system install)", () => {
    const text = starterConfigText({ stateDir: "/var/lib/dutygate", auditDir: "/var/log/dutygate/audit" });
    expect(text).toContain('state_dir = "/var/lib/dutygate"');
    expect(text).toContain('dir = "/var/log/dutygate/audit"');
    expect(text).not.toContain("{{");
  });

  const existing: Array<{ name: string; file: string }> = [
    { name: "gateway.toml", file: "gateway.toml" },
    { name: "one policy file", file: `policies/${EXAMPLE_POLICY_FILES[0]!.path}` },
  ];
  for (const c of existing) {
    test(`refuses when ${c.name} exists, and writes nothing`, async () => {
      const dir = freshDir();
      mkdirSync(join(dir, "policies"), { recursive: true });
      writeFileSync(join(dir, c.file), "mine\n");
      const io = memoryIo();
      expect(await runInit({ dir }, io)).toBe(EXIT.config);
      expect(io.text()).toContain("INIT_FILE_EXISTS");
      expect(readFileSync(join(dir, c.file), "utf8")).toBe("mine\n");
      const written = [...readdirSync(dir), ...readdirSync(join(dir, "policies")).map((p) => `policies/${p}`)];
      expect(written.sort()).toEqual(["policies", c.file].filter((v, i, a) => a.indexOf(v) === i).sort());
    });
  }
});
