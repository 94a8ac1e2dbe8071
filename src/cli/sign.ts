// `gateway sign DIR --key PRIVATE.jwk [--new-revision | --revision N] [--expires-in D | --expires-at T]`:
// issues or co-signs a bundle's manifest.
// Exit codes are the gateway's shared ones (src/cli/io.ts): 0 ok, 4 refused or failed
// verification, 64 usage (bad arguments, an unreadable key file, a missing directory).
import { parseDuration, parseTime } from "../../dsl/mod.ts";
import { BundleCodes, readSigningKeyFile, signBundle, type BundleProblem, type SignBundleOptions } from "../bundle/mod.ts";
import { GatewayError } from "../errors.ts";
import { EXIT, type Io } from "./io.ts";
import { errorCode, printProblems } from "./bundle-output.ts";

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
 * Exit 0 signed, 4 refused (stale manifest, revision not newer, unreadable files), 64 usage.
 */
export async function runSign(params: SignParams, io: Io): Promise<number> {
  const options: SignBundleOptions = { ...(params.now === undefined ? {} : { now: params.now }) };
  if (params.revision !== undefined) options.revision = params.revision;
  if (params.newRevision) options.newRevision = true;
  if (params.expiresIn !== undefined) {
    const ms = parseDuration(params.expiresIn);
    if (ms === null || ms <= 0) {
      io.err(`error[${BundleCodes.USAGE}]: expiry \`${params.expiresIn}\` is not a duration like \`30d\` or \`12h\``);
      return EXIT.usage;
    }
    options.expiresInMs = ms;
  }
  if (params.expiresAt !== undefined) {
    const at = parseTime(params.expiresAt);
    if (at === null) {
      io.err(`error[${BundleCodes.USAGE}]: expiry \`${params.expiresAt}\` is not an RFC 3339 date or date-time`);
      return EXIT.usage;
    }
    options.expiresAt = new Date(at);
  }
  let key;
  try {
    key = await readSigningKeyFile(params.keyFile);
  } catch (error) {
    io.err(`error[${errorCode(error) ?? BundleCodes.KEY_INVALID}]: ${(error as Error).message}`);
    return EXIT.usage;
  }
  try {
    const result = await signBundle(params.dir, key, options);
    const what = result.action === "issued" ? "issued revision" : result.action === "added" ? "added signature to revision" : "renewed signature on revision";
    io.out(`${what} ${result.revision} as \`${key.kid}\` (digest ${result.digest.slice(0, 16)}…)`);
    io.out(`signatures: ${result.signers.join(", ")}${result.expiresAt === null ? "" : `; expires ${result.expiresAt}`}`);
    return EXIT.ok;
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
    return error.code === BundleCodes.USAGE || error.code === BundleCodes.DIR_UNREADABLE ? EXIT.usage : EXIT.verificationFailed;
  }
}
