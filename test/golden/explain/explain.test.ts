// Golden files of `gateway explain`: the text and JSON output for a few decisions over a frozen
// copy of the shipped policies (./policies). Regenerate after an intended change and review the
// diff: `node_modules/.bin/bun scripts/update-golden.ts` (it runs this file under UPDATE_GOLDEN=1).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runExplain, type ExplainParams } from "../../../src/cli/explain.ts";
import { EXIT, memoryIo } from "../../../src/cli/io.ts";
import { main } from "../../../src/cli/mod.ts";

const HERE = import.meta.dir;
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const TIME = "2026-06-01T12:00:00Z";

interface GoldenCase {
  name: string;
  principal: string;
  request: string;
  headers?: string[];
  ip?: string;
  channel?: "operational" | "admin";
  history?: string;
  code: string;
}

const CASES: GoldenCase[] = [
  { name: "reviewer-approves", principal: "bob.json", request: "POST /changes/42/approve", code: "ALLOW" },
  { name: "developer-may-not-approve", principal: "alice.json", request: "POST /changes/42/approve", code: "DENY_NO_GRANT" },
  { name: "freeze-forbids-deploy", principal: "carol.toml", request: "POST /changes/7/deploy", headers: ["X-Freeze=1"], code: "DENY_FORBID" },
  { name: "admin-outside-network", principal: "sam.toml", request: "PUT /admin/security/tls", channel: "admin", ip: "203.0.113.9", code: "DENY_NO_GRANT" },
  { name: "admin-inside-network", principal: "sam.toml", request: "PUT /admin/security/tls", channel: "admin", ip: "10.1.2.3", code: "ALLOW" },
  { name: "exclusive-roles", principal: "mallory.json", request: "POST /changes/42/submit", code: "DENY_EXCLUSIVE" },
  { name: "no-route", principal: "alice.json", request: "GET /nowhere?x=1", code: "DENY_NO_ROUTE" },
  { name: "failing-condition", principal: "dave.json", request: "POST /changes/7/deploy", code: "DENY_NO_GRANT" },
  { name: "near-miss-head", principal: "alice.json", request: "HEAD /changes", code: "DENY_NO_ROUTE" },
  { name: "near-miss-trailing-slash", principal: "alice.json", request: "GET /changes/", code: "DENY_NO_ROUTE" },
  { name: "near-miss-other-channel", principal: "sam.toml", request: "GET /admin/security/tls", code: "DENY_NO_ROUTE" },
  { name: "history-separation", principal: "bob.json", request: "POST /changes/42/approve", history: "bob-submitted-42.toml", code: "DENY_SOD_HISTORY" },
  { name: "history-other-key", principal: "bob.json", request: "POST /changes/43/approve", history: "bob-submitted-42.toml", code: "ALLOW" },
];

function paramsOf(c: GoldenCase, format: "text" | "json"): ExplainParams {
  return { dir: join(HERE, "policies"), displayDir: "policies", principalFile: join(HERE, "principals", c.principal), request: c.request, headers: c.headers, ip: c.ip, channel: c.channel, time: TIME, format, historyFile: c.history && join(HERE, "history", c.history) };
}

function compareGolden(file: string, actual: string): void {
  const path = join(HERE, file);
  if (UPDATE) writeFileSync(path, actual);
  if (!existsSync(path)) throw new Error(`golden file \`${file}\` is missing; run with UPDATE_GOLDEN=1 and review it`);
  expect(actual).toBe(readFileSync(path, "utf8"));
}

describe("gateway explain golden files", () => {
  for (const c of CASES) {
    test(`${c.name} (text)`, async () => {
      const io = memoryIo();
      expect(await runExplain(paramsOf(c, "text"), io)).toBe(EXIT.ok);
      expect(io.stderr).toEqual([]);
      expect(io.stdout[0]).toContain(`(${c.code})`);
      compareGolden(`${c.name}.txt`, io.stdout.join("\n") + "\n");
    });
    test(`${c.name} (json)`, async () => {
      const io = memoryIo();
      expect(await runExplain(paramsOf(c, "json"), io)).toBe(EXIT.ok);
      const parsed = JSON.parse(io.stdout.join("\n")) as { decision: { code: string }; evaluatorsAgree: boolean; request: { time: string } };
      expect(parsed.decision.code).toBe(c.code);
      expect(parsed.evaluatorsAgree).toBe(true);
      expect(parsed.request.time).toBe("2026-06-01T12:00:00.000Z");
      compareGolden(`${c.name}.json`, io.stdout.join("\n") + "\n");
    });
  }
});

describe("gateway explain errors", () => {
  const base = paramsOf(CASES[0]!, "text");
  test.each([
    ["a request that is not METHOD /path", { request: "approve 42" }, "EXPLAIN_BAD_REQUEST"],
    ["a principal missing an attribute", { principalFile: join(HERE, "principals", "incomplete.json") }, "PRINCIPAL_MISSING_ATTRIBUTE"],
    ["a bad ip", { ip: "10.0.0.300" }, "EXPLAIN_BAD_IP"],
    ["a bad time", { time: "yesterday" }, "EXPLAIN_BAD_TIME"],
    ["a principal file that does not exist", { principalFile: join(HERE, "principals", "nobody.json") }, "cannot read principal file"],
    ["a header without =", { headers: ["x-freeze"] }, "`--header` needs `name=value`"],
    ["a history naming an unknown duty", { historyFile: join(HERE, "history", "typo.json") }, "EXPLAIN_BAD_HISTORY]: `" ],
    ["a history file that does not exist", { historyFile: join(HERE, "history", "none.toml") }, "EXPLAIN_BAD_HISTORY_FILE]: cannot read history file"],
    ["a history file that is not TOML", { historyFile: join(HERE, "history", "broken.toml") }, "is not valid TOML"],
  ] as const)("%s → exit 64", async (_name, patch, expected) => {
    const io = memoryIo();
    expect(await runExplain({ ...base, ...patch }, io)).toBe(EXIT.usage);
    expect(io.stdout).toEqual([]);
    expect(io.stderr.join("\n")).toContain(expected);
  });

  test("a policy directory with errors → exit 1 with diagnostics", async () => {
    const io = memoryIo();
    expect(await runExplain({ ...base, dir: join(HERE, "principals") }, io)).toBe(EXIT.policyErrors);
    expect(io.stderr.join("\n")).toContain("no `.duty` files");
  });

  test("through the command line: flags parsed, usage errors exit 64", async () => {
    const io = memoryIo();
    const code = await main(["explain", join(HERE, "policies"), "--principal", join(HERE, "principals", "carol.toml"), "--request", "POST /changes/7/deploy", "--header", "x-freeze=1", "--time", TIME, "--format", "json"], io);
    expect(code).toBe(EXIT.ok);
    expect((JSON.parse(io.stdout.join("\n")) as { decision: { code: string } }).decision.code).toBe("DENY_FORBID");
    const bad = memoryIo();
    expect(await main(["explain", join(HERE, "policies"), "--request", "GET /changes"], bad)).toBe(EXIT.usage);
    expect(await main(["explain", join(HERE, "policies"), "--principal", "x.json", "--request", "GET /", "--channel", "side"], bad)).toBe(EXIT.usage);
    expect(bad.stderr.join("\n")).toContain("unknown channel `side`");
  });
});
