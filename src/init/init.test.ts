import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { GatewayError } from "../errors.ts";
import { EMBEDDED_MODULE_PATH, renderEmbeddedModule } from "./generate.ts";
import { EXAMPLE_POLICY_FILES, initFileList, writeExamplePolicies } from "./mod.ts";

const freshDir = () => join(tempDir("dutygate-init-"), "case");

test("embedded.ts is up to date with policies/ and the starter config (fix: bun src/init/generate.ts)", () => {
  expect(readFileSync(EMBEDDED_MODULE_PATH, "utf8")).toBe(renderEmbeddedModule());
});

test("the embedded examples hold policies and their tests", () => {
  expect(EXAMPLE_POLICY_FILES.some((f) => f.path.endsWith(".duty"))).toBe(true);
  expect(EXAMPLE_POLICY_FILES.some((f) => f.path.endsWith(".test.toml"))).toBe(true);
  expect(initFileList()).toContain("gateway.toml");
});

test("writeExamplePolicies refuses with INIT_FILE_EXISTS", () => {
  const dir = freshDir();
  writeExamplePolicies(dir);
  let error: unknown;
  try {
    writeExamplePolicies(dir);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(GatewayError);
  expect((error as GatewayError).code).toBe("INIT_FILE_EXISTS");
});
