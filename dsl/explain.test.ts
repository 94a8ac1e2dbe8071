// What explain and query print of conditions: every condition of the conformance corpus printed
// as policy text reads back as the same typed condition; a failing condition names its first
// failing part with the values it read; near misses name the route a request almost took.
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { explainCondition, exprText, loadPolicy, parseIp, routeNearMisses } from "./mod.ts";
import type { CheckedPolicy, TExpr } from "./mod.ts";

const ROOT = resolve(import.meta.dir, "..");
const NOW = Date.UTC(2026, 0, 1);

/** Every inline policy of the conformance corpus. */
function corpusPolicies(): Array<{ name: string; text: string }> {
  const dir = join(ROOT, "test", "conformance");
  return readdirSync(dir).filter((f) => f.endsWith(".toml")).flatMap((f) => {
    const doc = parseToml(readFileSync(join(dir, f), "utf8")) as { policies?: Record<string, { text?: string }> };
    return Object.entries(doc.policies ?? {}).filter(([, p]) => typeof p.text === "string").map(([n, p]) => ({ name: `${f}:${n}`, text: p.text! }));
  });
}

const spanFree = (e: TExpr | null) => JSON.stringify(e, (k, v) => (k === "span" ? undefined : typeof v === "bigint" ? String(v) : v instanceof Set ? [...v].map(String).sort() : v));

describe("conditions print as policy text that reads back the same", () => {
  for (const { name, text } of corpusPolicies()) {
    test(name, () => {
      const first = loadPolicy([{ path: "p.duty", text }], { now: NOW });
      if (!first.policy) return; // a corpus policy meant to fail is covered elsewhere
      const policy: CheckedPolicy = first.policy;
      // Each condition again, as a forbid of the same duties (the same params are in scope).
      const printed = [
        ...policy.grants.filter((g) => g.when).map((g) => ({ duties: g.duty, when: g.when! })),
        ...policy.forbids.map((f) => ({ duties: f.duties ? f.duties.join(", ") : "*", when: f.when })),
      ];
      const again = loadPolicy([{ path: "p.duty", text: text + "\n" + printed.map((p) => `forbid ${p.duties} when ${exprText(p.when)}`).join("\n") + "\n" }], { now: NOW });
      expect(again.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
      const added = again.policy!.forbids.slice(policy.forbids.length);
      expect(added.map((f) => spanFree(f.when))).toEqual(printed.map((p) => spanFree(p.when)));
    });
  }
});

const POLICY = `principal { sub: string, roles: set<role>, mfa: bool, level: int, team: string }
role dev
upstream app
duty read  GET  /items/:id -> app
duty admin GET  /admin     -> app channel admin
duty write POST /items/:id -> app
grant dev read when principal.mfa and (principal.level >= 3 or lower(principal.team) == "core") and not (request.param.id matches "x-[0-9]+")
grant dev admin
grant dev write
`;
const policy = loadPolicy([{ path: "p.duty", text: POLICY }], { now: NOW }).policy!;
const grant = policy.grants[0]!.when!;
const env = (attrs: Record<string, unknown>, id = "7") => ({
  principal: { sub: "a", roles: new Set(["dev"]), mfa: true, level: 1, team: "ops", ...attrs },
  request: { method: "GET", path: `/items/${id}`, ip: parseIp("10.0.0.1")!, time: NOW, headers: {}, query: {} },
  params: { id },
});

describe("explainCondition", () => {
  test("the first failing conjunct, with the value it read", () => {
    expect(explainCondition(grant, env({ mfa: false }))).toEqual([{ condition: "principal.mfa", at: "p.duty:7:21", holds: false, values: [{ expr: "principal.mfa", value: "false" }] }]);
  });

  test("a failing `or` names each alternative, with lower()'s operand and result", () => {
    expect(explainCondition(grant, env({ team: "Ops" })).map((f) => [f.condition, f.values.map((v) => `${v.expr} = ${v.value}`).join(", ")])).toEqual([
      ["principal.level >= 3", "principal.level = 1"],
      ['lower(principal.team) == "core"', 'lower(principal.team) = "ops", principal.team = "Ops"'],
    ]);
  });

  test("a `not` that fails names what held under it", () => {
    expect(explainCondition(grant, env({ level: 5 }, "x-12"))).toEqual([{ condition: 'not request.param.id matches "x-[0-9]+"', at: "p.duty:7:101", holds: false, values: [{ expr: "request.param.id", value: '"x-12"' }] }]);
  });
});

describe("routeNearMisses", () => {
  test.each([
    ["HEAD", "/items/7", "operational", "HEAD is not implied by GET: `read` (GET /items/:id, p.duty:4:1) answers GET on this path; declare a HEAD duty to allow it"],
    ["DELETE", "/items/7", "operational", "`read` (GET /items/:id, p.duty:4:1) matches this path with GET, not DELETE"],
    ["GET", "/items/7/", "operational", "`read` (GET /items/:id, p.duty:4:1) matches `/items/7`, without the trailing slash: a trailing slash is another path"],
    ["GET", "/admin", "operational", "`admin` (GET /admin, p.duty:5:1) matches on the admin channel (the admin listener), not the operational channel"],
  ] as const)("%s %s on %s", (method, path, channel, hint) => {
    expect(routeNearMisses(policy, channel, method, path)).toContain(hint);
  });

  test("a request that routes has no near misses", () => {
    expect(routeNearMisses(policy, "operational", "GET", "/items/7")).toEqual([]);
  });
});
