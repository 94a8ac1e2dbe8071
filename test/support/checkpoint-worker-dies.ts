// A checkpoint thread that answers "ready" and then fails, for src/ledger/sqlite.test.ts: the
// ledger must move its checkpoints to the event loop and say so once.
import { parentPort } from "node:worker_threads";

parentPort?.once("message", () => {
  parentPort?.postMessage({ type: "ready" });
  setTimeout(() => {
    throw new Error("the checkpoint thread failed on purpose");
  }, 50);
});
