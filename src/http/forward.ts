// Streaming reverse proxy to one upstream over fetch: the request body flows to the upstream
// and the response body flows back without being buffered, both under a byte or time limit.
import type { UpstreamConfig } from "../config/types.ts";
import { GatewayError } from "../errors.ts";
import { http1PoolFor } from "./forward-http1.ts";
import type { Http1Response } from "./forward-http1.ts";
import { problemResponse } from "./problem.ts";
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
  /** More inbound headers to strip (lower or mixed case), e.g. `x-user`, `x-roles`. */
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
   * `fetch` (default): the runtime's fetch. `pool` (Bun only; other runtimes use fetch): body-less
   * requests to `http:` upstreams go over a keep-alive HTTP/1.1 pool on the event loop
   * (forward-http1.ts), skipping the hop to fetch's client thread; requests with a body and
   * `https:` upstreams still use fetch. Opt-in: measured at parity in CPU per request with fetch
   * when the gateway has one core (docs/performance.md).
   */
  client?: "fetch" | "pool";
}

// RFC 9110 §7.6.1: connection-specific fields never travel past one hop. `proxy-authorization`
// is meant for a proxy and must not leak upstream; `expect` was answered by our own listener.
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];
// Method-override headers would let an upstream framework perform another method than the one
// the policy judged (a GET judged as `read_*` and run as DELETE); the judged method is the method.
const REQUEST_ONLY_STRIP = [
  "host", "proxy-authorization", "expect", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
  "x-http-method-override", "x-http-method", "x-method-override",
];

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** Deletes the hop-by-hop fields and every field named in `Connection` (RFC 9110 §7.6.1). */
export function stripHopByHopHeaders(headers: Headers): void {
  const connection = headers.get("connection");
  if (connection !== null) {
    for (const token of connection.split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "") headers.delete(name);
    }
  }
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

/** Upstream URL for a normalised path: the upstream's origin and path prefix, then `path` and `?query`. */
export function upstreamTarget(upstream: Pick<UpstreamConfig, "url">, path: string, query: string): string {
  const { origin, prefix } = upstreamBase(upstream.url);
  return origin + prefix + path + (query === "" ? "" : "?" + query);
}

function bodyTooLarge(maxBodyBytes: number): GatewayError {
  return new GatewayError("REQUEST_BODY_TOO_LARGE", `request body larger than ${maxBodyBytes} bytes`, { maxBodyBytes });
}

/** Passes chunks on while counting them; errors (and aborts the upstream call) past `maxBytes`. */
function limitBody(body: ReadableStream<Uint8Array>, maxBytes: number, abort: AbortController): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > maxBytes) {
        const error = bodyTooLarge(maxBytes);
        abort.abort(error);
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
function watchResponseBody(body: ReadableStream<Uint8Array>, idleMs: number, abort: AbortController): ReadableStream<Uint8Array> {
  let lastChunk = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    const idle = performance.now() - lastChunk;
    if (idle >= idleMs) abort.abort(new GatewayError("UPSTREAM_TIMEOUT", "upstream response body stalled"));
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

function buildUpstreamHeaders(request: Request, options: ForwardOptions, trace: TraceContext): Headers {
  const headers = new Headers(request.headers);
  stripHopByHopHeaders(headers);
  for (const name of REQUEST_ONLY_STRIP) headers.delete(name);
  if (options.stripHeaders) for (const name of options.stripHeaders) headers.delete(name);
  if (options.identityHeader) {
    headers.delete(options.identityHeader);
    if (options.identityToken !== undefined) headers.set(options.identityHeader, options.identityToken);
  }
  const priorChain = options.forwardedFor === "replace" ? null : headers.get("x-forwarded-for");
  headers.set("x-forwarded-for", priorChain ? `${priorChain}, ${options.clientIp}` : options.clientIp);
  headers.set("x-forwarded-proto", options.proto ?? "https");
  headers.set("x-forwarded-host", options.host);
  headers.set("x-request-id", options.requestId);
  headers.set("traceparent", trace.traceparent);
  if (trace.tracestate !== null) headers.set("tracestate", trace.tracestate);
  else headers.delete("tracestate");
  // Bun's fetch asks for gzip/br/zstd when no Accept-Encoding is set, and Deno's fetch decodes
  // what it asked for; asking for `identity` keeps the upstream from encoding for a client that
  // did not ask (Bun) and keeps bytes untouched end to end (Deno, which cannot turn decoding off).
  if (isDeno || !headers.has("accept-encoding")) headers.set("accept-encoding", "identity");
  return headers;
}

/** `owned`: the headers object is ours to change (the pool's), so it is not copied. */
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
  const problem = (status: number, code: string, detail: string) => problemResponse({ status, code, detail, requestId });

  const declaredLength = request.headers.get("content-length");
  if (declaredLength !== null && Number(declaredLength) > maxBodyBytes) {
    return problem(413, "REQUEST_BODY_TOO_LARGE", `request body larger than ${maxBodyBytes} bytes`);
  }

  const target = upstreamTarget(upstream, options.path, options.query);
  const url = new URL(target);
  // The invariant this module exists for: what the upstream receives is what was judged.
  if (options.path.charCodeAt(0) !== 0x2f || url.pathname !== upstreamBase(upstream.url).prefix + options.path || url.search !== (options.query === "" ? "" : "?" + options.query)) {
    return problem(500, "PATH_FORWARD_MISMATCH", "the forwarded path would differ from the judged path");
  }

  const abort = new AbortController();
  const onClientGone = () => abort.abort(new GatewayError("CLIENT_CLOSED_REQUEST", "client closed the request"));
  if (request.signal.aborted) onClientGone();
  else request.signal.addEventListener("abort", onClientGone, { once: true });

  const trace = options.traceContext ?? traceContextFor(request.headers);
  const headers = buildUpstreamHeaders(request, options, trace);
  const body = request.body === null ? null : limitBody(request.body, maxBodyBytes, abort);

  const headerDeadline = setTimeout(
    () => abort.abort(new GatewayError("UPSTREAM_TIMEOUT", `upstream \`${upstream.name}\` sent no response within ${upstream.timeoutMs} ms`)),
    upstream.timeoutMs,
  );
  let upstreamResponse: Response | Http1Response;
  try {
    if (options.client === "pool" && isBun && body === null && url.protocol === "http:") {
      upstreamResponse = await http1PoolFor(url).request({
        method: request.method, target: url.pathname + url.search, headers, signal: abort.signal, connectTimeoutMs: upstream.connectTimeoutMs,
      });
    } else {
      const init: RequestInit & { duplex?: "half"; decompress?: boolean } = {
        method: request.method,
        headers,
        redirect: "manual",
        signal: abort.signal,
      };
      if (body !== null) { init.body = body; init.duplex = "half"; }
      // Bun decodes gzip/br by default; the client must get the upstream's bytes untouched.
      if (isBun) init.decompress = false;
      upstreamResponse = await fetch(url, init);
    }
  } catch (error) {
    const reason = abort.signal.aborted ? abort.signal.reason : error;
    if (reason instanceof GatewayError) {
      if (reason.code === "REQUEST_BODY_TOO_LARGE") return problem(413, reason.code, reason.message);
      if (reason.code === "UPSTREAM_TIMEOUT") return problem(504, reason.code, reason.message);
      if (reason.code === "CLIENT_CLOSED_REQUEST") return problem(499, reason.code, reason.message);
      if (reason.code === "UPSTREAM_BAD_RESPONSE") return problem(502, reason.code, `upstream \`${upstream.name}\` sent a malformed response`);
    }
    return problem(502, "UPSTREAM_UNAVAILABLE", `upstream \`${upstream.name}\` is unavailable`);
  } finally {
    clearTimeout(headerDeadline);
    // From here a client that goes away cancels the response stream, which cancels the upstream body.
    request.signal.removeEventListener("abort", onClientGone);
  }

  const pooled = !(upstreamResponse instanceof Response);
  const responseHeaders = buildClientHeaders(upstreamResponse.headers, requestId, pooled);
  const idleMs = options.responseIdleTimeoutMs;
  const upstreamBody = upstreamResponse.body;
  // Whole bytes have nothing left to stall on.
  const responseBody = upstreamBody === null || upstreamBody instanceof Uint8Array || idleMs === undefined ? upstreamBody : watchResponseBody(upstreamBody, idleMs, abort);
  return new Response(responseBody, { status: upstreamResponse.status, statusText: upstreamResponse.statusText, headers: responseHeaders });
}
