// `gateway verify DIR --keys TRUSTED.jwks [--min-signers N] [--state-dir D]`: a bundle's files,
// signatures and (with the state directory) revision, checked as the gateway checks them.
// Exit codes are the gateway's shared ones (src/cli/io.ts): 0 ok, 4 refused or failed
// verification, 64 usage (bad arguments, an unreadable key file, a missing directory).
import type { JSONWebKeySet } from "jose";
import { BundleCodes, checkRollback, FileRevisionStore, readTrustedKeysFile, verifyBundle, type BundleProblem } from "../bundle/mod.ts";
import { EXIT, type Io } from "./io.ts";
import { errorCode, printProblems } from "./bundle-output.ts";

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
 * to `out`. Exit 0 verified, 4 verification failed, 64 usage (unreadable keys, missing directory).
 */
export async function runVerify(params: VerifyParams, io: Io): Promise<number> {
  if (!Number.isSafeInteger(params.minSigners) || params.minSigners < 1) {
    io.err(`error[${BundleCodes.USAGE}]: minimum signers must be a positive integer, got \`${params.minSigners}\``);
    return EXIT.usage;
  }
  let trustedKeys: JSONWebKeySet;
  try {
    trustedKeys = await readTrustedKeysFile(params.keysFile);
  } catch (error) {
    io.err(`error[${errorCode(error) ?? BundleCodes.KEY_INVALID}]: ${(error as Error).message}`);
    return EXIT.usage;
  }
  const result = await verifyBundle(params.dir, { trustedKeys, minSigners: params.minSigners, ...(params.now === undefined ? {} : { now: params.now }) });
  if (!result.ok) {
    printProblems(io, result.problems);
    if (result.problems.every((p) => p.code === BundleCodes.DIR_UNREADABLE)) return EXIT.usage;
    io.err(`bundle \`${params.dir}\` failed verification: ${result.problems.length} problem(s)`);
    return EXIT.verificationFailed;
  }
  const bundle = result.bundle;
  if (params.stateDir !== undefined) {
    let problem: BundleProblem | null;
    try {
      problem = checkRollback(new FileRevisionStore(params.stateDir), bundle.revision, bundle.digest);
    } catch (error) {
      io.err(`error[${errorCode(error) ?? BundleCodes.REVISION_STATE_CORRUPT}]: ${(error as Error).message}`);
      return EXIT.verificationFailed;
    }
    if (problem !== null) {
      printProblems(io, [problem]);
      io.err(`bundle \`${params.dir}\` failed verification: 1 problem(s)`);
      return EXIT.verificationFailed;
    }
  }
  const expiry = bundle.expiresAt === null ? "" : `, expires ${bundle.expiresAt.toISOString()}`;
  io.out(
    `ok: bundle \`${params.dir}\` revision ${bundle.revision}, ${bundle.files.length} file(s), digest ${bundle.digest.slice(0, 16)}…, ` +
      `signed by ${bundle.signers.join(", ")} (${bundle.signers.length} of ${params.minSigners} required)${expiry}`,
  );
  return EXIT.ok;
}
