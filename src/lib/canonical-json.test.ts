import { describe, expect, test } from "bun:test";
import { GatewayError } from "../errors.ts";
import { canonicalJson, canonicalJsonReference } from "./canonical-json.ts";

// Vectors from RFC 8785 (https://www.rfc-editor.org/rfc/rfc8785).
describe("canonicalJson: RFC 8785 examples", () => {
  test("§3.2.2 sample: literals, numbers and string escaping", () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals": [null, true, false]}',
    );
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  test("§3.2.3 property sorting by UTF-16 code units", () => {
    const input = JSON.parse(
      '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",' +
        '"\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}',
    );
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  // Appendix B: IEEE-754 bit patterns and their canonical text.
  const numberVectors: Array<[string, string]> = [
    ["0000000000000000", "0"],
    ["8000000000000000", "0"],
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ];
  test.each(numberVectors)("number 0x%s serialises as %s", (bits, expected) => {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, BigInt("0x" + bits));
    expect(canonicalJson(view.getFloat64(0))).toBe(expected);
  });

  test.each([["7fffffffffffffff"], ["7ff0000000000000"], ["fff0000000000000"]])("number 0x%s (NaN/Infinity) is refused", (bits) => {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigUint64(0, BigInt("0x" + bits));
    expect(() => canonicalJson(view.getFloat64(0))).toThrow(expect.objectContaining({ code: "AUDIT_NOT_JSON" }));
  });
});

describe("canonicalJson: JSON.stringify compatibility and refusals", () => {
  test.each<[string, unknown, string]>([
    ["nested objects sorted at every level", { b: { d: 1, c: [{ z: 1, a: 2 }] }, a: "x" }, '{"a":"x","b":{"c":[{"a":2,"z":1}],"d":1}}'],
    ["undefined members left out", { a: undefined, b: 1 }, '{"b":1}'],
    ["undefined in arrays becomes null", [undefined, 1], "[null,1]"],
    ["toJSON honoured (Date)", { t: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) }, '{"t":"2026-01-02T03:04:05.000Z"}'],
    ["empty containers", { a: {}, b: [] }, '{"a":{},"b":[]}'],
    ["valid surrogate pair kept", { e: "😀" }, '{"e":"😀"}'],
    ["control characters escaped", "\u0001\t", '"\\u0001\\t"'],
  ])("%s", (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  test.each<[string, unknown]>([
    ["bigint", { n: 1n }],
    ["lone surrogate in a value", { s: "\ud800" }],
    ["lone surrogate in a key", { ["\udc00"]: 1 }],
    ["Infinity", [Infinity]],
  ])("refuses %s with AUDIT_NOT_JSON", (_name, value) => {
    let caught: unknown;
    try {
      canonicalJson(value);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as GatewayError).code).toBe("AUDIT_NOT_JSON");
  });

  test("refuses a cycle instead of overflowing the stack", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(expect.objectContaining({ code: "AUDIT_NOT_JSON" }));
  });

  test("is idempotent through JSON.parse (what the verifier relies on)", () => {
    const value = { z: [1.5, -0, 1e21, "ü\n"], a: { "é": null, e: true }, m: 12345678901234 };
    const once = canonicalJson(value);
    expect(canonicalJson(JSON.parse(once))).toBe(once);
  });
});

describe("canonicalJson fast path (JSON.stringify on sorted plain values)", () => {
  // A seeded generator of JSON-ish values: sorted and unsorted keys, integer-like keys, escapes,
  // control characters, non-BMP text, lone surrogates, -0, huge and tiny numbers, NaN,
  // undefined members, holes, toJSON, Dates, nesting.
  function generator(seed: number) {
    let state = seed >>> 0;
    const next = () => { state = (state * 1664525 + 1013904223) >>> 0; return state / 2 ** 32; };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    const strings = ["", "a", "b", "Z", "é", "日本", "\u{1F600}", "\n", "\t", "\u0001", "\u007f", "\\", "\"", "/", "\ud800", "\udc00x", "\\ud", "10", "9", "01", "aa", "a\u0000b"];
    const numbers = [0, -0, 1, -1, 1.5, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER, 0.1 + 0.2, NaN, Infinity];
    const value = (depth: number): unknown => {
      const r = next();
      if (depth > 3 || r < 0.35) return pick<unknown>([...strings, ...numbers, true, false, null, undefined]);
      if (r < 0.5) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
      if (r < 0.53) return new Date(0);
      if (r < 0.55) return { toJSON: () => "j" };
      const keys = Array.from({ length: Math.floor(next() * 6) }, () => pick(strings));
      if (next() < 0.6) keys.sort();
      const out: Record<string, unknown> = {};
      for (const k of keys) out[k] = value(depth + 1);
      return out;
    };
    return () => value(0);
  }

  const outcome = (f: () => string): string => {
    try {
      return f();
    } catch (error) {
      return `throws ${(error as GatewayError).code}`;
    }
  };

  test("gives the reference serialiser's bytes (or its refusal) on 20,000 generated values", () => {
    const next = generator(8785);
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const v = next();
      const expected = outcome(() => canonicalJsonReference(v));
      expect(outcome(() => canonicalJson(v))).toBe(expected);
      if (!expected.startsWith("throws")) fast++;
    }
    // The generator must exercise both paths: most values serialise, some are refused.
    expect(fast).toBeGreaterThan(10_000);
  });

  test("an audit-record shaped value takes the fast path and matches the reference", () => {
    const record = { auth: "jwt", bundle: { digest: "ab", revision: 3 }, headers: { accept: "*/*", "user-agent": "wrk" }, latency_ms: 1.25, prev: "0".repeat(64), reasons: [{ held: true, rule: "grant:a.duty:1:1" }], roles: ["developer"], seq: 7, sub: "alice", type: "decision" };
    expect(canonicalJson(record)).toBe(canonicalJsonReference(record));
    expect(canonicalJson(record)).toBe(JSON.stringify(record));
  });
});

