import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/support/temp-dir.ts";
import { BundleCodes } from "../bundle/mod.ts";
import { main } from "./main.ts";
import { EXIT, memoryIo, runKeygen, runKeys, runSign, runVerify } from "./mod.ts";


/** Two reviewers, each running `keygen` on their own machine: two directories, two one-key sets. */
async function twoMachines(): Promise<{ alice: string; bob: string }> {
  const alice = tempDir("dutygate-keys-");
  const bob = tempDir("dutygate-keys-");
  expect(await runKeygen({ outDir: alice, kid: "alice" }, memoryIo())).toBe(EXIT.ok);
  expect(await runKeygen({ outDir: bob, kid: "bob", alg: "ES256" }, memoryIo())).toBe(EXIT.ok);
  return { alice, bob };
}

const kidsIn = (file: string) => (JSON.parse(readFileSync(file, "utf8")).keys as Array<{ kid: string }>).map((k) => k.kid);

describe("gateway keys add", () => {
  test("merges two machines' public keys into one set that verifies a bundle both signed", async () => {
    const { alice, bob } = await twoMachines();
    const set = join(tempDir("dutygate-keys-"), "trusted-signers.jwks");
    const io = memoryIo();
    expect(await runKeys({ action: "add", trustedKeysFile: set, operands: [join(alice, "alice.public.jwk"), join(bob, "bob.public.jwk")] }, io)).toBe(EXIT.ok);
    expect(io.stdout).toEqual([`added \`alice\`, \`bob\` to trusted key set \`${set}\` (2 key(s))`]);
    expect(kidsIn(set)).toEqual(["alice", "bob"]);
    if (process.platform !== "win32") expect(statSync(set).mode & 0o777).toBe(0o644);
    for (const key of JSON.parse(readFileSync(set, "utf8")).keys) expect(key.d).toBeUndefined();

    const policies = tempDir("dutygate-keys-");
    writeFileSync(join(policies, "main.duty"), "role developer\n");
    expect(await runSign({ dir: policies, keyFile: join(alice, "alice.private.jwk") }, memoryIo())).toBe(EXIT.ok);
    expect(await runSign({ dir: policies, keyFile: join(bob, "bob.private.jwk") }, memoryIo())).toBe(EXIT.ok);
    expect(await runVerify({ dir: policies, keysFile: set, minSigners: 2 }, memoryIo())).toBe(EXIT.ok);

    const list = memoryIo();
    expect(await runKeys({ action: "list", trustedKeysFile: set, operands: [] }, list)).toBe(EXIT.ok);
    expect(list.stdout.map((l) => l.split("  ").slice(0, 2).join(" "))).toEqual(["alice EdDSA", "bob ES256"]);
    expect(list.stdout[0]).toMatch(/sha256:[A-Za-z0-9_-]{43}$/);
  });

  test("accepts a JWKS as input (another machine's trusted.jwks) and re-adding the same key is a no-op", async () => {
    const { alice, bob } = await twoMachines();
    const set = join(alice, "trusted.jwks");
    expect(await runKeys({ action: "add", trustedKeysFile: set, operands: [join(bob, "trusted.jwks")] }, memoryIo())).toBe(EXIT.ok);
    expect(kidsIn(set)).toEqual(["alice", "bob"]);
    const before = readFileSync(set, "utf8");
    const again = memoryIo();
    expect(await runKeys({ action: "add", trustedKeysFile: set, operands: [join(bob, "bob.public.jwk")] }, again)).toBe(EXIT.ok);
    expect(again.stdout).toEqual(["`bob` is already trusted (same key); nothing to add"]);
    expect(readFileSync(set, "utf8")).toBe(before);
  });

  test.each([
    ["a private key", "alice.private.jwk", BundleCodes.KEY_PRIVATE, EXIT.verificationFailed],
    ["another key under a kid already trusted", "other-alice.public.jwk", BundleCodes.KEY_EXISTS, EXIT.verificationFailed],
    ["the same key under a second kid", "alias.public.jwk", BundleCodes.KEY_EXISTS, EXIT.verificationFailed],
    ["a file that is not JSON", "broken.jwk", BundleCodes.KEY_INVALID, EXIT.usage],
    ["a file that does not exist", "missing.jwk", BundleCodes.KEY_INVALID, EXIT.usage],
    ["an RSA key", "rsa.public.jwk", BundleCodes.KEY_INVALID, EXIT.usage],
  ])("refuses %s and leaves the set byte for byte as it was, even beside a good key", async (_name, file, code, exit) => {
    const { alice, bob } = await twoMachines();
    const set = join(alice, "trusted.jwks");
    const otherAlice = tempDir("dutygate-keys-");
    await runKeygen({ outDir: otherAlice, kid: "alice", trustedKeysFile: null }, memoryIo());
    writeFileSync(join(alice, "other-alice.public.jwk"), readFileSync(join(otherAlice, "alice.public.jwk")));
    writeFileSync(join(alice, "alias.public.jwk"), JSON.stringify({ ...JSON.parse(readFileSync(join(alice, "alice.public.jwk"), "utf8")), kid: "alias" }));
    writeFileSync(join(alice, "broken.jwk"), "{ not json");
    writeFileSync(join(alice, "rsa.public.jwk"), JSON.stringify({ kty: "RSA", n: "AQAB", e: "AQAB", kid: "rsa" }));
    const before = readFileSync(set, "utf8");
    const io = memoryIo();
    expect(await runKeys({ action: "add", trustedKeysFile: set, operands: [join(bob, "bob.public.jwk"), join(alice, file)] }, io)).toBe(exit);
    expect(io.stderr[0]).toStartWith(`error[${code}]: `);
    expect(io.stderr.at(-1)).toBe(`trusted key set \`${set}\` left unchanged`);
    expect(io.stdout).toEqual([]);
    expect(readFileSync(set, "utf8")).toBe(before);
    expect(readdirSync(alice).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  test("refuses to edit a set that is not a valid trusted set (it holds a private key)", async () => {
    const { alice, bob } = await twoMachines();
    const set = join(tempDir("dutygate-keys-"), "bad.jwks");
    writeFileSync(set, JSON.stringify({ keys: [JSON.parse(readFileSync(join(alice, "alice.private.jwk"), "utf8"))] }));
    const io = memoryIo();
    expect(await runKeys({ action: "add", trustedKeysFile: set, operands: [join(bob, "bob.public.jwk")] }, io)).toBe(EXIT.usage);
    expect(io.stderr[0]).toContain(`error[${BundleCodes.KEY_INVALID}]`);
    expect(io.stderr[0]).toContain("private key material");
  });
});

describe("gateway keys remove", () => {
  test("removes by key id or by public key file; an unknown id is refused and nothing is removed", async () => {
    const { alice, bob } = await twoMachines();
    const set = join(alice, "trusted.jwks");
    await runKeys({ action: "add", trustedKeysFile: set, operands: [join(bob, "bob.public.jwk")] }, memoryIo());
    const before = readFileSync(set, "utf8");
    const refused = memoryIo();
    expect(await runKeys({ action: "remove", trustedKeysFile: set, operands: ["bob", "carol"] }, refused)).toBe(EXIT.verificationFailed);
    expect(refused.stderr[0]).toBe(`error[${BundleCodes.KEY_UNKNOWN}]: key id \`carol\` is not in trusted key set \`${set}\`; it has \`alice\`, \`bob\``);
    expect(readFileSync(set, "utf8")).toBe(before);

    const io = memoryIo();
    expect(await runKeys({ action: "remove", trustedKeysFile: set, operands: [join(bob, "bob.public.jwk")] }, io)).toBe(EXIT.ok);
    expect(kidsIn(set)).toEqual(["alice"]);
    expect(await runKeys({ action: "remove", trustedKeysFile: set, operands: ["alice"] }, io)).toBe(EXIT.ok);
    expect(kidsIn(set)).toEqual([]);
    expect(io.stderr).toEqual([`warning: trusted key set \`${set}\` is empty: no signed bundle verifies against it`]);
  });
});

describe("`gateway keys` on the command line", () => {
  test("maps to the shared exit codes: 0 ok, 4 refused, 64 usage", async () => {
    const { alice, bob } = await twoMachines();
    const set = join(tempDir("dutygate-keys-"), "trusted-signers.jwks");
    const run = async (...argv: string[]) => {
      const io = memoryIo();
      return { code: await main(argv, io), io };
    };
    expect((await run("keys", "add", set, join(alice, "alice.public.jwk"), join(bob, "bob.public.jwk"))).code).toBe(EXIT.ok);
    const privateKey = await run("keys", "add", set, join(alice, "alice.private.jwk"));
    expect(privateKey.code).toBe(EXIT.verificationFailed);
    expect(privateKey.io.stderr[0]).toStartWith(`error[${BundleCodes.KEY_PRIVATE}]:`);
    const list = await run("keys", "list", set);
    expect(list.code).toBe(EXIT.ok);
    expect(list.io.stdout).toHaveLength(2);
    for (const argv of [["keys"], ["keys", "rotate", set], ["keys", "add"], ["keys", "list", set, "--kid", "x"]]) {
      expect({ argv, code: (await run(...argv)).code }).toEqual({ argv, code: EXIT.usage });
    }
    expect((await run("keys", "add", set)).code).toBe(EXIT.usage);
  });
});
