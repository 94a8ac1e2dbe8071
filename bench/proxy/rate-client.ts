// An open-loop load generator: requests are started on a fixed schedule (`--rate` per second)
// whether or not earlier ones have answered, and each latency is measured from the moment the
// request was DUE, not from when it was sent, so a stalled server cannot hide its stall by
// slowing the client down (no coordinated omission). wrk's closed loop measures a saturated
// server, whose latency is queueing; this measures what one request pays at a given load.
//
// The client speaks HTTP/1.1 itself over `Bun.connect` sockets (TLS for https URLs), on a pool
// of kept-alive connections opened before the schedule starts (like wrk's), and polls the event
// loop instead of sleeping when the next request is due soon. Both matter for the floor of what
// it can measure: timers fire a millisecond or more late, and fetch's client thread competes
// for the client's one core with a polling event loop; either showed up as several ms of p99
// for every target, the direct upstream included. A request finding no idle connection opens
// one (up to `--max-connections`), then waits for one; that wait counts as latency.
//
// Prints one JSON line per URL: { url, rate, seconds, sent, ok, errors, connections, p50Ms, p90Ms,
// p99Ms, p999Ms, maxMs, lateStarts }.
// Usage: bun bench/proxy/rate-client.ts --url URL [--url URL2 …] --rate N --seconds S [--header "name: value"]...
//        [--connections 16] [--max-connections 256]
import type { Socket } from "bun";
import { bounded, flag, flags, responseLength } from "./lib.ts";

// Several `--url`s: their requests interleave on one schedule, `--rate` per second EACH, so the
// targets are measured in the same moments of the machine (their difference is then not the
// drift of a shared machine between two runs). One output line per target, in order.
const urls = flags("url");
const rate = bounded(flag("rate", "1000"), 1, 100_000);
const seconds = bounded(flag("seconds", "10"), 1, 600);
const initialConnections = bounded(flag("connections", "16"), 1, 1000);
const maxConnections = Math.max(initialConnections, bounded(flag("max-connections", "256"), 1, 10_000));
const extraHeaders = flags("header").filter((h) => h.indexOf(":") > 0);
if (urls.length === 0) {
  console.error("usage: rate-client.ts --url URL --rate N --seconds S [--header 'name: value']");
  process.exit(64);
}
const requestsPerTarget = Math.round(rate * seconds);

interface Conn {
  socket: Socket<Conn> | null;
  buffer: Buffer;
  /** Due time of the request in flight on this connection, or -1 when idle. */
  dueAt: number;
}

/** One URL: its connection pool and its latencies. */
class Target {
  readonly url: URL;
  readonly tls: boolean;
  readonly port: number;
  readonly requestBytes: Buffer;
  readonly latencies = new Float64Array(requestsPerTarget);
  recorded = 0;
  ok = 0;
  errors = 0;
  sent = 0;
  opened = 0;
  /** Requests this client started more than one interval after they were due (it fell behind). */
  lateStarts = 0;
  private readonly idle: Conn[] = [];
  private readonly waiting: number[] = [];

  constructor(raw: string) {
    this.url = new URL(raw);
    this.tls = this.url.protocol === "https:";
    this.port = Number(this.url.port || (this.tls ? 443 : 80));
    this.requestBytes = Buffer.from(
      `GET ${this.url.pathname}${this.url.search} HTTP/1.1\r\nhost: ${this.url.host}\r\nuser-agent: dutygate-rate-client\r\n` +
      extraHeaders.map((h) => `${h}\r\n`).join("") + "\r\n",
    );
  }

  async open(count: number): Promise<void> {
    for (const c of await Promise.all(Array.from({ length: count }, () => this.connect()))) this.idle.push(c);
  }

  fire(dueAt: number): void {
    this.sent++;
    const conn = this.idle.pop();
    if (conn) { this.send(conn, dueAt); return; }
    this.waiting.push(dueAt);
    if (this.opened < maxConnections) {
      this.connect().then((c) => this.release(c), () => { const due = this.waiting.shift(); if (due !== undefined) this.finish(due, false); });
    }
  }

  result(): Record<string, unknown> {
    const measured = this.latencies.subarray(0, this.recorded).sort();
    const pct = (p: number) => (measured.length ? measured[Math.min(measured.length - 1, Math.floor((p / 100) * measured.length))]! : NaN);
    return {
      url: this.url.href, rate, seconds, sent: this.sent, ok: this.ok, errors: this.errors + (this.sent - this.recorded), connections: this.opened, lateStarts: this.lateStarts,
      p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), p999Ms: pct(99.9), maxMs: measured.length ? measured[measured.length - 1] : NaN,
    };
  }

  private finish(dueAt: number, success: boolean): void {
    if (success) this.ok++;
    else this.errors++;
    this.latencies[this.recorded++] = performance.now() - dueAt;
  }

  private release(conn: Conn): void {
    conn.dueAt = -1;
    const due = this.waiting.shift();
    if (due !== undefined) this.send(conn, due);
    else this.idle.push(conn);
  }

  private send(conn: Conn, dueAt: number): void {
    conn.dueAt = dueAt;
    conn.buffer = Buffer.alloc(0);
    conn.socket!.write(this.requestBytes);
  }

  private connect(): Promise<Conn> {
    this.opened++;
    const conn: Conn = { socket: null, buffer: Buffer.alloc(0), dueAt: -1 };
    return new Promise<Conn>((resolve, reject) => {
      Bun.connect<Conn>({
        hostname: this.url.hostname,
        port: this.port,
        data: conn,
        ...(this.tls ? { tls: { rejectUnauthorized: false } } : {}),
        socket: {
          open: (socket) => { conn.socket = socket; resolve(conn); },
          data: (_socket, data) => {
            conn.buffer = conn.buffer.length === 0 ? Buffer.from(data) : Buffer.concat([conn.buffer, data]);
            if (conn.dueAt < 0) return;
            const { length, status } = responseLength(conn.buffer);
            if (length === 0) return;
            const due = conn.dueAt;
            if (length < 0) { conn.socket?.end(); conn.dueAt = -1; this.finish(due, false); return; }
            this.finish(due, status === 200);
            this.release(conn);
          },
          close: () => {
            if (conn.dueAt >= 0) this.finish(conn.dueAt, false);
            conn.dueAt = -1;
            conn.socket = null;
            const i = this.idle.indexOf(conn);
            if (i >= 0) this.idle.splice(i, 1);
          },
          error: (_socket, error) => reject(error),
          connectError: (_socket, error) => reject(error),
        },
      }).catch(reject);
    });
  }
}

const targets = urls.map((u) => new Target(u));
for (const t of targets) await t.open(initialConnections);

// Every target's request k is due at the same slot k; which goes first rotates from slot to slot.
const interval = 1000 / rate;
const total = requestsPerTarget * targets.length;
const start = performance.now() + 20;
const slotOf = (k: number) => Math.floor(k / targets.length);
const dueAtOf = (k: number) => start + slotOf(k) * interval;
let next = 0;
await new Promise<void>((resolve) => {
  const tick = () => {
    const now = performance.now();
    while (next < total && dueAtOf(next) <= now) {
      const dueAt = dueAtOf(next);
      const target = targets[(next + slotOf(next)) % targets.length]!;
      if (now - dueAt > Math.max(interval, 1)) target.lateStarts++;
      target.fire(dueAt);
      next++;
    }
    if (next >= total) { resolve(); return; }
    const wait = dueAtOf(next) - performance.now();
    if (wait > 2) setTimeout(tick, wait - 2);
    else setImmediate(tick);
  };
  tick();
});
const drainBy = performance.now() + 10_000;
while (targets.some((t) => t.recorded < t.sent) && performance.now() < drainBy) await Bun.sleep(5);
for (const t of targets) console.log(JSON.stringify(t.result()));
process.exit(0);
