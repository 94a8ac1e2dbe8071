import { test, expect, describe } from "bun:test";
import { requestIdFor } from "./request-id.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function withId(id: string | null): Request {
  return new Request("https://gw.example/", { headers: id === null ? {} : { "x-request-id": id } });
}

describe("requestIdFor", () => {
  test.each([
    ["trusted, well-formed", "abc-123_x.y:z", true, "abc-123_x.y:z"],
    ["trusted, 128 characters", "a".repeat(128), true, "a".repeat(128)],
    ["untrusted", "abc-123", false, UUID],
    ["trusted, absent", null, true, UUID],
    ["trusted, too long", "a".repeat(129), true, UUID],
    ["trusted, spaces", "abc 123", true, UUID],
    ["trusted, log injection", "abc\\nforged", true, UUID],
    ["trusted, empty", "", true, UUID],
    ["trusted, leading dash", "-abc", true, UUID],
  ] as const)("%s", (_name, incoming, trustIncoming, expected) => {
    const id = requestIdFor(withId(incoming), { trustIncoming });
    if (typeof expected === "string") expect(id).toBe(expected);
    else expect(id).toMatch(expected);
  });

  test("fresh ids are unique", () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => requestIdFor(withId(null), { trustIncoming: false })));
    expect(ids.size).toBe(10_000);
  });
});
