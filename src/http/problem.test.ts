import { test, expect, describe } from "bun:test";
import { problemResponse } from "./problem.ts";

describe("problemResponse", () => {
  test("is an RFC 9457 problem with code and request id", async () => {
    const response = problemResponse({ status: 403, code: "DENY_NO_GRANT", detail: "no grant for `deploy_change`", requestId: "r-9", extra: { duty: "deploy_change" } });
    expect(response.status).toBe(403);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-request-id")).toBe("r-9");
    expect(await response.json()).toEqual({
      type: "urn:dutygate:error:DENY_NO_GRANT", title: "forbidden", status: 403,
      detail: "no grant for `deploy_change`", code: "DENY_NO_GRANT", request_id: "r-9", duty: "deploy_change",
    });
  });

  test.each([
    [400, "bad request"], [413, "content too large"], [502, "bad gateway"], [504, "gateway timeout"], [418, "error"],
  ])("status %p has the default title %p", async (status, title) => {
    const body = (await problemResponse({ status, code: "UPSTREAM_UNAVAILABLE", requestId: "r" }).json()) as Record<string, unknown>;
    expect(body.title).toBe(title);
    expect(body).not.toHaveProperty("detail");
  });

  test("extra members cannot override the standard ones, errors lose their stack", async () => {
    const error = Object.assign(new Error("boom"), { code: "E_BOOM" });
    const response = problemResponse({
      status: 500, code: "INTERNAL_ERROR", title: "internal error", requestId: "r",
      extra: { status: 200, code: "OK", type: "about:blank", request_id: "forged", cause: error, roles: new Set(["a"]) },
      headers: { "retry-after": "1" },
    });
    const text = await response.clone().text();
    expect(text).not.toContain("at ");
    expect(await response.json()).toMatchObject({
      type: "urn:dutygate:error:INTERNAL_ERROR", title: "internal error", status: 500, code: "INTERNAL_ERROR", request_id: "r",
      cause: { code: "E_BOOM", message: "boom" }, roles: ["a"],
    });
    expect(response.headers.get("retry-after")).toBe("1");
  });
});
