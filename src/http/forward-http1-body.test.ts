// Request bodies over the HTTP/1.1 pool, with real sockets at both ends: clients talk to a real
// `Bun.serve` listener that forwards with `client: "pool"`, and the upstream is a raw TCP server on
// loopback that reads the body's framing itself (content-length or chunked) and records what
// arrived, so each test sees the exact bytes on the wire and when connections open and close.
import { afterAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import type { UpstreamConfig } from "../config/types.ts";
import { forwardToUpstream } from "./forward.ts";

interface Arrived {
  head: string;
  body: Buffer;
  /** The body's framing said it was complete. */
  complete: boolean;
  connection: number;
}
interface UpstreamSocketState {
  id: number;
  buffer: Buffer;
  current: { head: string; length: number | null; chunked: boolean; parts: Buffer[]; got: number; answered: boolean } | null;
}
type Answer = (request: Arrived, socket: { write(data: string | Uint8Array): void; end(): void }, phase: "head" | "body") => void;

// What the upstream does, per request: called once the head is in ("head") and once the body is
// complete ("body"); the default answers with the body's length and hash once it has all of it.
let answer: Answer = (request, socket, phase) => {
  if (phase === "body") socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${String(hashOf(request.body)).length}\r\n\r\n${hashOf(request.body)}`);
};
const arrived: Arrived[] = [];
let opened = 0;
const closedConnections = new Set<number>();

function hashOf(bytes: Uint8Array): string {
  return Bun.hash(bytes).toString(16);
}

// Incremental request parsing on the upstream side: head, then the body by its framing.
function consume(state: UpstreamSocketState, socket: { write(data: string | Uint8Array): void; end(): void }): void {
  for (;;) {
    if (state.current === null) {
      const end = state.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = state.buffer.subarray(0, end).toString("latin1");
      state.buffer = state.buffer.subarray(end + 4);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      const chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
      state.current = { head, length: length ? Number(length[1]) : null, chunked, parts: [], got: 0, answered: false };
      const record: Arrived = { head, body: Buffer.alloc(0), complete: false, connection: state.id };
      arrived.push(record);
      answer(record, socket, "head");
    }
    const current = state.current;
    const record = arrived[arrived.length - 1]!;
    let done = false;
    if (current.chunked) {
      // size CRLF data CRLF … 0 CRLF CRLF
      for (;;) {
        const lineEnd = state.buffer.indexOf("\r\n");
        if (lineEnd < 0) break;
        const size = parseInt(state.buffer.subarray(0, lineEnd).toString("latin1"), 16);
        if (size === 0) {
          if (state.buffer.byteLength < lineEnd + 4) break;
          state.buffer = state.buffer.subarray(lineEnd + 4);
          done = true;
          break;
        }
        if (state.buffer.byteLength < lineEnd + 2 + size + 2) break;
        current.parts.push(Buffer.from(state.buffer.subarray(lineEnd + 2, lineEnd + 2 + size)));
        state.buffer = state.buffer.subarray(lineEnd + 2 + size + 2);
      }
    } else {
      const want = (current.length ?? 0) - current.got;
      const take = Math.min(want, state.buffer.byteLength);
      if (take > 0) {
        current.parts.push(Buffer.from(state.buffer.subarray(0, take)));
        current.got += take;
        state.buffer = state.buffer.subarray(take);
      }
      done = current.got === (current.length ?? 0);
    }
    record.body = Buffer.concat(current.parts);
    if (!done) return;
    record.complete = true;
    state.current = null;
    answer(record, socket, "body");
  }
}

const upstreamServer = Bun.listen<UpstreamSocketState>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(socket) { socket.data = { id: ++opened, buffer: Buffer.alloc(0), current: null }; },
    data(socket, chunk) {
      socket.data.buffer = socket.data.buffer.byteLength === 0 ? chunk : Buffer.concat([socket.data.buffer, chunk]);
      consume(socket.data, { write: (d) => { socket.write(d); }, end: () => socket.end() });
    },
    close(socket) { closedConnections.add(socket.data.id); },
  },
});

const upstream: UpstreamConfig = { name: "bodies", url: `http://127.0.0.1:${upstreamServer.port}`, timeoutMs: 10_000, connectTimeoutMs: 2_000, client: "pool" };
const MAX_BODY = 8 * 1024 * 1024;
// The status each forwarded request ended with (499 when the client left), in order.
const outcomes: number[] = [];

const front = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  maxRequestBodySize: 64 * 1024 * 1024,
  async fetch(request) {
    const url = new URL(request.url);
    const response = await forwardToUpstream(request, {
      upstream, path: url.pathname, query: "", requestId: "req-body", clientIp: "127.0.0.1", host: "gw.test",
      maxBodyBytes: MAX_BODY, client: "pool",
    });
    outcomes.push(response.status);
    return response;
  },
});

afterAll(() => {
  front.stop(true);
  upstreamServer.stop(true);
});

const frontPort = front.port!;
const frontUrl = (path: string) => `http://127.0.0.1:${frontPort}${path}`;
function reset(next?: Answer): void {
  arrived.length = 0;
  outcomes.length = 0;
  answer = next ?? ((request, socket, phase) => {
    if (phase === "body") socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${hashOf(request.body).length}\r\n\r\n${hashOf(request.body)}`);
  });
}
const bytesOf = (size: number) => new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
const fieldOf = (head: string, name: string) => new RegExp(`\r\n${name}: *([^\r]*)`, "i").exec(head)?.[1] ?? null;

async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

describe("HTTP/1.1 pool: request bodies", () => {
  for (const size of [0, 1024, 5 * 1024 * 1024]) {
    test(`a ${size}-byte body with a declared length arrives byte for byte, as content-length`, async () => {
      reset();
      const payload = bytesOf(size);
      const response = await fetch(frontUrl("/upload"), { method: "POST", body: payload });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(hashOf(payload));
      const [got] = arrived;
      expect(arrived.length).toBe(1);
      expect(got!.complete).toBe(true);
      expect(got!.body.byteLength).toBe(size);
      expect(fieldOf(got!.head, "content-length")).toBe(String(size));
      expect(fieldOf(got!.head, "transfer-encoding")).toBeNull();
    });
  }

  test("a body of unknown length is sent chunked and arrives whole", async () => {
    reset();
    const parts = [bytesOf(10), bytesOf(0), bytesOf(70_000), bytesOf(3)];
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = parts.shift();
        if (next === undefined) { controller.close(); return; }
        await Bun.sleep(5);
        controller.enqueue(next);
      },
    });
    const response = await fetch(frontUrl("/stream"), { method: "PUT", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(200);
    const whole = Buffer.concat([bytesOf(10), bytesOf(70_000), bytesOf(3)]);
    expect(await response.text()).toBe(hashOf(whole));
    const [got] = arrived;
    expect(fieldOf(got!.head, "transfer-encoding")).toBe("chunked");
    expect(fieldOf(got!.head, "content-length")).toBeNull();
    expect(got!.body.equals(whole)).toBe(true);
  });

  test("successive requests with bodies share one kept-alive connection", async () => {
    reset();
    const before = opened;
    for (let i = 0; i < 5; i++) {
      const response = await fetch(frontUrl("/again"), { method: "POST", body: bytesOf(1024 + i) });
      expect(response.status).toBe(200);
      await response.text();
    }
    expect(new Set(arrived.map((a) => a.connection)).size).toBe(1);
    expect(opened - before).toBeLessThanOrEqual(1);
  });

  test("one client connection carries POST after POST: each body is read to its end and the next request follows", async () => {
    reset();
    const one = bytesOf(1024);
    const two = bytesOf(3000);
    const replies = await new Promise<string>((resolve, reject) => {
      let text = "";
      const socket = connect(frontPort, "127.0.0.1", () => {
        socket.write(`POST /first HTTP/1.1\r\nhost: gw.test\r\ncontent-length: ${one.byteLength}\r\n\r\n`);
        socket.write(Buffer.from(one));
      });
      socket.on("data", (d) => {
        const before = text;
        text += d.toString("latin1");
        if (!before.includes(hashOf(one)) && text.includes(hashOf(one))) {
          socket.write(`POST /second HTTP/1.1\r\nhost: gw.test\r\ncontent-length: ${two.byteLength}\r\n\r\n`);
          socket.write(Buffer.from(two));
        }
        if (text.includes(hashOf(two))) { socket.destroy(); resolve(text); }
      });
      socket.on("error", reject);
      setTimeout(() => { socket.destroy(); reject(new Error(`no second answer: ${text}`)); }, 3000);
    });
    expect(replies.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
    expect(arrived.map((a) => a.body.byteLength)).toEqual([1024, 3000]);
  });

  test("an upstream silent while the body streams: 504 at the deadline, its connection closed", async () => {
    reset(() => { /* reads, never answers */ });
    const response = await forwardToUpstream(new Request("http://gw.test/silent", { method: "POST", body: bytesOf(64 * 1024) }), {
      upstream: { ...upstream, timeoutMs: 150 }, path: "/silent", query: "", requestId: "req-body", clientIp: "127.0.0.1", host: "gw.test",
      maxBodyBytes: MAX_BODY, client: "pool",
    });
    expect(response.status).toBe(504);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_TIMEOUT");
    await until(() => arrived.length === 1 && closedConnections.has(arrived[0]!.connection));
    expect(arrived[0]!.complete).toBe(true);
  });

  test("a body over the limit is cut off: 413, the upstream never gets it whole, the connection is not reused", async () => {
    reset();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 9; i++) controller.enqueue(bytesOf(1024 * 1024));
        controller.close();
      },
    });
    const response = await fetch(frontUrl("/big"), { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { code: string }).code).toBe("REQUEST_BODY_TOO_LARGE");
    await until(() => arrived.length === 1 && closedConnections.has(arrived[0]!.connection));
    expect(arrived[0]!.complete).toBe(false);
    expect(arrived[0]!.body.byteLength).toBeLessThanOrEqual(MAX_BODY);
  });

  test("a client that leaves mid-body: the upstream's connection is closed with the body incomplete, outcome 499", async () => {
    reset();
    const declared = 4 * 1024 * 1024;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(frontPort, "127.0.0.1", () => {
        socket.write(`POST /abandoned HTTP/1.1\r\nhost: gw.test\r\ncontent-length: ${declared}\r\n\r\n`);
        socket.write(Buffer.from(bytesOf(256 * 1024)));
      });
      socket.on("error", reject);
      // Leave once the upstream has seen part of the body.
      void until(() => arrived.length === 1 && arrived[0]!.body.byteLength > 0).then(() => { socket.destroy(); resolve(); }, reject);
    });
    await until(() => outcomes.length === 1 && closedConnections.has(arrived[0]!.connection));
    expect(outcomes).toEqual([499]);
    expect(arrived[0]!.complete).toBe(false);
    expect(arrived.length).toBe(1);
  });

  test("an upstream that answers before the body is read: the answer goes back, sending stops, the connection is not reused", async () => {
    // The answer's head and half its body come at once, the rest 300 ms later; the client's
    // 5 MiB trickle in meanwhile. Sending stops at the answer's head, not at its end.
    reset((request, socket, phase) => {
      if (phase === "head" && request.head.startsWith("POST /early")) {
        socket.write("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\nnope");
        setTimeout(() => socket.write("nope"), 300);
      } else if (phase === "body" && !request.head.startsWith("POST /early")) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    let chunks = 80;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (chunks-- === 0) { controller.close(); return; }
        await Bun.sleep(8);
        controller.enqueue(bytesOf(64 * 1024));
      },
    });
    const response = await fetch(frontUrl("/early"), { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(413);
    expect(await response.text()).toBe("nopenope");
    const early = arrived[0]!;
    await until(() => closedConnections.has(early.connection));
    expect(early.complete).toBe(false);
    expect(early.body.byteLength).toBeLessThan(1024 * 1024);
    // The next request goes out on another connection.
    const next = await fetch(frontUrl("/after"), { method: "POST", body: "x" });
    expect(await next.text()).toBe("ok");
    expect(arrived[1]!.connection).not.toBe(early.connection);
  });

  test("a kept-alive connection the upstream closes as a POST goes out: 502, the body is not sent again", async () => {
    // The upstream answers the first request, then drops the connection on the next request's
    // head; the pool must not replay a body it had begun to send.
    let seen = 0;
    reset((request, socket, phase) => {
      if (phase === "head") { seen++; if (seen === 2) socket.end(); return; }
      if (seen !== 2) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    expect(await (await fetch(frontUrl("/warm"))).text()).toBe("ok");
    const response = await fetch(frontUrl("/once"), { method: "POST", body: bytesOf(1024) });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_UNAVAILABLE");
    expect(seen).toBe(2);
    expect(arrived.filter((a) => a.head.startsWith("POST /once")).length).toBe(1);
  });

  test("the same for an idempotent PUT whose body went out: not repeated", async () => {
    let seen = 0;
    reset((request, socket, phase) => {
      if (phase === "head") { seen++; if (seen === 2) socket.end(); return; }
      if (seen !== 2) socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    expect(await (await fetch(frontUrl("/warm"))).text()).toBe("ok");
    const response = await fetch(frontUrl("/put-once"), { method: "PUT", body: bytesOf(1024) });
    expect(response.status).toBe(502);
    expect(arrived.filter((a) => a.head.startsWith("PUT /put-once")).length).toBe(1);
  });

  test("a POST still waiting for its body's first bytes when the upstream drops the kept-alive connection is sent whole on a fresh one", async () => {
    // The head goes out with the body's first bytes: until then nothing of the request was sent,
    // so even a POST may go on another connection.
    reset((request, socket, phase) => {
      if (phase !== "body") return;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${hashOf(request.body).length}\r\n\r\n${hashOf(request.body)}`);
      if (request.head.startsWith("GET /warm-then-close")) setTimeout(() => socket.end(), 50);
    });
    expect((await fetch(frontUrl("/warm-then-close"))).status).toBe(200);
    const payload = bytesOf(2048);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        await Bun.sleep(200);
        controller.enqueue(payload);
        controller.close();
      },
    });
    const response = await fetch(frontUrl("/post-late"), { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(hashOf(payload));
    const posts = arrived.filter((a) => a.head.startsWith("POST /post-late"));
    expect(posts.length).toBe(1);
    expect(posts[0]!.body.equals(Buffer.from(payload))).toBe(true);
    expect(posts[0]!.connection).not.toBe(arrived[0]!.connection);
  });
});
