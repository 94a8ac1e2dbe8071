// Authentication: who is calling. Produces a typed `Principal`; knows nothing of policy decisions.
export { createJwtAuthenticator, SUPPORTED_ALGORITHMS } from "./jwt.ts";
export type { JwtAuthenticator, JwtAuthenticatorOptions, AuthnResult, AuthnSuccess, AuthnStats } from "./jwt.ts";
export { parseBearerToken, wwwAuthenticate, AUTHN_REALM, MAX_TOKEN_LENGTH } from "./bearer.ts";
export { AUTHN_HTTP_STATUS } from "./errors.ts";
export type { AuthnErrorCode, AuthnFailure } from "./errors.ts";
export { mapClaimsToPrincipal, readClaim } from "./claims.ts";
export { isRefusal } from "./credential.ts";
export type { AuthnOutcome, AuthnRefusal, Caller, Credential } from "./credential.ts";
export { bearerCredential } from "./bearer-credential.ts";
export { certificateCredential } from "./certificate-credential.ts";
