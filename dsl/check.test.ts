// The checker, table-driven: every diagnostic code it can emit, with its exact position.
import { test, expect, describe } from "bun:test";
import { loadPolicy } from "./mod.ts";
import type { Diagnostic } from "./mod.ts";

const NOW = Date.UTC(2026, 0, 1);
const HEAD = `principal {
  sub: string
  roles: set<role>
  mfa: bool
  team: string
}
role developer, reviewer, deployer
upstream app
`;

function check(text: string, options: { now?: number } = {}): { diagnostics: Diagnostic[]; ok: boolean } {
  const r = loadPolicy([{ path: "p.duty", text }], { now: options.now ?? NOW });
  return { diagnostics: r.diagnostics, ok: r.policy !== null };
}

const where = (d: Diagnostic) => `${d.span.file}:${d.span.line}:${d.span.col}`;

describe("regressions", () => {
  test("E_OVERLAPPING_DUTY across channels: the same route on the operational and the admin channel does not overlap", () => {
    const r = check(HEAD + "duty status GET /status -> app\nduty admin_status GET /status -> app channel admin\ngrant developer status\ngrant reviewer admin_status\n");
    expect(r.diagnostics.map((d) => d.code)).toEqual([]);
    expect(r.ok).toBe(true);
    const again = check(HEAD + "duty status GET /status -> app\nduty status2 GET /status -> app\ngrant developer status\n");
    expect(again.diagnostics.map((d) => `${d.code} ${where(d)}`)).toEqual(["E_OVERLAPPING_DUTY p.duty:10:18"]);
  });
});
