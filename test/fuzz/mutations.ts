// Inputs of the fuzzers: token soup and character or token mutations of a source, all driven by a
// seeded generator so a failure can be replayed. The language fuzzer (fuzz.test.ts) and the
// formatter's property tests (dsl/format.test.ts) share them.
import type { Rng } from "../../bench/gen-policy.ts";

export const VOCABULARY = [
  "principal", "role", "enum", "upstream", "duty", "grant", "forbid", "exclusive", "separate", "by", "of", "when", "until", "channel",
  "and", "or", "not", "in", "has", "starts_with", "ends_with", "matches", "true", "false", "set", "admin", "operational",
  "{", "}", "[", "]", "(", ")", ",", ":", ".", "->", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*",
  "sub", "roles", "mfa", "team", "developer", "reviewer", "x", "d", "u", "GET", "POST", "get",
  "string", "int", "bool", "ip", "cidr", "time", "duration", "set<role>", "set<string>",
  "request", "request.ip", "request.header", "request.header[\"x-freeze\"]", "request.query[\"q\"]", "request.param.change", "request.time", "principal.mfa", "principal.roles",
  "\"1\"", "\"\"", "\"a\\\"b\"", "\"unterminated", "42", "0", "99999999999999999999", "10.0.0.0/8", "10.0.0.1", "300.1.1.1", "1.2.3.4/40",
  "2026-12-31", "2026-02-30", "2026-12-31T18:00:00Z", "1h30m", "90s", "7d", "ip(\"::1\")", "cidr(\"fd00::/8\")", "time(\"x\")",
  "/changes/:change/approve", "/logs/*", "/", "//", "/a/*/b", "/:1", "#comment", "\n", "\n", "\n", " ", "\t", "$", "'", "@", "\\", "é", "\u0000",
];

export function tokenSoup(rng: Rng): string {
  const n = rng.int(60);
  let out = "";
  for (let i = 0; i < n; i++) out += rng.pick(VOCABULARY) + (rng.chance(0.8) ? " " : "");
  return out;
}

export function mutateChars(rng: Rng, text: string): string {
  let s = text;
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(s.length + 1);
    switch (rng.int(6)) {
      case 0: s = s.slice(0, at) + s.slice(at + 1 + rng.int(8)); break; // delete
      case 1: s = s.slice(0, at) + rng.pick(VOCABULARY) + s.slice(at); break; // insert a token's text
      case 2: s = s.slice(0, at) + String.fromCharCode(32 + rng.int(95)) + s.slice(at); break; // insert a char
      case 3: { const len = 1 + rng.int(20); s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at); break; } // duplicate
      case 4: { if (s.length > 1) { const b = rng.int(s.length); const chars = [...s]; [chars[at % chars.length], chars[b]] = [chars[b]!, chars[at % chars.length]!]; s = chars.join(""); } break; } // swap
      case 5: s = s.slice(0, at); break; // truncate
    }
  }
  return s;
}

export function mutateTokens(rng: Rng, text: string): string {
  const tokens = text.split(/(\s+)/);
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits && tokens.length; e++) {
    const i = rng.int(tokens.length);
    switch (rng.int(4)) {
      case 0: tokens.splice(i, 1); break;
      case 1: tokens.splice(i, 0, tokens[rng.int(tokens.length)]!); break;
      case 2: { const j = rng.int(tokens.length); [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!]; break; }
      case 3: tokens.splice(i, 0, " " + rng.pick(VOCABULARY) + " "); break;
    }
  }
  return tokens.join("");
}
