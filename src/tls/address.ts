// Small address helpers shared by the listener backends.

/** `::ffff:10.0.0.1` → `10.0.0.1`: policies compare client IPs as IPv4 when they are IPv4. */
export function normaliseRemoteAddress(address: string | undefined): string {
  if (!address) return "";
  return address.toLowerCase().startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** Whether `host` binds every interface (`0.0.0.0`, `::`). */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** The address a listener bound to `host:port` actually holds, as a URL: a wildcard stays one. */
export function boundUrl(host: string, port: number): string {
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** The URL clients dial for a listener bound to `host` (wildcards become loopback). */
export function listenerUrl(host: string, port: number): string {
  const dialHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `https://${dialHost.includes(":") ? `[${dialHost}]` : dialHost}:${port}`;
}
