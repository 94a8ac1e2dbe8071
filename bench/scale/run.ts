// Scale benchmark: what dutygate does with more than one process.
//
//   npm run bench:scale -- [--sections workers,ledger] [--rounds 2] [--duration 6] [--connections 50] [--no-pin]
//
// Sections (each prints its own table, stating the machine and the load):
//   workers  requests/s, latency and CPU µs per request of `gateway serve` with 1 and 2 workers
//            (a real supervisor and worker processes), scaling efficiency (bench/scale/workers.ts)
//   ledger   duty-ledger reserve+confirm latency p50/p99, SQLite and PostgreSQL on loopback
//            (bench/scale/ledger.ts)
// Every load run is bounded in time (`--duration`, ≤ 60 s) and uses loopback only; every process
// started is stopped by its PID.
import { flag } from "../proxy/lib.ts";
import { runLedgerSection } from "./ledger.ts";
import { runWorkersSection } from "./workers.ts";

const SECTIONS: Record<string, (() => Promise<string[]>) | null> = {
  workers: runWorkersSection,
  ledger: runLedgerSection,
};

const wanted = flag("sections", Object.keys(SECTIONS).join(",")).split(",").filter((s) => s !== "");
for (const name of wanted) {
  if (!(name in SECTIONS)) {
    console.error(`unknown section \`${name}\` (${Object.keys(SECTIONS).join(", ")})`);
    process.exit(2);
  }
}
for (const name of wanted) {
  const section = SECTIONS[name];
  if (section === null) {
    console.log(`\n== ${name}: not available yet in this build\n`);
    continue;
  }
  console.log(`\n== ${name}\n`);
  for (const line of await section()) console.log(line);
}
