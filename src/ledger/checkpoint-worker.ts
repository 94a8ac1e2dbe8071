// The SQLite ledger's WAL checkpoints on a thread of their own (started by checkpointer.ts). A
// checkpoint copies the WAL into the database file and waits for its fsyncs: on a shared disk up
// to hundreds of milliseconds, which here hold no request. The thread has its own connection to
// the file; PASSIVE checkpoints never wait for, nor block, the ledger's writes.
//
// Between checkpoints the thread sleeps in Atomics.wait on the shared state, for `everyMs` or
// until the ledger asks it to stop.
//
// An entrypoint of the compiled binary (scripts/build.ts), so that the executable carries it.
import { parentPort } from "node:worker_threads";
import { CHECKPOINT_STATE, type CheckpointerReply, type CheckpointerRequest } from "./checkpointer.ts";
import { openSqlDatabase, type SqlDatabase } from "./sqlite-driver.ts";

const port = parentPort;

function reply(message: CheckpointerReply): void {
  port?.postMessage(message);
}

function checkpoints(db: SqlDatabase, state: Int32Array, everyMs: number): void {
  let seen = Atomics.load(state, CHECKPOINT_STATE.wake);
  while (Atomics.load(state, CHECKPOINT_STATE.stop) === 0) {
    Atomics.wait(state, CHECKPOINT_STATE.wake, seen, everyMs);
    seen = Atomics.load(state, CHECKPOINT_STATE.wake);
    if (Atomics.load(state, CHECKPOINT_STATE.stop) !== 0) break;
    // Not a prepared statement: with none alive the close below really closes (bun:sqlite defers
    // it while statements live). Busy (another process's checkpoint) or failing: the next one
    // retries, and a failing file shows in the ledger's own calls.
    try { db.exec("PRAGMA wal_checkpoint(PASSIVE)"); } catch { /* the next one retries */ }
  }
}

async function run(request: Extract<CheckpointerRequest, { type: "start" }>): Promise<void> {
  let db;
  try {
    db = await openSqlDatabase(request.path);
  } catch (error) {
    reply({ type: "failed", reason: error instanceof Error ? error.message : String(error) });
    return;
  }
  try {
    reply({ type: "ready" });
    checkpoints(db, request.state, request.everyMs);
  } finally {
    try { db.close(); } catch { /* closing anyway */ }
  }
  // The parent terminates the thread on this answer.
  reply({ type: "stopped" });
}

port?.once("message", (message: CheckpointerRequest) => {
  void run(message).catch((error: unknown) => reply({ type: "failed", reason: error instanceof Error ? error.message : String(error) }));
});
