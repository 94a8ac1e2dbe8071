import { describe, expect, test } from "bun:test";
import { formatKeyPath, locateKeys } from "./locate.ts";
import { closestMatch, editDistance } from "./suggest.ts";

describe("locateKeys", () => {
  const text = [
    'state_dir = "x"',                        // 1
    "[listen]",                               // 2
    '  address = "0.0.0.0:8443" # comment',   // 3
    "[[listen.sni]]",                         // 4
    'server_name = "a"',                      // 5
    "[[listen.sni]]",                         // 6
    'cert = "b.pem"',                         // 7
    '[listen.identities."spiffe://x/y"]',     // 8
    "roles = []",                             // 9
    "[upstreams]",                            // 10
    'changes.url = "http://x"',               // 11
    'notes = """',                            // 12
    "fake = 1",                               // 13 (inside a multi-line string)
    '"""',                                    // 14
    "[ issuers . corp ]",                     // 15
  ].join("\n");
  const positions = locateKeys(text);
  const cases: [string, { line: number; col: number } | undefined][] = [
    ["state_dir", { line: 1, col: 1 }],
    ["listen", { line: 2, col: 2 }],
    ["listen.address", { line: 3, col: 3 }],
    ["listen.sni[0]", { line: 4, col: 3 }],
    ["listen.sni[0].server_name", { line: 5, col: 1 }],
    ["listen.sni[1].cert", { line: 7, col: 1 }],
    ['listen.identities."spiffe://x/y".roles', { line: 9, col: 1 }],
    ["listen.identities", { line: 8, col: 2 }],
    ["upstreams.changes", { line: 11, col: 1 }],
    ["upstreams.changes.url", { line: 11, col: 9 }],
    ["upstreams.fake", undefined],
    ["issuers.corp", { line: 15, col: 3 }],
  ];
  for (const [path, want] of cases) test(path, () => expect(positions.get(path)).toEqual(want));
});

describe("formatKeyPath", () => {
  test("quotes keys that are not bare and writes indexes in brackets", () => {
    expect(formatKeyPath(["listen", "sni", 2, "cert"])).toBe("listen.sni[2].cert");
    expect(formatKeyPath(["listen", "identities", "spiffe://a/b", "roles"])).toBe('listen.identities."spiffe://a/b".roles');
  });
});

describe("closestMatch", () => {
  const cases: [string, string[], string | null][] = [
    ["adress", ["address", "cert", "key"], "address"],
    ["timout", ["timeout", "connect_timeout", "url"], "timeout"],
    ["cetr", ["cert", "key"], "cert"], // adjacent transposition costs 1
    ["ES265", ["ES256", "RS256"], "ES256"],
    ["zzz", ["address", "cert"], null],
  ];
  for (const [word, candidates, want] of cases) test(`${word} -> ${want}`, () => expect(closestMatch(word, candidates)).toBe(want));
  test("edit distance counts a swap as one edit", () => {
    expect(editDistance("ab", "ba")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
  });
});
