import { describe, expect, test } from "bun:test";
import { applyHistory, denyForSeparation, describeSeparationConflict, findSeparationConflict, type SeparationConflict, type SeparationWording } from "./separation.ts";
import type { Decision, LedgerFact, SeparationCheck } from "./types.ts";

const CONSTRAINT = "separate:changes.duty:20:1";
const DUTIES = ["submit_change", "approve_change", "deploy_change"];
const check = (key = "42", over: Partial<SeparationCheck> = {}): SeparationCheck => ({ constraint: CONSTRAINT, at: "changes.duty:20:1", param: "change", key, duties: DUTIES, ...over });
const fact = (over: Partial<LedgerFact> = {}): LedgerFact => ({ constraint: CONSTRAINT, key: "42", duty: "submit_change", sub: "alice", at: Date.UTC(2026, 10, 20, 10, 3, 59, 999), ...over });

describe("findSeparationConflict: the one rule", () => {
  const cases: Array<[string, LedgerFact[], boolean]> = [
    ["another duty of the separation, same person and key: conflict", [fact()], true],
    ["the same duty again: no conflict (repeating one's own step)", [fact({ duty: "approve_change" })], false],
    ["another person", [fact({ sub: "bob" })], false],
    ["another key", [fact({ key: "43" })], false],
    ["another constraint", [fact({ constraint: "separate:other.duty:1:1" })], false],
    ["a duty the separation no longer names (the policy changed under the ledger)", [fact({ duty: "close_change" })], false],
    ["the first conflicting fact is the one reported", [fact({ sub: "bob" }), fact({ duty: "deploy_change" }), fact()], true],
  ];
  test.each(cases)("%s", (_name, facts, conflicts) => {
    const found = findSeparationConflict([check()], "alice", "approve_change", facts);
    expect(found !== null).toBe(conflicts);
    if (found) expect(found).toEqual({ check: check(), fact: facts.find((f) => f.sub === "alice" && f.duty !== "approve_change")! });
  });

  test("a conflict names the check it broke, with its param", () => {
    const other = check("7", { constraint: "separate:tickets.duty:3:1", param: "ticket" });
    const found = findSeparationConflict([check(), other], "alice", "approve_change", [fact({ constraint: other.constraint, key: "7" })]);
    expect(found?.check).toEqual(other);
  });
});

describe("describeSeparationConflict: one message, worded for its reader", () => {
  const conflict = (over: Partial<LedgerFact> = {}, param = "change"): SeparationConflict => ({ check: check(over.key ?? "42", { param }), fact: fact(over) });
  const cases: Array<[string, SeparationConflict, SeparationWording, string]> = [
    ["to the caller, with the time", conflict(), { reader: "caller", showTime: true }, "you performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person"],
    ["to an operator, naming the person", conflict(), { reader: "operator", showTime: true }, "alice performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person"],
    ["a given history has no real time", conflict(), { reader: "operator" }, "alice performed submit_change on change `42`; approve_change needs another person"],
    ["hidden details name neither the earlier duty nor its time", conflict(), { reader: "caller", showTime: true, hideDetails: true }, "approve_change on change `42` needs another person than an earlier step"],
    ["the param name comes from the check", conflict({ key: "7" }, "ticket"), { reader: "caller", showTime: true }, "you performed submit_change on ticket `7` at 2026-11-20T10:03Z; approve_change needs another person"],
    ["control characters and backticks in the key are masked", conflict({ key: "4`2\n" }), { reader: "caller", hideDetails: true }, "approve_change on change `4?2?` needs another person than an earlier step"],
    ["a long key is cut", conflict({ key: "x".repeat(100) }), { reader: "caller", hideDetails: true }, `approve_change on change \`${"x".repeat(64)}…\` needs another person than an earlier step`],
    ["an impossible time does not throw", conflict({ at: Number.NaN }), { reader: "caller", showTime: true }, "you performed submit_change on change `42` at an unknown time; approve_change needs another person"],
    ["a person's name is user input too", conflict({ sub: "eve\u001b[2J" }), { reader: "operator" }, "eve?[2J performed submit_change on change `42`; approve_change needs another person"],
  ];
  test.each(cases)("%s", (_name, c, wording, expected) => {
    expect(describeSeparationConflict(c, "approve_change", wording)).toBe(expected);
  });

  test("hidden messages never contain the earlier duty or the person", () => {
    for (const reader of ["caller", "operator"] as const) {
      const message = describeSeparationConflict(conflict(), "approve_change", { reader, showTime: true, hideDetails: true });
      expect(message).not.toContain("submit_change");
      expect(message).not.toContain("alice");
    }
  });
});

describe("denyForSeparation and applyHistory", () => {
  const allowed: Decision = {
    allow: true, code: "ALLOW", duty: "approve_change", decidedBy: "grant:changes.duty:11:1", branch: [], message: "allowed",
    reasons: [{ rule: "grant:changes.duty:11:1", kind: "grant", at: "changes.duty:11:1", held: true, why: "role reviewer" }],
    separations: [check()], ledger: [],
  };

  test("the denial is decided by the constraint and carries the message as its reason", () => {
    const d = denyForSeparation(allowed, { check: check(), fact: fact() }, [fact()], { reader: "caller", showTime: true });
    expect([d.allow, d.code, d.decidedBy]).toEqual([false, "DENY_SOD_HISTORY", CONSTRAINT]);
    expect(d.message).toBe("you performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person");
    expect(d.reasons.at(-1)).toEqual({ rule: CONSTRAINT, kind: "separate", at: "changes.duty:20:1", held: true, why: d.message });
    expect(d.ledger).toEqual([fact()]);
  });

  test("a given history is judged by the same rule, worded for an operator without a time", () => {
    const d = applyHistory(allowed, "alice", [{ duty: "submit_change", sub: "alice" }], Date.UTC(2026, 10, 20, 12));
    expect(d.code).toBe("DENY_SOD_HISTORY");
    expect(d.message).toBe("alice performed submit_change on change `42`; approve_change needs another person");
    expect(applyHistory(allowed, "alice", [{ duty: "submit_change", sub: "alice", key: "43" }], 0).allow).toBe(true);
    expect(applyHistory(allowed, "alice", [{ duty: "submit_change", sub: "bob" }], 0).allow).toBe(true);
  });
});
