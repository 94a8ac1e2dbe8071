// The policy manager on real files: policy tests run once per bundle digest and gateway build,
// recorded in the state directory, and again whenever either changes.
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../config/mod.ts";
import { PolicyManager, TESTS_PASSED_FILE } from "./policy-manager.ts";

const root = mkdtempSync(join(tmpdir(), "dutygate-pm-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// A grant for requests before 2030 and a test (at "now") that expects it: it passes before, fails after.
const POLICY = "principal { sub: string roles: set<role> }\nrole sre\nupstream app\nduty deploy POST /deploy -> app\ngrant sre deploy when request.time < 2030-01-01\n";
const TESTS = '[principals.sam]\nsub = "sam"\nroles = ["sre"]\n\n[[test]]\nname = "an sre deploys"\nprincipal = "sam"\nrequest = "POST /deploy"\nexpect = "allow"\n';
const BEFORE_END = Date.parse("2029-06-01T00:00:00Z");
const AFTER_END = Date.parse("2031-06-01T00:00:00Z");

function policyDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "main.duty"), POLICY);
  writeFileSync(join(dir, "main.test.toml"), TESTS);
  return dir;
}

function manager(dir: string, stateDir: string, now: number): { pm: PolicyManager; logs: string[] } {
  const logs: string[] = [];
  const base = defaultConfig({ cwd: root });
  const pm = new PolicyManager({
    policy: { ...base.policy, dir, requireSignature: false, watch: false },
    stateDir,
    upstreams: { app: { name: "app", url: "http://127.0.0.1:9", timeoutMs: 1000, connectTimeoutMs: 1000 } } as never,
    log: (_level, message) => void logs.push(message),
    now: () => now,
  });
  return { pm, logs };
}

describe("policy tests at start: once per bundle digest and gateway build", () => {
  test("a restart onto the bundle whose tests passed skips them; a changed bundle, another build or a fresh state directory runs them", async () => {
    const dir = policyDir("policies");
    const state = join(root, "state");
    const first = manager(dir, state, BEFORE_END);
    expect((await first.pm.reload("start")).ok).toBe(true);
    const record = JSON.parse(readFileSync(join(state, TESTS_PASSED_FILE), "utf8"));
    expect(record.digest).toBe(first.pm.active!.digest);

    // Same bundle, same build, a clock at which the test would fail: not run, so the start succeeds.
    const restart = manager(dir, state, AFTER_END);
    expect((await restart.pm.reload("start")).ok).toBe(true);
    expect(restart.logs.some((l) => l.startsWith(`policy tests skipped: bundle ${record.digest.slice(0, 12)}`))).toBe(true);

    // Proof that they would fail then: a state directory without the record runs them.
    const fresh = manager(dir, join(root, "fresh-state"), AFTER_END);
    const refused = await fresh.pm.reload("start");
    expect(refused.ok ? "started" : refused.error.code).toBe("POLICY_TESTS_FAILED");

    // Another gateway build recorded it: run again.
    writeFileSync(join(state, TESTS_PASSED_FILE), JSON.stringify({ ...record, gateway: "0.0.0 (another-build)" }));
    const upgraded = manager(dir, state, AFTER_END);
    const afterUpgrade = await upgraded.pm.reload("start");
    expect(afterUpgrade.ok ? "started" : afterUpgrade.error.code).toBe("POLICY_TESTS_FAILED");
  });

  test("a changed bundle runs its tests", async () => {
    const dir = policyDir("changing");
    const state = join(root, "state-changing");
    const { pm } = manager(dir, state, BEFORE_END);
    expect((await pm.reload("start")).ok).toBe(true);
    appendFileSync(join(dir, "main.duty"), "# a comment changes the digest\n");
    const later = manager(dir, state, AFTER_END);
    await later.pm.reload("start");
    // The changed directory's tests ran and failed; the start falls back on the last good bundle.
    expect(later.pm.lastError?.code).toBe("POLICY_TESTS_FAILED");
    expect(later.pm.degraded).toBe(true);
    expect(later.pm.active!.digest).toBe(pm.active!.digest);
  });
});
