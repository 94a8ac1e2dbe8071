// JWT bearer authentication (RFC 7519, RFC 6750): pick the issuer by the token's unverified `iss`,
// verify with jose against that issuer's keys and rules, map the claims to a typed principal, and
// remember the result by token digest until the token expires or the key that verified it goes.
// Security rules follow RFC 8725 (JWT Best Current Practices): explicit algorithm allow-list per
// issuer, `none` never, HMAC only with a configured secret and never with keys from a JWKS.
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyOptions, type JWSHeaderParameters, type FlattenedJWSInput } from "jose";
import { parseIp, type Principal, type PrincipalSchema } from "../../dsl/mod.ts";
import type { JwtIssuerConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { bearerValueOf, compactJwsFailure } from "./bearer.ts";
import { mapClaimsToPrincipal, readClaim } from "./claims.ts";
import { authnFailure, failureFromJoseError, type AuthnFailure } from "./errors.ts";
import { createFileKeySet, createRemoteKeySet, keyBinding, type IssuerKeySet } from "./jwks.ts";
import { schemaId, tokenDigest, VerifiedTokenCache, type VerifiedToken } from "./token-cache.ts";
import { readFileSync } from "node:fs";

/** A successful authentication. */
export interface AuthnSuccess {
  ok: true;
  principal: Principal;
  /** The token's `iss` (equal to the matching issuer's configured `issuer`). */
  issuer: string;
  method: "jwt";
  /** The token's `exp`, epoch milliseconds: the principal must not be used after it. */
  expiresAt: number;
}

/** The outcome of {@link JwtAuthenticator.authenticate}: a principal, or a coded failure. */
export type AuthnResult = AuthnSuccess | AuthnFailure;

export interface JwtAuthenticatorOptions {
  /** Trusted issuers; each `iss` at most once. */
  issuers: readonly JwtIssuerConfig[];
  /** Clock, epoch milliseconds; default `Date.now`. Drives token time checks, cache expiry and JWKS file checks. */
  now?: () => number;
  /** Most verified tokens remembered (least recently used evicted); 0 disables the cache. Default 10 000. */
  cacheSize?: number;
  /** A JWKS file is stat'ed at most this often (default 1000 ms). */
  jwksFileCheckIntervalMs?: number;
  /** A JWKS URL is re-fetched when its keys are older than this (default 10 minutes). */
  jwksCacheMaxAgeMs?: number;
  /** After a JWKS fetch, an unknown `kid` triggers another fetch only after this long (default 30 s). */
  jwksCooldownMs?: number;
  /** Timeout of one JWKS fetch (default 5 s). */
  jwksTimeoutMs?: number;
}

/** Counters for metrics and tests. */
export interface AuthnStats {
  /** Signature verifications attempted (cache misses that got as far as a key). */
  verifications: number;
  /** Requests answered from the verified-token cache. */
  cacheHits: number;
  /** Entries in the cache now. */
  cacheEntries: number;
  /** JWKS loads (file reads and HTTP fetches) per issuer name. */
  jwksLoads: Record<string, number>;
}

export interface JwtAuthenticator {
  /**
   * Authenticates one request from its `Authorization` header value. Never throws for bad input:
   * every failure is a result with a stable code (see {@link AuthnErrorCode}).
   * `schema` is the active policy's principal schema; principals are cached per schema content.
   */
  /** Synchronous for a cached token (no promise to await on the hot path); a promise when it must verify. */
  authenticate(authorization: string | null, schema: PrincipalSchema): AuthnResult | Promise<AuthnResult>;
  /** Forgets every verified token (e.g. on a policy or issuer change). */
  clear(): void;
  stats(): AuthnStats;
}

/** Every JWS algorithm the gateway can verify (RFC 7518 §3.1, RFC 8037). `none` is deliberately absent. */
export const SUPPORTED_ALGORITHMS: readonly string[] = [
  "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
  "HS256", "HS384", "HS512",
];

const isHmac = (alg: string) => alg.startsWith("HS");

// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
const HMAC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };

interface Issuer {
  config: JwtIssuerConfig;
  allowed: ReadonlySet<string>;
  keySet: IssuerKeySet | null;
  hmacKey: Uint8Array | null;
  toleranceMs: number;
  verifyOptions: JWTVerifyOptions;
}

function badConfig(issuer: string, message: string): GatewayError {
  return new GatewayError("AUTHN_BAD_CONFIG", `issuers.${issuer}: ${message}`, { issuer });
}

function prepareIssuer(config: JwtIssuerConfig, options: Required<Omit<JwtAuthenticatorOptions, "issuers">>): Issuer {
  const name = config.name;
  if (config.algorithms.length === 0) throw badConfig(name, "no algorithms allowed");
  for (const alg of config.algorithms) {
    if (alg.toLowerCase() === "none") throw badConfig(name, "algorithm `none` is never allowed");
    if (!SUPPORTED_ALGORITHMS.includes(alg)) throw badConfig(name, `unknown algorithm \`${alg}\``);
  }
  const hmacAlgs = config.algorithms.filter(isHmac);
  const publicKeyAlgs = config.algorithms.filter((alg) => !isHmac(alg));
  let hmacKey: Uint8Array | null = null;
  if (hmacAlgs.length > 0) {
    if (config.hmacSecret === null) throw badConfig(name, `\`${hmacAlgs[0]}\` needs \`hmac_secret\` or \`hmac_secret_file\``);
    hmacKey = new TextEncoder().encode(config.hmacSecret);
    for (const alg of hmacAlgs) {
      if (hmacKey.length < HMAC_MIN_BYTES[alg]!) throw badConfig(name, `\`hmac_secret\` is shorter than ${HMAC_MIN_BYTES[alg]} bytes, too short for \`${alg}\``);
    }
  } else if (config.hmacSecret !== null) {
    throw badConfig(name, "`hmac_secret` is set but no HS algorithm is allowed");
  }
  if (config.jwksFile !== null && config.jwksUrl !== null) throw badConfig(name, "set `jwks_file` or `jwks_url`, not both");
  let keySet: IssuerKeySet | null = null;
  if (publicKeyAlgs.length > 0) {
    if (config.jwksFile !== null) {
      keySet = createFileKeySet(config.jwksFile, { now: options.now, checkIntervalMs: options.jwksFileCheckIntervalMs });
    } else if (config.jwksUrl !== null) {
      let url: URL;
      try { url = new URL(config.jwksUrl); } catch { throw badConfig(name, `\`jwks_url\` is not a URL: \`${config.jwksUrl}\``); }
      // Keys fetched in clear text could be swapped on the way; loopback (a local IdP in development) cannot.
      if (!(url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname)))) {
        throw badConfig(name, `\`jwks_url\` must be https (plain http only on loopback): \`${config.jwksUrl}\``);
      }
      let caPem: string | null = null;
      if (config.jwksCaFile !== null) {
        try { caPem = readFileSync(config.jwksCaFile, "utf8"); } catch (cause) {
          throw badConfig(name, `cannot read \`jwks_ca\` \`${config.jwksCaFile}\`: ${(cause as Error).message}`);
        }
      }
      keySet = createRemoteKeySet(url.href, {
        caPem, cacheMaxAgeMs: options.jwksCacheMaxAgeMs, cooldownMs: options.jwksCooldownMs, timeoutMs: options.jwksTimeoutMs,
      });
    } else {
      throw badConfig(name, `\`${publicKeyAlgs[0]}\` needs \`jwks_file\` or \`jwks_url\``);
    }
  }
  if (config.audience.length === 0) throw badConfig(name, "no audience: tokens meant for other services would be accepted");
  if (!(config.maxLifetimeMs > 0)) throw badConfig(name, "`max_lifetime` must be positive");
  return {
    config,
    allowed: new Set(config.algorithms),
    keySet,
    hmacKey,
    toleranceMs: config.clockToleranceMs,
    verifyOptions: {
      algorithms: [...config.algorithms],
      issuer: config.issuer,
      audience: [...config.audience],
      clockTolerance: config.clockToleranceMs / 1000,
      // Both are needed to bound the token's lifetime.
      requiredClaims: ["iat", "exp"],
    },
  };
}

// An address in 127.0.0.0/8 or ::1, or `localhost`; a name like `127.example.com` is not loopback.
function isLoopbackHost(hostname: string): boolean {
  if (hostname === "localhost") return true;
  const ip = parseIp(hostname);
  return ip !== null && (ip.v6 ? ip.addr === 1n : ip.addr >> 24n === 127n);
}

/** Keeps user-supplied text short inside messages. */
function shown(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

/**
 * Creates the JWT bearer authenticator for the configured issuers. Throws a `GatewayError` with code
 * `AUTHN_BAD_CONFIG` for an unsafe or incomplete issuer (alg `none`, HS* without a secret, no key
 * source, a non-https JWKS URL, no audience, a duplicate `iss`).
 *
 * @example
 * const authn = createJwtAuthenticator({ issuers: config.issuers });
 * const result = await authn.authenticate(request.headers.get("authorization"), policy.principalSchema);
 * if (!result.ok) return new Response(null, { status: AUTHN_HTTP_STATUS[result.code], headers: { "www-authenticate": wwwAuthenticate(result) } });
 */
export function createJwtAuthenticator(options: JwtAuthenticatorOptions): JwtAuthenticator {
  const settings = {
    now: options.now ?? Date.now,
    cacheSize: options.cacheSize ?? 10_000,
    jwksFileCheckIntervalMs: options.jwksFileCheckIntervalMs ?? 1000,
    jwksCacheMaxAgeMs: options.jwksCacheMaxAgeMs ?? 600_000,
    jwksCooldownMs: options.jwksCooldownMs ?? 30_000,
    jwksTimeoutMs: options.jwksTimeoutMs ?? 5000,
  };
  const issuers = new Map<string, Issuer>();
  for (const config of options.issuers) {
    if (issuers.has(config.issuer)) throw badConfig(config.name, `issuer \`${config.issuer}\` is configured twice`);
    issuers.set(config.issuer, prepareIssuer(config, settings));
  }
  const cache = new VerifiedTokenCache(settings.cacheSize);
  let verifications = 0;
  let cacheHits = 0;
  const pending = new Map<string, Promise<AuthnResult>>();

  /** Verifies signature and registered claims; `key` is the key set's key that verified it (null for HMAC). */
  async function verifyToken(token: string, issuer: Issuer, keySet: IssuerKeySet | null): Promise<{ ok: true; payload: JWTPayload; key: CryptoKey | null } | AuthnFailure> {
    let resolved: CryptoKey | null = null;
    const getKey = async (header: JWSHeaderParameters, input: FlattenedJWSInput): Promise<CryptoKey | Uint8Array> => {
      // The allow-list was checked before; HMAC keys never come from a JWKS (jose refuses those too).
      if (keySet === null) return issuer.hmacKey!;
      resolved = await keySet.resolve(header, input);
      return resolved;
    };
    const verifyOptions = { ...issuer.verifyOptions, currentDate: new Date(settings.now()) };
    verifications++;
    try {
      const { payload } = await jwtVerify(token, getKey, verifyOptions);
      return { ok: true, payload, key: resolved };
    } catch (err) {
      if (!isMultipleMatchingKeys(err)) return failureFromJoseError(err);
      // Several keys match (no `kid`, or a shared one): the token is valid if one of them verifies it.
      let last: unknown = err;
      let tried = 0;
      for await (const key of err) {
        if (++tried > 8) break;
        try {
          const { payload } = await jwtVerify(token, key, verifyOptions);
          return { ok: true, payload, key };
        } catch (e) {
          last = e;
        }
      }
      return failureFromJoseError(last);
    }
  }

  function authenticate(authorization: string | null, schema: PrincipalSchema): AuthnResult | Promise<AuthnResult> {
    const bearer = bearerValueOf(authorization);
    if (!bearer.ok) return bearer;
    const token = bearer.token;
    if (settings.cacheSize === 0) return compactJwsFailure(token) ?? verifyAndMap(token, schema, "");
    const cacheKey = `${schemaId(schema)}:${tokenDigest(token)}`;
    const hit = cache.get(cacheKey);
    // Only a token verified before is in the cache, under the digest of its exact text: a hit is a
    // compact JWS, and only a miss needs the syntax check (a regular expression over the token).
    if (hit === undefined) return compactJwsFailure(token) ?? verifyOnce(token, schema, cacheKey);
    if (settings.now() >= hit.usableUntil) {
      cache.delete(cacheKey);
      return authnFailure("AUTHN_TOKEN_EXPIRED", "token expired");
    }
    const keySet = hit.key === null ? null : issuers.get(hit.issuer)?.keySet ?? null;
    // The hit waits for the same key re-read an uncached token would: a removed key stops its
    // cached tokens within the re-read interval, not when some other token happens to miss.
    const refreshing = keySet?.refreshIfDue() ?? null;
    if (refreshing === null) return fromCache(cacheKey, hit, keySet) ?? verifyOnce(token, schema, cacheKey);
    return refreshing.then(
      () => fromCache(cacheKey, hit, keySet) ?? verifyOnce(token, schema, cacheKey),
      (err: unknown) => failureFromJoseError(err),
    );
  }

  /** A burst of requests with one new token (a client's parallel calls) verifies it once. */
  function verifyOnce(token: string, schema: PrincipalSchema, cacheKey: string): Promise<AuthnResult> {
    const inFlight = pending.get(cacheKey);
    if (inFlight !== undefined) return inFlight;
    const result = verifyAndMap(token, schema, cacheKey);
    pending.set(cacheKey, result);
    return result.finally(() => pending.delete(cacheKey));
  }

  /** The cached principal, or null (entry dropped) when the issuer's keys no longer select its key. */
  function fromCache(cacheKey: string, hit: VerifiedToken, keySet: IssuerKeySet | null): AuthnResult | null {
    if (keySet !== null && hit.key !== null && keySet.generation !== hit.confirmedGeneration) {
      if (!keySet.stillSelects(hit.key)) {
        cache.delete(cacheKey);
        return null;
      }
      hit.confirmedGeneration = keySet.generation;
    }
    cacheHits++;
    return { ok: true, principal: hit.principal, issuer: hit.issuer, method: "jwt", expiresAt: hit.expiresAt };
  }

  /** The uncached path: select the issuer, verify, check lifetime and claims, map, remember. */
  async function verifyAndMap(token: string, schema: PrincipalSchema, cacheKey: string): Promise<AuthnResult> {
    let header: JWSHeaderParameters;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token) as JWSHeaderParameters;
      unverified = decodeJwt(token);
    } catch {
      return authnFailure("AUTHN_MALFORMED_TOKEN", "bearer token is not a well-formed JWT");
    }
    if (unverified.iss === undefined) return authnFailure("AUTHN_MISSING_CLAIM", "token lacks the required `iss` claim");
    if (typeof unverified.iss !== "string") return authnFailure("AUTHN_BAD_ISSUER", "token `iss` claim is not a string");
    const issuer = issuers.get(unverified.iss);
    if (issuer === undefined) return authnFailure("AUTHN_UNKNOWN_ISSUER", `issuer \`${shown(unverified.iss)}\` is not trusted`);
    const alg = typeof header.alg === "string" ? header.alg : "";
    if (!issuer.allowed.has(alg)) {
      return authnFailure("AUTHN_ALG_NOT_ALLOWED", `algorithm \`${shown(alg)}\` is not allowed for issuer \`${issuer.config.name}\``);
    }

    const keySet = isHmac(alg) ? null : issuer.keySet;
    const verified = await verifyToken(token, issuer, keySet);
    if (!verified.ok) return verified;
    const payload = verified.payload;

    // jwtVerify required both and checked them as numbers.
    const iat = payload.iat!;
    const exp = payload.exp!;
    const nowMs = settings.now();
    if (iat * 1000 > nowMs + issuer.toleranceMs) {
      // Without this, a far-future `iat` would make `exp - iat` look short on a long-lived token.
      return authnFailure("AUTHN_TOKEN_NOT_YET_VALID", "token is issued in the future (`iat`)");
    }
    if ((exp - iat) * 1000 > issuer.config.maxLifetimeMs) {
      return authnFailure("AUTHN_TOKEN_LIFETIME_TOO_LONG", `token lifetime ${exp - iat}s exceeds the issuer's maximum of ${Math.floor(issuer.config.maxLifetimeMs / 1000)}s`);
    }
    for (const claim of issuer.config.requiredClaims) {
      if (readClaim(payload, claim) === undefined) return authnFailure("AUTHN_MISSING_CLAIM", `token lacks the required \`${claim}\` claim`);
    }
    const mapped = mapClaimsToPrincipal(payload, schema, issuer.config);
    if (!mapped.ok) return mapped;

    const expiresAt = exp * 1000;
    if (cacheKey !== "") {
      // HMAC tokens depend on no key set. A key-set token is cached with the key that verified it,
      // and only if the keys held now still select that key (they may have changed meanwhile).
      const key = keySet === null || verified.key === null ? null : await keyBinding(verified.key, header);
      const cacheable = keySet === null || (key !== null && keySet.stillSelects(key));
      if (cacheable) {
        cache.set(cacheKey, {
          principal: mapped.principal,
          issuer: issuer.config.issuer,
          expiresAt,
          usableUntil: expiresAt + issuer.toleranceMs,
          key,
          confirmedGeneration: keySet?.generation ?? 0,
        });
      }
    }
    return { ok: true, principal: mapped.principal, issuer: issuer.config.issuer, method: "jwt", expiresAt };
  }

  return {
    authenticate,
    clear: () => cache.clear(),
    stats: () => ({
      verifications,
      cacheHits,
      cacheEntries: cache.size,
      jwksLoads: Object.fromEntries([...issuers.values()].map((i) => [i.config.name, i.keySet?.loads ?? 0])),
    }),
  };
}

function isMultipleMatchingKeys(err: unknown): err is Error & AsyncIterable<CryptoKey> {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS"
    && Symbol.asyncIterator in err;
}
