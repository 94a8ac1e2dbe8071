// Which credential decides on which channel, with real tokens and the certificate mapping.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bearerCredential, certificateCredential, createJwtAuthenticator, isRefusal, type AuthnOutcome } from "../../authn/mod.ts";
import { T0, makeKey, signToken, testSchema, issuerConfig, writeJwksFile } from "../../../test/support/authn-tokens.ts";
import { removeTempDir, tempDir } from "../../../test/support/temp-dir.ts";
import type { ConnectionInfo, PeerCertificateInfo } from "../../tls/types.ts";
import { channelAuthentication, type ChannelAuthentication } from "./authenticate.ts";

const temp = tempDir();
afterAll(() => removeTempDir(temp));

const certificate: PeerCertificateInfo = {
  subjectCN: "ops-bot", uriSans: [], dnsSans: [], issuerCN: "Admin CA", fingerprint256: "AA:BB", serialNumber: "01",
  validFrom: "2026-01-01T00:00:00.000Z", validTo: "2030-01-01T00:00:00.000Z", authorized: true, authorizationError: null,
};
const mapping = { identities: { "ops-bot": { roles: ["deployer"], mfa: true, level: 1, origin: "10.0.0.1", team: "ops" } } };
const withCertificate: ConnectionInfo = { remoteAddress: "127.0.0.1", peerCertificate: certificate };
const without: ConnectionInfo = { remoteAddress: "127.0.0.1", peerCertificate: null };

let token = "";
let operational: ChannelAuthentication;
let admin: ChannelAuthentication;
beforeAll(async () => {
  const key = await makeKey("EdDSA", "ed-1");
  const jwks = join(temp, "jwks.json");
  writeJwksFile(jwks, [key]);
  token = await signToken({ key });
  const credentials = { bearer: bearerCredential(createJwtAuthenticator({ issuers: [issuerConfig({ jwksFile: jwks })], now: () => T0 })), certificate: certificateCredential(mapping) };
  operational = channelAuthentication("operational", credentials);
  admin = channelAuthentication("admin", credentials);
});

const request = (authorization?: string) => new Request("https://gw.test/x", { headers: authorization ? { authorization } : {} });
const summary = async (outcome: AuthnOutcome | Promise<AuthnOutcome>) => {
  const o = await outcome;
  return isRefusal(o) ? { refused: o.code, status: o.status, challenge: o.challenge !== undefined } : { sub: o.principal.sub, method: o.method, issuer: o.issuer };
};

describe("channelAuthentication", () => {
  test.each<[string, "operational" | "admin", boolean, boolean, Record<string, unknown>]>([
    ["operational: a bearer token", "operational", true, false, { sub: "alice", method: "jwt", issuer: "https://idp.example.test" }],
    ["operational: a certificate alone", "operational", false, true, { sub: "ops-bot", method: "mtls", issuer: "Admin CA" }],
    ["operational: a token wins over a certificate", "operational", true, true, { sub: "alice", method: "jwt" }],
    ["operational: neither, refused as the bearer scheme refuses (with a challenge)", "operational", false, false, { refused: "AUTHN_MISSING_TOKEN", status: 401, challenge: true }],
    ["admin: a certificate", "admin", false, true, { sub: "ops-bot", method: "mtls" }],
    ["admin: a bearer token is refused, even beside a certificate", "admin", true, true, { refused: "AUTHN_TOKEN_NOT_ACCEPTED", status: 401, challenge: false }],
    ["admin: no certificate", "admin", false, false, { refused: "MTLS_REQUIRED", status: 401 }],
  ])("%s", async (_name, channel, bearer, cert, expected) => {
    const authenticate = channel === "admin" ? admin : operational;
    expect(await summary(authenticate(request(bearer ? `Bearer ${token}` : undefined), cert ? withCertificate : without, testSchema))).toMatchObject(expected);
  });

  test("a certificate whose identity is not mapped is refused with the mapping's code", async () => {
    const stranger = { ...withCertificate, peerCertificate: { ...certificate, subjectCN: "mallory" } };
    expect(await summary(admin(request(), stranger, testSchema))).toMatchObject({ refused: "MTLS_UNKNOWN_IDENTITY", status: 401 });
  });

  test("a mapped identity whose attributes do not fit the schema is AUTHN_BAD_CLAIM", async () => {
    const auth = channelAuthentication("admin", { bearer: bearerCredential(createJwtAuthenticator({ issuers: [] })), certificate: certificateCredential({ identities: { "ops-bot": { roles: ["nobody"], mfa: true } } }) });
    expect(await summary(auth(request(), withCertificate, testSchema))).toMatchObject({ refused: "AUTHN_BAD_CLAIM" });
  });

  test("a cached token is answered without a promise", async () => {
    await operational(request(`Bearer ${token}`), without, testSchema);
    expect(operational(request(`Bearer ${token}`), without, testSchema)).not.toBeInstanceOf(Promise);
  });
});
