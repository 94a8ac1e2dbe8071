// What the gateway reads from a request before it asks who is calling: the host the client asked
// for, the normalised path and query, the client's address, and the inputs the policy may read.
// A request that fails one of these checks is refused here, with a stable code, before any
// authentication or decision; nothing in this module knows the policy or the caller.
import { parseIp, type IpValue } from "../../dsl/mod.ts";
import type { ErrorCode } from "../error-codes.ts";
import { methodOverrideParameter, normalizeRequestPath, requestTargetOf } from "../http/mod.ts";

/** What the later stages read of a request that passed the checks. */
export interface RequestContext {
  /** The Host (or `:authority`) the client asked for, checked against the URL the listener built. */
  host: string;
  /** The normalised path the policy judges and the upstream receives. */
  path: string;
  /** The query as forwarded (validated; see normalizeRequestPath). */
  query: string;
}

/** A request refused before authentication: the problem to answer and the record to write. */
export interface RequestRefusal {
  status: number;
  code: ErrorCode;
  message: string;
  /** The normalised path when the refusal came after normalisation, else null. */
  path: string | null;
}

/**
 * Checks a request in the order the gateway answers them: the Host, the request-target, a
 * `_method` override in the query, then a declared body length over `maxBodyBytes`.
 *
 * @example
 * const r = readRequestContext(request, config.maxBodyBytes);
 * if ("code" in r) return problemResponse({ status: r.status, code: r.code, detail: r.message, requestId });
 */
export function readRequestContext(request: Request, maxBodyBytes: number): RequestContext | RequestRefusal {
  const host = requestedHost(request);
  if (host === null) return { status: 400, code: "REQUEST_BAD_HOST", message: "the host header is malformed or names another host than the request-target", path: null };
  const target = normalizeRequestPath(requestTargetOf(request));
  if (!target.ok) return { status: target.status, code: target.code, message: target.message, path: null };
  // Symfony, Laravel and Rack read `_method` (in any spelling they decode or mangle to it) as
  // the method: the upstream would run another method than the one the policy judged.
  const override = methodOverrideParameter(target.query);
  if (override !== null) {
    return { status: 400, code: "METHOD_OVERRIDE_REFUSED", message: `the query parameter \`${shown(override)}\` is read as \`_method\` and would override the judged method; it is refused`, path: target.path };
  }
  // A declared length over the limit is refused before anything else (RFC 9110 §15.5.14);
  // a chunked body is cut off at the limit while it is forwarded.
  const declaredLength = request.headers.get("content-length");
  if (declaredLength !== null && Number(declaredLength) > maxBodyBytes) {
    return { status: 413, code: "REQUEST_BODY_TOO_LARGE", message: `request body larger than ${maxBodyBytes} bytes`, path: target.path };
  }
  return { host, path: target.path, query: target.query };
}

/** Only the headers the policy's conditions read: the policy cannot see the others. */
export function policyHeaders(headers: Headers, names: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of names) {
    const value = headers.get(name);
    if (value !== null) out[name] = value;
  }
  return out;
}

/** The first value of each query parameter (what the policy reads; see ambiguousQueryParameter). */
export function policyQuery(query: string): Record<string, string> {
  if (query === "") return {};
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(query)) if (!(k in out)) out[k] = v;
  return out;
}

const UNSPECIFIED_IP = parseIp("0.0.0.0")!;

/** Client addresses parsed before (bounded); an `IpValue` is never changed once made. */
const PARSED_IPS = new Map<string, IpValue>();

/** The client's address as the policy reads it (`0.0.0.0` for one that does not parse). */
export function clientIp(remoteAddress: string): IpValue {
  let ip = PARSED_IPS.get(remoteAddress);
  if (ip === undefined) {
    ip = parseIp(remoteAddress) ?? UNSPECIFIED_IP;
    if (PARSED_IPS.size >= 4096) PARSED_IPS.clear();
    PARSED_IPS.set(remoteAddress, ip);
  }
  return ip;
}

// RFC 9110 §7.2 / RFC 3986 §3.2.2: a DNS name or IP literal and an optional port. Anything else
// (`/`, `?`, `#`, `@`, `\`) would let the Host header reshape the URL a listener builds from it.
const HOST_SYNTAX = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+)(?::[0-9]{1,5})?$/;

/**
 * The authority of an absolute URL string, without parsing the rest of it; "" for a URL that is
 * not absolute (Bun.serve's URL of an HTTP/1.0 request without Host is its target alone).
 */
function authorityOf(url: string): string {
  const scheme = url.indexOf("://");
  if (scheme <= 0 || url.indexOf("/") !== scheme + 1) return "";
  const start = scheme + 3;
  let end = url.length;
  for (const c of "/?#") {
    const i = url.indexOf(c, start);
    if (i >= 0 && i < end) end = i;
  }
  return url.slice(start, end);
}

function hostnameOf(authority: string): string {
  const lower = authority.toLowerCase();
  if (lower.startsWith("[")) return lower.slice(0, lower.indexOf("]") + 1);
  const colon = lower.lastIndexOf(":");
  return colon < 0 ? lower : lower.slice(0, colon);
}

/**
 * The host the client asked for, or null when the Host header is malformed or names another host
 * than the request-target (absolute-form) or `:authority` (HTTP/2) the listener built the URL from
 * (RFC 9113 §8.3.1: such a request is malformed).
 */
export function requestedHost(request: Request): string | null {
  const host = request.headers.get("host");
  const authority = authorityOf(request.url);
  // The common case: the listener built the URL from this very Host header.
  if (host === authority && KNOWN_GOOD_HOSTS.has(host)) return host;
  if (host === null) return HOST_SYNTAX.test(authority) ? authority : null;
  const ok = HOST_SYNTAX.test(host) && hostnameOf(host) === hostnameOf(authority);
  if (ok && host === authority) remember(KNOWN_GOOD_HOSTS, host);
  return ok ? host : null;
}

/** Host values already found well-formed (bounded: a client may send many). */
const KNOWN_GOOD_HOSTS = new Set<string>();

function remember(set: Set<string>, value: string): void {
  if (set.size >= 1024) set.clear();
  set.add(value);
}

/** User input shown in a problem detail: control characters and backticks masked, cut at 64 characters. */
function shown(text: string): string {
  const masked = text.replace(/[\u0000-\u001f\u007f`]/g, "?");
  return masked.length > 64 ? masked.slice(0, 64) + "…" : masked;
}
