// The shared ledger's URL: parsed and checked without loading the PostgreSQL client, so the
// config loader can report a bad URL with its key path.
import { GatewayError } from "../errors.ts";

/** Where a URL points, without credentials: safe to log. */
export function redactLedgerUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "(an unparsable URL)";
  }
}

/** Where a `postgres://` URL points. */
export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  shown: string;
}

/** Parses a `postgres://` URL; throws `LEDGER_BAD_OPTIONS` (the config reports the same rules with its key path). */
export function parsePostgresUrl(url: string): PostgresTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new GatewayError("LEDGER_BAD_OPTIONS", `\`${redactLedgerUrl(url)}\` is not a URL`);
  }
  const shown = redactLedgerUrl(url);
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") throw new GatewayError("LEDGER_BAD_OPTIONS", `\`${shown}\` is not a postgres:// URL`);
  if (parsed.password) throw new GatewayError("LEDGER_BAD_OPTIONS", "the ledger URL must not carry a password; use `password_file` or `password_env`");
  if (parsed.search || parsed.hash) throw new GatewayError("LEDGER_BAD_OPTIONS", `\`${shown}\` must not carry a query or a fragment`);
  if (!parsed.hostname) throw new GatewayError("LEDGER_BAD_OPTIONS", `\`${shown}\` names no host`);
  if (!parsed.username) throw new GatewayError("LEDGER_BAD_OPTIONS", `\`${shown}\` names no user (postgres://USER@HOST:PORT/DATABASE)`);
  const user = decodeURIComponent(parsed.username);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, "")) || user;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  return { host, port: parsed.port ? Number(parsed.port) : 5432, user, database, shown };
}

