// Policy sources and the one build every consumer shares (load → check → compile → test).
// Other folders import it only from here.
export { buildPolicy, buildPolicyDirectory } from "./build.ts";
export type { BuildStage, PolicyBuild } from "./build.ts";
export { classifyPolicyFiles, readPolicyDirectory } from "./sources.ts";
export { dutySpan, ruleSpan } from "./spans.ts";
