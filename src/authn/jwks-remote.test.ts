// JWKS over real HTTPS on loopback: a private CA, a server certificate it signed, a counting server.
import { test, expect, describe, beforeAll, afterAll } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { generate } from "selfsigned";
import { createJwtAuthenticator, type JwtAuthenticatorOptions } from "./jwt.ts";
import { issuerConfig, makeKey, signToken, testSchema, T0, type TestKey } from "../../test/support/authn-tokens.ts";
import { removeTempDir, tempDir } from "../../test/support/temp-dir.ts";

let tmp: string;
let caFile: string;
let server: ReturnType<typeof Bun.serve>;
let jwksUrl: string;
let served: TestKey[] = [];
let fetches = 0;
let failWith: number | null = null;
let k1: TestKey, k2: TestKey, k1Twin: TestKey;
const clock = () => T0;

beforeAll(async () => {
  tmp = tempDir();
  const ca = await generate([{ name: "commonName", value: "dutygate test CA" }], {
    keyType: "ec", algorithm: "sha256",
    extensions: [{ name: "basicConstraints", cA: true, critical: true }, { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true }],
  });
  const leaf = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec", algorithm: "sha256", ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] },
    ],
  });
  caFile = join(tmp, "ca.pem");
  writeFileSync(caFile, ca.cert);
  [k1, k2, k1Twin] = await Promise.all([makeKey("ES256", "remote-1"), makeKey("EdDSA", "remote-2"), makeKey("ES256", "remote-1")]);
  served = [k1];
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: leaf.cert, key: leaf.private },
    fetch(request) {
      if (new URL(request.url).pathname !== "/.well-known/jwks.json") return new Response("not found", { status: 404 });
      fetches++;
      if (failWith !== null) return new Response("unavailable", { status: failWith });
      return Response.json({ keys: served.map((k) => k.publicJwk) });
    },
  });
  jwksUrl = `https://127.0.0.1:${server.port}/.well-known/jwks.json`;
});

afterAll(async () => {
  await server?.stop(true);
  if (tmp) removeTempDir(tmp);
});

function remoteAuthenticator(options: Partial<JwtAuthenticatorOptions> = {}, withCa = true) {
  return createJwtAuthenticator({
    issuers: [issuerConfig({ jwksUrl, jwksCaFile: withCa ? caFile : null })],
    now: clock,
    ...options,
  });
}

const codeOf = (r: { ok: boolean; code?: string }) => (r.ok ? "ok" : r.code);

describe("JWKS URL", () => {
  test("keys are fetched once over TLS trusted through jwks_ca_file", async () => {
    served = [k1]; failWith = null;
    const authn = remoteAuthenticator({ cacheSize: 0 });
    const start = fetches;
    const header = `Bearer ${await signToken({ key: k1 })}`;
    expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
    expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
    expect(fetches - start).toBe(1);
    expect(authn.stats().jwksLoads.corp).toBe(1);
  });

  test("without the CA the server is not trusted", async () => {
    served = [k1]; failWith = null;
    const authn = remoteAuthenticator({}, false);
    const start = fetches;
    const result = await authn.authenticate(`Bearer ${await signToken({ key: k1 })}`, testSchema);
    expect(codeOf(result)).toBe("AUTHN_JWKS_UNAVAILABLE");
    // The TLS handshake failed: no request reached the server.
    expect(fetches - start).toBe(0);
  });

  test("an unknown kid inside the cooldown fails without a fetch", async () => {
    served = [k1]; failWith = null;
    const authn = remoteAuthenticator({ jwksCooldownMs: 3_600_000 });
    await authn.authenticate(`Bearer ${await signToken({ key: k1 })}`, testSchema);
    const start = fetches;
    for (let i = 0; i < 3; i++) {
      const result = await authn.authenticate(`Bearer ${await signToken({ key: k2 })}`, testSchema);
      expect(codeOf(result)).toBe("AUTHN_UNKNOWN_KEY");
    }
    expect(fetches - start).toBe(0);
  });

  test("an unknown kid after the cooldown refreshes once, then fails", async () => {
    served = [k1]; failWith = null;
    const authn = remoteAuthenticator({ jwksCooldownMs: 0 });
    await authn.authenticate(`Bearer ${await signToken({ key: k1 })}`, testSchema);
    const start = fetches;
    const result = await authn.authenticate(`Bearer ${await signToken({ key: k2 })}`, testSchema);
    expect(codeOf(result)).toBe("AUTHN_UNKNOWN_KEY");
    expect(fetches - start).toBe(1);
  });

  test("a rotated-in key is picked up by the refresh on its unknown kid", async () => {
    served = [k1]; failWith = null;
    const authn = remoteAuthenticator({ jwksCooldownMs: 0 });
    const oldHeader = `Bearer ${await signToken({ key: k1 })}`;
    expect(codeOf(await authn.authenticate(oldHeader, testSchema))).toBe("ok");
    served = [k2];
    expect(codeOf(await authn.authenticate(`Bearer ${await signToken({ key: k2 })}`, testSchema))).toBe("ok");
    // The key set changed, so the cached principal of the removed key is not trusted any more.
    const start = authn.stats().verifications;
    expect(codeOf(await authn.authenticate(oldHeader, testSchema))).toBe("AUTHN_UNKNOWN_KEY");
    expect(authn.stats().verifications).toBe(start + 1);
  });

  test("a server error is AUTHN_JWKS_UNAVAILABLE", async () => {
    served = [k1]; failWith = 500;
    try {
      const authn = remoteAuthenticator();
      const result = await authn.authenticate(`Bearer ${await signToken({ key: k1 })}`, testSchema);
      expect(codeOf(result)).toBe("AUTHN_JWKS_UNAVAILABLE");
    } finally {
      failWith = null;
    }
  });

  // Regression: a cached token outlived its key until some other token missed the cache. jose
  // ages the fetched keys by the real clock, so these cases use a short max age and wait it out.
  describe("a cached token lives only as long as the served key that verified it", () => {
    const MAX_AGE_MS = 100;
    const cases: Array<{ name: string; next: () => TestKey[]; expect: string }> = [
      { name: "the key no longer served", next: () => [k2], expect: "AUTHN_UNKNOWN_KEY" },
      { name: "another key served under the same kid", next: () => [k1Twin], expect: "AUTHN_BAD_SIGNATURE" },
      { name: "the key still served, another added", next: () => [k1, k2], expect: "ok" },
    ];
    for (const c of cases) {
      test(`after the cache max age: ${c.name}`, async () => {
        served = [k1]; failWith = null;
        const authn = remoteAuthenticator({ jwksCacheMaxAgeMs: MAX_AGE_MS, jwksCooldownMs: 3_600_000 });
        const header = `Bearer ${await signToken({ key: k1 })}`;
        expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
        served = c.next();
        await Bun.sleep(MAX_AGE_MS + 50);
        const start = fetches;
        expect(codeOf(await authn.authenticate(header, testSchema))).toBe(c.expect);
        expect(fetches - start).toBe(1);
      });
    }

    test("within the cache max age a hit is answered without a fetch", async () => {
      served = [k1]; failWith = null;
      const authn = remoteAuthenticator({ jwksCacheMaxAgeMs: 3_600_000 });
      const header = `Bearer ${await signToken({ key: k1 })}`;
      expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
      served = [k2];
      const start = fetches;
      expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
      expect(fetches - start).toBe(0);
      expect(authn.stats().cacheHits).toBe(1);
    });

    test("a failed re-fetch refuses the cached token as it refuses a new one; the next good fetch restores it", async () => {
      served = [k1]; failWith = null;
      try {
        const authn = remoteAuthenticator({ jwksCacheMaxAgeMs: MAX_AGE_MS });
        const header = `Bearer ${await signToken({ key: k1 })}`;
        expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
        failWith = 503;
        await Bun.sleep(MAX_AGE_MS + 50);
        expect(codeOf(await authn.authenticate(header, testSchema))).toBe("AUTHN_JWKS_UNAVAILABLE");
        expect(codeOf(await authn.authenticate(`Bearer ${await signToken({ key: k1, claims: { sub: "new" } })}`, testSchema))).toBe("AUTHN_JWKS_UNAVAILABLE");
        failWith = null;
        const verifications = authn.stats().verifications;
        expect(codeOf(await authn.authenticate(header, testSchema))).toBe("ok");
        expect(authn.stats().verifications).toBe(verifications);
      } finally {
        failWith = null;
      }
    });
  });
});
