// The duty ledger of history-based separation of duties: the store contract and its SQLite,
// PostgreSQL and in-memory implementations. What conflicts, and the deny message, are the
// language's one rule (dsl/separation.ts), which every store applies. The gateway imports the
// ledger only from here.
export {
  DEFAULT_RESERVATION_TTL_MS,
  type PendingReservation,
  type PendingState,
  type ReservedKey,
  schedulePrune,
  settleOutcomeOf,
  settleReservation,
  type SettleOutcome,
  type DutyLedger,
  type LedgerAvailability,
  type LedgerOptions,
  type PruneSchedule,
  type Reservation,
  type ReserveRequest,
  type ReserveResult,
} from "./ledger.ts";
export { MemoryDutyLedger } from "./memory.ts";
export { DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_CHECKPOINT_EVERY_MS, LEDGER_SCHEMA_VERSION, openSqliteLedger, SqliteDutyLedger, type SqliteLedgerOptions } from "./sqlite.ts";
export {
  LEDGER_IDENTITY_FILE, openLedgerOfStateDir, openPostgresLedgerOfStateDir,
  type LedgerIdentityRecord, type StateDirLedger, type StateDirLedgerOptions, type StateDirPostgresLedgerOptions,
} from "./identity.ts";
export { DEFAULT_POSTGRES_TIMEOUT_MS, openPostgresLedger, POSTGRES_LEDGER_SCHEMA_VERSION, PostgresDutyLedger, type PostgresLedgerOptions } from "./postgres.ts";
export { parsePostgresUrl, redactLedgerUrl } from "./postgres-url.ts";
// The deny message lives with the rule (dsl/separation.ts); keys print the same everywhere.
export { showKey } from "../../dsl/mod.ts";
