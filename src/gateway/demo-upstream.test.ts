import { expect, test } from "bun:test";
import { SignJWT } from "jose";
import { demoUpstreamApp, startDemoUpstreams } from "./demo-upstream.ts";

test("a demo upstream answers what it received: target, body size, identity claims, request id", async () => {
  const token = await new SignJWT({ sub: "alice", duty: "submit_change" }).setProtectedHeader({ alg: "HS256" }).sign(new Uint8Array(32));
  const res = await demoUpstreamApp("changes", "x-dutygate-identity").request("/changes/42/submit?x=1", {
    method: "POST", body: "hello", headers: { "x-dutygate-identity": token, "x-request-id": "r-1" },
  });
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(await res.json()).toEqual({ upstream: "changes", method: "POST", path: "/changes/42/submit?x=1", received_bytes: 5, identity: { sub: "alice", duty: "submit_change" }, request_id: "r-1" });
  const unreadable = await demoUpstreamApp("logs", "x-id").request("/", { headers: { "x-id": "not a token" } });
  expect(await unreadable.json()).toMatchObject({ identity: "unreadable", request_id: null });
});

test("served on loopback over node:http", async () => {
  const demo = await startDemoUpstreams({ changes: 0 }, "x-dutygate-identity");
  try {
    const res = await fetch(`http://127.0.0.1:${demo.ports.changes}/changes?a=b`);
    expect(await res.json()).toMatchObject({ upstream: "changes", method: "GET", path: "/changes?a=b", received_bytes: 0, identity: null });
  } finally {
    await demo.close();
  }
});
