import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLocalJWKSet, jwtVerify } from "jose";
import { tempDir } from "../../test/support/temp-dir.ts";
import { DEMO_ISSUER, DEMO_UPSTREAM_PORTS, defaultConfig, ensureDemoIssuer, loadConfig, mintDemoToken } from "./mod.ts";


describe("defaultConfig", () => {
  // Regression: the demo printed https://127.0.0.1:8443 but bound 0.0.0.0:8443, with a demo
  // issuer whose key and tokens are on this machine.
  test("is the demo: self-signed listener on loopback, unsigned ./policies, ./audit, demo issuer, loopback upstreams", () => {
    const cwd = tempDir("dutygate-default-");
    const c = defaultConfig({ cwd });
    expect(c.source).toBeNull();
    expect(c.demo).toBe(true);
    expect(c.stateDir).toBe(join(cwd, ".state"));
    expect(c.listen).toMatchObject({ host: "127.0.0.1", port: 8443, certificate: null, clientCaFile: null });
    expect(c.admin).toBeNull();
    expect(c.policy).toMatchObject({ dir: join(cwd, "policies"), requireSignature: false, trustedKeysFile: null });
    expect(c.audit.dir).toBe(join(cwd, "audit"));
    expect(c.issuers.map((i) => [i.name, i.issuer, i.audience, i.jwksFile])).toEqual([
      ["demo", DEMO_ISSUER.issuer, [DEMO_ISSUER.audience], join(cwd, ".state", "demo-issuer", "jwks.json")],
    ]);
    expect(Object.keys(c.upstreams).sort()).toEqual(["admin", "changes", "deploy", "logs"]);
    expect(c.upstreams["deploy"]!.url).toBe(`http://127.0.0.1:${DEMO_UPSTREAM_PORTS.deploy}`);
    expect(Object.isFrozen(c.issuers[0]!.claims)).toBe(true);
  });

  test("loadConfig(null) is the built-in default", () => {
    const cwd = tempDir("dutygate-default-");
    const result = loadConfig(null, { cwd });
    expect(result.ok && result.config.demo).toBe(true);
  });

  test("the admin listener starts only once an admin CA exists in the state dir", () => {
    const cwd = tempDir("dutygate-default-");
    mkdirSync(join(cwd, ".state", "admin"), { recursive: true });
    writeFileSync(join(cwd, ".state", "admin", "ca.pem"), "placeholder");
    writeFileSync(join(cwd, ".state", "admin", "identities.json"), JSON.stringify({ "spiffe://demo/admin": { roles: ["security_admin"] } }));
    const c = defaultConfig({ cwd });
    expect(c.admin).toMatchObject({ host: "127.0.0.1", port: 9443, requireClientCertificate: true, clientCaFile: join(cwd, ".state", "admin", "ca.pem") });
    expect(c.admin?.certificateMapping.identities).toEqual({ "spiffe://demo/admin": { roles: ["security_admin"] } });
  });
});

describe("demo issuer", () => {
  test("keys are created once (private key 0600), reused, and mint tokens the configured issuer accepts", async () => {
    const cwd = tempDir("dutygate-default-");
    const config = defaultConfig({ cwd });
    const first = await ensureDemoIssuer(config.stateDir);
    expect(first.created).toBe(true);
    expect(first.jwksFile).toBe(config.issuers[0]!.jwksFile!);
    expect(statSync(first.privateKeyFile).mode & 0o777).toBe(0o600);
    const jwks = readFileSync(first.jwksFile, "utf8");
    expect(jwks).not.toContain('"d"');
    const second = await ensureDemoIssuer(config.stateDir);
    expect(second.created).toBe(false);
    expect(readFileSync(first.jwksFile, "utf8")).toBe(jwks);

    const token = await mintDemoToken(config.stateDir, { sub: "alice", roles: ["developer"], mfa: true, team: "core" }, { ttlMs: 60_000 });
    const issuer = config.issuers[0]!;
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(JSON.parse(jwks)), {
      issuer: issuer.issuer, audience: issuer.audience, algorithms: issuer.algorithms, requiredClaims: issuer.requiredClaims,
    });
    expect(protectedHeader.kid).toBe(DEMO_ISSUER.kid);
    expect([payload.sub, payload["roles"], payload["mfa"], payload["team"], payload.exp! - payload.iat!]).toEqual(["alice", ["developer"], true, "core", 60]);
  });
});
