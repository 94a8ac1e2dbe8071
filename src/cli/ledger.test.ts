import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteLedger, type PendingReservation, type Reservation } from "../ledger/mod.ts";
import { main } from "./main.ts";
import { EXIT, memoryIo } from "./io.ts";

const root = mkdtempSync(join(tmpdir(), "dutygate-ledger-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

const DUTIES = ["submit_change", "approve_change"];
const check = (key: string) => ({ constraint: "separate:changes.duty:20:1", param: "change", key, duties: DUTIES });

/**
 * A state directory whose ledger holds one reservation per key, left by a gateway that stopped
 * before the upstream answered (so their outcome is unknown), and `openLedger` for more.
 */
async function stateDirWithUnknown(keys: string[], sub = "alice"): Promise<{ stateDir: string; path: string; left: Reservation[] }> {
  const stateDir = join(root, `state-${++dirs}`);
  const path = join(stateDir, "ledger.sqlite");
  const ledger = await openSqliteLedger({ path, retentionDays: 30 });
  const left: Reservation[] = [];
  for (const key of keys) {
    const r = await ledger.reserve({ checks: [check(key)], duty: "submit_change", sub, at: Date.now() });
    if (!r.ok) throw new Error("reserve refused");
    left.push(r.reservation);
  }
  await ledger.close();
  return { stateDir, path, left };
}

async function run(argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout.join("\n"), err: io.stderr.join("\n") };
}

async function approveAllowed(path: string, key: string): Promise<boolean> {
  const ledger = await openSqliteLedger({ path, retentionDays: 30 });
  try {
    return (await ledger.reserve({ checks: [check(key)], duty: "approve_change", sub: "alice", at: Date.now() })).ok;
  } finally {
    await ledger.close();
  }
}

describe("gateway ledger", () => {
  test("list-pending shows a reservation a stopped gateway left, as of unknown outcome (text and json)", async () => {
    const { stateDir, left } = await stateDirWithUnknown(["42"]);
    const text = await run(["ledger", "list-pending", "--state-dir", stateDir]);
    expect(text.code).toBe(EXIT.ok);
    const lines = text.out.split("\n");
    expect(lines[0]).toStartWith(`${left[0]!.id}  unknown    alice submit_change on \`42\` of separate:changes.duty:20:1 at `);
    expect(lines[1]).toBe("1 pending: 1 of unknown outcome (they count as performed until confirmed or released), 0 in flight");
    const json = await run(["ledger", "list-pending", "--state-dir", stateDir, "--format", "json"]);
    expect(JSON.parse(json.out)).toEqual([{ ...left[0]!, state: "unknown" } satisfies PendingReservation]);
  });

  test("confirm records the reservation as performed; release as not performed", async () => {
    const { stateDir, path, left } = await stateDirWithUnknown(["42", "43"]);
    const confirmed = await run(["ledger", "confirm", left[0]!.id, "--state-dir", stateDir]);
    expect(confirmed).toMatchObject({ code: EXIT.ok, err: "" });
    expect(confirmed.out).toStartWith(`${left[0]!.id} confirmed: recorded as performed (alice submit_change on \`42\``);
    const released = await run(["ledger", "release", "--ledger", path, left[1]!.id]);
    expect(released.out).toStartWith(`${left[1]!.id} released: recorded as not performed`);
    expect((await run(["ledger", "list-pending", "--ledger", path])).out).toBe("no reservations pending");
    expect(await approveAllowed(path, "42")).toBe(false);
    expect(await approveAllowed(path, "43")).toBe(true);
  });

  test("a reservation that may still be in flight is settled only with --force", async () => {
    const { path } = await stateDirWithUnknown([]);
    const serving = await openSqliteLedger({ path, retentionDays: 30 });
    try {
      const r = await serving.reserve({ checks: [check("42")], duty: "submit_change", sub: "alice", at: Date.now() });
      if (!r.ok) throw new Error("reserve refused");
      expect((await run(["ledger", "list-pending", "--ledger", path])).out).toContain(`${r.reservation.id}  in_flight`);
      const refused = await run(["ledger", "release", r.reservation.id, "--ledger", path]);
      expect(refused.code).toBe(EXIT.usage);
      expect(refused.err).toStartWith("error[LEDGER_RESERVATION_IN_FLIGHT]: reservation");
      expect((await serving.pending()).map((p) => p.id)).toEqual([r.reservation.id]);
      expect((await run(["ledger", "release", r.reservation.id, "--ledger", path, "--force"])).code).toBe(EXIT.ok);
      expect(await serving.pending()).toEqual([]);
    } finally {
      await serving.close();
    }
  });

  test("an unknown id settles nothing, not even the valid ids beside it", async () => {
    const { stateDir, left } = await stateDirWithUnknown(["42"]);
    const result = await run(["ledger", "release", left[0]!.id, "no-such-id\u001b[2J", "--state-dir", stateDir]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.err).toBe("error[LEDGER_RESERVATION_NOT_FOUND]: no pending reservation `no-such-id?[2J` (settled already, or a typo; see `gateway ledger list-pending`)");
    expect((await run(["ledger", "list-pending", "--state-dir", stateDir])).out).toContain(left[0]!.id);
  });

  test("user input in the listing is masked: a sub cannot drive the operator's terminal", async () => {
    const { stateDir } = await stateDirWithUnknown(["4\u001b]0;x\u00072"], "mallory\u001b[31m");
    const { out } = await run(["ledger", "list-pending", "--state-dir", stateDir]);
    expect(out.split("\n").filter((line) => /[\u0000-\u001f\u007f]/.test(line))).toEqual([]);
    expect(out).toContain("mallory?[31m submit_change on `4?]0;x?2`");
  });

  test.each([
    [["ledger", "list-pending"], "error: name the ledger with exactly one of `--state-dir DIR`, `--ledger FILE` or `--config FILE`"],
    [["ledger", "list-pending", "--state-dir", "a", "--ledger", "b"], "error: name the ledger with exactly one of `--state-dir DIR`, `--ledger FILE` or `--config FILE`"],
    [["ledger", "forget", "--state-dir", "a"], "error: usage: gateway ledger list-pending|confirm|release … (--state-dir DIR | --ledger FILE | --config FILE)"],
    [["ledger", "release", "--state-dir", "STATE"], "error: release needs one or more reservation ids (see `gateway ledger list-pending`)"],
  ])("%j is a usage error", async (argv, message) => {
    const stateDir = (await stateDirWithUnknown([])).stateDir;
    const result = await run(argv.map((a) => (a === "STATE" ? stateDir : a)));
    expect(result).toEqual({ code: EXIT.usage, out: "", err: message });
  });

  test("a state directory without a ledger is an error, and no ledger is created there", async () => {
    const empty = join(root, "no-ledger");
    const result = await run(["ledger", "list-pending", "--state-dir", empty]);
    expect(result).toEqual({ code: EXIT.usage, out: "", err: `error[LEDGER_NOT_FOUND]: no duty ledger at \`${join(empty, "ledger.sqlite")}\`` });
    expect(existsSync(empty)).toBe(false);
  });
});
