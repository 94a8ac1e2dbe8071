import { describe, expect, test } from "bun:test";
import { parseSubjectAltName, principalAttributesFromCertificate, selectSniEntry } from "./mod.ts";
import type { PeerCertificateInfo } from "./mod.ts";

const base: PeerCertificateInfo = {
  subjectCN: "alice", uriSans: [], dnsSans: [], issuerCN: "Client CA", fingerprint256: "AA:BB", serialNumber: "01",
  validFrom: "2026-01-01T00:00:00.000Z", validTo: "2027-01-01T00:00:00.000Z", authorized: true, authorizationError: null,
};
const mapping = {
  identities: {
    "spiffe://example.org/ns/ci/sa/deployer": { roles: ["deployer"], mfa: true },
    alice: { roles: ["security_admin"], mfa: true },
  },
};

describe("principalAttributesFromCertificate", () => {
  const cases: [string, Partial<PeerCertificateInfo>, { ok: true; sub: string } | { ok: false; code: string }][] = [
    ["SPIFFE ID is the identity", { subjectCN: "ignored", uriSans: ["https://x", "spiffe://example.org/ns/ci/sa/deployer"] }, { ok: true, sub: "spiffe://example.org/ns/ci/sa/deployer" }],
    ["CN when there is no SPIFFE ID", { uriSans: ["https://example.org/alice"] }, { ok: true, sub: "alice" }],
    ["unmapped SPIFFE ID does not fall back to the CN", { uriSans: ["spiffe://example.org/other"] }, { ok: false, code: "MTLS_UNKNOWN_IDENTITY" }],
    ["unknown CN", { subjectCN: "mallory" }, { ok: false, code: "MTLS_UNKNOWN_IDENTITY" }],
    ["certificate not from the CA", { authorized: false, authorizationError: "UNABLE_TO_GET_ISSUER_CERT" }, { ok: false, code: "MTLS_NOT_AUTHORIZED" }],
    ["two SPIFFE IDs", { uriSans: ["spiffe://a/x", "spiffe://a/y"] }, { ok: false, code: "MTLS_AMBIGUOUS_IDENTITY" }],
    ["neither SPIFFE ID nor CN", { subjectCN: null }, { ok: false, code: "MTLS_NO_IDENTITY" }],
    ["inherited object keys are not identities", { subjectCN: "constructor" }, { ok: false, code: "MTLS_UNKNOWN_IDENTITY" }],
  ];
  for (const [name, peer, want] of cases) {
    test(name, () => {
      const result = principalAttributesFromCertificate({ ...base, ...peer }, mapping);
      const got: unknown = result.ok ? { ok: true, sub: result.sub } : { ok: false, code: result.code };
      expect(got).toEqual(want);
      if (result.ok) expect(result.attributes).toBe(mapping.identities[result.sub as keyof typeof mapping.identities]);
      else expect(result.message).not.toMatch(/\.$/);
    });
  }
});

describe("parseSubjectAltName", () => {
  test("splits node's format, including quoted values with commas", () => {
    expect(parseSubjectAltName('DNS:a.test, URI:spiffe://example.org/sa/x, IP Address:127.0.0.1, URI:"https://x/a,b", email:a@b')).toEqual({
      uri: ["spiffe://example.org/sa/x", "https://x/a,b"], dns: ["a.test"],
    });
    expect(parseSubjectAltName(undefined)).toEqual({ uri: [], dns: [] });
  });
});

describe("selectSniEntry", () => {
  const entries = [{ serverName: "a.example.com" }, { serverName: "*.example.com" }, { serverName: "example.org" }];
  const cases: [string | undefined, string | null][] = [
    ["a.example.com", "a.example.com"], ["A.Example.COM", "a.example.com"], ["b.example.com", "*.example.com"],
    ["x.b.example.com", null], ["example.com", null], ["example.org.", "example.org"], [undefined, null], ["localhost", null],
  ];
  for (const [name, want] of cases) test(`${name} → ${want}`, () => expect(selectSniEntry(name, entries)?.serverName ?? null).toBe(want));
});
