// Verification: does the directory hold exactly the files a manifest lists, signed by enough
// distinct trusted keys, within its validity window? Collects every problem, stops at none.
import { flattenedVerify, importJWK, type JSONWebKeySet, type JWK } from "jose";
import { GatewayError } from "../errors.ts";
import { compareBundleFiles } from "./compare.ts";
import { readBundleFiles, sha256Hex, sortProblems, type BundleFile } from "./files.ts";
import { algorithmOfPublicJwk, keyThumbprint } from "./keys.ts";
import { canonicalJson, readManifestFile, type ParsedManifest, type SignedManifest } from "./manifest.ts";
import { BundleCodes, type BundleProblem } from "./problems.ts";

/** A bundle that passed verification (or was read unsigned). */
export interface VerifiedBundle {
  /** Sorted by path. */
  files: BundleFile[];
  /** The manifest's revision; 0 for an unsigned bundle. */
  revision: number;
  /** SHA-256 hex of the signed payload bytes (unsigned: of the canonical file list). */
  digest: string;
  /** Key ids whose signatures verified, one per distinct trusted key, in manifest order. */
  signers: string[];
  issuedAt: Date | null;
  expiresAt: Date | null;
  signed: boolean;
  /** The manifest that verified (null for an unsigned bundle): with `files`, a copy verifies again. */
  manifest: SignedManifest | null;
}

/** The outcome of {@link verifyBundle}: a bundle, or every problem found. */
export type BundleVerification = { ok: true; bundle: VerifiedBundle } | { ok: false; problems: BundleProblem[] };

/** Options of {@link verifyBundle}. */
export interface VerifyBundleOptions {
  /** Public keys of the trusted signers. */
  trustedKeys: JSONWebKeySet;
  /** Distinct trusted keys that must have signed (2 recommended: author plus reviewer). */
  minSigners: number;
  /** Clock for expiry checks (tests). */
  now?: Date;
  /**
   * When false, a directory without a manifest is accepted as an unsigned bundle (revision 0).
   * A manifest that is present is still verified in full. Default true.
   */
  requireSignature?: boolean;
  /** Tolerance for an `issued_at` slightly in the future (clock skew between signer and gateway). Default 5 minutes. */
  clockSkewMs?: number;
}

const DEFAULT_CLOCK_SKEW_MS = 5 * 60_000;

interface SignatureCheck {
  problems: BundleProblem[];
  signers: string[];
  distinct: number;
  duplicates: string[];
}

async function checkSignatures(manifest: ParsedManifest, trustedKeys: JSONWebKeySet): Promise<SignatureCheck> {
  const problems: BundleProblem[] = [];
  const signers: string[] = [];
  const duplicates: string[] = [];
  const thumbprints = new Set<string>();
  for (const [index, entry] of manifest.signed.signatures.entries()) {
    const header = manifest.headers[index]!;
    const candidates = trustedKeys.keys.filter((key: JWK) => key.kid === header.kid);
    if (candidates.length === 0) {
      problems.push({ code: BundleCodes.SIGNER_UNKNOWN, message: `signature ${index + 1} is by \`${header.kid}\`, which is not a trusted key` });
      continue;
    }
    let verifiedWith: JWK | null = null;
    let failure = "signature does not match";
    for (const jwk of candidates) {
      const alg = algorithmOfPublicJwk(jwk);
      if (alg !== header.alg || (jwk.alg !== undefined && jwk.alg !== header.alg)) {
        failure = `signature uses \`${header.alg}\` but the trusted key is ${alg ?? "of an unsupported type"}`;
        continue;
      }
      try {
        const key = await importJWK(jwk, header.alg);
        await flattenedVerify({ payload: manifest.signed.payload, protected: entry.protected, signature: entry.signature }, key, { algorithms: [header.alg] });
        verifiedWith = jwk;
        break;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        failure = code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" ? "signature does not match" : `signature cannot be checked: ${(error as Error).message}`;
      }
    }
    if (verifiedWith === null) {
      problems.push({ code: BundleCodes.SIGNATURE_INVALID, message: `signature ${index + 1} by \`${header.kid}\`: ${failure}` });
      continue;
    }
    const thumbprint = await keyThumbprint(verifiedWith);
    if (thumbprints.has(thumbprint)) {
      duplicates.push(header.kid);
      continue;
    }
    thumbprints.add(thumbprint);
    signers.push(header.kid);
  }
  return { problems, signers, distinct: thumbprints.size, duplicates };
}

/**
 * Verifies the bundle in `dir` against `DIR/bundle.sig.json`: every file matches the manifest
 * exactly (no changed, extra or missing file), every signature verifies with a trusted key, at
 * least `minSigners` distinct trusted keys signed (one key twice counts once, by RFC 7638
 * thumbprint), the manifest has not expired and is not issued in the future.
 *
 * Never throws for a bad bundle; returns one problem per issue. Throws `BUNDLE_USAGE` only for
 * invalid options (a programmer mistake). Rollback is checked separately ({@link checkRollback}).
 *
 * @example
 * const result = await verifyBundle("policies", { trustedKeys, minSigners: 2 });
 * if (!result.ok) for (const p of result.problems) console.error(formatBundleProblem(p));
 */
export async function verifyBundle(dir: string, options: VerifyBundleOptions): Promise<BundleVerification> {
  if (!Number.isSafeInteger(options.minSigners) || options.minSigners < 1) {
    throw new GatewayError(BundleCodes.USAGE, `\`minSigners\` must be a positive integer, got \`${options.minSigners}\``);
  }
  const now = options.now ?? new Date();
  const skew = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  const [read, manifestRead] = await Promise.all([readBundleFiles(dir), readManifestFile(dir)]);

  if (manifestRead.kind === "absent") {
    if (options.requireSignature === false) return unsignedFrom(read.files, read.problems);
    if (read.problems.some((p) => p.code === BundleCodes.DIR_UNREADABLE)) return { ok: false, problems: read.problems };
    return { ok: false, problems: sortProblems([{ code: BundleCodes.MANIFEST_MISSING, message: "bundle is not signed: no `bundle.sig.json`; sign it with `gateway sign`" }, ...read.problems]) };
  }
  if (manifestRead.kind === "malformed") return { ok: false, problems: sortProblems([...manifestRead.problems, ...read.problems]) };

  const manifest = manifestRead.manifest;
  const unreadable = new Set(read.problems.flatMap((p) => (p.path === undefined ? [] : [p.path])));
  const problems: BundleProblem[] = [...read.problems, ...compareBundleFiles(manifest.payload.files, read.files, unreadable)];

  const signatures = await checkSignatures(manifest, options.trustedKeys);
  problems.push(...signatures.problems);
  if (signatures.distinct < options.minSigners) {
    const twice = signatures.duplicates.length === 0 ? "" : ` (\`${[...new Set(signatures.duplicates)].join("`, `")}\` signed with a key already counted)`;
    problems.push({
      code: BundleCodes.TOO_FEW_SIGNERS,
      message: `${signatures.distinct} distinct trusted signer(s), ${options.minSigners} required${twice}`,
    });
  }

  const issuedAt = new Date(manifest.payload.issued_at);
  const expiresAt = manifest.payload.expires_at === undefined ? null : new Date(manifest.payload.expires_at);
  if (issuedAt.getTime() > now.getTime() + skew) {
    problems.push({ code: BundleCodes.NOT_YET_VALID, message: `manifest is issued in the future (\`${manifest.payload.issued_at}\`)` });
  }
  if (expiresAt !== null && expiresAt.getTime() <= now.getTime()) {
    problems.push({ code: BundleCodes.EXPIRED, message: `manifest revision ${manifest.payload.revision} expired at \`${manifest.payload.expires_at}\`` });
  }

  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  return {
    ok: true,
    bundle: { files: read.files, revision: manifest.payload.revision, digest: manifest.digest, signers: signatures.signers, issuedAt, expiresAt, signed: true, manifest: manifest.signed },
  };
}

/** Digest of an unsigned bundle: SHA-256 hex of the canonical JSON `{"files":[{"path","sha256"}...]}`. */
export function unsignedBundleDigest(files: readonly { path: string; sha256: string }[]): string {
  return sha256Hex(canonicalJson({ files: files.map((file) => ({ path: file.path, sha256: file.sha256 })) }));
}

function unsignedFrom(files: BundleFile[], problems: BundleProblem[]): BundleVerification {
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, bundle: { files, revision: 0, digest: unsignedBundleDigest(files), signers: [], issuedAt: null, expiresAt: null, signed: false, manifest: null } };
}

/**
 * Reads the bundle in `dir` without any signature check (`require_signature = false`): the
 * files, revision 0, and a digest of the file list. Any manifest is ignored (and never listed).
 * Unsigned bundles have no revision to protect: skip the revision store for them.
 */
export async function readUnsignedBundle(dir: string): Promise<BundleVerification> {
  const read = await readBundleFiles(dir);
  return unsignedFrom(read.files, read.problems);
}
