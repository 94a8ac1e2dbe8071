// The SQLite duty ledger under Deno (node:sqlite): its WAL checkpoints run on a thread of their
// own there too, and close() ends it (Deno's test sanitizers fail a test that leaves it running).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteLedger } from "../../src/ledger/sqlite.ts";
import { openSqlDatabase } from "../../src/ledger/sqlite-driver.ts";

const root = mkdtempSync(join(tmpdir(), "dutygate-deno-ledger-"));
after(() => rmSync(root, { recursive: true, force: true }));
const CHECK = { constraint: "separate:changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change"] };

test("ledger on node:sqlite: the WAL is merged into the file by the checkpoint thread while the event loop is blocked", async () => {
  const path = join(root, "ledger.sqlite");
  const ledger = await openSqliteLedger({ path, retentionDays: 30, checkpointEveryMs: 20 });
  try {
    assert.equal(ledger.driver, "node:sqlite");
    assert.equal(ledger.checkpoints, "thread");
    // Only microtasks run from here to the count, never a timer of this thread.
    for (let i = 0; i < 100; i++) {
      const r = await ledger.reserve({ checks: [{ ...CHECK, key: `k${i}` }], duty: "submit_change", sub: "alice", at: i + 1 });
      if (!r.ok) throw new Error("reserve refused");
      await ledger.confirm(r.reservation);
    }
    assert.equal((await ledger.reserve({ checks: [{ ...CHECK, key: "k7" }], duty: "approve_change", sub: "alice", at: 500 })).ok, false);
    const until = performance.now() + 1500;
    while (performance.now() < until) { /* the event loop is blocked */ }
    // The database file alone, without its WAL: what the checkpoints merged.
    const copy = join(root, "alone.sqlite");
    copyFileSync(path, copy);
    const db = await openSqlDatabase(copy);
    try {
      assert.equal(Number(db.prepare("SELECT count(*) AS n FROM duty_entries").get()?.n), 100);
    } finally {
      db.close();
    }
  } finally {
    await ledger.close();
  }
  assert.equal(ledger.checkpoints, "none");
});
