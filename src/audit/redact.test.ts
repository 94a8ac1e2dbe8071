import { describe, expect, test } from "bun:test";
import { redactHeaders } from "./redact.ts";

describe("redactHeaders", () => {
  const request = new Headers([
    ["Authorization", "Bearer secret"],
    ["Cookie", "session=secret"],
    ["Proxy-Authorization", "Basic secret"],
    ["User-Agent", "curl/8.5"],
    ["X-Change-Id", "42"],
    ["X-Identity", "gateway-token"],
    ["Accept", "text/plain"],
  ]);

  test.each<[string, string[], string[], Record<string, string>]>([
    ["only allow-listed headers", ["user-agent", "x-change-id"], [], { "user-agent": "curl/8.5", "x-change-id": "42" }],
    ["credential headers never, even when listed", ["authorization", "cookie", "proxy-authorization", "set-cookie", "accept"], [], { accept: "text/plain" }],
    ["allowlist is case-insensitive", ["User-Agent"], [], { "user-agent": "curl/8.5" }],
    ["extra never-logged names (the identity header)", ["x-identity", "accept"], ["X-Identity"], { accept: "text/plain" }],
    ["empty allowlist", [], [], {}],
  ])("Headers: %s", (_name, allowlist, never, expected) => {
    expect(redactHeaders(request, allowlist, never)).toEqual(expected);
  });

  test("plain records: names lower-cased, repeated values joined, undefined skipped", () => {
    const headers = { "X-Forwarded-For": ["10.0.0.1", "10.0.0.2"], "Set-Cookie": "a=b", Accept: undefined, "user-agent": "node" };
    expect(redactHeaders(headers, ["x-forwarded-for", "set-cookie", "accept", "user-agent"])).toEqual({
      "x-forwarded-for": "10.0.0.1, 10.0.0.2",
      "user-agent": "node",
    });
  });
});
