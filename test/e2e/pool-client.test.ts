// The gateway with `client = "pool"` on its upstreams: the same guarantees as with fetch, end to
// end over real TLS to a real upstream (what the upstream receives, what the client gets back).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import { http1PoolFor } from "../../src/http/forward-http1.ts";
import { startTestGateway, type TestGateway } from "../support/harness.ts";

let t: TestGateway;
const closedPort = () => {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
};

beforeAll(async () => {
  const downPort = closedPort();
  t = await startTestGateway({
    configure: (c) => ({
      ...c,
      upstreams: Object.fromEntries(Object.entries(c.upstreams).map(([name, u]) => [
        name, name === "logs" ? { ...u, url: `http://127.0.0.1:${downPort}`, connectTimeoutMs: 1000, client: "pool" as const } : { ...u, client: "pool" as const },
      ])),
    }),
  });
});
afterAll(async () => { await t?.stop(); });

const developer = (sub = "alice") => t.issuer.token({ sub, roles: ["developer"], mfa: true });

describe("client = pool", () => {
  test("the config carries the choice to every upstream", () => {
    expect(Object.values(t.config.upstreams).every((u) => u.client === "pool")).toBe(true);
  });

  test("an allowed body-less request reaches the upstream at the judged path, with the gateway's identity and no spoofed one", async () => {
    t.upstream.respond(() => new Response("pooled", { headers: { "x-upstream": "yes", connection: "x-private", "x-private": "secret", "set-cookie": "a=1" } }));
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/./42/../43/submit", {
      method: "POST",
      token: await developer(),
      headers: { "x-dutygate-identity": "forged", "x-forwarded-user": "root", connection: "x-hop", "x-hop": "1", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("pooled");
    expect(res.headers.get("x-upstream")).toBe("yes");
    expect(res.headers.get("x-private")).toBeNull();
    expect(res.headers.get("set-cookie")).toBe("a=1");
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const [got] = t.upstream.received.slice(before);
    expect(got!.method).toBe("POST");
    expect(got!.path).toBe("/changes/43/submit");
    expect(got!.headers["content-length"]).toBe("0");
    expect(got!.headers["x-request-id"]).toBe(res.headers.get("x-request-id")!);
    expect(got!.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(got!.headers["x-forwarded-proto"]).toBe("https");
    expect(got!.headers.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    for (const name of ["x-forwarded-user", "x-hop", "authorization"]) expect(got!.headers).not.toHaveProperty(name);
    // The pool's own connection header, not the caller's `connection: x-hop`.
    expect(got!.headers.connection).toBe("keep-alive");
    const identity = got!.headers[t.config.identity.header]!;
    expect(identity).not.toBe("forged");
    const jwks = JSON.parse(readFileSync(t.gw.gatewayKey.jwksFile, "utf8")) as JSONWebKeySet;
    const { payload } = await jwtVerify(identity, createLocalJWKSet(jwks), { issuer: "dutygate", audience: "changes" });
    expect(payload.sub).toBe("alice");
    t.upstream.respond((req) => Response.json({ ok: true, path: new URL(req.url).pathname }));
  });

  test("sequential requests reuse the pool's connections", async () => {
    const token = await developer();
    for (let i = 0; i < 20; i++) expect((await t.fetch(`/changes/${500 + i}/submit`, { method: "POST", token })).status).toBe(200);
    const pool = http1PoolFor(new URL(t.upstream.url).origin);
    expect(pool.openConnections).toBeGreaterThanOrEqual(1);
    expect(pool.openConnections).toBeLessThanOrEqual(2);
  });

  test("a request with a body still goes through fetch and arrives whole", async () => {
    const before = t.upstream.received.length;
    const body = "x".repeat(100_000);
    const res = await t.fetch("/changes/600/submit", { method: "POST", token: await developer(), body });
    expect(res.status).toBe(200);
    expect(t.upstream.received.slice(before)[0]!.bodyBytes).toBe(100_000);
  });

  test("a denied request is never forwarded", async () => {
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/601/approve", { method: "POST", token: await developer() });
    expect(res.status).toBe(403);
    expect(t.upstream.received.length).toBe(before);
  });

  test("an upstream that is down is 502 UPSTREAM_UNAVAILABLE", async () => {
    const token = await t.issuer.token({ sub: "sam", roles: ["sre"], mfa: true });
    const res = await t.fetch("/logs/app", { token });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { code: string }).code).toBe("UPSTREAM_UNAVAILABLE");
  });
});
