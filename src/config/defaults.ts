// Default values of every optional key, shared by the config loader and the built-in default,
// so `docs/configuration.md`, `gateway.example.toml` and the code agree on one table.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const MIB = 1024 * 1024;

export const DEFAULTS = {
  stateDir: "./.state",
  noRouteStatus: 404 as 404 | 403,
  hideDenyDetails: false,
  trustRequestId: false,
  maxBodyBytes: 10 * MIB,
  listen: { address: "0.0.0.0:8443", minTls: "1.2" as "1.2" | "1.3" },
  /** `[listen] workers`: one process, no supervisor. */
  workers: 1,
  /** `[listen] worker_start_timeout`: how long a worker may take to serve, at the first start and after a restart. */
  workerStartTimeoutMs: 30 * SECOND,
  admin: { address: "127.0.0.1:9443", minTls: "1.2" as "1.2" | "1.3" },
  issuer: {
    algorithms: ["ES256", "EdDSA", "RS256"],
    clockToleranceMs: 30 * SECOND,
    maxLifetimeMs: HOUR,
    requiredClaims: ["exp", "iat"],
  },
  upstream: { timeoutMs: 30 * SECOND, connectTimeoutMs: 5 * SECOND, client: "pool" as "fetch" | "pool" },
  policy: { dir: "./policies", requireSignature: true, minSigners: 1, watch: true, debounceMs: 100 },
  audit: {
    dir: "./audit",
    fsync: "batch" as "always" | "batch" | "off",
    // 200 ms: fdatasync 5 times a second. Each fsync stalls the writes queued behind it on ext4;
    // at 20 ms the stalls cost about a third of throughput under load (bench/audit-throughput).
    batchIntervalMs: 200,
    rotateBytes: 100 * MIB,
    rotateAgeMs: 24 * HOUR,
    checkpointEvery: 1000,
    checkpointIntervalMs: MINUTE,
    onFailure: "deny" as "deny" | "allow",
    stdout: false,
    headerAllowlist: ["user-agent"],
  },
  ledger: { file: "ledger.sqlite", retentionDays: 90, hideDetails: false, timeoutMs: 2 * SECOND },
  identity: {
    header: "x-dutygate-identity",
    ttlMs: MINUTE,
    // Headers other proxies and platforms use to pass a caller's identity, address or original URL
    // to the application behind them; a caller must never be able to set them. Matched by their
    // normalised name (lower case, `_` as `-`), so `X_Remote_User` is `x-remote-user`.
    stripHeaders: [
      // identity set by an authenticating proxy (oauth2-proxy, Apache/nginx auth, Grafana's auth proxy)
      "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username", "x-forwarded-access-token",
      "x-remote-user", "x-remote-group", "remote-user", "x-user", "x-webauth-user", "x-authenticated-user",
      "x-auth-request-user", "x-auth-request-email", "x-auth-request-groups", "x-auth-request-preferred-username", "x-auth-request-access-token",
      // client address as CDNs and load balancers pass it
      "true-client-ip", "x-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip",
      // the original URL or path prefix, which IIS, Symfony, Spring and others route or build links on
      "x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri", "x-forwarded-prefix",
    ],
  },
  logLevel: "info" as "debug" | "info" | "warn" | "error",
  shutdown: { drainMs: 5 * SECOND, timeoutMs: 10 * SECOND },
} as const;

/** The most `[listen] workers` accepted: a bound on processes (and audit chains) a typo can start. */
export const MAX_WORKERS = 256;

/** JWS algorithms an issuer may list (RFC 7518 §3.1, RFC 8037). */
export const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"] as const;
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;

/** The client an upstream uses: its `client`, or the default when a config built in code left it out. */
export function upstreamClient(upstream: { client?: "fetch" | "pool" }): "fetch" | "pool" {
  return upstream.client ?? DEFAULTS.upstream.client;
}
