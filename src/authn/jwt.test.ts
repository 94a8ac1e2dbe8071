import { test, expect, describe, beforeAll, afterAll } from "bun:test";
import { join } from "node:path";
import { renameSync, writeFileSync, utimesSync } from "node:fs";
import { createJwtAuthenticator, type JwtAuthenticator } from "./jwt.ts";
import type { AuthnErrorCode } from "./errors.ts";
import type { PrincipalSchema } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import {
  AUDIENCE, ISSUER, T0, handBuiltToken, defaultClaims, issuerConfig, makeKey, signToken, testSchema, writeJwksFile,
  type TestKey,
} from "../../test/support/authn-tokens.ts";
import { removeTempDir, tempDir } from "../../test/support/temp-dir.ts";

const HMAC_SECRET = "0123456789abcdef0123456789abcdef-hmac";
const nowS = Math.floor(T0 / 1000);

let tmp: string;
let jwksPath: string;
let ed: TestKey, es: TestKey, rs: TestKey, stranger: TestKey, strangerSameKid: TestKey;
let clock = T0;

function authenticator(overrides: Parameters<typeof issuerConfig>[0] = {}, cacheSize?: number): JwtAuthenticator {
  return createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: jwksPath, ...overrides })], now: () => clock, cacheSize });
}

beforeAll(async () => {
  tmp = tempDir();
  jwksPath = join(tmp, "jwks.json");
  [ed, es, rs, stranger, strangerSameKid] = await Promise.all([
    makeKey("EdDSA", "ed-1"), makeKey("ES256", "es-1"), makeKey("RS256", "rs-1"), makeKey("ES256", "stranger"), makeKey("ES256", "es-1"),
  ]);
  writeJwksFile(jwksPath, [ed, es, rs]);
});
afterAll(() => removeTempDir(tmp));

describe("valid tokens become typed principals", () => {
  for (const alg of ["EdDSA", "ES256", "RS256"] as const) {
    test(alg, async () => {
      clock = T0;
      const key = { EdDSA: ed, ES256: es, RS256: rs }[alg];
      const result = await authenticator().authenticate(`Bearer ${await signToken({ key })}`, testSchema);
      if (!result.ok) throw new Error(`expected success, got ${result.code}: ${result.message}`);
      expect(result.method).toBe("jwt");
      expect(result.issuer).toBe(ISSUER);
      expect(result.expiresAt).toBe((nowS + 300) * 1000);
      const p = result.principal;
      expect(p.sub).toBe("alice");
      expect(p.roles).toBeInstanceOf(Set);
      expect([...p.roles].sort()).toEqual(["developer", "reviewer"]);
      expect(p.mfa).toBe(true);
      expect(p.level).toBe(3);
      expect(p.origin).toMatchObject({ kind: "ip", v6: false, text: "10.1.2.3" });
      expect(p.team).toBe("core");
    });
  }

  test("the bearer scheme is case-insensitive and a single role string is a one-element set", async () => {
    clock = T0;
    const token = await signToken({ key: ed, claims: { realm_access: { roles: "deployer" } } });
    const result = await authenticator().authenticate(`bEaReR   ${token}`, testSchema);
    expect(result.ok && [...result.principal.roles]).toEqual(["deployer"]);
  });

  test("a token without kid verifies against the one key of its type", async () => {
    clock = T0;
    const result = await authenticator().authenticate(`Bearer ${await signToken({ key: es, kid: null })}`, testSchema);
    expect(result.ok).toBe(true);
  });
});

interface FailureCase {
  name: string;
  code: AuthnErrorCode;
  /** Builds the Authorization header value. */
  header: () => Promise<string | null>;
  config?: Parameters<typeof issuerConfig>[0];
  /** Text the message must contain. */
  mentions?: string;
}

const bearer = async (token: Promise<string>) => `Bearer ${await token}`;

const failureCases: FailureCase[] = [
  { name: "no header", code: "AUTHN_MISSING_TOKEN", header: async () => null },
  { name: "empty header", code: "AUTHN_MISSING_TOKEN", header: async () => "" },
  { name: "another scheme", code: "AUTHN_MISSING_TOKEN", header: async () => "Basic YWxpY2U6c2VjcmV0" },
  { name: "bearer without token", code: "AUTHN_MALFORMED_TOKEN", header: async () => "Bearer" },
  { name: "two segments", code: "AUTHN_MALFORMED_TOKEN", header: async () => "Bearer abc.def" },
  { name: "not base64url", code: "AUTHN_MALFORMED_TOKEN", header: async () => "Bearer a+b.c/d.e" },
  { name: "header is not JSON", code: "AUTHN_MALFORMED_TOKEN", header: async () => "Bearer bm90IGpzb24.e30.c2ln" },
  { name: "oversized token", code: "AUTHN_MALFORMED_TOKEN", header: async () => `Bearer ${"a".repeat(20_000)}.b.c` },
  { name: "expired", code: "AUTHN_TOKEN_EXPIRED", header: () => bearer(signToken({ key: ed, iat: nowS - 600, exp: nowS - 60 })) },
  { name: "expired beyond the clock tolerance only", code: "AUTHN_TOKEN_EXPIRED", header: () => bearer(signToken({ key: ed, iat: nowS - 600, exp: nowS - 6 })) },
  { name: "not yet valid (nbf)", code: "AUTHN_TOKEN_NOT_YET_VALID", header: () => bearer(signToken({ key: ed, claims: { nbf: nowS + 60 } })) },
  { name: "issued in the future (iat), hiding a long lifetime", code: "AUTHN_TOKEN_NOT_YET_VALID", header: () => bearer(signToken({ key: ed, iat: nowS + 86_400 * 365, exp: nowS + 86_400 * 365 + 300 })) },
  { name: "wrong audience", code: "AUTHN_BAD_AUDIENCE", header: () => bearer(signToken({ key: ed, claims: { aud: "billing" } })) },
  { name: "unknown issuer", code: "AUTHN_UNKNOWN_ISSUER", header: () => bearer(signToken({ key: ed, claims: { iss: "https://evil.example" } })), mentions: "`https://evil.example`" },
  { name: "no issuer", code: "AUTHN_MISSING_CLAIM", header: () => bearer(signToken({ key: ed, claims: { iss: undefined } })), mentions: "`iss`" },
  { name: "issuer not a string", code: "AUTHN_BAD_ISSUER", header: () => bearer(signToken({ key: ed, claims: { iss: 42 } })) },
  { name: "wrong issuer: our iss, a stranger's key", code: "AUTHN_UNKNOWN_KEY", header: () => bearer(signToken({ key: stranger })) },
  { name: "wrong issuer: our iss and kid, a stranger's key", code: "AUTHN_BAD_SIGNATURE", header: () => bearer(signToken({ key: strangerSameKid })) },
  {
    name: "tampered payload", code: "AUTHN_BAD_SIGNATURE",
    header: async () => {
      const [h, , s] = (await signToken({ key: ed })).split(".");
      const forged = Buffer.from(JSON.stringify({ ...defaultClaims(), sub: "mallory", iat: nowS, exp: nowS + 300 })).toString("base64url");
      return `Bearer ${h}.${forged}.${s}`;
    },
  },
  { name: "alg none", code: "AUTHN_ALG_NOT_ALLOWED", header: () => bearer(handBuiltToken({ alg: "none" }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 })), mentions: "`none`" },
  {
    name: "alg confusion: HS256 with the RSA public key PEM, issuer without HMAC", code: "AUTHN_ALG_NOT_ALLOWED",
    header: () => bearer(handBuiltToken({ alg: "HS256", kid: rs.kid }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 }, new TextEncoder().encode(rs.publicPem))),
  },
  {
    name: "alg confusion: HS256 with the RSA public key PEM, issuer with HMAC", code: "AUTHN_BAD_SIGNATURE",
    config: { algorithms: ["RS256", "HS256"], hmacSecret: HMAC_SECRET },
    header: () => bearer(handBuiltToken({ alg: "HS256", kid: rs.kid }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 }, new TextEncoder().encode(rs.publicPem))),
  },
  {
    name: "alg confusion: HS256 with the public JWK bytes, issuer with HMAC", code: "AUTHN_BAD_SIGNATURE",
    config: { algorithms: ["RS256", "HS256"], hmacSecret: HMAC_SECRET },
    header: () => bearer(handBuiltToken({ alg: "HS256", kid: rs.kid }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 }, new TextEncoder().encode(JSON.stringify(rs.publicJwk)))),
  },
  { name: "algorithm allowed elsewhere but not for this issuer", code: "AUTHN_ALG_NOT_ALLOWED", config: { algorithms: ["EdDSA"] }, header: () => bearer(signToken({ key: rs })) },
  { name: "unknown kid", code: "AUTHN_UNKNOWN_KEY", header: () => bearer(signToken({ key: ed, kid: "retired-key" })) },
  { name: "lifetime too long", code: "AUTHN_TOKEN_LIFETIME_TOO_LONG", header: () => bearer(signToken({ key: ed, exp: nowS + 7201 })), config: { maxLifetimeMs: 7_200_000 } },
  { name: "no iat", code: "AUTHN_MISSING_CLAIM", header: () => bearer(signToken({ key: ed, iat: null })), mentions: "`iat`" },
  { name: "no exp", code: "AUTHN_MISSING_CLAIM", header: () => bearer(signToken({ key: ed, exp: null })), mentions: "`exp`" },
  { name: "exp not a number", code: "AUTHN_MALFORMED_TOKEN", header: () => bearer(handBuiltToken({ alg: "HS256" }, { ...defaultClaims(), iat: nowS, exp: "tomorrow" }, new TextEncoder().encode(HMAC_SECRET))), config: { algorithms: ["HS256"], hmacSecret: HMAC_SECRET } },
  { name: "configured required claim missing", code: "AUTHN_MISSING_CLAIM", header: () => bearer(signToken({ key: ed })), config: { requiredClaims: ["jti"] }, mentions: "`jti`" },
  { name: "mapped claim missing", code: "AUTHN_MISSING_CLAIM", header: () => bearer(signToken({ key: ed, claims: { client_ip: undefined } })), mentions: "`origin`" },
  { name: "claim of the wrong type (mfa: \"yes\")", code: "AUTHN_BAD_CLAIM", header: () => bearer(signToken({ key: ed, claims: { mfa: "yes" } })), mentions: "`mfa`" },
  { name: "int claim given as a float", code: "AUTHN_BAD_CLAIM", header: () => bearer(signToken({ key: ed, claims: { level: 2.5 } })), mentions: "`level`" },
  { name: "role outside the policy's roles", code: "AUTHN_BAD_CLAIM", header: () => bearer(signToken({ key: ed, claims: { realm_access: { roles: ["root"] } } })), mentions: "`roles`" },
  { name: "ip claim that is no address", code: "AUTHN_BAD_CLAIM", header: () => bearer(signToken({ key: ed, claims: { client_ip: "10.1.2" } })), mentions: "`origin`" },
  { name: "constant of the wrong type", code: "AUTHN_BAD_CLAIM", header: () => bearer(signToken({ key: ed })), config: { constants: { team: 7 } }, mentions: "`team`" },
];

describe("failures carry stable codes", () => {
  for (const c of failureCases) {
    test(c.name, async () => {
      clock = T0;
      const header = await c.header();
      const result = await authenticator(c.config).authenticate(header, testSchema);
      if (result.ok) throw new Error(`expected ${c.code}, got a principal`);
      expect(result.code).toBe(c.code);
      if (c.mentions) expect(result.message).toContain(c.mentions);
      // The message never echoes the credential.
      const token = header?.split(" ").pop() ?? "";
      if (token.length > 20) expect(result.message).not.toContain(token.slice(-20));
    });
  }
});

describe("the compact-JWS check, with the cache on and off", () => {
  // Only a miss runs the syntax check (a hit is a token verified before): both paths refuse alike.
  test.each([["on", undefined], ["off", 0]] as const)("cache %s: a token that is no compact JWS is AUTHN_MALFORMED_TOKEN, a good one passes", async (_name, cacheSize) => {
    clock = T0;
    const authn = authenticator({}, cacheSize);
    for (const header of ["Bearer abc.def", "Bearer a+b.c/d.e", "Bearer aaa.bbb.ccc extra"]) {
      const first = await authn.authenticate(header, testSchema);
      const again = await authn.authenticate(header, testSchema);
      const refused = { ok: false, code: "AUTHN_MALFORMED_TOKEN", message: "bearer token is not a compact JWT" } as const;
      expect([first, again]).toEqual([refused, refused]);
    }
    const good = `Bearer ${await signToken({ key: ed })}`;
    expect([(await authn.authenticate(good, testSchema)).ok, (await authn.authenticate(good, testSchema)).ok]).toEqual([true, true]);
  });
});

describe("HMAC issuers", () => {
  test("HS256 with the configured secret verifies", async () => {
    clock = T0;
    const token = await handBuiltToken({ alg: "HS256" }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 }, new TextEncoder().encode(HMAC_SECRET));
    const result = await authenticator({ algorithms: ["RS256", "HS256"], hmacSecret: HMAC_SECRET }).authenticate(`Bearer ${token}`, testSchema);
    expect(result.ok).toBe(true);
  });
});

describe("unsafe issuer configuration is refused", () => {
  const cases: { name: string; config: Parameters<typeof issuerConfig>[0] }[] = [
    { name: "alg none", config: { algorithms: ["EdDSA", "none"] } },
    { name: "no algorithms", config: { algorithms: [] } },
    { name: "unknown algorithm", config: { algorithms: ["RS1"] } },
    { name: "HS256 without a secret", config: { algorithms: ["HS256"] } },
    { name: "a secret too short for HS256", config: { algorithms: ["HS256"], hmacSecret: "short" } },
    { name: "a secret without an HS algorithm", config: { hmacSecret: HMAC_SECRET } },
    { name: "no key source", config: { jwksFile: null } },
    { name: "file and URL", config: { jwksUrl: "https://idp.example.test/jwks" } },
    { name: "plain http JWKS URL", config: { jwksFile: null, jwksUrl: "http://idp.example.test/jwks" } },
    { name: "no audience", config: { audience: [] } },
    { name: "unreadable JWKS CA file", config: { jwksFile: null, jwksUrl: "https://idp.example.test/jwks", jwksCaFile: "/nonexistent/ca.pem" } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      let thrown: unknown = null;
      try { authenticator(c.config); } catch (err) { thrown = err; }
      expect(thrown).toBeInstanceOf(GatewayError);
      expect((thrown as GatewayError).code).toBe("AUTHN_BAD_CONFIG");
      expect((thrown as GatewayError).message).toStartWith("issuers.corp: ");
    });
  }

  test("plain http is accepted for a loopback JWKS URL only", () => {
    expect(() => authenticator({ jwksFile: null, jwksUrl: "http://127.0.0.1:9/jwks" })).not.toThrow();
    expect(() => authenticator({ jwksFile: null, jwksUrl: "http://[::1]:9/jwks" })).not.toThrow();
    expect(() => authenticator({ jwksFile: null, jwksUrl: "http://127.example.test/jwks" })).toThrow(expect.objectContaining({ code: "AUTHN_BAD_CONFIG" }));
  });

  test("the same iss twice", () => {
    expect(() => createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: jwksPath }), issuerConfig({ name: "again", jwksFile: jwksPath })] }))
      .toThrow(expect.objectContaining({ code: "AUTHN_BAD_CONFIG" }));
  });
});

describe("verified-token cache", () => {
  test("a hit skips verification and returns the same principal", async () => {
    clock = T0;
    const authn = authenticator();
    const header = `Bearer ${await signToken({ key: ed })}`;
    const first = await authn.authenticate(header, testSchema);
    const before = authn.stats();
    const second = await authn.authenticate(header, testSchema);
    expect(first.ok && second.ok).toBe(true);
    expect(authn.stats().verifications).toBe(before.verifications);
    expect(authn.stats().cacheHits).toBe(before.cacheHits + 1);
    expect(second.ok && second.principal).toBe(first.ok && first.principal);
  });

  test("an expired cached token is refused and forgotten", async () => {
    clock = T0;
    const authn = authenticator();
    const header = `Bearer ${await signToken({ key: ed, exp: nowS + 60 })}`;
    expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
    clock = T0 + 60_000 + 5_000; // exp + clock tolerance
    const expired = await authn.authenticate(header, testSchema);
    expect(expired.ok ? "ok" : expired.code).toBe("AUTHN_TOKEN_EXPIRED");
    expect(authn.stats().cacheEntries).toBe(0);
  });

  test("a forged twin (same payload, other signature) is not a hit", async () => {
    clock = T0;
    const authn = authenticator();
    const token = await signToken({ key: es });
    expect((await authn.authenticate(`Bearer ${token}`, testSchema)).ok).toBe(true);
    const [h, p] = token.split(".");
    const twin = `${h}.${p}.${(await signToken({ key: strangerSameKid })).split(".")[2]}`;
    const before = authn.stats().verifications;
    const result = await authn.authenticate(`Bearer ${twin}`, testSchema);
    expect(result.ok ? "ok" : result.code).toBe("AUTHN_BAD_SIGNATURE");
    expect(authn.stats().verifications).toBe(before + 1);
  });

  test("a changed principal schema does not reuse principals; the same schema content does", async () => {
    clock = T0;
    const authn = authenticator();
    const header = `Bearer ${await signToken({ key: ed })}`;
    expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
    const sameContent: PrincipalSchema = JSON.parse(JSON.stringify(testSchema));
    let before = authn.stats().verifications;
    expect((await authn.authenticate(header, sameContent)).ok).toBe(true);
    expect(authn.stats().verifications).toBe(before);

    const { level: _dropped, ...rest } = testSchema;
    const narrower: PrincipalSchema = rest;
    before = authn.stats().verifications;
    const result = await authn.authenticate(header, narrower);
    expect(authn.stats().verifications).toBe(before + 1);
    expect(result.ok && "level" in result.principal).toBe(false);
  });

  test("clear() forgets verified tokens", async () => {
    clock = T0;
    const authn = authenticator();
    const header = `Bearer ${await signToken({ key: ed })}`;
    await authn.authenticate(header, testSchema);
    authn.clear();
    const before = authn.stats().verifications;
    expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
    expect(authn.stats().verifications).toBe(before + 1);
  });

  test("size is bounded, least recently used evicted", async () => {
    clock = T0;
    const authn = authenticator({}, 2);
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((sub) => signToken({ key: ed, claims: { sub } })));
    for (const t of [a, b]) await authn.authenticate(`Bearer ${t}`, testSchema);
    await authn.authenticate(`Bearer ${a}`, testSchema); // a is now most recent
    await authn.authenticate(`Bearer ${c}`, testSchema); // evicts b
    expect(authn.stats().cacheEntries).toBe(2);
    let before = authn.stats().verifications;
    await authn.authenticate(`Bearer ${a}`, testSchema);
    expect(authn.stats().verifications).toBe(before);
    before = authn.stats().verifications;
    await authn.authenticate(`Bearer ${b}`, testSchema);
    expect(authn.stats().verifications).toBe(before + 1);
  });

  test("cacheSize 0 verifies every time", async () => {
    clock = T0;
    const authn = authenticator({}, 0);
    const header = `Bearer ${await signToken({ key: ed })}`;
    await authn.authenticate(header, testSchema);
    await authn.authenticate(header, testSchema);
    expect(authn.stats()).toMatchObject({ verifications: 2, cacheHits: 0, cacheEntries: 0 });
  });

  test("failures are not cached", async () => {
    clock = T0;
    const authn = authenticator();
    const header = `Bearer ${await signToken({ key: ed, claims: { mfa: "yes" } })}`;
    await authn.authenticate(header, testSchema);
    await authn.authenticate(header, testSchema);
    expect(authn.stats()).toMatchObject({ verifications: 2, cacheEntries: 0 });
  });
});

describe("JWKS file", () => {
  test("key rotation is picked up, and tokens of the removed key stop working even when cached", async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      const [oldKey, newKey] = await Promise.all([makeKey("EdDSA", "2027-01"), makeKey("EdDSA", "2027-02")]);
      writeJwksFile(path, [oldKey]);
      clock = T0;
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock });
      const oldHeader = `Bearer ${await signToken({ key: oldKey })}`;
      const newHeader = `Bearer ${await signToken({ key: newKey })}`;
      expect((await authn.authenticate(oldHeader, testSchema)).ok).toBe(true);
      const unknown = await authn.authenticate(newHeader, testSchema);
      expect(unknown.ok ? "ok" : unknown.code).toBe("AUTHN_UNKNOWN_KEY");

      writeJwksFile(path, [newKey]);
      // Within the check interval the file is not looked at again.
      clock = T0 + 500;
      expect((await authn.authenticate(oldHeader, testSchema)).ok).toBe(true);
      clock = T0 + 1000;
      expect((await authn.authenticate(newHeader, testSchema)).ok).toBe(true);
      const removed = await authn.authenticate(oldHeader, testSchema);
      expect(removed.ok ? "ok" : removed.code).toBe("AUTHN_UNKNOWN_KEY");
      expect(authn.stats().jwksLoads.corp).toBe(2);
    } finally {
      removeTempDir(dir);
    }
  });

  test("a broken rewrite keeps the last good keys", async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      const key = await makeKey("ES256", "k1");
      writeJwksFile(path, [key]);
      clock = T0;
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock, cacheSize: 0 });
      const header = `Bearer ${await signToken({ key })}`;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      writeFileSync(path, '{"keys": [');
      utimesSync(path, new Date(T0 + 10_000), new Date(T0 + 10_000));
      clock = T0 + 2000;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      expect(authn.stats().jwksLoads.corp).toBe(2);
    } finally {
      removeTempDir(dir);
    }
  });

  test("a missing file is AUTHN_JWKS_UNAVAILABLE, not a crash", async () => {
    clock = T0;
    const authn = authenticator({ jwksFile: join(tmp, "absent.json") });
    const result = await authn.authenticate(`Bearer ${await signToken({ key: ed })}`, testSchema);
    expect(result.ok ? "ok" : result.code).toBe("AUTHN_JWKS_UNAVAILABLE");
  });

  test("several keys share a kid: the one that verifies wins", async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      const [a, b] = await Promise.all([makeKey("ES256", "shared"), makeKey("ES256", "shared")]);
      writeJwksFile(path, [a, b]);
      clock = T0;
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock });
      expect((await authn.authenticate(`Bearer ${await signToken({ key: b })}`, testSchema)).ok).toBe(true);
      const outsider = await makeKey("ES256", "shared");
      const result = await authn.authenticate(`Bearer ${await signToken({ key: outsider })}`, testSchema);
      expect(result.ok ? "ok" : result.code).toBe("AUTHN_BAD_SIGNATURE");
    } finally {
      removeTempDir(dir);
    }
  });
});

describe("a cached token lives only as long as the key that verified it", () => {
  // Regression: a token verified with k1 kept getting `ok` from the cache after the JWKS file was
  // replaced by one without k1, until some other token missed the cache and reloaded the keys.
  // Each case: `was` verifies a token signed by `signer` (cached), the file is then atomically
  // replaced by `now`, and the same token is presented again with no other token in between.
  type Keys = { a: TestKey; a2: TestKey; b: TestKey };
  const cases: Array<{ name: string; was: (k: Keys) => object[]; now: (k: Keys) => object[]; expect: AuthnErrorCode | "ok (no re-verification)" }> = [
    { name: "the key removed", was: (k) => [k.a.publicJwk, k.b.publicJwk], now: (k) => [k.b.publicJwk], expect: "AUTHN_UNKNOWN_KEY" },
    { name: "the key replaced under the same kid", was: (k) => [k.a.publicJwk], now: (k) => [k.a2.publicJwk], expect: "AUTHN_BAD_SIGNATURE" },
    { name: "the kid moved to another key, the old key kept under another kid", was: (k) => [k.a.publicJwk], now: (k) => [k.a2.publicJwk, { ...k.a.publicJwk, kid: "archived" }], expect: "AUTHN_BAD_SIGNATURE" },
    { name: "the key kept but marked for encryption only", was: (k) => [k.a.publicJwk], now: (k) => [{ ...k.a.publicJwk, use: "enc" }], expect: "AUTHN_UNKNOWN_KEY" },
    { name: "the key kept but for verification no more (key_ops)", was: (k) => [k.a.publicJwk], now: (k) => [{ ...k.a.publicJwk, key_ops: ["encrypt"] }], expect: "AUTHN_UNKNOWN_KEY" },
    { name: "the key kept but declared for another alg", was: (k) => [k.a.publicJwk], now: (k) => [{ ...k.a.publicJwk, alg: "ES384" }], expect: "AUTHN_UNKNOWN_KEY" },
    { name: "another key added", was: (k) => [k.a.publicJwk], now: (k) => [k.a.publicJwk, k.b.publicJwk], expect: "ok (no re-verification)" },
    { name: "another key removed", was: (k) => [k.a.publicJwk, k.b.publicJwk], now: (k) => [k.a.publicJwk], expect: "ok (no re-verification)" },
    { name: "the same keys rewritten", was: (k) => [k.a.publicJwk], now: (k) => [k.a.publicJwk], expect: "ok (no re-verification)" },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const dir = tempDir();
      try {
        const path = join(dir, "jwks.json");
        const [a, a2, b] = await Promise.all([makeKey("ES256", "k-a"), makeKey("ES256", "k-a"), makeKey("EdDSA", "k-b")]);
        const keys = { a, a2, b };
        const write = (jwks: object[]) => { writeFileSync(`${path}.tmp`, JSON.stringify({ keys: jwks })); renameSync(`${path}.tmp`, path); };
        write(c.was(keys));
        clock = T0;
        const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock, jwksFileCheckIntervalMs: 1000 });
        const header = `Bearer ${await signToken({ key: a })}`;
        expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
        write(c.now(keys));
        const verifications = authn.stats().verifications;
        clock = T0 + 1000; // one check interval later
        const result = await authn.authenticate(header, testSchema);
        if (c.expect === "ok (no re-verification)") {
          expect(result.ok).toBe(true);
          expect(authn.stats().verifications).toBe(verifications);
        } else {
          expect(result.ok ? "ok" : result.code).toBe(c.expect);
          expect(authn.stats().cacheEntries).toBe(0);
        }
      } finally {
        removeTempDir(dir);
      }
    });
  }

  test("the bound is the check interval: the old answer within it, the new one at it", async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      const [a, b] = await Promise.all([makeKey("ES256", "k-a"), makeKey("ES256", "k-b")]);
      writeJwksFile(path, [a, b]);
      clock = T0;
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock, jwksFileCheckIntervalMs: 5000 });
      const header = `Bearer ${await signToken({ key: a })}`;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      writeJwksFile(path, [b]);
      clock = T0 + 4999;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      clock = T0 + 5000;
      const result = await authn.authenticate(header, testSchema);
      expect(result.ok ? "ok" : result.code).toBe("AUTHN_UNKNOWN_KEY");
    } finally {
      removeTempDir(dir);
    }
  });

  test("a rewrite that cannot be parsed keeps the last good keys for cached tokens too", async () => {
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      const a = await makeKey("ES256", "k-a");
      writeJwksFile(path, [a]);
      clock = T0;
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path })], now: () => clock });
      const header = `Bearer ${await signToken({ key: a })}`;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      writeFileSync(`${path}.tmp`, '{"keys": [');
      renameSync(`${path}.tmp`, path);
      clock = T0 + 1000;
      expect((await authn.authenticate(header, testSchema)).ok).toBe(true);
      expect(authn.stats().jwksLoads.corp).toBe(2);
    } finally {
      removeTempDir(dir);
    }
  });

  test("HMAC tokens are not tied to the JWKS file", async () => {
    clock = T0;
    const dir = tempDir();
    try {
      const path = join(dir, "jwks.json");
      writeJwksFile(path, [ed]);
      const authn = createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: path, algorithms: ["HS256", "EdDSA"], hmacSecret: HMAC_SECRET })], now: () => clock });
      const token = await handBuiltToken({ alg: "HS256", typ: "JWT" }, { ...defaultClaims(), iat: nowS, exp: nowS + 300 }, new TextEncoder().encode(HMAC_SECRET));
      expect((await authn.authenticate(`Bearer ${token}`, testSchema)).ok).toBe(true);
      writeJwksFile(path, [es]);
      clock = T0 + 1000;
      const before = authn.stats().verifications;
      expect((await authn.authenticate(`Bearer ${token}`, testSchema)).ok).toBe(true);
      expect(authn.stats().verifications).toBe(before);
    } finally {
      removeTempDir(dir);
    }
  });
});

test("audience: any configured value is accepted, as is an array containing one", async () => {
  clock = T0;
  const authn = authenticator();
  for (const aud of ["other-service", ["billing", AUDIENCE]]) {
    const result = await authn.authenticate(`Bearer ${await signToken({ key: ed, claims: { aud } })}`, testSchema);
    expect(result.ok).toBe(true);
  }
});

test("concurrent requests with one new token verify it once", async () => {
  clock = T0;
  const authn = authenticator();
  const header = `Bearer ${await signToken({ key: rs })}`;
  const results = await Promise.all(Array.from({ length: 10 }, () => authn.authenticate(header, testSchema)));
  expect(results.every((r) => r.ok)).toBe(true);
  expect(authn.stats().verifications).toBe(1);
});
