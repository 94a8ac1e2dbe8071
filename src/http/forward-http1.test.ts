import { test, expect, describe, afterAll } from "bun:test";
import type { UpstreamConfig } from "../config/types.ts";
import { GatewayError } from "../errors.ts";
import { forwardToUpstream } from "./forward.ts";
import type { ForwardOptions } from "./forward.ts";
import { Http1Abort, Http1Pool } from "./forward-http1.ts";

// A raw TCP upstream on loopback: each test scripts the exact bytes it answers with, so framing
// edge cases are real bytes on a real socket, not a parser fed strings.
type Script = (request: string, socket: { write(data: string | Uint8Array): void; end(): void }) => void;
let script: Script = (_request, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
let connections = 0;
const requestsSeen: string[] = [];
// Bun's socket.write is unbuffered: keep what did not fit and send it on `drain`.
function send(socket: { write(d: Uint8Array): number; data: { buffer: string; pending: Uint8Array[] } }, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  if (socket.data.pending.length > 0) { socket.data.pending.push(bytes); return; }
  const written = socket.write(bytes);
  if (written >= 0 && written < bytes.byteLength) socket.data.pending.push(bytes.subarray(written));
}
const raw = Bun.listen<{ buffer: string; pending: Uint8Array[] }>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(socket) { connections++; socket.data = { buffer: "", pending: [] }; },
    drain(socket) {
      while (socket.data.pending.length > 0) {
        const next = socket.data.pending[0]!;
        const written = socket.write(next);
        if (written < 0) { socket.data.pending = []; return; }
        if (written < next.byteLength) { socket.data.pending[0] = next.subarray(written); return; }
        socket.data.pending.shift();
      }
    },
    data(socket, chunk) {
      socket.data.buffer += chunk.toString("latin1");
      for (;;) {
        const end = socket.data.buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = socket.data.buffer.slice(0, end);
        socket.data.buffer = socket.data.buffer.slice(end + 4);
        requestsSeen.push(head);
        script(head, { write: (d) => send(socket, d), end: () => socket.end() });
      }
    },
  },
});
afterAll(() => raw.stop(true));

const upstream: UpstreamConfig = { name: "raw", url: `http://127.0.0.1:${raw.port}`, timeoutMs: 5_000, connectTimeoutMs: 2_000 };
function options(overrides: Partial<ForwardOptions> = {}): ForwardOptions {
  return { upstream, path: "/x", query: "", requestId: "req-h1", clientIp: "192.0.2.1", host: "gw.example", maxBodyBytes: 1 << 20, client: "pool", ...overrides };
}
const forward = (init: RequestInit = {}, overrides: Partial<ForwardOptions> = {}) => forwardToUpstream(new Request("http://gw.example/x", init), options(overrides));

function reset(next: Script): void {
  script = next;
  requestsSeen.length = 0;
}

describe("HTTP/1.1 pool: framing", () => {
  const cases: { name: string; answer: string | string[]; method?: string; status: number; body: string }[] = [
    { name: "content-length in one packet", answer: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", status: 200, body: "hello" },
    { name: "content-length split over packets", answer: ["HTTP/1.1 200 OK\r\ncontent-le", "ngth: 11\r\n\r\nhello", " world"], status: 200, body: "hello world" },
    { name: "chunked with extensions and trailers", answer: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n", status: 200, body: "hello world" },
    { name: "chunked split inside sizes and data", answer: ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "5\r", "\nhel", "lo\r\n0\r\n", "\r\n"], status: 200, body: "hello" },
    { name: "close-delimited", answer: ["HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil", " the end"], status: 200, body: "until the end" },
    { name: "204 has no body", answer: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, body: "" },
    { name: "HEAD has no body despite content-length", method: "HEAD", answer: "HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n", status: 200, body: "" },
    { name: "HTTP/1.0 status line without a reason phrase", answer: "HTTP/1.0 202\r\ncontent-length: 2\r\n\r\nok", status: 202, body: "ok" },
    { name: "1xx before the final answer is skipped", answer: "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok", status: 201, body: "ok" },
    { name: "identical repeated content-length", answer: "HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok", status: 200, body: "ok" },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      reset((_req, socket) => {
        const parts = Array.isArray(c.answer) ? c.answer : [c.answer];
        let i = 0;
        const next = () => {
          if (i < parts.length) { socket.write(parts[i++]!); setTimeout(next, 5); }
          else if (c.answer.toString().includes("connection: close")) socket.end();
        };
        next();
      });
      const response = await forward({ method: c.method ?? "GET" });
      expect(response.status).toBe(c.status);
      expect(await response.text()).toBe(c.body);
      expect(response.headers.get("x-request-id")).toBe("req-h1");
      expect(response.headers.get("transfer-encoding")).toBeNull();
    });
  }
});

describe("HTTP/1.1 pool: malformed answers are 502 UPSTREAM_BAD_RESPONSE, never guessed at", () => {
  const cases: { name: string; answer: string }[] = [
    { name: "differing content-lengths", answer: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok" },
    { name: "space before the colon", answer: "HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok" },
    { name: "obsolete line folding", answer: "HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 2\r\n\r\nok" },
    { name: "garbage status line", answer: "HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\nok" },
    ...["HTTP/1.2 200 OK", "HTTP/2 200 OK", "HTTP/1.1 099 Low", "HTTP/1.1 20x OK", "HTTP/1.1 200OK", "HTTP/1.1  200 OK", "HTTP/1.1 200 O\nK", "HTTP/1.1 200 O\rK", "http/1.1 200 OK", "HTTP/1.1 20"]
      .map((line) => ({ name: `status line ${JSON.stringify(line)}`, answer: `${line}\r\ncontent-length: 2\r\n\r\nok` })),
    { name: "negative content-length", answer: "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok" },
    { name: "protocol switch nobody asked for", answer: "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n" },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      reset((_req, socket) => socket.write(c.answer));
      const response = await forward();
      expect(response.status).toBe(502);
      expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_BAD_RESPONSE");
    });
  }

  test("a bad chunk size errors the body stream instead of passing garbage on", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
    const response = await forward();
    expect(response.status).toBe(200);
    const outcome = await response.text().then(() => "completed", (e: unknown) => `errored: ${(e as GatewayError).code}`);
    expect(outcome).toBe("errored: UPSTREAM_BAD_RESPONSE");
  });

  test("a body cut short by the upstream errors the stream", async () => {
    reset((_req, socket) => { socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"); setTimeout(() => socket.end(), 10); });
    const response = await forward();
    const outcome = await response.text().then(() => "completed", (e: unknown) => `errored: ${(e as GatewayError).code}`);
    expect(outcome).toBe("errored: UPSTREAM_BAD_RESPONSE");
  });
});

describe("HTTP/1.1 pool: the request on the wire", () => {
  test("request line, upstream host, keep-alive, explicit empty body for POST, no hop-by-hop fields", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    const response = await forward({ method: "POST", headers: { connection: "x-hop", "x-hop": "1", te: "trailers", "x-kept": "yes" } }, { query: "a=1" });
    expect(response.status).toBe(200);
    const head = requestsSeen[0]!;
    const lines = head.split("\r\n");
    expect(lines[0]).toBe("POST /x?a=1 HTTP/1.1");
    expect(lines).toContain(`host: 127.0.0.1:${raw.port}`);
    expect(lines).toContain("content-length: 0");
    expect(lines).toContain("connection: keep-alive");
    expect(lines).toContain("x-kept: yes");
    expect(lines.some((l) => /^(x-hop|te):/i.test(l))).toBe(false);
  });

  test("a field value holding CR or LF is refused before a byte is sent (no head splitting)", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    const pool = new Http1Pool(new URL(upstream.url));
    for (const value of ["a\r\nx-injected: 1", "a\nb", "a\0b"]) {
      const outcome = await pool.request({ method: "GET", target: "/x", headers: [["x-a", value]], abort: new Http1Abort(), connectTimeoutMs: 2000 })
        .then(() => "sent", (e: unknown) => (e as GatewayError).code);
      expect(outcome).toBe("UPSTREAM_BAD_REQUEST");
    }
    expect(requestsSeen).toEqual([]);
    pool.close();
  });

  test("bytes above 0x7f in a field value go out as the same single bytes (latin1), not as UTF-8", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    const pool = new Http1Pool(new URL(upstream.url));
    const r = await pool.request({ method: "GET", target: "/x", headers: [["x-a", "caf\u00e9 \u00ff"]], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    expect(r.status).toBe(200);
    // The test upstream reads the wire as latin1: one byte per character when sent as latin1.
    expect(requestsSeen[0]!.split("\r\n")).toContain("x-a: caf\u00e9 \u00ff");
    pool.close();
  });

  test("a head larger than one socket write arrives whole (the rest is sent on drain)", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    const pool = new Http1Pool(new URL(upstream.url));
    const big = "v".repeat(4 << 20);
    for (const value of [big, big + "\u00e9"]) {
      requestsSeen.length = 0;
      const r = await pool.request({ method: "GET", target: "/x", headers: [["x-big", value], ["x-after", "1"]], abort: new Http1Abort(), connectTimeoutMs: 2000 });
      expect(r.status).toBe(200);
      const lines = requestsSeen[0]!.split("\r\n");
      expect(lines).toContain(`x-big: ${value}`);
      expect(lines).toContain("x-after: 1");
    }
    pool.close();
  });
});

describe("HTTP/1.1 pool: the response fields", () => {
  test("repeated set-cookie fields stay apart; fields named in Connection and the upstream's x-request-id are replaced", async () => {
    reset((_req, socket) => socket.write(
      "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nConnection: x-private\r\nX-Private: secret\r\nX-Request-Id: from-upstream\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\ncontent-length: 2\r\n\r\nok",
    ));
    const response = await forward();
    expect(response.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(response.headers.get("x-private")).toBeNull();
    expect(response.headers.get("keep-alive")).toBeNull();
    expect(response.headers.get("connection")).toBeNull();
    expect(response.headers.get("x-request-id")).toBe("req-h1");
    expect(response.headers.get("x-kept")).toBe("yes");
    expect(await response.text()).toBe("ok");
  });

  test("a field value with a bare LF inside its line is 502 UPSTREAM_BAD_RESPONSE", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 2\r\n\r\nok"));
    const response = await forward();
    expect(response.status).toBe(502);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_BAD_RESPONSE");
  });
});

describe("HTTP/1.1 pool: connections", () => {
  test("sequential requests share one kept-alive connection", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    const pool = new Http1Pool(new URL(upstream.url));
    const before = connections;
    for (let i = 0; i < 10; i++) {
      const r = await pool.request({ method: "GET", target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
      expect(new TextDecoder().decode(r.body as Uint8Array)).toBe("ok");
    }
    expect(connections - before).toBe(1);
    expect(pool.idleConnections).toBe(1);
    pool.close();
  });

  test("`connection: close` from the upstream is honoured: the next request opens a new connection", async () => {
    reset((_req, socket) => { socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"); socket.end(); });
    const pool = new Http1Pool(new URL(upstream.url));
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const r = await pool.request({ method: "GET", target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
      expect(r.status).toBe(200);
    }
    expect(connections - before).toBe(3);
    expect(pool.idleConnections).toBe(0);
  });

  test("an idempotent request on a connection the upstream closed meanwhile is retried on a fresh one", async () => {
    // The race every pool meets: the upstream drops a kept-alive connection just as the next
    // request goes out on it. Here it answers the first request, closes on the second without a
    // byte, and answers the third (on a new connection).
    let seen = 0;
    reset((_req, socket) => {
      seen++;
      if (seen === 2) socket.end();
      else socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    const pool = new Http1Pool(new URL(upstream.url));
    const before = connections;
    const ask = (method: string) => pool.request({ method, target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    expect((await ask("GET")).status).toBe(200);
    expect((await ask("GET")).status).toBe(200);
    expect(seen).toBe(3);
    expect(connections - before).toBe(2);
    pool.close();
  });

  test("a non-idempotent request on such a connection is not repeated: 502", async () => {
    let seen = 0;
    reset((_req, socket) => {
      seen++;
      if (seen === 2) socket.end();
      else socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    const pool = new Http1Pool(new URL(upstream.url));
    const ask = (method: string) => pool.request({ method, target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    expect((await ask("GET")).status).toBe(200);
    const outcome = await ask("POST").then(() => "answered", (e: unknown) => (e as GatewayError).code);
    expect(outcome).toBe("UPSTREAM_UNAVAILABLE");
    expect(seen).toBe(2);
    pool.close();
  });

  test("an abort before the answer rejects with the abort reason and closes the connection", async () => {
    reset(() => { /* never answers */ });
    const pool = new Http1Pool(new URL(upstream.url));
    const abort = new Http1Abort();
    const pending = pool.request({ method: "GET", target: "/x", headers: [], abort, connectTimeoutMs: 2000 });
    setTimeout(() => abort.abort(new GatewayError("UPSTREAM_TIMEOUT", "too slow")), 20);
    const outcome = await pending.then(() => "answered", (e: unknown) => (e as GatewayError).code);
    expect(outcome).toBe("UPSTREAM_TIMEOUT");
    expect(pool.idleConnections).toBe(0);
  });

  test("at its cap the pool queues requests in order and opens no more connections", async () => {
    reset((_req, socket) => { setTimeout(() => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), 20); });
    const pool = new Http1Pool(new URL(upstream.url), { maxConnections: 2 });
    const before = connections;
    const order: number[] = [];
    const all = Array.from({ length: 6 }, (_, i) =>
      pool.request({ method: "GET", target: `/x${i}`, headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 }).then((r) => { order.push(i); return r.status; }));
    await Bun.sleep(5);
    expect(pool.openConnections).toBe(2);
    expect(pool.waitingRequests).toBe(4);
    expect(await Promise.all(all)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(connections - before).toBe(2);
    expect(order.slice(2)).toEqual([2, 3, 4, 5]);
    expect(pool.waitingRequests).toBe(0);
    pool.close();
    expect(pool.openConnections).toBe(0);
  });

  test("a queued request that is aborted leaves the queue; a connection the upstream closes frees its slot", async () => {
    let answered = 0;
    reset((_req, socket) => {
      setTimeout(() => {
        answered++;
        // The first answer closes its connection: its slot must go to the next waiter.
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n${answered === 1 ? "connection: close\r\n" : ""}\r\nok`);
        if (answered === 1) socket.end();
      }, 30);
    });
    const pool = new Http1Pool(new URL(upstream.url), { maxConnections: 1 });
    const first = pool.request({ method: "GET", target: "/a", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    const abort = new Http1Abort();
    const aborted = pool.request({ method: "GET", target: "/b", headers: [], abort, connectTimeoutMs: 2000 }).then(() => "answered", (e: unknown) => (e as GatewayError).code);
    const third = pool.request({ method: "GET", target: "/c", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    await Bun.sleep(5);
    expect(pool.waitingRequests).toBe(2);
    abort.abort(new GatewayError("CLIENT_CLOSED_REQUEST", "gone"));
    expect(await aborted).toBe("CLIENT_CLOSED_REQUEST");
    expect(pool.waitingRequests).toBe(1);
    expect((await first).status).toBe(200);
    expect((await third).status).toBe(200);
    expect(requestsSeen.map((h) => h.split(" ")[1])).toEqual(["/a", "/c"]);
    pool.close();
  });

  test("no slot leaks: after a mix of answers, resets, garbage, closes and aborts, only live connections are counted", async () => {
    // Each request path names what the upstream does with it.
    reset((req, socket) => {
      const kind = req.split(" ")[1]!.slice(1).split("-")[0];
      if (kind === "ok") socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      else if (kind === "close") { socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"); socket.end(); }
      else if (kind === "garbage") socket.write("SSH-2.0-OpenSSH\r\n\r\n");
      else if (kind === "cut") { socket.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok"); socket.end(); }
      else if (kind === "silent") { /* the caller aborts */ }
      else socket.end();
    });
    const pool = new Http1Pool(new URL(upstream.url), { maxConnections: 4 });
    const kinds = ["ok", "close", "garbage", "cut", "silent", "drop"];
    const outcomes = await Promise.all(Array.from({ length: 120 }, async (_, i) => {
      const kind = kinds[i % kinds.length]!;
      const abort = new Http1Abort();
      if (kind === "silent") setTimeout(() => abort.abort(new GatewayError("UPSTREAM_TIMEOUT", "slow")), 30);
      try {
        const r = await pool.request({ method: "GET", target: `/${kind}-${i}`, headers: [], abort, connectTimeoutMs: 2000 });
        if (r.body !== null && !(r.body instanceof Uint8Array)) await new Response(r.body).arrayBuffer();
        return "ok";
      } catch (e) {
        return (e as GatewayError).code ?? "error";
      }
    }));
    expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(40);
    expect(pool.waitingRequests).toBe(0);
    // Let the last closes arrive; every counted connection is then one waiting in the pool.
    const deadline = Date.now() + 2000;
    while (pool.openConnections !== pool.idleConnections && Date.now() < deadline) await Bun.sleep(20);
    expect(pool.openConnections).toBe(pool.idleConnections);
    expect(pool.openConnections).toBeLessThanOrEqual(4);
    // And the pool still serves: all four slots usable at once.
    const after = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      pool.request({ method: "GET", target: `/ok-after-${i}`, headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 }).then((r) => r.status)));
    expect(after).toEqual(Array(8).fill(200));
    pool.close();
    expect(pool.openConnections).toBe(0);
  });

  test("an upstream restarted on the same port: the next requests go out on fresh connections and succeed", async () => {
    const answer = (tag: string) => Bun.listen<undefined>({
      hostname: "127.0.0.1", port,
      socket: { data(socket) { socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${tag.length}\r\n\r\n${tag}`); } },
    });
    const first = Bun.listen<undefined>({ hostname: "127.0.0.1", port: 0, socket: { data(socket) { socket.write("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none"); } } });
    const port = first.port;
    const pool = new Http1Pool(new URL(`http://127.0.0.1:${port}`));
    const ask = () => pool.request({ method: "GET", target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 })
      .then((r) => new TextDecoder().decode(r.body as Uint8Array), (e: unknown) => (e as GatewayError).code);
    expect(await Promise.all([ask(), ask(), ask()])).toEqual(["one", "one", "one"]);
    expect(pool.idleConnections).toBe(3);
    first.stop(true);
    await Bun.sleep(50);
    const second = answer("two");
    try {
      // Connections the old process held are gone; none of them may answer or leak a slot.
      expect(await Promise.all([ask(), ask()])).toEqual(["two", "two"]);
      expect(await ask()).toBe("two");
      expect(pool.openConnections).toBe(pool.idleConnections);
    } finally {
      pool.close();
      second.stop(true);
    }
  });

  test("the idle timeout closes a waiting connection but never an exchange under way", async () => {
    // Answers after 1.6 s: longer than the 1 s idle timeout, shorter than the request deadline.
    reset((_req, socket) => { setTimeout(() => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"), 1600); });
    const pool = new Http1Pool(new URL(upstream.url), { idleTimeoutS: 1 });
    const r = await pool.request({ method: "GET", target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
    expect(r.status).toBe(200);
    expect(new TextDecoder().decode(r.body as Uint8Array)).toBe("ok");
    expect(pool.idleConnections).toBe(1);
    // The socket timer ticks every few seconds; a tick right after the answer re-arms it.
    const deadline = Date.now() + 9000;
    while (pool.idleConnections > 0 && Date.now() < deadline) await Bun.sleep(50);
    expect(pool.idleConnections).toBe(0);
  }, 15_000);

  test("a connection in steady use outlives the idle timeout: its silence is counted from its last exchange", async () => {
    reset((_req, socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    const pool = new Http1Pool(new URL(upstream.url), { idleTimeoutS: 1 });
    const before = connections;
    // Never silent for 1 s, for 6 s: the connection opened first must still be the one in use.
    for (const end = Date.now() + 6000; Date.now() < end; await Bun.sleep(100)) {
      const r = await pool.request({ method: "GET", target: "/x", headers: [], abort: new Http1Abort(), connectTimeoutMs: 2000 });
      expect(r.status).toBe(200);
    }
    expect(connections - before).toBe(1);
    pool.close();
  }, 10_000);

  test("a silent upstream through forwardToUpstream → 504 UPSTREAM_TIMEOUT", async () => {
    reset(() => { /* never answers */ });
    const response = await forward({}, { upstream: { ...upstream, timeoutMs: 100 } });
    expect(response.status).toBe(504);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_TIMEOUT");
  });

  test("a large streamed body arrives intact through forwardToUpstream", async () => {
    const size = 3 * 1024 * 1024;
    const payload = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    reset((_req, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      socket.write(payload);
    });
    const response = await forward();
    const got = new Uint8Array(await response.arrayBuffer());
    expect(got.byteLength).toBe(size);
    expect(Bun.hash(got)).toBe(Bun.hash(payload));
  });
});
