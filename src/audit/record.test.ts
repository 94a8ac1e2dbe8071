import { describe, expect, test } from "bun:test";
import { GatewayError } from "../errors.ts";
import { CanonicalFragment, canonicalFragment, canonicalJson } from "./canonical-json.ts";
import { chainedBody, chainedRecordLine, recordHash, recordLine } from "./record.ts";
import type { ChainMembers } from "./record.ts";

// A small deterministic generator (xorshift32): the same cases on every run, on every runtime.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

const STRINGS = ["", "a", "é", "€", "😀", "\u2028", "\u0000", "\n", "\"", "\\", "/", "\u001f", "\u007f", "a\"b\\c\td", "ünïcödé 𝄞"];
const NUMBERS = [0, -0, 1, -1, 4.5, 0.002, 1e30, 1e-27, 333333333.33333329, 9007199254740992, 5e-324, -1.7976931348623157e308, 123456789];
const KEYS = ["allow", "bundle", "duty", "hash2", "latency_ms", "method", "path", "pre", "prevx", "principal", "reasons", "request_id", "roles", "s", "seq0", "status", "tim", "timez", "typ", "types", "upstream", "z", "Ä", "é", "😀", "\u0080"];

// Nested objects also get integer-like keys, whose for-in order is not the canonical one.
const NESTED_KEYS = [...KEYS, "1", "10", "2"];

function value(next: () => number, depth: number): unknown {
  const kind = Math.floor(next() * (depth > 2 ? 5 : 8));
  switch (kind) {
    case 0: return STRINGS[Math.floor(next() * STRINGS.length)];
    case 1: return NUMBERS[Math.floor(next() * NUMBERS.length)];
    case 2: return next() < 0.5;
    case 3: return null;
    case 4: return undefined;
    case 5: return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
    case 6: {
      const out: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) out[NESTED_KEYS[Math.floor(next() * NESTED_KEYS.length)]!] = value(next, depth + 1);
      return out;
    }
    default: return canonicalFragment(value(next, depth + 1) ?? null);
  }
}

function event(next: () => number, sorted: boolean): Record<string, unknown> {
  const keys = KEYS.filter(() => next() < 0.4);
  // Sometimes the caller's own chain members, which seq/prev override and time/type keep.
  if (next() < 0.2) keys.push("type");
  if (next() < 0.2) keys.push("seq");
  if (next() < 0.2) keys.push("prev");
  if (next() < 0.2) keys.push("time");
  if (sorted) keys.sort();
  else keys.sort(() => next() - 0.5);
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = value(next, 0);
  return out;
}

function chainFor(e: Record<string, unknown>, seq: number): ChainMembers {
  return { prev: "ab".repeat(32), seq, time: (e.time as string | undefined) ?? "2026-12-02T10:00:00.000Z", type: (e.type as string | undefined) ?? "decision" };
}

describe("chainedRecordLine", () => {
  test("gives the bytes of recordLine(chainedBody(...)) on 4000 generated events, sorted and not", () => {
    const next = rng(0xd7e9);
    let fastPathKinds = 0;
    for (let i = 0; i < 4000; i++) {
      const e = event(next, i % 4 !== 0);
      const chain = chainFor(e, i);
      const expected = recordLine(chainedBody(e, chain));
      const actual = chainedRecordLine(e, chain);
      if (actual.line !== expected.line) throw new Error(`case ${i}: ${JSON.stringify(canonicalJson(e))}\n  got  ${actual.line}  want ${expected.line}`);
      expect(actual.hash).toBe(expected.hash);
      // The line parses back to a record whose hash is its own: what `audit verify` checks.
      expect(recordHash(JSON.parse(actual.line))).toBe(actual.hash);
      if (Object.keys(e).length > 3) fastPathKinds++;
    }
    expect(fastPathKinds).toBeGreaterThan(1000);
  });

  test("an event with integer-like keys (which for-in lists first) still gives sorted output", () => {
    const e = { "10": 1, "2": 2, a: 3 };
    const chain = chainFor(e, 7);
    const { line } = chainedRecordLine(e, chain);
    expect(line.startsWith('{"10":1,"2":2,"a":3,"prev":')).toBe(true);
    expect(line).toBe(recordLine(chainedBody(e, chain)).line);
  });

  test("a caller's time and type are kept; seq and prev always come from the chain", () => {
    const e = { prev: "forged", seq: 99, time: "2020-01-01T00:00:00.000Z", type: "decision" };
    const { line } = chainedRecordLine(e, { ...chainFor(e, 3) });
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed.seq).toBe(3);
    expect(parsed.prev).toBe("ab".repeat(32));
    expect(parsed.time).toBe("2020-01-01T00:00:00.000Z");
  });

  test("a value JSON cannot hold is refused with AUDIT_NOT_JSON, as the general path does", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 10n, "\ud800", { nested: Number.NaN }]) {
      const e = { a: bad };
      const chain = chainFor(e, 1);
      expect(() => recordLine(chainedBody(e, chain))).toThrow(GatewayError);
      let code = "";
      try { chainedRecordLine(e, chain); } catch (error) { code = (error as GatewayError).code; }
      expect(code).toBe("AUDIT_NOT_JSON");
    }
  });

  test("a lone surrogate in a key is refused", () => {
    const e = { "\udc00": 1 };
    expect(() => chainedRecordLine(e, chainFor(e, 1))).toThrow(GatewayError);
  });
});

describe("canonicalFragment", () => {
  test("serialises once and is placed verbatim by every serialiser", () => {
    const fragment = canonicalFragment({ b: [4.50, "€"], a: null });
    expect(fragment).toBeInstanceOf(CanonicalFragment);
    expect(fragment.json).toBe('{"a":null,"b":[4.5,"€"]}');
    expect(Object.isFrozen(fragment)).toBe(true);
    expect(canonicalJson({ z: 1, f: fragment })).toBe('{"f":{"a":null,"b":[4.5,"€"]},"z":1}');
    expect(canonicalJson([fragment, fragment])).toBe('[{"a":null,"b":[4.5,"€"]},{"a":null,"b":[4.5,"€"]}]');
    // Plain JSON.stringify (a stdout copy, a test) sees the value itself.
    expect(JSON.stringify({ f: fragment })).toBe('{"f":{"a":null,"b":[4.5,"€"]}}');
  });

  test("a value that is not JSON is refused when the fragment is made", () => {
    expect(() => canonicalFragment({ a: Number.NaN })).toThrow(GatewayError);
  });
});
