// A gateway process killed between forwarding and the upstream's answer: opens the ledger,
// reserves the request given as JSON, prints the reservation, and sends itself SIGKILL, so
// nothing settles the reservation or closes the ledger.
// Usage: bun test/support/ledger-reserve-and-die.ts <ledger path> <options JSON> <reserve request JSON>
import { writeSync } from "node:fs";
import { openSqliteLedger } from "../../src/ledger/sqlite.ts";

const [path, optionsJson, requestJson] = process.argv.slice(2);
if (!path || !optionsJson || !requestJson) throw new Error("usage: ledger-reserve-and-die.ts <ledger> <options JSON> <request JSON>");
const ledger = await openSqliteLedger({ path, ...JSON.parse(optionsJson) });
const result = await ledger.reserve(JSON.parse(requestJson));
if (!result.ok) throw new Error(`reserve refused: ${JSON.stringify(result.conflict)}`);
writeSync(1, JSON.stringify(result.reservation) + "\n");
process.kill(process.pid, "SIGKILL");
