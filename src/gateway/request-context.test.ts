import { describe, expect, test } from "bun:test";
import { clientIp, policyHeaders, policyQuery, readRequestContext, requestedHost } from "./request-context.ts";

const req = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });

describe("readRequestContext", () => {
  test.each<[string, Request, { code: string; status: number; path: string | null }]>([
    ["a Host that names another host", req("https://gw.test/a", { host: "evil.test" }), { code: "REQUEST_BAD_HOST", status: 400, path: null }],
    ["a Host with a path in it", req("https://gw.test/a", { host: "gw.test/x" }), { code: "REQUEST_BAD_HOST", status: 400, path: null }],
    ["an encoded slash", req("https://gw.test/files/a%2fb"), { code: "PATH_ENCODED_SLASH", status: 400, path: null }],
    ["a `_method` override", req("https://gw.test/changes/1?_method=DELETE"), { code: "METHOD_OVERRIDE_REFUSED", status: 400, path: "/changes/1" }],
    ["a declared body over the limit", req("https://gw.test/up", { "content-length": "11" }), { code: "REQUEST_BODY_TOO_LARGE", status: 413, path: "/up" }],
  ])("refuses %s", (_name, request, expected) => {
    const r = readRequestContext(request, 10);
    expect("code" in r).toBe(true);
    expect(r).toMatchObject(expected);
  });

  test("the checks run in the order the gateway answers them: Host first", () => {
    const r = readRequestContext(req("https://gw.test/a%2fb?_method=PUT", { host: "other.test", "content-length": "99" }), 10);
    expect(r).toMatchObject({ code: "REQUEST_BAD_HOST" });
  });

  test("a good request: host, normalised path and query", () => {
    expect(readRequestContext(req("https://gw.test:8443/a/./b/../c?x=1", { "content-length": "10" }), 10)).toEqual({ host: "gw.test:8443", path: "/a/c", query: "x=1" });
  });

  test("the refusal names the parameter decoded (an escaped spelling too)", () => {
    const r = readRequestContext(req("https://gw.test/a?x=1&_me%74hod=PUT"), 10);
    if (!("code" in r)) throw new Error("not refused");
    expect(r.message).toContain("`_method` is read as `_method`");
  });
});

describe("requestedHost", () => {
  test("the Host may differ from the URL's authority only in case", () => {
    expect(requestedHost(req("https://gw.test/", { host: "GW.test" }))).toBe("GW.test");
    expect(requestedHost(req("https://gw.test:8443/", { host: "gw.test:9999" }))).toBe("gw.test:9999");
    expect(requestedHost(req("https://[::1]:8443/", { host: "[::1]:8443" }))).toBe("[::1]:8443");
    expect(requestedHost(req("https://gw.test/", { host: "gw.test@evil" }))).toBeNull();
  });
});

describe("policy inputs", () => {
  test("policyHeaders reads only the named headers, absent ones left out", () => {
    const h = new Headers({ "x-freeze": "yes", authorization: "Bearer t" });
    expect(policyHeaders(h, ["x-freeze", "x-missing"])).toEqual({ "x-freeze": "yes" });
  });

  test("policyQuery keeps the first value of a repeated parameter", () => {
    expect(policyQuery("a=1&b=2&a=3")).toEqual({ a: "1", b: "2" });
    expect(policyQuery("")).toEqual({});
  });

  test("clientIp parses once and falls back to 0.0.0.0", () => {
    expect(clientIp("10.1.2.3").text).toBe("10.1.2.3");
    expect(clientIp("10.1.2.3")).toBe(clientIp("10.1.2.3"));
    expect(clientIp("not an address").text).toBe("0.0.0.0");
  });
});
