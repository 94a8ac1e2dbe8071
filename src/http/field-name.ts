// Header field names as the servers behind the gateway read them.

/**
 * A field name as an upstream may read it: lower case, `_` as `-`. CGI (RFC 3875 §4.1.18) and WSGI
 * servers present `X_Forwarded_User` and `X-Forwarded-User` both as `HTTP_X_FORWARDED_USER`, so
 * the gateway strips or keeps a field by this name, never by its spelling.
 *
 * @example normalizeFieldName("X_HTTP_Method_Override") // "x-http-method-override"
 */
export function normalizeFieldName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes("_") ? lower.replaceAll("_", "-") : lower;
}
