// The Bun.serve backend: HTTP/1.1 over Bun's own TLS (fastest under Bun), for listeners without
// client certificates (Bun.serve cannot show the peer certificate to the handler).
// Bun.serve cannot swap certificates in place (`server.reload` ignores `tls`), so rotation starts
// a second server on the same port with SO_REUSEPORT and stops the old one gracefully: in-flight
// requests finish, new connections get the new certificate, and the old server's idle keep-alive
// connections are closed (clients reconnect, RFC 9112 §9.3.1).
import { constants } from "node:crypto";
import { GatewayError } from "../errors.ts";
import { problemResponse } from "../http/mod.ts";
import type { ListenerConfig } from "../config/mod.ts";
import { boundUrl, listenerUrl, normaliseRemoteAddress } from "./address.ts";
import { assertUsablePair } from "./certificates.ts";
import { probeFreePort } from "./port.ts";
import type { FetchHandler, RunningListener, TlsMaterial } from "./types.ts";

/** Bun's default already refuses TLS 1.0/1.1; the flags make that explicit and add 1.2 for `min_tls = "1.3"`. */
function secureOptionsFor(minVersion: ListenerConfig["minTlsVersion"]): number {
  const floor = (constants.SSL_OP_NO_TLSv1 ?? 0) | (constants.SSL_OP_NO_TLSv1_1 ?? 0);
  return minVersion === "TLSv1.3" ? floor | (constants.SSL_OP_NO_TLSv1_2 ?? 0) : floor;
}

function bunTlsOptions(tls: TlsMaterial, minVersion: ListenerConfig["minTlsVersion"]) {
  const secureOptions = secureOptionsFor(minVersion);
  assertUsablePair(tls.default.cert, tls.default.key, "default certificate");
  for (const s of tls.sni) assertUsablePair(s.cert, s.key, `certificate for \`${s.serverName}\``);
  return [
    { cert: tls.default.cert, key: tls.default.key, secureOptions },
    ...tls.sni.map((s) => ({ serverName: s.serverName, cert: s.cert, key: s.key, secureOptions })),
  ];
}

type BunServer = ReturnType<typeof Bun.serve>;

/**
 * The answer with `Connection: close`: Bun.serve then closes the connection after it. A copy,
 * since the headers of an upstream's response are immutable.
 */
function closingConnection(response: Response): Response {
  const headers = new Headers(response.headers);
  headers.set("connection", "close");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

async function stopServer(server: BunServer, graceful: boolean, deadlineMs: number): Promise<void> {
  if (!graceful) { await server.stop(true); return; }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"deadline">((resolve) => { timer = setTimeout(() => resolve("deadline"), deadlineMs); });
  const outcome = await Promise.race([server.stop(false).then(() => "stopped" as const), deadline]);
  clearTimeout(timer);
  if (outcome === "deadline") await server.stop(true);
}

export async function startBunListener(options: {
  listener: ListenerConfig;
  tls: TlsMaterial;
  fetch: FetchHandler;
  maxRequestBodySize: number;
  onError?: (error: unknown) => void;
  /** The port is shared with the other workers of a supervisor, which checked that it was free. */
  reusePort?: boolean;
}): Promise<RunningListener> {
  const { listener } = options;
  const report = options.onError ?? (() => {});
  if (options.tls.ca !== undefined) throw new GatewayError("TLS_BACKEND_MISMATCH", "the Bun.serve backend cannot verify client certificates; use the node backend");

  const serve = (port: number, tls: TlsMaterial): BunServer => {
    try {
      return Bun.serve({
        hostname: listener.host,
        port,
        reusePort: true,
        tls: bunTlsOptions(tls, listener.minTlsVersion),
        maxRequestBodySize: options.maxRequestBodySize,
        fetch: (request, server) => {
          const answer = options.fetch(request, {
            remoteAddress: normaliseRemoteAddress(server.requestIP(request)?.address),
            peerCertificate: null,
          });
          return draining ? Promise.resolve(answer).then(closingConnection) : answer;
        },
        error: (error) => {
          report(error);
          // The same problem shape as every other gateway error; the exception's text stays in the log.
          return problemResponse({ status: 500, code: "INTERNAL_ERROR", detail: "the gateway failed to handle the request", requestId: crypto.randomUUID() });
        },
      });
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      throw new GatewayError(code === "EADDRINUSE" ? "TLS_ADDRESS_IN_USE" : "TLS_LISTEN_FAILED", `cannot listen on \`${listener.host}:${port}\`: ${(error as Error).message}`);
    }
  };

  let draining = false;
  // A worker's siblings already listen on the port; the supervisor made the exclusive check.
  if (!options.reusePort) await probeFreePort(listener.host, listener.port);
  let current = serve(listener.port, options.tls);
  // Read once: a stopped Bun server no longer reports its port.
  const port = current.port ?? listener.port;
  // Servers replaced by a certificate rotation, finishing their requests.
  const rotating = new Set<Promise<void>>();

  return {
    port,
    url: listenerUrl(listener.host, port),
    boundUrl: boundUrl(listener.host, port),
    backend: "bun",
    async reloadCertificates(tls) {
      if (tls.ca !== undefined) throw new GatewayError("TLS_BACKEND_MISMATCH", "adding a client CA to a running listener needs a restart");
      const next = serve(port, tls); // throws (and changes nothing) on bad material
      const previous = current;
      current = next;
      const drain = stopServer(previous, true, 30_000).catch(report);
      rotating.add(drain);
      void drain.finally(() => rotating.delete(drain));
    },
    drain() {
      draining = true;
    },
    async stop({ graceful = true, deadlineMs = 10_000 } = {}) {
      await Promise.all([stopServer(current, graceful, deadlineMs), ...rotating]);
    },
  };
}
