// Several gateway instances sharing one PostgreSQL duty ledger, end to end, against a real
// PostgreSQL 15 server (test/support/postgres.ts): two gateway processes racing one person's
// submit and approve of the same changes; the server stopped under load and started again; a
// rollback refused by the instance that never saw the newer bundle revision.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey, type SigningKeyPair } from "../../src/bundle/mod.ts";
import { signBundleForTest } from "../support/sign-bundle.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { GatewayError } from "../../src/errors.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { memoryIo } from "../../src/cli/io.ts";
import { openPostgresLedger } from "../../src/ledger/mod.ts";
import { main } from "../../src/cli/mod.ts";
import { waitFor } from "../support/wait-for.ts";
import { PG_PASSWORD, postgresSkipReason, startTestPostgres, type TestPostgres } from "../support/postgres.ts";
import {
  createTestIssuer, runServeUntilExitOrBanner, SHIPPED_POLICIES, spawnGatewayProcess, startTestGateway, startTestUpstream, writeProcessConfig,
  type GatewayProcess, type TestGateway,
} from "../support/harness.ts";

const skip = postgresSkipReason("the fleet tests (shared PostgreSQL ledger)");
let pg: TestPostgres;
let work: string;
beforeAll(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), "dutygate-fleet-"));
  pg = await startTestPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/** An in-process gateway's config pointed at the shared ledger in `url`. */
const onPostgres = (url: string, timeoutMs = 10_000, more: (c: GatewayConfig) => GatewayConfig = (c) => c) => (c: GatewayConfig): GatewayConfig =>
  more({ ...c, ledger: { ...c.ledger, postgres: { url, passwordFile: pg.passwordFile, passwordEnv: null, caFile: null, timeoutMs } } });

async function codeOf(res: Response): Promise<string | null> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { code?: string }).code ?? null;
  } catch {
    return null;
  }
}

describe.skipIf(skip !== null)("a fleet on one PostgreSQL ledger", () => {
  test("two gateway processes, racing submit/approve pairs by one person spread over both: no change gets two duties from that person", async () => {
    const url = pg.createDatabase("fleet_race");
    const upstream = startTestUpstream();
    const issuer = await createTestIssuer(work, "race");
    const gateways: GatewayProcess[] = [];
    try {
      for (const name of ["a", "b"]) {
        const dir = join(work, `race-${name}`);
        const policyDir = join(dir, "policies");
        cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
        const config = writeProcessConfig(dir, {
          upstreamUrl: upstream.url, issuer, policyDir,
          extra: `[ledger]\nurl = ${JSON.stringify(url)}\npassword_file = ${JSON.stringify(pg.passwordFile)}\ntimeout = "15s"\n`,
        });
        gateways.push(await spawnGatewayProcess(config, { cwd: dir, deadlineMs: 60_000 }));
      }
      const token = await issuer.token({ sub: "mallory", roles: ["developer", "reviewer"], mfa: true }, { ttlSeconds: 600 });
      const post = (gateway: GatewayProcess, path: string) =>
        fetch(gateway.url + path, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit)
          .then(async (res) => ({ status: res.status, code: res.status === 200 ? null : await codeOf(res) }));

      // Bounded in count (500 pairs) and in time (90 s, on a loaded machine); 16 pairs at a time.
      const PAIRS = 500;
      const deadline = Date.now() + 90_000;
      const outcomes: Array<{ key: string; submit: { status: number; code: string | null }; approve: { status: number; code: string | null }; submitVia: number }> = [];
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < PAIRS && Date.now() < deadline) {
          const i = next++;
          const key = `fleet-${i}`;
          const submitVia = i % 2;
          // The two steps of one change at once, each through another instance.
          const [submit, approve] = await Promise.all([
            post(gateways[submitVia]!, `/changes/${key}/submit`),
            post(gateways[1 - submitVia]!, `/changes/${key}/approve`),
          ]);
          outcomes.push({ key, submit, approve, submitVia });
        }
      }));
      expect(outcomes.length).toBeGreaterThanOrEqual(100);

      // What reached the upstream: per change, how many of mallory's duties were performed.
      const performed = new Map<string, number>();
      for (const r of upstream.received) {
        const m = /^\/changes\/(fleet-\d+)\/(submit|approve)$/.exec(r.path);
        if (m && r.method === "POST") performed.set(m[1]!, (performed.get(m[1]!) ?? 0) + 1);
      }
      const twoDuties = [...performed].filter(([, n]) => n > 1).map(([key]) => key);
      expect(twoDuties).toEqual([]);
      // Every pair had exactly one winner; the loser was refused by separation of duties.
      const winners = outcomes.map((o) => Number(o.submit.status === 200) + Number(o.approve.status === 200));
      expect(winners.filter((n) => n !== 1)).toEqual([]);
      const losers = outcomes.map((o) => (o.submit.status === 200 ? o.approve : o.submit));
      expect(new Set(losers.map((l) => `${l.status} ${l.code}`))).toEqual(new Set(["403 DENY_SOD_HISTORY"]));
      expect(performed.size).toBe(outcomes.length);
      // Both instances won races (the ledger, not one instance, decided).
      const wonVia = new Set(outcomes.map((o) => (o.submit.status === 200 ? o.submitVia : 1 - o.submitVia)));
      expect(wonVia).toEqual(new Set([0, 1]));
      // The ledger holds one confirmed fact per change.
      expect(pg.psql("SELECT count(*) FROM duty_entries WHERE reservation IS NULL AND sub = 'mallory'", "fleet_race").trim()).toBe(String(outcomes.length));
      for (const g of gateways) expect(g.stdout() + g.stderr()).not.toContain(PG_PASSWORD);
    } finally {
      await Promise.all(gateways.map((g) => g.kill()));
      upstream.stop();
    }
  }, 240_000);

  test("PostgreSQL stopped mid-load: guarded requests get 503 LEDGER_UNAVAILABLE, none is forwarded without a reservation, unguarded ones pass, readiness says why; all is served again once it is back", async () => {
    const url = pg.createDatabase("fleet_outage");
    // Every refused request logs an error: kept, not printed, and shown if the test gives up.
    const logLines: string[] = [];
    const t = await startTestGateway({ admin: true, adminIdentities: { ops: { roles: ["sre"], mfa: true } }, configure: onPostgres(url, 5000), log: createLogger("info", (line) => logLines.push(line)) });
    const ops = await t.adminPki!.client("ops");
    try {
      const token = await t.issuer.token({ sub: "dev", roles: ["developer"], mfa: true }, { ttlSeconds: 600 });
      type Outcome = { key: string; status: number; code: string | null; phase: "before" | "down" | "after" };
      const guarded: Outcome[] = [];
      const unguarded: number[] = [];
      let phase: Outcome["phase"] = "before";
      let n = 0;
      let stopLoad = false;
      // Bounded in time by the phases below and in count (5000 requests at most).
      const load = Promise.all(Array.from({ length: 4 }, async () => {
        while (!stopLoad && n < 5000) {
          const key = `outage-${n++}`;
          const at = phase;
          const res = await t.fetch(`/changes/${key}/submit`, { method: "POST", token });
          guarded.push({ key, status: res.status, code: res.status === 200 ? null : await codeOf(res), phase: at });
          const read = await t.fetch(`/changes/${key}`, { token });
          await read.arrayBuffer();
          unguarded.push(read.status);
        }
      }));
      const detail = () => `last answers ${JSON.stringify(guarded.slice(-3))}; last log lines:\n${logLines.slice(-5).join("\n")}`;
      await waitFor("requests before the outage", () => guarded.filter((g) => g.status === 200).length >= 20, { deadlineMs: 30_000, intervalMs: 50, detail });
      await pg.stop();
      phase = "down";
      await waitFor("refusals while down", () => guarded.filter((g) => g.phase === "down" && g.status === 503).length >= 20, { deadlineMs: 30_000, intervalMs: 50, detail });
      const ready = await t.adminFetch("/-/readyz", { cert: ops });
      expect(ready.status).toBe(503);
      const readiness = (await ready.json()) as { ledger_available: boolean; reasons: string[] };
      expect(readiness.ledger_available).toBe(false);
      expect(readiness.reasons.some((r) => r.startsWith("the duty ledger is unavailable: "))).toBe(true);
      await pg.start();
      phase = "after";
      await waitFor("guarded requests served again", () => guarded.filter((g) => g.phase === "after" && g.status === 200).length >= 20, { deadlineMs: 30_000, intervalMs: 50, detail });
      stopLoad = true;
      await load;

      // Only two answers to a guarded request: served, or 503 LEDGER_UNAVAILABLE.
      expect(new Set(guarded.filter((g) => g.status !== 200).map((g) => `${g.status} ${g.code}`))).toEqual(new Set(["503 LEDGER_UNAVAILABLE"]));
      expect(unguarded.every((s) => s === 200)).toBe(true);
      // Nothing forwarded without a reservation: every submit the upstream saw has its row in the
      // ledger (confirmed, or pending where the confirm met the outage), and no refused one reached it.
      const forwarded = t.upstream.received.filter((r) => r.method === "POST").map((r) => /^\/changes\/(outage-\d+)\/submit$/.exec(r.path)?.[1]);
      const inLedger = new Set(pg.psql("SELECT key FROM duty_entries WHERE sub = 'dev'", "fleet_outage").split("\n").filter(Boolean));
      expect(forwarded.filter((key) => key === undefined || !inLedger.has(key))).toEqual([]);
      const refused = new Set(guarded.filter((g) => g.status === 503).map((g) => g.key));
      expect(forwarded.filter((key) => refused.has(key!))).toEqual([]);
      expect(new Set(forwarded).size).toBe(guarded.filter((g) => g.status === 200).length);
      const readyAgain = await t.adminFetch("/-/readyz", { cert: ops });
      expect(readyAgain.status).toBe(200);
    } finally {
      await t.stop();
    }
  }, 240_000);

  test("a gateway whose ledger cannot be reached does not start: exit 6, LEDGER_UNAVAILABLE, the password in no output", async () => {
    const dir = join(work, "unreachable");
    const policyDir = join(dir, "policies");
    cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
    const issuer = await createTestIssuer(work, "unreachable");
    // A port nothing listens on: the test server's, stopped.
    const config = writeProcessConfig(dir, {
      upstreamUrl: "http://127.0.0.1:9", issuer, policyDir,
      extra: `[ledger]\nurl = "postgres://dutygate@127.0.0.1:${pg.port}/dutygate"\npassword_file = ${JSON.stringify(pg.passwordFile)}\ntimeout = "1s"\n`,
    });
    await pg.stop();
    try {
      const run = await runServeUntilExitOrBanner(config, { cwd: dir, deadlineMs: 60_000 });
      expect(run.exitCode).toBe(6);
      expect(run.stderr).toContain("LEDGER_UNAVAILABLE");
      expect(run.stderr).toContain(`postgres://dutygate@127.0.0.1:${pg.port}/dutygate`);
      expect(run.stdout + run.stderr).not.toContain(PG_PASSWORD);
    } finally {
      await pg.start();
    }
  }, 120_000);

  test("a gateway whose PostgreSQL database was swapped for an empty one does not start: exit 6, LEDGER_MISSING, nothing created; --reset-ledger starts", async () => {
    const url = pg.createDatabase("fleet_swapped");
    const dir = join(work, "swapped");
    const policyDir = join(dir, "policies");
    cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
    const issuer = await createTestIssuer(work, "swapped");
    const config = writeProcessConfig(dir, {
      upstreamUrl: "http://127.0.0.1:9", issuer, policyDir,
      extra: `[ledger]\nurl = ${JSON.stringify(url)}\npassword_file = ${JSON.stringify(pg.passwordFile)}\ntimeout = "10s"\n`,
    });
    const first = await runServeUntilExitOrBanner(config, { cwd: dir, deadlineMs: 60_000 });
    expect([first.exitCode, first.stdout]).toEqual([null, expect.stringContaining("dutygate listening on")]);
    const recorded = pg.psql("SELECT value FROM ledger_meta WHERE name = 'ledger_id'", "fleet_swapped").trim();
    pg.psql("DROP DATABASE fleet_swapped WITH (FORCE)");
    pg.createDatabase("fleet_swapped");
    const refused = await runServeUntilExitOrBanner(config, { cwd: dir, deadlineMs: 60_000 });
    expect(refused.exitCode).toBe(6);
    expect(refused.stderr).toContain("LEDGER_MISSING");
    expect(refused.stderr).toContain(recorded);
    expect(pg.psql("SELECT to_regclass('ledger_meta') IS NULL", "fleet_swapped").trim()).toBe("t");
    const reset = await runServeUntilExitOrBanner(config, { cwd: dir, deadlineMs: 60_000, args: ["--reset-ledger"] });
    expect([reset.exitCode, reset.stdout]).toEqual([null, expect.stringContaining("dutygate listening on")]);
    expect(pg.psql("SELECT value FROM ledger_meta WHERE name = 'ledger_id'", "fleet_swapped").trim()).not.toBe(recorded);
  }, 180_000);

  test("gateway ledger --config lists and settles the PostgreSQL ledger's reservations of unknown outcome", async () => {
    const url = pg.createDatabase("fleet_operator");
    const dir = join(work, "operator");
    const policyDir = join(dir, "policies");
    cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
    const issuer = await createTestIssuer(work, "operator");
    const config = writeProcessConfig(dir, {
      upstreamUrl: "http://127.0.0.1:9", issuer, policyDir,
      extra: `[ledger]\nurl = ${JSON.stringify(url)}\npassword_file = ${JSON.stringify(pg.passwordFile)}\n`,
    });
    const check = { constraint: "separate:changes.duty:20:1", param: "change", key: "77", duties: ["submit_change", "approve_change"] };
    const ledger = await openPostgresLedger({ url, password: PG_PASSWORD, retentionDays: 30 });
    try {
      const r = await ledger.reserve({ checks: [check], duty: "submit_change", sub: "alice", at: Date.now() });
      if (!r.ok) throw new Error("reserve refused");
      await ledger.abandon(r.reservation); // no answer came: of unknown outcome
      const list = memoryIo();
      expect(await main(["ledger", "list-pending", "--config", config], list)).toBe(0);
      expect(list.stdout.join("\n")).toContain(`${r.reservation.id}  unknown`);
      const release = memoryIo();
      expect(await main(["ledger", "release", r.reservation.id, "--config", config], release)).toBe(0);
      expect(await ledger.pending()).toEqual([]);
      expect((await ledger.reserve({ checks: [check], duty: "approve_change", sub: "alice", at: Date.now() })).ok).toBe(true);
    } finally {
      await ledger.close();
    }
  }, 60_000);

  describe("rollback protection across the fleet", () => {
    let alice: SigningKeyPair;
    let trustedKeysFile: string;
    // One signed bundle per revision, copied to every instance that gets it: a manifest records
    // when it was signed, so signing the same revision twice can make two different bundles.
    const bundles = new Map<string, string>();
    const signed = async (dir: string, revision: number, extra?: string) => {
      const key = `${revision}\0${extra ?? ""}`;
      let template = bundles.get(key);
      if (!template) {
        template = join(work, `signed-${bundles.size}`);
        cpSync(SHIPPED_POLICIES, template, { recursive: true });
        // Each revision differs in content, as real ones do.
        writeFileSync(join(template, "revision.duty"), `duty read_revision_${revision} GET /revision-${revision} -> changes\ngrant developer read_revision_${revision}\n${extra ?? ""}`);
        await signBundleForTest(template, [alice], { revision });
        bundles.set(key, template);
      }
      cpSync(template, dir, { recursive: true });
    };
    const requireSignature = (c: GatewayConfig): GatewayConfig => ({ ...c, policy: { ...c.policy, requireSignature: true, trustedKeysFile, minSigners: 1, watch: false } });

    beforeAll(async () => {
      if (skip) return;
      alice = await generateSigningKey({ kid: "alice" });
      trustedKeysFile = join(work, "trusted.jwks");
      writeFileSync(trustedKeysFile, JSON.stringify({ keys: [alice.publicJwk] }));
    });

    test("a rollback is refused by the instance that never saw the newer revision, and by a new instance", async () => {
      const url = pg.createDatabase("fleet_revision");
      const start = async (name: string, revision: number) => {
        const staged = join(work, `revision-${name}`);
        await signed(staged, revision);
        return startTestGateway({ policyDir: staged, configure: onPostgres(url, 10_000, requireSignature) });
      };
      const instances: TestGateway[] = [];
      try {
        const a = await start("a", 1);
        instances.push(a);
        const b = await start("b", 1);
        instances.push(b);
        expect([a.gw.policy.active!.revision, b.gw.policy.active!.revision]).toEqual([1, 1]);

        // Revision 3 reaches instance A only.
        rmSync(a.config.policy.dir, { recursive: true, force: true });
        await signed(a.config.policy.dir, 3);
        await a.gw.reload("test");
        expect(a.gw.policy.lastError).toBeNull();
        expect(a.gw.policy.active!.revision).toBe(3);

        // Revision 2 is newer than anything B saw, but older than what the fleet accepted.
        rmSync(b.config.policy.dir, { recursive: true, force: true });
        await signed(b.config.policy.dir, 2);
        await b.gw.reload("test");
        expect(b.gw.policy.lastError?.code).toBe("BUNDLE_ROLLBACK");
        expect(b.gw.policy.lastError?.problems.join("\n")).toContain("older than the accepted revision 3");
        expect(b.gw.policy.active!.revision).toBe(1);

        // A new instance with an empty state directory refuses to start on revision 2.
        const refused = await start("c", 2).then((t) => { instances.push(t); return null; }, (e: unknown) => e);
        expect(refused).toBeInstanceOf(GatewayError);
        expect((refused as GatewayError).code).toBe("POLICY_UNAVAILABLE");
        expect((refused as GatewayError).message).toContain("error[BUNDLE_ROLLBACK]");

        // Revision 3 itself is accepted anywhere; revision 4 moves the whole fleet on.
        rmSync(b.config.policy.dir, { recursive: true, force: true });
        cpSync(a.config.policy.dir, b.config.policy.dir, { recursive: true });
        await b.gw.reload("test");
        expect(b.gw.policy.active!.revision).toBe(3);
        expect(pg.psql("SELECT revision FROM bundle_revision", "fleet_revision").trim()).toBe("3");
      } finally {
        for (const t of instances) await t.stop();
      }
    }, 120_000);
  });
});
