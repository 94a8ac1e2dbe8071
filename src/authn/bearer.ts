// The Bearer scheme of RFC 6750: reading the token from `Authorization`, and the
// `WWW-Authenticate` challenge sent back with a 401.
import { authnFailure, type AuthnFailure } from "./errors.ts";
import type { ErrorCode } from "../error-codes.ts";

/** Longest accepted token; larger values are refused before any decoding or hashing. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

// A JWS compact serialisation: three base64url segments (RFC 7515 §7.1). The signature segment may
// be empty here so that `alg: none` tokens are reported as a refused algorithm, not as garbage.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Extracts the JWT from an `Authorization: Bearer <token>` value (RFC 6750 §2.1; the scheme is
 * case-insensitive, RFC 9110 §11.1). No header, or another scheme, is `AUTHN_MISSING_TOKEN`: RFC 6750
 * §3.1 treats an unsupported method like no credentials. A bearer value that is not a compact JWS is
 * `AUTHN_MALFORMED_TOKEN`.
 *
 * @example
 * parseBearerToken("Bearer eyJhbGciOi…") // → { ok: true, token: "eyJhbGciOi…" }
 */
export function parseBearerToken(authorization: string | null | undefined): { ok: true; token: string } | AuthnFailure {
  const bearer = bearerValueOf(authorization);
  if (!bearer.ok) return bearer;
  return compactJwsFailure(bearer.token) ?? bearer;
}

/**
 * `parseBearerToken` without the compact-JWS syntax check, for a caller that looks the token up
 * among tokens it verified before (only well-formed ones can be there) and checks the syntax of
 * the others with `compactJwsFailure`. The length is checked here: nothing longer is hashed.
 */
export function bearerValueOf(authorization: string | null | undefined): { ok: true; token: string } | AuthnFailure {
  const value = (authorization ?? "").trim();
  if (value === "") return authnFailure("AUTHN_MISSING_TOKEN", "no bearer token");
  const space = value.indexOf(" ");
  if (!isBearerScheme(value, space)) return authnFailure("AUTHN_MISSING_TOKEN", "no bearer token (authorization scheme is not `Bearer`)");
  const token = space < 0 ? "" : value.slice(space + 1).trimStart();
  if (token === "") return authnFailure("AUTHN_MALFORMED_TOKEN", "bearer token is empty");
  if (token.length > MAX_TOKEN_LENGTH) return authnFailure("AUTHN_MALFORMED_TOKEN", `bearer token is longer than ${MAX_TOKEN_LENGTH} characters`);
  return { ok: true, token };
}

/** Why `token` is not a compact JWS, or null when it is one. */
export function compactJwsFailure(token: string): AuthnFailure | null {
  return COMPACT_JWS.test(token) ? null : authnFailure("AUTHN_MALFORMED_TOKEN", "bearer token is not a compact JWT");
}

/** The scheme before `space` is `Bearer` in any case; the usual spelling without a lowercased copy. */
function isBearerScheme(value: string, space: number): boolean {
  const scheme = space < 0 ? value : value.slice(0, space);
  return scheme === "Bearer" || scheme.toLowerCase() === "bearer";
}

/** The realm named in every challenge. */
export const AUTHN_REALM = "dutygate";

/**
 * The `WWW-Authenticate` value for a failed authentication (RFC 6750 §3). A request without
 * credentials gets a bare challenge with no error code (§3.1: "SHOULD NOT include an error code");
 * every other failure is `error="invalid_token"` with the failure message as `error_description`.
 *
 * @example
 * wwwAuthenticate({ ok: false, code: "AUTHN_TOKEN_EXPIRED", message: "token expired" })
 * // → 'Bearer realm="dutygate", error="invalid_token", error_description="token expired"'
 */
export function wwwAuthenticate(result: { ok: false; code: ErrorCode; message: string }): string {
  if (result.code === "AUTHN_MISSING_TOKEN") return `Bearer realm="${AUTHN_REALM}"`;
  return `Bearer realm="${AUTHN_REALM}", error="invalid_token", error_description="${quotableDescription(result.message)}"`;
}

// RFC 6750 §3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so no quote, no
// backslash, nothing outside printable ASCII.
function quotableDescription(message: string): string {
  return message.replace(/…/g, "...").replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?");
}
