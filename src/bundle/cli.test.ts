import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BundleCodes, BundleExitCode, FileRevisionStore, TRUSTED_KEYS_FILE_NAME, runKeygen, runSign, runVerify, type CliIo } from "./mod.ts";

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-cli-"));
  roots.push(dir);
  return dir;
}
function captureIo(): CliIo & { outLines: string[]; errLines: string[] } {
  const outLines: string[] = [];
  const errLines: string[] = [];
  return { outLines, errLines, out: (line) => outLines.push(line), err: (line) => errLines.push(line) };
}

async function setup(): Promise<{ keys: string; policies: string; trusted: string }> {
  const keys = tempDir();
  const policies = tempDir();
  writeFileSync(join(policies, "main.duty"), "role developer\n");
  for (const [kid, alg] of [["alice", "EdDSA"], ["bob", "ES256"]] as const) {
    expect(await runKeygen({ outDir: keys, kid, alg }, captureIo())).toBe(BundleExitCode.OK);
  }
  return { keys, policies, trusted: join(keys, TRUSTED_KEYS_FILE_NAME) };
}

describe("runKeygen", () => {
  test("writes a 0600 private key, a public key, and adds the public key to trusted.jwks", async () => {
    const dir = tempDir();
    const io = captureIo();
    expect(await runKeygen({ outDir: dir, kid: "alice" }, io)).toBe(BundleExitCode.OK);
    expect(await runKeygen({ outDir: dir, kid: "bob", alg: "ES256" }, captureIo())).toBe(BundleExitCode.OK);
    const privateJwk = JSON.parse(readFileSync(join(dir, "alice.private.jwk"), "utf8"));
    expect(privateJwk).toMatchObject({ kid: "alice", alg: "EdDSA", kty: "OKP", crv: "Ed25519", use: "sig" });
    expect(typeof privateJwk.d).toBe("string");
    if (process.platform !== "win32") expect(statSync(join(dir, "alice.private.jwk")).mode & 0o777).toBe(0o600);
    const publicJwk = JSON.parse(readFileSync(join(dir, "alice.public.jwk"), "utf8"));
    expect(publicJwk.d).toBeUndefined();
    const trusted = JSON.parse(readFileSync(join(dir, TRUSTED_KEYS_FILE_NAME), "utf8"));
    expect(trusted.keys.map((k: { kid: string; d?: string }) => [k.kid, k.d])).toEqual([["alice", undefined], ["bob", undefined]]);
    expect(io.outLines).toHaveLength(3);
  });

  test.each([
    ["an existing kid", "alice", BundleExitCode.FAILED, BundleCodes.KEY_EXISTS],
    ["a kid that is not a safe file name", "../evil", BundleExitCode.USAGE, BundleCodes.USAGE],
  ])("refuses %s", async (_name, kid, exit, code) => {
    const dir = tempDir();
    await runKeygen({ outDir: dir, kid: "alice" }, captureIo());
    const before = readFileSync(join(dir, "alice.private.jwk"), "utf8");
    const io = captureIo();
    expect(await runKeygen({ outDir: dir, kid }, io)).toBe(exit);
    expect(io.errLines.join("\n")).toContain(`error[${code}]`);
    expect(readFileSync(join(dir, "alice.private.jwk"), "utf8")).toBe(before);
  });

  test("never overwrites a private key even when the key set does not list it", async () => {
    const dir = tempDir();
    await runKeygen({ outDir: dir, kid: "alice", trustedKeysFile: null }, captureIo());
    const io = captureIo();
    expect(await runKeygen({ outDir: dir, kid: "alice", trustedKeysFile: null }, io)).toBe(BundleExitCode.FAILED);
    expect(io.errLines[0]).toContain(`error[${BundleCodes.KEY_EXISTS}]`);
  });
});

describe("runSign and runVerify", () => {
  test("two signers, then verify with min 2: exit 0 and one summary line", async () => {
    const { keys, policies, trusted } = await setup();
    const signIo = captureIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, signIo)).toBe(BundleExitCode.OK);
    expect(signIo.outLines[0]).toMatch(/^issued revision 1 as `alice`/);
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk") }, signIo)).toBe(BundleExitCode.OK);
    expect(signIo.outLines[2]).toMatch(/^added signature to revision 1 as `bob`/);
    const io = captureIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 2 }, io)).toBe(BundleExitCode.OK);
    expect(io.errLines).toEqual([]);
    expect(io.outLines).toHaveLength(1);
    expect(io.outLines[0]).toMatch(/^ok: bundle `.*` revision 1, 1 file\(s\), digest [0-9a-f]{16}…, signed by alice, bob \(2 of 2 required\)$/);
  });

  test("verify prints one line per problem and exits 1", async () => {
    const { keys, policies, trusted } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, captureIo());
    writeFileSync(join(policies, "main.duty"), "changed\n");
    writeFileSync(join(policies, "new.duty"), "new\n");
    const io = captureIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 2 }, io)).toBe(BundleExitCode.FAILED);
    expect(io.errLines).toEqual([
      `error[${BundleCodes.TOO_FEW_SIGNERS}]: 1 distinct trusted signer(s), 2 required`,
      expect.stringMatching(/^error\[BUNDLE_FILE_CHANGED\]: main.duty: content differs/),
      "error[BUNDLE_FILE_EXTRA]: new.duty: file is not in the manifest",
      `bundle \`${policies}\` failed verification: 3 problem(s)`,
    ]);
  });

  test("a stale manifest refuses the second signer with exit 1; --new-revision signs the current files", async () => {
    const { keys, policies } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, captureIo());
    writeFileSync(join(policies, "main.duty"), "changed\n");
    const io = captureIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk") }, io)).toBe(BundleExitCode.FAILED);
    expect(io.errLines.at(-1)).toContain(`error[${BundleCodes.MANIFEST_STALE}]`);
    expect(io.errLines.at(-1)).toContain("--new-revision");
    const again = captureIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk"), newRevision: true, expiresIn: "30d" }, again)).toBe(BundleExitCode.OK);
    expect(again.outLines[0]).toMatch(/^issued revision 2 as `bob`/);
    expect(again.outLines[1]).toMatch(/expires \d{4}-/);
  });

  test.each([
    ["an unreadable key file", (k: string) => ({ keyFile: join(k, "nobody.private.jwk") }), BundleCodes.KEY_INVALID],
    ["a public key as signing key", (k: string) => ({ keyFile: join(k, "alice.public.jwk") }), BundleCodes.KEY_INVALID],
    ["a bad duration", (k: string) => ({ keyFile: join(k, "alice.private.jwk"), expiresIn: "soon" }), BundleCodes.USAGE],
    ["a bad expiry date", (k: string) => ({ keyFile: join(k, "alice.private.jwk"), expiresAt: "2026-13-40" }), BundleCodes.USAGE],
  ])("sign usage error: %s (exit 2)", async (_name, params, code) => {
    const { keys, policies } = await setup();
    const io = captureIo();
    expect(await runSign({ dir: policies, ...params(keys) }, io)).toBe(BundleExitCode.USAGE);
    expect(io.errLines[0]).toContain(`error[${code}]`);
  });

  test.each([
    ["a missing keys file", (t: string, p: string) => ({ keysFile: `${t}.missing`, dir: p, minSigners: 1 })],
    ["a missing directory", (t: string, p: string) => ({ keysFile: t, dir: `${p}-missing`, minSigners: 1 })],
    ["min signers 0", (t: string, p: string) => ({ keysFile: t, dir: p, minSigners: 0 })],
    ["a private key in the trusted set", (t: string, p: string) => ({ keysFile: join(t, "..", "private-set.jwks"), dir: p, minSigners: 1 })],
  ])("verify usage error: %s (exit 2)", async (_name, params) => {
    const { keys, policies, trusted } = await setup();
    writeFileSync(join(keys, "private-set.jwks"), JSON.stringify({ keys: [JSON.parse(readFileSync(join(keys, "alice.private.jwk"), "utf8"))] }));
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, captureIo());
    const io = captureIo();
    expect(await runVerify(params(trusted, policies), io)).toBe(BundleExitCode.USAGE);
    expect(io.errLines.length).toBeGreaterThan(0);
    expect(io.errLines[0]).toMatch(/^error\[BUNDLE_(KEY_INVALID|USAGE|DIR_UNREADABLE)\]/);
  });

  test("verify with a state directory reports a rollback", async () => {
    const { keys, policies, trusted } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk"), revision: 3 }, captureIo());
    const state = tempDir();
    new FileRevisionStore(state).accept(4, "ab".repeat(32));
    const io = captureIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 1, stateDir: state }, io)).toBe(BundleExitCode.FAILED);
    expect(io.errLines[0]).toBe(`error[${BundleCodes.ROLLBACK}]: revision 3 is older than the accepted revision 4`);
  });
});
