// Where an issuer's verification keys come from: a JWKS file re-read when it changes, or an https
// JWKS URL cached by jose (RFC 7517 §5). Both expose the same small interface to the verifier, and
// both answer the token cache's question: would the keys held now still verify this cached token?
import { stat, readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import { createHash } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, customFetch, exportJWK, type FetchImplementation, type JWK, type JWSHeaderParameters, type FlattenedJWSInput, type JSONWebKeySet } from "jose";
import { KeySetUnavailableError } from "./errors.ts";

/**
 * The key that verified a token, as the token cache remembers it: the key's RFC 7638 thumbprint
 * and the header members jose chose the key by. A later key set is asked whether it still holds
 * that key under that `kid`, usable for that `alg`.
 */
export interface KeyBinding {
  thumbprint: string;
  kid: string | undefined;
  alg: string;
}

/** A jose key resolver plus what the token cache needs to know about it. */
export interface IssuerKeySet {
  /** jose `JWTVerifyGetKey`: the public key for this header, or a jose error (`ERR_JWKS_NO_MATCHING_KEY`, …). */
  resolve(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
  /**
   * Brings the keys up to date when the re-read interval has passed (a file's check interval, a
   * URL's cache max age): a promise while that happens, null when the keys held are current, so
   * a cache hit stays synchronous. Rejects with {@link KeySetUnavailableError} when the keys cannot
   * be had, in the cases where an uncached token would be refused for it too.
   */
  refreshIfDue(): Promise<void> | null;
  /** Whether the keys held now would still pick `binding`'s key for a token with its `kid` and `alg`. */
  stillSelects(binding: KeyBinding): boolean;
  /** Changes whenever the set of keys changes; 0 before the first load. */
  readonly generation: number;
  /** Number of loads attempted (file reads or HTTP fetches), for tests and metrics. */
  readonly loads: number;
}

// Errors of a key lookup that describe the token (unknown kid, unusable alg), not the key set.
const TOKEN_SIDE_CODES = new Set(["ERR_JWKS_NO_MATCHING_KEY", "ERR_JWKS_MULTIPLE_MATCHING_KEYS", "ERR_JOSE_NOT_SUPPORTED"]);

function isTokenSideError(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && TOKEN_SIDE_CODES.has(String((err as { code: unknown }).code));
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

function digest(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

// RFC 7638 §3.2: the members of each key type that make up its thumbprint, in lexicographic order.
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ["crv", "kty", "x", "y"],
  OKP: ["crv", "kty", "x"],
  RSA: ["e", "kty", "n"],
};

/** RFC 7638 JWK thumbprint (SHA-256, base64url), or null for a key type a JWKS verifier cannot use. */
export function jwkThumbprint(jwk: JWK): string | null {
  const members = jwk.kty === undefined ? undefined : THUMBPRINT_MEMBERS[jwk.kty];
  if (members === undefined) return null;
  const required: Record<string, unknown> = {};
  for (const name of members) {
    const value = (jwk as Record<string, unknown>)[name];
    if (typeof value !== "string") return null;
    required[name] = value;
  }
  return digest(JSON.stringify(required));
}

const thumbprints = new WeakMap<CryptoKey, string>();

/**
 * The binding of the key that verified a token. jose imports each JWK once per key set and returns
 * the same `CryptoKey` afterwards, so the export behind the thumbprint runs once per key and set.
 */
export async function keyBinding(key: CryptoKey, header: JWSHeaderParameters): Promise<KeyBinding | null> {
  let thumbprint = thumbprints.get(key);
  if (thumbprint === undefined) {
    const computed = jwkThumbprint(await exportJWK(key));
    if (computed === null) return null;
    thumbprint = computed;
    thumbprints.set(key, thumbprint);
  }
  return { thumbprint, kid: typeof header.kid === "string" ? header.kid : undefined, alg: String(header.alg) };
}

/** The keys of one key set with their thumbprints, tagged with the set's generation. */
export interface KeySnapshot {
  readonly generation: number;
  readonly digest: string;
  readonly keys: ReadonlyArray<{ jwk: JWK; thumbprint: string | null }>;
}

const EMPTY_SNAPSHOT: KeySnapshot = { generation: 0, digest: "", keys: [] };

/** The snapshot of `jwks`: `previous` itself when the content is the same, else the next generation. */
export function nextSnapshot(previous: KeySnapshot, jwks: JSONWebKeySet): KeySnapshot {
  const contentDigest = digest(JSON.stringify(jwks));
  if (contentDigest === previous.digest) return previous;
  const keys = (Array.isArray(jwks.keys) ? jwks.keys : []).map((jwk) => ({ jwk, thumbprint: jwkThumbprint(jwk) }));
  return { generation: previous.generation + 1, digest: contentDigest, keys };
}

/**
 * Whether jose would still pick the bound key: the same key material (thumbprint) in a JWK that
 * passes jose's filter for the token's header (jose `jwks/local.js`, `isUsableJWK`): the `kid` if
 * the token names one, the JWK's `alg` if it declares one, `use` "sig" and `key_ops` "verify" if set.
 * A key removed, replaced under its `kid`, or moved to another `kid` is therefore not selected.
 */
export function snapshotSelects(snapshot: KeySnapshot, binding: KeyBinding): boolean {
  return snapshot.keys.some(({ jwk, thumbprint }) =>
    thumbprint === binding.thumbprint
    && (binding.kid === undefined || jwk.kid === binding.kid)
    && (jwk.alg === undefined || jwk.alg === binding.alg)
    && (jwk.use === undefined || jwk.use === "sig")
    && (jwk.key_ops === undefined || (Array.isArray(jwk.key_ops) && jwk.key_ops.includes("verify"))));
}

/** Largest JWKS document accepted, file or URL. */
export const MAX_JWKS_BYTES = 1024 * 1024;

export interface FileKeySetOptions {
  /** Clock in epoch milliseconds (the authenticator's `now`). */
  now: () => number;
  /** The file is stat'ed at most this often; a changed mtime, size or inode means re-read. */
  checkIntervalMs: number;
}

/**
 * A key set read from a JWKS file. The file is stat'ed at most once per `checkIntervalMs`; when its
 * mtime, size or inode changed it is re-read and parsed. A read or parse failure keeps the last good
 * set (a half-written file during rotation must not lock everybody out) and is reported only while
 * there is no good set at all. Cached tokens ask for the same check (`refreshIfDue`), so a key
 * removed from the file stops them at the first request one check interval after the change.
 */
export function createFileKeySet(path: string, options: FileKeySetOptions): IssuerKeySet {
  let local: LocalKeySet | null = null;
  let snapshot = EMPTY_SNAPSHOT;
  let stamp = "";
  let lastCheck = -Infinity;
  let lastError: unknown = null;
  let pending: Promise<void> | null = null;
  let loads = 0;

  async function reload(): Promise<void> {
    try {
      const info = await stat(path);
      const next = `${info.mtimeMs}:${info.size}:${info.ino}`;
      if (next === stamp && local) return;
      if (info.size > MAX_JWKS_BYTES) throw new Error(`JWKS file is larger than ${MAX_JWKS_BYTES} bytes`);
      loads++;
      const text = await readFile(path, "utf8");
      const jwks = JSON.parse(text) as JSONWebKeySet;
      const set = createLocalJWKSet(jwks);
      stamp = next;
      // The keys jose selects from and the keys cached tokens are checked against change together.
      snapshot = nextSnapshot(snapshot, set.jwks());
      local = set;
      lastError = null;
    } catch (err) {
      lastError = err;
    }
  }

  function refreshIfDue(): Promise<void> | null {
    const now = options.now();
    if (now - lastCheck < options.checkIntervalMs && local) return null;
    lastCheck = now;
    // One stat at a time: concurrent requests wait for the same check.
    pending ??= reload().finally(() => { pending = null; });
    return pending;
  }

  return {
    async resolve(header, token) {
      await refreshIfDue();
      if (!local) throw new KeySetUnavailableError(`cannot read JWKS file \`${path}\``, { cause: lastError });
      try {
        return await local(header, token);
      } catch (err) {
        if (isTokenSideError(err)) throw err;
        throw new KeySetUnavailableError(`unusable key in JWKS file \`${path}\``, { cause: err });
      }
    },
    refreshIfDue,
    stillSelects: (binding) => snapshotSelects(snapshot, binding),
    get generation() { return snapshot.generation; },
    get loads() { return loads; },
  };
}

export interface RemoteKeySetOptions {
  /** PEM CA certificates trusted for this URL, in addition to the runtime's roots. */
  caPem: string | null;
  /** Keys are re-fetched when older than this. */
  cacheMaxAgeMs: number;
  /** After a fetch, an unknown `kid` triggers another fetch only once this much time has passed. */
  cooldownMs: number;
  timeoutMs: number;
}

/**
 * A key set fetched from an https JWKS URL by jose's `createRemoteJWKSet` (cache max age, refetch on
 * unknown `kid` after a cooldown). The fetch is wrapped to trust `caPem`, count loads and bound the
 * body size. Cached tokens follow the rule of uncached ones: once the fetched keys are older than
 * the cache max age they are fetched again before a hit is answered, and a failed fetch refuses the
 * hit as it would refuse a new token (`AUTHN_JWKS_UNAVAILABLE`).
 */
export function createRemoteKeySet(url: string, options: RemoteKeySetOptions): IssuerKeySet {
  let loads = 0;
  let snapshot = EMPTY_SNAPSHOT;
  const baseFetch = options.caPem === null ? defaultFetch : fetchTrustingCa(options.caPem);
  const countingFetch: FetchImplementation = async (resource, init) => {
    loads++;
    const response = await baseFetch(resource, init);
    if (response.status !== 200) return response;
    const text = await response.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error(`JWKS response is larger than ${MAX_JWKS_BYTES} bytes`);
    return new Response(text, { status: 200, headers: response.headers });
  };
  const remote = createRemoteJWKSet(new URL(url), {
    cacheMaxAge: options.cacheMaxAgeMs,
    cooldownDuration: options.cooldownMs,
    timeoutDuration: options.timeoutMs,
    [customFetch]: countingFetch,
  });
  // jose swaps its keys inside `remote(...)` and `remote.reload()`, both awaited here only: the
  // snapshot is taken after each, from the keys jose now selects from.
  const settle = () => {
    const jwks = remote.jwks();
    if (jwks !== undefined) snapshot = nextSnapshot(snapshot, jwks);
  };
  const unavailable = (err: unknown) => new KeySetUnavailableError(`cannot fetch JWKS from \`${url}\``, { cause: err });
  return {
    async resolve(header, token) {
      try {
        return await remote(header, token);
      } catch (err) {
        if (isTokenSideError(err)) throw err;
        throw unavailable(err);
      } finally {
        settle();
      }
    },
    refreshIfDue() {
      if (remote.fresh) return null;
      return remote.reload().then(settle, (err: unknown) => {
        settle();
        throw unavailable(err);
      });
    },
    stillSelects: (binding) => snapshotSelects(snapshot, binding),
    get generation() { return snapshot.generation; },
    get loads() { return loads; },
  };
}

const defaultFetch: FetchImplementation = (resource, init) => fetch(resource, init);

interface DenoHttpClientApi {
  createHttpClient(options: { caCerts: string[] }): unknown;
}

/**
 * A fetch that trusts `caPem` besides the runtime's roots. Each runtime has its own switch:
 * Bun takes `tls.ca` on fetch (and replaces its roots with it, so the roots are passed along);
 * Deno takes a `client` from `Deno.createHttpClient({ caCerts })`, which adds to its roots.
 */
export function fetchTrustingCa(caPem: string): FetchImplementation {
  if (typeof Bun !== "undefined") {
    const ca = [caPem, ...rootCertificates];
    return (resource, init) => fetch(resource, { ...init, tls: { ca } });
  }
  const deno = (globalThis as { Deno?: DenoHttpClientApi }).Deno;
  if (deno !== undefined) {
    const client = deno.createHttpClient({ caCerts: [caPem] });
    return (resource, init) => fetch(resource, { ...init, client } as RequestInit);
  }
  throw new KeySetUnavailableError("a JWKS CA file needs the Bun or Deno runtime");
}
