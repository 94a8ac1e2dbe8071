// A gateway process killed between forwarding and the upstream's answer, on the PostgreSQL ledger:
// opens it, reserves the request given as JSON, prints the reservation, and sends itself SIGKILL,
// so nothing settles the reservation or closes the ledger.
// Usage: bun test/support/ledger-reserve-and-die-postgres.ts <url> <password file> <options JSON> <reserve request JSON>
import { readFileSync, writeSync } from "node:fs";
import { openPostgresLedger } from "../../src/ledger/postgres.ts";

const [url, passwordFile, optionsJson, requestJson] = process.argv.slice(2);
if (!url || !passwordFile || !optionsJson || !requestJson) throw new Error("usage: ledger-reserve-and-die-postgres.ts <url> <password file> <options JSON> <request JSON>");
const ledger = await openPostgresLedger({ url, password: readFileSync(passwordFile, "utf8").trim(), ...JSON.parse(optionsJson) });
const result = await ledger.reserve(JSON.parse(requestJson));
if (!result.ok) throw new Error(`reserve refused: ${JSON.stringify(result.conflict)}`);
writeSync(1, JSON.stringify({ reservation: result.reservation, boot: ledger.boot }) + "\n");
process.kill(process.pid, "SIGKILL");
