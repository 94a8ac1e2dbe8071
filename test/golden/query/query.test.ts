// Golden files of `gateway query`: what a person may do and who may do a duty, as text and JSON,
// over the frozen copy of the shipped policies that explain's golden files use. Regenerate after
// an intended change and review the diff: `node_modules/.bin/bun scripts/update-golden.ts` (it runs this file under UPDATE_GOLDEN=1).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runQuery, type QueryParams } from "../../../src/cli/query.ts";
import { EXIT, memoryIo } from "../../../src/cli/io.ts";
import { main } from "../../../src/cli/mod.ts";

const HERE = import.meta.dir;
const EXPLAIN = join(HERE, "..", "explain");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

const CASES: Array<{ name: string; principal?: string; duty?: string }> = [
  { name: "principal-deployer-with-mfa", principal: "carol.toml" },
  { name: "principal-deployer-without-mfa", principal: "dave.json" },
  { name: "principal-security-admin", principal: "sam.toml" },
  { name: "principal-exclusive-roles", principal: "mallory.json" },
  { name: "duty-deploy-change", duty: "deploy_change" },
  { name: "duty-set-security", duty: "set_security" },
  { name: "duty-read-logs", duty: "read_logs" },
];

function paramsOf(c: (typeof CASES)[number], format: "text" | "json"): QueryParams {
  return { dir: join(EXPLAIN, "policies"), displayDir: "policies", principalFile: c.principal && join(EXPLAIN, "principals", c.principal), duty: c.duty, format };
}

function compareGolden(file: string, actual: string): void {
  const path = join(HERE, file);
  if (UPDATE) writeFileSync(path, actual);
  if (!existsSync(path)) throw new Error(`golden file \`${file}\` is missing; run with UPDATE_GOLDEN=1 and review it`);
  expect(actual).toBe(readFileSync(path, "utf8"));
}

describe("gateway query golden files", () => {
  for (const c of CASES) {
    for (const format of ["text", "json"] as const) {
      test(`${c.name} (${format})`, async () => {
        const io = memoryIo();
        expect(await runQuery(paramsOf(c, format), io)).toBe(EXIT.ok);
        expect(io.stderr).toEqual([]);
        if (format === "json") JSON.parse(io.stdout.join("\n"));
        compareGolden(`${c.name}.${format === "json" ? "json" : "txt"}`, io.stdout.join("\n") + "\n");
      });
    }
  }
});

describe("gateway query errors", () => {
  const base: QueryParams = { dir: join(EXPLAIN, "policies"), displayDir: "policies" };
  test.each([
    ["an unknown duty, with did you mean", { duty: "deploy_chnage" }, "error[QUERY_UNKNOWN_DUTY]: the policy has no duty `deploy_chnage` (did you mean `deploy_change`?)"],
    ["neither --principal nor --duty", {}, "query needs one of `--principal FILE` and `--duty DUTY`"],
    ["both", { duty: "deploy_change", principalFile: join(EXPLAIN, "principals", "bob.json") }, "query needs one of"],
    ["a principal missing an attribute", { principalFile: join(EXPLAIN, "principals", "incomplete.json") }, "PRINCIPAL_MISSING_ATTRIBUTE"],
    ["a principal file that does not exist", { principalFile: join(EXPLAIN, "principals", "nobody.json") }, "cannot read principal file"],
  ] as const)("%s → exit 64", async (_name, patch, expected) => {
    const io = memoryIo();
    expect(await runQuery({ ...base, ...patch }, io)).toBe(EXIT.usage);
    expect(io.stdout).toEqual([]);
    expect(io.stderr.join("\n")).toContain(expected);
  });

  test("a directory without policies → exit 1", async () => {
    const io = memoryIo();
    expect(await runQuery({ ...base, dir: join(EXPLAIN, "principals"), duty: "x" }, io)).toBe(EXIT.policyErrors);
  });

  test("through the command line: flags parsed, usage errors exit 64", async () => {
    const io = memoryIo();
    expect(await main(["query", join(EXPLAIN, "policies"), "--duty", "read_logs", "--format", "json"], io)).toBe(EXIT.ok);
    expect((JSON.parse(io.stdout.join("\n")) as { grants: unknown[] }).grants.length).toBe(1);
    const bad = memoryIo();
    expect(await main(["query", join(EXPLAIN, "policies")], bad)).toBe(EXIT.usage);
    expect(await main(["query", join(EXPLAIN, "policies"), "--duty", "x", "--format", "xml"], bad)).toBe(EXIT.usage);
  });
});
