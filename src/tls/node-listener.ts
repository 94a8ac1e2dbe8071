// The node:http2 backend: HTTP/2 with HTTP/1.1 fallback over node:tls. It is the backend that can
// request and show client certificates (mTLS), and it rotates certificates in place with
// `setSecureContext`, so open connections keep their session. Runs under Bun, Deno and Node.
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from "node:tls";
import { getRequestListener, RequestError } from "@hono/node-server";
import { problemResponse } from "../http/mod.ts";
import { GatewayError } from "../errors.ts";
import type { ListenerConfig } from "../config/mod.ts";
import { boundUrl, listenerUrl, normaliseRemoteAddress } from "./address.ts";
import { peerCertificateOf } from "./client-identity.ts";
import { selectSniEntry } from "./sni.ts";
import type { ConnectionInfo, FetchHandler, ListenerRefusal, RefusalHandler, RunningListener, TlsMaterial } from "./types.ts";

interface Contexts {
  defaultOptions: SecureContextOptions;
  sni: { serverName: string; context: SecureContext }[];
}

/** Builds every secure context up front, so a bad certificate fails here and not in a handshake. */
function buildContexts(tls: TlsMaterial, minVersion: ListenerConfig["minTlsVersion"]): Contexts {
  const common: SecureContextOptions = { minVersion, ...(tls.ca ? { ca: tls.ca } : {}) };
  const defaultOptions: SecureContextOptions = { ...common, cert: tls.default.cert, key: tls.default.key };
  try {
    createSecureContext(defaultOptions);
    // Each SNI context carries the client CA too: verification uses the context the handshake selected.
    const sni = tls.sni.map((s) => ({ serverName: s.serverName, context: createSecureContext({ ...common, cert: s.cert, key: s.key }) }));
    return { defaultOptions, sni };
  } catch (error) {
    throw new GatewayError("TLS_BAD_CERTIFICATE", `unusable TLS material: ${(error as Error).message.toLowerCase()}`);
  }
}

/** What a request the HTTP/1.1 parser refuses gets, by the parser's error code (as Node's `http` server answers). */
const PARSER_REFUSALS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n",
  ERR_HTTP_REQUEST_TIMEOUT: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
  default: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
};

/** A request's fields as received (pseudo-headers and fields `Headers` refuses are left out). */
function fieldsOf(incoming: IncomingMessage | Http2ServerRequest): Headers {
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // not a valid field name or value: nothing to record
    }
  }
  return headers;
}

/** Reads a request body but errors the stream once it exceeds `limit` bytes (bodies without a declared length). */
function limitBody(body: ReadableStream<Uint8Array>, limit: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit) controller.error(new GatewayError("BODY_TOO_LARGE", `request body exceeds ${limit} bytes`, { limit }));
      else controller.enqueue(chunk);
    },
  }));
}

export async function startNodeListener(options: {
  listener: ListenerConfig;
  tls: TlsMaterial;
  fetch: FetchHandler;
  maxRequestBodySize: number;
  onError?: (error: unknown) => void;
  refuse?: RefusalHandler;
  /** Share the port with the other workers of a supervisor (SO_REUSEPORT; Bun and Deno on Linux, Node ≥ 22.12). */
  reusePort?: boolean;
}): Promise<RunningListener> {
  const { listener, maxRequestBodySize } = options;
  const report = options.onError ?? (() => {});
  let contexts = buildContexts(options.tls, listener.minTlsVersion);
  const withClientCa = options.tls.ca !== undefined;
  const infoBySocket = new WeakMap<TLSSocket, ConnectionInfo>();
  const sockets = new Set<TLSSocket>();
  const sessions = new Set<Http2Session>();
  const activeRequests = new Map<TLSSocket, number>();
  let stopping = false;
  let draining = false;

  const connectionInfo = (socket: TLSSocket): ConnectionInfo => {
    let info = infoBySocket.get(socket);
    if (!info) {
      info = {
        remoteAddress: normaliseRemoteAddress(socket.remoteAddress),
        tlsProtocol: socket.getProtocol?.() ?? undefined,
        serverName: typeof socket.servername === "string" ? socket.servername : undefined,
        alpnProtocol: typeof socket.alpnProtocol === "string" ? socket.alpnProtocol : undefined,
        peerCertificate: withClientCa ? peerCertificateOf(socket) : null,
      };
      infoBySocket.set(socket, info);
    }
    return info;
  };

  const tlsSocketOf = (incoming: IncomingMessage | Http2ServerRequest): TLSSocket =>
    ((incoming as Http2ServerRequest).stream?.session?.socket ?? incoming.socket) as TLSSocket;

  // The request the adapter is turning into a `Request`: it calls `errorHandler` synchronously when
  // it cannot, and the refusal is then recorded with that request's method, fields and connection.
  let converting: IncomingMessage | Http2ServerRequest | null = null;

  const honoListener = getRequestListener(
    (request, env) => {
      const incoming = env.incoming;
      const info = connectionInfo(tlsSocketOf(incoming));
      let forwarded = request;
      if (request.body !== null && incoming.headers["content-length"] === undefined) {
        // Rebuilt field by field: `new Request(request, …)` does not recognise the adapter's
        // lightweight request and would silently turn every such request into a GET.
        forwarded = new Request(request.url, {
          method: request.method, headers: request.headers, signal: request.signal,
          body: limitBody(request.body, maxRequestBodySize), duplex: "half",
        } as RequestInit);
      }
      return options.fetch(forwarded, info);
    },
    {
      overrideGlobalObjects: false,
      errorHandler: (error) => {
        // A request the adapter cannot turn into a URL (asterisk-form, a backslash, a bad or missing
        // Host) is the client's error; anything else escaped the handler. Neither leaks internals.
        if (error instanceof RequestError) {
          const badHost = /host/i.test(error.message);
          const refusal: ListenerRefusal = {
            status: 400, code: badHost ? "REQUEST_BAD_HOST" : "REQUEST_MALFORMED",
            detail: badHost ? "the host header is missing or not a host name" : "the request-target cannot be read as a URL",
            method: converting?.method ?? "", headers: converting ? fieldsOf(converting) : new Headers(),
          };
          if (options.refuse && converting) return options.refuse(refusal, connectionInfo(tlsSocketOf(converting)));
          return problemResponse({ status: refusal.status, code: refusal.code, detail: refusal.detail, requestId: crypto.randomUUID() });
        }
        report(error);
        return problemResponse({ status: 500, code: "INTERNAL_ERROR", detail: "the gateway failed to handle the request", requestId: crypto.randomUUID() });
      },
    },
  );

  // HTTP/1.1 requests pipelined on one connection, waiting for the one in flight to be answered.
  // The parser hands them over as it reads them; RFC 9112 §9.3.2 allows handling them side by side
  // only when all are safe, so each starts once the answer before it is complete: the upstream
  // gets them in the order the client sent them, each judged when its turn comes.
  const pipelined = new Map<TLSSocket, Array<() => void>>();
  // Connections whose parser stopped behind answers still owed (see "clientError"): ended once idle.
  const endWhenIdle = new WeakSet<TLSSocket>();
  // The last HTTP/1.1 request read on each connection, and the answer being written on it.
  const lastRead = new WeakMap<TLSSocket, IncomingMessage>();
  const answering = new WeakMap<TLSSocket, ServerResponse>();

  const settle = (socket: TLSSocket) => {
    const left = (activeRequests.get(socket) ?? 1) - 1;
    activeRequests.set(socket, left);
    // A connection that is ending answers nothing more: what waits behind is never handled.
    const next = socket.writable ? pipelined.get(socket)?.shift() : undefined;
    if (next !== undefined) return next();
    pipelined.delete(socket);
    // While stopping, an HTTP/1.1 connection is closed as soon as it has nothing in flight.
    if ((stopping || endWhenIdle.has(socket)) && left === 0 && socket.alpnProtocol !== "h2") socket.end();
  };

  const onRequest = (incoming: IncomingMessage | Http2ServerRequest, outgoing: ServerResponse | Http2ServerResponse) => {
    const socket = tlsSocketOf(incoming);
    const http1 = incoming.httpVersionMajor === 1;
    if (http1) lastRead.set(socket, incoming as IncomingMessage);
    const inFlight = activeRequests.get(socket) ?? 0;
    activeRequests.set(socket, inFlight + 1);
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      if (answering.get(socket) === outgoing) answering.delete(socket);
      settle(socket);
    };
    outgoing.once("finish", done);
    outgoing.once("close", done);
    const start = () => {
      const declared = Number(incoming.headers["content-length"] ?? 0);
      if (declared > maxRequestBodySize) {
        // Refused before reading the body; RFC 9110 §15.5.14.
        outgoing.writeHead(413, { "content-type": "text/plain" });
        outgoing.end(`request body exceeds ${maxRequestBodySize} bytes\n`);
        if (http1) socket.end();
        return;
      }
      if (http1) answering.set(socket, outgoing as ServerResponse);
      if (stopping || draining) {
        if (http1) (outgoing as ServerResponse).setHeader("connection", "close");
        // GOAWAY once this session's streams are done (session.close() waits for them).
        else outgoing.once("finish", () => (incoming as Http2ServerRequest).stream?.session?.close());
      }
      converting = incoming;
      try {
        honoListener(incoming, outgoing).catch(report);
      } finally {
        converting = null;
      }
    };
    if (http1 && inFlight > 0) {
      let queue = pipelined.get(socket);
      if (queue === undefined) pipelined.set(socket, (queue = []));
      queue.push(start);
    } else start();
  };

  const server = createSecureServer({
    allowHTTP1: true,
    ...contexts.defaultOptions,
    requestCert: withClientCa,
    rejectUnauthorized: withClientCa && listener.requireClientCertificate,
    SNICallback: (servername, callback) => callback(null, selectSniEntry(servername, contexts.sni)?.context),
  }, onRequest);

  // Every TCP connection, including ones still in (or failed in) the handshake: stop must be able to cut them.
  const connections = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    connections.add(socket);
    socket.once("close", () => connections.delete(socket));
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => { sockets.delete(socket); activeRequests.delete(socket); pipelined.delete(socket); });
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  // Handshake failures (wrong protocol version, no client certificate) are the client's problem, not a crash.
  server.on("tlsClientError", () => {});
  // A listener here replaces the runtime's answer to a request its parser refuses, so that answer
  // is given as Node's `http` server gives it, except behind requests still being answered: bytes
  // after a request with `Connection: close` (HTTP/1.0 without keep-alive too), which RFC 9112 §9.6
  // says the server must not read as a request, or a malformed request pipelined behind good ones.
  // The default would write a bare 400 in place of answers owed, for requests maybe forwarded
  // already, and cut the connection; instead those answers go out, then the connection ends and the
  // client retries what it sent after them.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    const owed = (activeRequests.get(socket as TLSSocket) ?? 0) > 0;
    // Only behind complete requests: an error inside a request's own body (a bad chunk, an unknown
    // transfer coding) leaves that request unfinishable, and it is refused as a whole.
    if (owed && error.code?.startsWith("HPE_") && lastRead.get(socket as TLSSocket)?.complete === true) {
      endWhenIdle.add(socket as TLSSocket);
      return;
    }
    // As the default does: a refusal only where it cannot land inside an answer already started.
    if (socket.writable && answering.get(socket as TLSSocket)?.headersSent !== true) socket.write(PARSER_REFUSALS[error.code ?? ""] ?? PARSER_REFUSALS.default!);
    socket.destroy();
  });
  server.on("sessionError", report);

  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) => {
      reject(error.code === "EADDRINUSE"
        ? new GatewayError("TLS_ADDRESS_IN_USE", `address \`${listener.host}:${listener.port}\` is already in use`)
        : new GatewayError("TLS_LISTEN_FAILED", `cannot listen on \`${listener.host}:${listener.port}\`: ${error.message}`));
    };
    server.once("error", fail);
    server.listen({ port: listener.port, host: listener.host, ...(options.reusePort ? { reusePort: true } : {}) }, () => { server.off("error", fail); resolve(); });
  });
  server.on("error", report);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : listener.port;

  return {
    port,
    url: listenerUrl(listener.host, port),
    boundUrl: boundUrl(listener.host, port),
    backend: "node",
    async reloadCertificates(tls) {
      if ((tls.ca !== undefined) !== withClientCa) {
        throw new GatewayError("TLS_BACKEND_MISMATCH", "adding or removing the client CA of a running listener needs a restart");
      }
      const next = buildContexts(tls, listener.minTlsVersion);
      // New handshakes use the new context; established sessions keep theirs (no connection is cut).
      server.setSecureContext(next.defaultOptions);
      contexts = next;
    },
    drain() {
      draining = true;
      for (const session of sessions) session.close(); // GOAWAY: in-flight streams finish (RFC 9113 §6.8)
    },
    async stop({ graceful = true, deadlineMs = 10_000 } = {}) {
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const cutAll = () => {
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        for (const socket of connections) socket.destroy();
      };
      if (!graceful) cutAll();
      else {
        for (const session of sessions) session.close(); // GOAWAY: in-flight streams finish (RFC 9113 §6.8)
        for (const socket of sockets) if (socket.alpnProtocol !== "h2" && (activeRequests.get(socket) ?? 0) === 0) socket.end();
        // Connections that never completed a handshake carry no request.
        // (The TLS socket wraps the TCP one; the peer address and port tie the two together.)
        const secured = new Set([...sockets].map((socket) => `${socket.remoteAddress}|${socket.remotePort}`));
        for (const socket of connections) if (!secured.has(`${socket.remoteAddress}|${socket.remotePort}`)) socket.destroy();
      }
      const deadline = setTimeout(cutAll, graceful ? deadlineMs : 0);
      try {
        await closed;
      } finally {
        clearTimeout(deadline);
      }
    },
  };
}
