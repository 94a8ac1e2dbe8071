// Whether an address is free, asked by binding it exclusively for a moment.
import { createServer } from "node:net";
import { GatewayError } from "../errors.ts";

/**
 * Binds `host:port` exclusively and lets it go again; resolves with the port bound (a free one
 * when `port` is 0). SO_REUSEPORT would let a second gateway silently share a port, so a listener
 * that sets it (the Bun backend always, workers on every backend) is preceded by this check, and
 * "address in use" stays an error as it would be without the flag. A supervisor also uses it to
 * fix port 0 to one port before its workers share it.
 *
 * @throws GatewayError `TLS_ADDRESS_IN_USE`, `TLS_LISTEN_FAILED`
 */
export async function probeFreePort(host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (error: NodeJS.ErrnoException) => {
      reject(error.code === "EADDRINUSE"
        ? new GatewayError("TLS_ADDRESS_IN_USE", `address \`${host}:${port}\` is already in use`)
        : new GatewayError("TLS_LISTEN_FAILED", `cannot listen on \`${host}:${port}\`: ${error.message}`));
    });
    probe.listen({ host, port, exclusive: true }, () => {
      const address = probe.address();
      const bound = typeof address === "object" && address ? address.port : port;
      probe.close(() => resolve(bound));
    });
  });
}
