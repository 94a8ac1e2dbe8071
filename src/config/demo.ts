// The demo JWT issuer of the built-in default: an ES256 key pair created on first start under
// `<stateDir>/demo-issuer/`. The gateway verifies tokens against the public JWKS like any other
// issuer; the private key only lets `gateway serve` print ready-to-use demo tokens.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, SignJWT } from "jose";
import { DEMO_ISSUER, demoIssuerFiles } from "./builtin.ts";

/** The demo issuer's files and identity, as the integrator needs them to print demo tokens. */
export interface DemoIssuer {
  issuer: string;
  audience: string;
  algorithm: string;
  kid: string;
  /** Public JWKS: what the demo issuer config points at. */
  jwksFile: string;
  /** PKCS#8 PEM private key, mode 0600. */
  privateKeyFile: string;
  /** True when this call created the key pair (first start). */
  created: boolean;
}

/**
 * Creates the demo issuer's key pair under `<stateDir>/demo-issuer/` unless it exists, and
 * returns where it is. Files are written to a temporary name and renamed, so a crash never
 * leaves half a key behind.
 */
export async function ensureDemoIssuer(stateDir: string): Promise<DemoIssuer> {
  const files = demoIssuerFiles(stateDir);
  const info = { issuer: DEMO_ISSUER.issuer, audience: DEMO_ISSUER.audience, algorithm: DEMO_ISSUER.algorithm, kid: DEMO_ISSUER.kid, jwksFile: files.jwksFile, privateKeyFile: files.privateKeyFile };
  if (existsSync(files.jwksFile) && existsSync(files.privateKeyFile)) return { ...info, created: false };
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const { publicKey, privateKey } = await generateKeyPair(DEMO_ISSUER.algorithm, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: DEMO_ISSUER.kid, alg: DEMO_ISSUER.algorithm, use: "sig" };
  writeAtomically(files.privateKeyFile, await exportPKCS8(privateKey), 0o600);
  writeAtomically(files.jwksFile, JSON.stringify({ keys: [jwk] }, null, 2) + "\n", 0o644);
  return { ...info, created: true };
}

function writeAtomically(file: string, content: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

/** Claims of a demo token; `sub` is required, the rest follows the demo policy's principal. */
export interface DemoTokenClaims {
  sub: string;
  roles?: string[];
  mfa?: boolean;
  team?: string;
  [claim: string]: unknown;
}

/**
 * Signs a short-lived token of the demo issuer (created by {@link ensureDemoIssuer}).
 *
 * @example
 * const token = await mintDemoToken(config.stateDir, { sub: "alice", roles: ["developer"], mfa: true, team: "core" });
 */
export async function mintDemoToken(stateDir: string, claims: DemoTokenClaims, options: { ttlMs?: number; nowMs?: number } = {}): Promise<string> {
  const files = demoIssuerFiles(stateDir);
  const key = await importPKCS8(readFileSync(files.privateKeyFile, "utf8"), DEMO_ISSUER.algorithm);
  const now = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const ttlSeconds = Math.floor((options.ttlMs ?? 15 * 60_000) / 1000);
  const { sub, ...rest } = claims;
  return new SignJWT(rest)
    .setProtectedHeader({ alg: DEMO_ISSUER.algorithm, kid: DEMO_ISSUER.kid, typ: "JWT" })
    .setIssuer(DEMO_ISSUER.issuer)
    .setAudience(DEMO_ISSUER.audience)
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(key);
}
