// Request-target normalisation: the gateway judges a request by the path this returns and
// forwards exactly that path, so the upstream can never see a path the policy did not see.
// RFC 3986 §2.3 (unreserved), §2.1 (percent-encoding), §5.2.4 (remove_dot_segments);
// RFC 9112 §3.2.1 (origin-form).

/** Stable codes of a rejected request-target. */
export type PathErrorCode =
  | "PATH_NOT_ORIGIN_FORM"
  | "PATH_TOO_LONG"
  | "PATH_BAD_ENCODING"
  | "PATH_ENCODED_SLASH"
  | "PATH_BACKSLASH"
  | "PATH_NUL"
  | "PATH_CONTROL_CHARACTER"
  | "PATH_BAD_CHARACTER"
  | "PATH_TRAVERSAL"
  | "PATH_PARAMETER"
  | "QUERY_BAD_ENCODING"
  | "QUERY_BAD_CHARACTER";

export type NormalizedTarget =
  | { ok: true; path: string; query: string }
  | { ok: false; code: PathErrorCode; status: 400 | 414; message: string };

export interface NormalizeOptions {
  /** Longest accepted request-target (path and query), in characters. Default 8192. */
  maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 8192;
const HEX = "0123456789ABCDEF";

// Characters allowed verbatim in a path segment besides unreserved (RFC 3986 pchar):
// sub-delims ! $ & ' ( ) * + , ; = and : @.
const PCHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@") PCHAR[c.charCodeAt(0)] = 1;
const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") UNRESERVED[c.charCodeAt(0)] = 1;

// Already canonical: slash-separated segments of pchar without "%" or ";" that neither are empty
// (no "//") nor start with "." (no dot segments, and `.well-known` just takes the slow path).
const CANONICAL_PATH = /^(?:\/[A-Za-z0-9\-_~!$&'()*+,=:@][A-Za-z0-9\-._~!$&'()*+,=:@]*)*\/?$/;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function fail(code: PathErrorCode, message: string, status: 400 | 414 = 400): NormalizedTarget {
  return { ok: false, code, status, message };
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function percentEncodeUtf8(text: string): string {
  let out = "";
  for (const byte of utf8.encode(text)) out += "%" + HEX[byte >> 4] + HEX[byte & 15];
  return out;
}

/** True when the percent-escapes of `canonical` (upper-case, already validated) decode to valid UTF-8. */
function escapesAreUtf8(canonical: string): boolean {
  const bytes: number[] = [];
  for (let i = 0; i < canonical.length; i++) {
    const c = canonical.charCodeAt(i);
    if (c === 37) { bytes.push(hexValue(canonical.charCodeAt(i + 1)) * 16 + hexValue(canonical.charCodeAt(i + 2))); i += 2; }
    else bytes.push(c);
  }
  try { strictUtf8.decode(new Uint8Array(bytes)); return true; } catch { return false; }
}

/**
 * Rewrites the path into its one canonical spelling: unreserved escapes decoded, other
 * escapes upper-cased, characters not allowed in a path percent-encoded as UTF-8.
 * Returns an error result for input that has no safe canonical spelling.
 */
function canonicalizeEscapes(path: string): { ok: true; text: string } | NormalizedTarget {
  let out = "";
  let sawHighByte = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return fail("PATH_BAD_ENCODING", `invalid percent-encoding \`${path.slice(i, i + 3)}\``);
      const v = hi * 16 + lo;
      i += 2;
      if (v === 0) return fail("PATH_NUL", "path contains an encoded NUL byte `%00`");
      if (v < 0x20 || v === 0x7f) return fail("PATH_CONTROL_CHARACTER", `path contains an encoded control character \`%${HEX[hi]}${HEX[lo]}\``);
      // An encoded "/" or "\" would be one segment here and two segments in many upstreams.
      if (v === 0x2f || v === 0x5c) return fail("PATH_ENCODED_SLASH", `path contains an encoded slash \`%${HEX[hi]}${HEX[lo]}\``);
      if (v < 128 && UNRESERVED[v]) out += String.fromCharCode(v);
      else { out += "%" + HEX[hi] + HEX[lo]; if (v >= 128) sawHighByte = true; }
    } else if (c < 0x20 || c === 0x7f) {
      return c === 0 ? fail("PATH_NUL", "path contains a NUL byte") : fail("PATH_CONTROL_CHARACTER", "path contains a control character");
    } else if (c === 0x5c /* \ */) {
      return fail("PATH_BACKSLASH", "path contains a backslash");
    } else if (c === 0x23 /* # */) {
      return fail("PATH_BAD_CHARACTER", "request-target contains a fragment `#`");
    } else if (c < 128) {
      // "/" and pchar stay; other printable ASCII (space " < > ` { } | ^ [ ]) is encoded.
      out += c === 0x2f || PCHAR[c] ? path[i] : "%" + HEX[c >> 4] + HEX[c & 15];
    } else {
      const cp = path.codePointAt(i)!;
      if (cp >= 0xd800 && cp <= 0xdfff) return fail("PATH_BAD_ENCODING", "path contains an unpaired surrogate");
      const ch = String.fromCodePoint(cp);
      out += percentEncodeUtf8(ch);
      i += ch.length - 1;
    }
  }
  // Overlong or truncated UTF-8 (`%C0%AE` read as "." by lax decoders) has no safe meaning.
  if (sawHighByte && !escapesAreUtf8(out)) return fail("PATH_BAD_ENCODING", "percent-encoded bytes are not valid UTF-8");
  return { ok: true, text: out };
}

/** RFC 3986 §5.2.4 plus duplicate-slash collapsing; `..` above the root is rejected, not clamped. */
function removeDotSegments(path: string): { ok: true; text: string } | NormalizedTarget {
  const segments = path.split("/");
  const kept: string[] = [];
  let trailingSlash = false;
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === "" || seg === ".") { if (last) trailingSlash = true; continue; }
    if (seg === "..") {
      if (kept.length === 0) return fail("PATH_TRAVERSAL", "path climbs above the root with `..`");
      kept.pop();
      if (last) trailingSlash = true;
      continue;
    }
    // Some servlet containers read `..;x` as `..` (path parameters): reject it rather than forward it.
    const semicolon = seg.indexOf(";");
    if (semicolon >= 0) {
      const head = seg.slice(0, semicolon);
      if (head === "." || head === "..") return fail("PATH_TRAVERSAL", `dot segment with a path parameter \`${seg}\``);
      // Servlet containers, Spring and Jetty drop `;x` before routing: `/changes/42;x/approve` is
      // `/changes/42/approve` to them but change `42;x` to the policy and its duty ledger, which
      // would let one person both submit and approve change 42. `%3B` stays data and passes.
      return fail("PATH_PARAMETER", `path segment \`${seg}\` carries a path parameter (\`;\`); send \`%3B\` if it is data`);
    }
    kept.push(seg);
    trailingSlash = false;
  }
  if (kept.length === 0) return { ok: true, text: "/" };
  return { ok: true, text: "/" + kept.join("/") + (trailingSlash ? "/" : "") };
}

/**
 * Validates the query and percent-encodes what WHATWG URL parsing would encode anyway
 * (`"`, `'`, `<`, `>`, non-ASCII), so the query forwarded is byte-identical to the one judged.
 */
function canonicalizeQuery(query: string): { ok: true; text: string } | NormalizedTarget {
  let out = "";
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c === 37 /* % */) {
      if (hexValue(query.charCodeAt(i + 1)) < 0 || hexValue(query.charCodeAt(i + 2)) < 0) {
        return fail("QUERY_BAD_ENCODING", `invalid percent-encoding \`${query.slice(i, i + 3)}\` in the query`);
      }
      out += query.slice(i, i + 3);
      i += 2;
    } else if (c <= 0x20 || c === 0x7f || c === 0x23) {
      return fail("QUERY_BAD_CHARACTER", "query contains a control character, space or `#`");
    } else if (c === 0x22 || c === 0x27 || c === 0x3c || c === 0x3e) {
      out += "%" + HEX[c >> 4] + HEX[c & 15];
    } else if (c < 128) {
      out += query[i];
    } else {
      const cp = query.codePointAt(i)!;
      if (cp >= 0xd800 && cp <= 0xdfff) return fail("QUERY_BAD_ENCODING", "query contains an unpaired surrogate");
      const ch = String.fromCodePoint(cp);
      out += percentEncodeUtf8(ch);
      i += ch.length - 1;
    }
  }
  return { ok: true, text: out };
}

/**
 * Normalises a request-target as received (origin-form `path[?query]`, still percent-encoded)
 * into the path the policy judges and the gateway forwards. The query is validated and
 * forwarded as sent (only characters never allowed in a query are percent-encoded).
 *
 * Take the input from the raw request line (`IncomingMessage.url`, HTTP/2 `:path`), not from
 * `new URL(request.url).pathname`: WHATWG URL parsing already removes dot segments, clamps `..`
 * at the root and turns `\` into `/`, hiding exactly what this function is meant to judge.
 *
 * @example
 * normalizeRequestPath("/a/%2e%2e//admin/?x=1") // { ok: true, path: "/admin/", query: "x=1" }
 * normalizeRequestPath("/files/a%2fb")          // { ok: false, code: "PATH_ENCODED_SLASH", status: 400, … }
 */
export function normalizeRequestPath(rawPathAndQuery: string, options: NormalizeOptions = {}): NormalizedTarget {
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  if (rawPathAndQuery.length > maxLength) return fail("PATH_TOO_LONG", `request-target longer than ${maxLength} characters`, 414);
  if (rawPathAndQuery.charCodeAt(0) !== 0x2f) {
    const shown = rawPathAndQuery.length > 40 ? rawPathAndQuery.slice(0, 40) + "…" : rawPathAndQuery;
    return fail("PATH_NOT_ORIGIN_FORM", `request-target \`${shown}\` is not in origin-form (must start with \`/\`)`);
  }
  const q = rawPathAndQuery.indexOf("?");
  const rawPath = q < 0 ? rawPathAndQuery : rawPathAndQuery.slice(0, q);
  const rawQuery = q < 0 ? "" : rawPathAndQuery.slice(q + 1);

  let query = "";
  if (rawQuery !== "") {
    const checked = canonicalizeQuery(rawQuery);
    if (!("text" in checked)) return checked;
    query = checked.text;
  }
  if (CANONICAL_PATH.test(rawPath)) return { ok: true, path: rawPath, query };
  const escaped = canonicalizeEscapes(rawPath);
  if (!("text" in escaped)) return escaped;
  const dotless = removeDotSegments(escaped.text);
  if (!("text" in dotless)) return dotless;
  return { ok: true, path: dotless.text, query };
}

/**
 * The best request-target available from a fetch `Request` alone (path and query of
 * `request.url`). Under `Bun.serve` and `Deno.serve` this URL is already WHATWG-normalised; prefer
 * the raw target from the node:http2 backend where there is one.
 */
export function requestTargetOf(request: Request): string {
  const url = request.url;
  // Bun.serve gives an HTTP/1.0 request without Host its origin-form target alone (`/a/b`), not an
  // absolute URL; reading its first segment as an authority would judge `/b` for `/a/b`.
  const scheme = url.indexOf("://");
  if (scheme <= 0 || url.indexOf("/") !== scheme + 1) return url;
  // Skip "scheme://authority" without a full URL parse.
  const start = url.indexOf("/", scheme + 3);
  return start < 0 ? "/" : url.slice(start);
}
