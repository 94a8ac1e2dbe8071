// The command line: `main` (argv → a command) and its handlers, each a plain function over params
// and an `Io` that returns one of the exit codes of `EXIT`.
export { EXIT, memoryIo, processIo, SERVING } from "./io.ts";
export type { Io } from "./io.ts";
export { parseArgs } from "./args.ts";
export type { FlagSpec, ParsedArgs } from "./args.ts";
export { AUDIT_VERIFY_USAGE, parseAuditVerifyArgs, runAuditVerify } from "./audit-verify.ts";
export type { AuditVerifyArgs } from "./audit-verify.ts";
export { runKeygen, TRUSTED_KEYS_FILE_NAME } from "./keygen.ts";
export type { KeygenParams } from "./keygen.ts";
export { runKeys, KEYS_ACTIONS } from "./keys.ts";
export type { KeysAction, KeysParams } from "./keys.ts";
export { runSign } from "./sign.ts";
export type { SignParams } from "./sign.ts";
export { runVerify } from "./verify.ts";
export type { VerifyParams } from "./verify.ts";
export { runInit } from "./init.ts";
export type { InitParams } from "./init.ts";
export { HELP, main } from "./main.ts";
export { reportCommandFailure, startupFailure } from "./failure.ts";
export { runServe } from "./serve.ts";
export type { ServeParams } from "./serve.ts";
