import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { BundleCodes, FileRevisionStore } from "../bundle/mod.ts";
import { EXIT, memoryIo, runKeygen, runSign, runVerify, TRUSTED_KEYS_FILE_NAME } from "./mod.ts";


async function setup(): Promise<{ keys: string; policies: string; trusted: string }> {
  const keys = tempDir("dutygate-cli-");
  const policies = tempDir("dutygate-cli-");
  writeFileSync(join(policies, "main.duty"), "role developer\n");
  for (const [kid, alg] of [["alice", "EdDSA"], ["bob", "ES256"]] as const) {
    expect(await runKeygen({ outDir: keys, kid, alg }, memoryIo())).toBe(EXIT.ok);
  }
  return { keys, policies, trusted: join(keys, TRUSTED_KEYS_FILE_NAME) };
}

describe("runSign and runVerify", () => {
  test("two signers, then verify with min 2: exit 0 and one summary line", async () => {
    const { keys, policies, trusted } = await setup();
    const signIo = memoryIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, signIo)).toBe(EXIT.ok);
    expect(signIo.stdout[0]).toMatch(/^issued revision 1 as `alice`/);
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk") }, signIo)).toBe(EXIT.ok);
    expect(signIo.stdout[2]).toMatch(/^added signature to revision 1 as `bob`/);
    const io = memoryIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 2 }, io)).toBe(EXIT.ok);
    expect(io.stderr).toEqual([]);
    expect(io.stdout).toHaveLength(1);
    expect(io.stdout[0]).toMatch(/^ok: bundle `.*` revision 1, 1 file\(s\), digest [0-9a-f]{16}…, signed by alice, bob \(2 of 2 required\)$/);
  });

  test("verify prints one line per problem and exits 4", async () => {
    const { keys, policies, trusted } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, memoryIo());
    writeFileSync(join(policies, "main.duty"), "changed\n");
    writeFileSync(join(policies, "new.duty"), "new\n");
    const io = memoryIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 2 }, io)).toBe(EXIT.verificationFailed);
    expect(io.stderr).toEqual([
      `error[${BundleCodes.TOO_FEW_SIGNERS}]: 1 distinct trusted signer(s), 2 required`,
      expect.stringMatching(/^error\[BUNDLE_FILE_CHANGED\]: main.duty: content differs/),
      "error[BUNDLE_FILE_EXTRA]: new.duty: file is not in the manifest",
      `bundle \`${policies}\` failed verification: 3 problem(s)`,
    ]);
  });

  test("a stale manifest refuses the second signer with exit 4; --new-revision signs the current files", async () => {
    const { keys, policies } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, memoryIo());
    writeFileSync(join(policies, "main.duty"), "changed\n");
    const io = memoryIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk") }, io)).toBe(EXIT.verificationFailed);
    expect(io.stderr.at(-1)).toContain(`error[${BundleCodes.MANIFEST_STALE}]`);
    expect(io.stderr.at(-1)).toContain("--new-revision");
    const again = memoryIo();
    expect(await runSign({ dir: policies, keyFile: join(keys, "bob.private.jwk"), newRevision: true, expiresIn: "30d" }, again)).toBe(EXIT.ok);
    expect(again.stdout[0]).toMatch(/^issued revision 2 as `bob`/);
    expect(again.stdout[1]).toMatch(/expires \d{4}-/);
  });

  test.each([
    ["an unreadable key file", (k: string) => ({ keyFile: join(k, "nobody.private.jwk") }), BundleCodes.KEY_INVALID],
    ["a public key as signing key", (k: string) => ({ keyFile: join(k, "alice.public.jwk") }), BundleCodes.KEY_INVALID],
    ["a bad duration", (k: string) => ({ keyFile: join(k, "alice.private.jwk"), expiresIn: "soon" }), BundleCodes.USAGE],
    ["a bad expiry date", (k: string) => ({ keyFile: join(k, "alice.private.jwk"), expiresAt: "2026-13-40" }), BundleCodes.USAGE],
  ])("sign usage error: %s (exit 64)", async (_name, params, code) => {
    const { keys, policies } = await setup();
    const io = memoryIo();
    expect(await runSign({ dir: policies, ...params(keys) }, io)).toBe(EXIT.usage);
    expect(io.stderr[0]).toContain(`error[${code}]`);
  });

  test.each([
    ["a missing keys file", (t: string, p: string) => ({ keysFile: `${t}.missing`, dir: p, minSigners: 1 })],
    ["a missing directory", (t: string, p: string) => ({ keysFile: t, dir: `${p}-missing`, minSigners: 1 })],
    ["min signers 0", (t: string, p: string) => ({ keysFile: t, dir: p, minSigners: 0 })],
    ["a private key in the trusted set", (t: string, p: string) => ({ keysFile: join(t, "..", "private-set.jwks"), dir: p, minSigners: 1 })],
  ])("verify usage error: %s (exit 64)", async (_name, params) => {
    const { keys, policies, trusted } = await setup();
    writeFileSync(join(keys, "private-set.jwks"), JSON.stringify({ keys: [JSON.parse(readFileSync(join(keys, "alice.private.jwk"), "utf8"))] }));
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk") }, memoryIo());
    const io = memoryIo();
    expect(await runVerify(params(trusted, policies), io)).toBe(EXIT.usage);
    expect(io.stderr.length).toBeGreaterThan(0);
    expect(io.stderr[0]).toMatch(/^error\[BUNDLE_(KEY_INVALID|USAGE|DIR_UNREADABLE)\]/);
  });

  test("verify with a state directory reports a rollback", async () => {
    const { keys, policies, trusted } = await setup();
    await runSign({ dir: policies, keyFile: join(keys, "alice.private.jwk"), revision: 3 }, memoryIo());
    const state = tempDir("dutygate-cli-");
    new FileRevisionStore(state).accept(4, "ab".repeat(32));
    const io = memoryIo();
    expect(await runVerify({ dir: policies, keysFile: trusted, minSigners: 1, stateDir: state }, io)).toBe(EXIT.verificationFailed);
    expect(io.stderr[0]).toBe(`error[${BundleCodes.ROLLBACK}]: revision 3 is older than the accepted revision 4`);
  });
});
