import { describe, expect, test } from "bun:test";
import type { LedgerFact } from "../../dsl/mod.ts";
import { describeConflict } from "./describe.ts";

const fact = (key: string, at = Date.UTC(2026, 10, 20, 10, 3, 59, 999)): LedgerFact =>
  ({ constraint: "separate:changes.duty:20:1", key, duty: "submit_change", sub: "alice", at });

describe("describeConflict", () => {
  const cases: Array<[string, LedgerFact, string, boolean, string]> = [
    ["details", fact("42"), "change", false, "you performed submit_change on change `42` at 2026-11-20T10:03Z; approve_change needs another person"],
    ["hidden details name neither the earlier duty nor its time", fact("42"), "change", true, "approve_change on change `42` needs another person than an earlier step"],
    ["the param name comes from the check", fact("7"), "ticket", false, "you performed submit_change on ticket `7` at 2026-11-20T10:03Z; approve_change needs another person"],
    ["control characters and backticks in the key are masked", fact("4`2\n"), "change", true, "approve_change on change `4?2?` needs another person than an earlier step"],
    ["a long key is cut", fact("x".repeat(100)), "change", true, `approve_change on change \`${"x".repeat(64)}…\` needs another person than an earlier step`],
    ["an impossible time does not throw", fact("42", Number.NaN), "change", false, "you performed submit_change on change `42` at an unknown time; approve_change needs another person"],
  ];
  test.each(cases)("%s", (_name, conflict, param, hideDetails, expected) => {
    expect(describeConflict(conflict, "approve_change", { param, hideDetails })).toBe(expected);
  });

  test("hidden messages never contain the earlier duty or the person", () => {
    const message = describeConflict(fact("42"), "approve_change", { param: "change", hideDetails: true });
    expect(message).not.toContain("submit_change");
    expect(message).not.toContain("alice");
  });
});
