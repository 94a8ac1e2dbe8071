import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS, formatConfigErrors, loadConfig } from "./mod.ts";

// gateway.example.toml is documentation that must stay valid: it names placeholder certificate
// files, so it is checked for shape with checkFiles: false.
const root = join(import.meta.dir, "..", "..");
const examplePath = join(root, "gateway.example.toml");

describe("gateway.example.toml", () => {
  test("loads without errors (files not checked)", () => {
    const result = loadConfig(examplePath, { cwd: root, checkFiles: false });
    if (!result.ok) throw new Error(formatConfigErrors(result.errors, "gateway.example.toml"));
    const c = result.config;
    expect(c.listen.port).toBe(8443);
    expect(c.admin?.port).toBe(9443);
    expect(c.issuers.map((i) => i.name)).toEqual(["corp", "ci"]);
    expect(Object.keys(c.upstreams)).toEqual(["changes", "deploy", "logs", "admin", "billing"]);
    expect(c.upstreams["billing"]?.caFile).toBe(join(root, "certs/internal-ca.pem"));
    expect(c.policy.minSigners).toBe(2);
  });

  test("with file checks on, it reports exactly the placeholder files as missing", () => {
    const result = loadConfig(examplePath, { cwd: root });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(new Set(result.errors.map((e) => e.code))).toEqual(new Set(["CONFIG_FILE_NOT_FOUND"]));
    expect(result.errors.every((e) => e.line !== undefined)).toBe(true);
  });

  test("states the defaults the loader uses", () => {
    const text = readFileSync(examplePath, "utf8");
    expect(text).toContain(`debounce = "${DEFAULTS.policy.debounceMs}ms"`);
    expect(text).toContain(`header = "${DEFAULTS.identity.header}"`);
  });

  test("lists the default identity headers to strip", () => {
    const result = loadConfig(examplePath, { cwd: root, checkFiles: false });
    expect(result.ok && result.config.identity.stripHeaders).toEqual([...DEFAULTS.identity.stripHeaders]);
  });
});
