// Stable authentication failure codes, their HTTP status, and the mapping from jose's error
// codes (`ERR_JWT_EXPIRED`, …) to ours. Callers and tests match on codes, never on messages.

/** Why a request was not authenticated. */
export type AuthnErrorCode =
  | "AUTHN_MISSING_TOKEN"
  | "AUTHN_MALFORMED_TOKEN"
  | "AUTHN_UNKNOWN_ISSUER"
  | "AUTHN_TOKEN_EXPIRED"
  | "AUTHN_TOKEN_NOT_YET_VALID"
  | "AUTHN_BAD_SIGNATURE"
  | "AUTHN_BAD_AUDIENCE"
  | "AUTHN_BAD_ISSUER"
  | "AUTHN_ALG_NOT_ALLOWED"
  | "AUTHN_UNKNOWN_KEY"
  | "AUTHN_JWKS_UNAVAILABLE"
  | "AUTHN_TOKEN_LIFETIME_TOO_LONG"
  | "AUTHN_MISSING_CLAIM"
  | "AUTHN_BAD_CLAIM";

/**
 * HTTP status for each failure. Every failure is the caller's credential (401, RFC 6750 §3.1)
 * except an unreachable key set, which is the gateway's problem (503): the caller's token may be
 * fine and retrying later can succeed.
 */
export const AUTHN_HTTP_STATUS: Readonly<Record<AuthnErrorCode, 401 | 503>> = {
  AUTHN_MISSING_TOKEN: 401,
  AUTHN_MALFORMED_TOKEN: 401,
  AUTHN_UNKNOWN_ISSUER: 401,
  AUTHN_TOKEN_EXPIRED: 401,
  AUTHN_TOKEN_NOT_YET_VALID: 401,
  AUTHN_BAD_SIGNATURE: 401,
  AUTHN_BAD_AUDIENCE: 401,
  AUTHN_BAD_ISSUER: 401,
  AUTHN_ALG_NOT_ALLOWED: 401,
  AUTHN_UNKNOWN_KEY: 401,
  AUTHN_JWKS_UNAVAILABLE: 503,
  AUTHN_TOKEN_LIFETIME_TOO_LONG: 401,
  AUTHN_MISSING_CLAIM: 401,
  AUTHN_BAD_CLAIM: 401,
};

/** A failed authentication: a stable code and a message safe to show the caller (never the token). */
export interface AuthnFailure {
  ok: false;
  code: AuthnErrorCode;
  message: string;
}

export function authnFailure(code: AuthnErrorCode, message: string): AuthnFailure {
  return { ok: false, code, message };
}

/** jose-style code of {@link KeySetUnavailableError}. */
export const KEY_SET_UNAVAILABLE = "ERR_AUTHN_JWKS_UNAVAILABLE";

/** The key set of an issuer could not be read or fetched; `cause` says why (for logs, not callers). */
export class KeySetUnavailableError extends Error {
  readonly code = KEY_SET_UNAVAILABLE;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeySetUnavailableError";
  }
}

/**
 * Maps an error thrown by jose's `jwtVerify` or a key set to a failure. jose errors carry a stable
 * `code` and, for claim failures, the `claim` that failed. Key-set failures (fetch, TLS, timeouts, an
 * unreadable file) reach here as {@link KeySetUnavailableError}.
 */
export function failureFromJoseError(err: unknown): AuthnFailure {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  const claim = typeof err === "object" && err !== null && "claim" in err ? String((err as { claim: unknown }).claim) : "";
  const reason = typeof err === "object" && err !== null && "reason" in err ? String((err as { reason: unknown }).reason) : "";
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return authnFailure("AUTHN_TOKEN_EXPIRED", "token expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (reason === "missing") return authnFailure("AUTHN_MISSING_CLAIM", `token lacks the required \`${claim}\` claim`);
      if (claim === "nbf") return authnFailure("AUTHN_TOKEN_NOT_YET_VALID", "token is not valid yet (`nbf` is in the future)");
      if (claim === "aud") return authnFailure("AUTHN_BAD_AUDIENCE", "token audience is not accepted");
      if (claim === "iss") return authnFailure("AUTHN_BAD_ISSUER", "token issuer is not accepted");
      return authnFailure("AUTHN_MALFORMED_TOKEN", `token claim \`${claim}\` is invalid`);
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return authnFailure("AUTHN_BAD_SIGNATURE", "token signature does not verify");
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JOSE_NOT_SUPPORTED":
      return authnFailure("AUTHN_ALG_NOT_ALLOWED", "token algorithm is not allowed");
    case "ERR_JWKS_NO_MATCHING_KEY":
      return authnFailure("AUTHN_UNKNOWN_KEY", "no key of the issuer matches the token's `kid` and `alg`");
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return authnFailure("AUTHN_MALFORMED_TOKEN", "token is not a well-formed JWT");
    case KEY_SET_UNAVAILABLE:
      return authnFailure("AUTHN_JWKS_UNAVAILABLE", "the issuer's key set is unavailable");
    default:
      // Fail closed: whatever else went wrong, the token is not accepted.
      return authnFailure("AUTHN_MALFORMED_TOKEN", "token could not be verified");
  }
}
