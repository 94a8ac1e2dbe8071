// Command handlers for `gateway keygen | sign | verify`: plain functions over a params object and
// an output sink, returning an exit code, so they are tested on temp dirs without a subprocess.
// Argument parsing (argv → params) belongs to the CLI entry point, not here.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { parseDuration, parseTime } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import { writeFileAtomic } from "../lib/mod.ts";
import { generateSigningKey, isValidKeyId, parseTrustedKeySet, readSigningKeyFile, readTrustedKeysFile } from "./keys.ts";
import { MANIFEST_ALGORITHMS, type ManifestAlgorithm } from "./manifest.ts";
import { BundleCodes, formatBundleProblem, type BundleProblem } from "./problems.ts";
import { checkRollback, FileRevisionStore } from "./revisions.ts";
import { signBundle, type SignBundleOptions } from "./sign.ts";
import { verifyBundle } from "./verify.ts";

/** Where a command handler writes: one line per call, no trailing newline. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** Exit codes of the bundle commands. */
export const BundleExitCode = {
  /** Success. */
  OK: 0,
  /** The bundle failed verification, or signing/key generation was refused. */
  FAILED: 1,
  /** Bad arguments: unknown algorithm, unreadable key file, missing directory, bad duration. */
  USAGE: 2,
} as const;

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

function errorCode(error: unknown): string | null {
  return error instanceof GatewayError ? error.code : null;
}

function printProblems(io: CliIo, problems: readonly BundleProblem[]): void {
  for (const problem of problems) io.err(formatBundleProblem(problem));
}

/**
 * `gateway keygen`: writes `<kid>.private.jwk` (mode 0600) and `<kid>.public.jwk` to `outDir`
 * and adds the public key to the trusted key set. Refuses (exit 1, `BUNDLE_KEY_EXISTS`) to
 * overwrite a key file or to add a `kid` the key set already has.
 *
 * @example
 * const code = await runKeygen({ outDir: "keys", kid: "alice" }, { out: console.log, err: console.error });
 */
export async function runKeygen(params: KeygenParams, io: CliIo): Promise<number> {
  const alg = params.alg ?? "EdDSA";
  if (!isValidKeyId(params.kid)) {
    io.err(`error[${BundleCodes.USAGE}]: key id \`${params.kid}\` must be 1-128 letters, digits, \`.\`, \`_\`, \`@\` or \`-\`, starting with a letter or digit`);
    return BundleExitCode.USAGE;
  }
  if (!MANIFEST_ALGORITHMS.includes(alg)) {
    io.err(`error[${BundleCodes.USAGE}]: algorithm \`${alg}\` is not supported; use ${MANIFEST_ALGORITHMS.join(" or ")}`);
    return BundleExitCode.USAGE;
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
        return BundleExitCode.USAGE;
      }
    }
    if (text !== null) {
      try {
        trusted = parseTrustedKeySet(JSON.parse(text), `trusted key set \`${trustedPath}\``);
      } catch (error) {
        io.err(`error[${BundleCodes.KEY_INVALID}]: ${error instanceof GatewayError ? error.message : `trusted key set \`${trustedPath}\` is not JSON`}`);
        return BundleExitCode.USAGE;
      }
      if (trusted.keys.some((key) => key.kid === params.kid)) {
        io.err(`error[${BundleCodes.KEY_EXISTS}]: trusted key set \`${trustedPath}\` already has \`${params.kid}\`; pick another key id`);
        return BundleExitCode.FAILED;
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
      return BundleExitCode.FAILED;
    }
    throw error;
  }
  await chmod(privatePath, 0o600).catch(() => {}); // umask-proof where modes exist
  try {
    await writeFile(publicPath, `${JSON.stringify(pair.publicJwk, null, 2)}\n`, { flag: "wx", mode: 0o644 });
  } catch (error) {
    if ((error as { code?: unknown }).code === "EEXIST") {
      io.err(`error[${BundleCodes.KEY_EXISTS}]: \`${publicPath}\` already exists; refusing to overwrite it`);
      return BundleExitCode.FAILED;
    }
    throw error;
  }
  io.out(`wrote private key \`${privatePath}\` (mode 0600; keep it with the signer, never in the gateway config)`);
  io.out(`wrote public key \`${publicPath}\``);
  if (trustedPath !== null) {
    await writeFileAtomic(trustedPath, `${JSON.stringify({ keys: [...trusted.keys, pair.publicJwk] }, null, 2)}\n`);
    io.out(`added \`${params.kid}\` to trusted key set \`${trustedPath}\` (${trusted.keys.length + 1} key(s))`);
  }
  return BundleExitCode.OK;
}

/** Parameters of `gateway sign`. */
export interface SignParams {
  dir: string;
  /** A `<kid>.private.jwk` file. */
  keyFile: string;
  /** `--revision N`: issue revision N for the current files. */
  revision?: number;
  /** `--new-revision`: issue the manifest's revision + 1 for the current files. */
  newRevision?: boolean;
  /** `--expires-in 30d` (a duration: `ms`, `s`, `m`, `h`, `d`). */
  expiresIn?: string;
  /** `--expires-at 2026-12-31` or an RFC 3339 date-time (a date means the end of that day, UTC). */
  expiresAt?: string;
  /** Clock (tests). */
  now?: Date;
}

/**
 * `gateway sign DIR --key K`: issues or co-signs `DIR/bundle.sig.json` (see {@link signBundle}).
 * Exit 0 signed, 1 refused (stale manifest, revision not newer, unreadable files), 2 usage.
 */
export async function runSign(params: SignParams, io: CliIo): Promise<number> {
  const options: SignBundleOptions = { ...(params.now === undefined ? {} : { now: params.now }) };
  if (params.revision !== undefined) options.revision = params.revision;
  if (params.newRevision) options.newRevision = true;
  if (params.expiresIn !== undefined) {
    const ms = parseDuration(params.expiresIn);
    if (ms === null || ms <= 0) {
      io.err(`error[${BundleCodes.USAGE}]: expiry \`${params.expiresIn}\` is not a duration like \`30d\` or \`12h\``);
      return BundleExitCode.USAGE;
    }
    options.expiresInMs = ms;
  }
  if (params.expiresAt !== undefined) {
    const at = parseTime(params.expiresAt);
    if (at === null) {
      io.err(`error[${BundleCodes.USAGE}]: expiry \`${params.expiresAt}\` is not an RFC 3339 date or date-time`);
      return BundleExitCode.USAGE;
    }
    options.expiresAt = new Date(at);
  }
  let key;
  try {
    key = await readSigningKeyFile(params.keyFile);
  } catch (error) {
    io.err(`error[${errorCode(error) ?? BundleCodes.KEY_INVALID}]: ${(error as Error).message}`);
    return BundleExitCode.USAGE;
  }
  try {
    const result = await signBundle(params.dir, key, options);
    const what = result.action === "issued" ? "issued revision" : result.action === "added" ? "added signature to revision" : "renewed signature on revision";
    io.out(`${what} ${result.revision} as \`${key.kid}\` (digest ${result.digest.slice(0, 16)}…)`);
    io.out(`signatures: ${result.signers.join(", ")}${result.expiresAt === null ? "" : `; expires ${result.expiresAt}`}`);
    return BundleExitCode.OK;
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    const problems = (error.detail?.problems as BundleProblem[] | undefined) ?? [];
    if (error.code === BundleCodes.MANIFEST_STALE) {
      printProblems(io, problems);
      io.err(`error[${error.code}]: manifest revision ${String(error.detail?.revision)} no longer matches the files; to sign the current files, issue a new revision (\`--new-revision\`)`);
    } else if (problems.length > 0 && error.code !== BundleCodes.MANIFEST_MALFORMED) {
      printProblems(io, problems);
      io.err(`error[${error.code}]: cannot sign \`${params.dir}\``);
    } else {
      io.err(`error[${error.code}]: ${error.message}`);
    }
    return error.code === BundleCodes.USAGE || error.code === BundleCodes.DIR_UNREADABLE ? BundleExitCode.USAGE : BundleExitCode.FAILED;
  }
}

/** Parameters of `gateway verify`. */
export interface VerifyParams {
  dir: string;
  /** JWKS file of the trusted signer keys. */
  keysFile: string;
  minSigners: number;
  /** Also check for rollback against the gateway's state directory (read only). */
  stateDir?: string;
  /** Clock (tests). */
  now?: Date;
}

/**
 * `gateway verify DIR --keys JWKS`: prints one line per problem to `err`, or one summary line
 * to `out`. Exit 0 verified, 1 verification failed, 2 usage (unreadable keys, missing directory).
 */
export async function runVerify(params: VerifyParams, io: CliIo): Promise<number> {
  if (!Number.isSafeInteger(params.minSigners) || params.minSigners < 1) {
    io.err(`error[${BundleCodes.USAGE}]: minimum signers must be a positive integer, got \`${params.minSigners}\``);
    return BundleExitCode.USAGE;
  }
  let trustedKeys: JSONWebKeySet;
  try {
    trustedKeys = await readTrustedKeysFile(params.keysFile);
  } catch (error) {
    io.err(`error[${errorCode(error) ?? BundleCodes.KEY_INVALID}]: ${(error as Error).message}`);
    return BundleExitCode.USAGE;
  }
  const result = await verifyBundle(params.dir, { trustedKeys, minSigners: params.minSigners, ...(params.now === undefined ? {} : { now: params.now }) });
  if (!result.ok) {
    printProblems(io, result.problems);
    if (result.problems.every((p) => p.code === BundleCodes.DIR_UNREADABLE)) return BundleExitCode.USAGE;
    io.err(`bundle \`${params.dir}\` failed verification: ${result.problems.length} problem(s)`);
    return BundleExitCode.FAILED;
  }
  const bundle = result.bundle;
  if (params.stateDir !== undefined) {
    let problem: BundleProblem | null;
    try {
      problem = checkRollback(new FileRevisionStore(params.stateDir), bundle.revision, bundle.digest);
    } catch (error) {
      io.err(`error[${errorCode(error) ?? BundleCodes.REVISION_STATE_CORRUPT}]: ${(error as Error).message}`);
      return BundleExitCode.FAILED;
    }
    if (problem !== null) {
      printProblems(io, [problem]);
      io.err(`bundle \`${params.dir}\` failed verification: 1 problem(s)`);
      return BundleExitCode.FAILED;
    }
  }
  const expiry = bundle.expiresAt === null ? "" : `, expires ${bundle.expiresAt.toISOString()}`;
  io.out(
    `ok: bundle \`${params.dir}\` revision ${bundle.revision}, ${bundle.files.length} file(s), digest ${bundle.digest.slice(0, 16)}…, ` +
      `signed by ${bundle.signers.join(", ")} (${bundle.signers.length} of ${params.minSigners} required)${expiry}`,
  );
  return BundleExitCode.OK;
}
