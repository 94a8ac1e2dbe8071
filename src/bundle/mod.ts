// Signed policy bundles: listing, manifests, signing, verification, rollback protection and
// directory watching: the engine behind the gateway's loader and the `keygen`, `keys`, `sign`
// and `verify` commands (src/cli/). Everything else imports bundles only from here.
export { BundleCodes, formatBundleProblem } from "./problems.ts";
export type { BundleProblem, BundleProblemCode } from "./problems.ts";
export { MANIFEST_FILE_NAME, listBundlePaths, readBundleFiles, readListedBundleFiles, sha256Hex } from "./files.ts";
export type { BundleFile, BundleFilesRead } from "./files.ts";
export { MANIFEST_ALGORITHMS, MANIFEST_FORMAT, MANIFEST_JWS_TYPE, parseManifest, readManifestFile } from "./manifest.ts";
export type { ManifestAlgorithm, ManifestPayload, ManifestFileEntry, SignedManifest, ParsedManifest, ManifestRead } from "./manifest.ts";
export { algorithmOfPublicJwk, generateSigningKey, importSigningKey, isValidKeyId, keyThumbprint, readSigningKeyFile, parseTrustedKeySet, readTrustedKeysFile } from "./keys.ts";
export type { SigningKey, SigningKeyPair } from "./keys.ts";
export { signBundle } from "./sign.ts";
export type { SignBundleOptions, SignBundleResult } from "./sign.ts";
export { verifyBundle, readUnsignedBundle, unsignedBundleDigest } from "./verify.ts";
export type { BundleVerification, VerifiedBundle, VerifyBundleOptions } from "./verify.ts";
export { FileRevisionStore, MemoryRevisionStore, SharedRevisionStore, checkRollback, REVISION_STATE_FILE } from "./revisions.ts";
export type { RevisionStore, AcceptedRevision, SharedRevisionBackend } from "./revisions.ts";
export { LAST_GOOD_BUNDLE_DIR, readLastGoodBundle, storeLastGoodBundle } from "./last-good.ts";
export type { StoredBundle } from "./last-good.ts";
export { watchPolicyDirectory } from "./watch.ts";
export type { PolicyDirectoryWatch, WatchPolicyDirectoryOptions } from "./watch.ts";
