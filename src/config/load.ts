// `gateway.toml` → GatewayConfig. smol-toml parses; the sections below validate by hand,
// collecting every error with its key path (and line:col when the key is found in the text).
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { parseIp } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import { normalizeFieldName } from "../http/mod.ts";
import { DEFAULT_RESERVATION_TTL_MS } from "../ledger/mod.ts";
import { parsePostgresUrl } from "../ledger/mod.ts";
import { ASYMMETRIC_ALGORITHMS, DEFAULTS, MAX_WORKERS, HMAC_ALGORITHMS } from "./defaults.ts";
import { SECRET_HEADERS } from "../http/mod.ts";
import { deepFreeze, defaultConfig } from "./builtin.ts";
import { type KeySegment, locateKeys } from "./locate.ts";
import { ConfigContext, describeValue, isTable, Section } from "./read.ts";
import { closestMatch } from "./suggest.ts";
import type {
  AuditConfig, CertificateMapping, ConfigError, GatewayConfig, IdentityTokenConfig, JwtIssuerConfig,
  LedgerConfig, ListenerConfig, PolicyConfig, PostgresLedgerConfig, ShutdownConfig, SniCertificate, UpstreamConfig,
} from "./types.ts";

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Directory a relative config path (and the built-in default) resolves against. */
  cwd: string;
  /**
   * Whether files the config names (certificates, keys, CAs, JWKS, trusted keys, secrets) must exist.
   * Default true; `false` checks the shape only (linting a config on another machine, the example config).
   */
  checkFiles?: boolean;
}

export type LoadConfigResult = { ok: true; config: GatewayConfig } | { ok: false; errors: ConfigError[] };

/**
 * Loads and validates a config file; `path` null gives the built-in default ({@link defaultConfig}).
 * Never throws for a bad file: every problem comes back as a {@link ConfigError}, sorted by line.
 *
 * @example
 * const result = loadConfig("gateway.toml", { cwd: process.cwd() });
 * if (!result.ok) for (const e of result.errors) console.error(`${e.line}:${e.col}: ${e.message}`);
 */
export function loadConfig(path: string | null, options: LoadConfigOptions): LoadConfigResult {
  if (path === null) {
    try {
      return { ok: true, config: defaultConfig({ cwd: options.cwd }) };
    } catch (error) {
      // The built-in default reads one optional file (the demo admin identities); a bad one is a config error.
      if (error instanceof GatewayError && error.code === "CONFIG_BAD_VALUE") return { ok: false, errors: [{ code: "CONFIG_BAD_VALUE", path: "", message: error.message }] };
      throw error;
    }
  }
  const source = isAbsolute(path) ? path : resolve(options.cwd, path);
  let text: string;
  try {
    text = readFileSync(source, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(error as Error).message})`;
    return { ok: false, errors: [{ code: "CONFIG_NOT_FOUND", path: "", message: `config file \`${source}\` ${reason}` }] };
  }
  return parseConfigText(text, source, options.checkFiles ?? true);
}

/** Validates config text as if read from `source` (relative paths resolve against its directory). */
export function parseConfigText(text: string, source: string, checkFiles = true): LoadConfigResult {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      return { ok: false, errors: [{ code: "CONFIG_SYNTAX", path: "", message: `invalid TOML: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`, line: error.line, col: error.column }] };
    }
    throw error;
  }
  const ctx = new ConfigContext(dirname(source), locateKeys(text), checkFiles);
  const config = readGatewayConfig(new Section(ctx, [], raw), source);
  if (ctx.errors.length > 0) {
    const errors = [...ctx.errors].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.col ?? 0) - (b.col ?? 0));
    return { ok: false, errors };
  }
  return { ok: true, config: deepFreeze(config) };
}

function readGatewayConfig(root: Section, source: string): GatewayConfig {
  const ctx = root.ctx;
  const stateDir = root.directory("state_dir", DEFAULTS.stateDir);
  const noRouteStatus = root.integer("no_route_status", DEFAULTS.noRouteStatus);
  if (noRouteStatus !== 404 && noRouteStatus !== 403) ctx.report("CONFIG_BAD_VALUE", root.at("no_route_status"), `must be 404 or 403, got \`${noRouteStatus}\``);
  const hideDenyDetails = root.boolean("hide_deny_details", DEFAULTS.hideDenyDetails);
  const trustRequestId = root.boolean("trust_request_id", DEFAULTS.trustRequestId);
  const maxBodyBytes = root.size("max_body_bytes", DEFAULTS.maxBodyBytes, { min: 1 });

  const listenSection = root.table("listen");
  const workers = listenSection ? readWorkers(listenSection) : DEFAULTS.workers;
  const workerStartTimeoutMs = listenSection?.duration("worker_start_timeout", DEFAULTS.workerStartTimeoutMs, { min: 1 }) ?? DEFAULTS.workerStartTimeoutMs;
  const listen = readListener(listenSection ?? new Section(ctx, ["listen"], {}), "listen");
  const adminSection = root.table("admin");
  const admin = adminSection ? readListener(adminSection, "admin") : null;
  if (admin) checkListenerSeparation(ctx, listen, admin);

  const identity = readIdentity(root.table("identity"), ctx);
  const issuers = readIssuers(root.table("issuers"));
  const upstreams = readUpstreams(root.table("upstreams"));
  const policy = readPolicy(root.table("policy") ?? new Section(ctx, ["policy"], {}));
  const audit = readAudit(root.table("audit") ?? new Section(ctx, ["audit"], {}), identity.header);
  const ledger = readLedger(root.table("ledger"), stateDir);
  const logSection = root.table("log");
  const level = logSection?.choice("level", ["debug", "info", "warn", "error"] as const, DEFAULTS.logLevel) ?? DEFAULTS.logLevel;
  logSection?.finish();
  const shutdown = readShutdown(root.table("shutdown"));
  root.finish();

  return {
    source, stateDir, listen, workers, workerStartTimeoutMs, admin, issuers, upstreams, policy, audit, ledger, identity,
    noRouteStatus: noRouteStatus === 403 ? 403 : 404,
    hideDenyDetails, trustRequestId, maxBodyBytes,
    log: { level },
    shutdown,
    demo: false,
  };
}

// ---------------------------------------------------------------- listeners

/** Parses `host:port` / `[v6]:port`; the host is returned without brackets. */
export function parseAddress(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined) return parseIp(host)?.v6 ? { host, port } : null;
  if (/^[\d.]+$/.test(host)) return parseIp(host) ? { host, port } : null;
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host) ? { host, port } : null;
}

/**
 * `[listen] workers`: a whole number of processes (1 … `MAX_WORKERS`) or `"auto"`, one per core
 * this process may run on (`os.availableParallelism()`, capped at `MAX_WORKERS`).
 */
function readWorkers(section: Section): number {
  const auto = () => Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
  return section.integerOrAuto("workers", DEFAULTS.workers, auto, { min: 1, max: MAX_WORKERS });
}

const SERVER_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

function readCertificatePair(section: Section, what: string): { certFile: string; keyFile: string } | null {
  const certFile = section.file("cert", { what: `${what} certificate` });
  const keyFile = section.file("key", { what: `${what} private key` });
  if ((certFile === null) !== (keyFile === null)) {
    const missing = certFile === null ? "cert" : "key";
    section.ctx.report("CONFIG_CONFLICT", section.at(missing), `\`cert\` and \`key\` go together: \`${missing}\` is missing`);
    return null;
  }
  return certFile && keyFile ? { certFile, keyFile } : null;
}

function readListener(section: Section, kind: "listen" | "admin"): ListenerConfig {
  const ctx = section.ctx;
  const defaults = kind === "listen" ? DEFAULTS.listen : DEFAULTS.admin;
  const addressText = section.string("address", defaults.address);
  let address = parseAddress(addressText);
  if (!address) {
    ctx.report("CONFIG_BAD_ADDRESS", section.at("address"), `\`${addressText}\` is not a \`host:port\` address`, "e.g. `0.0.0.0:8443` or `[::1]:9443`");
    address = parseAddress(defaults.address)!;
  }
  const certificate = readCertificatePair(section, kind === "listen" ? "listener" : "admin listener");
  const minTls = section.choice("min_tls", ["1.2", "1.3"] as const, defaults.minTls);

  const sni: SniCertificate[] = [];
  const seenNames = new Set<string>();
  for (const entry of section.tableArray("sni")) {
    const serverName = entry.string("server_name", null, true);
    const pair = readCertificatePair(entry, `certificate for server name`);
    if (pair === null && !entry.has("cert") && !entry.has("key")) ctx.report("CONFIG_MISSING_KEY", entry.at("cert"), "missing required keys `cert` and `key`");
    if (serverName !== null) {
      const name = serverName.toLowerCase();
      if (!SERVER_NAME.test(name)) ctx.report("CONFIG_BAD_VALUE", entry.at("server_name"), `\`${serverName}\` is not a DNS name (a leading \`*.\` wildcard is allowed)`);
      else if (seenNames.has(name)) ctx.report("CONFIG_CONFLICT", entry.at("server_name"), `server name \`${serverName}\` is listed twice`);
      seenNames.add(name);
      if (pair) sni.push({ serverName: name, ...pair });
    }
    entry.finish();
  }

  const clientCaFile = section.file("client_ca", { required: kind === "admin", what: "client CA bundle" });
  let requireClientCertificate = true;
  if (kind === "listen") {
    requireClientCertificate = section.boolean("require_client_cert", false);
    if (requireClientCertificate && clientCaFile === null) {
      ctx.report("CONFIG_CONFLICT", section.at("require_client_cert"), "`require_client_cert` needs `client_ca`");
    }
  }

  const identities: Record<string, Record<string, unknown>> = {};
  const identitiesSection = section.table("identities");
  if (identitiesSection) {
    if (clientCaFile === null) ctx.report("CONFIG_CONFLICT", identitiesSection.segments, "`identities` needs `client_ca` (client certificates are only requested with a CA)");
    for (const name of identitiesSection.keys()) {
      const attributes = identitiesSection.rawValue(name);
      if (!isTable(attributes)) {
        ctx.report("CONFIG_WRONG_TYPE", identitiesSection.at(name), `expected a table of principal attributes, got ${describeValue(attributes)}`);
        continue;
      }
      if ("sub" in attributes) ctx.report("CONFIG_BAD_VALUE", [...identitiesSection.at(name), "sub"], "`sub` is set from the certificate identity and cannot be mapped");
      checkAttributeValues(ctx, [...identitiesSection.segments, name], attributes);
      identities[name] = { ...attributes };
    }
  }
  section.finish();
  const mapping: CertificateMapping = { identities };
  return {
    host: address.host, port: address.port, certificate, sni, clientCaFile, requireClientCertificate,
    certificateMapping: mapping, minTlsVersion: minTls === "1.3" ? "TLSv1.3" : "TLSv1.2",
  };
}

/** Attribute values (identity mappings, issuer constants) are strings, integers, booleans or lists of strings. */
function checkAttributeValues(ctx: ConfigContext, at: (string | number)[], attributes: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(attributes)) {
    const ok = typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isSafeInteger(value))
      || (Array.isArray(value) && value.every((v) => typeof v === "string"));
    if (!ok) ctx.report("CONFIG_WRONG_TYPE", [...at, key], `expected a string, integer, boolean or list of strings, got ${describeValue(value)}`);
  }
}

function sameInterface(a: string, b: string): boolean {
  const wildcard = (h: string) => h === "0.0.0.0" || h === "::";
  const canonical = (h: string) => (h === "localhost" ? "127.0.0.1" : parseIp(h)?.text ?? h.toLowerCase());
  return wildcard(a) || wildcard(b) || canonical(a) === canonical(b);
}

/** The admin channel must not share an address, a certificate or a client CA with the operational one. */
function checkListenerSeparation(ctx: ConfigContext, listen: ListenerConfig, admin: ListenerConfig): void {
  if (admin.port !== 0 && admin.port === listen.port && sameInterface(admin.host, listen.host)) {
    ctx.report("CONFIG_LISTENER_CONFLICT", ["admin", "address"], `admin listener \`${admin.host}:${admin.port}\` overlaps the operational listener \`${listen.host}:${listen.port}\``,
      "give the admin listener its own port");
  }
  const operationalFiles = new Set<string>();
  for (const pair of [listen.certificate, ...listen.sni]) if (pair) { operationalFiles.add(pair.certFile); operationalFiles.add(pair.keyFile); }
  if (admin.certificate) {
    for (const [key, file] of [["cert", admin.certificate.certFile], ["key", admin.certificate.keyFile]] as const) {
      if (operationalFiles.has(file)) ctx.report("CONFIG_LISTENER_CONFLICT", ["admin", key], `admin listener shares \`${file}\` with the operational listener`, "the admin channel needs its own certificate and key");
    }
  }
  for (const [index, pair] of admin.sni.entries()) {
    if (operationalFiles.has(pair.certFile) || operationalFiles.has(pair.keyFile)) {
      ctx.report("CONFIG_LISTENER_CONFLICT", ["admin", "sni", index], "admin listener shares a certificate with the operational listener");
    }
  }
  if (admin.clientCaFile !== null && admin.clientCaFile === listen.clientCaFile) {
    ctx.report("CONFIG_LISTENER_CONFLICT", ["admin", "client_ca"], "admin listener trusts the same client CA as the operational listener",
      "admin client certificates come from their own CA, so operational certificates cannot reach admin routes");
  }
}

// ---------------------------------------------------------------- issuers

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const ALL_ALGORITHMS = [...ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS] as readonly string[];

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

function readIssuers(section: Section | null): JwtIssuerConfig[] {
  if (!section) return [];
  const issuers: JwtIssuerConfig[] = [];
  const ctx = section.ctx;
  for (const name of section.keys()) {
    const table = section.rawValue(name);
    if (!isTable(table)) { ctx.report("CONFIG_WRONG_TYPE", section.at(name), `expected a table \`[issuers.${name}]\`, got ${describeValue(table)}`); continue; }
    if (!NAME.test(name)) ctx.report("CONFIG_BAD_VALUE", section.at(name), `issuer name \`${name}\` must be letters, digits, \`_\` or \`-\``);
    issuers.push(readIssuer(new Section(ctx, section.at(name), table), name));
  }
  const seen = new Map<string, string>();
  for (const issuer of issuers) {
    const other = seen.get(issuer.issuer);
    if (other) ctx.report("CONFIG_CONFLICT", ["issuers", issuer.name, "issuer"], `issuer \`${issuer.issuer}\` is also configured as \`issuers.${other}\``);
    seen.set(issuer.issuer, issuer.name);
  }
  return issuers;
}

function readIssuer(section: Section, name: string): JwtIssuerConfig {
  const ctx = section.ctx;
  const issuer = section.string("issuer", null, true) ?? "";
  if (issuer === "" && section.has("issuer")) ctx.report("CONFIG_BAD_VALUE", section.at("issuer"), "must not be empty");
  // Required: without an audience check a token minted for another service would be accepted here.
  const audience = section.stringList("audience", [], { allowSingle: true, nonEmpty: true });
  if (section.raw["audience"] === undefined) ctx.report("CONFIG_MISSING_KEY", section.at("audience"), "missing required key `audience` (a string or a list of strings)");

  const jwksFile = section.file("jwks_file", { what: "JWKS file" });
  const jwksUrl = section.string("jwks_url", null);
  if (jwksUrl !== null) {
    let url: URL | null = null;
    try { url = new URL(jwksUrl); } catch { /* reported below */ }
    if (!url || !(url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname)))) {
      ctx.report("CONFIG_BAD_URL", section.at("jwks_url"), `\`${jwksUrl}\` is not an absolute https URL`, "plain http is accepted only for loopback hosts");
    }
  }
  if (jwksFile !== null && jwksUrl !== null) ctx.report("CONFIG_CONFLICT", section.at("jwks_url"), "set `jwks_file` or `jwks_url`, not both");
  if (jwksFile !== null && ctx.checkFiles) checkJwksFile(ctx, section.at("jwks_file"), jwksFile, 1);
  const jwksCaFile = section.file("jwks_ca", { what: "JWKS CA bundle" });
  if (jwksCaFile !== null && jwksUrl === null) ctx.report("CONFIG_CONFLICT", section.at("jwks_ca"), "`jwks_ca` applies only with `jwks_url`");

  const algorithms = section.stringList("algorithms", [...DEFAULTS.issuer.algorithms], { nonEmpty: true });
  for (const [index, alg] of algorithms.entries()) {
    if (alg.toLowerCase() === "none") {
      ctx.report("CONFIG_INSECURE_ALGORITHM", [...section.at("algorithms"), index], "`none` accepts unsigned tokens and is never allowed");
    } else if (!ALL_ALGORITHMS.includes(alg)) {
      const near = closestMatch(alg, ALL_ALGORITHMS);
      ctx.report("CONFIG_BAD_VALUE", [...section.at("algorithms"), index], `unknown algorithm \`${alg}\``, near ? `did you mean \`${near}\`?` : `one of ${ALL_ALGORITHMS.join(", ")}`);
    }
  }
  const wantsHmac = algorithms.some((a) => (HMAC_ALGORITHMS as readonly string[]).includes(a));
  const wantsKeys = algorithms.some((a) => (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a));

  let hmacSecret = section.string("hmac_secret", null);
  const hmacSecretFile = section.file("hmac_secret_file", { what: "HMAC secret file" });
  if (hmacSecret !== null && hmacSecretFile !== null) ctx.report("CONFIG_CONFLICT", section.at("hmac_secret_file"), "set `hmac_secret` or `hmac_secret_file`, not both");
  if (hmacSecret === null && hmacSecretFile !== null && existsSync(hmacSecretFile)) hmacSecret = readFileSync(hmacSecretFile, "utf8").trim();
  const secretKey = hmacSecretFile !== null ? "hmac_secret_file" : "hmac_secret";
  if (hmacSecret !== null && new TextEncoder().encode(hmacSecret).length < 32) {
    // RFC 7518 §3.2: the key must be at least as long as the hash output (256 bits for HS256).
    ctx.report("CONFIG_BAD_VALUE", section.at(secretKey), "HMAC secret must be at least 32 bytes (RFC 7518 §3.2)");
  }
  if (wantsHmac && hmacSecret === null && hmacSecretFile === null) {
    ctx.report("CONFIG_MISSING_SECRET", section.at("algorithms"), "HS* algorithms need `hmac_secret` or `hmac_secret_file`");
  }
  if (!wantsHmac && (hmacSecret !== null || hmacSecretFile !== null)) {
    ctx.report("CONFIG_CONFLICT", section.at(secretKey), "an HMAC secret is set but `algorithms` lists no HS* algorithm");
  }
  if (wantsKeys && jwksFile === null && jwksUrl === null) {
    ctx.report("CONFIG_MISSING_KEY", section.at("jwks_file"), "missing `jwks_file` or `jwks_url` (needed for the asymmetric algorithms in `algorithms`)");
  }

  const clockToleranceMs = section.duration("clock_tolerance", DEFAULTS.issuer.clockToleranceMs);
  const maxLifetimeMs = section.duration("max_lifetime", DEFAULTS.issuer.maxLifetimeMs, { min: 1000 });
  const requiredClaims = section.stringList("required_claims", [...DEFAULTS.issuer.requiredClaims]);

  const claims: Record<string, string> = { sub: "sub" };
  const claimsSection = section.table("claims");
  if (claimsSection) {
    for (const attribute of claimsSection.keys()) {
      const claim = claimsSection.rawValue(attribute);
      if (typeof claim !== "string" || !/^[^.\s]+(\.[^.\s]+)*$/.test(claim)) {
        ctx.report(typeof claim === "string" ? "CONFIG_BAD_VALUE" : "CONFIG_WRONG_TYPE", claimsSection.at(attribute),
          `expected a claim path such as \`realm_access.roles\`, got ${describeValue(claim)}`);
        continue;
      }
      claims[attribute] = claim;
    }
  }
  const constants: Record<string, unknown> = {};
  const constantsSection = section.table("constants");
  if (constantsSection) {
    const values: Record<string, unknown> = {};
    for (const attribute of constantsSection.keys()) values[attribute] = constantsSection.rawValue(attribute);
    checkAttributeValues(ctx, [...constantsSection.segments], values);
    for (const attribute of Object.keys(values)) {
      if (claimsSection?.raw[attribute] !== undefined) {
        ctx.report("CONFIG_CONFLICT", constantsSection.at(attribute), `attribute \`${attribute}\` is both mapped from a claim and set as a constant`);
      }
      constants[attribute] = values[attribute];
    }
    if ("sub" in values) ctx.report("CONFIG_BAD_VALUE", constantsSection.at("sub"), "`sub` comes from the token and cannot be a constant");
  }
  section.finish();
  return {
    name, issuer, audience, jwksFile, jwksUrl, jwksCaFile, algorithms, hmacSecret,
    clockToleranceMs, maxLifetimeMs, requiredClaims, claims, constants,
  };
}

/** A JWKS file must be JSON `{"keys": [...]}` with at least `minKeys` keys and no private parts. */
function checkJwksFile(ctx: ConfigContext, at: (string | number)[], file: string, minKeys: number): number | null {
  if (!existsSync(file)) return null;
  let keys: unknown;
  try {
    keys = (JSON.parse(readFileSync(file, "utf8")) as { keys?: unknown }).keys;
  } catch {
    ctx.report("CONFIG_BAD_VALUE", at, `\`${file}\` is not a JSON Web Key Set (RFC 7517 §5)`);
    return null;
  }
  if (!Array.isArray(keys) || keys.some((k) => !isTable(k) || typeof k.kty !== "string")) {
    ctx.report("CONFIG_BAD_VALUE", at, `\`${file}\` is not a JSON Web Key Set (RFC 7517 §5): expected \`{"keys": [...]}\``);
    return null;
  }
  if (keys.some((k) => isTable(k) && "d" in k)) ctx.report("CONFIG_BAD_VALUE", at, `\`${file}\` holds a private key; give the gateway public keys only`);
  if (keys.length < minKeys) ctx.report("CONFIG_BAD_VALUE", at, `\`${file}\` holds ${keys.length} key(s), at least ${minKeys} needed`);
  return keys.length;
}

// ---------------------------------------------------------------- upstreams, policy, audit, ledger, identity

// The duty ledger holds a reservation from the decision until the upstream answers; one older than
// its TTL is reported of unknown outcome, and an operator may release it. A request allowed to
// outlast the TTL would be taken for dead while the upstream still performs it.
const UPSTREAM_TIMEOUT_MAX = {
  ms: DEFAULT_RESERVATION_TTL_MS,
  why: "the duty ledger takes a request's reservation for one of unknown outcome then; a longer request could be released by an operator while the upstream still performs it",
};

function readUpstreams(section: Section | null): Record<string, UpstreamConfig> {
  const upstreams: Record<string, UpstreamConfig> = {};
  if (!section) return upstreams;
  const ctx = section.ctx;
  for (const name of section.keys()) {
    const table = section.rawValue(name);
    if (!isTable(table)) { ctx.report("CONFIG_WRONG_TYPE", section.at(name), `expected a table \`[upstreams.${name}]\`, got ${describeValue(table)}`); continue; }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      ctx.report("CONFIG_BAD_VALUE", section.at(name), `upstream name \`${name}\` must be an identifier (letters, digits, \`_\`) so policies can name it`);
    }
    const upstream = new Section(ctx, section.at(name), table);
    const url = upstream.string("url", null, true);
    if (url !== null) {
      let parsed: URL | null = null;
      try { parsed = new URL(url); } catch { /* reported below */ }
      if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
        ctx.report("CONFIG_BAD_URL", upstream.at("url"), `\`${url}\` is not an absolute http(s) URL`);
      } else if (parsed.search || parsed.hash || parsed.username || parsed.password) {
        ctx.report("CONFIG_BAD_URL", upstream.at("url"), `\`${url}\` must not carry credentials, a query or a fragment`);
      }
    }
    const timeoutMs = upstream.duration("timeout", DEFAULTS.upstream.timeoutMs, { min: 1, max: UPSTREAM_TIMEOUT_MAX });
    const connectTimeoutMs = upstream.duration("connect_timeout", DEFAULTS.upstream.connectTimeoutMs, { min: 1 });
    const client = upstream.choice("client", ["fetch", "pool"] as const, DEFAULTS.upstream.client);
    const caFile = upstream.file("ca", { what: "upstream CA bundle" });
    let caPem: string | null = null;
    if (caFile !== null) {
      if (url !== null && !url.startsWith("https://")) ctx.report("CONFIG_CONFLICT", upstream.at("ca"), "`ca` applies only to an `https://` upstream");
      // Deno's fetch takes CAs only in addition to its roots (`Deno.createHttpClient({ caCerts })`):
      // it could not trust this bundle alone, so it refuses rather than trust more than asked.
      if (isDeno) ctx.report("CONFIG_UNSUPPORTED_RUNTIME", upstream.at("ca"), "`ca` needs the Bun runtime: Deno's fetch cannot trust a CA bundle in place of its root store", "run the gateway binary, or trust the CA through the system store and drop `ca`");
      if (ctx.checkFiles && existsSync(caFile) && statSync(caFile).isFile()) caPem = readCaBundle(ctx, upstream.at("ca"), caFile);
    }
    const serverNameText = upstream.string("server_name", null);
    let serverName: string | null = null;
    if (serverNameText !== null) {
      serverName = serverNameText.toLowerCase();
      if (!UPSTREAM_SERVER_NAME.test(serverName)) ctx.report("CONFIG_BAD_VALUE", upstream.at("server_name"), `\`${serverNameText}\` is not a DNS name`, "SNI carries a host name, not an address or a wildcard");
      if (url !== null && !url.startsWith("https://")) ctx.report("CONFIG_CONFLICT", upstream.at("server_name"), "`server_name` applies only to an `https://` upstream");
      if (isDeno) ctx.report("CONFIG_UNSUPPORTED_RUNTIME", upstream.at("server_name"), "`server_name` needs the Bun runtime: Deno's fetch has no SNI or verification name of its own", "run the gateway binary, or name the upstream by the host its certificate holds");
    }
    const clientCertFile = upstream.file("cert", { what: "upstream client certificate" });
    const clientKeyFile = upstream.file("key", { what: "upstream client key" });
    let clientCertPem: string | null = null;
    let clientKeyPem: string | null = null;
    if (clientCertFile !== null || clientKeyFile !== null) {
      if (clientCertFile === null || clientKeyFile === null) {
        const missing = clientCertFile === null ? "cert" : "key";
        ctx.report("CONFIG_CONFLICT", upstream.at(missing), `\`cert\` and \`key\` go together: \`${missing}\` is missing`);
      } else {
        if (url !== null && !url.startsWith("https://")) ctx.report("CONFIG_CONFLICT", upstream.at("cert"), "`cert` and `key` apply only to an `https://` upstream");
        if (isDeno) ctx.report("CONFIG_UNSUPPORTED_RUNTIME", upstream.at("cert"), "a client certificate to an upstream needs the Bun runtime", "run the gateway binary");
        if (ctx.checkFiles && [clientCertFile, clientKeyFile].every((f) => existsSync(f) && statSync(f).isFile())) {
          ({ certPem: clientCertPem, keyPem: clientKeyPem } = readClientPair(ctx, upstream, clientCertFile, clientKeyFile));
        }
      }
    }
    upstream.finish();
    upstreams[name] = {
      name, url: url ?? "", timeoutMs, connectTimeoutMs, client, caFile, caPem, serverName, clientCertFile, clientKeyFile, clientCertPem, clientKeyPem,
    };
  }
  return upstreams;
}

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
// A DNS name with a letter in its last label (so not an IPv4 address), no wildcard.
const UPSTREAM_SERVER_NAME = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z]([a-z0-9-]*[a-z0-9])?$/;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM file (a CA bundle, a certificate chain), each parsed; null (and an error) when unreadable or without one. */
function readCaBundle(ctx: ConfigContext, at: readonly KeySegment[], file: string, what = "upstream CA bundle"): string | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    ctx.report("CONFIG_FILE_NOT_FOUND", at, `${what} \`${file}\` cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    return null;
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    ctx.report("CONFIG_BAD_VALUE", at, `\`${file}\` holds no PEM certificate (\`-----BEGIN CERTIFICATE-----\`)`);
    return null;
  }
  for (const [index, block] of blocks.entries()) {
    try { new X509Certificate(block); } catch {
      ctx.report("CONFIG_BAD_VALUE", at, `certificate ${index + 1} of \`${file}\` is not a valid X.509 certificate`);
      return null;
    }
  }
  return blocks.join("\n") + "\n";
}

/** An upstream's client certificate and key, read and checked to belong together; nulls (and an error) otherwise. */
function readClientPair(ctx: ConfigContext, section: Section, certFile: string, keyFile: string): { certPem: string | null; keyPem: string | null } {
  const none = { certPem: null, keyPem: null };
  const certPem = readCaBundle(ctx, section.at("cert"), certFile, "upstream client certificate");
  if (certPem === null) return none;
  let keyPem: string;
  let key: KeyObject;
  try {
    keyPem = readFileSync(keyFile, "utf8");
    key = createPrivateKey(keyPem);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "ENOENT" || code === "EISDIR") ctx.report("CONFIG_FILE_NOT_FOUND", section.at("key"), `upstream client key \`${keyFile}\` cannot be read (${code})`);
    else ctx.report("CONFIG_BAD_VALUE", section.at("key"), `\`${keyFile}\` is not a PEM private key`);
    return none;
  }
  if (!new X509Certificate(certPem).checkPrivateKey(key)) {
    ctx.report("CONFIG_BAD_VALUE", section.at("key"), `\`${keyFile}\` is not the key of the certificate \`${certFile}\``);
    return none;
  }
  return { certPem, keyPem };
}

function readPolicy(section: Section): PolicyConfig {
  const ctx = section.ctx;
  const dir = section.directory("dir", DEFAULTS.policy.dir);
  const requireSignature = section.boolean("require_signature", DEFAULTS.policy.requireSignature);
  const trustedKeysFile = section.file("trusted_keys", { what: "trusted signer keys (JWKS)" });
  const minSigners = section.integer("min_signers", DEFAULTS.policy.minSigners, { min: 1 });
  if (requireSignature && trustedKeysFile === null) {
    ctx.report("CONFIG_MISSING_KEY", section.at("trusted_keys"), "missing `trusted_keys` (required while `require_signature` is true)",
      "point it at a JWKS of the reviewers' public keys, or set `require_signature = false` for a demo");
  }
  if (trustedKeysFile !== null && ctx.checkFiles) checkJwksFile(ctx, section.at("trusted_keys"), trustedKeysFile, minSigners);
  const watch = section.boolean("watch", DEFAULTS.policy.watch);
  const debounceMs = section.duration("debounce", DEFAULTS.policy.debounceMs);
  section.finish();
  return { dir, requireSignature, trustedKeysFile, minSigners, watch, debounceMs };
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

function readHeaderList(section: Section, key: string, fallback: readonly string[]): string[] {
  const list = section.stringList(key, [...fallback]).map((h) => h.toLowerCase());
  for (const [index, header] of list.entries()) {
    if (!HEADER_NAME.test(header)) section.ctx.report("CONFIG_BAD_VALUE", [...section.at(key), index], `\`${header}\` is not an HTTP header name`);
  }
  return list;
}

function readAudit(section: Section, identityHeader: string): AuditConfig {
  const ctx = section.ctx;
  const dir = section.directory("dir", DEFAULTS.audit.dir);
  const fsync = section.choice("fsync", ["always", "batch", "off"] as const, DEFAULTS.audit.fsync);
  const batchIntervalMs = section.duration("batch_interval", DEFAULTS.audit.batchIntervalMs, { min: 1 });
  const rotateBytes = section.size("rotate_bytes", DEFAULTS.audit.rotateBytes, { min: 4096 });
  const rotateAgeMs = section.duration("rotate_age", DEFAULTS.audit.rotateAgeMs, { min: 1000 });
  const checkpointEvery = section.integer("checkpoint_every", DEFAULTS.audit.checkpointEvery, { min: 1 });
  const checkpointIntervalMs = section.duration("checkpoint_interval", DEFAULTS.audit.checkpointIntervalMs, { min: 1000 });
  const onFailure = section.choice("on_failure", ["deny", "allow"] as const, DEFAULTS.audit.onFailure);
  const stdout = section.boolean("stdout", DEFAULTS.audit.stdout);
  const headerAllowlist = readHeaderList(section, "header_allowlist", DEFAULTS.audit.headerAllowlist);
  for (const [index, header] of headerAllowlist.entries()) {
    if (SECRET_HEADERS.has(header) || header === identityHeader) {
      ctx.report("CONFIG_BAD_VALUE", [...section.at("header_allowlist"), index], `\`${header}\` carries credentials and is never written to the audit log`);
    }
  }
  section.finish();
  return { dir, fsync, batchIntervalMs, rotateBytes, rotateAgeMs, checkpointEvery, checkpointIntervalMs, onFailure, stdout, headerAllowlist };
}

function readLedger(section: Section | null, stateDir: string): LedgerConfig {
  const fallbackPath = join(stateDir, DEFAULTS.ledger.file);
  if (!section) return { path: fallbackPath, retentionDays: DEFAULTS.ledger.retentionDays, hideDetails: DEFAULTS.ledger.hideDetails, postgres: null };
  const ctx = section.ctx;
  const pathText = section.string("path", null);
  if (pathText === "") ctx.report("CONFIG_BAD_VALUE", section.at("path"), "must not be empty");
  const path = pathText ? ctx.resolvePath(pathText) : fallbackPath;
  const retentionDays = section.integer("retention_days", DEFAULTS.ledger.retentionDays, { min: 1 });
  const hideDetails = section.boolean("hide_details", DEFAULTS.ledger.hideDetails);
  const postgres = readPostgresLedger(section, pathText !== null);
  section.finish();
  return { path, retentionDays, hideDetails, postgres };
}

/** The shared PostgreSQL ledger's keys; null without `url` (the SQLite file then). */
function readPostgresLedger(section: Section, pathSet: boolean): PostgresLedgerConfig | null {
  const ctx = section.ctx;
  const url = section.string("url", null);
  const passwordFile = section.file("password_file", { what: "ledger password file" });
  const passwordEnv = section.string("password_env", null);
  const caFile = section.file("ca", { what: "ledger CA bundle" });
  // Also without `url`, so that the documented default can be written out; only PostgreSQL reads it.
  const timeoutMs = section.duration("timeout", DEFAULTS.ledger.timeoutMs, { min: 1 });
  if (url === null) {
    for (const key of ["password_file", "password_env", "ca"] as const) {
      if (section.has(key)) ctx.report("CONFIG_CONFLICT", section.at(key), `\`${key}\` applies only with \`url\` (a PostgreSQL ledger)`);
    }
    return null;
  }
  if (pathSet) ctx.report("CONFIG_CONFLICT", section.at("url"), "set `path` (a SQLite file) or `url` (a PostgreSQL server), not both");
  if (passwordFile !== null && passwordEnv !== null) ctx.report("CONFIG_CONFLICT", section.at("password_env"), "set `password_file` or `password_env`, not both");
  if (passwordEnv !== null && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(passwordEnv)) {
    ctx.report("CONFIG_BAD_VALUE", section.at("password_env"), `\`${passwordEnv}\` is not an environment variable name`);
  }
  let target: { host: string } | null = null;
  try {
    target = parsePostgresUrl(url);
  } catch (error) {
    ctx.report("CONFIG_BAD_URL", section.at("url"), (error as Error).message, "postgres://USER@HOST:PORT/DATABASE; the password goes in `password_file` or `password_env`");
  }
  if (target !== null && caFile === null && !isLoopbackHost(target.host)) {
    ctx.report("CONFIG_MISSING_KEY", section.at("ca"), `missing \`ca\`: the ledger at \`${target.host}\` is reached over the network, and its answers decide who may act`,
      "point `ca` at the CA bundle that signed the PostgreSQL server's certificate (TLS, host name verified)");
  }
  return { url, passwordFile, passwordEnv, caFile, timeoutMs };
}

function readShutdown(section: Section | null): ShutdownConfig {
  if (!section) return { ...DEFAULTS.shutdown };
  const drainMs = section.duration("drain", DEFAULTS.shutdown.drainMs);
  const timeoutMs = section.duration("timeout", DEFAULTS.shutdown.timeoutMs, { min: 1 });
  section.finish();
  return { drainMs, timeoutMs };
}

function readIdentity(section: Section | null, ctx: ConfigContext): IdentityTokenConfig {
  const fallback: IdentityTokenConfig = { header: DEFAULTS.identity.header, ttlMs: DEFAULTS.identity.ttlMs, stripHeaders: [...DEFAULTS.identity.stripHeaders] };
  if (!section) return fallback;
  let header = section.string("header", DEFAULTS.identity.header).toLowerCase();
  if (!HEADER_NAME.test(header)) {
    ctx.report("CONFIG_BAD_VALUE", section.at("header"), `\`${header}\` is not an HTTP header name`);
    header = DEFAULTS.identity.header;
  } else if (SECRET_HEADERS.has(header) || header === "host") {
    ctx.report("CONFIG_BAD_VALUE", section.at("header"), `\`${header}\` cannot carry the identity token`);
  }
  const ttlMs = section.duration("ttl", DEFAULTS.identity.ttlMs, { min: 1000 });
  // Matched as upstreams read field names (CGI and WSGI: `_` as `-`); kept in that form.
  const stripHeaders = readHeaderList(section, "strip_headers", DEFAULTS.identity.stripHeaders).map(normalizeFieldName);
  section.finish();
  return { header, ttlMs, stripHeaders };
}
