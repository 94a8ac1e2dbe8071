// The typed, validated configuration of the gateway (what `gateway.toml` becomes).
// Durations are milliseconds, sizes bytes, paths absolute (resolved against the config file's directory).
import type { ErrorCode } from "../error-codes.ts";

/** One TLS certificate and key, PEM files. */
export interface CertificatePair {
  certFile: string;
  keyFile: string;
}

/** Certificate chosen by SNI server name (exact or `*.example.com`). */
export interface SniCertificate extends CertificatePair {
  serverName: string;
}

/** How a client certificate becomes principal attributes. */
export interface CertificateMapping {
  /**
   * Principal attributes for a certificate identity (`spiffe://…` URI SAN, else the subject CN),
   * keyed by that identity. Attributes must match the policy's principal schema; `sub` is set from the identity.
   */
  identities: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

export interface ListenerConfig {
  /** `host:port`; port 0 picks a free port (tests). */
  host: string;
  port: number;
  /** Default certificate; when absent, a self-signed one under `stateDir/tls/` is created on first start and reused. */
  certificate: CertificatePair | null;
  sni: SniCertificate[];
  /** PEM CA bundle; when set, client certificates are verified against it (mTLS) and the node:http2 backend serves. */
  clientCaFile: string | null;
  /** With `clientCaFile`: whether a client certificate is required (admin) or optional (operational: JWT or mTLS). */
  requireClientCertificate: boolean;
  certificateMapping: CertificateMapping;
  /** Lowest TLS version accepted. */
  minTlsVersion: "TLSv1.2" | "TLSv1.3";
}

export interface JwtIssuerConfig {
  /** Name of the `[issuers.NAME]` table. */
  name: string;
  /** Expected `iss`. */
  issuer: string;
  /** Accepted `aud` values (any of). */
  audience: string[];
  /** JWKS from a file (re-read when it changes) … */
  jwksFile: string | null;
  /** … or an https URL (cached, refreshed on unknown kid, with a cooldown). */
  jwksUrl: string | null;
  /** Extra CA (PEM file) to trust for `jwksUrl`. */
  jwksCaFile: string | null;
  /** Allowed algorithms; never `none`; HS* only with `hmacSecret`. */
  algorithms: string[];
  hmacSecret: string | null;
  clockToleranceMs: number;
  /** Longest accepted `exp - iat`: only short-lived credentials pass. */
  maxLifetimeMs: number;
  /** Claims that must be present. */
  requiredClaims: string[];
  /**
   * Principal attribute → claim (dotted path into the payload, e.g. `realm_access.roles`).
   * Every attribute of the policy's principal schema must be mapped or have a constant in `constants`.
   */
  claims: Readonly<Record<string, string>>;
  /** Principal attribute → constant value for tokens of this issuer. */
  constants: Readonly<Record<string, unknown>>;
}

export interface UpstreamConfig {
  name: string;
  /** Absolute http(s) URL; the normalised request path is appended to its path. */
  url: string;
  timeoutMs: number;
  connectTimeoutMs: number;
  /**
   * `pool` (the default, `DEFAULTS.upstream.client`, also when unset): under Bun, requests go over
   * the gateway's own keep-alive HTTP/1.1 pool (src/http/forward-http1.ts), `http://` and
   * `https://`; other runtimes use fetch. `fetch`: the runtime's fetch for every request.
   */
  client?: "fetch" | "pool";
  /**
   * `ca`: PEM bundle an `https://` upstream's certificate must chain to, instead of the runtime's
   * root store and `NODE_EXTRA_CA_CERTS`. Read and checked at config load; null or absent: the roots.
   */
  caFile?: string | null;
  /** The certificates of `caFile`, as read at config load. */
  caPem?: string | null;
  /**
   * `server_name`: the DNS name an `https://` upstream is asked for by SNI and its certificate is
   * checked against, instead of the URL's host (the `Host` header still names the URL's). Null or absent: the host.
   */
  serverName?: string | null;
  /** `cert` and `key`: the client certificate (PEM files) presented to an `https://` upstream that asks for one (mTLS). */
  clientCertFile?: string | null;
  clientKeyFile?: string | null;
  /** Their contents, as read and checked at config load. */
  clientCertPem?: string | null;
  clientKeyPem?: string | null;
}

export interface PolicyConfig {
  dir: string;
  requireSignature: boolean;
  /** JWKS file of the trusted signer keys. */
  trustedKeysFile: string | null;
  minSigners: number;
  watch: boolean;
  debounceMs: number;
}

export interface AuditConfig {
  dir: string;
  fsync: "always" | "batch" | "off";
  batchIntervalMs: number;
  rotateBytes: number;
  rotateAgeMs: number;
  checkpointEvery: number;
  checkpointIntervalMs: number;
  onFailure: "deny" | "allow";
  stdout: boolean;
  /** Request headers (lower case) copied into records; never authorization, cookie or the identity header. */
  headerAllowlist: string[];
}

export interface LedgerConfig {
  /** SQLite file; default `stateDir/ledger.sqlite`. Unused when `postgres` is set. */
  path: string;
  retentionDays: number;
  /** Hide who did the earlier step from deny messages. */
  hideDetails: boolean;
  /** The shared PostgreSQL ledger of a fleet (`url`); null keeps the SQLite file at `path`. */
  postgres?: PostgresLedgerConfig | null;
}

/** `[ledger] url = "postgres://…"` and the keys that go with it. */
export interface PostgresLedgerConfig {
  /** `postgres://user@host:port/database`, without a password. */
  url: string;
  /** File holding the role's password (`password_file`), read at start. */
  passwordFile: string | null;
  /** Environment variable holding the role's password (`password_env`), read at start. */
  passwordEnv: string | null;
  /** CA bundle (PEM) the server's certificate must chain to: TLS with the host name verified. */
  caFile: string | null;
  /** Deadline of one ledger call, connecting included (`timeout`). */
  timeoutMs: number;
}

export interface IdentityTokenConfig {
  /** Header carrying the gateway-signed identity token to the upstream. */
  header: string;
  ttlMs: number;
  /** Inbound headers always stripped so callers cannot spoof identity (the token header is always stripped too). */
  stripHeaders: string[];
}

/** What a graceful stop (SIGTERM, SIGINT) does, and for how long. */
export interface ShutdownConfig {
  /**
   * Time between the stop signal and closing the listeners: `/-/readyz` answers 503 and every
   * answer carries `Connection: close`, so a load balancer takes the gateway out of rotation and
   * kept-alive clients reconnect elsewhere. 0 closes at once.
   */
  drainMs: number;
  /** After the drain: how long requests in flight may take before their connections are cut. */
  timeoutMs: number;
}

export interface GatewayConfig {
  /** Absolute path of the config file, or null for the built-in default. */
  source: string | null;
  stateDir: string;
  listen: ListenerConfig;
  /**
   * `[listen] workers`: processes serving the operational listener on one address (SO_REUSEPORT),
   * started and watched by a supervisor when more than 1 (`"auto"`: one per core). Absent: 1.
   */
  workers?: number;
  /** `[listen] worker_start_timeout`: how long a worker may take to serve (with `workers` above 1). Absent: 30 s. */
  workerStartTimeoutMs?: number;
  /** Admin trust channel; null disables the admin listener. */
  admin: ListenerConfig | null;
  issuers: JwtIssuerConfig[];
  upstreams: Readonly<Record<string, UpstreamConfig>>;
  policy: PolicyConfig;
  audit: AuditConfig;
  ledger: LedgerConfig;
  identity: IdentityTokenConfig;
  /** Answer for a request that matches no duty: 404 or 403. Never forwarded. */
  noRouteStatus: 404 | 403;
  /** Hide duty and reason ids from deny bodies. */
  hideDenyDetails: boolean;
  /** Accept `x-request-id` from callers. */
  trustRequestId: boolean;
  maxBodyBytes: number;
  log: { level: "debug" | "info" | "warn" | "error" };
  shutdown: ShutdownConfig;
  /** Built-in default only: start the bundled example upstreams in-process on loopback. */
  demo: boolean;
}

/** Stable codes of configuration errors: the `CONFIG_*` codes of the catalogue (src/error-codes.ts). */
export type ConfigErrorCode = Extract<ErrorCode, `CONFIG_${string}`>;

/** One problem found in a config file. Validation collects all of them, it does not stop at the first. */
export interface ConfigError {
  code: ConfigErrorCode;
  /** Key path, e.g. `upstreams.changes.url`, `listen.sni[0].cert`; empty for file-level errors. */
  path: string;
  /** Lowercase, no final period, user input in backticks. */
  message: string;
  /** A hint such as "did you mean `address`?". */
  help?: string;
  /** 1-based position in the config file, when the key (or its table) could be found. */
  line?: number;
  col?: number;
}
