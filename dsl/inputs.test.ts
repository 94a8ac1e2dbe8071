import { describe, expect, test } from "bun:test";
import { compilePolicy, loadPolicy, policyInputNames } from "./mod.ts";

const POLICY = `principal { sub: string roles: set<role> }
role admin, dev
upstream u
duty export GET /exports/:name -> u
duty read   GET /items/:id     -> u
duty plain  GET /plain         -> u
grant admin export when not (request.query["all"] == "1") and request.header["X-Mode"] != "x"
grant dev   export when request.query has "dry_run"
grant dev   read
grant dev   plain
forbid read when request.query["lock"] == "1"
forbid *    when request.query["freeze"] == "on"
`;

function compiled() {
  const { policy, diagnostics } = loadPolicy([{ path: "inputs.duty", text: POLICY }]);
  if (!policy) throw new Error(diagnostics.map((d) => d.message).join("\n"));
  return compilePolicy(policy);
}

describe("the inputs a policy's conditions read", () => {
  test("policyInputNames: every header (lower case) and query name any condition reads", () => {
    expect(policyInputNames(compiled().policy)).toEqual({ headers: ["x-mode"], query: ["all", "dry_run", "freeze", "lock"] });
  });

  test("queryNamesRead: per duty, its grants' and its applicable forbids' query names", () => {
    const c = compiled();
    expect(c.queryNamesRead("export")).toEqual(["all", "dry_run", "freeze"]);
    expect(c.queryNamesRead("read")).toEqual(["freeze", "lock"]);
    expect(c.queryNamesRead("plain")).toEqual(["freeze"]);
    expect(c.queryNamesRead("no_such_duty")).toEqual([]);
  });
});
