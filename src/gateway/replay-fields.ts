// What a decision record carries so that `gateway check --replay` can re-decide the request:
// the full typed principal, the request time, and only the headers and query parameters the
// active policy reads. Written by the pipeline, read back by the replay.
import { policyInputNames, type CheckedPolicy, type Principal, type PolicyRequest, type PrincipalSchema, type Type } from "../../dsl/mod.ts";
import { SECRET_HEADERS } from "../http/mod.ts";


// Only the inputs the policy reads (never credentials) go into decision records, so the log stays
// small and a replay knows which inputs were recorded.
export { policyInputNames, type PolicyInputNames } from "../../dsl/mod.ts";

function valueToJson(type: Type, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  switch (type.kind) {
    case "ip": case "cidr": return (value as { text: string }).text;
    // Times as RFC 3339 and durations as seconds: the forms `coercePrincipal` reads back.
    case "time": return new Date(value as number).toISOString();
    case "duration": return (value as number) / 1000;
    case "set": return [...(value as ReadonlySet<unknown>)].map((v) => (typeof v === "object" && v !== null && "text" in v ? (v as { text: string }).text : v));
    default: return value;
  }
}

/**
 * A typed principal as JSON that `coercePrincipal` turns back into the same principal:
 * sets become arrays, ip and cidr their text, times RFC 3339, durations seconds.
 */
export function principalToJson(schema: PrincipalSchema, principal: Principal): Readonly<Record<string, unknown>> {
  // Cached per principal object (authentication reuses the principal of a cached token) and
  // written in sorted key order, the order of the audit log's canonical JSON. The same JSON
  // object goes into many records, so nobody may change it — by contract (Readonly), not by
  // Object.freeze: the engine's JSON.stringify leaves its fast path for frozen objects, which
  // costs the audit log about 5 µs per record (docs/audit.md, Performance).
  let bySchema = principalJsonCache.get(principal);
  const hit = bySchema?.schema === schema ? bySchema.json : undefined;
  if (hit !== undefined) return hit;
  const out: Record<string, unknown> = {};
  for (const [name, type] of sortedEntries(schema)) {
    if (principal[name] !== undefined) out[name] = valueToJson(type, principal[name]);
  }
  bySchema = { schema, json: out };
  principalJsonCache.set(principal, bySchema);
  return out;
}

const principalJsonCache = new WeakMap<Principal, { schema: PrincipalSchema; json: Readonly<Record<string, unknown>> }>();
const sortedSchemas = new WeakMap<PrincipalSchema, Array<[string, Type]>>();

function sortedEntries(schema: PrincipalSchema): Array<[string, Type]> {
  let entries = sortedSchemas.get(schema);
  if (entries === undefined) {
    entries = Object.entries(schema).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    sortedSchemas.set(schema, entries);
  }
  return entries;
}

// The last request time formatted: requests that arrive in the same millisecond share it.
let lastTime = Number.NaN;
let lastIso = "";

/** `ms` (since the epoch) as RFC 3339, as `Date.prototype.toISOString` writes it. */
function isoTime(ms: number): string {
  if (ms !== lastTime) {
    lastIso = new Date(ms).toISOString();
    lastTime = ms;
  }
  return lastIso;
}

const EMPTY: ReadonlySet<string> = new Set();
const neverLogSets = new WeakMap<readonly string[], ReadonlySet<string>>();

function neverLogSet(names: readonly string[]): ReadonlySet<string> {
  let set = neverLogSets.get(names);
  if (set === undefined) neverLogSets.set(names, (set = new Set(names.map((n) => n.toLowerCase()))));
  return set;
}

/** The fields of a decision record that let `gateway check --replay` re-decide the request. */
export interface ReplayFields {
  principal: Readonly<Record<string, unknown>>;
  request_time: string;
  /** Headers the active policy reads: value, or null when the request did not carry it. */
  policy_headers?: Record<string, string | null>;
  /** Query parameters the active policy reads: value, or null when absent. */
  policy_query?: Record<string, string | null>;
}

/**
 * What the pipeline adds to a decision record for replay. Headers that carry credentials
 * (and `neverLog`, e.g. the identity-token header) are left out even when the policy reads
 * them; a replay then reports them as not recorded.
 */
export function replayFieldsOf(policy: CheckedPolicy, principal: Principal, request: PolicyRequest, neverLog: readonly string[] = []): ReplayFields {
  const names = policyInputNames(policy);
  const fields: ReplayFields = { principal: principalToJson(policy.schema, principal), request_time: isoTime(request.time) };
  if (names.headers.length) {
    const never = neverLog.length === 0 ? EMPTY : neverLogSet(neverLog);
    const headers: Record<string, string | null> = {};
    for (const name of names.headers) {
      if (SECRET_HEADERS.has(name) || never.has(name)) continue;
      headers[name] = request.headers[name] ?? null;
    }
    fields.policy_headers = headers;
  }
  if (names.query.length) {
    const query: Record<string, string | null> = {};
    for (const name of names.query) query[name] = request.query[name] ?? null;
    fields.policy_query = query;
  }
  return fields;
}

