// For the authentication tests and benchmark: real keys, real JWKS files, signed tokens.
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { writeFileSync, renameSync } from "node:fs";
import type { PrincipalSchema } from "../../dsl/mod.ts";
import type { JwtIssuerConfig } from "../../src/config/mod.ts";

export interface TestKey {
  alg: "EdDSA" | "ES256" | "RS256";
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export async function makeKey(alg: TestKey["alg"], kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

/** Writes a JWKS file atomically (write + rename, as a rotation job would). */
export function writeJwksFile(path: string, keys: readonly TestKey[]): void {
  writeFileSync(`${path}.tmp`, JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
  renameSync(`${path}.tmp`, path);
}

/** A fixed instant (2027-01-15T08:00:00Z) so tests never depend on the machine clock. */
export const T0 = Date.UTC(2027, 0, 15, 8, 0, 0);
export const ISSUER = "https://idp.example.test";
export const AUDIENCE = "dutygate";

export interface SignOptions {
  key: TestKey;
  /** Claims beyond the defaults; `undefined` values remove a default claim. */
  claims?: Record<string, unknown>;
  /** Seconds since the epoch. */
  iat?: number | null;
  exp?: number | null;
  kid?: string | null;
}

/** The default claims of a valid token for {@link testSchema} at {@link T0}. */
export function defaultClaims(): JWTPayload {
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "alice",
    realm_access: { roles: ["developer", "reviewer"] },
    mfa: true,
    level: 3,
    client_ip: "10.1.2.3",
  };
}

export async function signToken(options: SignOptions): Promise<string> {
  const now = Math.floor(T0 / 1000);
  const payload: Record<string, unknown> = { ...defaultClaims() };
  for (const [name, value] of Object.entries(options.claims ?? {})) {
    if (value === undefined) delete payload[name];
    else payload[name] = value;
  }
  if (options.iat !== null) payload.iat = options.iat ?? now;
  if (options.exp !== null) payload.exp = options.exp ?? now + 300;
  const kid = options.kid === undefined ? options.key.kid : options.kid;
  const header = kid === null ? { alg: options.key.alg } : { alg: options.key.alg, kid };
  return new SignJWT(payload).setProtectedHeader(header).sign(options.key.privateKey);
}

const base64url = (text: string) => Buffer.from(text).toString("base64url");

/** Builds a compact JWT by hand (for `alg: none` and HMAC-with-a-public-key forgeries). */
export async function handBuiltToken(header: Record<string, unknown>, payload: Record<string, unknown>, hmacKey?: Uint8Array): Promise<string> {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  if (hmacKey === undefined) return `${signingInput}.`;
  const key = await crypto.subtle.importKey("raw", new Uint8Array(hmacKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const signature = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(signingInput)));
  return `${signingInput}.${Buffer.from(signature).toString("base64url")}`;
}

/** The principal schema the tests type claims into. */
export const testSchema: PrincipalSchema = {
  sub: { kind: "string" },
  roles: { kind: "set", of: { kind: "enum", name: "role", values: ["developer", "reviewer", "deployer"] } },
  mfa: { kind: "bool" },
  level: { kind: "int" },
  origin: { kind: "ip" },
  team: { kind: "string" },
};

export function issuerConfig(overrides: Partial<JwtIssuerConfig> = {}): JwtIssuerConfig {
  return {
    name: "corp",
    issuer: ISSUER,
    audience: [AUDIENCE, "other-service"],
    jwksFile: null,
    jwksUrl: null,
    jwksCaFile: null,
    algorithms: ["EdDSA", "ES256", "RS256"],
    hmacSecret: null,
    clockToleranceMs: 5000,
    maxLifetimeMs: 3_600_000,
    requiredClaims: [],
    claims: { roles: "realm_access.roles", origin: "client_ip" },
    constants: { team: "core" },
    ...overrides,
  };
}
