import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url, type JSONWebKeySet } from "jose";
import {
  BundleCodes,
  MANIFEST_FILE_NAME,
  generateSigningKey,
  importSigningKey,
  readUnsignedBundle,
  signBundle,
  verifyBundle,
  type SigningKeyPair,
} from "./mod.ts";
import { tempDir } from "../../test/support/temp-dir.ts";
import { signBundleForTest } from "../../test/support/sign-bundle.ts";


function bundleDir(files: Record<string, string> = { "main.duty": "role developer\n", "teams/ops.duty": "role sre\n", "main.test.toml": "[[case]]\n" }): string {
  const dir = tempDir("dutygate-verify-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const alice = await generateSigningKey({ kid: "alice", alg: "EdDSA" });
const bob = await generateSigningKey({ kid: "bob", alg: "ES256" });
const mallory = await generateSigningKey({ kid: "mallory", alg: "EdDSA" });
const trustedKeys: JSONWebKeySet = { keys: [alice.publicJwk, bob.publicJwk] };

function codes(result: Awaited<ReturnType<typeof verifyBundle>>): string[] {
  return result.ok ? [] : result.problems.map((p) => p.code);
}

describe("verifyBundle: valid bundles", () => {
  test.each([
    ["one signer, min 1", [alice], 1],
    ["two signers (EdDSA + ES256), min 2", [alice, bob], 2],
  ] as [string, SigningKeyPair[], number][])("%s", async (_name, signers, minSigners) => {
    const dir = bundleDir();
    const signed = await signBundleForTest(dir, signers, { revision: 7 });
    const result = await verifyBundle(dir, { trustedKeys, minSigners });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.bundle.revision).toBe(7);
    expect(result.bundle.signers).toEqual(signers.map((s) => s.kid));
    expect(result.bundle.digest).toBe(signed.digest);
    expect(result.bundle.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(result.bundle.files.map((f) => f.path)).toEqual(["main.duty", "main.test.toml", "teams/ops.duty"]);
    expect(result.bundle.files[0]!.text).toBe("role developer\n");
    expect(result.bundle.signed).toBe(true);
    expect(result.bundle.issuedAt).toBeInstanceOf(Date);
  });

  test("the manifest is General JWS JSON: one payload, a {alg, kid, typ} protected header per signer", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, bob], { revision: 1 });
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE_NAME), "utf8"));
    expect(Object.keys(manifest).sort()).toEqual(["payload", "signatures"]);
    const headers = manifest.signatures.map((s: { protected: string }) => JSON.parse(new TextDecoder().decode(base64url.decode(s.protected))));
    expect(headers).toEqual([
      { alg: "EdDSA", kid: "alice", typ: "dutygate-bundle+json" },
      { alg: "ES256", kid: "bob", typ: "dutygate-bundle+json" },
    ]);
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(manifest.payload)));
    expect(payload.revision).toBe(1);
    expect(payload.files.map((f: { path: string }) => f.path)).toEqual(["main.duty", "main.test.toml", "teams/ops.duty"]);
  });

  test("the digest depends on the content: two bundles differing in one byte have different digests", async () => {
    const a = bundleDir({ "x.duty": "a" });
    const b = bundleDir({ "x.duty": "b" });
    const now = new Date("2026-11-22T00:00:00Z");
    const da = await signBundleForTest(a, [alice], { revision: 1, now });
    const db = await signBundleForTest(b, [alice], { revision: 1, now });
    expect(da.digest).not.toBe(db.digest);
  });
});

describe("verifyBundle: tampering", () => {
  const cases: [string, (dir: string) => void, { code: string; path?: string; message?: RegExp }[]][] = [
    ["a changed byte", (dir) => writeFileSync(join(dir, "main.duty"), "role developeR\n"), [{ code: BundleCodes.FILE_CHANGED, path: "main.duty" }]],
    ["an extra file", (dir) => writeFileSync(join(dir, "teams/extra.duty"), "grant x y\n"), [{ code: BundleCodes.FILE_EXTRA, path: "teams/extra.duty" }]],
    ["a removed file", (dir) => rmSync(join(dir, "teams/ops.duty")), [{ code: BundleCodes.FILE_MISSING, path: "teams/ops.duty" }]],
    [
      "a renamed file (one missing + one extra, both saying so)",
      (dir) => renameSync(join(dir, "teams/ops.duty"), join(dir, "teams/sre.duty")),
      [
        { code: BundleCodes.FILE_MISSING, path: "teams/ops.duty", message: /renamed to `teams\/sre.duty`/ },
        { code: BundleCodes.FILE_EXTRA, path: "teams/sre.duty", message: /renamed from `teams\/ops.duty`/ },
      ],
    ],
    [
      "several changes at once: one problem each",
      (dir) => {
        writeFileSync(join(dir, "main.duty"), "changed\n");
        rmSync(join(dir, "main.test.toml"));
        writeFileSync(join(dir, "new.duty"), "new\n");
      },
      [
        { code: BundleCodes.FILE_CHANGED, path: "main.duty" },
        { code: BundleCodes.FILE_MISSING, path: "main.test.toml" },
        { code: BundleCodes.FILE_EXTRA, path: "new.duty" },
      ],
    ],
  ];
  test.each(cases)("%s", async (_name, tamper, expected) => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, bob], { revision: 3 });
    expect((await verifyBundle(dir, { trustedKeys, minSigners: 2 })).ok).toBe(true);
    tamper(dir);
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    if (result.ok) throw new Error("tampered bundle verified");
    expect(result.problems.map((p): { code: string; path?: string } => ({ code: p.code, path: p.path }))).toEqual(expected.map((e) => ({ code: e.code, path: e.path })));
    for (const [i, e] of expected.entries()) if (e.message) expect(result.problems[i]!.message).toMatch(e.message);
  });

  test("a tampered payload (revision bumped) breaks every signature", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, bob], { revision: 3 });
    const path = join(dir, MANIFEST_FILE_NAME);
    const manifest = JSON.parse(readFileSync(path, "utf8"));
    const payload = new TextDecoder().decode(base64url.decode(manifest.payload)).replace('"revision":3', '"revision":4');
    manifest.payload = base64url.encode(payload);
    writeFileSync(path, JSON.stringify(manifest));
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    expect(codes(result)).toEqual([BundleCodes.SIGNATURE_INVALID, BundleCodes.SIGNATURE_INVALID, BundleCodes.TOO_FEW_SIGNERS]);
  });
});

describe("verifyBundle: signers", () => {
  test("an untrusted key is reported as unknown and does not count", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, mallory], { revision: 1 });
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    expect(codes(result)).toEqual([BundleCodes.SIGNER_UNKNOWN, BundleCodes.TOO_FEW_SIGNERS]);
    if (!result.ok) expect(result.problems[0]!.message).toContain("`mallory`");
  });

  test("a key claiming a trusted kid but signing with other key material is an invalid signature", async () => {
    const impostor = await generateSigningKey({ kid: "bob", alg: "ES256" });
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, impostor], { revision: 1 });
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    expect(codes(result)).toEqual([BundleCodes.SIGNATURE_INVALID, BundleCodes.TOO_FEW_SIGNERS]);
  });

  test("the same key under two trusted kids counts once (distinct by RFC 7638 thumbprint)", async () => {
    const aliceAgain = { ...alice, kid: "alice-2", privateJwk: { ...alice.privateJwk, kid: "alice-2" }, publicJwk: { ...alice.publicJwk, kid: "alice-2" } };
    const dir = bundleDir();
    await signBundleForTest(dir, [alice, aliceAgain], { revision: 1 });
    const keys = { keys: [alice.publicJwk, aliceAgain.publicJwk, bob.publicJwk] };
    const result = await verifyBundle(dir, { trustedKeys: keys, minSigners: 2 });
    expect(codes(result)).toEqual([BundleCodes.TOO_FEW_SIGNERS]);
    if (!result.ok) expect(result.problems[0]!.message).toMatch(/^1 distinct trusted signer\(s\), 2 required .*`alice-2`/);
    expect((await verifyBundle(dir, { trustedKeys: keys, minSigners: 1 })).ok).toBe(true);
  });

  test("the same kid signing twice counts once even when the manifest lists it twice", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice], { revision: 1 });
    const path = join(dir, MANIFEST_FILE_NAME);
    const manifest = JSON.parse(readFileSync(path, "utf8"));
    manifest.signatures.push(manifest.signatures[0]); // a hand-edited duplicate
    writeFileSync(path, JSON.stringify(manifest));
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 2 });
    expect(codes(result)).toEqual([BundleCodes.TOO_FEW_SIGNERS]);
  });

  test("a bundle signed by one key fails min 2", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice], { revision: 1 });
    expect(codes(await verifyBundle(dir, { trustedKeys, minSigners: 2 }))).toEqual([BundleCodes.TOO_FEW_SIGNERS]);
  });
});

describe("verifyBundle: time window", () => {
  const issued = new Date("2026-11-22T10:00:00Z");
  test.each([
    ["before expiry", "2026-11-23T09:59:59Z", []],
    ["at expiry", "2026-11-23T10:00:00Z", [BundleCodes.EXPIRED]],
    ["after expiry", "2026-12-01T00:00:00Z", [BundleCodes.EXPIRED]],
    ["issued in the future beyond the skew", "2026-11-22T09:54:00Z", [BundleCodes.NOT_YET_VALID]],
    ["issued in the future within the skew", "2026-11-22T09:56:00Z", []],
  ] as [string, string, string[]][])("%s", async (_name, now, expected) => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice], { revision: 1, now: issued, expiresAt: new Date("2026-11-23T10:00:00Z") });
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 1, now: new Date(now) });
    expect(codes(result)).toEqual(expected);
    if (result.ok) expect(result.bundle.expiresAt?.toISOString()).toBe("2026-11-23T10:00:00.000Z");
  });
});

describe("verifyBundle: missing and malformed manifests", () => {
  test("no manifest with signatures required", async () => {
    const dir = bundleDir();
    expect(codes(await verifyBundle(dir, { trustedKeys, minSigners: 1 }))).toEqual([BundleCodes.MANIFEST_MISSING]);
  });

  test("no manifest with signatures not required: an unsigned bundle at revision 0", async () => {
    const dir = bundleDir();
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 1, requireSignature: false });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.bundle).toMatchObject({ revision: 0, signers: [], signed: false, issuedAt: null, expiresAt: null });
    const unsigned = await readUnsignedBundle(dir);
    expect(unsigned.ok && unsigned.bundle.digest).toBe(result.bundle.digest);
  });

  test("a present manifest is verified even when signatures are not required", async () => {
    const dir = bundleDir();
    await signBundleForTest(dir, [alice], { revision: 1 });
    writeFileSync(join(dir, "main.duty"), "changed\n");
    expect(codes(await verifyBundle(dir, { trustedKeys, minSigners: 1, requireSignature: false }))).toEqual([BundleCodes.FILE_CHANGED]);
  });

  test("the unsigned digest changes with content and ignores the manifest", async () => {
    const dir = bundleDir();
    const before = await readUnsignedBundle(dir);
    await signBundleForTest(dir, [alice], { revision: 1 });
    const signed = await readUnsignedBundle(dir);
    writeFileSync(join(dir, "main.duty"), "changed\n");
    const after = await readUnsignedBundle(dir);
    if (!before.ok || !signed.ok || !after.ok) throw new Error("unsigned read failed");
    expect(signed.bundle.digest).toBe(before.bundle.digest);
    expect(after.bundle.digest).not.toBe(before.bundle.digest);
  });

  const payloadOf = (value: unknown) => base64url.encode(JSON.stringify(value));
  const header = base64url.encode(JSON.stringify({ alg: "EdDSA", kid: "alice", typ: "dutygate-bundle+json" }));
  const goodPayload = { files: [], format: "dutygate-bundle/1", issued_at: "2026-11-22T00:00:00Z", revision: 1 };
  test.each([
    ["not JSON", "{", /not JSON/],
    ["an array", "[]", /JSON object/],
    ["unprotected header", JSON.stringify({ payload: payloadOf(goodPayload), signatures: [{ protected: header, header: { kid: "x" }, signature: "AA" }] }), /unprotected/],
    ["revision 0", JSON.stringify({ payload: payloadOf({ ...goodPayload, revision: 0 }), signatures: [] }), /revision/],
    ["unsorted files", JSON.stringify({ payload: payloadOf({ ...goodPayload, files: [{ path: "b", sha256: "0".repeat(64) }, { path: "a", sha256: "0".repeat(64) }] }), signatures: [] }), /sorted/],
    ["a path escaping the bundle", JSON.stringify({ payload: payloadOf({ ...goodPayload, files: [{ path: "../etc/passwd", sha256: "0".repeat(64) }] }), signatures: [] }), /safe relative path/],
    ["non-canonical payload", JSON.stringify({ payload: base64url.encode(JSON.stringify(goodPayload, null, 1)), signatures: [] }), /canonical/],
    ["a signature with alg none", JSON.stringify({ payload: payloadOf(goodPayload), signatures: [{ protected: base64url.encode('{"alg":"none","kid":"alice","typ":"dutygate-bundle+json"}'), signature: "" }] }), /algorithm `none`/],
    ["a signature without typ", JSON.stringify({ payload: payloadOf(goodPayload), signatures: [{ protected: base64url.encode('{"alg":"EdDSA","kid":"alice"}'), signature: "AA" }] }), /typ/],
  ] as [string, string, RegExp][])("malformed: %s", async (_name, text, message) => {
    const dir = bundleDir({ "a.duty": "x" });
    writeFileSync(join(dir, MANIFEST_FILE_NAME), text);
    const result = await verifyBundle(dir, { trustedKeys, minSigners: 1 });
    expect(codes(result)).toEqual([BundleCodes.MANIFEST_MALFORMED]);
    if (!result.ok) expect(result.problems[0]!.message).toMatch(message);
  });

  test("a manifest with no signatures has too few signers", async () => {
    const dir = bundleDir({});
    writeFileSync(join(dir, MANIFEST_FILE_NAME), JSON.stringify({ payload: payloadOf(goodPayload), signatures: [] }));
    expect(codes(await verifyBundle(dir, { trustedKeys, minSigners: 1, now: new Date("2026-11-22T00:00:00Z") }))).toEqual([BundleCodes.TOO_FEW_SIGNERS]);
  });

  test("a missing directory", async () => {
    const result = await verifyBundle(join(tmpdir(), "dutygate-does-not-exist-7f3a"), { trustedKeys, minSigners: 1 });
    expect(codes(result)).toEqual([BundleCodes.DIR_UNREADABLE]);
  });

  test("minSigners below 1 is a programmer error", async () => {
    const dir = bundleDir();
    await expect(verifyBundle(dir, { trustedKeys, minSigners: 0 })).rejects.toMatchObject({ code: BundleCodes.USAGE });
  });
});

test("a signature by an imported key file verifies (importSigningKey round trip)", async () => {
  const dir = bundleDir();
  const key = await importSigningKey(JSON.parse(JSON.stringify(bob.privateJwk)));
  await signBundle(dir, key, { revision: 2 });
  const result = await verifyBundle(dir, { trustedKeys: { keys: [bob.publicJwk] }, minSigners: 1 });
  expect(result.ok && result.bundle.signers).toEqual(["bob"]);
});
