// Problems are values: verification collects every issue it finds instead of stopping at the first,
// so an operator fixing a bundle sees the whole picture in one run.
import type { ErrorCode } from "../error-codes.ts";

/** One issue found while reading, signing or verifying a bundle. */
export interface BundleProblem {
  /** Stable machine-readable code, e.g. `BUNDLE_FILE_CHANGED`. */
  code: BundleProblemCode;
  /** Lowercase, no final period, user input in backticks. */
  message: string;
  /** Bundle-relative path (with `/`) of the file concerned, when there is one. */
  path?: string;
}

/**
 * Every code a bundle problem or a bundle `GatewayError` can carry. Tests and callers match on
 * these, never on messages.
 */
export const BundleCodes = {
  /** The bundle directory does not exist or cannot be listed. */
  DIR_UNREADABLE: "BUNDLE_DIR_UNREADABLE",
  /** A listed file could not be read (it vanished, is a dangling symlink, or is not readable). */
  FILE_UNREADABLE: "BUNDLE_FILE_UNREADABLE",
  /** A file's SHA-256 differs from the manifest. */
  FILE_CHANGED: "BUNDLE_FILE_CHANGED",
  /** A file is present but not listed in the manifest. */
  FILE_EXTRA: "BUNDLE_FILE_EXTRA",
  /** A file listed in the manifest is absent. */
  FILE_MISSING: "BUNDLE_FILE_MISSING",
  /** The directory holds no manifest but signatures are required. */
  MANIFEST_MISSING: "BUNDLE_MANIFEST_MISSING",
  /** The manifest is not a valid General JWS JSON bundle manifest. */
  MANIFEST_MALFORMED: "BUNDLE_MANIFEST_MALFORMED",
  /** A second signer tried to sign a manifest whose files no longer match the directory. */
  MANIFEST_STALE: "BUNDLE_MANIFEST_STALE",
  /** A signature does not verify with the trusted key named by its `kid`. */
  SIGNATURE_INVALID: "BUNDLE_SIGNATURE_INVALID",
  /** A signature names a `kid` that is not in the trusted key set. */
  SIGNER_UNKNOWN: "BUNDLE_SIGNER_UNKNOWN",
  /** Fewer distinct trusted keys signed the manifest than `minSigners` requires. */
  TOO_FEW_SIGNERS: "BUNDLE_TOO_FEW_SIGNERS",
  /** `expires_at` is in the past. */
  EXPIRED: "BUNDLE_EXPIRED",
  /** `issued_at` is in the future (beyond the allowed clock skew). */
  NOT_YET_VALID: "BUNDLE_NOT_YET_VALID",
  /** The bundle's revision is not newer than the highest revision accepted before. */
  ROLLBACK: "BUNDLE_ROLLBACK",
  /** A requested revision is not newer than the manifest already in the directory. */
  REVISION_NOT_NEWER: "BUNDLE_REVISION_NOT_NEWER",
  /** The persisted revision state cannot be read or parsed (fail closed). */
  REVISION_STATE_CORRUPT: "BUNDLE_REVISION_STATE_CORRUPT",
  /** A key file or key set is unreadable, malformed or of an unsupported algorithm. */
  KEY_INVALID: "BUNDLE_KEY_INVALID",
  /** Key generation would overwrite an existing key or reuse a `kid`; a key set would list a `kid` or a key twice. */
  KEY_EXISTS: "BUNDLE_KEY_EXISTS",
  /** A private key was offered where only public keys belong (a trusted key set). */
  KEY_PRIVATE: "BUNDLE_KEY_PRIVATE",
  /** A key id to remove is not in the trusted key set. */
  KEY_UNKNOWN: "BUNDLE_KEY_UNKNOWN",
  /** Options that contradict each other or the manifest (e.g. a new expiry on an issued manifest). */
  USAGE: "BUNDLE_USAGE",
} as const satisfies Record<string, ErrorCode>;

export type BundleProblemCode = (typeof BundleCodes)[keyof typeof BundleCodes];

/** Renders a problem as one line: `error[CODE]: path: message`, like every other command's errors. */
export function formatBundleProblem(problem: BundleProblem): string {
  const where = problem.path === undefined ? "" : ` ${problem.path}:`;
  return `error[${problem.code}]:${where} ${problem.message}`;
}
