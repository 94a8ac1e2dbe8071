// The one policy build: its stages, where it stops, and that every caller (the gateway's reload,
// `gateway check`, explain, the playground, the language server) gets the same verdict from it.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicySource } from "../../dsl/mod.ts";
import { runCheck } from "../cli/check.ts";
import { EXIT, memoryIo } from "../cli/io.ts";
import { defaultConfig } from "../config/mod.ts";
import { PolicyManager } from "../gateway/policy-manager.ts";
import { buildPolicyModel } from "../lsp/policy-model.ts";
import { analyzePlayFiles } from "../play/api.ts";
import { generatePolicy } from "../../bench/gen-policy.ts";
import { buildPolicy, type PolicyBuildOptions } from "./build.ts";

const root = mkdtempSync(join(tmpdir(), "dutygate-build-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const HEAD = "principal { sub: string roles: set<role> }\nrole maker, checker\nupstream app\n";
const POLICY = `${HEAD}duty submit POST /c/:c/submit -> app\nduty approve POST /c/:c/approve -> app\ngrant maker submit\ngrant checker approve\nseparate submit, approve by c\n`;
const TESTS = `[[test]]
name = "a maker submits"
principal = { sub = "mo", roles = ["maker"] }
request = "POST /c/1/submit"
expect = "allow"

[[test]]
name = "the submitter may not approve"
principal = { sub = "mo", roles = ["checker"] }
request = "POST /c/1/approve"
history = [{ duty = "submit", sub = "mo" }]
expect = "deny"
code = "DENY_SOD_HISTORY"
`;
// An operational duty forwarding to the upstream of an admin duty: the separation analysis's error.
const ADMIN_EXPOSED = `${HEAD}upstream admin\nduty set_config PUT /admin/config -> admin channel admin\nduty peek GET /peek -> admin\ngrant checker set_config\ngrant maker peek\n`;

const build = (policy: string, tests = "", options: PolicyBuildOptions = {}) =>
  buildPolicy({ policies: [{ path: "p.duty", text: policy }], tests: tests ? [{ path: "p.test.toml", text: tests }] : [] }, options);

describe("buildPolicy: the stages in order, stopping at the first failure", () => {
  test("a good policy goes through every stage: checked, compiled, its tests run and pass", () => {
    const b = build(POLICY, TESTS);
    expect(b.failure).toBeNull();
    expect(b.compiled).not.toBeNull();
    expect(b.testsRun).toBe(true);
    expect(b.tests.map((t) => [t.name, t.passed])).toEqual([["a maker submits", true], ["the submitter may not approve", true]]);
    expect(b.reachability.map((r) => r.constraint)).toEqual(["separate:p.duty:8:1"]);
  });

  const failures: Array<[string, () => ReturnType<typeof build>, string, RegExp]> = [
    ["no .duty file", () => buildPolicy({ policies: [], tests: [] }), "POLICY_EMPTY", /no `\.duty` files/],
    ["a type error", () => build(POLICY.replace("grant checker approve", "grant checker aprove")), "POLICY_INVALID", /^p\.duty:7:15: error\[E_UNKNOWN_DUTY\]: unknown duty `aprove`$/],
    ["an error of the separation analysis", () => build(ADMIN_EXPOSED), "POLICY_INVALID", /^p\.duty:6:1: error\[E_ADMIN_REACHABLE_OPERATIONALLY\]/],
    ["an upstream that is not configured", () => build(POLICY, "", { upstreams: new Set(["other"]) }), "POLICY_UPSTREAM_UNKNOWN", /^upstream `app` is declared by the policy but not configured/],
    ["a failing policy test", () => build(POLICY, TESTS.replace('expect = "allow"', 'expect = "deny"')), "POLICY_TESTS_FAILED", /^p\.test\.toml:2: a maker submits: expected deny, got allow/],
  ];
  test.each(failures)("%s fails the build with a stable code and one line per problem", (_name, run, code, problem) => {
    const b = run();
    expect(b.failure?.code).toBe(code as never);
    expect(b.failure!.problems.some((p) => problem.test(p))).toBe(true);
    if (code !== "POLICY_TESTS_FAILED") expect(b.compiled).toBeNull();
  });

  test("the analysis's error keeps the checked policy (an editor still navigates it) but nothing compiles", () => {
    const b = build(ADMIN_EXPOSED);
    expect(b.policy).not.toBeNull();
    expect(b.compiled).toBeNull();
  });

  test("`until` stops after a stage; `skipTests` compiles without running the tests", () => {
    const checked = build(POLICY, TESTS, { until: "check" });
    expect([checked.policy !== null, checked.compiled, checked.testsRun]).toEqual([true, null, false]);
    const compiled = build(POLICY, TESTS.replace('expect = "allow"', 'expect = "deny"'), { until: "compile" });
    expect([compiled.compiled !== null, compiled.testsRun, compiled.failure]).toEqual([true, false, null]);
    const skipped = build(POLICY, TESTS.replace('expect = "allow"', 'expect = "deny"'), { skipTests: true });
    expect([skipped.compiled !== null, skipped.testsRun, skipped.failure]).toEqual([true, false, null]);
  });

  test("files already parsed build as their text does", () => {
    const source = { path: "p.duty", text: POLICY.replace("grant checker approve", "grant checker aprove") };
    const fromText = buildPolicy({ policies: [source], tests: [] }, { until: "check" });
    const fromParse = buildPolicy({ policies: [source], tests: [] }, { until: "check", parsed: [parsePolicySource(source)] });
    expect(fromParse.diagnostics).toEqual(fromText.diagnostics);
    expect(fromParse.failure).toEqual(fromText.failure);
  });
});

describe("every caller refuses what the build refuses", () => {
  // Regression: an admin function reachable on the operational channel failed `gateway check`
  // (exit 1) while the gateway, which never ran the separation analysis, served the policy.
  test("a policy with an admin function reachable operationally: check exits 1, the gateway keeps no policy, the playground and the editor report the error", async () => {
    const dir = join(root, "admin-exposed");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "p.duty"), ADMIN_EXPOSED);

    const io = memoryIo();
    expect(await runCheck({ dir, format: "text" }, io)).toBe(EXIT.policyErrors);

    const base = defaultConfig({ cwd: root });
    const pm = new PolicyManager({
      policy: { ...base.policy, dir, requireSignature: false, watch: false },
      stateDir: join(root, "admin-exposed-state"),
      upstreams: { app: { name: "app", url: "http://127.0.0.1:9", timeoutMs: 1000, connectTimeoutMs: 1000 }, admin: { name: "admin", url: "http://127.0.0.1:9", timeoutMs: 1000, connectTimeoutMs: 1000 } } as never,
      log: () => {},
    });
    const reload = await pm.reload("start");
    expect(reload.ok ? "served" : reload.error.code).toBe("POLICY_INVALID");
    expect(reload.ok ? [] : reload.error.problems).toEqual([expect.stringMatching(/^p\.duty:6:1: error\[E_ADMIN_REACHABLE_OPERATIONALLY\]/)]);
    expect(pm.active).toBeNull();
    pm.close();

    const play = analyzePlayFiles([{ path: "p.duty", text: ADMIN_EXPOSED }]);
    expect(play.ok).toBe(false);
    expect(play.diagnostics.map((d) => d.code)).toContain("E_ADMIN_REACHABLE_OPERATIONALLY");

    const parsed = parsePolicySource({ path: "p.duty", text: ADMIN_EXPOSED });
    const model = buildPolicyModel(new Map([["p.duty", { parsed, text: ADMIN_EXPOSED }]]));
    expect(model.diagnostics.map((d) => d.code)).toContain("E_ADMIN_REACHABLE_OPERATIONALLY");
  });
});

describe("the benchmarks' generated policies", () => {
  // Regression: bench/gen-policy.ts put admin duties on upstreams operational duties share, so
  // its "valid" policies failed `gateway check`, and the gateway (now building the same way)
  // refused them in bench/reload.bench.ts.
  test.each([10, 100, 1000])("%i duties pass the build", (n) => {
    const gen = generatePolicy(n);
    const b = buildPolicy({ policies: [{ path: gen.path, text: gen.text }], tests: [] }, { until: "check" });
    expect(b.failure).toBeNull();
  });
});
