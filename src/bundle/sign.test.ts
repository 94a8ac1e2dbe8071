import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BundleCodes, MANIFEST_FILE_NAME, generateSigningKey, importSigningKey, signBundle, verifyBundle, type SigningKey } from "./mod.ts";

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function bundleDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-sign-"));
  roots.push(dir);
  writeFileSync(join(dir, "main.duty"), "role developer\n");
  writeFileSync(join(dir, "main.test.toml"), "[[case]]\n");
  return dir;
}

const pairs = {
  alice: await generateSigningKey({ kid: "alice" }),
  bob: await generateSigningKey({ kid: "bob", alg: "ES256" }),
  carol: await generateSigningKey({ kid: "carol" }),
};
const keys: Record<keyof typeof pairs, SigningKey> = {
  alice: await importSigningKey(pairs.alice.privateJwk),
  bob: await importSigningKey(pairs.bob.privateJwk),
  carol: await importSigningKey(pairs.carol.privateJwk),
};
const trustedKeys = { keys: Object.values(pairs).map((p) => p.publicJwk) };
const manifestText = (dir: string) => readFileSync(join(dir, MANIFEST_FILE_NAME), "utf8");

describe("signBundle", () => {
  test("the first signer issues revision 1; a second signer adds to the same payload", async () => {
    const dir = bundleDir();
    const first = await signBundle(dir, keys.alice);
    expect(first).toMatchObject({ action: "issued", revision: 1, signers: ["alice"] });
    const second = await signBundle(dir, keys.bob);
    expect(second).toMatchObject({ action: "added", revision: 1, signers: ["alice", "bob"], digest: first.digest, issuedAt: first.issuedAt });
    const verified = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    expect(verified.ok && verified.bundle.signers).toEqual(["alice", "bob"]);
  });

  test("the same kid signing again replaces its signature instead of duplicating it", async () => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice, { revision: 4 });
    await signBundle(dir, keys.bob);
    const again = await signBundle(dir, keys.alice);
    expect(again).toMatchObject({ action: "replaced", revision: 4, signers: ["alice", "bob"] });
    expect(JSON.parse(manifestText(dir)).signatures).toHaveLength(2);
  });

  test("a later signer is refused when the files changed since the manifest was issued (stale)", async () => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice, { revision: 2 });
    const before = manifestText(dir);
    writeFileSync(join(dir, "main.duty"), "role developer, deployer\n");
    writeFileSync(join(dir, "extra.duty"), "x\n");
    const refused = signBundle(dir, keys.bob);
    await expect(refused).rejects.toMatchObject({ code: BundleCodes.MANIFEST_STALE });
    const error = await refused.catch((e) => e);
    expect(error.detail.problems.map((p: { code: string; path: string }) => [p.code, p.path])).toEqual([
      [BundleCodes.FILE_CHANGED, "main.duty"],
      [BundleCodes.FILE_EXTRA, "extra.duty"],
    ]);
    expect(manifestText(dir)).toBe(before); // nothing written
  });

  test("changed files need an explicit new revision, which drops the old signatures", async () => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice, { revision: 2 });
    await signBundle(dir, keys.bob);
    writeFileSync(join(dir, "main.duty"), "role developer, deployer\n");
    const next = await signBundle(dir, keys.carol, { newRevision: true });
    expect(next).toMatchObject({ action: "issued", revision: 3, signers: ["carol"] });
    const explicit = await signBundle(dir, keys.alice, { revision: 10 });
    expect(explicit).toMatchObject({ action: "issued", revision: 10, signers: ["alice"] });
  });

  test.each([
    ["an older revision", 4, BundleCodes.REVISION_NOT_NEWER],
    ["the same revision for other files", 5, BundleCodes.REVISION_NOT_NEWER],
  ])("an explicit revision is refused when it is %s", async (_name, revision, code) => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice, { revision: 5 });
    writeFileSync(join(dir, "main.duty"), "changed\n");
    await expect(signBundle(dir, keys.bob, { revision })).rejects.toMatchObject({ code });
  });

  test("an explicit revision equal to the issued one, files unchanged, adds a signature", async () => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice, { revision: 5 });
    expect(await signBundle(dir, keys.bob, { revision: 5 })).toMatchObject({ action: "added", revision: 5 });
  });

  test("expiry is part of the signed payload: a co-signer cannot change it", async () => {
    const dir = bundleDir();
    const now = new Date("2026-11-22T10:00:00Z");
    const first = await signBundle(dir, keys.alice, { revision: 1, expiresInMs: 86_400_000, now });
    expect(first.expiresAt).toBe("2026-11-23T10:00:00Z");
    await expect(signBundle(dir, keys.bob, { expiresInMs: 3_600_000, now })).rejects.toMatchObject({ code: BundleCodes.USAGE });
    expect(await signBundle(dir, keys.bob, { now })).toMatchObject({ action: "added", expiresAt: "2026-11-23T10:00:00Z" });
  });

  test.each([
    ["revision 0", { revision: 0 }],
    ["revision and newRevision together", { revision: 3, newRevision: true }],
    ["expiry in the past", { expiresAt: new Date("2000-01-01T00:00:00Z") }],
    ["both expiry kinds", { expiresAt: new Date("2099-01-01T00:00:00Z"), expiresInMs: 1000 }],
  ])("usage error: %s", async (_name, options) => {
    const dir = bundleDir();
    await expect(signBundle(dir, keys.alice, options)).rejects.toMatchObject({ code: BundleCodes.USAGE });
  });

  test("a malformed manifest is only replaced with an explicit revision", async () => {
    const dir = bundleDir();
    writeFileSync(join(dir, MANIFEST_FILE_NAME), "{not json");
    await expect(signBundle(dir, keys.alice)).rejects.toMatchObject({ code: BundleCodes.MANIFEST_MALFORMED });
    await expect(signBundle(dir, keys.alice, { newRevision: true })).rejects.toMatchObject({ code: BundleCodes.MANIFEST_MALFORMED });
    expect(await signBundle(dir, keys.alice, { revision: 8 })).toMatchObject({ action: "issued", revision: 8 });
  });

  test("a missing directory is refused with BUNDLE_DIR_UNREADABLE", async () => {
    await expect(signBundle(join(tmpdir(), "dutygate-no-such-dir-91c2"), keys.alice)).rejects.toMatchObject({ code: BundleCodes.DIR_UNREADABLE });
  });

  test("signing leaves no temporary files behind and does not list its own manifest", async () => {
    const dir = bundleDir();
    await signBundle(dir, keys.alice);
    await signBundle(dir, keys.bob);
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(dir).sort()).toEqual([MANIFEST_FILE_NAME, "main.duty", "main.test.toml"]);
  });
});

describe("importSigningKey", () => {
  test.each([
    ["a public key", () => pairs.alice.publicJwk, /public key/],
    ["a key without kid", () => ({ ...pairs.alice.privateJwk, kid: undefined }), /kid/],
    ["an RSA-looking key", () => ({ kty: "RSA", kid: "x", d: "AA", n: "AA", e: "AQAB" }), /Ed25519 or P-256/],
    ["a mismatched alg", () => ({ ...pairs.alice.privateJwk, alg: "ES256" }), /declares/],
  ])("refuses %s with BUNDLE_KEY_INVALID", async (_name, jwk, message) => {
    const attempt = importSigningKey(jwk());
    await expect(attempt).rejects.toMatchObject({ code: BundleCodes.KEY_INVALID });
    expect(((await attempt.catch((e) => e)) as Error).message).toMatch(message);
  });
});
