// `gateway ledger list-pending|confirm|release`: what an operator needs after a gateway died between
// forwarding a guarded request and the upstream's answer. Such a reservation counts as performed
// (the gateway fails closed) until someone who checked the upstream says whether it was: `confirm`
// records it as a fact, `release` drops it. Works on the ledger file (or the fleet's PostgreSQL
// ledger a config names) while gateways serve from it.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import type { GatewayConfig } from "../config/mod.ts";
import { openSqliteLedger, showKey, type DutyLedger, type PendingReservation } from "../ledger/mod.ts";
import { EXIT, type Io } from "./io.ts";

export const LEDGER_ACTIONS = ["list-pending", "confirm", "release"] as const;
export type LedgerAction = (typeof LEDGER_ACTIONS)[number];

/** Parameters of `gateway ledger`. */
export interface LedgerCommandParams {
  action: LedgerAction;
  /** The ledger file (`--ledger`, or `ledger.sqlite` in `--state-dir`); unused with `config`. */
  path: string;
  /** `--config`: the ledger this gateway config names (its PostgreSQL `url`, or its `path`). */
  config?: GatewayConfig;
  /** Reservation ids to confirm or release. */
  ids: readonly string[];
  /** Also settle reservations that may still be in flight. */
  force?: boolean;
  format?: "text" | "json";
  /** "Now" for telling in-flight reservations from those of unknown outcome (tests); default the clock. */
  now?: number;
}

/** The ledger file `--state-dir`, `--ledger` or `--config` names; exactly one must be given (`--config` returns ""). */
export function ledgerPathOf(flags: { stateDir?: string; ledger?: string; config?: string }): string {
  if ([flags.stateDir, flags.ledger, flags.config].filter((f) => f !== undefined).length !== 1) {
    throw new GatewayError("USAGE", "name the ledger with exactly one of `--state-dir DIR`, `--ledger FILE` or `--config FILE`");
  }
  if (flags.config !== undefined) return "";
  return flags.ledger ?? join(flags.stateDir!, DEFAULTS.ledger.file);
}

/** Opens the ledger the parameters name; a file that does not exist is LEDGER_NOT_FOUND (never created). */
async function openNamedLedger(params: LedgerCommandParams): Promise<DutyLedger> {
  const pg = params.config?.ledger.postgres;
  if (pg) {
    const { openPostgresFromConfig } = await import("../gateway/mod.ts");
    return openPostgresFromConfig(pg, DEFAULTS.ledger.retentionDays);
  }
  const path = params.config ? params.config.ledger.path : params.path;
  // Opening would create an empty ledger: a mistyped path must not look like "nothing pending".
  if (!existsSync(path)) throw new GatewayError("LEDGER_NOT_FOUND", `no duty ledger at \`${path}\``, { path });
  // No checkpoint timer: the command is over in milliseconds, and its close checkpoints.
  return openSqliteLedger({ path, retentionDays: DEFAULTS.ledger.retentionDays, checkpointEveryMs: 0 });
}

export async function runLedgerCommand(params: LedgerCommandParams, io: Io): Promise<number> {
  if (params.action === "list-pending" && params.ids.length > 0) throw new GatewayError("USAGE", "list-pending takes no reservation ids");
  if (params.action !== "list-pending" && params.ids.length === 0) throw new GatewayError("USAGE", `${params.action} needs one or more reservation ids (see \`gateway ledger list-pending\`)`);
  const ledger = await openNamedLedger(params);
  try {
    const now = params.now ?? Date.now();
    const pending = await ledger.pending(now);
    if (params.action === "list-pending") {
      if (params.format === "json") io.out(JSON.stringify(pending, null, 2));
      else for (const line of renderPending(pending)) io.out(line);
      return EXIT.ok;
    }
    return await settle(ledger, pending, params, io);
  } finally {
    await ledger.close();
  }
}

/** Checks every id first, so that a typo settles nothing rather than half the list. */
async function settle(ledger: DutyLedger, pending: readonly PendingReservation[], params: LedgerCommandParams, io: Io): Promise<number> {
  const chosen = params.ids.map((id) => {
    const reservation = pending.find((p) => p.id === id);
    if (!reservation) throw new GatewayError("LEDGER_RESERVATION_NOT_FOUND", `no pending reservation \`${showKey(id)}\` (settled already, or a typo; see \`gateway ledger list-pending\`)`, { id });
    if (reservation.state === "in_flight" && !params.force) {
      throw new GatewayError(
        "LEDGER_RESERVATION_IN_FLIGHT",
        `reservation \`${id}\` may still be in flight: its gateway process runs and it is younger than the reservation TTL; its answer will settle it (\`--force\` settles it anyway)`,
        { id },
      );
    }
    return reservation;
  });
  for (const reservation of chosen) {
    if (params.action === "confirm") await ledger.confirm(reservation);
    else await ledger.release(reservation);
    const verdict = params.action === "confirm" ? "confirmed: recorded as performed" : "released: recorded as not performed";
    io.out(`${reservation.id} ${verdict} (${describeReservation(reservation)})`);
  }
  return EXIT.ok;
}

function describeReservation(r: PendingReservation): string {
  const keys = r.checks.map((c) => `\`${showKey(c.key)}\` of ${c.constraint}`).join(", ");
  return `${showKey(r.sub)} ${r.duty} on ${keys} at ${new Date(r.at).toISOString()}`;
}

/** One line per reservation, then a summary. User input (sub, keys) is masked. */
export function renderPending(pending: readonly PendingReservation[]): string[] {
  if (pending.length === 0) return ["no reservations pending"];
  const unknown = pending.filter((p) => p.state === "unknown").length;
  return [
    ...pending.map((p) => `${p.id}  ${p.state.padEnd(9)}  ${describeReservation(p)}`),
    `${pending.length} pending: ${unknown} of unknown outcome (they count as performed until confirmed or released), ${pending.length - unknown} in flight`,
  ];
}
