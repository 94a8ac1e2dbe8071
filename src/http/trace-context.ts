// W3C Trace Context (https://www.w3.org/TR/trace-context/): the gateway does not record spans,
// so a valid incoming context is passed on unchanged (§3.2 "forward unchanged" for
// non-participating intermediaries) and a missing or invalid one is replaced by a new trace.

export interface TraceContext {
  traceparent: string;
  /** Passed on only together with the valid traceparent it came with. */
  tracestate: string | null;
  traceId: string;
  /** True when this context was started by the gateway. */
  started: boolean;
}

// version "00": exactly 55 characters. Later versions may append "-…" fields (§3.2.4).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
/** Longest tracestate passed on (the spec asks vendors to propagate at least 512 characters). */
const MAX_TRACESTATE = 512;

// Random ids come from a pool of CSPRNG bytes drawn 4 KiB at a time and turned into hex in one
// native call per draw: an id is then a slice of that hex text. One draw serves 170 new traces,
// where a UUID per id cost a random draw and a string rewrite each. All-zero ids are invalid
// (§3.2.2.3/4); the chance is 2^-64, and such an id is redrawn.
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let poolHex = "";
let poolAt = POOL_BYTES;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > POOL_BYTES) {
      crypto.getRandomValues(pool);
      poolHex = Buffer.from(pool.buffer, pool.byteOffset, pool.byteLength).toString("hex");
      poolAt = 0;
    }
    const out = poolHex.slice(poolAt * 2, (poolAt + bytes) * 2);
    poolAt += bytes;
    if (out !== ZERO_TRACE && out !== ZERO_SPAN) return out;
  }
}

function randomTraceId(): string {
  return randomHex(16);
}
function randomParentId(): string {
  return randomHex(8);
}

/** Parses a `traceparent` header; null when it is invalid (§3.2.2). */
export function parseTraceparent(value: string): { version: string; traceId: string; parentId: string; flags: string } | null {
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff") return null;
  if (version === "00" && rest !== undefined) return null;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null;
  return { version, traceId, parentId, flags };
}

/**
 * The trace context to send upstream: the caller's when valid, else a new one
 * (`00-<random trace id>-<random parent id>-00`, not sampled).
 */
export function traceContextFor(headers: Headers): TraceContext {
  const incoming = headers.get("traceparent");
  const parsed = incoming === null ? null : parseTraceparent(incoming);
  if (incoming !== null && parsed) {
    const state = headers.get("tracestate");
    return {
      traceparent: incoming.trim(),
      tracestate: state !== null && state.length <= MAX_TRACESTATE ? state : null,
      traceId: parsed.traceId,
      started: false,
    };
  }
  const traceId = randomTraceId();
  return { traceparent: `00-${traceId}-${randomParentId()}-00`, tracestate: null, traceId, started: true };
}
