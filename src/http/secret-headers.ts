// The one list of request headers that carry credentials. The audit log never copies them
// (whatever `audit.header_allowlist` says), and the config refuses them in
// `audit.header_allowlist` and as the identity-token header.

/** Header names (lower case) that carry credentials: RFC 9110 §11.6.2, §11.7.2; RFC 6265 §4. */
export const SECRET_HEADERS: ReadonlySet<string> = new Set(["authorization", "cookie", "proxy-authorization", "set-cookie"]);

