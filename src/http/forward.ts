// Streaming reverse proxy to one upstream over fetch: the request body flows to the upstream
// and the response body flows back without being buffered, both under a byte or time limit.
import type { UpstreamConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import type { ErrorCode } from "../error-codes.ts";
import { normalizeFieldName } from "./field-name.ts";
import { bunTlsOptions, Http1Abort, http1PoolFor, http1PoolKey, type UpstreamTls } from "./forward-http1.ts";
import type { Http1Response } from "./forward-http1.ts";
import { problemResponse } from "./problem.ts";
import { settle as settleInflight, watch as watchInflight, type InflightCall } from "./inflight.ts";
import { traceContextFor } from "./trace-context.ts";
import type { TraceContext } from "./trace-context.ts";

export interface ForwardOptions {
  upstream: UpstreamConfig;
  /** Normalised path (from `normalizeRequestPath`): exactly the path the policy judged. */
  path: string;
  /** Query without `?`, as returned by `normalizeRequestPath`; "" for none. */
  query: string;
  requestId: string;
  /** Address of the connecting client, appended to `x-forwarded-for`. */
  clientIp: string;
  /** Scheme the client used; `x-forwarded-proto`. Default `https`. */
  proto?: "https" | "http";
  /** Host (or `:authority`) the client asked for; `x-forwarded-host`. */
  host: string;
  /** Header that carries the identity token; always stripped from the inbound request. */
  identityHeader?: string;
  /** Gateway-signed identity token for this request (see `createIdentityTokenSigner`). */
  identityToken?: string;
  /** More inbound headers to strip, matched by `normalizeFieldName` (any case, `_` as `-`), e.g. `x-user`. */
  stripHeaders?: readonly string[];
  /** Largest request body passed on, in bytes. */
  maxBodyBytes: number;
  /** Trace context to send; by default the caller's valid `traceparent`, else a new one. */
  traceContext?: TraceContext;
  /**
   * Abort when the upstream's response body stays silent this long. Off by default: it costs a
   * stream transform per response (about half the proxy's throughput under Bun), and the
   * listener's idle timeout (`Bun.serve({ idleTimeout })`, on by default) already closes a
   * client connection whose response stalls, which cancels the upstream body.
   */
  responseIdleTimeoutMs?: number;
  /** `append` (default) keeps the caller's `x-forwarded-for` chain; `replace` starts it at `clientIp`. */
  forwardedFor?: "append" | "replace";
  /**
   * `fetch` (default): the runtime's fetch. `pool` (Bun only; other runtimes use fetch): requests
   * go over a keep-alive HTTP/1.1 pool on the event loop (forward-http1.ts), bodies streamed, TLS
   * verified as fetch verifies it, skipping the hop to fetch's client thread. Config:
   * `upstreams.NAME.client`.
   */
  client?: "fetch" | "pool";
}

// RFC 9110 §7.6.1: connection-specific fields never travel past one hop. `proxy-authorization`
// is meant for a proxy and must not leak upstream; `expect` was answered by our own listener.
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];
const HOP_BY_HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP);
// Method-override headers would let an upstream framework perform another method than the one
// the policy judged (a GET judged as `read_*` and run as DELETE); the judged method is the method.
const REQUEST_ONLY_STRIP = [
  "host", "proxy-authorization", "expect", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
  "x-http-method-override", "x-http-method", "x-method-override",
];

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** The field names a `Connection` value lists (lower case), added to `into`; null when none. */
function listedInConnection(value: string | null, into: Set<string> | null = null): Set<string> | null {
  if (value === null) return into;
  for (const token of value.split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "") (into ??= new Set()).add(name);
  }
  return into;
}

/** Deletes the hop-by-hop fields and every field named in `Connection` (RFC 9110 §7.6.1). */
export function stripHopByHopHeaders(headers: Headers): void {
  const listed = listedInConnection(headers.get("connection"));
  if (listed !== null) for (const name of listed) headers.delete(name);
  for (const name of HOP_BY_HOP) headers.delete(name);
}

const upstreamBases = new Map<string, { origin: string; prefix: string }>();

function upstreamBase(url: string): { origin: string; prefix: string } {
  let base = upstreamBases.get(url);
  if (!base) {
    const parsed = new URL(url);
    base = { origin: parsed.origin, prefix: parsed.pathname.replace(/\/+$/, "") };
    if (upstreamBases.size > 1024) upstreamBases.clear();
    upstreamBases.set(url, base);
  }
  return base;
}

/**
 * The key of the HTTP/1.1 pool (forward-http1.ts) that carries requests to `upstream` with this
 * `client` (its origin, with its `ca` file, `server_name` and client `cert` when set), or null when fetch carries them
 * (`client: "fetch"`, or not Bun).
 */
export function poolOriginOf(upstream: Pick<UpstreamConfig, "url" | "caFile" | "serverName" | "clientCertFile">, client: ForwardOptions["client"]): string | null {
  if (client !== "pool" || !isBun) return null;
  return http1PoolKey(upstreamBase(upstream.url).origin, upstream.caFile, upstream.serverName, upstream.clientCertFile);
}

const tlsOfUpstream = new WeakMap<UpstreamConfig, UpstreamTls | null>();

/** The upstream's own TLS settings (made once per upstream config), null when it has none. */
function upstreamTlsOf(upstream: UpstreamConfig): UpstreamTls | null {
  let tls = tlsOfUpstream.get(upstream);
  if (tls === undefined) {
    const { caPem = null, serverName = null, clientCertPem = null, clientKeyPem = null } = upstream;
    tls = caPem === null && serverName === null && clientCertPem === null ? null : { ca: caPem, serverName, cert: clientCertPem, key: clientKeyPem };
    tlsOfUpstream.set(upstream, tls);
  }
  return tls;
}

/** Upstream URL for a normalised path: the upstream's origin and path prefix, then `path` and `?query`. */
export function upstreamTarget(upstream: Pick<UpstreamConfig, "url">, path: string, query: string): string {
  const { origin, prefix } = upstreamBase(upstream.url);
  return origin + prefix + path + (query === "" ? "" : "?" + query);
}

// Characters the WHATWG URL parser leaves as they are in a path and in a query of an http(s) URL
// (no percent-encode set member, no `\\`, no `#`); with no dot segments left (the normaliser
// removed them) such a target needs no parse to know it reaches the upstream unchanged.
const URL_STABLE_PATH = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@%/]*$/;
const URL_STABLE_QUERY = /^[A-Za-z0-9\-._~!$&()*+,;=:@%/?]*$/;
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)|%2e/i;

/**
 * Whether `target` (from `upstreamTarget`) sends exactly `path` and `query` to the upstream: the
 * common target is checked by its characters alone, anything else by parsing it as fetch will.
 */
function forwardsAsJudged(upstream: Pick<UpstreamConfig, "url">, target: string, path: string, query: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false;
  if (URL_STABLE_PATH.test(path) && !DOT_SEGMENT.test(path) && (query === "" || URL_STABLE_QUERY.test(query))) return true;
  let url: URL;
  try { url = new URL(target); } catch { return false; }
  return url.pathname === upstreamBase(upstream.url).prefix + path && url.search === (query === "" ? "" : "?" + query);
}

function bodyTooLarge(maxBodyBytes: number): GatewayError {
  return new GatewayError("REQUEST_BODY_TOO_LARGE", `request body larger than ${maxBodyBytes} bytes`, { maxBodyBytes });
}

/** Passes chunks on while counting them; errors (and aborts the upstream call) past `maxBytes`. */
function limitBody(body: ReadableStream<Uint8Array>, maxBytes: number, cancel: (reason: unknown) => void): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > maxBytes) {
        const error = bodyTooLarge(maxBytes);
        cancel(error);
        controller.error(error);
        return;
      }
      controller.enqueue(chunk);
    },
  }));
}

/**
 * Aborts the upstream call when its response body stays silent for `idleMs`, so a stalled
 * upstream cannot hold a client connection forever. One timer per response, not per chunk.
 */
function watchResponseBody(body: ReadableStream<Uint8Array>, idleMs: number, cancel: (reason: unknown) => void): ReadableStream<Uint8Array> {
  let lastChunk = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    const idle = performance.now() - lastChunk;
    if (idle >= idleMs) cancel(new GatewayError("UPSTREAM_TIMEOUT", "upstream response body stalled"));
    else arm(idleMs - idle);
  };
  const arm = (ms: number) => {
    timer = setTimeout(check, ms);
    (timer as { unref?: () => void }).unref?.();
  };
  arm(idleMs);
  return body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      lastChunk = performance.now();
      controller.enqueue(chunk);
    },
    flush() { clearTimeout(timer); },
  }));
}

/** Inbound fields never passed on as they came: hop-by-hop, request-only, and the ones set below. */
const NOT_PASSED_ON: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...REQUEST_ONLY_STRIP, "x-forwarded-for", "x-request-id", "traceparent", "tracestate", "accept-encoding"]);
const normalizedSets = new WeakMap<readonly string[], ReadonlySet<string>>();
// The identity header's name as sent (lower case) and as matched (`normalizeFieldName`): one
// configured name, so both are worked out once, not per request.
const identityNames = new Map<string, { lower: string; key: string }>();

function fieldNames(name: string): { lower: string; key: string } {
  let names = identityNames.get(name);
  if (names === undefined) {
    names = { lower: name.toLowerCase(), key: normalizeFieldName(name) };
    if (identityNames.size >= 64) identityNames.clear();
    identityNames.set(name, names);
  }
  return names;
}

function normalizedSet(names: readonly string[] | undefined): ReadonlySet<string> | null {
  if (names === undefined || names.length === 0) return null;
  let set = normalizedSets.get(names);
  if (!set) normalizedSets.set(names, (set = new Set(names.map(normalizeFieldName))));
  return set;
}

/**
 * The upstream request's fields, built in one pass over the inbound ones (one native iteration
 * instead of a copy and a delete per stripped name): as name/value pairs, which fetch takes as is.
 */
function buildUpstreamHeaders(request: Request, options: ForwardOptions, trace: TraceContext): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const listed = listedInConnection(request.headers.get("connection"));
  const extra = normalizedSet(options.stripHeaders);
  const identityHeader = options.identityHeader === undefined ? undefined : fieldNames(options.identityHeader);
  const identityKey = identityHeader === undefined ? undefined : identityHeader.key;
  let priorChain: string | null = null;
  let acceptEncoding: string | null = null;
  for (const pair of request.headers) {
    const sent = pair[0];
    // Fetch's Headers are lower case already; only a name with `_` needs another reading.
    const name = sent.includes("_") ? sent.replaceAll("_", "-") : sent;
    if (NOT_PASSED_ON.has(name)) {
      // Only the fields themselves carry a chain or a preference; `X_Forwarded_For` is dropped.
      if (sent === "x-forwarded-for") priorChain = pair[1];
      else if (sent === "accept-encoding") acceptEncoding = pair[1];
      continue;
    }
    if (name === identityKey || (extra !== null && extra.has(name)) || (listed !== null && listed.has(sent))) continue;
    out.push(pair);
  }
  if (identityHeader !== undefined && options.identityToken !== undefined) out.push([identityHeader.lower, options.identityToken]);
  if (listed?.has("x-forwarded-for") || options.forwardedFor === "replace") priorChain = null;
  out.push(["x-forwarded-for", priorChain ? `${priorChain}, ${options.clientIp}` : options.clientIp]);
  out.push(["x-forwarded-proto", options.proto ?? "https"]);
  out.push(["x-forwarded-host", options.host]);
  out.push(["x-request-id", options.requestId]);
  out.push(["traceparent", trace.traceparent]);
  if (trace.tracestate !== null) out.push(["tracestate", trace.tracestate]);
  // Bun's fetch asks for gzip/br/zstd when no Accept-Encoding is set, and Deno's fetch decodes
  // what it asked for; asking for `identity` keeps the upstream from encoding for a client that
  // did not ask (Bun) and keeps bytes untouched end to end (Deno, which cannot turn decoding off).
  const listedEncoding = listed?.has("accept-encoding") ?? false;
  out.push(["accept-encoding", isDeno || acceptEncoding === null || listedEncoding ? "identity" : acceptEncoding]);
  return out;
}

/** `owned`: the headers object is ours to change (fetch's response), so it is not copied. */
function buildClientHeaders(upstreamHeaders: Headers, requestId: string, owned = false): Headers {
  const headers = owned ? upstreamHeaders : new Headers(upstreamHeaders);
  stripHopByHopHeaders(headers);
  // Deno's fetch decodes zstd even when `identity` was asked for; the body is then plain.
  if (isDeno && headers.get("content-encoding")?.trim().toLowerCase() === "zstd") {
    headers.delete("content-encoding");
    headers.delete("content-length");
  }
  headers.set("x-request-id", requestId);
  return headers;
}

/**
 * The client's response from the pool's answer: its fields (lower-case pairs) without the
 * hop-by-hop ones and those named in `Connection` (RFC 9110 §7.6.1), with this request's
 * `x-request-id`. The fields are appended to the new response's own headers: Bun builds a
 * response with an init of pairs through a second, slower path (a `Headers` made from the list).
 */
function clientResponseOf(answer: Http1Response, body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null, requestId: string): Response {
  const fields = answer.headers;
  let listed: Set<string> | null = null;
  for (let i = 0; i < fields.length; i++) if (fields[i]![0] === "connection") listed = listedInConnection(fields[i]![1], listed);
  const response = new Response(body, { status: answer.status, statusText: answer.statusText });
  const headers = response.headers;
  for (let i = 0; i < fields.length; i++) {
    const [name, value] = fields[i]!;
    if (HOP_BY_HOP_SET.has(name) || name === "x-request-id" || (listed !== null && listed.has(name))) continue;
    headers.append(name, value);
  }
  headers.set("x-request-id", requestId);
  return response;
}

/**
 * Forwards `request` to `options.upstream` at the normalised `path` and `query` and streams the
 * answer back. Hop-by-hop headers, `Host`, the identity header and `stripHeaders` are removed;
 * the identity token, `x-forwarded-*`, `x-request-id` and `traceparent` are set.
 *
 * Never throws and never hangs: failures become RFC 9457 problem responses —
 * 413 `REQUEST_BODY_TOO_LARGE`, 502 `UPSTREAM_UNAVAILABLE`, 504 `UPSTREAM_TIMEOUT`
 * (no response headers within `upstream.timeoutMs`; a body silent for `responseIdleTimeoutMs`
 * is cut off),
 * 499 `CLIENT_CLOSED_REQUEST`.
 *
 * @example
 * const target = normalizeRequestPath(rawTarget);
 * if (target.ok) return forwardToUpstream(request, { upstream, path: target.path, query: target.query,
 *   requestId, clientIp, host, identityHeader: "x-dutygate-identity", identityToken, maxBodyBytes: 10 << 20 });
 */
export async function forwardToUpstream(request: Request, options: ForwardOptions): Promise<Response> {
  const { upstream, requestId, maxBodyBytes } = options;

  const declaredLength = request.headers.get("content-length");
  if (declaredLength !== null && Number(declaredLength) > maxBodyBytes) {
    return problemOf(413, "REQUEST_BODY_TOO_LARGE", `request body larger than ${maxBodyBytes} bytes`, requestId);
  }

  const target = upstreamTarget(upstream, options.path, options.query);
  // The invariant this module exists for: what the upstream receives is what was judged.
  if (!forwardsAsJudged(upstream, target, options.path, options.query)) {
    return problemOf(500, "PATH_FORWARD_MISMATCH", "the forwarded path would differ from the judged path", requestId);
  }
  // Nothing is sent for a client already gone: the upstream would perform a request whose answer
  // has nowhere to go (a request pipelined on Bun.serve, whose connection the runtime closed, or a
  // client that left while it was judged), and the client could not know it was performed.
  // The config refuses `ca` and `server_name` outside Bun (CONFIG_UNSUPPORTED_RUNTIME) and reads `ca` at load; an
  // upstream built otherwise (no certificates read, another runtime) fails closed rather than be
  // reached with the runtime's roots.
  if (upstream.caFile && (!upstream.caPem || !isBun)) return problemOf(502, "UPSTREAM_UNAVAILABLE", `upstream \`${upstream.name}\` has a \`ca\` that was not read or that this runtime cannot trust alone`, requestId);
  if (upstream.serverName && !isBun) return problemOf(502, "UPSTREAM_UNAVAILABLE", `upstream \`${upstream.name}\` has a \`server_name\` this runtime cannot send`, requestId);
  if (upstream.clientCertFile && (!upstream.clientCertPem || !upstream.clientKeyPem || !isBun)) return problemOf(502, "UPSTREAM_UNAVAILABLE", `upstream \`${upstream.name}\` has a client \`cert\` that was not read or that this runtime cannot present`, requestId);
  if (request.signal.aborted) return problemOf(499, "CLIENT_CLOSED_REQUEST", "client closed the request before it was forwarded", requestId);

  const trace = options.traceContext ?? traceContextFor(request.headers);
  const headers = buildUpstreamHeaders(request, options, trace);
  // The pool (forward-http1.ts) is cancelled through its own light handle and counts the body
  // against the limit as it sends it; fetch gets an AbortController and a counting stream.
  const poolOrigin = poolOriginOf(upstream, options.client);
  const call = new UpstreamCall(request, upstream, poolOrigin !== null);
  const inbound = request.body;
  const body = inbound === null || poolOrigin !== null ? null : limitBody(inbound, maxBodyBytes, (reason) => call.cancel(reason));

  // The deadline for the response head and the client-gone watch ride on the shared sweep
  // (inflight.ts): a call answered before the next sweep costs no timer and no abort listener.
  watchInflight(call);
  let upstreamResponse: Response | Http1Response;
  try {
    if (poolOrigin !== null) {
      upstreamResponse = await http1PoolFor(upstreamBase(upstream.url).origin, poolOrigin, upstreamTlsOf(upstream)).request({
        method: request.method, target: upstreamBase(upstream.url).prefix + options.path + (options.query === "" ? "" : "?" + options.query),
        headers, abort: call.poolAbort!, connectTimeoutMs: upstream.connectTimeoutMs,
        body: inbound, bodyLength: inbound === null ? undefined : declaredContentLength(declaredLength), maxBodyBytes,
      });
    } else {
      const init: RequestInit & { duplex?: "half"; decompress?: boolean } = {
        method: request.method,
        headers,
        redirect: "manual",
        signal: call.abort!.signal,
      };
      if (body !== null) { init.body = body; init.duplex = "half"; }
      // Bun decodes gzip/br by default; the client must get the upstream's bytes untouched.
      if (isBun) init.decompress = false;
      // The same TLS options as the pool's (Bun's fetch takes them as `tls`).
      const tls = upstreamTlsOf(upstream);
      if (tls !== null) (init as { tls?: object }).tls = bunTlsOptions(tls);
      upstreamResponse = await fetch(target, init);
    }
  } catch (error) {
    const reason = call.abortReason !== undefined ? call.abortReason : error;
    if (reason instanceof GatewayError) {
      if (reason.code === "REQUEST_BODY_TOO_LARGE") return problemOf(413, reason.code, reason.message, requestId);
      if (reason.code === "UPSTREAM_TIMEOUT") return problemOf(504, reason.code, reason.message, requestId);
      if (reason.code === "CLIENT_CLOSED_REQUEST") return problemOf(499, reason.code, reason.message, requestId);
      if (reason.code === "UPSTREAM_BAD_RESPONSE") return problemOf(502, reason.code, `upstream \`${upstream.name}\` sent a malformed response`, requestId);
      if (reason.code === "UPSTREAM_BAD_REQUEST") return problemOf(500, reason.code, "a header for the upstream holds CR, LF or NUL", requestId);
    }
    return problemOf(502, "UPSTREAM_UNAVAILABLE", `upstream \`${upstream.name}\` is unavailable`, requestId);
  } finally {
    settleInflight(call);
    // From here a client that goes away cancels the response stream, which cancels the upstream body.
    call.stopWatchingClient();
  }

  // RFC 9110 §15: a status is three digits, 1xx–5xx; a final answer from a proxy is 2xx–5xx.
  if (upstreamResponse.status < 200 || upstreamResponse.status > 599) {
    if (upstreamResponse.body !== null && !(upstreamResponse.body instanceof Uint8Array)) void upstreamResponse.body.cancel().catch(() => {});
    return problemOf(502, "UPSTREAM_BAD_RESPONSE", `upstream \`${upstream.name}\` sent a malformed response`, requestId);
  }
  const idleMs = options.responseIdleTimeoutMs;
  if (upstreamResponse instanceof Response && isBun && idleMs === undefined) {
    // Bun's fetch answers with mutable headers: strip and stamp them in place and hand the
    // response itself back, so its body goes to the client on the runtime's own path instead
    // of through a second Response wrapping a stream.
    buildClientHeaders(upstreamResponse.headers, requestId, true);
    return upstreamResponse;
  }
  if (!(upstreamResponse instanceof Response)) {
    // The pool's answer: its fields are pairs, filtered here into the client's response. Whole
    // bytes have nothing left to stall on.
    const pooledBody = upstreamResponse.body;
    const watched = pooledBody === null || pooledBody instanceof Uint8Array || idleMs === undefined ? pooledBody : watchResponseBody(pooledBody, idleMs, (reason) => call.cancel(reason));
    return clientResponseOf(upstreamResponse, watched, requestId);
  }
  const responseHeaders = buildClientHeaders(upstreamResponse.headers, requestId);
  const responseBody = upstreamResponse.body === null || idleMs === undefined ? upstreamResponse.body : watchResponseBody(upstreamResponse.body, idleMs, (reason) => call.cancel(reason));
  return new Response(responseBody, { status: upstreamResponse.status, statusText: upstreamResponse.statusText, headers: responseHeaders });
}

/** A declared `Content-Length` as a number; null (the body goes chunked) when absent or not one plain length. */
function declaredContentLength(value: string | null): number | null {
  if (value === null || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

function problemOf(status: number, code: ErrorCode, detail: string, requestId: string): Response {
  return problemResponse({ status, code, detail, requestId });
}

/**
 * One upstream call's cancellation and watches as one object (no closures per request): the
 * first reason to stop it wins (deadline, client gone, body too large, stalled body), and it
 * aborts the pool's exchange or fetch with that reason. It is the inflight sweep's entry and,
 * once the call is slow, the listener on the client's abort signal.
 */
class UpstreamCall implements InflightCall {
  readonly deadline: number;
  slow?: boolean;
  abortReason: unknown = undefined;
  readonly poolAbort: Http1Abort | null;
  readonly abort: AbortController | null;
  #watchingClient = false;

  constructor(readonly request: Request, readonly upstream: UpstreamConfig, pooled: boolean) {
    this.deadline = performance.now() + upstream.timeoutMs;
    this.poolAbort = pooled ? new Http1Abort() : null;
    this.abort = pooled ? null : new AbortController();
  }

  cancel(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    if (this.poolAbort !== null) this.poolAbort.abort(reason);
    else this.abort!.abort(reason);
  }

  onDeadline(): void {
    this.cancel(new GatewayError("UPSTREAM_TIMEOUT", `upstream \`${this.upstream.name}\` sent no response within ${this.upstream.timeoutMs} ms`));
  }

  onSlow(): void {
    const signal = this.request.signal;
    if (signal.aborted) this.handleEvent();
    else { signal.addEventListener("abort", this, { once: true }); this.#watchingClient = true; }
  }

  /** The client's request was aborted (an `EventListener` object, so no closure is made for it). */
  handleEvent(): void {
    this.cancel(new GatewayError("CLIENT_CLOSED_REQUEST", "client closed the request"));
  }

  stopWatchingClient(): void {
    if (this.#watchingClient) this.request.signal.removeEventListener("abort", this);
  }
}
