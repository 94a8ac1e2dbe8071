// The identity the gateway passes upstream: a short-lived JWT (RFC 7519) signed by the gateway,
// so an upstream trusts one key (the gateway's JWKS) instead of every issuer the gateway accepts.
import { SignJWT, exportJWK, importJWK } from "jose";
import type { JWK } from "jose";
import { GatewayError } from "../errors.ts";

/** Longest identity token lifetime: a leaked token is useless within a minute. */
export const MAX_IDENTITY_TOKEN_TTL_MS = 60_000;

export interface IdentityTokenSignerOptions {
  /** Private signing key: a CryptoKey (extractable, unless `publicKey` is given) or a private JWK. */
  privateKey: CryptoKey | JWK;
  /** Public key for `publicJwks()` when `privateKey` cannot be exported. */
  publicKey?: CryptoKey | JWK;
  kid: string;
  /** JWS algorithm, e.g. `EdDSA` or `ES256`. */
  alg: string;
  /** `iss` of every token. */
  issuer: string;
  /** Token lifetime, 1 000 … 60 000 ms. */
  ttlMs: number;
  /** Most tokens kept for reuse; the oldest is dropped first. Default 10 000. */
  maxCachedTokens?: number;
  /**
   * Sign a fresh token for every request, carrying `request_id` and its own `jti` (one signature
   * per request). Default false: tokens are cached and carry neither.
   */
  perRequestTokens?: boolean;
  /** Clock in epoch ms (tests and replays); default `Date.now`. */
  now?: () => number;
}

/** What the policy knows of a caller: `sub`, `roles` and the schema's other attributes. */
export interface IdentityPrincipal {
  readonly sub: string;
  readonly roles: ReadonlySet<string> | readonly string[];
  readonly [attribute: string]: unknown;
}

export interface IdentityTokenExtra {
  /** The duty being performed; becomes the `duty` claim (and part of the cache key). */
  duty?: string;
  /** Becomes `request_id` only with `perRequestTokens` (it would defeat the cache); upstreams read `x-request-id`. */
  requestId?: string;
}

export interface IdentityTokenSigner {
  /**
   * A signed token for `principal` calling `audience` (the upstream name). Equal inputs within
   * the first half of a token's life get the same token back without a new signature.
   */
  sign(principal: IdentityPrincipal, audience: string, extra?: IdentityTokenExtra): Promise<string>;
  /**
   * The token `sign` would give back right now when it is already signed and reusable, else
   * null: lets the request path skip a promise. Always null with `perRequestTokens`.
   */
  cached(principal: IdentityPrincipal, audience: string, extra?: IdentityTokenExtra): string | null;
  /** The public JWKS upstreams verify identity tokens with (`{ keys: [{ kid, alg, use: "sig", … }] }`). */
  publicJwks(): { keys: JWK[] };
  /** Tokens signed so far (each cache miss signs once). */
  readonly signatures: number;
}

// Claims set by the gateway; principal attributes of the same name never override them.
const REGISTERED = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "duty"]);
const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"];

/** JSON-able value of a principal attribute: Sets → sorted arrays, ip/cidr → their `text`. */
function toClaimValue(value: unknown): unknown {
  if (value === null || typeof value !== "object") return typeof value === "bigint" ? value.toString() : value;
  if (value instanceof Set) return [...value].map(toClaimValue).sort(compareJson);
  if (Array.isArray(value)) return value.map(toClaimValue);
  if ("kind" in value && "text" in value && ((value as { kind: unknown }).kind === "ip" || (value as { kind: unknown }).kind === "cidr")) {
    return (value as { text: string }).text;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = toClaimValue((value as Record<string, unknown>)[key]);
  return out;
}

function compareJson(a: unknown, b: unknown): number {
  const x = typeof a === "string" ? a : JSON.stringify(a);
  const y = typeof b === "string" ? b : JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function principalClaims(principal: IdentityPrincipal): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  for (const key of Object.keys(principal).sort()) {
    if (REGISTERED.has(key)) continue;
    claims[key] = key === "roles" ? toClaimValue(new Set(principal.roles)) : toClaimValue(principal[key]);
  }
  return claims;
}

interface CachedToken {
  token: Promise<string>;
  /** The signed token once `token` has resolved. */
  value?: string;
  /** Epoch ms after which a fresh token is signed (half the lifetime). */
  refreshAt: number;
}

/**
 * Creates the signer of identity tokens: `iss`, `sub`, `aud` (upstream name), `iat`, `exp`
 * (`iat` + ttl, at most 60 s), `jti` (one per signed token), `roles` (array), `duty` when given,
 * and the principal's other attributes as JSON values.
 *
 * Tokens are cached per (sub, audience, duty, attributes) and reused while more than half of
 * their life remains, so steady traffic costs one signature per caller per half-lifetime.
 *
 * @example
 * const signer = await createIdentityTokenSigner({ privateKey, kid: "gw-1", alg: "EdDSA", issuer: "https://gateway.internal", ttlMs: 30_000 });
 * headers.set("x-dutygate-identity", await signer.sign(principal, "deploy", { duty: "deploy_change" }));
 */
export async function createIdentityTokenSigner(options: IdentityTokenSignerOptions): Promise<IdentityTokenSigner> {
  const { kid, alg, issuer, ttlMs } = options;
  if (!Number.isFinite(ttlMs) || ttlMs < 1000 || ttlMs > MAX_IDENTITY_TOKEN_TTL_MS) {
    throw new GatewayError("IDENTITY_TTL_INVALID", `identity token ttl must be between 1000 and ${MAX_IDENTITY_TOKEN_TTL_MS} ms, got \`${ttlMs}\``);
  }
  const now = options.now ?? Date.now;
  const maxCached = options.maxCachedTokens ?? 10_000;
  const signingKey = isCryptoKey(options.privateKey) ? options.privateKey : await importJWK(options.privateKey, alg);
  if (!isCryptoKey(signingKey) || signingKey.type !== "private") {
    throw new GatewayError("IDENTITY_KEY_INVALID", "identity token key must be a private asymmetric key");
  }
  const publicJwk = await publicJwkOf(options.publicKey ?? options.privateKey);
  publicJwk.kid = kid;
  publicJwk.alg = alg;
  publicJwk.use = "sig";
  const jwks = Object.freeze({ keys: [Object.freeze(publicJwk)] });
  const ttlSeconds = Math.floor(ttlMs / 1000);

  const cache = new Map<string, CachedToken>();
  let signatures = 0;
  // Each principal object's tokens by audience and duty: the request path finds its token with
  // three map lookups instead of building the cache key. It holds entries of `cache` and is read
  // under the same rule (reused only until half the token's life), so a token it returns is one
  // `sign` would return; it goes with the principal object (authentication's cache keeps one per
  // verified token) and with this signer (a new key starts empty).
  const memo = new WeakMap<object, Map<string, Map<string | undefined, CachedToken>>>();
  function remember(principal: IdentityPrincipal, audience: string, duty: string | undefined, token: CachedToken): void {
    let byAudience = memo.get(principal);
    if (byAudience === undefined) memo.set(principal, (byAudience = new Map()));
    let byDuty = byAudience.get(audience);
    if (byDuty === undefined) byAudience.set(audience, (byDuty = new Map()));
    byDuty.set(duty, token);
  }

  async function signFresh(sub: string, audience: string, claims: Record<string, unknown>, duty: string | undefined, requestId: string | undefined, at: number): Promise<string> {
    signatures++;
    const iat = Math.floor(at / 1000);
    const payload: Record<string, unknown> = { ...claims };
    if (duty !== undefined) payload.duty = duty;
    if (requestId !== undefined) payload.request_id = requestId;
    return new SignJWT(payload)
      .setProtectedHeader({ alg, kid, typ: "JWT" })
      .setIssuer(issuer)
      .setSubject(sub)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(crypto.randomUUID())
      .sign(signingKey);
  }

  return {
    get signatures() { return signatures; },
    publicJwks: () => jwks as { keys: JWK[] },
    sign(principal, audience, extra) {
      const { claims, key: principalKey } = claimsOf(principal);
      const duty = extra?.duty;
      const at = now();
      if (options.perRequestTokens) return signFresh(principal.sub, audience, claims, duty, extra?.requestId, at);
      const key = cacheKey(principalKey, audience, duty);
      const hit = cache.get(key);
      if (hit && at < hit.refreshAt) { remember(principal, audience, duty, hit); return hit.token; }
      const token = signFresh(principal.sub, audience, claims, duty, undefined, at);
      if (hit) cache.delete(key);
      else if (cache.size >= maxCached) cache.delete(cache.keys().next().value!);
      // Half of the whole-second lifetime the token actually carries (iat is floored).
      const cached: CachedToken = { token, refreshAt: Math.floor(at / 1000) * 1000 + (ttlSeconds * 1000) / 2 };
      cache.set(key, cached);
      remember(principal, audience, duty, cached);
      token.then((value) => { cached.value = value; }, () => {
        if (cache.get(key)?.token === token) cache.delete(key);
        const byDuty = memo.get(principal)?.get(audience);
        if (byDuty?.get(duty) === cached) byDuty.delete(duty);
      });
      return token;
    },
    cached(principal, audience, extra) {
      if (options.perRequestTokens) return null;
      const duty = extra?.duty;
      const at = now();
      // The principal object's own memo first: no claims looked up, no key string built.
      const mine = memo.get(principal)?.get(audience)?.get(duty);
      if (mine !== undefined && mine.value !== undefined && at < mine.refreshAt) return mine.value;
      const hit = cache.get(cacheKey(claimsOf(principal).key, audience, duty));
      if (hit === undefined || hit.value === undefined || at >= hit.refreshAt) return null;
      remember(principal, audience, duty, hit);
      return hit.value;
    },
  };
}

// The attributes' canonical JSON is the cache key: cheaper than hashing, exact, and bounded by
// the cache size. Computed once per principal object (authentication reuses the principal of a
// cached token), so a steady caller pays neither the sort nor the serialisation per request.
interface PrincipalEntry {
  claims: Record<string, unknown>;
  key: string;
}
const claimsByPrincipal = new WeakMap<object, PrincipalEntry>();

function claimsOf(principal: IdentityPrincipal): PrincipalEntry {
  let entry = claimsByPrincipal.get(principal);
  if (entry === undefined) {
    const claims = principalClaims(principal);
    entry = { claims, key: JSON.stringify([principal.sub, claims]) };
    claimsByPrincipal.set(principal, entry);
  }
  return entry;
}

function cacheKey(principalKey: string, audience: string, duty: string | undefined): string {
  return JSON.stringify([audience, duty ?? null]) + principalKey;
}

function isCryptoKey(key: unknown): key is CryptoKey {
  return typeof CryptoKey !== "undefined" && key instanceof CryptoKey;
}

async function publicJwkOf(key: CryptoKey | JWK): Promise<JWK> {
  let jwk: JWK;
  if (isCryptoKey(key)) {
    if (key.type === "public") jwk = await exportJWK(key);
    else if (key.extractable) jwk = await exportJWK(key);
    else throw new GatewayError("IDENTITY_KEY_INVALID", "identity token private key is not extractable; pass `publicKey` too");
  } else jwk = { ...key };
  if (jwk.kty === "oct") throw new GatewayError("IDENTITY_KEY_INVALID", "identity tokens need an asymmetric key, not `oct`");
  for (const member of PRIVATE_JWK_MEMBERS) delete (jwk as Record<string, unknown>)[member];
  delete jwk.key_ops;
  delete jwk.ext;
  return jwk;
}
