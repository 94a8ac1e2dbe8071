// A gateway process meeting a broken state directory: opens the ledger and prints
// `{"opened": true}` or `{"opened": false, "code": …}`. With a go file, it then writes
// `<go file>.ready`, waits (bounded, 20 s) for the go file, and reserves and confirms 200 duties,
// printing `{"settled": n}` or the error code it met.
// Usage: bun test/support/ledger-open-and-reserve.ts <ledger path> [go file]
import { existsSync, writeFileSync, writeSync } from "node:fs";
import { GatewayError } from "../../src/errors.ts";
import { openSqliteLedger, type SqliteDutyLedger } from "../../src/ledger/sqlite.ts";

const [path, goFile] = process.argv.slice(2);
if (!path) throw new Error("usage: ledger-open-and-reserve.ts <ledger> [go file]");
const say = (value: unknown) => writeSync(1, JSON.stringify(value) + "\n");
const codeOf = (error: unknown) => (error instanceof GatewayError ? error.code : String(error));
let ledger: SqliteDutyLedger;
try {
  ledger = await openSqliteLedger({ path, retentionDays: 30 });
} catch (error) {
  say({ opened: false, code: codeOf(error) });
  process.exit(0);
}
say({ opened: true });
if (goFile) {
  writeFileSync(`${goFile}.ready`, "");
  const until = Date.now() + 20_000;
  while (!existsSync(goFile) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
  let settled = 0;
  try {
    for (; settled < 200; settled++) {
      const check = { constraint: "separate:changes.duty:20:1", param: "change", key: `k${settled}`, duties: ["submit_change", "approve_change"] };
      const r = await ledger.reserve({ checks: [check], duty: "submit_change", sub: "alice", at: Date.now() });
      if (r.ok) await ledger.confirm(r.reservation);
    }
    say({ settled });
  } catch (error) {
    say({ settled, code: codeOf(error) });
  }
}
await ledger.close();
