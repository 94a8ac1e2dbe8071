// Shapes shared by the TLS listeners and their callers.

/** PEM text of one certificate chain and its private key. */
export interface PemPair {
  cert: string;
  key: string;
}

/** Everything a listener needs to terminate TLS, read from the files a ListenerConfig names. */
export interface TlsMaterial {
  default: PemPair;
  /** Certificates chosen by SNI; `serverName` is lower case, exact or `*.example.com` (one label). */
  sni: (PemPair & { serverName: string })[];
  /** PEM CA bundle client certificates are verified against (mTLS); absent: no client certificates. */
  ca?: string;
}

/** What the handler learns about a verified (or presented) client certificate. */
export interface PeerCertificateInfo {
  /** Subject common name, or null. */
  subjectCN: string | null;
  /** URI subject alternative names; a SPIFFE ID is one of these (`spiffe://trust-domain/path`). */
  uriSans: string[];
  dnsSans: string[];
  issuerCN: string | null;
  /** SHA-256 fingerprint, colon-separated upper-case hex (as node:tls prints it). */
  fingerprint256: string;
  serialNumber: string;
  /** ISO 8601. */
  validFrom: string;
  validTo: string;
  /** Whether the chain verified against the listener's client CA. */
  authorized: boolean;
  /** OpenSSL's reason when not authorised (e.g. `UNABLE_TO_GET_ISSUER_CERT`). */
  authorizationError: string | null;
}

/** Per-request facts about the connection, passed to the fetch handler beside the Request. */
export interface ConnectionInfo {
  /** Client IP; IPv4-mapped IPv6 addresses are given as plain IPv4. */
  remoteAddress: string;
  /** `TLSv1.2` / `TLSv1.3` when the backend can tell (node:http2 backend). */
  tlsProtocol?: string;
  /** SNI server name the client asked for, when known. */
  serverName?: string;
  /** `h2` or `http/1.1`, when known. */
  alpnProtocol?: string;
  /** The client certificate, when the listener asks for one (a client CA is configured) and one was presented. */
  peerCertificate: PeerCertificateInfo | null;
}

export type FetchHandler = (request: Request, info: ConnectionInfo) => Response | Promise<Response>;

/** A request the listener refuses itself, because no `Request` (no URL) can be made of it. */
export interface ListenerRefusal {
  status: number;
  /** `REQUEST_BAD_HOST` (a missing or bad Host) or `REQUEST_MALFORMED` (a target that is no URL path). */
  code: "REQUEST_BAD_HOST" | "REQUEST_MALFORMED";
  detail: string;
  method: string;
  /** The request's fields as received. */
  headers: Headers;
}

/** Answers (and records) a request the listener refused; see {@link ListenerRefusal}. */
export type RefusalHandler = (refusal: ListenerRefusal, info: ConnectionInfo) => Response | Promise<Response>;

export interface RunningListener {
  /** The bound port (the real one when the config said 0). */
  readonly port: number;
  /** `https://host:port` with a host clients can dial (a wildcard host becomes 127.0.0.1). */
  readonly url: string;
  /** `https://host:port` as bound: `https://0.0.0.0:8443` for every IPv4 interface. */
  readonly boundUrl: string;
  /** `bun` (Bun.serve) or `node` (node:http2 with HTTP/1.1 fallback). */
  readonly backend: ListenerBackend;
  /**
   * Swaps certificates (and client CA) for new connections. Validates the material first and
   * throws `GatewayError` `TLS_BAD_CERTIFICATE` without changing anything when it is unusable.
   */
  reloadCertificates(tls: TlsMaterial): Promise<void>;
  /**
   * Starts the drain before a stop: the listener keeps accepting and answering, but every
   * HTTP/1.1 answer carries `Connection: close` and the connection closes after it (RFC 9112
   * §9.6), and HTTP/2 sessions are sent GOAWAY once their streams are done (RFC 9113 §6.8), so
   * clients reconnect, through a load balancer, elsewhere.
   */
  drain(): void;
  /**
   * Stops accepting. Graceful: in-flight requests finish (up to `deadlineMs`, then connections are
   * cut); not graceful: connections are cut at once.
   */
  stop(options?: { graceful?: boolean; deadlineMs?: number }): Promise<void>;
}

export type ListenerBackend = "bun" | "node";
