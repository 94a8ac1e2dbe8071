// The gateway's own signing key (Ed25519): it signs audit checkpoints and the identity tokens
// upstreams receive. Created on first start under `<stateDir>/gateway-key/`, reused afterwards;
// the public half is published as a JWKS file for `gateway audit verify --keys` and upstreams.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";

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
  const priv = JSON.parse(readFileSync(privateFile, "utf8")) as JWK & { kid: string };
  const { d: _d, ...pub } = priv;
  const privateKey = (await importJWK(priv, "EdDSA")) as CryptoKey;
  return { privateKey, publicJwk: { ...pub, use: "sig" }, kid: priv.kid, alg: "EdDSA", jwksFile };
}
