// A gateway's audit writer killed between a request's decision and its outcome: it writes an
// allowed decision (durable before forwarding), queues the outcome, and dies by SIGKILL before
// the outcome's batch is written. Prints `{"seq": <decision seq>, "jwks": <its public keys>}`.
// Usage: bun test/support/audit-decide-and-die.ts DIR
import { writeSync } from "node:fs";
import { openAuditLog } from "../../src/audit/mod.ts";
import { logOptions, makeSigner } from "./audit-log.ts";

const dir = process.argv[2]!;
const signer = await makeSigner("gw-crashed");
const log = await openAuditLog(logOptions(dir, signer.signingKey, { checkpointEvery: 3 }));
for (let i = 0; i < 2; i++) {
  const { seq } = await log.append({ decision: "allow", request_id: `before-${i}` });
  await log.append({ type: "outcome", decision_seq: seq, request_id: `before-${i}`, status: 200 });
}
const { seq } = await log.append({ decision: "allow", request_id: "cut-off" });
// Deferred: written with the next batch or 20 ms later — after this process is gone.
void log.append({ type: "outcome", decision_seq: seq, request_id: "cut-off", status: 200 }, { deferred: true });
// Synchronously, in this turn: the deferred outcome never gets its turn.
writeSync(1, JSON.stringify({ seq, jwks: signer.jwks }) + "\n");
process.kill(process.pid, "SIGKILL");
