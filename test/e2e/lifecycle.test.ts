// Graceful shutdown and signals: first the drain (readiness 503, answers close their
// connections, nothing is cut), then requests already accepted complete, new connections are
// refused, the audit log is left closed and verifiable; `gateway serve` exits 0 on SIGTERM and
// reloads its policy on SIGHUP.
import { describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { connect as connectTls, type TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { expandOutcomes, verifyAuditFiles } from "../../src/audit/mod.ts";
import { createTestIssuer, createTestPki, SHIPPED_POLICIES, spawnGatewayProcess, startTestGateway, startTestUpstream, writeProcessConfig } from "../support/harness.ts";

/** A gate the upstream waits on: requests pile up at the upstream until it opens. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** Polls `check` every 10 ms, at most `tries` times; throws when it never holds. */
async function until(what: string, check: () => boolean | Promise<boolean>, tries = 1000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await Bun.sleep(10);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Whether a fresh TCP connection to `url`'s port is refused. */
function connectionRefused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once("connect", () => { socket.destroy(); resolve(false); });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

function readJwks(stateDir: string): JSONWebKeySet {
  return JSON.parse(readFileSync(join(stateDir, "gateway-key", "public.jwks"), "utf8")) as JSONWebKeySet;
}

function records(auditDir: string, file = "audit-0000000000000000.jsonl"): Array<Record<string, unknown>> {
  return readFileSync(join(auditDir, file), "utf8").split("\n").filter(Boolean).flatMap((l) => expandOutcomes(JSON.parse(l) as Record<string, unknown>));
}

describe("graceful stop of a running gateway", () => {
  test("requests already accepted complete; new connections are refused; the audit log verifies", async () => {
    const t = await startTestGateway();
    try {
      const g = gate();
      t.upstream.respond(async (req) => {
        await g.wait;
        return Response.json({ ok: true, path: new URL(req.url).pathname });
      });
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const IN_FLIGHT = 24;
      const pending = Array.from({ length: IN_FLIGHT }, async (_, i) => {
        const res = await t.fetch(`/changes/${i}/submit`, { method: "POST", token, body: `change ${i}` });
        return { status: res.status, body: (await res.json()) as { path?: string }, requestId: res.headers.get("x-request-id") };
      });
      // Every request has passed the gateway's decision and waits at the upstream.
      await until("all requests at the upstream", () => t.upstream.received.length === IN_FLIGHT);

      const stopped = t.gw.stop({ deadlineMs: 30_000 });
      expect(await connectionRefused(t.url)).toBe(true);
      g.open();
      const answers = await Promise.all(pending);
      await stopped;

      expect(answers.map((a) => a.status)).toEqual(new Array(IN_FLIGHT).fill(200));
      expect(answers.map((a) => a.body.path).sort()).toEqual(Array.from({ length: IN_FLIGHT }, (_, i) => `/changes/${i}/submit`).sort());
      const result = await verifyAuditFiles([t.config.audit.dir], { keys: readJwks(t.config.stateDir) });
      expect(result.break).toBeNull();
      expect(result.recordsAfterLastCheckpoint).toBe(0);
      const log = records(t.config.audit.dir);
      for (const a of answers) {
        expect(log.filter((r) => r.request_id === a.requestId).map((r) => r.type)).toEqual(["decision", "outcome"]);
      }
      expect(log.at(-1)!.type).toBe("checkpoint");
    } finally {
      await t.stop();
    }
  }, 60_000);

  test("under a bounded load: every answer is complete and on record; nothing half-done", async () => {
    const t = await startTestGateway();
    try {
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      let answered = 0;
      let stopping: Promise<void> | null = null;
      const outcomes: Array<{ status: number; requestId: string | null; ok: boolean } | { error: string }> = [];
      const worker = async (w: number) => {
        for (let i = 0; i < 50; i++) {
          try {
            const res = await t.fetch(`/changes/${w}-${i}/submit`, { method: "POST", token });
            const body = (await res.json()) as { ok?: boolean };
            outcomes.push({ status: res.status, requestId: res.headers.get("x-request-id"), ok: body.ok === true });
            if (++answered === 150) stopping = t.gw.stop({ deadlineMs: 30_000 });
          } catch (e) {
            outcomes.push({ error: (e as Error).message });
            if (stopping) return; // the listener is gone: this worker is done
            throw e;
          }
        }
      };
      await Promise.all(Array.from({ length: 12 }, (_, w) => worker(w)));
      expect(stopping).not.toBeNull();
      await stopping;
      const answers = outcomes.filter((o): o is { status: number; requestId: string | null; ok: boolean } => "status" in o);
      expect(answers.length).toBeGreaterThanOrEqual(150);
      // Whatever got an answer got a whole one from the upstream: no 5xx from the shutdown.
      expect(answers.filter((a) => a.status !== 200 || !a.ok)).toEqual([]);
      // Only connection-level refusals after the stop, and at most one per worker.
      expect(outcomes.length - answers.length).toBeLessThanOrEqual(12);
      const result = await verifyAuditFiles([t.config.audit.dir], { keys: readJwks(t.config.stateDir) });
      expect(result.break).toBeNull();
      const log = records(t.config.audit.dir);
      const decided = new Set(log.filter((r) => r.type === "decision").map((r) => r.request_id));
      const outcomeOf = new Set(log.filter((r) => r.type === "outcome").map((r) => r.request_id));
      expect(answers.filter((a) => !decided.has(a.requestId) || !outcomeOf.has(a.requestId))).toEqual([]);
    } finally {
      await t.stop();
    }
  }, 60_000);
});

/** One kept-alive HTTP/1.1 connection over TLS: requests in turn, and how the connection ended. */
async function keptAlive(url: string): Promise<{ request(lines: string[]): Promise<{ status: number; headers: Record<string, string> }>; ended: Promise<string> }> {
  const { port } = new URL(url);
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connectTls({ host: "127.0.0.1", port: Number(port), rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => resolve(s));
    s.once("error", reject);
  });
  socket.setTimeout(30_000, () => socket.destroy(new Error("timed out")));
  let buffer = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    wake?.();
  });
  const ended = new Promise<string>((resolve) => {
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    socket.once("end", () => resolve("closed cleanly"));
  });
  return {
    ended,
    async request(lines) {
      socket.write([...lines, "", ""].join("\r\n"));
      for (let guard = 0; guard < 10_000; guard++) {
        const headEnd = buffer.indexOf("\r\n\r\n");
        if (headEnd >= 0) {
          const head = buffer.subarray(0, headEnd).toString("latin1").split("\r\n");
          const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
          const rest = buffer.subarray(headEnd + 4);
          const length = headers["content-length"] === undefined ? null : Number(headers["content-length"]);
          const complete = length !== null ? rest.length >= length : rest.includes("\r\n0\r\n\r\n") || rest.subarray(0, 5).toString() === "0\r\n\r\n";
          if (complete) {
            buffer = length !== null ? rest.subarray(length) : Buffer.alloc(0);
            return { status: Number(head[0]!.split(" ")[1]), headers };
          }
        }
        if (socket.destroyed || socket.readableEnded) throw new Error(`connection ended before an answer: ${await ended}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          socket.once("close", resolve);
        });
        wake = null;
      }
      throw new Error("no complete answer");
    },
  };
}

describe("the drain before a stop (`shutdown.drain`)", () => {
  // Regression: a stop closed both listeners at once: readiness answered "connection refused"
  // instead of 503, and a request on a kept-alive connection met ECONNRESET.
  test.each(["bun", "node"] as const)("readiness answers 503 first; a kept-alive request gets its answer with Connection: close and the connection closes cleanly (%s backend)", async (backend) => {
    // A client CA (client certificates optional) puts the operational listener on the node backend.
    const caDir = mkdtempSync(join(tmpdir(), "dutygate-drain-ca-"));
    const clientCa = backend === "node" ? (await createTestPki(caDir, "op-ca")).ca.certFile : null;
    const t = await startTestGateway({ admin: true, configure: (c) => ({ ...c, listen: { ...c.listen, clientCaFile: clientCa, requireClientCertificate: false }, shutdown: { drainMs: 60_000, timeoutMs: 2000 } }) });
    expect(t.gw.operational.backend).toBe(backend);
    let stopped: Promise<void> | null = null;
    try {
      const prober = await t.adminPki!.client("probe");
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const connection = await keptAlive(t.url);
      const submit = ["POST /changes/1/submit HTTP/1.1", "host: 127.0.0.1", `authorization: Bearer ${token}`, "content-length: 0"];
      const first = await connection.request(submit);
      expect(first.status).toBe(200);
      expect(first.headers.connection ?? "keep-alive").not.toBe("close");

      stopped = t.gw.stop(); // the configured drain: 60 s, cut short below
      const ready = await t.adminFetch("/-/readyz", { cert: prober });
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reasons: string[] }).reasons).toContain("the gateway is shutting down");

      const during = await connection.request(submit);
      expect(during.status).toBe(200);
      expect(during.headers.connection).toBe("close");
      expect(await connection.ended).toBe("closed cleanly");
      // New connections are still answered while draining.
      expect((await t.fetch("/changes/2/submit", { method: "POST", token })).status).toBe(200);

      t.gw.stop({ drainMs: 0 }); // ends the drain now
      await stopped;
      expect(await connectionRefused(t.url)).toBe(true);
    } finally {
      if (stopped === null) stopped = t.gw.stop({ drainMs: 0 });
      else t.gw.stop({ drainMs: 0 });
      await stopped;
      await t.stop();
      rmSync(caDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("`gateway serve` as a process", () => {
  // Regression: a second stop signal (systemd signals every process of the unit, and a supervisor
  // or wrapper passes it on too) hit the default action and killed the process mid-stop.
  test("SIGTERM drains for `shutdown.drain`; a second SIGTERM meanwhile changes nothing: exit 0, the audit log closed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-drain-process-"));
    const upstream = startTestUpstream();
    let proc: Awaited<ReturnType<typeof spawnGatewayProcess>> | null = null;
    try {
      const issuer = await createTestIssuer(dir);
      const policyDir = join(dir, "policies");
      cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir, shutdownToml: `drain = "5s"` });
      proc = await spawnGatewayProcess(config, { cwd: dir });
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const res = await fetch(`${proc.url}/changes/1/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
      expect(res.status).toBe(200);
      proc.signal("SIGTERM");
      await until("the stop to begin", () => proc!.stderr().includes("SIGTERM: stopping gracefully"));
      proc.signal("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(proc.stderr()).toContain("draining for 5000 ms");
      expect(proc.stderr()).toContain("SIGTERM: already stopping");
      const result = await verifyAuditFiles([join(dir, "audit")], { keys: readJwks(join(dir, ".state")) });
      expect(result.break).toBeNull();
      expect(result.recordsAfterLastCheckpoint).toBe(0);
    } finally {
      await proc?.kill();
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("SIGHUP reloads the policy (watch off); SIGTERM finishes the request in flight and exits 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-signals-"));
    const upstream = startTestUpstream();
    let proc: Awaited<ReturnType<typeof spawnGatewayProcess>> | null = null;
    try {
      const issuer = await createTestIssuer(dir);
      const policyDir = join(dir, "policies");
      cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir });
      proc = await spawnGatewayProcess(config, { cwd: dir });
      const url = proc.url;
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const call = (path: string, method = "GET") => fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);

      expect((await call("/logs/release-notes")).status).toBe(403);
      writeFileSync(join(policyDir, "release.duty"), "duty read_release_notes GET /logs/release-notes -> logs\ngrant developer read_release_notes\n");
      // Watch is off: nothing changes until the signal.
      expect((await call("/logs/release-notes")).status).toBe(403);
      proc.signal("SIGHUP");
      await until("the reloaded policy to allow the new duty", async () => (await call("/logs/release-notes")).status === 200, 500);
      expect(proc.stderr()).toContain("SIGHUP: reloading policy and certificates");
      const status = JSON.parse(readFileSync(join(dir, ".state", "policy-status.json"), "utf8")) as { active: { files: string[] }; last_error: unknown };
      expect(status.active.files.some((f) => f.endsWith("release.duty"))).toBe(true);
      expect(status.last_error).toBeNull();

      const g = gate();
      upstream.respond(async () => {
        await g.wait;
        return Response.json({ ok: true });
      });
      const before = upstream.received.length;
      const inFlight = call("/changes/1/submit", "POST");
      await until("the request at the upstream", () => upstream.received.length === before + 1);
      proc.signal("SIGTERM");
      await until("the listener to close", () => connectionRefused(url), 500);
      g.open();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ ok: true });
      expect(await proc.exited).toBe(0);
      expect(proc.stderr()).toContain("SIGTERM: stopping gracefully");
      const result = await verifyAuditFiles([join(dir, "audit")], { keys: readJwks(join(dir, ".state")) });
      expect(result.break).toBeNull();
      expect(result.recordsAfterLastCheckpoint).toBe(0);
    } finally {
      await proc?.kill();
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
