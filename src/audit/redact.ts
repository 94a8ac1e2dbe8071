// Which request headers may enter an audit record.
import { SECRET_HEADERS } from "../http/mod.ts";

/**
 * The allow-listed headers of a request, names lower-cased, repeated headers joined with `, `
 * (RFC 9110 §5.3). Credential headers ({@link SECRET_HEADERS}) and any names in
 * `alsoNever` (e.g. the gateway's identity-token header) are dropped even when listed.
 *
 * @example redactHeaders(request.headers, ["user-agent", "x-change-id"]) // { "user-agent": "curl/8" }
 */
export function redactHeaders(
  headers: Headers | Readonly<Record<string, string | readonly string[] | undefined>>,
  allowlist: readonly string[],
  alsoNever: readonly string[] = [],
): Record<string, string> {
  const allowed = allowedNames(allowlist, alsoNever);
  const out: Record<string, string> = {};
  if (allowed.length === 0) return out;
  if (typeof (headers as Headers).forEach === "function" && typeof (headers as Headers).get === "function") {
    // `get` joins repeated fields with ", " itself; names in sorted order (the canonical order of
    // the audit record), one lookup per allowed name instead of a walk over every field.
    for (const name of allowed) {
      const value = (headers as Headers).get(name);
      if (value !== null) out[name] = value;
    }
    return out;
  }
  const allowedSet = new Set(allowed);
  const found: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    if (!allowedSet.has(key)) continue;
    for (const v of typeof value === "string" ? [value] : value) found[key] = key in found ? `${found[key]}, ${v}` : v;
  }
  for (const name of allowed) if (name in found) out[name] = found[name]!;
  return out;
}

const allowedCache = new WeakMap<readonly string[], { alsoNever: string; names: readonly string[] }>();

/** The allow-list minus credential headers and `alsoNever`, lower-cased and sorted; cached per list. */
function allowedNames(allowlist: readonly string[], alsoNever: readonly string[]): readonly string[] {
  const neverKey = alsoNever.join("\n").toLowerCase();
  const hit = allowedCache.get(allowlist);
  if (hit !== undefined && hit.alsoNever === neverKey) return hit.names;
  const never = new Set(alsoNever.map((n) => n.toLowerCase()));
  const names = [...new Set(allowlist.map((n) => n.toLowerCase()))].filter((n) => !SECRET_HEADERS.has(n) && !never.has(n)).sort();
  allowedCache.set(allowlist, { alsoNever: neverKey, names });
  return names;
}
