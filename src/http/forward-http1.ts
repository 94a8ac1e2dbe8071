// A keep-alive HTTP/1.1 client for `http://` and `https://` upstreams over `Bun.connect`, used by
// `forwardToUpstream` under Bun when `client: "pool"` is asked for. Why not fetch: Bun's fetch runs on
// its own "HTTP Client" thread, so every proxied request crosses threads twice; on a loaded core
// that hand-off costs more than the rest of the pipeline together. This client parses on the
// event loop that already holds the request, and keeps idle connections per upstream origin.
//
// Framing follows RFC 9112: the response head ends at the first empty line (§2.1); the body is
// absent for HEAD, 1xx, 204 and 304 (§6.3 rules 1–2), chunked when Transfer-Encoding ends in
// `chunked` (§7.1), `Content-Length` long otherwise (§6.3 rule 6), or delimited by the close.
// Anything ambiguous (differing lengths, both TE and CL, obs-fold, space before the colon) is
// refused as a broken upstream (502), never guessed at (§6.3 rule 3, §5.1, §5.2).
import type { Socket } from "bun";
import { GatewayError } from "../errors.ts";

/** The parts of a response `forwardToUpstream` turns into the client's response. */
export interface Http1Response {
  status: number;
  statusText: string;
  /**
   * The fields in the order received, names in lower case, hop-by-hop ones included (the caller
   * strips them): pairs, so no `Headers` object is made for a response that becomes another.
   */
  headers: Array<[string, string]>;
  /** Whole bytes when the body arrived with the head; a stream otherwise; null for none. */
  body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null;
}

/** One request over a pooled connection. */
export interface Http1Request {
  method: string;
  /** Origin-form request-target: `/path?query`, already normalised and checked by the caller. */
  target: string;
  /**
   * Fields to send as name/value pairs with lower-case names; `host` and framing fields are set
   * here, hop-by-hop ones must be gone. A name or value holding CR, LF or NUL is refused
   * (`UPSTREAM_BAD_REQUEST`) before anything is sent.
   */
  headers: ReadonlyArray<readonly [string, string]>;
  /** Aborts the exchange; before the head arrives the promise rejects with the abort's reason. */
  abort: Http1Abort;
  connectTimeoutMs: number;
  /**
   * The request's content, streamed to the upstream as it is read, with backpressure (the next
   * chunk is read once the socket took the last); absent or null for none.
   */
  body?: ReadableStream<Uint8Array> | null;
  /** With `body`: its declared length, sent as `content-length`; null: sent `chunked`. */
  bodyLength?: number | null;
  /** With `body`: bytes sent at most; more fails the exchange with `REQUEST_BODY_TOO_LARGE`. */
  maxBodyBytes?: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_IDLE_PER_ORIGIN = 256;
const MAX_CONNECTIONS_PER_ORIGIN = 256;
// Shorter than the keep-alive timeout of common upstream servers (Node 5 s, Bun 10 s, nginx 75 s),
// so the pool closes an idle connection before the upstream does in the common case.
const IDLE_TIMEOUT_S = 4;
// Bun's socket timeouts fire on a timer that ticks every few seconds, and traffic does not restart
// them: a tick finds a connection in steady use idle between two exchanges as often as not. One
// used this recently is kept (its timer re-armed); an idle one still closes at the first tick
// after it has been silent this long.
const RECENTLY_USED_MS = 500;
// RFC 9110 §9.2.2: these may be repeated when a reused connection turns out to be closed.
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
// Methods whose requests are expected to carry content: send an explicit `content-length: 0`
// (RFC 9110 §8.6) so an upstream does not wait for a body or answer 411.
const EXPECTS_CONTENT = new Set(["POST", "PUT", "PATCH"]);

const CRLFCRLF = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");
// RFC 9112 §7.1: the last chunk and an empty trailer section.
const LAST_CHUNK = Buffer.from("0\r\n\r\n");
const UNSAFE_IN_FIELD = /[\r\n\0]/;
// Tab and printable ASCII: what nearly every field, target and authority is made of.
const PRINTABLE = /^[\t\x20-\x7e]*$/;
const BARE_CR_OR_LF = /[\r\n]/;
const DIGITS = /^\d{1,15}$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function badUpstream(origin: string, why: string): GatewayError {
  return new GatewayError("UPSTREAM_BAD_RESPONSE", `upstream \`${origin}\` sent a malformed response: ${why}`);
}

/**
 * Cancels one pooled request: `abort(reason)` fails the connect or the exchange under way with
 * `reason` (before the head arrived the request rejects with it; after, the body stream errors).
 * A plain object with one callback slot, where an `AbortSignal` costs a native object and an
 * event listener added and removed per request.
 */
export class Http1Abort {
  aborted = false;
  reason: unknown = undefined;
  #target: AbortTarget | null = null;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const target = this.#target;
    this.#target = null;
    target?.abortWith(reason);
  }

  /**
   * @internal The pool's hook for the step under way (one at a time); null to clear it. An
   * object with a method, so an exchange binds itself instead of a closure made per request.
   */
  bind(target: AbortTarget | null): void {
    this.#target = target;
  }
}

/** What an `Http1Abort` calls when it fires. */
export interface AbortTarget {
  abortWith(reason: unknown): void;
}

/** An `AbortTarget` around a callback, for the rarer steps (connecting, waiting for a slot). */
function abortCallback(onAbort: (reason: unknown) => void): AbortTarget {
  return { abortWith: onAbort };
}

/** Whether the exchange's body may be written now: a connection of its own, nothing pending on it. */
function writable(exchange: Exchange): boolean {
  const c = exchange.connection;
  return c !== null && c.exchange === exchange && exchange.pendingWrite === null && exchange.replay === null;
}

const EMPTY = new Uint8Array(0);

function byteLengthOf(bytes: Uint8Array | string): number {
  // An ASCII head is sent as the string itself: its bytes are its characters.
  return typeof bytes === "string" ? bytes.length : bytes.byteLength;
}

/** The head and the body's first bytes as one buffer, for one write. */
function withHead(head: Buffer | string, bytes: Uint8Array): Buffer {
  const headLength = byteLengthOf(head);
  const out = Buffer.allocUnsafe(headLength + bytes.byteLength);
  if (typeof head === "string") out.write(head, 0, "latin1");
  else out.set(head, 0);
  out.set(bytes, headLength);
  return out;
}

/** One chunk of the chunked transfer coding (RFC 9112 §7.1): size in hex, CRLF, data, CRLF. */
function chunkOf(data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(data.byteLength.toString(16) + "\r\n", "latin1"), data, CRLF]);
}

const NO_CONTENT = 0;
const SENDING = 1;
const SENT = 2;
const STOPPED = 3;

/**
 * One request on its way through the pool: its state as fields of one object (no closures per
 * request), driven by the pool's socket handlers. `attempt` counts the retry on a stale connection.
 */
class Exchange implements AbortTarget {
  connection: Connection | null = null;
  attempt = 0;
  /** Bytes the socket has not taken yet, sent on `drain`: the first `pendingHead` of them are the head's. */
  pendingWrite: Uint8Array | string | null = null;
  pendingHead = 0;
  /** The head waits to go out with the body's first bytes (one write for a small body). */
  headUnsent = false;
  /** A byte of the head was taken by the current connection. */
  headTaken = false;
  received: Buffer | null = null;
  anyByte = false;
  settled = false;
  /** Set once the head is parsed and the body streams. */
  body: BodyReader | null = null;
  /** The request body: NO_CONTENT, SENDING, SENT (every byte taken by the socket) or STOPPED. */
  contentState = NO_CONTENT;
  /** Bytes of the request body (with its framing) the socket took on the current connection. */
  contentWritten = 0;
  /** Body bytes held over from a connection found closed before it took any of them, for the retry. */
  replay: Uint8Array | null = null;
  /** Wakes the body's sender, waiting for the socket to take what it has or for a connection. */
  wake: (() => void) | null = null;
  reader: ReadableStreamDefaultReader<Uint8Array> | null = null;

  constructor(
    readonly request: Http1Request,
    readonly head: Buffer | string,
    readonly resolve: (response: Http1Response) => void,
    readonly reject: (reason: unknown) => void,
    readonly fail: (exchange: Exchange, error: unknown) => void,
  ) {}

  abortWith(reason: unknown): void {
    this.fail(this, reason);
  }
}

interface Connection {
  socket: Socket<Connection> | null;
  exchange: Exchange | null;
  closed: boolean;
  reused: boolean;
  /** Counted among the pool's open connections (cleared once, when it closes or fails to open). */
  counted: boolean;
  /** `performance.now()` when it last went back to the pool. */
  releasedAt: number;
  /** While a TLS handshake is under way: settles the connect once the certificate is judged. */
  handshake: { resolve(): void; reject(error: unknown): void } | null;
}

/** A request waiting for a connection while the pool is at its cap. */
interface Waiter {
  /** A kept-alive connection handed over, or null: a slot came free, open a new one. */
  resolve(connection: Connection | null): void;
  reject(reason: unknown): void;
}

/**
 * A pool of keep-alive connections to one `http://host:port` or `https://host:port` origin. Over
 * TLS it verifies the upstream's certificate as the runtime's fetch does (`tls: true`: the same
 * root store, `NODE_EXTRA_CA_CERTS`, the host name, validity dates; the host name sent as SNI), or
 * as `settings` say when given (an upstream's own: {@link UpstreamTls}), and a connection
 * carries nothing before its handshake has passed.
 */
export class Http1Pool {
  /** The upstream's own TLS settings; null: the runtime's defaults. */
  readonly settings: UpstreamTls | null;
  readonly #hostname: string;
  readonly #tls: boolean;
  readonly #port: number;
  readonly #authority: string;
  readonly #idle: Connection[] = [];
  readonly #idleTimeoutS: number;
  readonly #maxConnections: number;
  readonly #waiting: Waiter[] = [];
  #open = 0;
  // The one function every exchange of this pool fails through (bound once per pool).
  readonly #failExchange = (exchange: Exchange, error: unknown): void => this.#fail(exchange, error);

  /**
   * `idleTimeoutS`: seconds of silence after which a connection closes while it waits in the pool.
   * `maxConnections`: connections open to the origin at most (default 256, as Bun's fetch); a
   * request beyond that waits, in arrival order, for one to come free.
   */
  constructor(origin: URL, options: { idleTimeoutS?: number; maxConnections?: number; tls?: UpstreamTls | null } = {}) {
    this.settings = options.tls ?? null;
    this.#idleTimeoutS = options.idleTimeoutS ?? IDLE_TIMEOUT_S;
    this.#maxConnections = Math.max(1, options.maxConnections ?? MAX_CONNECTIONS_PER_ORIGIN);
    this.#hostname = origin.hostname.replace(/^\[|\]$/g, "");
    this.#tls = origin.protocol === "https:";
    this.#port = Number(origin.port || (this.#tls ? 443 : 80));
    this.#authority = origin.host;
  }

  /** Idle connections kept open right now. */
  get idleConnections(): number {
    return this.#idle.length;
  }

  /** Connections open (or opening) right now, idle and busy. */
  get openConnections(): number {
    return this.#open;
  }

  /** Requests waiting for a connection because the pool is at its cap. */
  get waitingRequests(): number {
    return this.#waiting.length;
  }

  /**
   * Sends one request and resolves once the response head has arrived; its body, if any, streams
   * on meanwhile. A reused connection that the upstream closed in the meantime is retried once on
   * a fresh one when the method is idempotent, no byte of the answer came back and no byte of the
   * body was taken by the closed connection (a body is never sent twice, even in part).
   */
  request(request: Http1Request): Promise<Http1Response> {
    let head: Buffer | string;
    try {
      const content = request.body === undefined || request.body === null ? undefined : request.bodyLength ?? null;
      head = requestHead(request.method, request.target, this.#authority, request.headers, content);
    } catch (error) {
      return Promise.reject(error);
    }
    // One promise per request, settled by the exchange itself (also across its retry).
    return new Promise<Http1Response>((resolve, reject) => this.#dispatch(new Exchange(request, head, resolve, reject, this.#failExchange)));
  }

  /** Puts an exchange on an idle connection, or on a new (or handed-over) one once there is one. */
  #dispatch(exchange: Exchange): void {
    const idle = this.#takeIdle();
    if (idle !== null) { this.#start(exchange, idle); return; }
    this.#obtain(exchange.request.abort, exchange.request.connectTimeoutMs).then(
      (connection) => this.#start(exchange, connection),
      (error) => { exchange.settled = true; exchange.reject(error); },
    );
  }

  /** Closes every idle connection (in-flight exchanges finish on their own). */
  close(): void {
    for (const c of this.#idle.splice(0)) this.#discard(c);
  }

  #takeIdle(): Connection | null {
    while (this.#idle.length > 0) {
      const c = this.#idle.pop()!;
      if (!c.closed && c.socket !== null) {
        c.reused = true;
        return c;
      }
    }
    return null;
  }

  /** A new connection when under the cap; else the next one released or a freed slot. */
  async #obtain(abort: Http1Abort, connectTimeoutMs: number): Promise<Connection> {
    for (;;) {
      if (this.#open < this.#maxConnections) return this.#connect(abort, connectTimeoutMs);
      if (abort.aborted) throw abort.reason;
      const handed = await new Promise<Connection | null>((resolve, reject) => {
        const waiter: Waiter = { resolve, reject };
        this.#waiting.push(waiter);
        abort.bind(abortCallback((reason) => {
          const i = this.#waiting.indexOf(waiter);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(reason);
        }));
      }).finally(() => abort.bind(null));
      if (handed !== null) return handed;
    }
  }

  #release(c: Connection): void {
    c.exchange = null;
    if (c.closed || c.socket === null || this.#idle.length >= MAX_IDLE_PER_ORIGIN) {
      this.#discard(c);
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) { c.reused = true; waiter.resolve(c); return; }
    c.releasedAt = performance.now();
    this.#idle.push(c);
  }

  /**
   * Takes a connection out of service: never handed out again, out of the idle list, and counted
   * out of the open ones once, which lets the first waiter open a new one in its place. Every way
   * a connection ends goes through here (or `#discard`).
   */
  #retire(c: Connection): void {
    c.closed = true;
    this.#forget(c);
    if (!c.counted) return;
    c.counted = false;
    this.#open--;
    this.#waiting.shift()?.resolve(null);
  }

  /** Retires a connection and closes its socket. */
  #discard(c: Connection): void {
    this.#retire(c);
    c.socket?.terminate();
  }

  #forget(c: Connection): void {
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
  }

  async #connect(abort: Http1Abort, connectTimeoutMs: number): Promise<Connection> {
    if (abort.aborted) throw abort.reason;
    const connection: Connection = { socket: null, exchange: null, closed: false, reused: false, counted: true, releasedAt: 0, handshake: null };
    const handshaken = this.#tls ? new Promise<void>((resolve, reject) => { connection.handshake = { resolve, reject }; }) : null;
    // Settled when the connect was given up already (timeout, abort): nobody awaits it then.
    handshaken?.catch(() => {});
    this.#open++;
    const pool = this;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let giveUp: ((error: unknown) => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      giveUp = reject;
      timer = setTimeout(() => reject(new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${this.#authority}\` did not accept a connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    });
    abort.bind(abortCallback((reason) => giveUp?.(reason)));
    const connecting = Bun.connect<Connection>({
      hostname: this.#hostname,
      port: this.#port,
      data: connection,
      tls: this.#tls ? (this.settings === null ? true : bunTlsOptions(this.settings)) : undefined,
      socket: {
        // Bun verifies the chain and the host name itself and closes the socket when either fails.
        handshake(socket, ok, error) {
          const pending = socket.data.handshake;
          socket.data.handshake = null;
          if (pending === null) return;
          if (ok) pending.resolve();
          else pending.reject(new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${pool.#authority}\` presented a certificate that does not verify: ${(error as (Error & { code?: string }) | undefined)?.code ?? error?.message ?? "handshake failed"}`));
        },
        data(socket, chunk) {
          const exchange = socket.data.exchange;
          // Bytes on an idle connection answer nothing we asked: the connection is unusable.
          if (exchange === null) { pool.#discard(socket.data); return; }
          pool.#onData(exchange, chunk);
        },
        drain(socket) {
          const exchange = socket.data.exchange;
          if (exchange !== null) pool.#onDrain(exchange);
        },
        // During an exchange the caller's deadline rules, so the timer is re-armed, not obeyed; so it
        // is for a connection back from an exchange just now (RECENTLY_USED_MS).
        timeout(socket) {
          const c = socket.data;
          if (c.exchange !== null || performance.now() - c.releasedAt < RECENTLY_USED_MS) { socket.timeout(pool.#idleTimeoutS); return; }
          pool.#discard(socket.data);
        },
        end(socket) { socket.end(); },
        close(socket, error) {
          pool.#retire(socket.data);
          socket.data.handshake?.reject(new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${pool.#authority}\` closed the connection during the TLS handshake`));
          socket.data.handshake = null;
          const exchange = socket.data.exchange;
          socket.data.exchange = null;
          if (exchange !== null && exchange.connection === socket.data) pool.#onClose(exchange, error ?? null);
        },
        error(socket, error) {
          pool.#retire(socket.data);
          socket.data.handshake?.reject(error);
          socket.data.handshake = null;
          const exchange = socket.data.exchange;
          socket.data.exchange = null;
          if (exchange !== null && exchange.connection === socket.data) pool.#onClose(exchange, error);
        },
      },
    });
    try {
      const socket = await Promise.race([connecting, stop]);
      // Under the same connect timeout: the certificate is judged before any byte is sent.
      if (handshaken !== null) await Promise.race([handshaken, stop]);
      socket.setNoDelay(true);
      socket.timeout(this.#idleTimeoutS);
      connection.socket = socket;
      return connection;
    } catch (error) {
      // A connection that completes after we gave up must not leak.
      void connecting.then((s) => s.terminate(), () => {});
      this.#retire(connection);
      if (error instanceof GatewayError || (abort.aborted && error === abort.reason)) throw error;
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${this.#authority}\` is unavailable: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
      abort.bind(null);
    }
  }

  /** Sends the exchange's request on `c` (the abort handle now fails this exchange). */
  #start(exchange: Exchange, c: Connection): void {
    exchange.connection = c;
    const abort = exchange.request.abort;
    if (abort.aborted) { this.#fail(exchange, abort.reason); return; }
    abort.bind(exchange);
    c.exchange = exchange;
    exchange.contentWritten = 0;
    exchange.headTaken = false;
    const body = exchange.request.body;
    if (body !== undefined && body !== null && exchange.contentState === NO_CONTENT) {
      // The head goes out with the body's first bytes, written by the sender.
      exchange.contentState = SENDING;
      exchange.headUnsent = true;
      exchange.reader = body.getReader();
      void this.#sendContent(exchange);
      return;
    }
    // A retry while the head still waits for the body: the sender writes both on this connection.
    if (exchange.headUnsent) { this.#wake(exchange); return; }
    // After a retry, the body bytes the closed connection did not take follow the head at once.
    const replay = exchange.replay;
    exchange.replay = null;
    const head = exchange.head;
    if (!this.#write(exchange, replay === null ? head : withHead(head, replay), byteLengthOf(head))) return;
    if (exchange.contentState === SENDING) this.#wake(exchange);
  }

  /**
   * Writes `bytes` on the exchange's connection; what the socket does not take waits for `drain`
   * (Bun's socket writes are not buffered). False when the caller must wait: bytes are pending,
   * or the connection turned out to be closed (handled here as its close).
   */
  #write(exchange: Exchange, bytes: Uint8Array | string, headBytes: number): boolean {
    const c = exchange.connection!;
    const written = c.socket!.write(bytes);
    const length = byteLengthOf(bytes);
    if (written >= length) {
      exchange.contentWritten += length - headBytes;
      if (headBytes > 0) exchange.headTaken = true;
      return true;
    }
    if (written < 0) {
      // Closed before it took a byte: held for a retry, then handled as the connection's close.
      exchange.pendingWrite = bytes;
      exchange.pendingHead = headBytes;
      if (c.exchange === exchange) c.exchange = null;
      this.#discard(c);
      this.#onClose(exchange, null);
      return false;
    }
    if (written > 0 && headBytes > 0) exchange.headTaken = true;
    exchange.contentWritten += Math.max(0, written - headBytes);
    exchange.pendingWrite = written === 0 ? bytes : typeof bytes === "string" ? bytes.slice(written) : bytes.subarray(written);
    exchange.pendingHead = Math.max(0, headBytes - written);
    return false;
  }

  /**
   * Streams the request body: one chunk read from the client at a time, written whole (framed
   * when chunked) before the next is read, so at most one chunk is held. Stops when the exchange
   * fails or the upstream answers before the body is through (RFC 9112 §9.6).
   */
  async #sendContent(exchange: Exchange): Promise<void> {
    const request = exchange.request;
    const reader = exchange.reader!;
    const length = request.bodyLength ?? null;
    const max = request.maxBodyBytes ?? Infinity;
    let taken = 0;
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch {
        this.#contentFailed(exchange, new GatewayError("CLIENT_CLOSED_REQUEST", "client closed the request before its body was sent"));
        return;
      }
      if (exchange.contentState !== SENDING) return;
      let bytes: Uint8Array;
      if (chunk.done) {
        if (length !== null && taken !== length) {
          this.#contentFailed(exchange, new GatewayError("CLIENT_CLOSED_REQUEST", "client closed the request before its body was sent"));
          return;
        }
        // A declared length is complete with its last chunk; only an empty body gets here, to send the head.
        bytes = length === null ? LAST_CHUNK : EMPTY;
      } else {
        const value = chunk.value;
        // An empty chunk would end a chunked body early: there is nothing to send.
        if (value.byteLength === 0) continue;
        taken += value.byteLength;
        if (taken > max) { this.#contentFailed(exchange, new GatewayError("REQUEST_BODY_TOO_LARGE", `request body larger than ${max} bytes`, { maxBodyBytes: max })); return; }
        if (length !== null && taken > length) { this.#contentFailed(exchange, new GatewayError("UPSTREAM_BAD_REQUEST", "request body longer than its content-length")); return; }
        bytes = length === null ? chunkOf(value) : value;
      }
      // Wait until the socket has taken the bytes before (a retry may have replaced the connection).
      while (exchange.contentState === SENDING && !writable(exchange)) await new Promise<void>((resolve) => { exchange.wake = resolve; });
      if (exchange.contentState !== SENDING) return;
      let headBytes = 0;
      if (exchange.headUnsent) {
        exchange.headUnsent = false;
        headBytes = byteLengthOf(exchange.head);
        bytes = withHead(exchange.head, bytes);
      }
      this.#write(exchange, bytes, headBytes);
      if (!chunk.done && (length === null || taken < length)) continue;
      while (exchange.contentState === SENDING && !writable(exchange)) await new Promise<void>((resolve) => { exchange.wake = resolve; });
      if (exchange.contentState === SENDING) exchange.contentState = SENT;
      // Every byte the client declared is in: the stream has nothing more to give.
      if (!chunk.done) reader.releaseLock();
      return;
    }
  }

  /** The body could not be read or sent in full: the exchange fails, or, already answered, its connection goes. */
  #contentFailed(exchange: Exchange, error: GatewayError): void {
    if (exchange.contentState !== SENDING) return;
    if (!exchange.settled) { this.#fail(exchange, error); return; }
    this.#stopContent(exchange, error);
  }

  /** Stops sending the body (the exchange failed or was answered first); the connection is not reused after. */
  #stopContent(exchange: Exchange, reason: unknown): void {
    if (exchange.contentState !== SENDING) return;
    exchange.contentState = STOPPED;
    exchange.pendingWrite = null;
    this.#wake(exchange);
    void exchange.reader?.cancel(reason).catch(() => {});
  }

  #wake(exchange: Exchange): void {
    const wake = exchange.wake;
    if (wake !== null) { exchange.wake = null; wake(); }
  }

  #fail(exchange: Exchange, error: unknown): void {
    // Settle first: terminating reports a close, which must not overwrite this error.
    if (!exchange.settled) { exchange.settled = true; exchange.reject(error); }
    else exchange.body?.fail(error);
    this.#stopContent(exchange, error);
    exchange.request.abort.bind(null);
    if (exchange.connection !== null) this.#discard(exchange.connection);
  }

  /**
   * The exchange is over (`ok`: its answer was read exactly): the connection goes back, or away
   * when the answer or the request body is not complete on it.
   */
  #finish(exchange: Exchange, ok: boolean, reusable: boolean): void {
    exchange.request.abort.bind(null);
    const c = exchange.connection!;
    if (ok && reusable && !c.closed && (exchange.contentState === NO_CONTENT || exchange.contentState === SENT)) this.#release(c);
    else { this.#stopContent(exchange, null); this.#discard(c); }
  }

  #onDrain(exchange: Exchange): void {
    const pending = exchange.pendingWrite;
    if (pending === null) return;
    exchange.pendingWrite = null;
    if (!this.#write(exchange, pending, exchange.pendingHead)) return;
    this.#wake(exchange);
  }

  #onClose(exchange: Exchange, error: Error | null): void {
    if (exchange.body !== null) { exchange.body.end(error); this.#stopContent(exchange, error); exchange.request.abort.bind(null); return; }
    if (exchange.settled) { this.#stopContent(exchange, error); return; }
    const request = exchange.request;
    if (!exchange.anyByte && exchange.connection!.reused) {
      // A kept-alive connection the upstream had closed: nothing of this request was answered.
      request.abort.bind(null);
      // Again only when no byte of the body went out, and for a method that is not idempotent only
      // when nothing went out at all (the head waited for the body's first bytes).
      if (exchange.attempt === 0 && !request.abort.aborted && exchange.contentWritten === 0 && (IDEMPOTENT.has(request.method) || !exchange.headTaken)) {
        exchange.attempt = 1;
        exchange.connection = null;
        // Body bytes the closed socket did not take go first on the new connection.
        const pending = exchange.pendingWrite;
        exchange.replay = pending !== null && typeof pending !== "string" && exchange.pendingHead < pending.byteLength ? pending.subarray(exchange.pendingHead) : null;
        exchange.pendingWrite = null;
        exchange.received = null;
        this.#dispatch(exchange);
        return;
      }
      exchange.settled = true;
      exchange.reject(new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${this.#authority}\` closed the connection`));
      return;
    }
    this.#fail(exchange, new GatewayError("UPSTREAM_UNAVAILABLE", `upstream \`${this.#authority}\` closed the connection before answering${error ? `: ${error.message}` : ""}`));
  }

  #onData(exchange: Exchange, chunk: Buffer): void {
    exchange.anyByte = true;
    if (exchange.body !== null) { exchange.body.push(chunk); return; }
    const received = exchange.received === null ? chunk : Buffer.concat([exchange.received, chunk]);
    // Informational answers (1xx, RFC 9110 §15.2) precede the final one: skip them.
    for (let at = 0; ;) {
      const end = received.indexOf(CRLFCRLF, at);
      if (end < 0) {
        exchange.received = at === 0 ? received : received.subarray(at);
        if (received.byteLength - at > MAX_HEAD_BYTES) this.#fail(exchange, badUpstream(this.#authority, "response head too large"));
        return;
      }
      let parsed: ParsedHead;
      try {
        parsed = parseResponseHead(received.toString("latin1", at, end), this.#authority);
      } catch (error) {
        this.#fail(exchange, error);
        return;
      }
      at = end + 4;
      if (parsed.status >= 100 && parsed.status < 200) {
        if (parsed.status === 101) { this.#fail(exchange, badUpstream(this.#authority, "unexpected protocol switch")); return; }
        continue;
      }
      exchange.settled = true;
      exchange.received = null;
      // Answered before the body was through (an early 413, say): the rest is not sent, and the
      // connection, whose request was cut short, is not reused (RFC 9112 §9.6).
      if (exchange.contentState === SENDING) this.#stopContent(exchange, null);
      const left = received.byteLength - at;
      const framing = exchange.request.method === "HEAD" || parsed.status === 204 || parsed.status === 304 ? NO_BODY : parsed.framing;
      const reusable = parsed.keepAlive && framing.kind !== "close";
      if (framing.kind === "none") {
        this.#finish(exchange, left === 0, reusable);
        exchange.resolve({ status: parsed.status, statusText: parsed.statusText, headers: parsed.headers, body: null });
        return;
      }
      if (framing.kind === "length" && left >= framing.length) {
        // A copy: the socket's buffer is not ours to hand on.
        const whole = new Uint8Array(framing.length);
        received.copy(whole, 0, at, at + framing.length);
        this.#finish(exchange, left === framing.length, reusable);
        exchange.resolve({ status: parsed.status, statusText: parsed.statusText, headers: parsed.headers, body: whole });
        return;
      }
      const body = new BodyReader(framing, exchange.connection!.socket!, this.#authority, (ok) => this.#finish(exchange, ok, reusable));
      exchange.body = body;
      exchange.resolve({ status: parsed.status, statusText: parsed.statusText, headers: parsed.headers, body: body.stream });
      if (left > 0) body.push(received.subarray(at));
      return;
    }
  }
}

/**
 * The bytes of a request head (`Http1Request`'s rules: `host` and framing set here, a field
 * holding CR, LF or NUL refused; `content`: the body's length, null for a chunked body, undefined
 * for none): the string itself when it is printable ASCII, else latin1
 * bytes. Exported for bench/proxy/hop.ts, which times it alone.
 */
export function requestHead(method: string, target: string, authority: string, headers: Http1Request["headers"], content?: number | null): Buffer | string {
  let head = `${method} ${target} HTTP/1.1\r\nhost: ${authority}\r\n`;
  let ascii = PRINTABLE.test(target) && PRINTABLE.test(authority);
  for (let i = 0; i < headers.length; i++) {
    const field = headers[i]!;
    const name = field[0];
    const value = field[1];
    if (name === "host" || name === "content-length" || name === "transfer-encoding") continue;
    // One test for the common field; only one that fails it is looked at closer.
    if (!PRINTABLE.test(value) || !PRINTABLE.test(name)) {
      // No field can split the head.
      if (UNSAFE_IN_FIELD.test(value) || UNSAFE_IN_FIELD.test(name)) throw new GatewayError("UPSTREAM_BAD_REQUEST", `header \`${name.replace(/[^\x21-\x7e]/g, "?")}\` holds CR, LF or NUL`);
      ascii = false;
    }
    head += name + ": " + value + "\r\n";
  }
  // The body's framing: its declared length, chunked when none was declared (RFC 9112 §6.1–6.2).
  if (content === null) head += "transfer-encoding: chunked\r\n";
  else if (content !== undefined) head += "content-length: " + content + "\r\n";
  else if (EXPECTS_CONTENT.has(method)) head += "content-length: 0\r\n";
  // The default in HTTP/1.1, said aloud for upstreams that still think in HTTP/1.0 (and as fetch does).
  head += "connection: keep-alive\r\n\r\n";
  // A printable-ASCII head goes out as the string (its UTF-8 bytes are its characters, and no
  // Buffer is made); any other is latin1-encoded, which keeps every byte as the client sent it.
  return ascii ? head : Buffer.from(head, "latin1");
}

export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };
const NO_BODY: Framing = { kind: "none" };

/** A parsed response head; exported with `parseResponseHead` for bench/proxy/hop.ts. */
export interface ParsedHead {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  framing: Framing;
  keepAlive: boolean;
}

/** Parses a response head (status line and fields, without the final CRLFCRLF). */
export function parseResponseHead(text: string, origin: string): ParsedHead {
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd < 0) lineEnd = text.length;
  // `HTTP/1.x NNN reason` (the STATUS_LINE pattern) read by its characters: no match array.
  const minor = text.charCodeAt(7);
  const d0 = text.charCodeAt(9) - 0x30;
  const d1 = text.charCodeAt(10) - 0x30;
  const d2 = text.charCodeAt(11) - 0x30;
  const statusOk = text.startsWith("HTTP/1.") && (minor === 0x30 || minor === 0x31) && text.charCodeAt(8) === 0x20
    && d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9 && (lineEnd === 12 || (lineEnd > 12 && text.charCodeAt(12) === 0x20));
  const statusText = lineEnd > 12 ? text.slice(13, lineEnd) : "";
  if (!statusOk || BARE_CR_OR_LF.test(statusText)) throw badUpstream(origin, "bad status line");
  const headers: Array<[string, string]> = [];
  let contentLength: string | null = null;
  let transferEncoding: string | null = null;
  let connection = "";
  // One field per CRLF-ended line; no split into an array of lines first.
  for (let at = lineEnd + 2; lineEnd < text.length; at = lineEnd + 2) {
    lineEnd = text.indexOf("\r\n", at);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(":", at);
    if (colon <= at || colon >= lineEnd) {
      const first = text.charCodeAt(at);
      throw badUpstream(origin, lineEnd > at && (first === 0x20 || first === 0x09) ? "obsolete line folding" : "field without a colon");
    }
    const name = text.slice(at, colon);
    if (!TOKEN.test(name)) throw badUpstream(origin, "bad field name");
    const value = text.slice(colon + 1, lineEnd).trim();
    // A bare CR or LF inside a line, or NUL, is no field value (RFC 9110 §5.5).
    if (UNSAFE_IN_FIELD.test(value)) throw badUpstream(origin, "bad field value");
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      // A list of identical lengths is one length (RFC 9110 §8.6); different ones are an attack or a bug.
      for (const part of DIGITS.test(value) ? [value] : value.split(",")) {
        const v = part.trim();
        if (!DIGITS.test(v) || (contentLength !== null && contentLength !== v)) throw badUpstream(origin, "bad content-length");
        contentLength = v;
      }
    } else if (lower === "transfer-encoding") {
      transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
    } else if (lower === "connection") {
      connection += "," + value.toLowerCase();
    }
    headers.push([lower, value]);
  }
  let framing: Framing;
  if (transferEncoding !== null) {
    // RFC 9112 §6.1: with both, TE wins and the connection must not be reused; a final coding other
    // than chunked means the body ends with the connection (§6.3 rule 4).
    const codings = transferEncoding.toLowerCase().split(",").map((s) => s.trim()).filter((s) => s !== "");
    framing = codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
    if (contentLength !== null) connection += ",close";
  } else if (contentLength !== null) {
    framing = { kind: "length", length: Number(contentLength) };
  } else {
    framing = { kind: "close" };
  }
  const http10 = minor === 0x30;
  let keepAlive = !http10;
  if (connection !== "") {
    const tokens = connection.split(",").map((s) => s.trim());
    keepAlive = http10 ? tokens.includes("keep-alive") && !tokens.includes("close") : !tokens.includes("close");
  }
  return { status: d0 * 100 + d1 * 10 + d2, statusText, headers, framing, keepAlive };
}

/**
 * Streams a response body from the socket to the client, decoding chunked framing, with
 * backpressure: the socket stops reading while the client's queue is full.
 */
class BodyReader {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #remaining: number;
  #chunked: ChunkedDecoder | null;
  #finished = false;
  #paused = false;

  constructor(
    private readonly framing: Exclude<Framing, { kind: "none" }>,
    private readonly socket: Socket<Connection>,
    private readonly origin: string,
    private readonly done: (reusable: boolean) => void,
  ) {
    this.#remaining = framing.kind === "length" ? framing.length : Infinity;
    this.#chunked = framing.kind === "chunked" ? new ChunkedDecoder(origin) : null;
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => { this.#controller = controller; },
      pull: () => {
        if (this.#paused && !this.#finished) { this.#paused = false; this.socket.resume(); }
      },
      cancel: () => {
        // The client went away: the rest of this body can never be read, so the connection goes too.
        if (this.#finished) return;
        this.#finished = true;
        this.done(false);
      },
    }, { highWaterMark: 64 * 1024, size: (chunk) => chunk?.byteLength ?? 0 });
  }

  push(chunk: Buffer): void {
    if (this.#finished) return;
    if (this.#chunked !== null) {
      let out: Uint8Array[];
      try {
        out = this.#chunked.decode(chunk);
      } catch (error) {
        this.fail(error);
        this.done(false);
        return;
      }
      for (const piece of out) this.#enqueue(piece);
      if (this.#chunked.complete) this.#finish(!this.#chunked.trailingBytes);
    } else if (this.framing.kind === "length") {
      const take = Math.min(chunk.byteLength, this.#remaining);
      if (take > 0) this.#enqueue(Uint8Array.prototype.slice.call(chunk, 0, take));
      this.#remaining -= take;
      if (this.#remaining === 0) this.#finish(take === chunk.byteLength);
    } else {
      this.#enqueue(Uint8Array.prototype.slice.call(chunk));
    }
    if (!this.#finished && (this.#controller.desiredSize ?? 1) <= 0 && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  /** The connection ended: a complete body for close-delimited framing, a truncation otherwise. */
  end(error: Error | null): void {
    if (this.#finished) return;
    if (this.framing.kind === "close" && error === null) { this.#finish(false); return; }
    this.fail(badUpstream(this.origin, "connection closed before the body was complete"));
    this.#finished = true;
    this.done(false);
  }

  fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    try { this.#controller.error(error); } catch { /* already closed or errored */ }
  }

  #enqueue(piece: Uint8Array): void {
    try { this.#controller.enqueue(piece); } catch { /* cancelled by the client */ }
  }

  #finish(reusable: boolean): void {
    this.#finished = true;
    if (this.#paused) { this.#paused = false; this.socket.resume(); }
    try { this.#controller.close(); } catch { /* cancelled by the client */ }
    this.done(reusable);
  }
}

/** RFC 9112 §7.1 chunked transfer coding, incrementally; chunk extensions and trailers are dropped. */
class ChunkedDecoder {
  complete = false;
  trailingBytes = false;
  #state: "size" | "data" | "data-crlf" | "trailer" = "size";
  #line = "";
  #left = 0;

  constructor(private readonly origin: string) {}

  decode(input: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < input.byteLength) {
      if (this.complete) { this.trailingBytes = true; return out; }
      if (this.#state === "data") {
        const take = Math.min(this.#left, input.byteLength - i);
        out.push(input.slice(i, i + take));
        i += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = "data-crlf";
        continue;
      }
      // Line-oriented states: collect up to LF.
      const lf = input.indexOf(0x0a, i);
      const end = lf < 0 ? input.byteLength : lf;
      this.#line += Buffer.from(input.buffer, input.byteOffset + i, end - i).toString("latin1");
      if (this.#line.length > 4096) throw badUpstream(this.origin, "chunk line too long");
      i = lf < 0 ? input.byteLength : lf + 1;
      if (lf < 0) break;
      if (!this.#line.endsWith("\r")) throw badUpstream(this.origin, "bare LF in chunked framing");
      const line = this.#line.slice(0, -1);
      this.#line = "";
      if (this.#state === "data-crlf") {
        if (line !== "") throw badUpstream(this.origin, "missing CRLF after chunk data");
        this.#state = "size";
      } else if (this.#state === "size") {
        const size = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) throw badUpstream(this.origin, "bad chunk size");
        this.#left = parseInt(size[1]!, 16);
        this.#state = this.#left === 0 ? "trailer" : "data";
      } else if (line === "") {
        this.complete = true;
      }
    }
    return out;
  }
}

const pools = new Map<string, Http1Pool>();

/** The pool of an origin (or {@link http1PoolKey}) if one was made (for metrics: looking does not create one). */
export function existingHttp1Pool(key: string): Http1Pool | undefined {
  return pools.get(key);
}

/**
 * An upstream's own TLS settings, each null when unset: `ca` (PEM certificates trusted instead of
 * the runtime's roots), `serverName` (sent as SNI and checked in the certificate instead of the
 * URL's host), `cert` and `key` (the client certificate the gateway presents, PEM).
 */
export interface UpstreamTls {
  ca: string | null;
  serverName: string | null;
  cert: string | null;
  key: string | null;
}

/**
 * The TLS options of `Bun.connect` and of Bun's fetch for `settings`: Bun trusts `ca` in place of
 * its roots and checks the certificate for `serverName` (sent as SNI) when set, else for the host.
 */
export function bunTlsOptions(settings: UpstreamTls): { ca?: string; serverName?: string; cert?: string; key?: string } {
  const options: { ca?: string; serverName?: string; cert?: string; key?: string } = {};
  if (settings.ca !== null) options.ca = settings.ca;
  if (settings.serverName !== null) options.serverName = settings.serverName;
  if (settings.cert !== null && settings.key !== null) { options.cert = settings.cert; options.key = settings.key; }
  return options;
}

function sameTls(a: UpstreamTls | null, b: UpstreamTls | null): boolean {
  if (a === b) return true;
  return a !== null && b !== null && a.ca === b.ca && a.serverName === b.serverName && a.cert === b.cert && a.key === b.key;
}

/**
 * The key of the pool for an origin reached with an upstream's own TLS settings, named by their
 * files and names (`ca`, `server_name`, client `cert`): a pool of its own, apart from the
 * origin's pool that uses the runtime's defaults (the key is then the origin).
 */
export function http1PoolKey(origin: string, caFile?: string | null, serverName?: string | null, certFile?: string | null): string {
  // Called per pooled request: fixed parameters, nothing allocated for an upstream without settings.
  if (!caFile && !serverName && !certFile) return origin;
  return `${origin} tls=${caFile ?? ""}|${serverName ?? ""}|${certFile ?? ""}`;
}

/**
 * The shared pool for an origin (`http://host:port`, `https://host:port`); one per key per process.
 * `key` from {@link http1PoolKey}; `tls`: the upstream's own TLS settings, null for the runtime's
 * defaults. A pool made with other settings under the same key (a file changed between two
 * configs of one process) is closed and replaced.
 */
export function http1PoolFor(origin: string, key = origin, tls: UpstreamTls | null = null): Http1Pool {
  let pool = pools.get(key);
  if (pool && !sameTls(pool.settings, tls)) { pool.close(); pools.delete(key); pool = undefined; }
  if (!pool) {
    pool = new Http1Pool(new URL(origin), { tls });
    if (pools.size >= 1024) for (const [k, p] of pools) { p.close(); pools.delete(k); break; }
    pools.set(key, pool);
  }
  return pool;
}
