// The public face of the audit log: the gateway imports src/audit only from here.
export { openAuditLog } from "./log.ts";
export type { AppendResult, AuditLog, AuditLogOptions, AuditLogStats, AuditSigningKey } from "./log.ts";
export { redactHeaders } from "./redact.ts";
export { verifyAuditFiles, verifyAuditChains, resolveAuditPaths, chainLabel, describeTail } from "./verify.ts";
export type { AuditBreak, AuditBreakKind, AuditVerification, ChainVerification, VerifyAuditOptions } from "./verify.ts";
export { UNKNOWN_OUTCOME_EXAMPLES } from "./verify.ts";
export { expandOutcomes, outcomesOf } from "./outcomes.ts";
export { ContextTable, contextForm } from "./contexts.ts";
export { GENESIS_HASH, CHECKPOINT_JWS_TYPE, OUTCOME_TYPE, OUTCOMES_TYPE, auditFileName, auditFileChain, parseAuditFileName, workerChainName } from "./record.ts";
export type { CheckpointPayload } from "./record.ts";
