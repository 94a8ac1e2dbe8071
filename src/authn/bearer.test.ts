import { test, expect, describe } from "bun:test";
import { parseBearerToken, wwwAuthenticate, MAX_TOKEN_LENGTH } from "./bearer.ts";
import { AUTHN_HTTP_STATUS } from "./errors.ts";
import { readClaim, mapClaimsToPrincipal } from "./claims.ts";
import { testSchema } from "../../test/support/authn-tokens.ts";

describe("parseBearerToken (RFC 6750 §2.1)", () => {
  const cases: { header: string | null; expect: string }[] = [
    { header: "Bearer aaa.bbb.ccc", expect: "aaa.bbb.ccc" },
    { header: "bearer aaa.bbb.ccc", expect: "aaa.bbb.ccc" },
    { header: "  Bearer  aaa.bbb.ccc  ", expect: "aaa.bbb.ccc" },
    { header: "Bearer aaa.bbb.", expect: "aaa.bbb." },
    { header: null, expect: "AUTHN_MISSING_TOKEN" },
    { header: "   ", expect: "AUTHN_MISSING_TOKEN" },
    { header: "Basic YWxpY2U6eA==", expect: "AUTHN_MISSING_TOKEN" },
    { header: "Bearertoken.a.b", expect: "AUTHN_MISSING_TOKEN" },
    { header: "Bearer", expect: "AUTHN_MALFORMED_TOKEN" },
    { header: "Bearer aaa.bbb.ccc extra", expect: "AUTHN_MALFORMED_TOKEN" },
    { header: "Bearer aaa.bbb.ccc.ddd.eee", expect: "AUTHN_MALFORMED_TOKEN" },
    { header: "Bearer aaa==.bbb.ccc", expect: "AUTHN_MALFORMED_TOKEN" },
    { header: `Bearer ${"a".repeat(MAX_TOKEN_LENGTH)}.b.c`, expect: "AUTHN_MALFORMED_TOKEN" },
  ];
  for (const c of cases) {
    test(`${JSON.stringify(c.header)?.slice(0, 40)} → ${c.expect}`, () => {
      const r = parseBearerToken(c.header);
      expect(r.ok ? r.token : r.code).toBe(c.expect);
    });
  }
});

describe("wwwAuthenticate (RFC 6750 §3)", () => {
  test("no credentials: a bare challenge without error code", () => {
    expect(wwwAuthenticate({ ok: false, code: "AUTHN_MISSING_TOKEN", message: "no bearer token" })).toBe('Bearer realm="dutygate"');
  });

  test("a refused token: invalid_token with the message", () => {
    expect(wwwAuthenticate({ ok: false, code: "AUTHN_TOKEN_EXPIRED", message: "token expired" }))
      .toBe('Bearer realm="dutygate", error="invalid_token", error_description="token expired"');
  });

  test("the description keeps to the characters RFC 6750 allows", () => {
    const value = wwwAuthenticate({ ok: false, code: "AUTHN_UNKNOWN_ISSUER", message: 'issuer `a"b\\c…é` is not trusted' });
    const description = /error_description="(.*)"$/.exec(value)![1]!;
    expect(description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/);
    expect(description).toBe("issuer `a'b'c...?` is not trusted");
  });

  test("only an unavailable key set is the gateway's fault", () => {
    const not401 = Object.entries(AUTHN_HTTP_STATUS).filter(([, status]) => status !== 401).map(([code]) => code);
    expect(not401).toEqual(["AUTHN_JWKS_UNAVAILABLE"]);
  });
});

describe("claim mapping", () => {
  const payload = {
    sub: "alice",
    "https://example.com/roles": ["developer"],
    realm_access: { roles: ["reviewer"], nested: { deep: 1 } },
    list: [{ a: 1 }],
  };
  const reads: { path: string; value: unknown }[] = [
    { path: "sub", value: "alice" },
    { path: "https://example.com/roles", value: ["developer"] },
    { path: "realm_access.roles", value: ["reviewer"] },
    { path: "realm_access.nested.deep", value: 1 },
    { path: "realm_access.missing", value: undefined },
    { path: "list.0.a", value: undefined },
    { path: "__proto__", value: undefined },
    { path: "realm_access.constructor", value: undefined },
    { path: "sub.length", value: undefined },
  ];
  for (const r of reads) {
    test(`readClaim ${r.path}`, () => expect(readClaim(payload, r.path)).toEqual(r.value));
  }

  test("constants win over claims, unmapped attributes read the claim of their name, extra mappings are ignored", () => {
    const result = mapClaimsToPrincipal(
      { sub: "bob", groups: ["deployer"], mfa: false, level: 1, ip: "::1", team: "from-token" },
      testSchema,
      { claims: { roles: "groups", origin: "ip", unused: "nowhere" }, constants: { team: "platform" } },
    );
    if (!result.ok) throw new Error(result.message);
    expect(result.principal.team).toBe("platform");
    expect([...result.principal.roles]).toEqual(["deployer"]);
    expect(result.principal.mfa).toBe(false);
    expect((result.principal.origin as { text: string }).text).toBe("::1");
  });

  test("a null claim is a bad claim, not a missing one", () => {
    const result = mapClaimsToPrincipal({ sub: "bob", roles: [], mfa: null, level: 1, origin: "::1", team: "x" }, testSchema, { claims: {}, constants: {} });
    expect(result.ok ? "ok" : result.code).toBe("AUTHN_BAD_CLAIM");
    expect(result.ok ? "" : result.message).toContain("`mfa`");
  });
});
