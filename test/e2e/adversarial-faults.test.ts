// Dependencies failing mid-flight, and exceptions, against the real gateway on both listener
// backends: the duty ledger closed, the audit log failing, the JWKS file deleted or garbled, the
// policy directory deleted, upstreams that reset or answer nonsense, a handler that throws, and a
// pipeline whose identity-token signing fails after the decision was recorded. The promise under
// test: fail closed (deny or a clean problem with a request id), keep serving the last good state,
// never forward what was not allowed and recorded, never hang, never crash.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { createJwtAuthenticator } from "../../src/authn/mod.ts";
import type { GatewayConfig, ListenerConfig } from "../../src/config/types.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { createPipeline } from "../../src/gateway/pipeline.ts";
import type { IdentityTokenSigner } from "../../src/http/mod.ts";
import { loadTlsMaterial, startListener, type RunningListener } from "../../src/tls/mod.ts";
import { createCa } from "../support/pki.ts";
import { expandOutcomes } from "../../src/audit/mod.ts";
import { startTestGateway, TEST_AUDIENCE, TEST_ISSUER, type TestGateway } from "../support/harness.ts";
import { waitFor } from "../support/wait-for.ts";
import { rawRequest } from "./raw.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
type Backend = "bun" | "node";
const BACKENDS: Backend[] = ["bun", "node"];
const portOf = (url: string) => Number(new URL(url).port);

let caDir: string;
let clientCaFile: string;

beforeAll(async () => {
  caDir = mkdtempSync(join(tmpdir(), "dutygate-adv-faults-ca-"));
  clientCaFile = (await createCa(caDir, "adversarial-unused-ca")).certFile;
});
afterAll(() => {
  if (caDir) rmSync(caDir, { recursive: true, force: true });
});

/** `configure` that puts the operational listener on `backend` (a client CA selects node:http2). */
function onBackend(backend: Backend, more: (c: GatewayConfig) => GatewayConfig = (c) => c) {
  return (c: GatewayConfig) => more(backend === "node" ? { ...c, listen: { ...c.listen, clientCaFile, requireClientCertificate: false } } : c);
}

async function codeOf(res: Response): Promise<string> {
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(res.headers.get("x-request-id")).toMatch(UUID);
  return ((await res.json()) as { code: string }).code;
}

function auditRecords(dir: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort()) {
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) if (line.trim() !== "") out.push(...expandOutcomes(JSON.parse(line) as Record<string, unknown>));
  }
  return out;
}

for (const backend of BACKENDS) {
  describe(`dependencies failing on the ${backend} backend`, () => {
    test("the duty ledger closed: guarded duties get 503 LEDGER_UNAVAILABLE and are not forwarded; unguarded ones still pass", async () => {
      const t = await startTestGateway({ configure: onBackend(backend) });
      try {
        expect(t.gw.operational.backend).toBe(backend);
        const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
        await t.gw.ledger.close();
        const before = t.upstream.received.length;
        const guarded = await t.fetch("/changes/1/submit", { method: "POST", token });
        expect(guarded.status).toBe(503);
        expect(await codeOf(guarded)).toBe("LEDGER_UNAVAILABLE");
        expect(t.upstream.received.length).toBe(before);
        const unguarded = await t.fetch("/changes/1", { token });
        expect(unguarded.status).toBe(200);
        expect(t.upstream.received.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(["GET /changes/1"]);
      } finally {
        await t.stop();
      }
    });

    test("the audit log failing (on_failure = deny): 503 AUDIT_UNAVAILABLE, nothing forwarded", async () => {
      const t = await startTestGateway({ configure: onBackend(backend, (c) => ({ ...c, audit: { ...c.audit, onFailure: "deny" } })) });
      try {
        const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
        expect((await t.fetch("/changes/2", { token })).status).toBe(200);
        await t.gw.audit!.close();
        const before = t.upstream.received.length;
        for (const [path, method] of [["/changes/2", "GET"], ["/changes/2/submit", "POST"]] as const) {
          const res = await t.fetch(path, { method, token });
          expect(res.status).toBe(503);
          expect(await codeOf(res)).toBe("AUDIT_UNAVAILABLE");
        }
        expect(t.upstream.received.length).toBe(before);
      } finally {
        await t.stop();
      }
    });
  });
}

describe("the issuer's JWKS file changes under a running gateway", () => {
  test("deleted or garbled: the last good keys stay; replaced: the old key is refused, never both open", async () => {
    const t = await startTestGateway();
    try {
      let n = 0;
      // A fresh token each time: a cached verification would prove nothing about the key set.
      const tokenOf = (key: CryptoKey, kid: string) => new SignJWT({ roles: ["developer"], mfa: true, team: "core" })
        .setProtectedHeader({ alg: "ES256", kid }).setIssuer(TEST_ISSUER).setAudience(TEST_AUDIENCE).setSubject(`user-${++n}`)
        .setIssuedAt().setExpirationTime("5m").sign(key);
      const statusWith = async (key: CryptoKey, kid: string) => (await t.fetch("/changes/3", { token: await tokenOf(key, kid) })).status;
      expect(await statusWith(t.issuer.privateKey, t.issuer.kid)).toBe(200);

      // The file is re-checked at most once a second; waiting past that makes each step observable.
      rmSync(t.issuer.jwksFile);
      await Bun.sleep(1100);
      expect(await statusWith(t.issuer.privateKey, t.issuer.kid)).toBe(200);
      writeFileSync(t.issuer.jwksFile, "{ not json");
      await Bun.sleep(1100);
      expect(await statusWith(t.issuer.privateKey, t.issuer.kid)).toBe(200);
      writeFileSync(t.issuer.jwksFile, JSON.stringify({ keys: [{ kty: "EC", crv: "P-256", x: "garbage", y: "garbage", kid: t.issuer.kid }] }));
      await Bun.sleep(1100);
      const garbledKey = await t.fetch("/changes/3", { token: await tokenOf(t.issuer.privateKey, t.issuer.kid) });
      expect([200, 401, 503]).toContain(garbledKey.status);

      // Rotation to another key: tokens of the old key are refused once the file is re-read.
      const next = await generateKeyPair("ES256", { extractable: true });
      writeFileSync(t.issuer.jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(next.publicKey)), kid: "e2e-2", alg: "ES256", use: "sig" }] }));
      await waitFor("the rotated key set", async () => ((await statusWith(next.privateKey, "e2e-2")) === 200));
      const old = await t.fetch("/changes/3", { token: await tokenOf(t.issuer.privateKey, t.issuer.kid) });
      expect(old.status).toBe(401);
      expect(await codeOf(old)).toBe("AUTHN_UNKNOWN_KEY");
      const oldWithNewKid = await t.fetch("/changes/3", { token: await tokenOf(t.issuer.privateKey, "e2e-2") });
      expect(oldWithNewKid.status).toBe(401);
      expect(await codeOf(oldWithNewKid)).toBe("AUTHN_BAD_SIGNATURE");
    } finally {
      await t.stop();
    }
  }, 30_000);

  // Regression: a token verified with a key kept getting 200 from the verified-token cache after
  // the file was replaced by one without that key, until some other token missed the cache.
  test("a cached token stops within the re-read interval once its key is removed or replaced, with no other token in between", async () => {
    const t = await startTestGateway();
    try {
      const replaceAtomically = async (keys: Array<{ publicKey: CryptoKey; kid: string }>) => {
        const jwks = { keys: await Promise.all(keys.map(async (k) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, alg: "ES256", use: "sig" }))) };
        writeFileSync(`${t.issuer.jwksFile}.tmp`, JSON.stringify(jwks));
        renameSync(`${t.issuer.jwksFile}.tmp`, t.issuer.jwksFile);
      };
      const tokenOf = (key: CryptoKey, kid: string) => new SignJWT({ roles: ["developer"], mfa: true, team: "core" })
        .setProtectedHeader({ alg: "ES256", kid }).setIssuer(TEST_ISSUER).setAudience(TEST_AUDIENCE).setSubject("alice")
        .setIssuedAt().setExpirationTime("5m").sign(key);
      const [second, secondTwin] = await Promise.all([generateKeyPair("ES256", { extractable: true }), generateKeyPair("ES256", { extractable: true })]);

      // Removed: the file loses the key that verified the cached token.
      const removed = await tokenOf(t.issuer.privateKey, t.issuer.kid);
      expect((await t.fetch("/changes/3", { token: removed })).status).toBe(200);
      expect((await t.fetch("/changes/3", { token: removed })).status).toBe(200); // now a cache hit
      await replaceAtomically([{ publicKey: second.publicKey, kid: "e2e-2" }]);
      await Bun.sleep(1100); // the documented bound: the file is re-checked at most once a second
      const afterRemoval = await t.fetch("/changes/3", { token: removed });
      expect(await codeOf(afterRemoval)).toBe("AUTHN_UNKNOWN_KEY");
      expect(afterRemoval.status).toBe(401);

      // Replaced under the same kid: the cached token of the old key material stops too.
      const replaced = await tokenOf(second.privateKey, "e2e-2");
      expect((await t.fetch("/changes/3", { token: replaced })).status).toBe(200);
      expect((await t.fetch("/changes/3", { token: replaced })).status).toBe(200);
      await replaceAtomically([{ publicKey: secondTwin.publicKey, kid: "e2e-2" }]);
      await Bun.sleep(1100);
      const afterReplacement = await t.fetch("/changes/3", { token: replaced });
      expect(await codeOf(afterReplacement)).toBe("AUTHN_BAD_SIGNATURE");
      expect(afterReplacement.status).toBe(401);
    } finally {
      await t.stop();
    }
  }, 30_000);
});

describe("the policy directory deleted while running (watch on)", () => {
  test("the last good policy keeps serving, the failure is visible, and a restored directory loads on reload", async () => {
    const t = await startTestGateway({ configure: (c) => ({ ...c, policy: { ...c.policy, watch: true } }) });
    try {
      const developer = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const saved = readdirSync(t.config.policy.dir).map((f) => [f, readFileSync(join(t.config.policy.dir, f), "utf8")] as const);
      rmSync(t.config.policy.dir, { recursive: true, force: true });
      await t.gw.reload("test");
      expect(t.gw.policy.active).not.toBeNull();
      expect(t.gw.policy.status().last_error).not.toBeNull();
      const allowed = await t.fetch("/changes/4/submit", { method: "POST", token: developer });
      expect(allowed.status).toBe(200);
      const denied = await t.fetch("/changes/4/approve", { method: "POST", token: developer });
      expect(denied.status).toBe(403);
      expect(await codeOf(denied)).toBe("DENY_NO_GRANT");

      mkdirSync(t.config.policy.dir);
      for (const [f, text] of saved) writeFileSync(join(t.config.policy.dir, f), text);
      await t.gw.reload("test");
      expect(t.gw.policy.status().last_error).toBeNull();
    } finally {
      await t.stop();
    }
  });
});

/** A loopback TCP server that answers every request with bytes the test chooses. */
function startRawUpstream(): { url: string; answer: (reply: (socket: Socket) => void) => void; stop(): void } {
  let reply: (socket: Socket) => void = (s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
  const server: Server = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => reply(socket));
  });
  server.listen(0, "127.0.0.1");
  return {
    get url() { return `http://127.0.0.1:${(server.address() as { port: number }).port}`; },
    answer: (r) => void (reply = r),
    stop: () => server.close(),
  };
}

for (const backend of BACKENDS) {
  describe(`upstreams misbehaving, ${backend} backend`, () => {
    let raw: ReturnType<typeof startRawUpstream>;
    let t: TestGateway;
    beforeAll(async () => {
      raw = startRawUpstream();
      await waitFor("the raw upstream", () => (portOf(raw.url) > 0));
      t = await startTestGateway({ configure: onBackend(backend, (c) => ({ ...c, upstreams: { ...c.upstreams, changes: { ...c.upstreams.changes!, url: raw.url, timeoutMs: 5000 } } })) });
    });
    afterAll(async () => {
      await t?.stop();
      raw?.stop();
    });

    const cases: Array<{ name: string; reply: (s: Socket) => void; status: number; code?: string; body?: string }> = [
      { name: "a 103 Early Hints, then the answer", reply: (s) => s.end("HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), status: 200, body: "ok" },
      { name: "a 100 Continue nobody asked for, then the answer", reply: (s) => s.end("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), status: 200, body: "ok" },
      { name: "a status of 600", reply: (s) => s.end("HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nok"), status: 502 },
      { name: "a 101 Switching Protocols nobody asked for", reply: (s) => s.end("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"), status: 502 },
      // The default client (the HTTP/1.1 pool) reads the head itself and names it malformed.
      { name: "not HTTP at all", reply: (s) => s.end("SSH-2.0-OpenSSH\r\n\r\n"), status: 502, code: "UPSTREAM_BAD_RESPONSE" },
      { name: "a reset before any header", reply: (s) => s.resetAndDestroy(), status: 502, code: "UPSTREAM_UNAVAILABLE" },
      {
        name: "hop-by-hop headers in the answer",
        reply: (s) => s.end("HTTP/1.1 200 OK\r\nconnection: close, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nupgrade: h2c\r\ncontent-length: 2\r\n\r\nok"),
        status: 200, body: "ok",
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        raw.answer(c.reply);
        const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
        const res = await rawRequest(portOf(t.url), "GET", "/changes/5", [["authorization", `Bearer ${token}`]]);
        expect(res.status).toBe(c.status);
        expect(res.headers["x-request-id"]).toMatch(UUID);
        if (c.status >= 500) {
          expect(res.headers["content-type"]).toBe("application/problem+json");
          if (c.code) expect((JSON.parse(res.body) as { code: string }).code).toBe(c.code);
        }
        if (c.body !== undefined) expect(res.body).toBe(c.body);
        for (const name of ["x-hop", "keep-alive", "upgrade"]) expect(res.headers).not.toHaveProperty(name);
      });
    }

    test("a reset in the middle of the body: the client's response is cut, the gateway keeps serving", async () => {
      raw.answer((s) => {
        s.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + "a".repeat(1000));
        setTimeout(() => s.resetAndDestroy(), 20);
      });
      const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const cut = await rawRequest(portOf(t.url), "GET", "/changes/6", [["authorization", `Bearer ${token}`]]).then(() => "complete", (e: Error) => e.message);
      expect(cut).not.toBe("complete");
      raw.answer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
      const after = await rawRequest(portOf(t.url), "GET", "/changes/6", [["authorization", `Bearer ${token}`]]);
      expect(after.status).toBe(200);
      expect(after.body).toBe("ok");
    });
  });
}

describe("a handler that throws, on both listener backends", () => {
  for (const backend of BACKENDS) {
    for (const how of ["throws", "rejects"] as const) {
      test(`${backend}: a handler that ${how} gets a 500 problem with a request id, and the listener keeps serving`, async () => {
        const dir = mkdtempSync(join(tmpdir(), "dutygate-adv-listener-"));
        const listener: ListenerConfig = { host: "127.0.0.1", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false, certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2" };
        const errors: unknown[] = [];
        let calls = 0;
        let running: RunningListener | null = null;
        try {
          running = await startListener({
            listener, tls: await loadTlsMaterial(listener, { stateDir: dir, name: "throwing" }), backend, maxRequestBodySize: 1024,
            onError: (e) => errors.push(e),
            fetch: (() => {
              if (++calls === 1) {
                if (how === "throws") throw new Error("boom: secret internals");
                return Promise.reject(new Error("boom: secret internals"));
              }
              return new Response("fine");
            }) as never,
          });
          const first = await rawRequest(running.port, "GET", "/anything");
          expect(first.status).toBe(500);
          expect(first.headers["content-type"]).toBe("application/problem+json");
          expect(first.headers["x-request-id"]).toMatch(UUID);
          const body = JSON.parse(first.body) as { code: string; request_id: string };
          expect(body.code).toBe("INTERNAL_ERROR");
          expect(body.request_id).toBe(first.headers["x-request-id"]!);
          expect(first.body).not.toContain("secret internals");
          expect(errors.length).toBe(1);
          const second = await rawRequest(running.port, "GET", "/anything");
          expect(second.status).toBe(200);
        } finally {
          await running?.stop({ graceful: false });
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});

describe("an exception inside the pipeline: identity-token signing fails after the decision was recorded", () => {
  for (const backend of BACKENDS) {
    test(`${backend}: 500 INTERNAL_ERROR with the request id of its audit records, nothing forwarded, the ledger reservation released`, async () => {
      const t = await startTestGateway();
      let running: RunningListener | null = null;
      try {
        const failingSigner: IdentityTokenSigner = {
          sign: () => Promise.reject(new Error("signing key unavailable")),
          cached: () => null,
          publicJwks: () => ({ keys: [] }),
          signatures: 0,
        };
        // The gateway's own parts (policy, ledger, audit, metrics), with a signer that fails.
        const pipeline = createPipeline({
          config: t.config, policy: t.gw.policy, authn: createJwtAuthenticator({ issuers: t.config.issuers }), ledger: t.gw.ledger,
          audit: t.gw.audit, identity: failingSigner, metrics: t.gw.metrics, log: createLogger("error"),
        }, "operational", t.config.listen);
        running = await startListener({
          listener: t.config.listen, backend, maxRequestBodySize: Number.MAX_SAFE_INTEGER, fetch: pipeline,
          tls: await loadTlsMaterial(t.config.listen, { stateDir: t.config.stateDir, name: `failing-${backend}` }),
        });
        const both = await t.issuer.token({ sub: "erin", roles: ["developer", "reviewer"], mfa: true });
        const before = t.upstream.received.length;
        const res = await rawRequest(running.port, "POST", "/changes/7/submit", [["authorization", `Bearer ${both}`]], { body: "" });
        expect(res.status).toBe(500);
        expect(res.headers["content-type"]).toBe("application/problem+json");
        const body = JSON.parse(res.body) as { code: string; request_id: string };
        expect(body.code).toBe("INTERNAL_ERROR");
        expect(body.request_id).toBe(res.headers["x-request-id"]!);
        expect(res.body).not.toContain("signing key unavailable");
        expect(t.upstream.received.length).toBe(before);

        const records = await waitFor("the outcome record", () => {
          const mine = auditRecords(join(t.dir, "audit")).filter((r) => r.request_id === body.request_id);
          return mine.some((r) => r.type === "outcome") ? mine : undefined;
        });
        expect(records.map((r) => [r.type, r.type === "decision" ? r.decision : r.status])).toEqual([["decision", "allow"], ["outcome", 500]]);

        // The reservation was released: the same person's approval is not blocked by a submit that never happened.
        const approve = await t.fetch("/changes/7/approve", { method: "POST", token: both });
        expect(approve.status).toBe(200);
      } finally {
        await running?.stop({ graceful: false });
        await t.stop();
      }
    });
  }
});
