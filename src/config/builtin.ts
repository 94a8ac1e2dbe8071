// The built-in default: what `gateway serve` runs with no config file. A self-contained demo
// on one machine: self-signed certificate, unsigned policies from ./policies, a demo JWT issuer
// whose keys live in the state directory, and the bundled example upstreams on loopback.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { GatewayError } from "../errors.ts";
import { DEFAULTS } from "./defaults.ts";
import type { GatewayConfig, ListenerConfig } from "./types.ts";

/** The demo JWT issuer of the built-in default. */
export const DEMO_ISSUER = {
  name: "demo",
  issuer: "https://demo-issuer.dutygate.invalid",
  audience: "dutygate",
  algorithm: "ES256",
  kid: "demo-1",
} as const;

/** Loopback ports the bundled example upstreams listen on in the built-in default. */
export const DEMO_UPSTREAM_PORTS = { changes: 18081, deploy: 18082, logs: 18083, admin: 18084 } as const;

/** Where the demo issuer's keys live: `<stateDir>/demo-issuer/`. */
export function demoIssuerFiles(stateDir: string): { dir: string; jwksFile: string; privateKeyFile: string } {
  const dir = join(stateDir, "demo-issuer");
  return { dir, jwksFile: join(dir, "jwks.json"), privateKeyFile: join(dir, "private-key.pem") };
}

/**
 * Files that switch on the admin listener of the built-in default: a client CA bundle at
 * `<stateDir>/admin/ca.pem`, and optionally `<stateDir>/admin/identities.json` mapping a
 * certificate identity (SPIFFE URI or CN) to principal attributes.
 */
export function demoAdminFiles(stateDir: string): { caFile: string; identitiesFile: string } {
  return { caFile: join(stateDir, "admin", "ca.pem"), identitiesFile: join(stateDir, "admin", "identities.json") };
}

function listener(host: string, port: number): ListenerConfig {
  return {
    host, port, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false,
    certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2",
  };
}

/**
 * The configuration used when no config file is given.
 *
 * - state in `<cwd>/.state`; operational listener `127.0.0.1:8443` (loopback: the demo issuer's key
 *   and tokens are on this machine, so the demo serves nobody else) with a self-signed certificate
 *   created on first start under `<cwd>/.state/tls/listen/` (see `ensureSelfSignedCertificate`);
 * - policies from `<cwd>/policies`, signatures not required (demo only);
 * - audit log in `<cwd>/audit`;
 * - a demo JWT issuer ({@link DEMO_ISSUER}) whose key pair `ensureDemoIssuer` creates on first start;
 * - upstreams `changes`, `deploy`, `logs`, `admin` at `http://127.0.0.1:<DEMO_UPSTREAM_PORTS>`;
 * - the admin listener on `127.0.0.1:9443` only when `<cwd>/.state/admin/ca.pem` exists
 *   (client certificates are its only credential, so without a CA it could admit nobody);
 * - `demo: true`.
 *
 * The result is frozen data; reading it touches the file system only to look for the admin CA.
 */
export function defaultConfig(options: { cwd: string }): GatewayConfig {
  const cwd = resolve(options.cwd);
  const stateDir = resolve(cwd, DEFAULTS.stateDir);
  const demo = demoIssuerFiles(stateDir);
  const upstreams: GatewayConfig["upstreams"] = Object.fromEntries(
    Object.entries(DEMO_UPSTREAM_PORTS).map(([name, port]) => [name, {
      name, url: `http://127.0.0.1:${port}`, timeoutMs: DEFAULTS.upstream.timeoutMs, connectTimeoutMs: DEFAULTS.upstream.connectTimeoutMs,
    }]),
  );
  const adminFiles = demoAdminFiles(stateDir);
  let admin: ListenerConfig | null = null;
  if (existsSync(adminFiles.caFile)) {
    const identities = existsSync(adminFiles.identitiesFile) ? readDemoIdentities(adminFiles.identitiesFile) : {};
    admin = { ...listener("127.0.0.1", 9443), clientCaFile: adminFiles.caFile, requireClientCertificate: true, certificateMapping: { identities } };
  }
  const config: GatewayConfig = {
    source: null,
    stateDir,
    listen: listener("127.0.0.1", 8443),
    admin,
    issuers: [{
      name: DEMO_ISSUER.name,
      issuer: DEMO_ISSUER.issuer,
      audience: [DEMO_ISSUER.audience],
      jwksFile: demo.jwksFile,
      jwksUrl: null,
      jwksCaFile: null,
      algorithms: [DEMO_ISSUER.algorithm],
      hmacSecret: null,
      clockToleranceMs: DEFAULTS.issuer.clockToleranceMs,
      maxLifetimeMs: DEFAULTS.issuer.maxLifetimeMs,
      requiredClaims: [...DEFAULTS.issuer.requiredClaims],
      claims: { sub: "sub", roles: "roles", mfa: "mfa", team: "team" },
      constants: {},
    }],
    upstreams,
    policy: { dir: resolve(cwd, DEFAULTS.policy.dir), requireSignature: false, trustedKeysFile: null, minSigners: 1, watch: true, debounceMs: DEFAULTS.policy.debounceMs },
    audit: { ...DEFAULTS.audit, dir: resolve(cwd, DEFAULTS.audit.dir), headerAllowlist: [...DEFAULTS.audit.headerAllowlist] },
    ledger: { path: join(stateDir, DEFAULTS.ledger.file), retentionDays: DEFAULTS.ledger.retentionDays, hideDetails: DEFAULTS.ledger.hideDetails },
    identity: { header: DEFAULTS.identity.header, ttlMs: DEFAULTS.identity.ttlMs, stripHeaders: [...DEFAULTS.identity.stripHeaders] },
    noRouteStatus: DEFAULTS.noRouteStatus,
    hideDenyDetails: DEFAULTS.hideDenyDetails,
    trustRequestId: DEFAULTS.trustRequestId,
    maxBodyBytes: DEFAULTS.maxBodyBytes,
    log: { level: DEFAULTS.logLevel },
    shutdown: { ...DEFAULTS.shutdown },
    demo: true,
  };
  return deepFreeze(config);
}

/** `<stateDir>/admin/identities.json`; throws `GatewayError` `CONFIG_BAD_VALUE` when it is not a JSON object. */
function readDemoIdentities(file: string): Record<string, Record<string, unknown>> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new GatewayError("CONFIG_BAD_VALUE", `\`${file}\` is not valid JSON (${(e as Error).message.replace(/^JSON Parse error: /, "").toLowerCase()})`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new GatewayError("CONFIG_BAD_VALUE", `\`${file}\` must map each certificate identity to its attributes: \`{"<id>": {...}}\``);
  }
  return doc as Record<string, Record<string, unknown>>;
}

/** Freezes a config object graph: the config is immutable data shared by every module. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
