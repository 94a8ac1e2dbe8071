import { test, expect, describe, beforeAll, afterAll } from "bun:test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { generate } from "selfsigned";
import type { UpstreamConfig } from "../config/types.ts";
import { forwardToUpstream } from "./forward.ts";
import { inflightCount } from "./inflight.ts";
import type { ForwardOptions } from "./forward.ts";
import { normalizeRequestPath, requestTargetOf } from "./normalize-path.ts";
import { problemResponse } from "./problem.ts";

const MiB = 1024 * 1024;

/** Resolves with `promise`, or rejects with `message` after `ms`: a bound on waiting, never a timing assertion. */
function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); }),
  ]);
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

/** Deterministic bytes, so both ends can hash what they saw. */
function patternChunk(size: number, seed: number): Uint8Array {
  const chunk = new Uint8Array(size);
  for (let i = 0; i < size; i++) chunk[i] = (i * 31 + seed) & 0xff;
  return chunk;
}

// ---- a real upstream on loopback that reports what it received ----

let upstreamRequests = 0;
let firstChunkSeen = deferred<number>();
const releaseSlow = deferred();
const upstreamServer = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 30,
  async fetch(req) {
    upstreamRequests++;
    const url = new URL(req.url);
    switch (url.pathname.replace(/^\/prefix/, "")) {
      case "/stream-in": {
        const hash = new Bun.CryptoHasher("sha256");
        let bytes = 0;
        for await (const chunk of chunksOf(req.body!)) {
          if (bytes === 0) firstChunkSeen.resolve(chunk.byteLength);
          bytes += chunk.byteLength;
          hash.update(chunk);
        }
        return Response.json({ bytes, sha256: hash.digest("hex"), transferEncoding: req.headers.get("transfer-encoding") });
      }
      case "/stream-out": {
        const total = Number(url.searchParams.get("bytes"));
        let sent = 0;
        return new Response(new ReadableStream({
          pull(controller) {
            if (sent >= total) { controller.close(); return; }
            const chunk = patternChunk(Math.min(256 * 1024, total - sent), sent);
            sent += chunk.byteLength;
            controller.enqueue(chunk);
          },
        }));
      }
      case "/gzip": {
        const gz = Bun.gzipSync(new TextEncoder().encode("compressible ".repeat(1000)));
        return new Response(gz, { headers: { "content-encoding": "gzip", "content-type": "text/plain", "vary": "accept-encoding" } });
      }
      case "/slow":
        await releaseSlow.promise;
        return new Response("late");
      case "/stall-body":
        return new Response(new ReadableStream({
          async start(controller) { controller.enqueue(new TextEncoder().encode("first part")); await releaseSlow.promise; controller.close(); },
        }));
      case "/redirect":
        return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
      case "/hop-response": {
        const headers = new Headers({ connection: "x-upstream-private", "x-upstream-private": "secret", "keep-alive": "timeout=5", "x-kept": "yes" });
        headers.append("set-cookie", "a=1; Path=/");
        headers.append("set-cookie", "b=2; Path=/");
        return new Response("ok", { headers });
      }
      default: {
        const body = req.body ? await req.text() : null;
        return Response.json({ method: req.method, path: url.pathname, search: url.search, headers: Object.fromEntries(req.headers), body });
      }
    }
  },
});

const upstream: UpstreamConfig = { name: "changes", url: `http://127.0.0.1:${upstreamServer.port}/prefix/`, timeoutMs: 10_000, connectTimeoutMs: 2_000 };

function options(overrides: Partial<ForwardOptions> = {}): ForwardOptions {
  return {
    upstream, path: "/echo", query: "", requestId: "req-1", clientIp: "192.0.2.7", host: "gw.example",
    identityHeader: "x-dutygate-identity", identityToken: "signed.identity.token", stripHeaders: ["x-user", "X-Roles"],
    maxBodyBytes: 64 * MiB, ...overrides,
  };
}

async function echo(request: Request, overrides: Partial<ForwardOptions> = {}) {
  const response = await forwardToUpstream(request, options(overrides));
  expect(response.status).toBe(200);
  return { response, seen: (await response.json()) as { method: string; path: string; search: string; headers: Record<string, string>; body: string | null } };
}

// ---- a real TLS front on loopback: normalise the raw target, then forward ----

let frontOverrides: Partial<ForwardOptions> = {};
let tlsCert = "";
let front: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec", algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
  });
  tlsCert = pems.cert;
  front = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 30,
    tls: { cert: pems.cert, key: pems.private },
    fetch(request, server) {
      const target = normalizeRequestPath(requestTargetOf(request));
      if (!target.ok) return problemResponse({ status: target.status, code: target.code, detail: target.message, requestId: "front" });
      return forwardToUpstream(request, options({
        path: target.path, query: target.query, clientIp: server.requestIP(request)?.address ?? "", host: request.headers.get("host") ?? "", ...frontOverrides,
      }));
    },
  });
});

afterAll(() => {
  releaseSlow.resolve();
  front?.stop(true);
  upstreamServer.stop(true);
});

function viaFront(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`https://127.0.0.1:${front.port}${path}`, { ...init, tls: { ca: tlsCert } } as RequestInit);
}

describe("forwardToUpstream: request headers", () => {
  test("joins the upstream path prefix with the normalised path and query", async () => {
    const { seen } = await echo(new Request("http://gw.example/ignored"), { path: "/changes/42/approve", query: "x=1&y=%2F" });
    expect(seen.path).toBe("/prefix/changes/42/approve");
    expect(seen.search).toBe("?x=1&y=%2F");
  });

  test("strips hop-by-hop headers, including those named in Connection", async () => {
    const request = new Request("http://gw.example/", {
      headers: {
        connection: "keep-alive, X-Private-Hop, x-other",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        te: "trailers",
        trailer: "x-checksum",
        upgrade: "websocket",
        "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
        "x-private-hop": "must not pass",
        "x-other": "must not pass either",
        "x-end-to-end": "passes",
      },
    });
    const { seen } = await echo(request);
    for (const name of ["keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authorization", "x-private-hop", "x-other"]) {
      expect(seen.headers[name]).toBeUndefined();
    }
    expect(seen.headers["x-end-to-end"]).toBe("passes");
    // fetch's own connection to the upstream, not the client's.
    expect(seen.headers.connection).not.toContain("x-private-hop");
  });

  test("replaces a spoofed identity header and strips configured identity headers", async () => {
    const request = new Request("http://gw.example/", {
      headers: { "X-Dutygate-Identity": "forged.token.value", "x-user": "admin", "x-roles": "security_admin", "x-dutygate-identity-extra": "kept" },
    });
    const { seen } = await echo(request);
    expect(seen.headers["x-dutygate-identity"]).toBe("signed.identity.token");
    expect(seen.headers["x-user"]).toBeUndefined();
    expect(seen.headers["x-roles"]).toBeUndefined();
    expect(seen.headers["x-dutygate-identity-extra"]).toBe("kept");

    const { seen: withoutToken } = await echo(new Request("http://gw.example/", { headers: { "x-dutygate-identity": "forged" } }), { identityToken: undefined });
    expect(withoutToken.headers["x-dutygate-identity"]).toBeUndefined();
  });

  test("strips by the name an upstream reads (`_` as `-`, any case): CGI spellings of stripped and gateway-set fields", async () => {
    const request = new Request("http://gw.example/", {
      headers: {
        "X_Dutygate_Identity": "forged", "X_User": "admin", "x_roles": "security_admin", "X_HTTP_Method_Override": "DELETE", "x_method_override": "PUT",
        "X_Forwarded_For": "10.0.0.1", "X_Real_IP": "10.0.0.2", "x_request_id": "mine", "X_Forwarded_Proto": "http", "x-kept_name": "kept",
      },
    });
    const { seen } = await echo(request);
    const underscored = Object.keys(seen.headers).filter((name) => name.includes("_"));
    expect(underscored).toEqual(["x-kept_name"]);
    expect(seen.headers["x-dutygate-identity"]).toBe("signed.identity.token");
    // The spoofed chain in another spelling does not join the real one.
    expect(seen.headers["x-forwarded-for"]).toBe("192.0.2.7");
  });

  test("the upstream Host is the upstream's, the client's goes to x-forwarded-host", async () => {
    const { seen } = await echo(new Request("http://gw.example/", { headers: { host: "evil.example" } }), { host: "gw.example:8443" });
    expect(seen.headers.host).toBe(`127.0.0.1:${upstreamServer.port}`);
    expect(seen.headers["x-forwarded-host"]).toBe("gw.example:8443");
  });

  test.each([
    ["no incoming chain", {}, "append", "192.0.2.7"],
    ["appends to the incoming chain", { "x-forwarded-for": "203.0.113.9" }, "append", "203.0.113.9, 192.0.2.7"],
    ["replace ignores the incoming chain", { "x-forwarded-for": "203.0.113.9" }, "replace", "192.0.2.7"],
  ] as const)("x-forwarded-for: %s", async (_name, headers, mode, expected) => {
    const spoofed = { ...headers, "x-forwarded-proto": "http", "x-forwarded-host": "evil.example", forwarded: "for=10.0.0.1", "x-real-ip": "10.0.0.1" };
    const { seen } = await echo(new Request("http://gw.example/", { headers: spoofed }), { forwardedFor: mode });
    expect(seen.headers["x-forwarded-for"]).toBe(expected);
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
    expect(seen.headers["x-forwarded-host"]).toBe("gw.example");
    expect(seen.headers.forwarded).toBeUndefined();
    expect(seen.headers["x-real-ip"]).toBeUndefined();
  });

  test("sets x-request-id upstream and on the response, replacing the caller's", async () => {
    const { response, seen } = await echo(new Request("http://gw.example/", { headers: { "x-request-id": "caller-chosen" } }), { requestId: "gw-123" });
    expect(seen.headers["x-request-id"]).toBe("gw-123");
    expect(response.headers.get("x-request-id")).toBe("gw-123");
  });

  const validParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  test("passes a valid traceparent and its tracestate on unchanged", async () => {
    const { seen } = await echo(new Request("http://gw.example/", { headers: { traceparent: validParent, tracestate: "congo=t61rcWkgMzE" } }));
    expect(seen.headers.traceparent).toBe(validParent);
    expect(seen.headers.tracestate).toBe("congo=t61rcWkgMzE");
  });

  test.each([
    ["absent", null],
    ["garbage", "not-a-traceparent"],
    ["all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
    ["version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    ["upper-case hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"],
  ])("starts a new trace when the traceparent is %s, dropping tracestate", async (_name, traceparent) => {
    const headers: Record<string, string> = { tracestate: "congo=t61rcWkgMzE" };
    if (traceparent) headers.traceparent = traceparent;
    const { seen } = await echo(new Request("http://gw.example/", { headers }));
    expect(seen.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(seen.headers.traceparent).not.toBe(traceparent ?? "");
    expect(seen.headers.tracestate).toBeUndefined();
  });

  test("asks the upstream for identity encoding when the client asked for none", async () => {
    const { seen } = await echo(new Request("http://gw.example/"));
    expect(seen.headers["accept-encoding"]).toBe("identity");
    const { seen: gzipClient } = await echo(new Request("http://gw.example/", { headers: { "accept-encoding": "gzip" } }));
    expect(gzipClient.headers["accept-encoding"]).toBe("gzip");
  });
});

describe("forwardToUpstream: judged path = forwarded path", () => {
  test.each(["/a/../admin", "/a/%2e%2e/admin", "admin", "/a\\b"])("refuses to send a path that is not normalised: %p", async (path) => {
    const before = upstreamRequests;
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ path }));
    expect(response.status).toBe(500);
    expect(((await response.json()) as { code: string }).code).toBe("PATH_FORWARD_MISMATCH");
    expect(upstreamRequests).toBe(before);
  });
});

describe("forwardToUpstream: responses", () => {
  test("strips hop-by-hop response headers and passes the rest", async () => {
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ path: "/hop-response" }));
    expect(response.headers.get("x-upstream-private")).toBeNull();
    expect(response.headers.get("keep-alive")).toBeNull();
    expect(response.headers.get("x-kept")).toBe("yes");
    expect(response.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
    expect(await response.text()).toBe("ok");
  });

  test("passes a gzip response through untouched (no decoding under Bun)", async () => {
    const direct = await fetch(`http://127.0.0.1:${upstreamServer.port}/gzip`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    const expected = new Uint8Array(await direct.arrayBuffer());
    const response = await viaFront("/gzip", { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-encoding")).toBe("gzip");
    const got = new Uint8Array(await response.arrayBuffer());
    expect(got).toEqual(expected);
    expect(new TextDecoder().decode(Bun.gunzipSync(got))).toBe("compressible ".repeat(1000));
  });

  test("passes a redirect through instead of following it", async () => {
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ path: "/redirect" }));
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/elsewhere");
  });
});

describe("forwardToUpstream: streaming through a TLS front", () => {
  test("a 50 MiB request body reaches the upstream while the client is still sending", async () => {
    firstChunkSeen = deferred<number>();
    const chunk = patternChunk(256 * 1024, 7);
    const total = 50 * MiB;
    const clientHash = new Bun.CryptoHasher("sha256");
    let sent = 0;
    let sentWhenUpstreamSawFirstChunk = -1;
    firstChunkSeen.promise.then(() => { sentWhenUpstreamSawFirstChunk = sent; });
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === chunk.byteLength) {
          // Hold the rest back until the upstream has the first chunk: a buffering proxy never gets here.
          await within(firstChunkSeen.promise, 20_000, "upstream did not see the first chunk while the client was sending");
        }
        if (sent >= total) { controller.close(); return; }
        clientHash.update(chunk);
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const response = await viaFront("/stream-in", { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(200);
    const result = (await response.json()) as { bytes: number; sha256: string };
    expect(result.bytes).toBe(total);
    expect(result.sha256).toBe(clientHash.digest("hex"));
    expect(sentWhenUpstreamSawFirstChunk).toBeGreaterThan(0);
    expect(sentWhenUpstreamSawFirstChunk).toBeLessThan(total);
  }, 60_000);

  test("a 64 MiB response body streams back intact", async () => {
    const total = 64 * MiB;
    const response = await viaFront(`/stream-out?bytes=${total}`);
    expect(response.status).toBe(200);
    const expectedHash = new Bun.CryptoHasher("sha256");
    for (let offset = 0; offset < total; offset += 256 * 1024) expectedHash.update(patternChunk(Math.min(256 * 1024, total - offset), offset));
    const hash = new Bun.CryptoHasher("sha256");
    let bytes = 0;
    for await (const part of chunksOf(response.body!)) { bytes += part.byteLength; hash.update(part); }
    expect(bytes).toBe(total);
    expect(hash.digest("hex")).toBe(expectedHash.digest("hex"));
  }, 60_000);

  test("a body declared larger than the limit is refused with 413 before the upstream is contacted", async () => {
    frontOverrides = { maxBodyBytes: 1024 };
    try {
      const before = upstreamRequests;
      const response = await viaFront("/echo", { method: "POST", body: new Uint8Array(4096) });
      expect(response.status).toBe(413);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(((await response.json()) as { code: string }).code).toBe("REQUEST_BODY_TOO_LARGE");
      expect(upstreamRequests).toBe(before);
    } finally { frontOverrides = {}; }
  });

  test("a chunked body crossing the limit is cut off with 413", async () => {
    frontOverrides = { maxBodyBytes: 64 * 1024, path: "/stream-in" };
    try {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 1 * MiB) { controller.close(); return; }
          sent += 16 * 1024;
          controller.enqueue(new Uint8Array(16 * 1024));
        },
      });
      const response = await viaFront("/stream-in", { method: "POST", body, duplex: "half" } as RequestInit);
      expect(response.status).toBe(413);
      expect(((await response.json()) as { code: string }).code).toBe("REQUEST_BODY_TOO_LARGE");
    } finally { frontOverrides = {}; }
  });

  test("a request body within the limit passes", async () => {
    frontOverrides = { maxBodyBytes: 1024 };
    try {
      const response = await viaFront("/echo", { method: "POST", body: "x".repeat(1024) });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { body: string }).body).toBe("x".repeat(1024));
    } finally { frontOverrides = {}; }
  });

  test("the front forwards the normalised path and refuses traversal with a problem body", async () => {
    const ok = await viaFront("/a/%2e%2e//changes/%41?x=1");
    expect(((await ok.json()) as { path: string; search: string })).toMatchObject({ path: "/prefix/changes/A", search: "?x=1" });
    const bad = await viaFront("/files/a%2fb");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe("PATH_ENCODED_SLASH");
  });
});

describe("forwardToUpstream: failures never hang", () => {
  test("upstream down → 502 UPSTREAM_UNAVAILABLE", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = closed.port;
    closed.stop(true);
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ upstream: { ...upstream, url: `http://127.0.0.1:${port}/` } }));
    expect(response.status).toBe(502);
    const problem = (await response.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({ code: "UPSTREAM_UNAVAILABLE", status: 502, request_id: "req-1", type: "urn:dutygate:error:UPSTREAM_UNAVAILABLE" });
    expect(JSON.stringify(problem)).not.toContain("signed.identity.token");
  });

  test("upstream too slow → 504 UPSTREAM_TIMEOUT", async () => {
    const response = await within(
      forwardToUpstream(new Request("http://gw.example/"), options({ path: "/slow", upstream: { ...upstream, timeoutMs: 200 } })),
      15_000, "forwardToUpstream hung on a slow upstream",
    );
    expect(response.status).toBe(504);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_TIMEOUT");
  }, 30_000);

  test("a response body that stalls is aborted instead of hanging the client", async () => {
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ path: "/stall-body", responseIdleTimeoutMs: 200 }));
    expect(response.status).toBe(200);
    const outcome = await within(response.text().then(() => "completed", (e: unknown) => `errored: ${(e as { code?: string }).code ?? e}`), 15_000, "stalled body hung");
    expect(outcome).toBe("errored: UPSTREAM_TIMEOUT");
  }, 30_000);
});

describe("forwardToUpstream: deadlines and client-gone on the shared sweep", () => {
  test("a client that goes away while the upstream has not answered cancels the upstream call (499)", async () => {
    // An upstream that never answers and reports when its request is cancelled.
    const cancelled = deferred<number>();
    const arrived = deferred();
    const hanging = Bun.serve({
      hostname: "127.0.0.1", port: 0, idleTimeout: 30,
      fetch(req) {
        arrived.resolve();
        const at = performance.now();
        req.signal.addEventListener("abort", () => cancelled.resolve(performance.now() - at));
        return new Promise<Response>(() => {});
      },
    });
    const client = new AbortController();
    try {
      const pending = forwardToUpstream(new Request("http://gw.example/", { signal: client.signal }), options({ upstream: { ...upstream, url: `http://127.0.0.1:${hanging.port}/` } }));
      await within(arrived.promise, 10_000, "the upstream never got the request");
      expect(inflightCount()).toBeGreaterThanOrEqual(1);
      client.abort();
      const response = await within(pending, 10_000, "forwardToUpstream did not notice the client going away");
      expect(response.status).toBe(499);
      expect(((await response.json()) as { code: string }).code).toBe("CLIENT_CLOSED_REQUEST");
      // The upstream saw its request cancelled: the call did not run on to the 10 s timeout.
      await within(cancelled.promise, 10_000, "the upstream call was not cancelled");
    } finally {
      hanging.stop(true);
    }
  }, 30_000);

  test("a client already gone when the call is first swept is cancelled at once", async () => {
    const client = new AbortController();
    client.abort();
    const started = performance.now();
    const response = await within(
      forwardToUpstream(new Request("http://gw.example/", { signal: client.signal }), options({ path: "/slow" })),
      10_000, "forwardToUpstream waited on a client that had gone",
    );
    expect(response.status).toBe(499);
    expect(performance.now() - started).toBeLessThan(upstream.timeoutMs);
  }, 30_000);

  // A client gone before its request is forwarded (it left while it was judged, or Bun.serve closed
  // its connection for a request pipelined behind it) must not have the request performed anyway.
  test.each(["fetch", "pool"] as const)("a client gone before forwarding: nothing reaches the upstream, 499 (%s)", async (client) => {
    const gone = new AbortController();
    gone.abort();
    const before = upstreamRequests;
    for (const request of [new Request("http://gw.example/", { signal: gone.signal }), new Request("http://gw.example/", { method: "POST", body: "x", signal: gone.signal })]) {
      const response = await forwardToUpstream(request, options({ client }));
      expect(response.status).toBe(499);
      expect(((await response.json()) as { code: string }).code).toBe("CLIENT_CLOSED_REQUEST");
    }
    expect(upstreamRequests).toBe(before);
    expect(inflightCount()).toBe(0);
  });

  test("answered calls leave nothing on the sweep", async () => {
    await Promise.all(Array.from({ length: 20 }, () => forwardToUpstream(new Request("http://gw.example/"), options()).then((r) => r.arrayBuffer())));
    expect(inflightCount()).toBe(0);
  });
});

describe("forwardToUpstream: targets that need a URL parse", () => {
  test("characters the URL parser would change are checked by parsing, and refused when they would change", async () => {
    // `'` passes in a path unchanged (in a query it would not), so the target is forwarded as judged.
    const { seen } = await echo(new Request("http://gw.example/"), { path: "/it's", query: "q=x" });
    expect(seen.path).toBe("/prefix/it's");
    // A raw space would be percent-encoded by the parser: not the judged path, refused.
    const response = await forwardToUpstream(new Request("http://gw.example/"), options({ path: "/a b" }));
    expect(response.status).toBe(500);
    expect(((await response.json()) as { code: string }).code).toBe("PATH_FORWARD_MISMATCH");
    // An encoded dot segment would be resolved by the parser: refused.
    const dotted = await forwardToUpstream(new Request("http://gw.example/"), options({ path: "/a/%2e%2e/admin" }));
    expect(dotted.status).toBe(500);
  });
});

describe("forwardToUpstream: connection reuse", () => {
  test("sequential requests reuse kept-alive upstream connections", async () => {
    let connections = 0;
    const counted = createServer((req, res) => { req.resume(); req.on("end", () => res.end("ok")); });
    counted.on("connection", () => { connections++; });
    await new Promise<void>((resolve) => counted.listen(0, "127.0.0.1", resolve));
    try {
      const port = (counted.address() as AddressInfo).port;
      const requests = 20;
      for (let i = 0; i < requests; i++) {
        const response = await forwardToUpstream(new Request("http://gw.example/"), options({ upstream: { ...upstream, url: `http://127.0.0.1:${port}/` } }));
        expect(await response.text()).toBe("ok");
      }
      expect(connections).toBeGreaterThan(0);
      expect(connections).toBeLessThanOrEqual(2);
    } finally {
      counted.closeAllConnections();
      counted.close();
    }
  });
});

describe("front over a raw TLS socket", () => {
  test("a Connection-named header sent on the wire does not reach the upstream", async () => {
    const raw = await within(new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: front.port, ca: tlsCert, servername: "localhost" }, () => {
        socket.write("GET /echo HTTP/1.1\r\nHost: gw.example\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nX-Visible: 1\r\n\r\n");
      });
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => { text += d; });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    }), 15_000, "raw request hung");
    const body = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4).replace(/^[0-9a-f]+\r\n/, "").replace(/\r\n0\r\n\r\n$/, "")) as { headers: Record<string, string> };
    expect(body.headers["x-visible"]).toBe("1");
    expect(body.headers["x-secret-hop"]).toBeUndefined();
  });
});
