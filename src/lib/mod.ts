// Helpers several parts of the gateway share and none owns: the canonical JSON the audit chain
// and the bundle manifest both hash, and crash-safe file replacement for every piece of state.
export { canonicalJson, canonicalJsonReference, replaceLoneSurrogates } from "./canonical-json.ts";
export { writeFileAtomic, writeFileAtomicSync } from "./atomic-file.ts";
