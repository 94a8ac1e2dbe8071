// The checker, table-driven: every diagnostic code the language can emit (lexer, parser and
// checker), each with its exact `file:line:col`, its message and its help where it has one.
import { test, expect, describe } from "bun:test";
import { loadPolicy } from "./mod.ts";
import type { Diagnostic } from "./mod.ts";

const NOW = Date.UTC(2026, 0, 1);
/** Eight lines; rows add their declarations from line 9 on. */
const HEAD = `principal {
  sub: string
  roles: set<role>
  mfa: bool
  team: string
}
role developer, reviewer, deployer
upstream app
`;

function check(text: string, now = NOW): { diagnostics: Diagnostic[]; ok: boolean } {
  const r = loadPolicy([{ path: "p.duty", text }], { now });
  return { diagnostics: r.diagnostics, ok: r.policy !== null };
}

const where = (d: Diagnostic) => `${d.code} ${d.span.file}:${d.span.line}:${d.span.col}`;

describe("regressions", () => {
  test("W_DUTY_NEVER_GRANTED cascades from a grant with an error: a duty whose only grant is broken gets the error, not the warning", () => {
    const r = check(HEAD + "duty d GET /d -> app\ngrant reviwer d\n");
    expect(r.diagnostics.map(where)).toEqual(["E_UNKNOWN_ROLE p.duty:10:7"]);
    // A duty nobody writes a grant for still gets the warning.
    expect(check(HEAD + "duty d GET /d -> app\n").diagnostics.map(where)).toEqual(["W_DUTY_NEVER_GRANTED p.duty:9:1"]);
  });

  test("E_OVERLAPPING_DUTY across channels: the same route on the operational and the admin channel does not overlap", () => {
    const r = check(HEAD + "duty status GET /status -> app\nduty admin_status GET /status -> app channel admin\ngrant developer status\ngrant reviewer admin_status\n");
    expect(r.diagnostics.map((d) => d.code)).toEqual([]);
    expect(r.ok).toBe(true);
    const again = check(HEAD + "duty status GET /status -> app\nduty status2 GET /status -> app\ngrant developer status\n");
    expect(again.diagnostics.map(where)).toEqual(["E_OVERLAPPING_DUTY p.duty:10:18"]);
  });
});
