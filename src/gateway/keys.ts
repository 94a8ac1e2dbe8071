// The gateway's own signing key (Ed25519): it signs audit checkpoints and the identity tokens
// upstreams receive. Created on first start under `<stateDir>/gateway-key/`, reused afterwards;
// the public half is published as a JWKS file for `gateway audit verify --keys` and upstreams.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { fileErrorReason } from "../lib/mod.ts";
import { GatewayError } from "../errors.ts";

export interface GatewayKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
  alg: "EdDSA";
  /** `<stateDir>/gateway-key/public.jwks` */
  jwksFile: string;
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

// A replaced key orphans what the old one signed (audit checkpoints verify only with the old
// public key), so the way out is a restore first, a new key second.
const KEY_HELP = "restore the file from a backup; or move `gateway-key/` aside to create a new key on the next start (audit checkpoints signed so far then verify only with the old `public.jwks`)";

function keyError(code: "GATEWAY_KEY_UNREADABLE" | "GATEWAY_KEY_NOT_JSON" | "GATEWAY_KEY_INVALID", file: string, message: string): GatewayError {
  return new GatewayError(code, message, { file, help: KEY_HELP });
}

/**
 * Returns the gateway key from `<stateDir>/gateway-key/private.jwk`, creating the pair on first
 * start. A key file that exists but cannot be used stops the start with a coded error instead of
 * being replaced silently (that would orphan the audit log's signatures).
 *
 * @throws GatewayError `GATEWAY_KEY_UNREADABLE` (cannot read the file), `GATEWAY_KEY_NOT_JSON`,
 *   `GATEWAY_KEY_INVALID` (not an Ed25519 private JWK with a `kid`, or its halves do not match)
 */
export async function ensureGatewayKey(stateDir: string): Promise<GatewayKey> {
  const dir = join(stateDir, "gateway-key");
  const privateFile = join(dir, "private.jwk");
  const jwksFile = join(dir, "public.jwks");
  if (!existsSync(privateFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const pub = await exportJWK(publicKey);
    const kid = `gateway-${(await calculateJwkThumbprint(pub)).slice(0, 16)}`;
    const priv = { ...(await exportJWK(privateKey)), kid, alg: "EdDSA" };
    writeAtomic(privateFile, JSON.stringify(priv, null, 2) + "\n", 0o600);
    writeAtomic(jwksFile, JSON.stringify({ keys: [{ ...pub, kid, alg: "EdDSA", use: "sig" }] }, null, 2) + "\n", 0o644);
  }
  const priv = readGatewayKeyFile(privateFile);
  const { d: _d, ...pub } = priv;
  const privateKey = await importGatewayKey(priv, privateFile);
  return { privateKey, publicJwk: { ...pub, use: "sig" }, kid: priv.kid, alg: "EdDSA", jwksFile };
}

/** The key file as an Ed25519 private JWK with a `kid`; its members are checked, not yet its key. */
function readGatewayKeyFile(file: string): JWK & { kid: string; d: string; x: string } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw keyError("GATEWAY_KEY_UNREADABLE", file, `cannot read the gateway key \`${file}\`: ${fileErrorReason(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw keyError("GATEWAY_KEY_NOT_JSON", file, `the gateway key \`${file}\` is not valid JSON`);
  }
  const jwk = value as Record<string, unknown>;
  const problem = value === null || typeof value !== "object" || Array.isArray(value) ? "is not a JWK object"
    : jwk.kty !== "OKP" || jwk.crv !== "Ed25519" ? "is not an Ed25519 key (`kty` `OKP`, `crv` `Ed25519`)"
    : typeof jwk.d !== "string" ? "holds no private key (`d`)"
    : typeof jwk.x !== "string" ? "holds no public key (`x`)"
    : typeof jwk.kid !== "string" || jwk.kid === "" ? "has no `kid`"
    : null;
  if (problem !== null) throw keyError("GATEWAY_KEY_INVALID", file, `the gateway key \`${file}\` ${problem}`);
  return value as JWK & { kid: string; d: string; x: string };
}

/**
 * Imports the private key and proves it matches the public half: a signature made with `d` must
 * verify with `x`, or audit checkpoints and identity tokens would be signed by a key nobody can check.
 */
async function importGatewayKey(priv: JWK & { d: string; x: string }, file: string): Promise<CryptoKey> {
  const { d: _d, key_ops: _ops, ...pub } = priv;
  try {
    const privateKey = (await importJWK({ ...priv, key_ops: undefined }, "EdDSA")) as CryptoKey;
    const publicKey = (await importJWK(pub, "EdDSA")) as CryptoKey;
    const probe = new TextEncoder().encode("dutygate gateway key check");
    const signature = await crypto.subtle.sign("Ed25519", privateKey, probe);
    if (await crypto.subtle.verify("Ed25519", publicKey, signature, probe)) return privateKey;
  } catch {
    // Undecodable `d` or `x`: the same finding as a mismatch.
  }
  throw keyError("GATEWAY_KEY_INVALID", file, `the gateway key \`${file}\` is not a usable Ed25519 key pair (\`d\` and \`x\` are not valid or do not match)`);
}
