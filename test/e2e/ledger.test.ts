// The duty ledger across the death of a gateway process: real `gateway serve` processes (each in
// its own process group, killed by PID whatever happens), a real upstream on loopback, the
// SQLite ledger in the state directory, and the operator's `gateway ledger` command.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { DEFAULT_RESERVATION_TTL_MS, openSqliteLedger } from "../../src/ledger/mod.ts";
import { main } from "../../src/cli/mod.ts";
import { createTestIssuer, runServeUntilExitOrBanner, SHIPPED_POLICIES, spawnGatewayProcess, startTestGateway, startTestUpstream, writeProcessConfig, type GatewayProcess } from "../support/harness.ts";

const post = (url: string, token: string) =>
  fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);

describe("kill -9 between forwarding and the upstream's answer", () => {
  test("the reservation left behind counts as performed, past the reservation TTL too, until an operator settles it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-ledger-kill-"));
    const upstream = startTestUpstream();
    // The submit reaches the upstream (which performs it) and its answer is held until the end.
    let answerHeld!: () => void;
    const held = new Promise<void>((resolve) => { answerHeld = resolve; });
    upstream.respond(async (req) => {
      if (new URL(req.url).pathname === "/changes/42/submit") await held;
      return Response.json({ ok: true });
    });
    const processes: GatewayProcess[] = [];
    try {
      const issuer = await createTestIssuer(dir);
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies") });
      // One person holding both roles: only the ledger keeps their submit and approve apart.
      const alice = await issuer.token({ sub: "alice", roles: ["developer", "reviewer"], mfa: true });
      const bob = await issuer.token({ sub: "bob", roles: ["reviewer"], mfa: true });

      const first = await spawnGatewayProcess(config, { cwd: dir });
      processes.push(first);
      const submit = post(`${first.url}/changes/42/submit`, alice).then((r) => r.status, (e: Error) => e);
      for (let i = 0; i < 2000 && !upstream.received.some((r) => r.path === "/changes/42/submit"); i++) await Bun.sleep(10);
      expect(upstream.received.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /changes/42/submit"]);
      await first.kill();
      expect(await submit).toBeInstanceOf(Error);

      // The reservation TTL (ten minutes) passes while the gateway is down: its time moves back.
      const db = new Database(join(dir, ".state", "ledger.sqlite"));
      const moved = db.run("UPDATE duty_entries SET at = at - ? WHERE reservation IS NOT NULL", [DEFAULT_RESERVATION_TTL_MS + 60_000]).changes;
      db.close();
      expect(moved).toBe(1);

      const second = await spawnGatewayProcess(config, { cwd: dir });
      processes.push(second);
      const approve = await post(`${second.url}/changes/42/approve`, alice);
      expect(approve.status).toBe(403);
      expect(((await approve.json()) as { code: string }).code).toBe("DENY_SOD_HISTORY");
      expect(upstream.received.map((r) => r.path)).toEqual(["/changes/42/submit"]);
      const warning = second.stderr().split("\n").filter((l) => l.includes("reservations of unknown outcome")).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(warning).toMatchObject([{ count: 1 }]);

      // The operator lists it while the gateway serves, checks the upstream, and confirms it.
      const stateDir = join(dir, ".state");
      const list = memoryIo();
      expect(await main(["ledger", "list-pending", "--state-dir", stateDir, "--format", "json"], list)).toBe(EXIT.ok);
      const pending = JSON.parse(list.stdout.join("\n")) as Array<{ id: string; sub: string; duty: string; state: string; checks: Array<{ key: string }> }>;
      expect(pending.map(({ sub, duty, state, checks }) => ({ sub, duty, state, keys: checks.map((c) => c.key) })))
        .toEqual([{ sub: "alice", duty: "submit_change", state: "unknown", keys: ["42"] }]);
      expect(await main(["ledger", "confirm", pending[0]!.id, "--state-dir", stateDir], memoryIo())).toBe(EXIT.ok);
      const settled = memoryIo();
      expect(await main(["ledger", "list-pending", "--state-dir", stateDir], settled)).toBe(EXIT.ok);
      expect(settled.stdout).toEqual(["no reservations pending"]);

      // Confirmed, it is a fact: alice stays denied, another reviewer passes.
      expect((await post(`${second.url}/changes/42/approve`, alice)).status).toBe(403);
      expect((await post(`${second.url}/changes/42/approve`, bob)).status).toBe(200);
      expect(upstream.received.map((r) => r.path)).toEqual(["/changes/42/submit", "/changes/42/approve"]);
    } finally {
      answerHeld();
      for (const p of processes) await p.kill();
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("a ledger file deleted between two runs", () => {
  // Regression: the restart recreated the ledger empty, and every earlier step was forgotten.
  test("the restart refuses with LEDGER_MISSING and exit 6, creating nothing; `serve --reset-ledger` starts a new ledger", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-ledger-deleted-"));
    const upstream = startTestUpstream();
    const processes: GatewayProcess[] = [];
    try {
      const issuer = await createTestIssuer(dir);
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies") });
      const alice = await issuer.token({ sub: "alice", roles: ["developer", "reviewer"], mfa: true });
      const ledgerFile = join(dir, ".state", "ledger.sqlite");

      const first = await spawnGatewayProcess(config, { cwd: dir });
      processes.push(first);
      expect((await post(`${first.url}/changes/42/submit`, alice)).status).toBe(200);
      first.signal("SIGTERM");
      expect(await first.exited).toBe(0);
      for (const suffix of ["", "-wal", "-shm"]) rmSync(ledgerFile + suffix, { force: true });

      const refused = await runServeUntilExitOrBanner(config, { cwd: dir });
      expect(refused.exitCode).toBe(6);
      expect(refused.stderr).toMatch(/^error\[LEDGER_MISSING\]: the duty ledger `[^`]+ledger\.sqlite` is missing, but `[^`]+ledger-identity\.json` records ledger [0-9a-f]{32} /m);
      expect(refused.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(ledgerFile)).toBe(false);

      // The operator accepts the loss: a new, empty ledger; alice's earlier submit is forgotten.
      const reset = await spawnGatewayProcess(config, { cwd: dir, args: ["--reset-ledger"] });
      processes.push(reset);
      expect(reset.stderr()).toContain("--reset-ledger: the recorded duty ledger was missing or replaced");
      expect((await post(`${reset.url}/changes/42/approve`, alice)).status).toBe(200);
      reset.signal("SIGTERM");
      expect(await reset.exited).toBe(0);
      // Recorded anew: the next start needs no flag.
      const next = await spawnGatewayProcess(config, { cwd: dir });
      processes.push(next);
      expect((await post(`${next.url}/changes/42/submit`, alice)).status).toBe(403);
    } finally {
      for (const p of processes) await p.kill();
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("reservations of unknown outcome are visible to monitoring", () => {
  test("a gateway starting on a ledger that holds one reports it in dutygate_ledger_unknown_reservations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-ledger-gauge-"));
    cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
    try {
      // A gateway that stopped while alice's submit waited for the upstream left this behind.
      const left = await openSqliteLedger({ path: join(dir, ".state", "ledger.sqlite"), retentionDays: 90 });
      const checks = [{ constraint: "separate:policies/changes.duty:20:1", param: "change", key: "42", duties: ["submit_change", "approve_change", "deploy_change"] }];
      expect((await left.reserve({ checks, duty: "submit_change", sub: "alice", at: Date.now() })).ok).toBe(true);
      await left.close();
      const t = await startTestGateway({ dir });
      try {
        expect(t.gw.metrics.render()).toContain("\ndutygate_ledger_unknown_reservations 1\n");
      } finally {
        await t.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a guarded request sent upstream whose answer never comes", () => {
  // Regression: the gateway released the reservation on a 504 or a client gone mid-request, so the
  // person's next duty passed although the upstream had received, and performed, the first.
  test("504 (no answer in time) and 499 (the client left) leave the reservation, of unknown outcome; another duty of the person is denied", async () => {
    let answerHeld!: () => void;
    const held = new Promise<void>((resolve) => { answerHeld = resolve; });
    const t = await startTestGateway({
      configure: (c) => ({ ...c, upstreams: { ...c.upstreams, changes: { ...c.upstreams.changes!, timeoutMs: 300 } } }),
    });
    try {
      t.upstream.respond(async (req) => {
        if (new URL(req.url).pathname.endsWith("/submit")) await held;
        return Response.json({ ok: true });
      });
      const alice = await t.issuer.token({ sub: "alice", roles: ["developer", "reviewer"], mfa: true });
      const timedOut = await t.fetch("/changes/42/submit", { method: "POST", token: alice });
      expect(timedOut.status).toBe(504);
      expect(((await timedOut.json()) as { code: string }).code).toBe("UPSTREAM_TIMEOUT");

      const leaving = new AbortController();
      const left = t.fetch("/changes/43/submit", { method: "POST", token: alice, signal: leaving.signal }).then((r) => r.status, (e: Error) => e.name);
      for (let i = 0; i < 2000 && !t.upstream.received.some((r) => r.path === "/changes/43/submit"); i++) await Bun.sleep(5);
      leaving.abort();
      expect(await left).toBe("AbortError");

      expect(t.upstream.received.map((r) => r.path)).toEqual(["/changes/42/submit", "/changes/43/submit"]);
      // Both reservations stay and read as unknown at once (the client's leaving reaches the
      // gateway on its own time: wait, bounded, for the 499 to settle).
      let pending = await t.gw.ledger.pending();
      for (let i = 0; i < 400 && pending.filter((p) => p.state === "unknown").length < 2; i++) {
        await Bun.sleep(10);
        pending = await t.gw.ledger.pending();
      }
      expect(pending.map((p) => [p.checks[0]!.key, p.state])).toEqual([["42", "unknown"], ["43", "unknown"]]);
      for (const change of ["42", "43"]) {
        const approve = await t.fetch(`/changes/${change}/approve`, { method: "POST", token: alice });
        expect({ change, status: approve.status }).toEqual({ change, status: 403 });
      }
      expect(t.upstream.received.map((r) => r.path)).toEqual(["/changes/42/submit", "/changes/43/submit"]);
    } finally {
      answerHeld();
      await t.stop();
    }
  }, 30_000);
});
