// Signing: the first signer issues a manifest for a revision; later signers add their signature
// to that same payload, after checking the directory still holds exactly the signed files.
import { FlattenedSign, base64url } from "jose";
import { join } from "node:path";
import { GatewayError } from "../errors.ts";
import { compareBundleFiles } from "./compare.ts";
import { MANIFEST_FILE_NAME, readBundleFiles, sha256Hex } from "./files.ts";
import {
  MANIFEST_FORMAT,
  MANIFEST_JWS_TYPE,
  encodeManifestPayload,
  formatManifestTime,
  readManifestFile,
  writeManifestFile,
  type ManifestPayload,
  type ManifestSignatureEntry,
} from "./manifest.ts";
import { BundleCodes, formatBundleProblem } from "./problems.ts";
import type { SigningKey } from "./keys.ts";

/** Options of {@link signBundle}. With none, the signer adds to the existing manifest (or issues revision 1). */
export interface SignBundleOptions {
  /**
   * Issue this revision for the current files. Must be greater than the existing manifest's
   * revision; equal is accepted only when it names the very payload already issued (then the
   * signature is added to it).
   */
  revision?: number;
  /** Issue the existing manifest's revision + 1 for the current files (1 without a manifest). */
  newRevision?: boolean;
  /** Absolute expiry of a newly issued manifest. */
  expiresAt?: Date;
  /** Expiry relative to `now`, in milliseconds, of a newly issued manifest. */
  expiresInMs?: number;
  /** Clock for `issued_at` (tests). */
  now?: Date;
}

/** What {@link signBundle} did. */
export interface SignBundleResult {
  /** `issued`: a new payload; `added`: a signature appended; `replaced`: this kid's signature renewed. */
  action: "issued" | "added" | "replaced";
  revision: number;
  digest: string;
  /** Key ids of every signature now in the manifest, in manifest order. */
  signers: string[];
  manifestPath: string;
  issuedAt: string;
  expiresAt: string | null;
}

async function signPayload(payloadBytes: Uint8Array, key: SigningKey): Promise<ManifestSignatureEntry> {
  const jws = await new FlattenedSign(payloadBytes).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: MANIFEST_JWS_TYPE }).sign(key.key);
  return { protected: jws.protected ?? "", signature: jws.signature };
}

function requestedExpiry(options: SignBundleOptions, now: Date): string | undefined {
  if (options.expiresAt !== undefined && options.expiresInMs !== undefined) {
    throw new GatewayError(BundleCodes.USAGE, "give either an absolute expiry or a relative one, not both");
  }
  if (options.expiresAt !== undefined) {
    if (!Number.isFinite(options.expiresAt.getTime())) throw new GatewayError(BundleCodes.USAGE, "expiry is not a valid time");
    return formatManifestTime(options.expiresAt);
  }
  if (options.expiresInMs !== undefined) {
    if (!Number.isFinite(options.expiresInMs) || options.expiresInMs <= 0) throw new GatewayError(BundleCodes.USAGE, "relative expiry must be positive");
    return formatManifestTime(new Date(now.getTime() + options.expiresInMs));
  }
  return undefined;
}

/**
 * Signs the bundle in `dir` with `key`, writing `DIR/bundle.sig.json` atomically.
 *
 * - No manifest yet: issues revision `options.revision ?? 1`.
 * - A manifest exists and no revision option is given: adds this signature to its payload, after
 *   checking the directory still holds exactly the signed files (else `BUNDLE_MANIFEST_STALE`).
 *   A second signature by the same `kid` replaces the first.
 * - `newRevision` or `revision`: issues a new payload for the current files, dropping the old
 *   signatures; the revision must be newer (`BUNDLE_REVISION_NOT_NEWER`).
 *
 * Throws `GatewayError` with a bundle code; `detail.problems` lists file-level problems.
 *
 * @example
 * await signBundle("policies", await readSigningKeyFile("keys/alice.private.jwk"), { newRevision: true });
 */
export async function signBundle(dir: string, key: SigningKey, options: SignBundleOptions = {}): Promise<SignBundleResult> {
  const now = options.now ?? new Date();
  if (options.revision !== undefined && (!Number.isSafeInteger(options.revision) || options.revision < 1)) {
    throw new GatewayError(BundleCodes.USAGE, `revision \`${options.revision}\` must be a positive integer`);
  }
  if (options.revision !== undefined && options.newRevision) {
    throw new GatewayError(BundleCodes.USAGE, "give either an explicit revision or `newRevision`, not both");
  }
  const expiresAt = requestedExpiry(options, now);

  const read = await readBundleFiles(dir);
  if (read.problems.length > 0) {
    const first = read.problems[0]!;
    throw new GatewayError(first.code, `cannot sign: ${read.problems.map(formatBundleProblem).join("; ")}`, { problems: read.problems });
  }
  const current = read.files.map((file) => ({ path: file.path, sha256: file.sha256 }));
  const existing = await readManifestFile(dir);
  if (existing.kind === "malformed" && options.revision === undefined) {
    throw new GatewayError(BundleCodes.MANIFEST_MALFORMED, `existing manifest is malformed (${existing.problems[0]!.message}); pass an explicit revision to replace it`, { problems: existing.problems });
  }

  let payloadBytes: Uint8Array;
  let payload: ManifestPayload;
  let signatures: ManifestSignatureEntry[];
  let action: SignBundleResult["action"];

  const previous = existing.kind === "ok" ? existing.manifest : null;
  const differences = previous === null ? [] : compareBundleFiles(previous.payload.files, current);
  const addToPrevious =
    previous !== null &&
    !options.newRevision &&
    (options.revision === undefined || (options.revision === previous.payload.revision && differences.length === 0));

  if (previous !== null && addToPrevious) {
    if (differences.length > 0) {
      throw new GatewayError(
        BundleCodes.MANIFEST_STALE,
        `manifest revision ${previous.payload.revision} no longer matches the files (${differences.map(formatBundleProblem).join("; ")}); ` +
          `issue a new revision to sign the current files`,
        { problems: differences, revision: previous.payload.revision },
      );
    }
    if (expiresAt !== undefined && expiresAt !== previous.payload.expires_at) {
      throw new GatewayError(BundleCodes.USAGE, `revision ${previous.payload.revision} is already issued and its expiry is signed; issue a new revision to change it`);
    }
    payloadBytes = previous.payloadBytes;
    payload = previous.payload;
    const signature = await signPayload(payloadBytes, key);
    const index = previous.headers.findIndex((header) => header.kid === key.kid);
    signatures = [...previous.signed.signatures];
    if (index >= 0) {
      signatures[index] = signature;
      action = "replaced";
    } else {
      signatures.push(signature);
      action = "added";
    }
  } else {
    const previousRevision = previous?.payload.revision ?? 0;
    const revision = options.revision ?? previousRevision + 1;
    if (previous !== null && revision <= previousRevision) {
      throw new GatewayError(
        BundleCodes.REVISION_NOT_NEWER,
        revision === previousRevision
          ? `revision ${revision} is already issued for other files; use ${previousRevision + 1} or later`
          : `revision ${revision} is older than the manifest's revision ${previousRevision}; use ${previousRevision + 1} or later`,
        { revision, previousRevision },
      );
    }
    const issuedAt = formatManifestTime(now);
    if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.parse(issuedAt)) {
      throw new GatewayError(BundleCodes.USAGE, `expiry \`${expiresAt}\` is not after the issue time \`${issuedAt}\``);
    }
    payload = { format: MANIFEST_FORMAT, revision, issued_at: issuedAt, ...(expiresAt === undefined ? {} : { expires_at: expiresAt }), files: current };
    payloadBytes = encodeManifestPayload(payload);
    signatures = [await signPayload(payloadBytes, key)];
    action = "issued";
  }

  await writeManifestFile(dir, { payload: base64url.encode(payloadBytes), signatures });
  const signers = signatures.map((entry) => (JSON.parse(new TextDecoder().decode(base64url.decode(entry.protected))) as { kid: string }).kid);
  return {
    action,
    revision: payload.revision,
    digest: sha256Hex(payloadBytes),
    signers,
    manifestPath: join(dir, MANIFEST_FILE_NAME),
    issuedAt: payload.issued_at,
    expiresAt: payload.expires_at ?? null,
  };
}
