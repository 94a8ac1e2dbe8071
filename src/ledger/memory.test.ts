import { runDutyLedgerConformance } from "./ledger.case.ts";
import { MemoryDutyLedger } from "./memory.ts";

runDutyLedgerConformance("memory", {
  open: async (options) => new MemoryDutyLedger(options),
});
