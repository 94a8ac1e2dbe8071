// RFC 8785 JSON Canonicalization Scheme (JCS): https://www.rfc-editor.org/rfc/rfc8785
// The audit chain hashes this form, so a record re-serialised by any JCS implementation
// (or parsed back from its line) hashes the same.
import { GatewayError } from "../errors.ts";

// Lone surrogates are not I-JSON (RFC 7493 §2.1); with the `u` flag a valid pair is one
// code point, so this matches only unpaired halves.
const LONE_SURROGATE = /\p{Cs}/u;
// Strings without these need no escaping and no surrogate check: the common case, kept cheap.
const NEEDS_CARE = /["\\\u0000-\u001f\ud800-\udfff]/;
const MAX_DEPTH = 64;

/**
 * Serialises a JSON value in RFC 8785 canonical form: object keys sorted by UTF-16 code
 * units, ECMAScript number serialisation, strings escaped as `JSON.stringify` does, no
 * whitespace. Like `JSON.stringify`, `toJSON` is honoured and `undefined`/function members
 * are left out.
 *
 * Throws `GatewayError("AUDIT_NOT_JSON")` for NaN, ±Infinity, bigint, lone surrogates and
 * nesting deeper than 64 (cycles).
 *
 * @example canonicalJson({ b: 1, a: [true, 4.50] }) // '{"a":[true,4.5],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  // Fast path: when every object's keys are already in sorted order and nothing needs JCS's
  // own rules, the engine's JSON.stringify writes exactly the canonical bytes (same member
  // order, ECMAScript number and string serialisation, undefined/function members left out).
  // The one difference left — a lone surrogate, which JSON.stringify escapes and JCS refuses —
  // only ever shows as a `\ud8..`–`\udf..` escape, so such output takes the reference path.
  if (isStringifyCanonical(value, 0)) {
    const text = JSON.stringify(value);
    if (text !== undefined && !text.includes("\\ud")) return text;
  }
  return serialise(value, 0);
}

/** The reference serialiser alone, without the JSON.stringify fast path (for differential tests). */
export function canonicalJsonReference(value: unknown): string {
  return serialise(value, 0);
}

const OBJECT_PROTOTYPE = Object.prototype;

/**
 * True when JSON.stringify gives the canonical form of `value`: plain objects with keys in
 * sorted order, arrays, finite numbers, strings, booleans, null (and members JSON leaves out).
 * Anything else (toJSON, Dates, Maps, bigint, NaN, deep nesting) goes to the reference path.
 */
function isStringifyCanonical(value: unknown, depth: number): boolean {
  return typeof value === "object" && value !== null ? isStringifyCanonicalObject(value, depth) : isStringifyCanonicalPrimitive(value);
}

function isStringifyCanonicalPrimitive(value: unknown): boolean {
  return typeof value === "number" ? Number.isFinite(value) : typeof value !== "bigint";
}

// Members that are not objects are checked in the loop, without a call: most of a record is
// strings, and a recursive function is not inlined (a third of the check's time on a record).
function isStringifyCanonicalObject(value: object, depth: number): boolean {
  if (depth >= MAX_DEPTH - 1) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const member: unknown = value[i];
      if (typeof member === "object" && member !== null ? !isStringifyCanonicalObject(member, depth + 1) : !isStringifyCanonicalPrimitive(member)) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== OBJECT_PROTOTYPE && proto !== null) return false;
  const object = value as Record<string, unknown>;
  if ("toJSON" in object) return false;
  let previous = "";
  let first = true;
  for (const key in object) {
    // for-in lists integer-like keys first, in numeric order: not the canonical order.
    if (!first && !(previous < key)) return false;
    first = false;
    previous = key;
    const member = object[key];
    if (typeof member === "object" && member !== null ? !isStringifyCanonicalObject(member, depth + 1) : !isStringifyCanonicalPrimitive(member)) return false;
  }
  return true;
}

function serialise(value: unknown, depth: number): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return serialiseString(value);
    case "number":
      if (!Number.isFinite(value)) throw new GatewayError("AUDIT_NOT_JSON", `number \`${value}\` is not representable in JSON`);
      // RFC 8785 §3.2.2.3: ECMAScript Number.prototype.toString; -0 becomes "0".
      return String(value);
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      throw new GatewayError("AUDIT_NOT_JSON", "bigint is not representable in JSON");
    case "object":
      break;
    default:
      // undefined, functions and symbols: JSON.stringify's answer at the top level / in arrays.
      return "null";
  }
  if (depth >= MAX_DEPTH) throw new GatewayError("AUDIT_NOT_JSON", "value nests too deeply (or contains a cycle)");
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return serialise(toJSON.call(value), depth + 1);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      out += serialise(value[i], depth + 1);
    }
    return out + "]";
  }
  const object = value as Record<string, unknown>;
  // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
  const keys = Object.keys(object).sort();
  let out = "{";
  let first = true;
  for (const key of keys) {
    const member = object[key];
    if (member === undefined || typeof member === "function" || typeof member === "symbol") continue;
    if (!first) out += ",";
    first = false;
    out += serialiseString(key) + ":" + serialise(member, depth + 1);
  }
  return out + "}";
}

function serialiseString(value: string): string {
  if (!NEEDS_CARE.test(value)) return `"${value}"`;
  if (LONE_SURROGATE.test(value)) throw new GatewayError("AUDIT_NOT_JSON", "string contains a lone surrogate", { loneSurrogate: true });
  // RFC 8785 §3.2.2.2 prescribes exactly the escaping of ECMAScript JSON.stringify.
  return JSON.stringify(value);
}

const LONE_SURROGATES = /\p{Cs}/gu;

/**
 * A copy of `value` in which every lone surrogate, in strings and in object keys, is replaced
 * by U+FFFD (as `String.prototype.toWellFormed` does); everything else is kept as it is. Input
 * the gateway did not write (a token's unverified header, a claim) can hold a lone surrogate,
 * which JSON text can carry as an escape but RFC 8785 cannot canonicalise: replaced, the record
 * can still be written. Keys that become equal keep the last member, as `JSON.parse` would.
 *
 * @example replaceLoneSurrogates({ iss: "x\ud800" }) // { iss: "x\ufffd" }
 */
export function replaceLoneSurrogates(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return LONE_SURROGATE.test(value) ? value.replace(LONE_SURROGATES, "\ufffd") : value;
  if (typeof value !== "object" || value === null || depth >= MAX_DEPTH) return value;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return replaceLoneSurrogates(toJSON.call(value), depth + 1);
  if (Array.isArray(value)) return value.map((item) => replaceLoneSurrogates(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) out[replaceLoneSurrogates(key) as string] = replaceLoneSurrogates(member, depth + 1);
  return out;
}
