import { describe, expect, test } from "bun:test";
import { canonicalLedgerKey, compilePolicy, compositeLedgerKey, interpretDecision, loadPolicy, parseIp } from "./mod.ts";
import type { PolicyRequest, Principal } from "./mod.ts";

describe("canonicalLedgerKey: one key per resource id", () => {
  // [spellings of one id..., its key]
  const cases: Array<[string[], string]> = [
    [["42"], "42"],
    [["42!", "42%21"], "42!"],
    [["a:b@c+d,e=f", "a%3Ab%40c%2Bd%2Ce%3Df", "a%3ab%40c%2bd%2ce%3df"], "a:b@c+d,e=f"],
    [["~x", "%7Ex"], "~x"],
    [["caf%C3%A9", "cafe%CC%81", "café", "cafe\u0301"], "café"],
    [["69", "69%20", "%2069", "69%C2%A0", " 69 "], "69"],
    // Data escapes decode once: `%2541` is `%41`, not `A`.
    [["42%2541"], "42%41"],
    [["%3B"], ";"],
  ];
  for (const [spellings, key] of cases) {
    test(`${spellings.join(", ")} → ${key}`, () => expect(spellings.map(canonicalLedgerKey)).toEqual(spellings.map(() => key)));
  }

  test("case and leading zeros stay apart", () => {
    expect(new Set(["ABC", "abc", "42", "042"].map(canonicalLedgerKey)).size).toBe(4);
  });

  test("a value that does not decode is used as given (the gateway refuses such paths before)", () => {
    expect(canonicalLedgerKey("a%zz")).toBe("a%zz");
    expect(canonicalLedgerKey("%C0%AE")).toBe("%C0%AE");
  });
});

describe("compositeLedgerKey: one key per list of ids, never shared by two lists", () => {
  test("one param keeps the plain canonical key, as ledgers written before composite keys hold it", () => {
    for (const v of ["42", "42%21", "cafe%CC%81", " 69 ", '["a","b"]']) expect(compositeLedgerKey([v])).toBe(canonicalLedgerKey(v));
  });

  test("several params: a JSON array of the canonical values, in order", () => {
    expect(compositeLedgerKey(["acme", "INV-1"])).toBe('["acme","INV-1"]');
    expect(compositeLedgerKey(["caf%C3%A9%20", "42%21"])).toBe('["café","42!"]');
    expect(compositeLedgerKey(["INV-1", "acme"])).not.toBe(compositeLedgerKey(["acme", "INV-1"]));
  });

  test("separators and quotes inside values do not merge two lists", () => {
    const lists = [["a,b", "c"], ["a", "b,c"], ['a","b', "c"], ["a", '"b","c'], ["a\\", "b"], ["a", "\\b"], ["", "a"], ["a", ""]];
    expect(new Set(lists.map(compositeLedgerKey)).size).toBe(lists.length);
    for (const l of lists) expect(JSON.parse(compositeLedgerKey(l))).toEqual(l);
  });
});

describe("decisions hand out canonical keys, in both evaluators", () => {
  const { policy } = loadPolicy([{ path: "keys.duty", text: `principal { sub: string roles: set<role> }
role dev
upstream u
duty submit POST /changes/:change/submit -> u
duty approve POST /changes/:change/approve -> u
grant dev submit
grant dev approve
separate submit, approve by change
` }]);
  const principal: Principal = { sub: "alice", roles: new Set(["dev"]) };
  const request = (path: string): PolicyRequest => ({ method: "POST", path, ip: parseIp("127.0.0.1")!, time: 0, headers: {}, query: {} });

  test("NFD and an escaped `!` become the NFC, decoded key", () => {
    const compiled = compilePolicy(policy!);
    for (const [path, key] of [["/changes/cafe%CC%81!/submit", "café!"], ["/changes/caf%C3%A9%21/approve", "café!"]] as const) {
      expect(compiled.decide("operational", principal, request(path)).separations.map((s) => s.key)).toEqual([key]);
      expect(interpretDecision(policy!, "operational", principal, request(path)).separations.map((s) => s.key)).toEqual([key]);
    }
  });
});
