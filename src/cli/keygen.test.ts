import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { BundleCodes } from "../bundle/mod.ts";
import { EXIT, memoryIo, runKeygen, TRUSTED_KEYS_FILE_NAME } from "./mod.ts";

describe("runKeygen", () => {
  test("writes a 0600 private key, a public key, and adds the public key to trusted.jwks", async () => {
    const dir = tempDir("dutygate-cli-");
    const io = memoryIo();
    expect(await runKeygen({ outDir: dir, kid: "alice" }, io)).toBe(EXIT.ok);
    expect(await runKeygen({ outDir: dir, kid: "bob", alg: "ES256" }, memoryIo())).toBe(EXIT.ok);
    const privateJwk = JSON.parse(readFileSync(join(dir, "alice.private.jwk"), "utf8"));
    expect(privateJwk).toMatchObject({ kid: "alice", alg: "EdDSA", kty: "OKP", crv: "Ed25519", use: "sig" });
    expect(typeof privateJwk.d).toBe("string");
    if (process.platform !== "win32") expect(statSync(join(dir, "alice.private.jwk")).mode & 0o777).toBe(0o600);
    const publicJwk = JSON.parse(readFileSync(join(dir, "alice.public.jwk"), "utf8"));
    expect(publicJwk.d).toBeUndefined();
    const trusted = JSON.parse(readFileSync(join(dir, TRUSTED_KEYS_FILE_NAME), "utf8"));
    expect(trusted.keys.map((k: { kid: string; d?: string }) => [k.kid, k.d])).toEqual([["alice", undefined], ["bob", undefined]]);
    expect(io.stdout).toHaveLength(3);
  });

  test.each([
    ["an existing kid", "alice", EXIT.verificationFailed, BundleCodes.KEY_EXISTS],
    ["a kid that is not a safe file name", "../evil", EXIT.usage, BundleCodes.USAGE],
  ])("refuses %s", async (_name, kid, exit, code) => {
    const dir = tempDir("dutygate-cli-");
    await runKeygen({ outDir: dir, kid: "alice" }, memoryIo());
    const before = readFileSync(join(dir, "alice.private.jwk"), "utf8");
    const io = memoryIo();
    expect(await runKeygen({ outDir: dir, kid }, io)).toBe(exit);
    expect(io.stderr.join("\n")).toContain(`error[${code}]`);
    expect(readFileSync(join(dir, "alice.private.jwk"), "utf8")).toBe(before);
  });

  test("never overwrites a private key even when the key set does not list it", async () => {
    const dir = tempDir("dutygate-cli-");
    await runKeygen({ outDir: dir, kid: "alice", trustedKeysFile: null }, memoryIo());
    const io = memoryIo();
    expect(await runKeygen({ outDir: dir, kid: "alice", trustedKeysFile: null }, io)).toBe(EXIT.verificationFailed);
    expect(io.stderr[0]).toContain(`error[${BundleCodes.KEY_EXISTS}]`);
  });
});
