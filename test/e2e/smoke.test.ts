// The product's main job over real TLS: allow, deny, and what the upstream receives.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestGateway, type TestGateway } from "../support/harness.ts";

let t: TestGateway;
beforeAll(async () => {
  t = await startTestGateway();
});
afterAll(async () => {
  await t?.stop();
});

test("a developer submits a change: forwarded with a gateway-signed identity", async () => {
  const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
  const res = await t.fetch("/changes/42/submit", { method: "POST", token, body: "hello" });
  expect(res.status).toBe(200);
  const got = t.upstream.received.at(-1)!;
  expect(got.path).toBe("/changes/42/submit");
  expect(got.bodyBytes).toBe(5);
  expect(got.headers.authorization).toBeUndefined();
  expect(got.headers["x-dutygate-identity"] ?? got.headers[t.config.identity.header]).toBeString();
  expect(res.headers.get("x-request-id")).toBeString();
});

test("a developer may not approve: 403 naming the duty and code", async () => {
  const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
  const before = t.upstream.received.length;
  const res = await t.fetch("/changes/42/approve", { method: "POST", token });
  expect(res.status).toBe(403);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body.code).toBe("DENY_NO_GRANT");
  expect(body.duty).toBe("approve_change");
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(t.upstream.received.length).toBe(before);
});

test("no token: 401 with WWW-Authenticate, never forwarded", async () => {
  const before = t.upstream.received.length;
  const res = await t.fetch("/changes/42/submit", { method: "POST" });
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toContain("Bearer");
  expect(((await res.json()) as { code: string }).code).toBe("AUTHN_MISSING_TOKEN");
  expect(t.upstream.received.length).toBe(before);
});
