// The gateway's duty ledger: the store the config names (the SQLite file of the state directory,
// or the fleet's shared PostgreSQL database), with every call timed and every failure counted for
// the metrics. The pipeline and the admin functions see only the DutyLedger contract.
import { readFileSync } from "node:fs";
import process from "node:process";
import type { RevisionStore } from "../bundle/mod.ts";
import { SharedRevisionStore } from "../bundle/mod.ts";
import type { GatewayConfig, PostgresLedgerConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import {
  openLedgerOfStateDir, openPostgresLedger, openPostgresLedgerOfStateDir, redactLedgerUrl,
  type DutyLedger, type LedgerAvailability, type PostgresDutyLedger, type PostgresLedgerOptions,
} from "../ledger/mod.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** The opened ledger, and the revision store that goes with it (the fleet's, on PostgreSQL). */
export interface ConfiguredLedger {
  ledger: DutyLedger;
  /** Where the ledger is, for logs: a file path, or the URL without credentials. */
  where: string;
  /** The shared revision store of a PostgreSQL ledger; null keeps the state directory's file. */
  revisionStore: RevisionStore | null;
}

/**
 * Opens the ledger `config.ledger` names, checked against the state directory's record of it.
 * Fails the start with a coded error: `LEDGER_MISSING`, `LEDGER_REPLACED`, … (either store), or
 * for PostgreSQL `LEDGER_UNAVAILABLE` (unreachable, login refused, no answer in time) and
 * `CONFIG_MISSING_SECRET` (the password's variable is unset).
 */
export async function openConfiguredLedger(config: GatewayConfig, options: { log: Logger; resetLedger?: boolean }): Promise<ConfiguredLedger> {
  const { log } = options;
  const pg = config.ledger.postgres;
  if (!pg) {
    const { ledger, outcome, previous } = await openLedgerOfStateDir({
      stateDir: config.stateDir, path: config.ledger.path, retentionDays: config.ledger.retentionDays, reset: options.resetLedger,
      onWarning: (message, fields) => log.warn(message, fields),
    });
    if (outcome === "reset") {
      log.warn("--reset-ledger: the recorded duty ledger was missing or replaced; its history is no longer consulted", { recorded: previous?.ledger_id, ledger_id: ledger.id, ledger: config.ledger.path });
    }
    return { ledger, where: config.ledger.path, revisionStore: null };
  }
  const { ledger, outcome, previous } = await openPostgresLedgerOfStateDir({
    ...postgresOptions(pg, config.ledger.retentionDays, (a) => logAvailability(log, redactLedgerUrl(pg.url), a)),
    stateDir: config.stateDir,
    reset: options.resetLedger,
  });
  if (outcome === "reset") {
    log.warn("--reset-ledger: the recorded duty ledger was missing or replaced; its history is no longer consulted", { recorded: previous?.ledger_id, ledger_id: ledger.id, ledger: ledger.url });
  }
  return { ledger, where: ledger.url, revisionStore: new SharedRevisionStore(config.stateDir, ledger) };
}

/** The PostgreSQL ledger `[ledger] url` names, with its password and CA read now (serve, `gateway ledger --config`). */
export function openPostgresFromConfig(pg: PostgresLedgerConfig, retentionDays: number, onAvailability?: (availability: LedgerAvailability) => void): Promise<PostgresDutyLedger> {
  return openPostgresLedger(postgresOptions(pg, retentionDays, onAvailability));
}

function postgresOptions(pg: PostgresLedgerConfig, retentionDays: number, onAvailability?: (availability: LedgerAvailability) => void): PostgresLedgerOptions {
  return {
    url: pg.url,
    password: readLedgerPassword(pg),
    ca: pg.caFile ? readFileSync(pg.caFile, "utf8") : undefined,
    timeoutMs: pg.timeoutMs,
    retentionDays,
    onAvailability,
  };
}

function logAvailability(log: Logger, url: string, availability: LedgerAvailability): void {
  if (availability.available) log.info("duty ledger available again; guarded duties are served", { ledger: url });
  else log.error("duty ledger unavailable; guarded duties get 503 LEDGER_UNAVAILABLE until it answers again", { ledger: url, reason: availability.reason });
}

/** The role's password from `password_file` (one line) or `password_env`; none when neither is set. */
function readLedgerPassword(pg: PostgresLedgerConfig): string | undefined {
  if (pg.passwordFile) {
    try {
      return readFileSync(pg.passwordFile, "utf8").replace(/\r?\n$/, "");
    } catch (error) {
      throw new GatewayError("CONFIG_FILE_NOT_FOUND", `ledger.password_file: cannot read \`${pg.passwordFile}\`: ${(error as { code?: string }).code ?? (error as Error).message}`);
    }
  }
  if (pg.passwordEnv) {
    const value = process.env[pg.passwordEnv];
    if (value === undefined || value === "") throw new GatewayError("CONFIG_MISSING_SECRET", `ledger.password_env: the environment variable \`${pg.passwordEnv}\` is not set`);
    return value;
  }
  return undefined;
}

/**
 * `ledger` with each call timed into `dutygate_ledger_duration_seconds{op}` and each failure counted
 * in `dutygate_ledger_errors_total{op,code}`. The store's own behaviour is untouched.
 */
export function instrumentLedger(ledger: DutyLedger, metrics: Metrics): DutyLedger {
  const timed = <A extends unknown[], R>(op: string, call: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
    const started = performance.now();
    try {
      return await call(...args);
    } catch (error) {
      metrics.ledgerErrors.inc({ op, code: error instanceof GatewayError ? error.code : "INTERNAL_ERROR" });
      throw error;
    } finally {
      metrics.ledgerLatency.observe({ op }, (performance.now() - started) / 1000);
    }
  };
  return {
    reserve: timed("reserve", (r) => ledger.reserve(r)),
    confirm: timed("confirm", (r) => ledger.confirm(r)),
    release: timed("release", (r) => ledger.release(r)),
    abandon: timed("abandon", (r) => ledger.abandon(r)),
    lookup: timed("lookup", (c, s) => ledger.lookup(c, s)),
    pending: (now) => ledger.pending(now),
    prune: (now) => ledger.prune(now),
    size: () => ledger.size(),
    close: () => ledger.close(),
    availability: () => ledger.availability?.() ?? { available: true },
  };
}
