import { test, expect, describe } from "bun:test";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from "jose";
import { parseCidr, parseIp } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import { createIdentityTokenSigner } from "./identity-token.ts";
import type { IdentityPrincipal } from "./identity-token.ts";

const principal: IdentityPrincipal = {
  sub: "alice",
  roles: new Set(["reviewer", "developer"]),
  mfa: true,
  team: "core",
  ip: parseIp("10.1.2.3"),
  nets: new Set([parseCidr("10.0.0.0/8")!.text]),
  iss: "spoofed-issuer", // a principal attribute never overrides a registered claim
};

async function signerFor(alg: "EdDSA" | "ES256", overrides: Partial<Parameters<typeof createIdentityTokenSigner>[0]> = {}) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return createIdentityTokenSigner({ privateKey, kid: `gw-${alg}`, alg, issuer: "https://gateway.internal", ttlMs: 60_000, ...overrides });
}

describe("identity tokens", () => {
  test.each(["EdDSA", "ES256"] as const)("%s token verifies with the published JWKS", async (alg) => {
    const signer = await signerFor(alg);
    const token = await signer.sign(principal, "changes", { duty: "approve_change", requestId: "r1" });
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(signer.publicJwks()), {
      issuer: "https://gateway.internal", audience: "changes", algorithms: [alg],
    });
    expect(protectedHeader).toMatchObject({ alg, kid: `gw-${alg}`, typ: "JWT" });
    expect(payload.iss).toBe("https://gateway.internal");
    expect(payload.sub).toBe("alice");
    expect(payload.aud).toBe("changes");
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
    expect(payload.exp! - payload.iat!).toBeGreaterThan(0);
    expect(typeof payload.jti).toBe("string");
    expect(payload.roles).toEqual(["developer", "reviewer"]);
    expect(payload.duty).toBe("approve_change");
    expect(payload.mfa).toBe(true);
    expect(payload.team).toBe("core");
    expect(payload.ip).toBe("10.1.2.3");
    expect(payload.nets).toEqual(["10.0.0.0/8"]);
    expect(payload.request_id).toBeUndefined(); // cached tokens carry no per-request claim
  });

  test("the JWKS holds the public key only", async () => {
    const signer = await signerFor("ES256");
    const [key] = signer.publicJwks().keys;
    expect(key).toMatchObject({ kty: "EC", crv: "P-256", kid: "gw-ES256", alg: "ES256", use: "sig" });
    expect(key).not.toHaveProperty("d");
  });

  test("a token for another audience does not verify there", async () => {
    const signer = await signerFor("EdDSA");
    const token = await signer.sign(principal, "changes");
    const failure = await jwtVerify(token, createLocalJWKSet(signer.publicJwks()), { audience: "deploy" }).catch((e: { code: string }) => e.code);
    expect(failure).toBe("ERR_JWT_CLAIM_VALIDATION_FAILED");
  });

  test("equal inputs reuse one signed token; a different audience, duty or attribute signs anew", async () => {
    const signer = await signerFor("EdDSA");
    const first = await signer.sign(principal, "changes", { duty: "approve_change" });
    // Role order does not matter: the set is the same.
    const again = await signer.sign({ ...principal, roles: ["developer", "reviewer"] }, "changes", { duty: "approve_change", requestId: "other" });
    expect(again).toBe(first);
    expect(signer.signatures).toBe(1);
    const otherAudience = await signer.sign(principal, "deploy", { duty: "approve_change" });
    const otherDuty = await signer.sign(principal, "changes", { duty: "submit_change" });
    const otherAttribute = await signer.sign({ ...principal, mfa: false }, "changes", { duty: "approve_change" });
    expect(new Set([first, otherAudience, otherDuty, otherAttribute]).size).toBe(4);
    expect(signer.signatures).toBe(4);
  });

  test("concurrent equal requests share one signature", async () => {
    const signer = await signerFor("EdDSA");
    const tokens = await Promise.all(Array.from({ length: 50 }, () => signer.sign(principal, "changes")));
    expect(new Set(tokens).size).toBe(1);
    expect(signer.signatures).toBe(1);
  });

  test("a token is reused during the first half of its life, then replaced", async () => {
    let clock = Date.UTC(2026, 0, 1, 12, 0, 0);
    const signer = await signerFor("EdDSA", { ttlMs: 30_000, now: () => clock });
    const first = await signer.sign(principal, "changes");
    clock += 14_000;
    expect(await signer.sign(principal, "changes")).toBe(first);
    clock += 2_000; // 16 s into a 30 s life
    const second = await signer.sign(principal, "changes");
    expect(second).not.toBe(first);
    expect(signer.signatures).toBe(2);
    const claims = decodeJwt(second);
    expect(claims.iat).toBe(Math.floor(clock / 1000));
    expect(claims.exp! - claims.iat!).toBe(30);
    expect(decodeJwt(first).jti).not.toBe(claims.jti);
  });

  test("`cached` gives what `sign` would, per audience and duty, and nothing past half the token's life", async () => {
    let clock = Date.UTC(2026, 0, 1, 12, 0, 0);
    const signer = await signerFor("EdDSA", { ttlMs: 30_000, now: () => clock });
    // Earlier tests' signers (other keys) signed for this very principal object: none of theirs.
    expect(signer.cached(principal, "changes", { duty: "approve_change" })).toBeNull();
    const approve = await signer.sign(principal, "changes", { duty: "approve_change" });
    const submit = await signer.sign(principal, "changes", { duty: "submit_change" });
    const deploy = await signer.sign(principal, "deploy", { duty: "approve_change" });
    expect(signer.cached(principal, "changes", { duty: "approve_change" })).toBe(approve);
    expect(signer.cached(principal, "changes", { duty: "submit_change" })).toBe(submit);
    expect(signer.cached(principal, "deploy", { duty: "approve_change" })).toBe(deploy);
    expect(signer.cached(principal, "changes")).toBeNull();
    // Another object for the same caller (a token verified anew) finds it too; a changed attribute does not.
    expect(signer.cached({ ...principal }, "changes", { duty: "approve_change" })).toBe(approve);
    expect(signer.cached({ ...principal, mfa: false }, "changes", { duty: "approve_change" })).toBeNull();
    clock += 14_000;
    expect(signer.cached(principal, "changes", { duty: "approve_change" })).toBe(approve);
    clock += 2_000; // 16 s into a 30 s life: sign anew, never hand out the old one
    expect(signer.cached(principal, "changes", { duty: "approve_change" })).toBeNull();
    const renewed = await signer.sign(principal, "changes", { duty: "approve_change" });
    expect(renewed).not.toBe(approve);
    expect(signer.cached(principal, "changes", { duty: "approve_change" })).toBe(renewed);
    expect(signer.signatures).toBe(4);
  });

  test("per-request tokens carry request_id and a fresh jti every time", async () => {
    const signer = await signerFor("EdDSA", { perRequestTokens: true });
    const a = decodeJwt(await signer.sign(principal, "changes", { requestId: "r-1" }));
    const b = decodeJwt(await signer.sign(principal, "changes", { requestId: "r-2" }));
    expect(a.request_id).toBe("r-1");
    expect(b.request_id).toBe("r-2");
    expect(a.jti).not.toBe(b.jti);
    expect(signer.signatures).toBe(2);
  });

  test("the cache is bounded", async () => {
    const signer = await signerFor("EdDSA", { maxCachedTokens: 2 });
    const alice = await signer.sign(principal, "a");
    await signer.sign(principal, "b");
    await signer.sign(principal, "c"); // evicts "a"
    expect(await signer.sign(principal, "a")).not.toBe(alice);
    expect(signer.signatures).toBe(4);
  });

  test("a private JWK works and its public half is published", async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
    const jwk = await exportJWK(privateKey);
    const signer = await createIdentityTokenSigner({ privateKey: jwk, kid: "k", alg: "EdDSA", issuer: "gw", ttlMs: 10_000 });
    const token = await signer.sign(principal, "changes");
    expect(decodeProtectedHeader(token).kid).toBe("k");
    expect(signer.publicJwks().keys[0]).not.toHaveProperty("d");
    await jwtVerify(token, createLocalJWKSet(signer.publicJwks()), { issuer: "gw", audience: "changes" });
  });

  test.each([
    ["a lifetime over 60 s", { ttlMs: 60_001 }, "IDENTITY_TTL_INVALID"],
    ["a lifetime under 1 s", { ttlMs: 500 }, "IDENTITY_TTL_INVALID"],
  ])("refuses %s", async (_name, overrides, code) => {
    const error = await signerFor("EdDSA", overrides).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code as string).toBe(code);
  });

  test("refuses a non-extractable key without a public key, accepts it with one", async () => {
    const { privateKey, publicKey } = await generateKeyPair("EdDSA");
    const error = await createIdentityTokenSigner({ privateKey, kid: "k", alg: "EdDSA", issuer: "gw", ttlMs: 10_000 }).catch((e: unknown) => e);
    expect((error as GatewayError).code).toBe("IDENTITY_KEY_INVALID");
    const signer = await createIdentityTokenSigner({ privateKey, publicKey, kid: "k", alg: "EdDSA", issuer: "gw", ttlMs: 10_000 });
    await jwtVerify(await signer.sign(principal, "x"), createLocalJWKSet(signer.publicJwks()), { audience: "x" });
  });
});
