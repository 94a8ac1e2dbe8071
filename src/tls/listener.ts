// One entry point for the TLS listeners; the backend is chosen by runtime and by whether the
// listener verifies client certificates (see bun-listener.ts and node-listener.ts).
import { GatewayError } from "../errors.ts";
import type { ListenerConfig } from "../config/mod.ts";
import type { FetchHandler, ListenerBackend, RefusalHandler, RunningListener, TlsMaterial } from "./types.ts";

/** Options of {@link startListener}. */
export interface StartListenerOptions {
  listener: ListenerConfig;
  tls: TlsMaterial;
  /** Called for every request with the connection facts (client IP, TLS version, client certificate). */
  fetch: FetchHandler;
  /** Bodies larger than this get 413 (declared length) or an erroring body stream with `BODY_TOO_LARGE` (chunked). */
  maxRequestBodySize: number;
  /**
   * `auto` (default): Bun.serve under Bun when the listener has no client CA, node:http2 otherwise
   * (and always under Deno and Node). `node` forces node:http2 (HTTP/2, in-place rotation).
   */
  backend?: "auto" | ListenerBackend;
  /** Errors the listener cannot return to a client (handler crashes, socket errors). */
  onError?: (error: unknown) => void;
  /**
   * Answers a request the listener refuses before it can become a `Request` (the node backend:
   * a missing Host, asterisk-form, a backslash in the target), so the caller can record it.
   * Default: a problem response with a fresh request id.
   */
  refuse?: RefusalHandler;
  /**
   * Listen beside the other workers of one supervisor on the same address (SO_REUSEPORT: the
   * kernel spreads new connections over them). The supervisor checks once that the address is
   * free; a listener started alone keeps the exclusive check ("address in use" stays an error).
   */
  reusePort?: boolean;
}

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The backend `startListener` would pick for these options. */
export function chooseListenerBackend(options: Pick<StartListenerOptions, "tls" | "backend">): ListenerBackend {
  const wanted = options.backend ?? "auto";
  if (wanted === "bun") {
    if (!isBun) throw new GatewayError("TLS_BACKEND_MISMATCH", "the `bun` listener backend needs the Bun runtime");
    if (options.tls.ca !== undefined) throw new GatewayError("TLS_BACKEND_MISMATCH", "the `bun` listener backend cannot verify client certificates");
    return "bun";
  }
  if (wanted === "node") return "node";
  return isBun && options.tls.ca === undefined ? "bun" : "node";
}

/**
 * Starts a TLS listener on `listener.host:listener.port` (port 0 picks a free port).
 * TLS 1.0 and 1.1 are always refused; `minTlsVersion` TLSv1.3 refuses 1.2 too.
 *
 * @example
 * const running = await startListener({ listener: config.listen, tls: await loadTlsMaterial(config.listen, { stateDir }),
 *   fetch: (request, info) => handle(request, info), maxRequestBodySize: config.maxBodyBytes });
 * process.on("SIGHUP", async () => running.reloadCertificates(await loadTlsMaterial(config.listen, { stateDir })));
 *
 * @throws GatewayError `TLS_ADDRESS_IN_USE`, `TLS_LISTEN_FAILED`, `TLS_BAD_CERTIFICATE`, `TLS_BACKEND_MISMATCH`
 */
export async function startListener(options: StartListenerOptions): Promise<RunningListener> {
  if (chooseListenerBackend(options) === "bun") {
    const { startBunListener } = await import("./bun-listener.ts");
    return startBunListener(options);
  }
  const { startNodeListener } = await import("./node-listener.ts");
  return startNodeListener(options);
}
