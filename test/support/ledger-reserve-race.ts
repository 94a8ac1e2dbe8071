// A second gateway process for the cross-process race test. Both racers read a common start time
// from the start file and then, for `durationMs`, hammer the key of the current 2 ms time slot:
// the two processes reserve the same key at the same moment, over and over. Prints JSON
// `{ won: keys this process won at least once, attempted: keys it tried }`.
// Usage: bun test/support/ledger-reserve-race.ts <ledger path> <start file> <duty> <sub> <durationMs>
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { openSqliteLedger } from "../../src/ledger/sqlite.ts";

const [path, startFile, duty, sub, durationText] = process.argv.slice(2);
if (!path || !startFile || !duty || !sub || !durationText) throw new Error("usage: ledger-reserve-race.ts <ledger> <start file> <duty> <sub> <durationMs>");
const ledger = await openSqliteLedger({ path, retentionDays: 30 });
const duties = ["submit_change", "approve_change", "deploy_change"];
const SLOT_MS = 2;
// Tell the test this process is ready, wait (bounded, 20 s) for the start file, then for the common start time it holds.
writeFileSync(`${startFile}.${duty}.ready`, "");
const waitUntil = Date.now() + 20_000;
while (!existsSync(startFile)) {
  if (Date.now() > waitUntil) throw new Error("start file never appeared");
  await new Promise((resolve) => setTimeout(resolve, 2));
}
const start = Number(readFileSync(startFile, "utf8"));
while (Date.now() < start) await new Promise((resolve) => setTimeout(resolve, 1));
const end = start + Number(durationText);
const won = new Set<number>();
const attempted = new Set<number>();
for (let now = Date.now(); now < end; now = Date.now()) {
  const key = Math.floor((now - start) / SLOT_MS);
  attempted.add(key);
  const result = await ledger.reserve({ checks: [{ constraint: "separate:race.duty:1:1", param: "change", key: String(key), duties }], duty, sub, at: now });
  if (result.ok) {
    won.add(key);
    await ledger.confirm(result.reservation);
  }
}
await ledger.close();
console.log(JSON.stringify({ won: [...won], attempted: [...attempted] }));
