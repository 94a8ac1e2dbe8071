// The SQLite ledger's WAL checkpoints on a thread of their own (started by checkpointer.ts). A
// checkpoint copies the WAL into the database file and waits for its fsyncs: on a shared disk up
// to hundreds of milliseconds, which here hold no request. The thread has its own connection to
// the file; PASSIVE checkpoints never wait for, nor block, the ledger's writes.
//
// An entrypoint of the compiled binary (scripts/build.ts), so that the executable carries it.
import { parentPort } from "node:worker_threads";
import { openSqlDatabase, type SqlDatabase } from "./sqlite-driver.ts";
import type { CheckpointerReply, CheckpointerRequest } from "./checkpointer.ts";

const port = parentPort;
let db: SqlDatabase | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

function reply(message: CheckpointerReply): void {
  port?.postMessage(message);
}

function start(path: string, everyMs: number): void {
  void openSqlDatabase(path).then((opened) => {
    db = opened;
    const checkpoint = opened.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    timer = setInterval(() => {
      // Busy (another checkpoint, a file being closed) or failing: the next tick retries, and a
      // failing file shows in the ledger's own calls.
      try { checkpoint.get(); } catch { /* the next tick retries */ }
    }, everyMs);
    reply({ type: "ready" });
  }, (error: unknown) => {
    reply({ type: "failed", reason: error instanceof Error ? error.message : String(error) });
  });
}

function stop(): void {
  clearInterval(timer);
  try { db?.close(); } catch { /* closing anyway */ }
  db = undefined;
  // The parent terminates the thread on this answer.
  reply({ type: "stopped" });
}

port?.on("message", (message: CheckpointerRequest) => {
  if (message.type === "start") start(message.path, message.everyMs);
  else stop();
});
