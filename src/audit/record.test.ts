import { describe, expect, test } from "bun:test";
import { GatewayError } from "../errors.ts";
import { canonicalJsonReference } from "../lib/mod.ts";
import { LineBuffer, chainedBody, hasChainSlots, hashCanonical, recordHash, recordLine } from "./record.ts";

type ChainMembers = Parameters<typeof chainedBody>[1];

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
  const kind = Math.floor(next() * (depth > 2 ? 5 : 7));
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
    default: return Object.freeze(Array.from({ length: Math.floor(next() * 3) }, () => value(next, depth + 1)));
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

/** The line the reference serialiser (no JSON.stringify fast path) gives for a record body. */
function referenceLine(body: Record<string, unknown>): { line: string; hash: string } {
  const canonical = canonicalJsonReference(body);
  const hash = hashCanonical(canonical);
  return { line: canonical === "{}" ? `{"hash":"${hash}"}\n` : `${canonical.slice(0, -1)},"hash":"${hash}"}\n`, hash };
}

describe("recordLine(chainedBody(...)): the writer's path", () => {
  test("gives the reference serialiser's bytes on 4000 generated events, sorted and not", () => {
    const next = rng(0xd7e9);
    let members = 0;
    for (let i = 0; i < 4000; i++) {
      const e = event(next, i % 4 !== 0);
      const chain = chainFor(e, i);
      const body = chainedBody(e, chain);
      const expected = referenceLine(body);
      const actual = recordLine(body);
      if (actual.line !== expected.line) throw new Error(`case ${i}: ${canonicalJsonReference(e)}\n  got  ${actual.line}  want ${expected.line}`);
      expect(actual.hash).toBe(expected.hash);
      // The line parses back to a record whose hash is its own: what `audit verify` checks.
      expect(recordHash(JSON.parse(actual.line))).toBe(actual.hash);
      members += Object.keys(e).length;
    }
    expect(members).toBeGreaterThan(4000 * 5);
  });

  test("a LineBuffer holds the same bytes and hashes, line after line, growing past its first size", () => {
    const next = rng(0x11e5);
    const buffer = new LineBuffer();
    const expected: string[] = [];
    // Lone surrogates (U+FFFD, three bytes each), multi-byte text and an empty body among plain records.
    const odd = [{ detail: "issuer `\ud800` is not trusted" }, { headers: { "\udc00": "1" } }, { branch: ["😀\udbff", "ü€"] }];
    for (let i = 0; i < 1500; i++) {
      const e = i % 50 === 0 ? odd[(i / 50) % odd.length]! : event(next, i % 4 !== 0);
      const body = i % 50 === 3 ? {} : chainedBody(e, chainFor(e, i));
      const line = recordLine(body);
      expect(buffer.append(body)).toBe(line.hash);
      expected.push(line.line);
    }
    expect(buffer.lines).toBe(1500);
    expect(buffer.length).toBeGreaterThan(64 * 1024);
    expect(buffer.bytes().equals(Buffer.from(expected.join(""), "utf8"))).toBe(true);
    buffer.clear();
    expect(buffer.append({ a: 1 })).toBe(recordLine({ a: 1 }).hash);
    expect(buffer.bytes().toString("utf8")).toBe(recordLine({ a: 1 }).line);
    expect(() => buffer.append({ a: Number.NaN })).toThrow();
    expect(buffer.bytes().toString("utf8")).toBe(recordLine({ a: 1 }).line);
  });

  test("an event with integer-like keys (which for-in lists first) still gives sorted output", () => {
    const e = { "10": 1, "2": 2, a: 3 };
    const { line } = recordLine(chainedBody(e, chainFor(e, 7)));
    expect(line.startsWith('{"10":1,"2":2,"a":3,"prev":')).toBe(true);
  });

  test("a caller's time and type are kept; seq and prev always come from the chain", () => {
    const e = { prev: "forged", seq: 99, time: "2020-01-01T00:00:00.000Z", type: "decision" };
    const { line } = recordLine(chainedBody(e, chainFor(e, 3)));
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed.seq).toBe(3);
    expect(parsed.prev).toBe("ab".repeat(32));
    expect(parsed.time).toBe("2020-01-01T00:00:00.000Z");
  });

  test("a value JSON cannot hold is refused with AUDIT_NOT_JSON", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 10n, { nested: Number.NaN }, Object.freeze([Number.NaN]), { s: "\ud800", n: Number.NaN }]) {
      const e = { a: bad };
      let code = "";
      try { recordLine(chainedBody(e, chainFor(e, 1))); } catch (error) { code = (error as GatewayError).code; }
      expect(code).toBe("AUDIT_NOT_JSON");
    }
  });

  // Regression: a token whose unverified `iss` held a lone surrogate got its 401 with no
  // record at all, because the log refused the string.
  test.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ["a value", { detail: "issuer `\ud800` is not trusted" }, { detail: "issuer `\ufffd` is not trusted" }],
    ["a key", { headers: { "\udc00": "1" } }, { headers: { "\ufffd": "1" } }],
    ["an array member, next to a valid pair", { branch: ["😀\udbff", "\udfff😀"] }, { branch: ["😀\ufffd", "\ufffd😀"] }],
    ["a frozen member", { reasons: Object.freeze([Object.freeze({ rule: "\ud83d" })]) }, { reasons: [{ rule: "\ufffd" }] }],
  ])("a lone surrogate in %s is written as U+FFFD, and the line verifies", (_name, e, expected) => {
    const { line, hash } = recordLine(chainedBody(e, chainFor(e, 1)));
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed).toMatchObject(expected);
    expect(line).not.toMatch(/\\ud[89a-f]/);
    expect(recordHash(parsed)).toBe(hash);
  });
});

describe("LineBuffer.appendEvent: an event with the chain fields' slots is written in place", () => {
  /** The event with undefined `prev`, `seq`, `time`, `worker` slots (and `type`) among its members, sorted or not. */
  function slotted(e: Record<string, unknown>, sorted: boolean, next: () => number): Record<string, unknown> {
    const keys = [...new Set([...Object.keys(e), "prev", "seq", "time", "type", "worker"])];
    if (sorted) keys.sort();
    else keys.sort(() => next() - 0.5);
    const out: Record<string, unknown> = {};
    for (const key of keys) out[key] = key === "prev" || key === "seq" || key === "worker" ? undefined : e[key];
    return out;
  }

  test("gives the bytes and hash of the copying path on 3000 generated events, and gives the event back as it was", () => {
    const next = rng(0x5107);
    const copied = new LineBuffer();
    const inPlace = new LineBuffer();
    let slotsUsed = 0;
    for (let i = 0; i < 3000; i++) {
      const e = slotted(event(next, true), i % 5 !== 0, next);
      const chain = { ...chainFor(e, i), worker: i % 3 === 0 ? 2 : undefined };
      const before = Object.entries(e);
      if (hasChainSlots(e, chain.worker !== undefined)) slotsUsed++;
      const hash = inPlace.appendEvent(e, chain);
      expect(hash).toBe(copied.append(chainedBody(e, chain)));
      expect(Object.entries(e)).toEqual(before);
    }
    expect(slotsUsed).toBe(3000);
    expect(inPlace.bytes().equals(copied.bytes())).toBe(true);
  });

  test("an event without every slot, with a slot already set, or frozen is copied, and written the same", () => {
    const base = { a: 1, prev: undefined, seq: undefined, time: undefined, type: "decision", worker: undefined };
    const { worker: _w, ...noWorker } = base;
    const { time: _t, ...noTime } = base;
    const cases: Array<[Record<string, unknown>, boolean]> = [[noTime, false], [{ ...base, seq: 4 }, false], [Object.freeze({ ...base }), false], [noWorker, true], [noWorker, false]];
    for (const [e, withWorker] of cases) {
      const chain = { ...chainFor(e, 5), worker: withWorker ? 1 : undefined };
      expect(hasChainSlots(e, withWorker)).toBe(e === noWorker && !withWorker);
      const buffer = new LineBuffer();
      expect(buffer.appendEvent(e, chain)).toBe(recordLine(chainedBody(e, chain)).hash);
      expect(JSON.parse(buffer.bytes().toString("utf8"))).toMatchObject({ seq: 5, prev: "ab".repeat(32), type: "decision" });
    }
  });

  test("a value JSON cannot hold is refused, and the slots are emptied again", () => {
    const e: Record<string, unknown> = { a: Number.NaN, prev: undefined, seq: undefined, time: undefined, type: undefined };
    let code = "";
    try { new LineBuffer().appendEvent(e, chainFor(e, 1)); } catch (error) { code = (error as GatewayError).code; }
    expect(code).toBe("AUDIT_NOT_JSON");
    expect(e).toEqual({ a: Number.NaN, prev: undefined, seq: undefined, time: undefined, type: undefined });
    expect(Object.keys(e)).toEqual(["a", "prev", "seq", "time", "type"]);
  });
});
