// Services calling the operational listener with client certificates (mTLS): the principal comes
// from the listener's certificate mapping (subject CN, or the SPIFFE ID of a URI SAN), the policy
// decides as for any caller, certificates of other CAs never authenticate, and JWT callers keep
// working on the same listener. Real CAs, real certificates, real TLS handshakes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import type { IssuedCertificate } from "../support/pki.ts";
import { createTestPki, startTestGateway, type TestGateway, type TestPki } from "../support/harness.ts";
import { rawRequest, type RawResponse } from "./raw.ts";

const BUILD_BOT = "build-bot";
const REVIEW_BOT = "spiffe://e2e.test/ns/ci/sa/review-bot";

let pkiDir: string;
let servicesCa: TestPki;
let strangerCa: TestPki;
let t: TestGateway;
const certs: Record<"buildBot" | "reviewBot" | "unmapped" | "twoSpiffeIds" | "foreignBuildBot" | "adminOperator", IssuedCertificate> = {} as never;

beforeAll(async () => {
  pkiDir = mkdtempSync(join(tmpdir(), "dutygate-mtls-"));
  [servicesCa, strangerCa] = await Promise.all([createTestPki(pkiDir, "services-ca"), createTestPki(pkiDir, "stranger-ca")]);
  certs.buildBot = await servicesCa.client(BUILD_BOT);
  // The SPIFFE ID wins over the CN: the CN here is deliberately a mapped name of another service.
  certs.reviewBot = await servicesCa.client(BUILD_BOT + "-as-cn", [REVIEW_BOT]);
  certs.unmapped = await servicesCa.client("unmapped-service");
  certs.twoSpiffeIds = await servicesCa.client("two-ids", ["spiffe://e2e.test/a", "spiffe://e2e.test/b"]);
  // Same CN as a mapped identity, but issued by a CA the listener does not trust.
  certs.foreignBuildBot = await strangerCa.client(BUILD_BOT);
  t = await startTestGateway({
    admin: true,
    adminIdentities: { operator: { roles: ["security_admin"], mfa: true, team: "sec" } },
    configure: (c) => ({
      ...c,
      listen: {
        ...c.listen,
        clientCaFile: servicesCa.ca.certFile,
        requireClientCertificate: false,
        certificateMapping: {
          identities: {
            [BUILD_BOT]: { roles: ["deployer"], mfa: true, team: "ci" },
            [REVIEW_BOT]: { roles: ["reviewer"], mfa: false, team: "ci" },
            [BUILD_BOT + "-as-cn"]: { roles: ["developer"], mfa: true, team: "ci" },
          },
        },
      },
    }),
  });
  certs.adminOperator = await t.adminPki!.client("operator");
});

afterAll(async () => {
  await t?.stop();
  rmSync(pkiDir, { recursive: true, force: true });
});

const port = () => Number(new URL(t.url).port);

/** One request on a fresh TLS connection presenting `cert` (or none). */
function call(method: string, path: string, options: { cert?: IssuedCertificate; token?: string } = {}): Promise<RawResponse> {
  const headers: Array<[string, string]> = options.token ? [["authorization", `Bearer ${options.token}`]] : [];
  return rawRequest(port(), method, path, headers, { body: "", tls: options.cert ? { cert: options.cert.cert, key: options.cert.key } : {} });
}

const codeOf = (r: RawResponse) => (JSON.parse(r.body) as { code: string }).code;

async function identityOf(headers: Record<string, string>, audience: string) {
  const jwks = JSON.parse(readFileSync(t.gw.gatewayKey.jwksFile, "utf8")) as JSONWebKeySet;
  return (await jwtVerify(headers[t.config.identity.header]!, createLocalJWKSet(jwks), { issuer: "dutygate", audience })).payload;
}

describe("client certificates on the operational listener", () => {
  test("the listener is on the backend that can see client certificates", () => {
    expect(t.gw.operational.backend).toBe("node");
  });

  interface CertCase {
    name: string;
    cert: keyof typeof certs;
    method: string;
    path: string;
    status: number;
    code?: string;
    /** `sub` of the identity token the upstream must receive (allowed requests). */
    sub?: string;
    audience?: string;
  }
  const cases: CertCase[] = [
    { name: "CN identity allowed by its role", cert: "buildBot", method: "POST", path: "/changes/900/deploy", status: 200, sub: BUILD_BOT, audience: "deploy" },
    { name: "CN identity denied a duty its role lacks", cert: "buildBot", method: "POST", path: "/changes/900/approve", status: 403, code: "DENY_NO_GRANT" },
    { name: "SPIFFE identity allowed by its role", cert: "reviewBot", method: "POST", path: "/changes/901/approve", status: 200, sub: REVIEW_BOT, audience: "changes" },
    { name: "SPIFFE identity wins over the CN: the CN's mapping (a developer) grants nothing", cert: "reviewBot", method: "POST", path: "/changes/908/submit", status: 403, code: "DENY_NO_GRANT" },
    { name: "identity not in the mapping", cert: "unmapped", method: "POST", path: "/changes/902/deploy", status: 401, code: "MTLS_UNKNOWN_IDENTITY" },
    { name: "two SPIFFE IDs are ambiguous", cert: "twoSpiffeIds", method: "POST", path: "/changes/903/deploy", status: 401, code: "MTLS_AMBIGUOUS_IDENTITY" },
    { name: "a mapped name from another CA never authenticates", cert: "foreignBuildBot", method: "POST", path: "/changes/904/deploy", status: 401, code: "MTLS_NOT_AUTHORIZED" },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const before = t.upstream.received.length;
      const res = await call(c.method, c.path, { cert: certs[c.cert] });
      expect({ status: res.status, code: res.headers["content-type"] === "application/problem+json" ? codeOf(res) : undefined }).toEqual({ status: c.status, code: c.code });
      const forwarded = t.upstream.received.slice(before);
      if (c.status !== 200) {
        expect(forwarded).toEqual([]);
        return;
      }
      expect(forwarded.map((r) => r.path)).toEqual([c.path]);
      const identity = await identityOf(forwarded[0]!.headers, c.audience!);
      expect(identity.sub).toBe(c.sub!);
      expect(forwarded[0]!.headers).not.toHaveProperty("authorization");
    });
  }

  test("a JWT still works on the same listener without a certificate", async () => {
    const before = t.upstream.received.length;
    const token = await t.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
    const res = await call("POST", "/changes/905/submit", { token });
    expect(res.status).toBe(200);
    expect((await identityOf(t.upstream.received[before]!.headers, "changes")).sub).toBe("alice");
  });

  test("no certificate and no token: 401 asking for a bearer token", async () => {
    const res = await call("POST", "/changes/906/submit");
    expect(res.status).toBe(401);
    expect(codeOf(res)).toBe("AUTHN_MISSING_TOKEN");
  });

  test("a history separation holds across credential kinds: a service cannot approve what it submitted by JWT", async () => {
    // The review bot submits (as a JWT caller with the same sub), then tries to approve with its certificate.
    const token = await t.issuer.token({ sub: REVIEW_BOT, roles: ["developer"], mfa: true });
    expect((await call("POST", "/changes/907/submit", { token })).status).toBe(200);
    const res = await call("POST", "/changes/907/approve", { cert: certs.reviewBot });
    expect(res.status).toBe(403);
    expect(codeOf(res)).toBe("DENY_SOD_HISTORY");
  });
});

describe("the admin channel requires a certificate of the admin CA", () => {
  const adminPort = () => Number(new URL(t.adminUrl!).port);

  test("an admin CA certificate mapped to an admin identity performs an admin duty", async () => {
    const before = t.upstream.received.length;
    const res = await rawRequest(adminPort(), "GET", "/admin/security/settings", [], { tls: { cert: certs.adminOperator.cert, key: certs.adminOperator.key } });
    expect(res.status).toBe(200);
    expect((await identityOf(t.upstream.received[before]!.headers, "admin")).sub).toBe("operator");
  });

  test("admin duties are not served on the operational listener, whatever the credential", async () => {
    const token = await t.issuer.token({ sub: "alice", roles: ["security_admin"], mfa: true });
    const res = await call("GET", "/admin/security/settings", { token });
    expect(res.status).toBe(404);
    expect(codeOf(res)).toBe("DENY_NO_ROUTE");
  });

  /** Handshake and one probe request; `answered:<status line>` only when the listener accepted the certificate. */
  function probeAdmin(cert: IssuedCertificate | null): Promise<string> {
    return new Promise<string>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: adminPort(), rejectUnauthorized: false, ...(cert ? { cert: cert.cert, key: cert.key } : {}), ALPNProtocols: ["http/1.1"] }, () => {
        // Under TLS 1.3 the server judges the client certificate after the client's handshake is done: the read fails.
        socket.write("GET /-/healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
      });
      let data = "";
      socket.on("data", (d: Buffer) => (data += d.toString()));
      socket.once("error", () => resolve(data === "" ? "refused" : `answered:${data.split("\r\n")[0]}`));
      socket.once("close", () => resolve(data === "" ? "refused" : `answered:${data.split("\r\n")[0]}`));
      socket.setTimeout(10_000, () => socket.destroy());
    });
  }

  test("the admin listener refuses certificates of other CAs, and none, at the TLS layer", async () => {
    const outcomes = {
      adminCa: await probeAdmin(certs.adminOperator),
      servicesCa: await probeAdmin(certs.buildBot),
      strangerCa: await probeAdmin(certs.foreignBuildBot),
      none: await probeAdmin(null),
    };
    expect(outcomes).toEqual({ adminCa: "answered:HTTP/1.1 200 OK", servicesCa: "refused", strangerCa: "refused", none: "refused" });
  });

  test("a bearer token is not accepted on the admin channel", async () => {
    const token = await t.issuer.token({ sub: "alice", roles: ["security_admin"], mfa: true });
    const res = await rawRequest(adminPort(), "GET", "/admin/security/x", [["authorization", `Bearer ${token}`]], { tls: { cert: certs.adminOperator.cert, key: certs.adminOperator.key } });
    expect(res.status).toBe(401);
    expect(codeOf(res)).toBe("AUTHN_TOKEN_NOT_ACCEPTED");
  });
});
