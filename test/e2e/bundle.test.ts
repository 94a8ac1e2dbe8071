// Signed policy bundles at start-up and on reload, end to end: a gateway that requires two
// trusted signers starts with a bundle two people signed and refuses (fails closed) anything less;
// a newer revision goes live on reload; an older one is refused, also after a restart (the accepted
// revision is persisted); a broken policy or failing policy tests in a properly signed revision
// keep the last good policy, with the reason in `lastError` and the status file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey, LAST_GOOD_BUNDLE_DIR, REVISION_STATE_FILE, type SigningKeyPair } from "../../src/bundle/mod.ts";
import { signBundleForTest } from "../support/sign-bundle.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { GatewayError } from "../../src/errors.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { startupBanner } from "../../src/gateway/serve.ts";
import { createTestIssuer, SHIPPED_POLICIES, spawnGatewayProcess, startTestGateway, startTestUpstream, writeProcessConfig, type GatewayProcess, type TestGateway } from "../support/harness.ts";

const DAY_MS = 86_400_000;

let work: string;
let alice: SigningKeyPair, bob: SigningKeyPair, mallory: SigningKeyPair;
let trustedKeysFile: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "dutygate-bundle-e2e-"));
  [alice, bob, mallory] = await Promise.all(["alice", "bob", "mallory"].map((kid) => generateSigningKey({ kid })));
  // mallory's key is not trusted.
  trustedKeysFile = join(work, "trusted.jwks");
  writeFileSync(trustedKeysFile, JSON.stringify({ keys: [alice.publicJwk, bob.publicJwk] }));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const requireTwoSigners = (c: GatewayConfig): GatewayConfig => ({
  ...c,
  policy: { ...c.policy, requireSignature: true, trustedKeysFile, minSigners: 2, watch: false },
});

let stagingSeq = 0;
/** A fresh copy of the shipped policies, prepared by `prepare` (sign, tamper…). */
async function stage(prepare: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(work, `staging-${++stagingSeq}`);
  cpSync(SHIPPED_POLICIES, dir, { recursive: true });
  await prepare(dir);
  return dir;
}

/** Replaces a directory's content with another's (the gateway does not watch in these tests). */
function replaceDir(target: string, source: string): void {
  rmSync(target, { recursive: true, force: true });
  cpSync(source, target, { recursive: true });
}

/** A new duty in its own file: `GET /status` answers 404 (no route) before, 200 after. */
const STATUS_DUTY = "duty read_status GET /status -> changes\ngrant developer read_status\n";

async function expectRefusedStart(policyDir: string, codes: string[]): Promise<void> {
  let error: unknown = null;
  try {
    const t = await startTestGateway({ policyDir, configure: requireTwoSigners });
    await t.stop();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(GatewayError);
  const e = error as GatewayError;
  expect(e.code).toBe("POLICY_UNAVAILABLE");
  expect(e.message).toContain("refusing to serve");
  for (const code of codes) expect(e.message).toContain(`error[${code}]`);
}

describe("start-up with min_signers = 2", () => {
  test("a bundle signed by two trusted keys starts and serves", async () => {
    const dir = await stage((d) => signBundleForTest(d, [alice, bob], { revision: 1 }).then(() => {}));
    const t = await startTestGateway({ policyDir: dir, configure: requireTwoSigners });
    try {
      const active = t.gw.policy.active!;
      expect(active.signed).toBe(true);
      expect(active.revision).toBe(1);
      expect([...active.signers].sort()).toEqual(["alice", "bob"]);
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"] });
      expect((await t.fetch("/changes/1/submit", { method: "POST", token })).status).toBe(200);
    } finally {
      await t.stop();
    }
  });

  const refused: Array<{ name: string; prepare: (dir: string) => Promise<void>; codes: string[] }> = [
    { name: "one signer", prepare: async (d) => void (await signBundleForTest(d, [alice], { revision: 1 })), codes: ["BUNDLE_TOO_FEW_SIGNERS"] },
    { name: "the same signer twice", prepare: async (d) => void (await signBundleForTest(d, [alice, alice], { revision: 1 })), codes: ["BUNDLE_TOO_FEW_SIGNERS"] },
    { name: "an untrusted second signer", prepare: async (d) => void (await signBundleForTest(d, [alice, mallory], { revision: 1 })), codes: ["BUNDLE_SIGNER_UNKNOWN", "BUNDLE_TOO_FEW_SIGNERS"] },
    {
      name: "a file changed after signing",
      prepare: async (d) => {
        await signBundleForTest(d, [alice, bob], { revision: 1 });
        appendFileSync(join(d, "changes.duty"), "grant developer approve_change\n");
      },
      codes: ["BUNDLE_FILE_CHANGED"],
    },
    {
      name: "a file added after signing",
      prepare: async (d) => {
        await signBundleForTest(d, [alice, bob], { revision: 1 });
        writeFileSync(join(d, "status.duty"), STATUS_DUTY);
      },
      codes: ["BUNDLE_FILE_EXTRA"],
    },
    {
      name: "an expired bundle",
      prepare: async (d) => void (await signBundleForTest(d, [alice, bob], { revision: 1, now: new Date(Date.now() - 30 * DAY_MS), expiresAt: new Date(Date.now() - DAY_MS) })),
      codes: ["BUNDLE_EXPIRED"],
    },
    { name: "no manifest at all", prepare: async () => {}, codes: ["BUNDLE_MANIFEST_MISSING"] },
  ];
  test.each(refused)("refuses to start: $name", async ({ prepare, codes }) => {
    await expectRefusedStart(await stage(prepare), codes);
  });
});

describe("reload of signed revisions", () => {
  let t: TestGateway;
  let dir: string;
  let policyDir: string;
  let revision1: string;
  let revision2: string;
  const statusFile = () => JSON.parse(readFileSync(join(t.config.stateDir, "policy-status.json"), "utf8")) as {
    active: { revision: number; digest: string; signers: string[] } | null;
    last_error: { code: string; trigger: string; problems: string[] } | null;
  };
  const readStatus = async () => t.fetch("/status", { token: await t.issuer.token({ sub: "alice", roles: ["developer"] }) });

  beforeAll(async () => {
    revision1 = await stage((d) => signBundleForTest(d, [alice, bob], { revision: 1 }).then(() => {}));
    t = await startTestGateway({ policyDir: revision1, configure: requireTwoSigners });
    dir = t.dir;
    policyDir = t.config.policy.dir;
  });
  afterAll(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a newer revision signed by two goes live on reload", async () => {
    expect((await readStatus()).status).toBe(404);
    writeFileSync(join(policyDir, "status.duty"), STATUS_DUTY);
    // Until it is signed the change is refused and revision 1 stays.
    await t.gw.reload("test");
    expect(t.gw.policy.lastError?.code).toBe("BUNDLE_FILE_EXTRA");
    expect(t.gw.policy.active!.revision).toBe(1);
    expect((await readStatus()).status).toBe(404);

    await signBundleForTest(policyDir, [alice, bob], { revision: 2 });
    await t.gw.reload("test");
    expect(t.gw.policy.lastError).toBeNull();
    expect(t.gw.policy.active!.revision).toBe(2);
    expect((await readStatus()).status).toBe(200);
    const status = statusFile();
    expect(status.active!.revision).toBe(2);
    expect(status.last_error).toBeNull();
    revision2 = join(work, "revision-2");
    cpSync(policyDir, revision2, { recursive: true });
  });

  test("an older, validly signed revision is refused (rollback) and the newer one stays", async () => {
    const digest2 = t.gw.policy.active!.digest;
    replaceDir(policyDir, revision1);
    await t.gw.reload("test");
    expect(t.gw.policy.lastError?.code).toBe("BUNDLE_ROLLBACK");
    expect(t.gw.policy.active!.revision).toBe(2);
    expect(t.gw.policy.active!.digest).toBe(digest2);
    expect((await readStatus()).status).toBe(200);
    expect(statusFile().last_error!.code).toBe("BUNDLE_ROLLBACK");
  });

  test("the rollback stays refused after a restart: the accepted revision is persisted", async () => {
    await t.stop({ keepDir: true });
    // The policy directory holds revision 1 (refused); the copy of revision 2 kept in the state
    // directory serves instead, degraded. Revision 1 never serves.
    const degraded = await startTestGateway({ dir, configure: requireTwoSigners });
    try {
      expect(degraded.gw.policy.active!.revision).toBe(2);
      expect(degraded.gw.policy.active!.source).toBe("last_good");
      expect(degraded.gw.policy.lastError!.code).toBe("BUNDLE_ROLLBACK");
    } finally {
      await degraded.stop();
    }
    // Without that copy no verified bundle is left: refused.
    rmSync(join(dir, ".state", LAST_GOOD_BUNDLE_DIR), { recursive: true, force: true });
    let error: unknown = null;
    try {
      const again = await startTestGateway({ dir, configure: requireTwoSigners });
      await again.stop();
    } catch (e) {
      error = e;
    }
    expect((error as GatewayError).code).toBe("POLICY_UNAVAILABLE");
    expect((error as GatewayError).message).toContain("error[BUNDLE_ROLLBACK]");
    // Revision 2 itself (same revision, same digest) starts again.
    replaceDir(policyDir, revision2);
    t = await startTestGateway({ dir, configure: requireTwoSigners });
    expect(t.gw.policy.active!.revision).toBe(2);
  });

  test("a syntax error in a properly signed newer revision keeps the old policy; lastError has file:line:col", async () => {
    const before = t.gw.policy.active!;
    writeFileSync(join(policyDir, "broken.duty"), "# a half-written rule\nduty oops GET /oops ->\n");
    await signBundleForTest(policyDir, [alice, bob], { revision: 3 });
    await t.gw.reload("test");
    const failure = t.gw.policy.lastError!;
    expect(failure.code).toBe("POLICY_INVALID");
    expect(failure.problems.length).toBeGreaterThan(0);
    expect(failure.problems[0]).toMatch(/^broken\.duty:\d+:\d+: error\[E_SYNTAX\]/);
    expect(t.gw.policy.active).toBe(before);
    expect((await readStatus()).status).toBe(200);
    const status = statusFile();
    expect(status.active!.revision).toBe(2);
    expect(status.last_error!.code).toBe("POLICY_INVALID");
    expect(status.last_error!.problems).toEqual(failure.problems);
    rmSync(join(policyDir, "broken.duty"));
  });

  test("failing policy tests in the bundle keep the old policy", async () => {
    const before = t.gw.policy.active!;
    writeFileSync(join(policyDir, "wrong.test.toml"), [
      "[principals.alice]", 'sub = "alice"', 'roles = ["developer"]', "mfa = true", 'team = "core"', "",
      "[[test]]", 'name = "a developer approves (wrong on purpose)"', 'principal = "alice"', 'request = "POST /changes/1/approve"', 'expect = "allow"', "",
    ].join("\n"));
    // Signers never reuse a revision number, accepted or not.
    await signBundleForTest(policyDir, [alice, bob], { revision: 4 });
    await t.gw.reload("test");
    const failure = t.gw.policy.lastError!;
    expect(failure.code).toBe("POLICY_TESTS_FAILED");
    expect(failure.problems).toHaveLength(1);
    expect(failure.problems[0]).toContain("wrong.test.toml:8: a developer approves (wrong on purpose): expected allow, got deny (DENY_NO_GRANT");
    expect(t.gw.policy.active).toBe(before);
    expect(statusFile().last_error!.code).toBe("POLICY_TESTS_FAILED");

    // Fixed and signed again: revision 5 goes live and clears the error.
    rmSync(join(policyDir, "wrong.test.toml"));
    await signBundleForTest(policyDir, [alice, bob], { revision: 5 });
    await t.gw.reload("test");
    expect(t.gw.policy.lastError).toBeNull();
    expect(t.gw.policy.active!.revision).toBe(5);
    expect(statusFile().last_error).toBeNull();
  });
});

describe("a bundle that expires while active", () => {
  // Regression: an active bundle kept deciding after its `expires_at`, since expiry was checked
  // only when a bundle was loaded.
  test("stops deciding at expiry: 503 BUNDLE_EXPIRED (audited), readiness fails, the metric warned ahead; a newer bundle serves again", async () => {
    // Whole seconds: the manifest keeps seconds. Far enough ahead for the gateway to start first.
    const expiresAt = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
    const signed = await stage((d) => signBundleForTest(d, [alice, bob], { revision: 1, expiresAt }).then(() => {}));
    const t = await startTestGateway({ policyDir: signed, configure: requireTwoSigners, admin: true, adminIdentities: { olga: { roles: ["sre"], mfa: true, team: "ops" } } });
    try {
      const olga = await t.adminPki!.client("olga");
      const prober = await t.adminPki!.client("probe");
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"] });
      const expiryLine = `dutygate_policy_expiry_timestamp_seconds ${expiresAt.getTime() / 1000}`;
      expect(await (await t.adminFetch("/-/metrics", { cert: olga })).text()).toContain(expiryLine);

      while (Date.now() <= expiresAt.getTime()) await Bun.sleep(50); // bounded: the expiry is 4 s away
      const before = t.upstream.received.length;
      const res = await t.fetch("/changes/1/submit", { method: "POST", token });
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      const body = (await res.json()) as { code: string; detail: string };
      expect(body.code).toBe("BUNDLE_EXPIRED");
      expect(body.detail).toContain("revision 1");
      expect(t.upstream.received.length).toBe(before);
      const records = readdirSync(t.config.audit.dir).filter((n) => n.endsWith(".jsonl")).flatMap((n) => readFileSync(join(t.config.audit.dir, n), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
      expect(records.find((r) => r.request_id === res.headers.get("x-request-id"))).toMatchObject({ type: "decision", decision: "deny", code: "BUNDLE_EXPIRED" });
      // Admin functions are duties of the expired policy too; the probes still answer.
      expect((await t.adminFetch("/-/metrics", { cert: olga })).status).toBe(503);
      const ready = await t.adminFetch("/-/readyz", { cert: prober });
      expect(ready.status).toBe(503);
      const readiness = (await ready.json()) as { ready: boolean; bundle_expired: boolean; reasons: string[] };
      expect(readiness).toMatchObject({ ready: false, bundle_expired: true });
      expect(readiness.reasons.join("\n")).toContain(`policy bundle revision 1 expired at ${expiresAt.toISOString()}`);

      // A newer valid bundle (no expiry) loaded by reload: deciding again, ready, no expiry sample.
      await signBundleForTest(t.config.policy.dir, [alice, bob], { revision: 2 });
      await t.gw.reload("test");
      expect(t.gw.policy.active!.revision).toBe(2);
      expect((await t.fetch("/changes/1/submit", { method: "POST", token })).status).toBe(200);
      const readyAgain = await t.adminFetch("/-/readyz", { cert: prober });
      expect(readyAgain.status).toBe(200);
      expect(await (await t.adminFetch("/-/metrics", { cert: olga })).text()).not.toMatch(/^dutygate_policy_expiry_timestamp_seconds /m);
    } finally {
      await t.stop();
    }
  }, 30_000); // it waits out the 4 s to the expiry
});

describe("a restart after a stray edit of the policy directory", () => {
  // Regression: nothing kept the last good bundle, so one stray edit (a comment, an editor's swap
  // file) made the next start refuse to serve (exit 6), and systemd kept the gateway down.
  const olgaIdentity = { olga: { roles: ["sre"], mfa: true, team: "ops" } };
  let dir: string;
  let policyDir: string;

  /** A gateway that ran revision 1 (two signers) and stopped; its directory and state are kept. */
  async function ranRevision1(): Promise<void> {
    const signed = await stage((d) => signBundleForTest(d, [alice, bob], { revision: 1 }).then(() => {}));
    const first = await startTestGateway({ policyDir: signed, configure: requireTwoSigners });
    dir = first.dir;
    policyDir = first.config.policy.dir;
    expect(first.gw.policy.active!.source).toBe("policy_dir");
    await first.stop({ keepDir: true });
  }
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("serves the last good bundle, degraded and loudly (log, /-/policy, metric, readiness); a fixed directory ends it", async () => {
    await ranRevision1();
    const changes = join(policyDir, "changes.duty");
    const original = readFileSync(changes, "utf8");
    appendFileSync(changes, "# a comment added on the server\n");
    writeFileSync(join(policyDir, ".changes.duty.swp"), "editor state\n");
    const logged: string[] = [];
    const t = await startTestGateway({ dir, configure: requireTwoSigners, admin: true, adminIdentities: olgaIdentity, log: createLogger("info", (l) => logged.push(l)) });
    try {
      const active = t.gw.policy.active!;
      expect(active).toMatchObject({ revision: 1, source: "last_good" });
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"] });
      expect((await t.fetch("/changes/1/submit", { method: "POST", token })).status).toBe(200);

      expect(logged.join("\n")).toContain("serving the last good bundle from the state directory: revision 1");
      const olga = await t.adminPki!.client("olga");
      const status = (await (await t.adminFetch("/-/policy", { cert: olga })).json()) as { degraded: boolean; active: { source: string }; last_error: { code: string; problems: string[] } };
      expect(status.degraded).toBe(true);
      expect(status.active.source).toBe("last_good");
      expect(status.last_error.code).toMatch(/^BUNDLE_FILE_(CHANGED|EXTRA)$/);
      expect(status.last_error.problems.join("\n")).toContain("error[BUNDLE_FILE_CHANGED]: changes.duty:");
      expect(status.last_error.problems.join("\n")).toContain("error[BUNDLE_FILE_EXTRA]: .changes.duty.swp:");
      expect(await (await t.adminFetch("/-/metrics", { cert: olga })).text()).toMatch(/^dutygate_policy_degraded 1$/m);
      const ready = await t.adminFetch("/-/readyz", { cert: olga });
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "degraded", ready: true, degraded: true });
      expect((await startupBanner(t.gw)).join("\n")).toContain("WARNING: serving the last good bundle");

      // The edit undone: the directory verifies again and holds the bundle being served.
      writeFileSync(changes, original);
      rmSync(join(policyDir, ".changes.duty.swp"));
      await t.gw.reload("test");
      expect(t.gw.policy.active!.source).toBe("policy_dir");
      expect(t.gw.policy.lastError).toBeNull();
      expect(await (await t.adminFetch("/-/metrics", { cert: olga })).text()).toMatch(/^dutygate_policy_degraded 0$/m);
      expect(await (await t.adminFetch("/-/readyz", { cert: olga })).json()).toMatchObject({ status: "ready", degraded: false });
    } finally {
      await t.stop();
    }
  });

  test("a `gateway serve` process restarted after a stray edit serves the last good bundle (it exited 6 before)", async () => {
    const work2 = mkdtempSync(join(tmpdir(), "dutygate-stray-edit-"));
    const upstream = startTestUpstream();
    let proc: GatewayProcess | null = null;
    try {
      const issuer = await createTestIssuer(work2);
      const policies = join(work2, "policies");
      cpSync(SHIPPED_POLICIES, policies, { recursive: true });
      await signBundleForTest(policies, [alice, bob], { revision: 1 });
      const config = writeProcessConfig(work2, { upstreamUrl: upstream.url, issuer, policyDir: policies, policyToml: `require_signature = true\ntrusted_keys = ${JSON.stringify(trustedKeysFile)}\nmin_signers = 2` });
      const token = await issuer.token({ sub: "alice", roles: ["developer"] });
      const submit = (url: string) => fetch(`${url}/changes/1/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);

      proc = await spawnGatewayProcess(config, { cwd: work2 });
      expect((await submit(proc.url)).status).toBe(200);
      proc.signal("SIGTERM");
      expect(await proc.exited).toBe(0);

      appendFileSync(join(policies, "changes.duty"), "# a comment added on the server\n");
      proc = await spawnGatewayProcess(config, { cwd: work2 });
      expect(proc.stdout()).toContain("WARNING: serving the last good bundle from the state directory");
      expect(proc.stderr()).toContain("serving the last good bundle from the state directory: revision 1");
      expect((await submit(proc.url)).status).toBe(200);
      const status = JSON.parse(readFileSync(join(work2, ".state", "policy-status.json"), "utf8")) as { degraded: boolean; active: { revision: number; source: string }; last_error: { code: string } };
      expect(status).toMatchObject({ degraded: true, active: { revision: 1, source: "last_good" }, last_error: { code: "BUNDLE_FILE_CHANGED" } });
    } finally {
      await proc?.kill();
      upstream.stop();
      rmSync(work2, { recursive: true, force: true });
    }
  }, 60_000);

  test("unsigned bundles too (require_signature = false): a half-written rule at restart serves the last good policy", async () => {
    const first = await startTestGateway();
    const unsignedDir = first.dir;
    await first.stop({ keepDir: true });
    try {
      writeFileSync(join(unsignedDir, "policies", "broken.duty"), "# a half-written rule\nduty oops GET /oops ->\n");
      const t = await startTestGateway({ dir: unsignedDir });
      try {
        expect(t.gw.policy.active!.source).toBe("last_good");
        expect(t.gw.policy.lastError!.code).toBe("POLICY_INVALID");
        expect(t.gw.policy.lastError!.problems.join("\n")).toContain("broken.duty:2:23: error[E_SYNTAX]");
        const token = await t.issuer.token({ sub: "alice", roles: ["developer"] });
        expect((await t.fetch("/changes/1/submit", { method: "POST", token })).status).toBe(200);
      } finally {
        await t.stop();
      }
    } finally {
      rmSync(unsignedDir, { recursive: true, force: true });
    }
  });

  test("refuses when the kept copy fails too: tampered, or below the rollback floor", async () => {
    await ranRevision1();
    appendFileSync(join(policyDir, "changes.duty"), "# stray\n");
    const kept = join(dir, ".state", LAST_GOOD_BUNDLE_DIR);
    const copy = join(kept, readdirSync(kept).find((n) => /^[0-9a-f]{64}$/.test(n))!);
    appendFileSync(join(copy, "changes.duty"), "# tampered copy\n");
    const tampered = await startTestGateway({ dir, configure: requireTwoSigners }).then(async (t) => { await t.stop(); return null; }, (e: unknown) => e as GatewayError);
    expect(tampered?.code).toBe("POLICY_UNAVAILABLE");
    expect(tampered?.message).toContain("fails too (BUNDLE_FILE_CHANGED)");

    // An untouched copy, but the state says a newer revision was accepted since (the floor).
    await ranRevision1();
    appendFileSync(join(policyDir, "changes.duty"), "# stray\n");
    writeFileSync(join(dir, ".state", REVISION_STATE_FILE), JSON.stringify({ revision: 7, digest: "f".repeat(64) }) + "\n");
    const floor = await startTestGateway({ dir, configure: requireTwoSigners }).then(async (t) => { await t.stop(); return null; }, (e: unknown) => e as GatewayError);
    expect(floor?.code).toBe("POLICY_UNAVAILABLE");
    expect(floor?.message).toContain("fails too (BUNDLE_ROLLBACK)");
  });
});
