// Small address helpers shared by the listener backends.

/** `::ffff:10.0.0.1` → `10.0.0.1`: policies compare client IPs as IPv4 when they are IPv4. */
export function normaliseRemoteAddress(address: string | undefined): string {
  if (!address) return "";
  return address.toLowerCase().startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** The URL clients dial for a listener bound to `host` (wildcards become loopback). */
export function listenerUrl(host: string, port: number): string {
  const dialHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `https://${dialHost.includes(":") ? `[${dialHost}]` : dialHost}:${port}`;
}
