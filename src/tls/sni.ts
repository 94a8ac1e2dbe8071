// SNI server name matching shared by both listener backends (RFC 6066 §3; wildcards as in RFC 6125 §6.4.3:
// `*.example.com` matches exactly one label, `a.example.com` but not `example.com` or `a.b.example.com`).

/** The entry serving `serverName`: an exact name wins over a wildcard; null means the default certificate. */
export function selectSniEntry<T extends { serverName: string }>(serverName: string | undefined, entries: readonly T[]): T | null {
  if (!serverName) return null;
  const name = serverName.toLowerCase().replace(/\.$/, "");
  const exact = entries.find((e) => e.serverName === name);
  if (exact) return exact;
  const dot = name.indexOf(".");
  if (dot <= 0) return null;
  const wildcard = `*${name.slice(dot)}`;
  return entries.find((e) => e.serverName === wildcard) ?? null;
}
