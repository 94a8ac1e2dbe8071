// Helpers several parts of the gateway share and none owns: the canonical JSON the audit chain
// and the bundle manifest both hash, crash-safe file replacement for every piece of state, and
// file-system errors in words.
export { canonicalJson, canonicalJsonReference, replaceLoneSurrogates } from "./canonical-json.ts";
export { writeFileAtomic, writeFileAtomicSync } from "./atomic-file.ts";
export { errnoOf, fileErrorReason } from "./file-errors.ts";
