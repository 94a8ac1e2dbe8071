// The state directory remembers which duty ledger the gateway keeps, so that a ledger file deleted
// (or swapped for another) is noticed at start instead of being silently recreated empty: an empty
// ledger forgets every earlier step, and each person could then take a second duty on every key.
// The record is `ledger-identity.json` beside the gateway's other state; the ledger's identity is
// drawn inside the SQLite file (or the PostgreSQL database's `ledger_meta`) when it is created, so a
// moved or restored copy keeps it.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { GatewayError } from "../errors.ts";
import { openPostgresLedger, type PostgresDutyLedger, type PostgresLedgerOptions } from "./postgres.ts";
import { openSqliteLedger, type SqliteDutyLedger, type SqliteLedgerOptions } from "./sqlite.ts";

/** The file in the state directory that records the ledger's identity. */
export const LEDGER_IDENTITY_FILE = "ledger-identity.json";

/** What the state directory records of its ledger. */
export interface LedgerIdentityRecord {
  /** `SqliteDutyLedger.id` (or `PostgresDutyLedger.id`) of the ledger this state directory keeps. */
  ledger_id: string;
  /** Where it was last opened: the file, or the PostgreSQL URL (without credentials). */
  path: string;
  /** When this record was written (RFC 3339). */
  recorded_at: string;
}

/** Options of {@link openLedgerOfStateDir}. */
export interface StateDirLedgerOptions extends SqliteLedgerOptions {
  /** The state directory holding {@link LEDGER_IDENTITY_FILE}. */
  stateDir: string;
  /** The operator accepts a missing or replaced ledger (and the history it forgets): `--reset-ledger`. */
  reset?: boolean;
}

/** The opened ledger, and what became of the recorded one. */
export interface StateDirLedger {
  ledger: SqliteDutyLedger;
  /**
   * `created`: no ledger was recorded nor present, a new one begins; `adopted`: a ledger was present
   * but not yet recorded (a state directory from before the record); `same`: the recorded ledger;
   * `reset`: the recorded ledger was missing or replaced, and `reset` accepted that.
   */
  outcome: "created" | "adopted" | "same" | "reset";
  /** The identity recorded before this start, if any. */
  previous: LedgerIdentityRecord | null;
}

/** The identity recorded in `recordFile`; with `reset`, an unreadable record counts as none. */
function previousIdentity(recordFile: string, reset: boolean): LedgerIdentityRecord | null {
  try {
    return readIdentityRecord(recordFile);
  } catch (error) {
    if (!reset) throw error;
    return null;
  }
}

/**
 * Opens the SQLite ledger of a state directory and checks it is the one the directory recorded.
 * Refuses, unless `reset`, with `LEDGER_MISSING` (the recorded ledger's file is gone; nothing is
 * created), `LEDGER_REPLACED` (the file is another ledger) or `LEDGER_IDENTITY_INVALID` (the
 * record is unreadable). Records the ledger's identity after each successful open.
 *
 * @example
 * const { ledger } = await openLedgerOfStateDir({ stateDir: "state", path: "state/ledger.sqlite", retentionDays: 90 });
 */
export async function openLedgerOfStateDir(options: StateDirLedgerOptions): Promise<StateDirLedger> {
  const recordFile = join(options.stateDir, LEDGER_IDENTITY_FILE);
  const reset = options.reset === true;
  const previous = previousIdentity(recordFile, reset);
  const { path } = options;
  const present = existsSync(path);
  if (previous && !present && !reset) {
    throw new GatewayError(
      "LEDGER_MISSING",
      `the duty ledger \`${path}\` is missing, but \`${recordFile}\` records ledger ${previous.ledger_id} (last opened at \`${previous.path}\`): a new empty ledger would forget every earlier step; restore the file, or start with \`--reset-ledger\` to begin an empty one`,
      { path, recorded: previous.ledger_id },
    );
  }
  const ledger = await openSqliteLedger(options);
  const replaced = previous !== null && previous.ledger_id !== ledger.id;
  if (replaced && !reset) {
    await ledger.close();
    throw new GatewayError(
      "LEDGER_REPLACED",
      `the duty ledger \`${path}\` is ledger ${ledger.id}, but \`${recordFile}\` records ledger ${previous!.ledger_id}: the history it holds is not this gateway's; restore the recorded ledger, or start with \`--reset-ledger\` to keep this one`,
      { path, recorded: previous!.ledger_id, found: ledger.id },
    );
  }
  const outcome = previous === null ? (present ? "adopted" : "created") : replaced || !present ? "reset" : "same";
  if (outcome !== "same" || previous!.path !== path) {
    try {
      writeIdentityRecord(recordFile, { ledger_id: ledger.id, path, recorded_at: new Date().toISOString() });
    } catch (error) {
      await ledger.close();
      throw new GatewayError("LEDGER_IDENTITY_INVALID", `cannot record the duty ledger's identity in \`${recordFile}\`: ${(error as Error).message}`, { path: recordFile });
    }
  }
  return { ledger, outcome, previous };
}

/** Options of {@link openPostgresLedgerOfStateDir}. */
export interface StateDirPostgresLedgerOptions extends Omit<PostgresLedgerOptions, "expectLedgerId"> {
  /** The state directory holding {@link LEDGER_IDENTITY_FILE}. */
  stateDir: string;
  /** The operator accepts a missing or replaced ledger (and the history it forgets): `--reset-ledger`. */
  reset?: boolean;
}

/**
 * Opens the fleet's PostgreSQL ledger and checks it is the one this instance's state directory
 * recorded, with the SQLite ledger's rules: refuses, unless `reset`, a database that holds no
 * ledger (`LEDGER_MISSING`; nothing is created in it), another ledger (`LEDGER_REPLACED`), or an
 * unreadable record (`LEDGER_IDENTITY_INVALID`). Records the ledger's identity after each
 * successful open. While it serves, the ledger itself keeps checking (see `PostgresDutyLedger`).
 *
 * @example
 * const { ledger } = await openPostgresLedgerOfStateDir({ stateDir: "state", url, password, retentionDays: 400 });
 */
export async function openPostgresLedgerOfStateDir(options: StateDirPostgresLedgerOptions): Promise<{ ledger: PostgresDutyLedger; outcome: StateDirLedger["outcome"]; previous: LedgerIdentityRecord | null }> {
  const recordFile = join(options.stateDir, LEDGER_IDENTITY_FILE);
  const reset = options.reset === true;
  const previous = previousIdentity(recordFile, reset);
  const { stateDir: _stateDir, reset: _reset, ...open } = options;
  const ledger = await openPostgresLedger({ ...open, expectLedgerId: reset ? undefined : previous?.ledger_id });
  const outcome = previous === null ? (ledger.created ? "created" : "adopted") : previous.ledger_id === ledger.id ? "same" : "reset";
  if (outcome !== "same" || previous!.path !== ledger.url) {
    try {
      mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
      writeIdentityRecord(recordFile, { ledger_id: ledger.id, path: ledger.url, recorded_at: new Date().toISOString() });
    } catch (error) {
      await ledger.close();
      throw new GatewayError("LEDGER_IDENTITY_INVALID", `cannot record the duty ledger's identity in \`${recordFile}\`: ${(error as Error).message}`, { path: recordFile });
    }
  }
  return { ledger, outcome, previous };
}

function readIdentityRecord(file: string): LedgerIdentityRecord | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new GatewayError("LEDGER_IDENTITY_INVALID", `cannot read \`${file}\`: ${(error as Error).message}`, { path: file });
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    record = null;
  }
  const { ledger_id, path, recorded_at } = (record ?? {}) as Partial<LedgerIdentityRecord>;
  if (typeof ledger_id !== "string" || !/^[0-9a-f]{32}$/.test(ledger_id) || typeof path !== "string" || typeof recorded_at !== "string") {
    throw new GatewayError(
      "LEDGER_IDENTITY_INVALID",
      `\`${file}\` does not record a duty ledger ({"ledger_id": 32 hex digits, "path", "recorded_at"}); restore it, or start with \`--reset-ledger\` to record the ledger found now`,
      { path: file },
    );
  }
  return { ledger_id, path, recorded_at };
}

/** Written whole and renamed into place: a crash leaves the old record or the new, never half. */
function writeIdentityRecord(file: string, record: LedgerIdentityRecord): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, file);
}
