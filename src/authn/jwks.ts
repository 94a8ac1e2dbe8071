// Where an issuer's verification keys come from: a JWKS file re-read when it changes, or an https
// JWKS URL cached by jose (RFC 7517 §5). Both expose the same small interface to the verifier.
import { stat, readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import { createHash } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, customFetch, type FetchImplementation, type JWSHeaderParameters, type FlattenedJWSInput, type JSONWebKeySet } from "jose";
import { KeySetUnavailableError } from "./errors.ts";

/** A jose key resolver plus what the token cache needs to know about it. */
export interface IssuerKeySet {
  /** jose `JWTVerifyGetKey`: the public key for this header, or a jose error (`ERR_JWKS_NO_MATCHING_KEY`, …). */
  resolve(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
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
 * there is no good set at all.
 */
export function createFileKeySet(path: string, options: FileKeySetOptions): IssuerKeySet {
  let local: LocalKeySet | null = null;
  let stamp = "";
  let contentDigest = "";
  let lastCheck = -Infinity;
  let lastError: unknown = null;
  let pending: Promise<void> | null = null;
  let generation = 0;
  let loads = 0;

  async function reload(): Promise<void> {
    try {
      const info = await stat(path);
      const next = `${info.mtimeMs}:${info.size}:${info.ino}`;
      if (next === stamp && local) return;
      if (info.size > MAX_JWKS_BYTES) throw new Error(`JWKS file is larger than ${MAX_JWKS_BYTES} bytes`);
      loads++;
      const text = await readFile(path, "utf8");
      const set = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
      stamp = next;
      const nextDigest = digest(text);
      if (nextDigest !== contentDigest) generation++;
      contentDigest = nextDigest;
      local = set;
      lastError = null;
    } catch (err) {
      lastError = err;
    }
  }

  async function refreshIfDue(): Promise<void> {
    const now = options.now();
    if (now - lastCheck < options.checkIntervalMs && local) return;
    lastCheck = now;
    // One stat at a time: concurrent requests wait for the same check.
    pending ??= reload().finally(() => { pending = null; });
    await pending;
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
    get generation() { return generation; },
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
 * unknown `kid` after a cooldown). The fetch is wrapped to trust `caPem`, count loads, bound the
 * body size and notice when the served keys change.
 */
export function createRemoteKeySet(url: string, options: RemoteKeySetOptions): IssuerKeySet {
  let generation = 0;
  let loads = 0;
  let contentDigest = "";
  const baseFetch = options.caPem === null ? defaultFetch : fetchTrustingCa(options.caPem);
  const observingFetch: FetchImplementation = async (resource, init) => {
    loads++;
    const response = await baseFetch(resource, init);
    if (response.status !== 200) return response;
    const text = await response.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error(`JWKS response is larger than ${MAX_JWKS_BYTES} bytes`);
    const nextDigest = digest(text);
    if (nextDigest !== contentDigest) generation++;
    contentDigest = nextDigest;
    return new Response(text, { status: 200, headers: response.headers });
  };
  const remote = createRemoteJWKSet(new URL(url), {
    cacheMaxAge: options.cacheMaxAgeMs,
    cooldownDuration: options.cooldownMs,
    timeoutDuration: options.timeoutMs,
    [customFetch]: observingFetch,
  });
  return {
    async resolve(header, token) {
      try {
        return await remote(header, token);
      } catch (err) {
        if (isTokenSideError(err)) throw err;
        throw new KeySetUnavailableError(`cannot fetch JWKS from \`${url}\``, { cause: err });
      }
    },
    get generation() { return generation; },
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
