// `gateway serve` end to end over real TLS: authentication failures, allow and deny, what the
// upstream receives (identity, headers, paths, bodies), limits, upstream failures, request ids,
// and the audit records every decision leaves. Real gateway, real issuer keys, real upstreams.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, createPublicKey, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, generateKeyPair, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from "jose";
import { expandOutcomes, verifyAuditFiles } from "../../src/audit/mod.ts";
import { createCa } from "../support/pki.ts";
import { startTestGateway, TEST_AUDIENCE, TEST_ISSUER, type TestGateway } from "../support/harness.ts";
import { readWholeRecords } from "../support/audit-log.ts";
import { rawRequest } from "./raw.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MIB = 1024 * 1024;

type Problem = Record<string, unknown> & { code: string; status: number; request_id: string };

/** An upstream that never answers within the gateway's timeout (it answers when stopped, at the latest after 10 s). */
function startSlowUpstream(): { url: string; stop(): void } {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch() {
      await Promise.race([released, Bun.sleep(10_000)]);
      return new Response("too late\n");
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => { release(); server.stop(true); } };
}

/** A loopback port with nothing listening on it (bound, then closed). */
function closedPort(): number {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = server.port!;
  server.stop(true);
  return port;
}

/**
 * An upstream that hashes the request body as it streams in and reports when the first byte
 * arrived, so a test can tell whether the gateway passed the body on before it had all of it.
 */
function startHashingUpstream(): { url: string; firstBytes: Promise<void>; stop(): void } {
  let sawFirstBytes: () => void = () => {};
  const firstBytes = new Promise<void>((resolve) => (sawFirstBytes = resolve));
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    maxRequestBodySize: 512 * MIB,
    async fetch(req) {
      const hash = createHash("sha256");
      let bytes = 0;
      if (req.body) {
        const reader = req.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (value.byteLength > 0) sawFirstBytes();
          bytes += value.byteLength;
          hash.update(value);
        }
      }
      return Response.json({ bytes, sha256: hash.digest("hex") });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, firstBytes, stop: () => server.stop(true) };
}

const slow = startSlowUpstream();
const hashing = startHashingUpstream();

// `t`: defaults as shipped (details shown, 404 for no route, caller ids not trusted), a 1 MiB body
// limit, a slow `deploy` upstream and a `logs` upstream nobody listens on.
let t: TestGateway;
// `hidden`: hide_deny_details, no_route_status = 403, trust_request_id.
let hidden: TestGateway;
// `big`: a 128 MiB body limit; `changes` goes to the hashing upstream.
let big: TestGateway;
// `node`: the operational listener with a client CA, which puts it on the node:http2 backend.
let nodeBackend: TestGateway;

let clientCaDir: string;

beforeAll(async () => {
  const downPort = closedPort();
  // A client CA only to put a listener on the node:http2 backend; no client presents a certificate.
  clientCaDir = mkdtempSync(join(tmpdir(), "dutygate-e2e-ca-"));
  const clientCa = await createCa(clientCaDir, "unused-client-ca");
  [t, hidden, big, nodeBackend] = await Promise.all([
    startTestGateway({
      configure: (c) => ({
        ...c,
        maxBodyBytes: MIB,
        identity: { ...c.identity, stripHeaders: [...c.identity.stripHeaders, "x-user"] },
        upstreams: {
          ...c.upstreams,
          deploy: { ...c.upstreams.deploy!, url: slow.url, timeoutMs: 300 },
          logs: { ...c.upstreams.logs!, url: `http://127.0.0.1:${downPort}`, connectTimeoutMs: 1000 },
        },
      }),
    }),
    startTestGateway({ configure: (c) => ({ ...c, hideDenyDetails: true, noRouteStatus: 403, trustRequestId: true }) }),
    startTestGateway({
      configure: (c) => ({ ...c, maxBodyBytes: 128 * MIB, upstreams: { ...c.upstreams, changes: { ...c.upstreams.changes!, url: hashing.url } } }),
    }),
    startTestGateway({
      configure: (c) => ({ ...c, listen: { ...c.listen, clientCaFile: clientCa.certFile } }),
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([t, hidden, big, nodeBackend].map((g) => g?.stop()));
  slow.stop();
  hashing.stop();
  if (clientCaDir) rmSync(clientCaDir, { recursive: true, force: true });
});

const portOf = (g: TestGateway) => Number(new URL(g.url).port);
const developer = (g: TestGateway, sub = "alice") => g.issuer.token({ sub, roles: ["developer"], mfa: true });

async function problemOf(res: Response): Promise<Problem> {
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  return (await res.json()) as Problem;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Signs a token with any header and payload (for tokens the issuer helper would not make). */
async function signToken(key: CryptoKey | Uint8Array, header: { alg: string; kid?: string }, payload: JWTPayload): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ typ: "JWT", ...header }).sign(key);
}

function standardClaims(overrides: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: TEST_ISSUER, aud: TEST_AUDIENCE, sub: "mallory", iat: now, exp: now + 300, roles: ["developer"], mfa: true, team: "core", ...overrides };
}

describe("allow and deny", () => {
  test("an allowed request is forwarded once, with the judged path and the upstream's answer", async () => {
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/101/submit?draft=1", { method: "POST", token: await developer(t), body: "patch" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/changes/101/submit" });
    const got = t.upstream.received.slice(before);
    expect(got.map((r) => [r.method, r.path, r.bodyBytes])).toEqual([["POST", "/changes/101/submit?draft=1", 5]]);
  });

  test("a denied request is a 403 problem naming the duty, the code and the deciding rule", async () => {
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/102/approve", { method: "POST", token: await developer(t) });
    expect(res.status).toBe(403);
    const body = await problemOf(res);
    expect(body).toMatchObject({ status: 403, code: "DENY_NO_GRANT", duty: "approve_change", decision: "DENY_NO_GRANT" });
    expect(body.detail).toBeString();
    expect(body.request_id).toBe(res.headers.get("x-request-id")!);
    expect(t.upstream.received.length).toBe(before);
  });

  test("a forbid denies with its own code and rule", async () => {
    const token = await t.issuer.token({ sub: "dora", roles: ["deployer"], mfa: true });
    const res = await t.fetch("/changes/103/deploy", { method: "POST", token, headers: { "x-freeze": "1" } });
    expect(res.status).toBe(403);
    const body = await problemOf(res);
    expect(body.code).toBe("DENY_FORBID");
    // The rule id ends with the position of the forbid in its file.
    expect(body.rule).toMatch(/^forbid:(?:.*\/)?changes\.duty:17:1$/);
    expect(body.duty).toBe("deploy_change");
  });

  test("static separation: a principal holding two exclusive roles is denied even what one role allows", async () => {
    const token = await t.issuer.token({ sub: "eve", roles: ["developer", "deployer"], mfa: true });
    const res = await t.fetch("/changes/107/submit", { method: "POST", token });
    expect(res.status).toBe(403);
    const body = await problemOf(res);
    expect(body.code).toBe("DENY_EXCLUSIVE");
    expect(body.rule).toMatch(/^exclusive:(?:.*\/)?base\.duty:\d+:\d+$/);
  });

  test("hide_deny_details: the deny body names no duty, rule, reasons or detail", async () => {
    const before = hidden.upstream.received.length;
    const res = await hidden.fetch("/changes/104/approve", { method: "POST", token: await developer(hidden) });
    expect(res.status).toBe(403);
    const body = await problemOf(res);
    expect(body.code).toBe("DENY");
    for (const key of ["duty", "decision", "rule", "reasons", "detail"]) expect(body).not.toHaveProperty(key);
    expect(JSON.stringify(body)).not.toContain("approve_change");
    expect(hidden.upstream.received.length).toBe(before);
  });

  test("hide_deny_details with no_route_status = 403: an unknown route looks exactly like a forbidden one", async () => {
    const token = await developer(hidden);
    const forbidden = await problemOf(await hidden.fetch("/changes/105/approve", { method: "POST", token }));
    const unknown = await problemOf(await hidden.fetch("/no/such/route", { method: "POST", token }));
    const shape = ({ request_id: _id, ...rest }: Problem) => rest;
    expect(unknown.status).toBe(403);
    expect(shape(unknown)).toEqual(shape(forbidden));
  });

  test("history separation: the submitter of a change may not also approve it", async () => {
    const both = await t.issuer.token({ sub: "sam", roles: ["developer", "reviewer"], mfa: true });
    expect((await t.fetch("/changes/106/submit", { method: "POST", token: both })).status).toBe(200);
    const res = await t.fetch("/changes/106/approve", { method: "POST", token: both });
    expect(res.status).toBe(403);
    expect((await problemOf(res)).code).toBe("DENY_SOD_HISTORY");
    const other = await t.issuer.token({ sub: "rita", roles: ["reviewer"], mfa: false });
    expect((await t.fetch("/changes/106/approve", { method: "POST", token: other })).status).toBe(200);
  });
});

describe("authentication failures: 401 with a stable code, never forwarded", () => {
  interface AuthCase {
    name: string;
    /** The Authorization header to send; null sends none. */
    authorization: () => Promise<string | null>;
    code: string;
    /** Text the problem detail must contain. */
    detail?: string;
  }
  const now = () => Math.floor(Date.now() / 1000);
  const cases: AuthCase[] = [
    { name: "no token", authorization: async () => null, code: "AUTHN_MISSING_TOKEN" },
    { name: "not a bearer token", authorization: async () => "Basic YWxpY2U6c2VjcmV0", code: "AUTHN_MISSING_TOKEN" },
    { name: "expired token", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { iat: now() - 900, ttlSeconds: 300 })}`, code: "AUTHN_TOKEN_EXPIRED" },
    { name: "token not yet valid (nbf ahead)", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true, nbf: now() + 600 }, { ttlSeconds: 900 })}`, code: "AUTHN_TOKEN_NOT_YET_VALID" },
    { name: "token issued in the future (iat ahead)", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { iat: now() + 600, ttlSeconds: 300 })}`, code: "AUTHN_TOKEN_NOT_YET_VALID" },
    { name: "wrong audience", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { audience: "another-service" })}`, code: "AUTHN_BAD_AUDIENCE" },
    { name: "wrong issuer", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { issuer: "https://evil.example" })}`, code: "AUTHN_UNKNOWN_ISSUER" },
    {
      name: "alg confusion: HS256 keyed with the issuer's public JWKS bytes",
      authorization: async () => `Bearer ${await signToken(readFileSync(t.issuer.jwksFile), { alg: "HS256", kid: t.issuer.kid }, standardClaims())}`,
      code: "AUTHN_ALG_NOT_ALLOWED",
    },
    {
      name: "alg confusion: HS256 keyed with the issuer's public key PEM",
      authorization: async () => {
        const jwk = (JSON.parse(readFileSync(t.issuer.jwksFile, "utf8")) as JSONWebKeySet).keys[0]!;
        const pem = createPublicKey({ key: jwk as never, format: "jwk" }).export({ type: "spki", format: "pem" }) as string;
        return `Bearer ${await signToken(new TextEncoder().encode(pem), { alg: "HS256", kid: t.issuer.kid }, standardClaims())}`;
      },
      code: "AUTHN_ALG_NOT_ALLOWED",
    },
    { name: "alg none (unsigned)", authorization: async () => `Bearer ${base64url({ alg: "none", typ: "JWT" })}.${base64url(standardClaims())}.`, code: "AUTHN_ALG_NOT_ALLOWED" },
    {
      name: "unknown kid",
      authorization: async () => {
        const { privateKey } = await generateKeyPair("ES256");
        return `Bearer ${await signToken(privateKey, { alg: "ES256", kid: "not-a-key-of-the-issuer" }, standardClaims())}`;
      },
      code: "AUTHN_UNKNOWN_KEY",
    },
    {
      name: "known kid, another key",
      authorization: async () => {
        const { privateKey } = await generateKeyPair("ES256");
        return `Bearer ${await signToken(privateKey, { alg: "ES256", kid: t.issuer.kid }, standardClaims())}`;
      },
      code: "AUTHN_BAD_SIGNATURE",
    },
    { name: "lifetime over max_lifetime (2 h for 1 h)", authorization: async () => `Bearer ${await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { ttlSeconds: 7200 })}`, code: "AUTHN_TOKEN_LIFETIME_TOO_LONG" },
    {
      name: "claim of the wrong type (mfa: \"yes\")",
      authorization: async () => `Bearer ${await signToken(t.issuer.privateKey, { alg: "ES256", kid: t.issuer.kid }, standardClaims({ mfa: "yes" }))}`,
      code: "AUTHN_BAD_CLAIM",
      detail: "`mfa`",
    },
    {
      name: "a role the policy does not declare",
      authorization: async () => `Bearer ${await signToken(t.issuer.privateKey, { alg: "ES256", kid: t.issuer.kid }, standardClaims({ roles: ["root"] }))}`,
      code: "AUTHN_BAD_CLAIM",
      detail: "`root`",
    },
    { name: "garbage", authorization: async () => "Bearer not.a.jwt", code: "AUTHN_MALFORMED_TOKEN" },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const authorization = await c.authorization();
      const before = t.upstream.received.length;
      const res = await t.fetch("/changes/200/submit", { method: "POST", headers: authorization === null ? {} : { authorization } });
      const body = await problemOf(res);
      expect({ status: res.status, code: body.code }).toEqual({ status: 401, code: c.code });
      expect(res.headers.get("www-authenticate")).toStartWith("Bearer");
      expect(res.headers.get("x-request-id")).toMatch(UUID);
      if (c.detail) expect(String(body.detail)).toContain(c.detail);
      // The message never echoes the credential.
      if (authorization) expect(JSON.stringify(body)).not.toContain(authorization.slice(7, 40));
      expect(t.upstream.received.length).toBe(before);
    });
  }

  test("a valid token of the same issuer still passes (the cases above fail for their own reason)", async () => {
    const token = await signToken(t.issuer.privateKey, { alg: "ES256", kid: t.issuer.kid }, standardClaims({ sub: "alice" }));
    expect((await t.fetch("/changes/200/submit", { method: "POST", token })).status).toBe(200);
  });
});

describe("what the upstream receives", () => {
  test("spoofed identity headers are dropped: the upstream gets only the gateway's short-lived token for it", async () => {
    const before = t.upstream.received.length;
    const forged = await signToken(t.issuer.privateKey, { alg: "ES256", kid: t.issuer.kid }, standardClaims({ sub: "root", roles: ["security_admin"] }));
    const res = await t.fetch("/changes/300/submit", {
      method: "POST",
      token: await developer(t, "alice"),
      headers: {
        "x-dutygate-identity": forged,
        "x-forwarded-user": "root",
        "x-forwarded-email": "root@example.com",
        "x-remote-user": "root",
        "x-auth-request-user": "root",
        "x-user": "root",
      },
    });
    expect(res.status).toBe(200);
    const [got] = t.upstream.received.slice(before);
    for (const name of ["x-forwarded-user", "x-forwarded-email", "x-remote-user", "x-auth-request-user", "x-user", "authorization"]) {
      expect(got!.headers).not.toHaveProperty(name);
    }
    const identity = got!.headers[t.config.identity.header]!;
    expect(identity).not.toBe(forged);
    const jwks = JSON.parse(readFileSync(t.gw.gatewayKey.jwksFile, "utf8")) as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(identity, createLocalJWKSet(jwks), { issuer: "dutygate", audience: "changes" });
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload.sub).toBe("alice");
    expect(payload.roles).toEqual(["developer"]);
    // The duty the gateway judged, so the upstream knows which capability was granted.
    expect(payload.duty).toBe("submit_change");
    expect(payload.exp! - payload.iat!).toBeGreaterThan(0);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
    // A token for one upstream is not accepted by another.
    expect(jwtVerify(identity, createLocalJWKSet(jwks), { issuer: "dutygate", audience: "deploy" })).rejects.toMatchObject({ code: "ERR_JWT_CLAIM_VALIDATION_FAILED" });
  });

  test("the caller's Authorization and Proxy-Authorization never reach the upstream", async () => {
    const before = t.upstream.received.length;
    const token = await developer(t);
    const res = await t.fetch("/changes/301/submit", { method: "POST", token, headers: { "proxy-authorization": "Basic cHJveHk6c2VjcmV0" } });
    expect(res.status).toBe(200);
    const [got] = t.upstream.received.slice(before);
    expect(got!.headers).not.toHaveProperty("authorization");
    expect(got!.headers).not.toHaveProperty("proxy-authorization");
    expect(JSON.stringify(got!.headers)).not.toContain(token);
  });

  test("hop-by-hop headers, and any header named in Connection, are stripped; end-to-end headers pass", async () => {
    const before = t.upstream.received.length;
    const res = await rawRequest(portOf(t), "POST", "/changes/302/submit", [
      ["authorization", `Bearer ${await developer(t)}`],
      ["keep-alive", "timeout=5"],
      ["te", "trailers"],
      ["trailer", "x-checksum"],
      ["proxy-connection", "keep-alive"],
      ["connection", "close, x-secret-hop"],
      ["x-secret-hop", "must not pass"],
      ["x-end-to-end", "kept"],
    ], { body: "" });
    expect(res.status).toBe(200);
    const [got] = t.upstream.received.slice(before);
    for (const name of ["keep-alive", "te", "trailer", "proxy-connection", "x-secret-hop"]) expect(got!.headers).not.toHaveProperty(name);
    expect(got!.headers.connection ?? "").not.toContain("x-secret-hop");
    expect(got!.headers["x-end-to-end"]).toBe("kept");
  });

  test("hop-by-hop headers of the upstream's response are stripped too", async () => {
    t.upstream.respond(() => new Response("ok\n", { headers: { connection: "x-upstream-hop", "x-upstream-hop": "1", "keep-alive": "timeout=9", "x-upstream-visible": "1" } }));
    try {
      const res = await t.fetch("/changes/303/submit", { method: "POST", token: await developer(t) });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-upstream-visible")).toBe("1");
      expect(res.headers.get("x-upstream-hop")).toBeNull();
      expect(res.headers.get("keep-alive")).toBeNull();
    } finally {
      t.upstream.respond((req) => Response.json({ ok: true, path: new URL(req.url).pathname }));
    }
  });

  test("x-forwarded-for/-proto/-host are set by the gateway; traceparent and tracestate pass on", async () => {
    const before = t.upstream.received.length;
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const res = await t.fetch("/changes/304/submit", {
      method: "POST",
      token: await developer(t),
      headers: { "x-forwarded-for": "203.0.113.9", "x-forwarded-host": "evil.example", "x-forwarded-proto": "http", traceparent, tracestate: "vendor=abc" },
    });
    expect(res.status).toBe(200);
    const [got] = t.upstream.received.slice(before);
    expect(got!.headers["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(got!.headers["x-forwarded-proto"]).toBe("https");
    expect(got!.headers["x-forwarded-host"]).toBe(new URL(t.url).host);
    expect(got!.headers.traceparent).toBe(traceparent);
    expect(got!.headers.tracestate).toBe("vendor=abc");
    expect(got!.headers["x-request-id"]).toBe(res.headers.get("x-request-id")!);
  });

  test("without a caller traceparent the upstream gets a fresh valid one", async () => {
    const before = t.upstream.received.length;
    expect((await t.fetch("/changes/305/submit", { method: "POST", token: await developer(t) })).status).toBe(200);
    expect(t.upstream.received[before]!.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  });
});

describe("path tricks: the upstream gets exactly the judged path, or nothing", () => {
  interface PathCase {
    target: string;
    /** Path (and query) the upstream must receive; null: nothing may be forwarded. */
    forwarded: string | null;
    status: number;
    code?: string;
  }
  const cases: PathCase[] = [
    { target: "/a/../changes/400/submit", forwarded: "/changes/400/submit", status: 200 },
    { target: "/a/../admin", forwarded: null, status: 404, code: "DENY_NO_ROUTE" },
    { target: "/changes/400/submit/../../401/submit", forwarded: "/changes/401/submit", status: 200 },
    { target: "//changes/402/submit", forwarded: "/changes/402/submit", status: 200 },
    { target: "/changes//403///submit", forwarded: "/changes/403/submit", status: 200 },
    { target: "/changes/404/%2e%2e/405/submit", forwarded: "/changes/405/submit", status: 200 },
    { target: "/changes/406/%2E%2E/%2e%2e/admin", forwarded: null, status: 404, code: "DENY_NO_ROUTE" },
    { target: "/changes/4%30%37/submit", forwarded: "/changes/407/submit", status: 200 },
    { target: "/changes/408/./submit", forwarded: "/changes/408/submit", status: 200 },
    { target: "/changes/409%2fsubmit", forwarded: null, status: 400, code: "PATH_ENCODED_SLASH" },
    { target: "/changes/410%2F..%2F411/submit", forwarded: null, status: 400, code: "PATH_ENCODED_SLASH" },
    { target: "/changes/412%5csubmit", forwarded: null, status: 400, code: "PATH_ENCODED_SLASH" },
    { target: "/changes/413%00/submit", forwarded: null, status: 400, code: "PATH_NUL" },
    { target: "/changes/414/..;/415/submit", forwarded: null, status: 400, code: "PATH_TRAVERSAL" },
    { target: "/changes/416/%C0%AE%C0%AE/submit", forwarded: null, status: 400, code: "PATH_BAD_ENCODING" },
    { target: "/Changes/417/submit", forwarded: null, status: 404, code: "DENY_NO_ROUTE" },
    { target: "/changes/418/SUBMIT", forwarded: null, status: 404, code: "DENY_NO_ROUTE" },
    { target: "/changes/419/submit?x=1&y=%2f", forwarded: "/changes/419/submit?x=1&y=%2f", status: 200 },
  ];

  for (const backend of ["bun", "node"] as const) {
    const gateway = () => (backend === "bun" ? t : nodeBackend);
    test(`${backend} backend`, async () => {
      expect(gateway().gw.operational.backend).toBe(backend);
      const authorization = `Bearer ${await developer(gateway())}`;
      const rows = [];
      for (const c of cases) {
        const before = gateway().upstream.received.length;
        const res = await rawRequest(portOf(gateway()), "POST", c.target, [["authorization", authorization]], { body: "" });
        const forwarded = gateway().upstream.received.slice(before).map((r) => r.path);
        const code = res.headers["content-type"] === "application/problem+json" ? (JSON.parse(res.body) as Problem).code : undefined;
        expect(res.headers["x-request-id"]).toMatch(UUID);
        rows.push({ target: c.target, status: res.status, code, forwarded });
      }
      expect(rows).toEqual(cases.map((c) => ({ target: c.target, status: c.status, code: c.code, forwarded: c.forwarded === null ? [] : [c.forwarded] })));
    });
  }

  test("no_route_status = 403 answers an unknown spelling with 403, still not forwarded", async () => {
    const before = hidden.upstream.received.length;
    const res = await rawRequest(portOf(hidden), "POST", "/Changes/420/submit", [["authorization", `Bearer ${await developer(hidden)}`]], { body: "" });
    expect(res.status).toBe(403);
    expect(hidden.upstream.received.length).toBe(before);
  });
});

describe("bodies and limits", () => {
  test("a 64 MiB streamed body reaches the upstream intact, and starts arriving before the caller has sent it all", async () => {
    const total = 64 * MIB;
    const chunk = randomBytes(MIB);
    const sent = createHash("sha256");
    let produced = 0;
    const streamed: { upstreamSawBytesBeforeEnd: boolean | null } = { upstreamSawBytesBeforeEnd: null };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (produced === total) {
          controller.close();
          return;
        }
        if (produced === total / 2 && streamed.upstreamSawBytesBeforeEnd === null) {
          // Half the body is out. A gateway that buffers before forwarding has sent the upstream
          // nothing yet; one that streams has. Waiting is bounded: after 15 s the answer is "no".
          streamed.upstreamSawBytesBeforeEnd = await Promise.race([hashing.firstBytes.then(() => true), Bun.sleep(15_000).then(() => false)]);
        }
        const piece = new Uint8Array(chunk);
        piece[0] = produced / MIB; // every MiB differs, so a reordered or repeated chunk changes the hash
        sent.update(piece);
        produced += piece.byteLength;
        controller.enqueue(piece);
      },
    });
    const res = await big.fetch("/changes/500/submit", { method: "POST", token: await developer(big), body, duplex: "half" } as RequestInit & { token: string });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: total, sha256: sent.digest("hex") });
    expect(streamed.upstreamSawBytesBeforeEnd).toBe(true);
  }, 60_000);

  test("a declared body over max_body_bytes is a 413 problem with a request id, not forwarded", async () => {
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/501/submit", { method: "POST", token: await developer(t), body: new Uint8Array(MIB + 1) });
    expect(res.status).toBe(413);
    const body = await problemOf(res);
    expect(body.code).toBe("REQUEST_BODY_TOO_LARGE");
    expect(body.request_id).toBe(res.headers.get("x-request-id")!);
    expect(t.upstream.received.length).toBe(before);
  });

  test("the node:http2 backend answers an oversized body with the same 413 problem", async () => {
    const before = nodeBackend.upstream.received.length;
    const limit = nodeBackend.config.maxBodyBytes;
    const res = await nodeBackend.fetch("/changes/504/submit", { method: "POST", token: await developer(nodeBackend), body: new Uint8Array(limit + 1) });
    expect(res.status).toBe(413);
    expect((await problemOf(res)).code).toBe("REQUEST_BODY_TOO_LARGE");
    expect(res.headers.get("x-request-id")).toMatch(UUID);
    expect(nodeBackend.upstream.received.length).toBe(before);
  });

  test("a body of exactly max_body_bytes passes", async () => {
    const before = t.upstream.received.length;
    const res = await t.fetch("/changes/503/submit", { method: "POST", token: await developer(t), body: new Uint8Array(MIB) });
    expect(res.status).toBe(200);
    expect(t.upstream.received.slice(before).map((r) => r.bodyBytes)).toEqual([MIB]);
  });

  test("a streamed body that grows past max_body_bytes is cut off with a 413 problem", async () => {
    const before = t.upstream.received.length;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 4 * MIB) return controller.close();
        sent += 256 * 1024;
        controller.enqueue(new Uint8Array(256 * 1024));
      },
    });
    const res = await t.fetch("/changes/502/submit", { method: "POST", token: await developer(t), body, duplex: "half" } as RequestInit & { token: string });
    expect(res.status).toBe(413);
    expect((await problemOf(res)).code).toBe("REQUEST_BODY_TOO_LARGE");
    expect(res.headers.get("x-request-id")).toMatch(UUID);
    // The upstream never got a complete request (it records only bodies it read to the end).
    expect(t.upstream.received.slice(before)).toEqual([]);
  });
});

describe("upstream failures", () => {
  test("upstream down: 502 problem", async () => {
    const token = await t.issuer.token({ sub: "audrey", roles: ["auditor"], mfa: false });
    const res = await t.fetch("/logs/today", { token });
    expect(res.status).toBe(502);
    const body = await problemOf(res);
    expect(body.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(body.request_id).toBe(res.headers.get("x-request-id")!);
  });

  test("upstream slower than its timeout: 504 problem", async () => {
    const token = await t.issuer.token({ sub: "dora", roles: ["deployer"], mfa: true });
    const res = await t.fetch("/changes/600/deploy", { method: "POST", token });
    expect(res.status).toBe(504);
    expect((await problemOf(res)).code).toBe("UPSTREAM_TIMEOUT");
    expect(res.headers.get("x-request-id")).toMatch(UUID);
  });
});

describe("request ids", () => {
  test("every response carries x-request-id; an untrusted caller's id is replaced", async () => {
    const callerId = "caller-chosen-id";
    const developerToken = await developer(t);
    const requests: Array<[string, RequestInit & { token?: string }]> = [
      ["/changes/700/submit", { method: "POST", token: developerToken }],
      ["/changes/700/approve", { method: "POST", token: developerToken }],
      ["/changes/700/submit", { method: "POST" }],
      ["/nothing/here", { method: "GET", token: developerToken }],
      ["/changes/701/submit", { method: "POST", token: developerToken, body: new Uint8Array(MIB + 1) }],
      ["/logs/x", { token: await t.issuer.token({ sub: "audrey", roles: ["auditor"] }) }],
    ];
    const seen: Array<[number, string | null]> = [];
    for (const [path, init] of requests) {
      const res = await t.fetch(path, { ...init, headers: { "x-request-id": callerId } });
      await res.arrayBuffer();
      seen.push([res.status, res.headers.get("x-request-id")]);
    }
    expect(seen.map(([status]) => status)).toEqual([200, 403, 401, 404, 413, 502]);
    for (const [, id] of seen) expect(id).toMatch(UUID);
    expect(new Set(seen.map(([, id]) => id)).size).toBe(seen.length);
  });

  test("trust_request_id: a well-formed caller id is used end to end; a malformed one is replaced", async () => {
    const before = hidden.upstream.received.length;
    const token = await developer(hidden);
    const good = await hidden.fetch("/changes/702/submit", { method: "POST", token, headers: { "x-request-id": "req-702.a:b" } });
    expect(good.status).toBe(200);
    expect(good.headers.get("x-request-id")).toBe("req-702.a:b");
    expect(hidden.upstream.received[before]!.headers["x-request-id"]).toBe("req-702.a:b");
    const bad = await hidden.fetch("/changes/702/submit", { method: "POST", token, headers: { "x-request-id": "-starts with a dash and has spaces" } });
    expect(bad.headers.get("x-request-id")).toMatch(UUID);
    const denied = await hidden.fetch("/changes/702/approve", { method: "POST", token, headers: { "x-request-id": "req-703" } });
    expect(denied.status).toBe(403);
    expect(denied.headers.get("x-request-id")).toBe("req-703");
    expect((await problemOf(denied)).request_id).toBe("req-703");
  });
});

describe("audit", () => {
  test("every decision is one audit record with its code; forwarded requests also get an outcome record", async () => {
    const a = await startTestGateway();
    let stopped = false;
    try {
      const developerToken = await developer(a);
      const cases: Array<{ name: string; send: () => Promise<Response>; status: number; decision: "allow" | "deny"; code: string; forwarded: boolean }> = [
        { name: "allowed", send: () => a.fetch("/changes/800/submit", { method: "POST", token: developerToken }), status: 200, decision: "allow", code: "ALLOW", forwarded: true },
        { name: "no grant", send: () => a.fetch("/changes/800/approve", { method: "POST", token: developerToken }), status: 403, decision: "deny", code: "DENY_NO_GRANT", forwarded: false },
        { name: "no route", send: () => a.fetch("/nowhere", { token: developerToken }), status: 404, decision: "deny", code: "DENY_NO_ROUTE", forwarded: false },
        { name: "no token", send: () => a.fetch("/changes/800/submit", { method: "POST" }), status: 401, decision: "deny", code: "AUTHN_MISSING_TOKEN", forwarded: false },
        { name: "expired", send: async () => a.fetch("/changes/800/submit", { method: "POST", token: await a.issuer.token({ sub: "alice" }, { iat: Math.floor(Date.now() / 1000) - 900 }) }), status: 401, decision: "deny", code: "AUTHN_TOKEN_EXPIRED", forwarded: false },
        { name: "encoded slash", send: () => rawRequest(portOf(a), "GET", "/changes/800%2fsubmit", [["authorization", `Bearer ${developerToken}`]]).then((r) => new Response(r.body, { status: r.status, headers: r.headers })), status: 400, decision: "deny", code: "PATH_ENCODED_SLASH", forwarded: false },
        { name: "upstream error status", send: async () => {
          a.upstream.respond(() => new Response("nope\n", { status: 500 }));
          return a.fetch("/changes/801/submit", { method: "POST", token: developerToken });
        }, status: 500, decision: "allow", code: "ALLOW", forwarded: true },
      ];
      const ids: string[] = [];
      for (const c of cases) {
        const res = await c.send();
        await res.arrayBuffer();
        expect({ name: c.name, status: res.status }).toEqual({ name: c.name, status: c.status });
        ids.push(res.headers.get("x-request-id")!);
      }
      // Stopping flushes and closes the log, so every record (outcomes are appended after the response) is on disk.
      await a.stop({ keepDir: true });
      stopped = true;

      const auditDir = a.config.audit.dir;
      const records = readWholeRecords(auditDir).flatMap(expandOutcomes);
      cases.forEach((c, i) => {
        const mine = records.filter((r) => r.request_id === ids[i]);
        const decisions = mine.filter((r) => r.type === "decision");
        const outcomes = mine.filter((r) => r.type === "outcome");
        expect({ name: c.name, decisions: decisions.map((d) => [d.decision, d.code]), outcomes: outcomes.map((o) => o.status) })
          .toEqual({ name: c.name, decisions: [[c.decision, c.code]], outcomes: c.forwarded ? [c.status] : [] });
        if (c.forwarded) expect(outcomes[0]!.decision_seq).toBe(decisions[0]!.seq);
      });
      // The allowed decision names who, what and where; the chain verifies with the gateway's key.
      expect(records.find((r) => r.request_id === ids[0] && r.type === "decision")).toMatchObject({ sub: "alice", roles: ["developer"], duty: "submit_change", path: "/changes/800/submit", upstream: "changes", auth: "jwt" });
      const jwks = JSON.parse(readFileSync(a.gw.gatewayKey.jwksFile, "utf8")) as JSONWebKeySet;
      const verified = await verifyAuditFiles([auditDir], { keys: jwks });
      expect({ ok: verified.ok, break: verified.break, signaturesChecked: verified.signaturesChecked }).toEqual({ ok: true, break: null, signaturesChecked: true });
      expect(verified.checkpoints).toBeGreaterThanOrEqual(1);
    } finally {
      if (!stopped) await a.stop();
      rmSync(a.dir, { recursive: true, force: true });
    }
  });
});
