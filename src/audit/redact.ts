// Which request headers may enter an audit record.

/** Headers that carry credentials: never copied into a record, whatever the allowlist says. */
export const NEVER_LOGGED_HEADERS: ReadonlySet<string> = new Set(["authorization", "cookie", "proxy-authorization", "set-cookie"]);

/**
 * The allow-listed headers of a request, names lower-cased, repeated headers joined with `, `
 * (RFC 9110 §5.3). Credential headers ({@link NEVER_LOGGED_HEADERS}) and any names in
 * `alsoNever` (e.g. the gateway's identity-token header) are dropped even when listed.
 *
 * @example redactHeaders(request.headers, ["user-agent", "x-change-id"]) // { "user-agent": "curl/8" }
 */
export function redactHeaders(
  headers: Headers | Readonly<Record<string, string | readonly string[] | undefined>>,
  allowlist: readonly string[],
  alsoNever: readonly string[] = [],
): Record<string, string> {
  const allowed = new Set(allowlist.map((name) => name.toLowerCase()));
  for (const name of NEVER_LOGGED_HEADERS) allowed.delete(name);
  for (const name of alsoNever) allowed.delete(name.toLowerCase());
  const out: Record<string, string> = {};
  if (allowed.size === 0) return out;
  const add = (name: string, value: string) => {
    const key = name.toLowerCase();
    if (!allowed.has(key)) return;
    out[key] = key in out ? `${out[key]}, ${value}` : value;
  };
  if (typeof (headers as Headers).forEach === "function" && typeof (headers as Headers).get === "function") {
    (headers as Headers).forEach((value, name) => add(name, value));
  } else {
    for (const [name, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
      if (value === undefined) continue;
      if (typeof value === "string") add(name, value);
      else for (const v of value) add(name, v);
    }
  }
  return out;
}
