// `gateway keygen --out DIR [--kid NAME] [--alg EdDSA|ES256] [--trusted JWKS]`: a signer's key
// pair, its public half added to the trusted signer set.
// Exit codes are the gateway's shared ones (src/cli/io.ts): 0 ok, 4 refused or failed
// verification, 64 usage (bad arguments, an unreadable key file, a missing directory).
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { BundleCodes, generateSigningKey, isValidKeyId, MANIFEST_ALGORITHMS, parseTrustedKeySet, type ManifestAlgorithm } from "../bundle/mod.ts";
import { GatewayError } from "../errors.ts";
import { writeFileAtomic } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

/** Default name of the trusted key set `runKeygen` maintains in its output directory. */
export const TRUSTED_KEYS_FILE_NAME = "trusted.jwks";

/** Parameters of `gateway keygen`. */
export interface KeygenParams {
  outDir: string;
  kid: string;
  alg?: ManifestAlgorithm;
  /**
   * JWKS file the new public key is added to (created if absent). Default `outDir/trusted.jwks`;
   * null to write only the two key files.
   */
  trustedKeysFile?: string | null;
}

/**
 * `gateway keygen`: writes `<kid>.private.jwk` (mode 0600) and `<kid>.public.jwk` to `outDir`
 * and adds the public key to the trusted key set. Refuses (exit 4, `BUNDLE_KEY_EXISTS`) to
 * overwrite a key file or to add a `kid` the key set already has.
 *
 * @example
 * const code = await runKeygen({ outDir: "keys", kid: "alice" }, { out: console.log, err: console.error });
 */
export async function runKeygen(params: KeygenParams, io: Io): Promise<number> {
  const alg = params.alg ?? "EdDSA";
  if (!isValidKeyId(params.kid)) {
    io.err(`error[${BundleCodes.USAGE}]: key id \`${params.kid}\` must be 1-128 letters, digits, \`.\`, \`_\`, \`@\` or \`-\`, starting with a letter or digit`);
    return EXIT.usage;
  }
  if (!MANIFEST_ALGORITHMS.includes(alg)) {
    io.err(`error[${BundleCodes.USAGE}]: algorithm \`${alg}\` is not supported; use ${MANIFEST_ALGORITHMS.join(" or ")}`);
    return EXIT.usage;
  }
  const privatePath = join(params.outDir, `${params.kid}.private.jwk`);
  const publicPath = join(params.outDir, `${params.kid}.public.jwk`);
  const trustedPath = params.trustedKeysFile === undefined ? join(params.outDir, TRUSTED_KEYS_FILE_NAME) : params.trustedKeysFile;

  let trusted: JSONWebKeySet = { keys: [] };
  if (trustedPath !== null) {
    let text: string | null = null;
    try {
      text = await readFile(trustedPath, "utf8");
    } catch (error) {
      if ((error as { code?: unknown }).code !== "ENOENT") {
        io.err(`error[${BundleCodes.KEY_INVALID}]: cannot read trusted key set \`${trustedPath}\``);
        return EXIT.usage;
      }
    }
    if (text !== null) {
      try {
        trusted = parseTrustedKeySet(JSON.parse(text), `trusted key set \`${trustedPath}\``);
      } catch (error) {
        io.err(`error[${BundleCodes.KEY_INVALID}]: ${error instanceof GatewayError ? error.message : `trusted key set \`${trustedPath}\` is not JSON`}`);
        return EXIT.usage;
      }
      if (trusted.keys.some((key) => key.kid === params.kid)) {
        io.err(`error[${BundleCodes.KEY_EXISTS}]: trusted key set \`${trustedPath}\` already has \`${params.kid}\`; pick another key id`);
        return EXIT.verificationFailed;
      }
    }
  }

  const pair = await generateSigningKey({ kid: params.kid, alg });
  await mkdir(params.outDir, { recursive: true });
  try {
    // `wx`: never overwrite a signer's existing private key.
    await writeFile(privatePath, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") {
      io.err(`error[${BundleCodes.KEY_EXISTS}]: \`${privatePath}\` already exists; refusing to overwrite a private key`);
      return EXIT.verificationFailed;
    }
    throw error;
  }
  await chmod(privatePath, 0o600).catch(() => {}); // umask-proof where modes exist
  try {
    await writeFile(publicPath, `${JSON.stringify(pair.publicJwk, null, 2)}\n`, { flag: "wx", mode: 0o644 });
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") {
      io.err(`error[${BundleCodes.KEY_EXISTS}]: \`${publicPath}\` already exists; refusing to overwrite it`);
      return EXIT.verificationFailed;
    }
    throw error;
  }
  io.out(`wrote private key \`${privatePath}\` (mode 0600; keep it with the signer, never in the gateway config)`);
  io.out(`wrote public key \`${publicPath}\``);
  if (trustedPath !== null) {
    await writeFileAtomic(trustedPath, `${JSON.stringify({ keys: [...trusted.keys, pair.publicJwk] }, null, 2)}\n`);
    io.out(`added \`${params.kid}\` to trusted key set \`${trustedPath}\` (${trusted.keys.length + 1} key(s))`);
  }
  return EXIT.ok;
}
