import { test, expect, describe } from "bun:test";
import { normalizeRequestPath, requestTargetOf } from "./normalize-path.ts";

// [raw request-target, expected path, expected query]
const accepted: [string, string, string][] = [
  ["/", "/", ""],
  ["/admin", "/admin", ""],
  ["/admin/", "/admin/", ""],
  ["/Admin", "/Admin", ""], // paths are case-sensitive
  ["/a/../admin", "/admin", ""],
  ["//admin", "/admin", ""],
  ["///admin//x//", "/admin/x/", ""],
  ["/x/%2e%2e/admin/../y", "/y", ""],
  ["/a/%2e%2e/admin", "/admin", ""],
  ["/a/%2E%2e/admin", "/admin", ""],
  ["/a/.%2e/admin", "/admin", ""],
  ["/a/%2e/admin", "/a/admin", ""],
  ["/admin/.", "/admin/", ""],
  ["/./admin", "/admin", ""],
  ["/a/b/..", "/a/", ""],
  ["/a/..", "/", ""],
  ["/a/b/../../c", "/c", ""],
  ["/...", "/...", ""], // three dots is an ordinary segment
  ["/.well-known/jwks.json", "/.well-known/jwks.json", ""],
  ["/%41dmin", "/Admin", ""], // unreserved escapes are decoded
  ["/%7euser/%5Fx", "/~user/_x", ""],
  ["/a%3bb", "/a%3Bb", ""], // reserved escapes stay encoded, upper-cased
  ["/a%3Ab%40c", "/a%3Ab%40c", ""],
  ["/%252f", "/%252f", ""], // an encoded "%" is not decoded twice
  ["/%25", "/%25", ""],
  ["/a%20b", "/a%20b", ""],
  ["/a b", "/a%20b", ""],
  ["/a|b^c{d}", "/a%7Cb%5Ec%7Bd%7D", ""],
  ["/caf%c3%a9", "/caf%C3%A9", ""],
  ["/café", "/caf%C3%A9", ""], // raw unicode and its escape normalise alike
  ["/日本/😀", "/%E6%97%A5%E6%9C%AC/%F0%9F%98%80", ""],
  ["/a%3Bb=c/d", "/a%3Bb=c/d", ""],
  ["/search?q=1&b=/../x", "/search", "q=1&b=/../x"], // the query is not a path
  ["/a/../b?x=%2f", "/b", "x=%2f"],
  ["/a?", "/a", ""],
  ["/a?x=é", "/a", "x=%C3%A9"],
  ["/a?x=\"<'>", "/a", "x=%22%3C%27%3E"],
  ["/a?x[]=1|2", "/a", "x[]=1|2"],
];

// [raw request-target, expected code]
const rejected: [string, string][] = [
  ["", "PATH_NOT_ORIGIN_FORM"],
  ["*", "PATH_NOT_ORIGIN_FORM"],
  ["http://evil.example/admin", "PATH_NOT_ORIGIN_FORM"],
  ["evil.example:443", "PATH_NOT_ORIGIN_FORM"],
  ["admin", "PATH_NOT_ORIGIN_FORM"],
  ["/..", "PATH_TRAVERSAL"],
  ["/../admin", "PATH_TRAVERSAL"],
  ["/%2e%2e/admin", "PATH_TRAVERSAL"],
  ["/a/../../admin", "PATH_TRAVERSAL"],
  ["/%2e%2e/%2e%2e/admin", "PATH_TRAVERSAL"],
  ["/public/..;/admin", "PATH_TRAVERSAL"],
  ["/public/.;x/admin", "PATH_TRAVERSAL"],
  // Path parameters split one resource into many spellings for the policy, not for servlet upstreams.
  ["/changes/42;x/approve", "PATH_PARAMETER"],
  ["/a;b=c/d", "PATH_PARAMETER"],
  ["/a/b;", "PATH_PARAMETER"],
  ["/a/x;..", "PATH_PARAMETER"],
  ["/a%2fb", "PATH_ENCODED_SLASH"],
  ["/a%2Fb", "PATH_ENCODED_SLASH"],
  ["/..%2fadmin", "PATH_ENCODED_SLASH"],
  ["/a%5cb", "PATH_ENCODED_SLASH"],
  ["/a\\b", "PATH_BACKSLASH"],
  ["/a%00b", "PATH_NUL"],
  ["/a\u0000b", "PATH_NUL"],
  ["/a%0ab", "PATH_CONTROL_CHARACTER"],
  ["/a%7f", "PATH_CONTROL_CHARACTER"],
  ["/a\tb", "PATH_CONTROL_CHARACTER"],
  ["/a\r\nx: y", "PATH_CONTROL_CHARACTER"],
  ["/a%", "PATH_BAD_ENCODING"],
  ["/a%2", "PATH_BAD_ENCODING"],
  ["/a%zz", "PATH_BAD_ENCODING"],
  ["/a%%32%66", "PATH_BAD_ENCODING"],
  ["/%c0%ae%c0%ae/admin", "PATH_BAD_ENCODING"], // overlong "." must not become a dot segment anywhere
  ["/%c0%af", "PATH_BAD_ENCODING"],
  ["/%e6%97", "PATH_BAD_ENCODING"], // truncated sequence
  ["/%ff", "PATH_BAD_ENCODING"],
  ["/caf\u00e9%a9", "PATH_BAD_ENCODING"],
  ["/a\ud800b", "PATH_BAD_ENCODING"],
  ["/a#frag", "PATH_BAD_CHARACTER"],
  ["/a?x=%g0", "QUERY_BAD_ENCODING"],
  ["/a?x=1%", "QUERY_BAD_ENCODING"],
  ["/a?x=a b", "QUERY_BAD_CHARACTER"],
  ["/a?x=\u0000", "QUERY_BAD_CHARACTER"],
  ["/a?x#y", "QUERY_BAD_CHARACTER"],
];

describe("normalizeRequestPath", () => {
  test.each(accepted)("accepts %p", (raw, path, query) => {
    expect(normalizeRequestPath(raw)).toEqual({ ok: true, path, query });
  });

  test.each(rejected)("rejects %p", (raw, code) => {
    const result = normalizeRequestPath(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe(code as never);
      expect(result.status).toBe(400);
      expect(result.message).toMatch(/^[a-z]/);
      expect(result.message.endsWith(".")).toBe(false);
    }
  });

  test("normalisation is idempotent on every accepted input", () => {
    for (const [raw] of accepted) {
      const once = normalizeRequestPath(raw);
      if (!once.ok) throw new Error(`expected ${raw} to be accepted`);
      const twice = normalizeRequestPath(once.path + (once.query ? "?" + once.query : ""));
      expect(twice).toEqual(once);
    }
  });

  test("the normalised path survives WHATWG URL parsing unchanged (what fetch sends)", () => {
    for (const [raw] of accepted) {
      const r = normalizeRequestPath(raw);
      if (!r.ok) throw new Error(`expected ${raw} to be accepted`);
      const url = new URL("http://upstream.internal" + r.path + (r.query ? "?" + r.query : ""));
      expect(url.pathname).toBe(r.path);
      expect(url.search).toBe(r.query ? "?" + r.query : "");
    }
  });

  test("a very long path is rejected with 414, one just under the limit is accepted", () => {
    const long = "/" + "a".repeat(10_000);
    const tooLong = normalizeRequestPath(long);
    expect(tooLong.ok).toBe(false);
    if (!tooLong.ok) { expect(tooLong.code).toBe("PATH_TOO_LONG"); expect(tooLong.status).toBe(414); }
    const fits = "/" + "abc/".repeat(2000);
    expect(normalizeRequestPath(fits)).toEqual({ ok: true, path: fits, query: "" });
    expect(normalizeRequestPath(long, { maxLength: 20_000 }).ok).toBe(true);
  });

  test("many dot segments and duplicate slashes in one long path", () => {
    const raw = "/" + "x/".repeat(1000) + "../".repeat(1000) + "//admin";
    expect(normalizeRequestPath(raw)).toEqual({ ok: true, path: "/admin", query: "" });
    expect(normalizeRequestPath("/" + "x/".repeat(100) + "../".repeat(101) + "admin").ok).toBe(false);
  });
});

describe("requestTargetOf", () => {
  test.each([
    ["https://gw.example:8443/a/b?x=1", "/a/b?x=1"],
    ["http://127.0.0.1/", "/"],
    ["http://[::1]:80/x//y", "/x//y"],
  ])("%p → %p", (url, target) => {
    expect(requestTargetOf(new Request(url))).toBe(target);
  });

  // Bun.serve's `request.url` for an HTTP/1.0 request without Host is the target alone; its first
  // segment (or a URL in its query) is not an authority.
  test.each([
    ["/changes/9", "/changes/9"],
    ["/a?next=https://evil.example/admin", "/a?next=https://evil.example/admin"],
    ["//evil.example/admin", "//evil.example/admin"],
  ])("a URL that is only a target: %p → %p", (url, target) => {
    expect(requestTargetOf({ url } as Request)).toBe(target);
  });
});
