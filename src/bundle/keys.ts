// Signer keys: generation, the private key file a signer holds, and the trusted key set the gateway holds.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JSONWebKeySet, type JWK } from "jose";
import { readFile } from "node:fs/promises";
import { GatewayError } from "../errors.ts";
import { MANIFEST_ALGORITHMS, type ManifestAlgorithm } from "./manifest.ts";
import { BundleCodes } from "./problems.ts";

/** A signer's key pair as JWKs, both carrying `kid`, `alg` and `use: "sig"`. */
export interface SigningKeyPair {
  kid: string;
  alg: ManifestAlgorithm;
  privateJwk: JWK;
  publicJwk: JWK;
}

/** A private signing key ready to sign a manifest. */
export interface SigningKey {
  kid: string;
  alg: ManifestAlgorithm;
  key: CryptoKey;
}

/** Key ids double as file names (`<kid>.private.jwk`), so they are kept to a portable alphabet. */
const KID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** True when `kid` is usable as a key id and file name stem. */
export function isValidKeyId(kid: string): boolean {
  return KID_PATTERN.test(kid);
}

function keyInvalid(message: string): GatewayError {
  return new GatewayError(BundleCodes.KEY_INVALID, message);
}

/** The algorithm a JWK is for, from its key type and curve; null when unsupported. */
function algorithmOfJwk(jwk: JWK): ManifestAlgorithm | null {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  return null;
}

/**
 * Generates an Ed25519 (`EdDSA`) or P-256 (`ES256`) signing key pair.
 *
 * @example
 * const { privateJwk, publicJwk } = await generateSigningKey({ kid: "alice", alg: "EdDSA" });
 */
export async function generateSigningKey(options: { kid: string; alg?: ManifestAlgorithm }): Promise<SigningKeyPair> {
  const alg = options.alg ?? "EdDSA";
  if (!isValidKeyId(options.kid)) throw keyInvalid(`key id \`${options.kid}\` must be 1-128 letters, digits, \`.\`, \`_\`, \`@\` or \`-\`, starting with a letter or digit`);
  if (!MANIFEST_ALGORITHMS.includes(alg)) throw keyInvalid(`algorithm \`${alg}\` is not supported; use ${MANIFEST_ALGORITHMS.join(" or ")}`);
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  const common = { kid: options.kid, alg, use: "sig" };
  return {
    kid: options.kid,
    alg,
    privateJwk: { ...(await exportJWK(privateKey)), ...common },
    publicJwk: { ...(await exportJWK(publicKey)), ...common },
  };
}

/** Validates a private JWK for signing and imports it. Throws `BUNDLE_KEY_INVALID`. */
export async function importSigningKey(value: unknown, source = "key"): Promise<SigningKey> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw keyInvalid(`${source} is not a JWK object`);
  const jwk = value as JWK;
  if (typeof jwk.kid !== "string" || jwk.kid === "") throw keyInvalid(`${source} has no \`kid\`; signatures are attributed by key id`);
  if (typeof jwk.d !== "string") throw keyInvalid(`${source} is a public key; signing needs the private key`);
  const alg = algorithmOfJwk(jwk);
  if (alg === null) throw keyInvalid(`${source} is not an Ed25519 or P-256 key`);
  if (jwk.alg !== undefined && jwk.alg !== alg) throw keyInvalid(`${source} declares \`alg\` \`${jwk.alg}\` but is a ${alg} key`);
  try {
    return { kid: jwk.kid, alg, key: (await importJWK(jwk, alg)) as CryptoKey };
  } catch (error) {
    throw keyInvalid(`${source} cannot be imported: ${(error as Error).message}`);
  }
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw keyInvalid(`cannot read ${what} \`${path}\`: ${String((error as { code?: unknown }).code ?? error).toLowerCase()}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw keyInvalid(`${what} \`${path}\` is not JSON`);
  }
}

/** Reads a `<kid>.private.jwk` file. Throws `BUNDLE_KEY_INVALID`. */
export async function readSigningKeyFile(path: string): Promise<SigningKey> {
  return importSigningKey(await readJsonFile(path, "key file"), `key file \`${path}\``);
}

/**
 * Validates a trusted key set: public Ed25519/P-256 keys only, each with a unique `kid`.
 * Private members are refused: a signer's private key does not belong in gateway config.
 * Throws `BUNDLE_KEY_INVALID`.
 */
export function parseTrustedKeySet(value: unknown, source = "trusted key set"): JSONWebKeySet {
  if (value === null || typeof value !== "object" || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw keyInvalid(`${source} must be a JWKS: \`{"keys": [...]}\``);
  }
  const keys: JWK[] = [];
  const seen = new Set<string>();
  for (const [index, key] of ((value as { keys: unknown[] }).keys).entries()) {
    const where = `${source} keys[${index}]`;
    if (key === null || typeof key !== "object" || Array.isArray(key)) throw keyInvalid(`${where} is not a JWK object`);
    const jwk = key as JWK;
    if (typeof jwk.kid !== "string" || jwk.kid === "") throw keyInvalid(`${where} has no \`kid\``);
    if (seen.has(jwk.kid)) throw keyInvalid(`${source} lists \`kid\` \`${jwk.kid}\` twice`);
    seen.add(jwk.kid);
    if ("d" in jwk) throw keyInvalid(`${where} (\`${jwk.kid}\`) contains private key material; trust only public keys`);
    const alg = algorithmOfJwk(jwk);
    if (alg === null) throw keyInvalid(`${where} (\`${jwk.kid}\`) is not an Ed25519 or P-256 public key`);
    if (jwk.alg !== undefined && jwk.alg !== alg) throw keyInvalid(`${where} (\`${jwk.kid}\`) declares \`alg\` \`${jwk.alg}\` but is a ${alg} key`);
    keys.push(jwk);
  }
  return { keys };
}

/** Reads a trusted key set (JWKS) file. Throws `BUNDLE_KEY_INVALID`. */
export async function readTrustedKeysFile(path: string): Promise<JSONWebKeySet> {
  return parseTrustedKeySet(await readJsonFile(path, "trusted key set"), `trusted key set \`${path}\``);
}

/**
 * RFC 7638 thumbprint of a public key: the identity used to count distinct signers, so one key
 * listed under two `kid`s still counts once.
 */
export async function keyThumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, "sha256");
}

/** The algorithm `jwk` is for (`EdDSA` or `ES256`), or null. */
export function algorithmOfPublicJwk(jwk: JWK): ManifestAlgorithm | null {
  return algorithmOfJwk(jwk);
}
