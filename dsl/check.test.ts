// The checker, table-driven: every diagnostic code the language can emit (lexer, parser and
// checker), each with its exact `file:line:col`, its message and its help where it has one.
import { test, expect, describe } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CHECK_PASSES } from "./check.ts";
import { loadPolicy } from "./mod.ts";
import type { Diagnostic } from "./mod.ts";

const NOW = Date.UTC(2026, 0, 1);
/** Eight lines; rows add their declarations from line 9 on. */
const HEAD = `principal {
  sub: string
  roles: set<role>
  mfa: bool
  team: string
}
role developer, reviewer, deployer
upstream app
`;

function check(text: string, now = NOW): { diagnostics: Diagnostic[]; ok: boolean } {
  const r = loadPolicy([{ path: "p.duty", text }], { now });
  return { diagnostics: r.diagnostics, ok: r.policy !== null };
}

const where = (d: Diagnostic) => `${d.code} ${d.span.file}:${d.span.line}:${d.span.col}`;

interface Row {
  name: string;
  /** Appended to HEAD unless `full` is set. */
  body: string;
  full?: boolean;
  now?: number;
  /** Every diagnostic, in order: `CODE file:line:col`. */
  expect: string[];
  /** Substring of the first expected diagnostic's message / help. */
  message?: string;
  help?: string;
  /** Whether a policy comes out (warnings only). Defaults to false when any E_ code is expected. */
  ok?: boolean;
}

const rows: Row[] = [
  // --- names ----------------------------------------------------------------------------------
  { name: "E_UNKNOWN_ROLE in a grant, with did-you-mean", body: "duty d GET /d -> app\ngrant reviwer d\n", expect: ["E_UNKNOWN_ROLE p.duty:10:7"], message: "unknown role `reviwer`", help: "did you mean `reviewer`?" },
  { name: "E_UNKNOWN_ROLE in a grant's second role", body: "duty d GET /d -> app\ngrant developer, deploir d\n", expect: ["E_UNKNOWN_ROLE p.duty:10:18"], help: "did you mean `deployer`?" },
  { name: "E_UNKNOWN_ROLE without a close match has no help", body: "duty d GET /d -> app\ngrant janitor d\n", expect: ["E_UNKNOWN_ROLE p.duty:10:7"], message: "unknown role `janitor`" },
  { name: "E_UNKNOWN_ROLE in a condition", body: "duty d GET /d -> app\ngrant developer d when principal.roles has reviwer\n", expect: ["E_UNKNOWN_ROLE p.duty:10:44"], help: "did you mean `reviewer`?" },
  { name: "E_UNKNOWN_ROLE in an exclusive set", body: "exclusive developer, deployr\n", expect: ["E_UNKNOWN_ROLE p.duty:9:22"], help: "did you mean `deployer`?" },
  { name: "E_UNKNOWN_DUTY in a grant", body: "duty approve GET /d -> app\ngrant reviewer aprove\n", expect: ["W_DUTY_NEVER_GRANTED p.duty:9:1", "E_UNKNOWN_DUTY p.duty:10:16"], message: "", help: "" },
  { name: "E_UNKNOWN_DUTY in a forbid, with did-you-mean", body: "duty approve GET /d -> app\ngrant reviewer approve\nforbid aprove when true\n", expect: ["E_UNKNOWN_DUTY p.duty:11:8"], message: "unknown duty `aprove`", help: "did you mean `approve`?" },
  { name: "E_UNKNOWN_DUTY in a separate", body: "duty a1 POST /c/:c/a -> app\ngrant reviewer a1\nseparate a1, a2 by c\n", expect: ["E_UNKNOWN_DUTY p.duty:11:14"], help: "did you mean `a1`?" },
  { name: "E_UNKNOWN_UPSTREAM, with did-you-mean", body: "duty d GET /d -> ap\n", expect: ["E_UNKNOWN_UPSTREAM p.duty:9:18"], message: "unknown upstream `ap`", help: "did you mean `app`?" },
  { name: "E_UNKNOWN_UPSTREAM, far from any, suggests declaring it", body: "duty d GET /d -> billing\n", expect: ["E_UNKNOWN_UPSTREAM p.duty:9:18"], help: "declare it with `upstream billing`" },
  { name: "E_UNKNOWN_PARAM in a condition, with did-you-mean", body: "duty d POST /c/:change/approve -> app\ngrant reviewer d when request.param.chnage == \"1\"\n", expect: ["E_UNKNOWN_PARAM p.duty:10:37"], message: "unknown route param `chnage`", help: "did you mean `change`?" },
  { name: "E_UNKNOWN_PARAM in a condition of a duty without params", body: "duty d GET /d -> app\ngrant reviewer d when request.param.id == \"1\"\n", expect: ["E_UNKNOWN_PARAM p.duty:10:37"], help: "this rule's duties have no route params" },
  { name: "E_UNKNOWN_PARAM in a forbid over duties that do not all have it", body: "duty a GET /a/:id -> app\nduty b GET /b -> app\ngrant reviewer a\ngrant reviewer b\nforbid a, b when request.param.id == \"x\"\n", expect: ["E_UNKNOWN_PARAM p.duty:13:32"], help: "did you mean `id`?" },
  { name: "E_UNKNOWN_PARAM in a separate", body: "duty a POST /c/:change/a -> app\nduty b POST /c/:id/b -> app\ngrant reviewer a\ngrant reviewer b\nseparate a, b by change\n", expect: ["E_UNKNOWN_PARAM p.duty:13:18"], message: "duty `b` has no route param `:change`", help: "its route is `/c/:id/b`" },
  { name: "E_UNKNOWN_ATTRIBUTE, with did-you-mean", body: "duty d GET /d -> app\ngrant reviewer d when principal.mfaa\n", expect: ["E_UNKNOWN_ATTRIBUTE p.duty:10:33"], message: "the principal has no attribute `mfaa`", help: "did you mean `mfa`?" },
  { name: "E_UNKNOWN_ATTRIBUTE, far from any, suggests declaring it", body: "duty d GET /d -> app\ngrant reviewer d when principal.department == \"x\"\n", expect: ["E_UNKNOWN_ATTRIBUTE p.duty:10:33"], help: "declare it in `principal { … }`" },
  { name: "E_UNKNOWN_FIELD, with did-you-mean", body: "duty d GET /d -> app\ngrant reviewer d when request.heder[\"x\"] == \"1\"\n", expect: ["E_UNKNOWN_FIELD p.duty:10:31"], message: "the request has no field `heder`", help: "did you mean `header`?" },
  { name: "E_UNKNOWN_NAME for a bare identifier", body: "duty d GET /d -> app\ngrant reviewer d when frozen\n", expect: ["E_UNKNOWN_NAME p.duty:10:23"], message: "unknown name `frozen`" },
  { name: "E_UNKNOWN_NAME for a value of another enum", body: "enum tier { gold, silver }\nduty d GET /d -> app\ngrant reviewer d when platinum == gold\n", expect: ["E_UNKNOWN_NAME p.duty:11:23"], message: "unknown name `platinum`" },
  { name: "E_UNKNOWN_NAME for a misspelled enum value", body: "enum tier { gold, silver }\nduty d GET /d -> app\ngrant reviewer d when gold == silvr\n", expect: ["E_UNKNOWN_NAME p.duty:11:31"], message: "unknown tier value `silvr`", help: "did you mean `silver`?" },
  { name: "E_AMBIGUOUS_NAME for a value of two enums", body: "enum a { x, y }\nenum b { x, z }\nduty d GET /d -> app\ngrant reviewer d when x == x\n", expect: ["E_AMBIGUOUS_NAME p.duty:12:23", "E_AMBIGUOUS_NAME p.duty:12:28"], message: "`x` is a value of several enums: a, b" },
  { name: "E_UNKNOWN_FUNCTION, with did-you-mean", body: "duty d GET /d -> app\ngrant reviewer d when request.ip == ipp(\"::1\")\n", expect: ["E_UNKNOWN_FUNCTION p.duty:10:37"], help: "did you mean `ip`?" },
  { name: "E_UNKNOWN_TYPE, with did-you-mean", full: true, body: "principal { sub: string roles: set<role> team: strng }\nrole a\n", expect: ["E_UNKNOWN_TYPE p.duty:1:48"], message: "unknown type `strng`", help: "did you mean `string`?" },
  // The built-in `gateway` upstream serves the admin functions: no operational duty may reach it.
  { name: "E_GATEWAY_DUTY_NOT_ADMIN: a duty on `gateway` without a channel is operational", body: "upstream gateway\nduty m GET /-/metrics -> gateway\ngrant deployer m\n", expect: ["E_GATEWAY_DUTY_NOT_ADMIN p.duty:10:1"], message: "duty `m` reaches the built-in `gateway` upstream on the operational channel", help: "the gateway's admin functions answer on the admin channel only: add `channel admin`" },
  { name: "E_GATEWAY_DUTY_NOT_ADMIN: `channel operational` on `gateway`", body: "upstream gateway\nduty reload POST /-/policy/reload -> gateway channel operational\ngrant deployer reload\n", expect: ["E_GATEWAY_DUTY_NOT_ADMIN p.duty:10:1"] },
  { name: "a duty on `gateway` on the admin channel is accepted", body: "upstream gateway\nduty m GET /-/metrics -> gateway channel admin\ngrant deployer m\n", expect: ["W_ADMIN_DUTY_OPERATIONAL_ROLE p.duty:11:7"], ok: true },
  { name: "E_UNKNOWN_CHANNEL, with did-you-mean", body: "duty d GET /d -> app channel admn\n", expect: ["E_UNKNOWN_CHANNEL p.duty:9:30"], help: "did you mean `admin`?" },

  // --- types --------------------------------------------------------------------------------------
  { name: "E_TYPE_MISMATCH: string == int", body: "duty d GET /d -> app\ngrant reviewer d when principal.team == 3\n", expect: ["E_TYPE_MISMATCH p.duty:10:38"], message: "`==` cannot compare `string` with `int`" },
  { name: "E_TYPE_MISMATCH: ip == cidr suggests `in`", body: "duty d GET /d -> app\ngrant reviewer d when request.ip == 10.0.0.0/8\n", expect: ["E_TYPE_MISMATCH p.duty:10:34"], help: "to test membership use `in`" },
  { name: "E_TYPE_MISMATCH: ordering bools", body: "duty d GET /d -> app\ngrant reviewer d when principal.mfa < true\n", expect: ["E_TYPE_MISMATCH p.duty:10:37"], help: "ordering works on int, time and duration" },
  { name: "E_TYPE_MISMATCH: ordering strings", body: "duty d GET /d -> app\ngrant reviewer d when principal.team >= \"m\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:38"] },
  { name: "E_TYPE_MISMATCH: `in` a string suggests starts_with", body: "duty d GET /d -> app\ngrant reviewer d when \"co\" in principal.team\n", expect: ["E_TYPE_MISMATCH p.duty:10:28"], help: "for substrings use `starts_with` or `ends_with`" },
  { name: "E_TYPE_MISMATCH: a condition that is not a bool", body: "duty d GET /d -> app\ngrant reviewer d when principal.team\n", expect: ["E_TYPE_MISMATCH p.duty:10:23"], message: "a condition must be a bool, found `string`" },
  { name: "E_TYPE_MISMATCH: `and` of a string", body: "duty d GET /d -> app\ngrant reviewer d when principal.mfa and principal.team\n", expect: ["E_TYPE_MISMATCH p.duty:10:41"], message: "`and` needs bools, found `string`" },
  { name: "E_TYPE_MISMATCH: `not` of a string", body: "duty d GET /d -> app\ngrant reviewer d when not principal.team\n", expect: ["E_TYPE_MISMATCH p.duty:10:27"], message: "`not` needs a bool, found `string`" },
  { name: "E_TYPE_MISMATCH: a set literal of two types", body: "duty d GET /d -> app\ngrant reviewer d when principal.team in [\"a\", 1]\n", expect: ["E_TYPE_MISMATCH p.duty:10:47"], message: "set elements must share one type: `string` and `int`" },
  { name: "E_TYPE_MISMATCH: starts_with an int", body: "duty d GET /d -> app\ngrant reviewer d when principal.team starts_with 1\n", expect: ["E_TYPE_MISMATCH p.duty:10:38"], help: "`starts_with` and `ends_with` work on strings" },
  { name: "E_TYPE_MISMATCH: string + int", body: "duty d GET /d -> app\ngrant reviewer d when principal.team + 1 == \"x\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:38"], help: "arithmetic works on int, duration, and time ± duration" },
  { name: "E_TYPE_MISMATCH: duration - time", body: "duty d GET /d -> app\ngrant reviewer d when 1h - request.time > 1h\n", expect: ["E_TYPE_MISMATCH p.duty:10:26"] },
  { name: "E_TYPE_MISMATCH: header has an unquoted name", body: "duty d GET /d -> app\ngrant reviewer d when request.header has principal.team\n", expect: ["E_TYPE_MISMATCH p.duty:10:42"], message: "`request.header has` needs a quoted name" },
  { name: "E_TYPE_MISMATCH: role set has a string", body: "duty d GET /d -> app\ngrant reviewer d when principal.roles has \"reviewer\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:39"], message: "`has` needs a set of `string` on the left, found `set<role>`" },
  { name: "E_NESTED_SET in the schema", full: true, body: "principal { sub: string roles: set<role> groups: set<set<string>> }\nrole a\n", expect: ["E_NESTED_SET p.duty:1:50"] },
  { name: "E_NESTED_SET in a literal", body: "duty d GET /d -> app\ngrant reviewer d when [\"a\"] in [[\"a\"]]\n", expect: ["E_NESTED_SET p.duty:10:33"] },
  { name: "E_BAD_LITERAL: IPv4 octet out of range", body: "duty d GET /d -> app\ngrant reviewer d when request.ip == 300.1.1.1\n", expect: ["E_BAD_LITERAL p.duty:10:37"], message: "bad IP address `300.1.1.1`" },
  { name: "E_BAD_LITERAL: cidr with host bits", body: "duty d GET /d -> app\ngrant reviewer d when request.ip in 10.0.0.1/8\n", expect: ["E_BAD_LITERAL p.duty:10:37"], help: "host bits must be zero, e.g. `10.0.0.0/8`" },
  { name: "E_BAD_LITERAL: bad ip(...)", body: "duty d GET /d -> app\ngrant reviewer d when request.ip == ip(\"2001:db8::zz\")\n", expect: ["E_BAD_LITERAL p.duty:10:37"], message: "bad ip `2001:db8::zz`" },
  { name: "E_BAD_LITERAL: a date that does not exist", body: "duty d GET /d -> app\ngrant reviewer d when request.time > 2026-02-30\n", expect: ["E_BAD_LITERAL p.duty:10:38"], message: "bad date `2026-02-30`" },
  { name: "E_BAD_LITERAL: an until date that does not exist", body: "duty d GET /d -> app\ngrant reviewer d until 2026-13-01\n", expect: ["E_BAD_LITERAL p.duty:10:24"], message: "bad date `2026-13-01`" },
  { name: "E_BAD_LITERAL: an integer beyond 2^53", body: "duty d GET /d -> app\ngrant reviewer d when 99999999999999999999 > 1\n", expect: ["E_BAD_LITERAL p.duty:10:23"], message: "integer out of range" },
  { name: "E_BAD_REFERENCE: principal alone", body: "duty d GET /d -> app\ngrant reviewer d when principal\n", expect: ["E_BAD_REFERENCE p.duty:10:23"], message: "use `principal.<attribute>`" },
  { name: "E_BAD_REFERENCE: a member of an attribute", body: "duty d GET /d -> app\ngrant reviewer d when principal.mfa.value\n", expect: ["E_BAD_REFERENCE p.duty:10:37"] },
  { name: "E_BAD_REFERENCE: a bare header map", body: "duty d GET /d -> app\ngrant reviewer d when request.header == \"x\"\n", expect: ["E_BAD_REFERENCE p.duty:10:23"], help: "or test presence with `request.header has \"name\"`" },
  { name: "E_BAD_REFERENCE: a header by dot", body: "duty d GET /d -> app\ngrant reviewer d when request.header.x == \"1\"\n", expect: ["E_BAD_REFERENCE p.duty:10:38"], message: "use `request.header[\"name\"]`" },
  { name: "E_BAD_REFERENCE: request.param without a name", body: "duty d GET /d/:id -> app\ngrant reviewer d when request.param == \"x\"\n", expect: ["E_BAD_REFERENCE p.duty:10:23"], message: "use `request.param.<name>`" },

  // --- declarations ---------------------------------------------------------------------------
  { name: "E_OVERLAPPING_DUTY: same method and route shape", body: "duty a GET /c/:id -> app\nduty b GET /c/:change -> app\ngrant reviewer a\n", expect: ["E_OVERLAPPING_DUTY p.duty:10:12"], message: "duty `b` has the same method and route as `a`", help: "`a` is declared at p.duty:9:1; a request must map to exactly one duty" },
  { name: "another method on the same route does not overlap", body: "duty a GET /c/:id -> app\nduty b PUT /c/:change -> app\ngrant reviewer a\ngrant reviewer b\n", expect: [], ok: true },
  { name: "E_DUPLICATE_DUTY", body: "duty a GET /a -> app\nduty a GET /b -> app\ngrant reviewer a\n", expect: ["E_DUPLICATE_DUTY p.duty:10:6"], help: "first declared at p.duty:9:1" },
  { name: "E_DUPLICATE_DUTY in a forbid list", body: "duty a GET /a -> app\ngrant reviewer a\nforbid a, a when true\n", expect: ["E_DUPLICATE_DUTY p.duty:11:11"] },
  { name: "E_DUPLICATE_DUTY in a separate list", body: "duty a GET /a/:x -> app\ngrant reviewer a\nseparate a, a by x\n", expect: ["E_DUPLICATE_DUTY p.duty:11:13"] },
  { name: "E_DUPLICATE_ROLE in role declarations", body: "role reviewer\n", expect: ["E_DUPLICATE_ROLE p.duty:9:6"], message: "role `reviewer` is declared twice" },
  { name: "E_DUPLICATE_ROLE in a grant", body: "duty d GET /d -> app\ngrant reviewer, reviewer d\n", expect: ["E_DUPLICATE_ROLE p.duty:10:17"] },
  { name: "E_DUPLICATE_ROLE in an exclusive set", body: "exclusive reviewer, developer, reviewer\n", expect: ["E_DUPLICATE_ROLE p.duty:9:32"] },
  { name: "E_DUPLICATE_UPSTREAM", body: "upstream app\n", expect: ["E_DUPLICATE_UPSTREAM p.duty:9:10"] },
  { name: "E_DUPLICATE_TYPE: an enum declared twice", body: "enum tier { a }\nenum tier { b }\n", expect: ["E_DUPLICATE_TYPE p.duty:10:6"], message: "type `tier` is already declared" },
  { name: "E_DUPLICATE_TYPE: an enum named like a primitive", body: "enum string { x }\n", expect: ["E_DUPLICATE_TYPE p.duty:9:6"] },
  { name: "E_DUPLICATE_ENUM_VALUE", body: "enum tier { gold, silver, gold }\n", expect: ["E_DUPLICATE_ENUM_VALUE p.duty:9:27"] },
  { name: "E_DUPLICATE_PRINCIPAL", body: "principal { level: int }\n", expect: ["E_DUPLICATE_PRINCIPAL p.duty:9:1"], help: "declare all attributes in one `principal { … }` block" },
  { name: "E_DUPLICATE_ATTRIBUTE", full: true, body: "principal { sub: string roles: set<role> sub: string }\nrole a\n", expect: ["E_DUPLICATE_ATTRIBUTE p.duty:1:42"] },
  { name: "E_NO_PRINCIPAL", full: true, body: "role a\nupstream u\n", expect: ["E_NO_PRINCIPAL p.duty:1:1"], help: "add `principal { sub: string  roles: set<role> }`" },
  { name: "E_NO_PRINCIPAL in an empty policy", full: true, body: "", expect: ["E_NO_PRINCIPAL p.duty:1:1"] },
  { name: "E_PRINCIPAL_ROLES: roles of strings", full: true, body: "principal { sub: string roles: set<string> }\nrole a\n", expect: ["E_PRINCIPAL_ROLES p.duty:1:1"], message: "the principal must declare `roles: set<role>`" },
  { name: "E_PRINCIPAL_ROLES: no roles attribute", full: true, body: "principal { sub: string }\nrole a\n", expect: ["E_PRINCIPAL_ROLES p.duty:1:1"] },
  { name: "E_PRINCIPAL_SUB", full: true, body: "principal { sub: int roles: set<role> }\nrole a\n", expect: ["E_PRINCIPAL_SUB p.duty:1:1"] },
  { name: "E_BAD_METHOD: lower case", body: "duty d get /d -> app\n", expect: ["E_BAD_METHOD p.duty:9:8"], help: "methods are upper case: `GET`" },
  { name: "E_BAD_METHOD: a typo", body: "duty d PTACH /d -> app\n", expect: ["E_BAD_METHOD p.duty:9:8"], help: "did you mean `PATCH`?" },
  { name: "E_BAD_METHOD: unknown", body: "duty d FETCH /d -> app\n", expect: ["E_BAD_METHOD p.duty:9:8"], help: "one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" },
  { name: "E_BAD_ROUTE: wildcard not last", body: "duty d GET /a/*/b -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"], message: "`*` may only be the last segment of a route" },
  { name: "E_BAD_ROUTE: empty segment", body: "duty d GET /a//b -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"], help: "routes are matched against normalised paths: no `//`, `.` or `..`" },
  { name: "E_BAD_ROUTE: dot-dot segment", body: "duty d GET /a/../b -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"] },
  { name: "E_BAD_ROUTE: trailing slash", body: "duty d GET /a/ -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"] },
  { name: "E_BAD_ROUTE: bad param name", body: "duty d GET /a/:1x -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"], message: "bad route param `:1x`", help: "params look like `:change`" },
  { name: "E_BAD_ROUTE: a param twice", body: "duty d GET /a/:x/b/:x -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"], message: "route param `:x` appears twice" },
  { name: "E_BAD_ROUTE: characters a normalised path never has", body: "duty d GET /a/<b> -> app\n", expect: ["E_BAD_ROUTE p.duty:9:12"] },

  // --- rules ----------------------------------------------------------------------------------
  { name: "E_UNTIL_PAST", body: "duty d GET /d -> app\ngrant reviewer d\ngrant deployer d until 2025-12-31\n", expect: ["E_UNTIL_PAST p.duty:11:24"], message: "this grant expired on 2025-12-31", help: "remove the grant, or extend it with a new reviewed date" },
  { name: "until today is not past (the date's end of day counts)", body: "duty d GET /d -> app\ngrant reviewer d until 2026-01-01\n", expect: ["W_UNTIL_SOON p.duty:10:24"], ok: true },
  { name: "W_UNTIL_SOON within 14 days of now", body: "duty d GET /d -> app\ngrant reviewer d until 2026-01-10\n", expect: ["W_UNTIL_SOON p.duty:10:24"], message: "this grant expires on 2026-01-10, in 10 days", ok: true },
  { name: "no warning for an until beyond 14 days", body: "duty d GET /d -> app\ngrant reviewer d until 2026-01-16\n", expect: [], ok: true },
  { name: "W_UNTIL_SOON follows the given now", now: Date.UTC(2026, 0, 10), body: "duty d GET /d -> app\ngrant reviewer d until 2026-01-16\n", expect: ["W_UNTIL_SOON p.duty:10:24"], ok: true },
  { name: "E_UNTIL_PAST follows the given now", now: Date.UTC(2026, 0, 17), body: "duty d GET /d -> app\ngrant reviewer d until 2026-01-16\n", expect: ["E_UNTIL_PAST p.duty:10:24"] },
  { name: "E_GRANT_NEVER_APPLIES: constant false", body: "duty d GET /d -> app\ngrant reviewer d\ngrant deployer d when false\n", expect: ["E_GRANT_NEVER_APPLIES p.duty:11:23"], message: "this grant can never apply: its condition is always false" },
  { name: "E_GRANT_NEVER_APPLIES: constant comparison", body: "duty d GET /d -> app\ngrant reviewer d\ngrant deployer d when 1 == 2 or 2 < 1\n", expect: ["E_GRANT_NEVER_APPLIES p.duty:11:23"] },
  { name: "E_GRANT_NEVER_APPLIES: requires a role exclusive with the granted one", body: "exclusive developer, deployer\nduty d GET /d -> app\ngrant reviewer d\ngrant developer d when principal.mfa and deployer in principal.roles\n", expect: ["E_GRANT_NEVER_APPLIES p.duty:12:24"], message: "it requires role `deployer`, which is exclusive with `developer`" },
  { name: "requiring a role exclusive with only one of the granted roles may apply", body: "exclusive developer, deployer\nduty d GET /d -> app\ngrant developer, reviewer d when deployer in principal.roles\n", expect: [], ok: true },
  { name: "requiring a role of a 2-of-3 set is not flagged (3-of sets are not pairwise)", body: "exclusive 3 of developer, deployer, reviewer\nduty d GET /d -> app\ngrant developer d when deployer in principal.roles\n", expect: [], ok: true },
  { name: "W_GRANT_SHADOWED by an unconditional forbid", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when true\n", expect: ["W_GRANT_SHADOWED p.duty:10:1"], message: "this grant never applies: `d` is always forbidden by p.duty:11:1", ok: true },
  { name: "W_GRANT_SHADOWED by an unconditional forbid *", body: "duty d GET /d -> app\ngrant reviewer d\nforbid * when not false\n", expect: ["W_GRANT_SHADOWED p.duty:10:1"], ok: true },
  { name: "W_FORBID_NEVER_APPLIES", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when false\n", expect: ["W_FORBID_NEVER_APPLIES p.duty:11:15"], ok: true },
  { name: "W_DUTY_NEVER_GRANTED", body: "duty d GET /d -> app\n", expect: ["W_DUTY_NEVER_GRANTED p.duty:9:1"], message: "duty `d` is granted to no role: every request to it is denied", ok: true },
  { name: "separate by several params: a composite key", body: "duty a POST /t/:tenant/i/:invoice/a -> app\nduty b POST /t/:tenant/i/:invoice/b -> app\ngrant reviewer a\ngrant reviewer b\nseparate a, b by tenant, invoice\n", expect: [], ok: true },
  { name: "E_UNKNOWN_PARAM in the second param of a composite key, with did-you-mean", body: "duty a POST /t/:tenant/i/:invoice/a -> app\nduty b POST /t/:tenant/i/:invoice/b -> app\ngrant reviewer a\ngrant reviewer b\nseparate a, b by tenant, invoise\n", expect: ["E_UNKNOWN_PARAM p.duty:13:26", "E_UNKNOWN_PARAM p.duty:13:26"], message: "duty `a` has no route param `:invoise`", help: "did you mean `invoice`?" },
  { name: "E_DUPLICATE_PARAM in a composite key", body: "duty a POST /t/:tenant/a -> app\nduty b POST /t/:tenant/b -> app\ngrant reviewer a\ngrant reviewer b\nseparate a, b by tenant, tenant\n", expect: ["E_DUPLICATE_PARAM p.duty:13:26"], message: "route param `tenant` appears twice in this key" },
  // --- reuse: named conditions, groups, method sets -----------------------------------------------
  { name: "a named condition in a when", body: "duty d GET /t/:team -> app\ncondition own_team = principal.team == request.param.team\ngrant reviewer d when own_team and principal.mfa\n", expect: [], ok: true },
  { name: "an unused condition's body is still checked (W_UNUSED_CONDITION waits for the errors to go)", body: "duty d GET /d -> app\ngrant reviewer d\ncondition c = principal.mfaa\n", expect: ["E_UNKNOWN_ATTRIBUTE p.duty:11:25"], message: "the principal has no attribute `mfaa`" },
  { name: "W_UNUSED_CONDITION alone", body: "duty d GET /d -> app\ngrant reviewer d\ncondition c = principal.mfa\n", expect: ["W_UNUSED_CONDITION p.duty:11:11"], message: "condition `c` is declared but no rule uses it", ok: true },
  { name: "E_DUPLICATE_CONDITION", body: "duty d GET /d -> app\ncondition c = true\ncondition c = false\ngrant reviewer d when c\n", expect: ["E_DUPLICATE_CONDITION p.duty:11:11"], message: "condition `c` is declared twice", help: "first declared at p.duty:10:1" },
  { name: "E_DUPLICATE_CONDITION: the name of a role", body: "duty d GET /d -> app\ncondition reviewer = true\ngrant reviewer d\n", expect: ["E_DUPLICATE_CONDITION p.duty:10:11"], message: "condition `reviewer` has the name of a role" },
  { name: "E_CONDITION_CYCLE through another condition", body: "duty d GET /d -> app\ncondition a = b\ncondition b = principal.mfa and a\ngrant reviewer d when a\n", expect: ["E_CONDITION_CYCLE p.duty:11:33"], message: "condition `a` refers to itself" },
  { name: "E_UNKNOWN_PARAM: a condition reads a param the rule's duty lacks", body: "duty d GET /d -> app\ncondition own_team = principal.team == request.param.team\ngrant reviewer d when own_team\n", expect: ["E_UNKNOWN_PARAM p.duty:11:23"], message: "condition `own_team` reads route param `team`, which this rule's duties do not all have", help: "this rule's duties have no route params" },
  { name: "E_TYPE_MISMATCH: a condition that is no bool", body: "duty d GET /d -> app\ncondition c = principal.team\ngrant reviewer d when c\n", expect: ["E_TYPE_MISMATCH p.duty:10:15"], message: "a condition must be a bool, found `string`" },
  { name: "E_UNKNOWN_NAME: a misspelled condition, with did-you-mean", body: "duty d GET /d -> app\ncondition same_team = principal.team == \"x\"\ngrant reviewer d when same_tem\n", expect: ["E_UNKNOWN_NAME p.duty:11:23"], help: "did you mean `same_team`?" },
  { name: "E_LEX: `=` outside a condition or group is still the newcomer's `==`", body: "duty d GET /d -> app\ngrant reviewer d when principal.team = \"x\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:23", "E_LEX p.duty:10:38", "E_SYNTAX p.duty:10:40"] },
  { name: "`group` and `condition` stay names outside their declarations (policies written before them load)", full: true, body: "principal { sub: string roles: set<role> group: string }\nrole condition\nupstream app\nduty group GET /d -> app\ngrant condition group when principal.group == \"x\"\ncondition group_x = principal.group == \"x\"\ngrant condition group when not group_x\n", expect: [], ok: true },
  { name: "role and duty groups in every rule", body: "duty a POST /c/:c/a -> app\nduty b POST /c/:c/b -> app\ngroup ab = a, b\ngroup leads = reviewer, deployer\ngrant leads ab when request.param.c != \"\"\nforbid ab when principal.mfa\nexclusive leads, developer\nseparate ab by c\n", expect: [], ok: true },
  { name: "E_DUPLICATE_GROUP: the name of a duty", body: "duty a GET /a -> app\ngroup a = reviewer\ngrant reviewer a\n", expect: ["E_DUPLICATE_GROUP p.duty:10:7"], message: "group `a` has the name of a duty" },
  { name: "E_MIXED_GROUP", body: "duty a GET /a -> app\ngroup g = a, reviewer\ngrant reviewer g\n", expect: ["E_MIXED_GROUP p.duty:10:14"], message: "group `g` mixes roles and duties: `reviewer` is a role, the first member a duty" },
  { name: "E_GROUP_KIND: a role group where duties are expected", body: "duty a GET /a -> app\ngroup g = reviewer, deployer\ngrant reviewer a\nforbid g when true\n", expect: ["E_GROUP_KIND p.duty:12:8"], message: "group `g` holds roles, where duties are expected" },
  { name: "E_GROUP_CYCLE", body: "duty a GET /a -> app\ngroup g = a, h\ngroup h = g\ngrant reviewer g\n", expect: ["E_GROUP_CYCLE p.duty:11:11"], message: "group `h` contains itself through `g`" },
  { name: "E_UNKNOWN_NAME in a group a grant names: the duty it misspells is reported never granted", body: "duty approve GET /a -> app\ngroup g = aprove\ngrant reviewer g\n", expect: ["W_DUTY_NEVER_GRANTED p.duty:9:1", "E_UNKNOWN_NAME p.duty:10:11"], message: "", help: "" },
  { name: "E_DUPLICATE_MEMBER in a group", body: "duty a GET /a -> app\ngroup g = reviewer, reviewer\ngrant g a\n", expect: ["E_DUPLICATE_MEMBER p.duty:10:21"] },
  { name: "a role written once and again through a group is no duplicate", body: "duty a GET /a -> app\ngroup g = reviewer, deployer\ngrant reviewer, g a\n", expect: [], ok: true },
  { name: "E_UNKNOWN_ROLE suggests a role group", body: "duty a GET /a -> app\ngroup leads = reviewer, deployer\ngrant lead a\n", expect: ["E_UNKNOWN_ROLE p.duty:11:7"], help: "did you mean `leads`?" },
  { name: "E_UNKNOWN_NAME in a group, with did-you-mean", body: "duty approve GET /a -> app\ngrant reviewer approve\ngroup g = aprove\nforbid g when principal.mfa\n", expect: ["E_UNKNOWN_NAME p.duty:11:11"], message: "unknown role, duty or group `aprove`", help: "did you mean `approve`?" },
  { name: "W_UNUSED_GROUP", body: "duty a GET /a -> app\ngroup g = reviewer\ngrant reviewer a\n", expect: ["W_UNUSED_GROUP p.duty:10:7"], message: "group `g` is declared but no rule names it", ok: true },
  { name: "a method set", body: "duty a GET|HEAD /a -> app\ngrant reviewer a\n", expect: [], ok: true },
  { name: "E_BAD_METHOD inside a method set, at its place", body: "duty a GET|HAED /a -> app\ngrant reviewer a\n", expect: ["E_BAD_METHOD p.duty:9:12"], message: "unknown method `HAED`", help: "did you mean `HEAD`?" },
  { name: "E_DUPLICATE_METHOD", body: "duty a GET|GET /a -> app\ngrant reviewer a\n", expect: ["E_DUPLICATE_METHOD p.duty:9:12"] },
  { name: "E_OVERLAPPING_DUTY through one method of a set", body: "duty a GET|HEAD /a -> app\nduty b HEAD /a -> app\ngrant reviewer a\ngrant reviewer b\n", expect: ["E_OVERLAPPING_DUTY p.duty:10:13"] },
  { name: "forbid … until", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when principal.mfa until 2026-06-30\n", expect: [], ok: true },
  { name: "E_UNTIL_PAST on a forbid", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when principal.mfa until 2025-06-30\n", expect: ["E_UNTIL_PAST p.duty:11:35"], message: "this forbid expired on 2025-06-30", help: "remove the forbid, or extend it with a new reviewed date" },
  { name: "W_UNTIL_SOON on a forbid", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when principal.mfa until 2026-01-05\n", expect: ["W_UNTIL_SOON p.duty:11:35"], message: "this forbid expires on 2026-01-05, in 5 days", ok: true },
  { name: "an unconditional forbid with until shadows no grant for good", body: "duty d GET /d -> app\ngrant reviewer d\nforbid d when true until 2026-06-30\n", expect: [], ok: true },
  { name: "unary minus on ints and durations", body: "duty d GET /d -> app\ngrant reviewer d when -1 < 0 - 2 + 3 and request.time - -1h > request.time and -(1h) < 0s\n", expect: [], ok: true },
  { name: "E_TYPE_MISMATCH: unary minus on a time", body: "duty d GET /d -> app\ngrant reviewer d when -request.time < request.time\n", expect: ["E_TYPE_MISMATCH p.duty:10:23"], message: "unary `-` needs an int or a duration, found `time`", help: "a time has no negative; subtract a duration from it: `request.time - 1h`" },
  { name: "E_TYPE_MISMATCH: unary minus on a string", body: "duty d GET /d -> app\ngrant reviewer d when -principal.team == \"x\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:23"], message: "unary `-` needs an int or a duration, found `string`" },
  { name: "request.time.time_of_day and .weekday", body: "duty d GET /d -> app\ngrant reviewer d when request.time.time_of_day < 18h and request.time.weekday in [mon, fri]\n", expect: [], ok: true },
  { name: "E_BAD_REFERENCE: a misspelled member of request.time, with did-you-mean", body: "duty d GET /d -> app\ngrant reviewer d when request.time.tim_of_day < 1h\n", expect: ["E_BAD_REFERENCE p.duty:10:36"], message: "`request.time` has no member `tim_of_day`", help: "did you mean `time_of_day`?" },
  { name: "E_UNKNOWN_NAME: a weekday not spelled as the language does, with did-you-mean", body: "duty d GET /d -> app\ngrant reviewer d when request.time.weekday == mo\n", expect: ["E_UNKNOWN_NAME p.duty:10:47"], message: "unknown weekday value `mo`", help: "did you mean `mon`?" },
  { name: "E_TYPE_MISMATCH: a weekday compared with a string", body: "duty d GET /d -> app\ngrant reviewer d when request.time.weekday == \"sat\"\n", expect: ["E_TYPE_MISMATCH p.duty:10:44"] },
  { name: "an optional attribute read under `has`", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when principal has team and (principal.team == \"x\" or principal has level and principal.level > 2)\n", expect: [], ok: true },
  { name: "E_OPTIONAL_UNGUARDED: an optional attribute read without `has`", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when principal.team == \"x\"\n", expect: ["E_OPTIONAL_UNGUARDED p.duty:5:33"], message: "`principal.team` is optional and may be absent here", help: "test it first: `principal has team and …` (or `not (principal has team) or …`)" },
  { name: "E_OPTIONAL_UNGUARDED: `has` on the wrong side of `or` proves nothing", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when principal has team or principal.team == \"x\"\n", expect: ["E_OPTIONAL_UNGUARDED p.duty:5:55"] },
  { name: "`not has … or` guards the right side", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when not (principal has team) or principal.team == \"x\"\n", expect: [], ok: true },
  { name: "E_UNKNOWN_ATTRIBUTE after `principal has`, with did-you-mean", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when principal has tema\n", expect: ["E_UNKNOWN_ATTRIBUTE p.duty:5:37"], help: "did you mean `team`?" },
  { name: "W_ALWAYS_PRESENT: `has` on a required attribute", full: true, body: "principal { sub: string roles: set<role> team?: string level?: int }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d when principal has sub\n", expect: ["W_ALWAYS_PRESENT p.duty:5:23"], ok: true },
  { name: "E_OPTIONAL_REQUIRED_ATTRIBUTE: `sub` cannot be optional", full: true, body: "principal { sub?: string roles: set<role> }\nrole reviewer\nupstream app\nduty d GET /d -> app\ngrant reviewer d\n", expect: ["E_OPTIONAL_REQUIRED_ATTRIBUTE p.duty:1:13"] },
  // --- rule ids ---------------------------------------------------------------------------------
  { name: "@id on every rule kind loads", body: "duty a POST /c/:c/a -> app\nduty b POST /c/:c/b -> app\n@id(\"g1\") grant reviewer a\n@id(\"g2\") grant developer b\n@id(\"f\") forbid a when false\n@id(\"x\") exclusive reviewer, deployer\n@id(\"s.1\") separate a, b by c\n", expect: ["W_FORBID_NEVER_APPLIES p.duty:13:24"], ok: true },
  { name: "E_DUPLICATE_RULE_ID across rule kinds, naming the first", body: "duty a GET /a -> app\n@id(\"r\") grant reviewer a\n@id(\"r\") forbid a when principal.mfa\n", expect: ["E_DUPLICATE_RULE_ID p.duty:11:5"], message: "rule id `r` is used twice", help: "first used at p.duty:10:10; rule ids are unique across grants, forbids, exclusives and separates" },
  { name: "E_UNKNOWN_ANNOTATION, with did-you-mean", body: "duty a GET /a -> app\n@ID(\"r\") grant reviewer a\n", expect: ["E_UNKNOWN_ANNOTATION p.duty:10:2"], message: "unknown annotation `@ID`", help: "did you mean `id`?" },
  { name: "E_ID_NOT_ON_RULE: a duty is no rule", body: "@id(\"d\") duty a GET /a -> app\ngrant reviewer a\n", expect: ["E_ID_NOT_ON_RULE p.duty:9:1"], message: "`@id` names a rule, not a `duty` declaration" },
  { name: "E_BAD_RULE_ID: a colon would read as a location", body: "duty a GET /a -> app\n@id(\"a:1\") grant reviewer a\n", expect: ["E_BAD_RULE_ID p.duty:10:5"], message: "bad rule id `a:1`" },
  { name: "E_BAD_RULE_ID: empty", body: "duty a GET /a -> app\n@id(\"\") grant reviewer a\n", expect: ["E_BAD_RULE_ID p.duty:10:5"] },
  { name: "E_SEPARATE_TOO_SMALL", body: "duty d POST /d/:x -> app\ngrant reviewer d\nseparate d by x\n", expect: ["E_SEPARATE_TOO_SMALL p.duty:11:1"], message: "`separate` needs at least two duties" },
  { name: "E_EXCLUSIVE_TOO_SMALL", body: "exclusive developer\n", expect: ["E_EXCLUSIVE_TOO_SMALL p.duty:9:1"] },
  { name: "E_EXCLUSIVE_BAD_COUNT: more than the set", body: "exclusive 3 of developer, reviewer\n", expect: ["E_EXCLUSIVE_BAD_COUNT p.duty:9:11"], message: "`exclusive 3 of` needs 2 ≤ N ≤ 2" },
  { name: "E_EXCLUSIVE_BAD_COUNT: one of", body: "exclusive 1 of developer, reviewer, deployer\n", expect: ["E_EXCLUSIVE_BAD_COUNT p.duty:9:11"] },
  { name: "exclusive 3 of three roles is fine", body: "exclusive 3 of developer, reviewer, deployer\n", expect: [], ok: true },

  // --- silent acceptance: policies that load but hold a mistake --------------------------------
  { name: "W_UNUSED_ROLE: a declared role no rule names", body: "duty d GET /d -> app\ngrant developer d when reviewer in principal.roles\n", expect: ["W_UNUSED_ROLE p.duty:7:27"], message: "role `deployer` is declared but no grant, exclusive or condition names it", help: "grant it a duty, or remove it", ok: true },
  { name: "W_UNUSED_ROLE: a role named only by an exclusive set is used", body: "duty d GET /d -> app\ngrant developer d\nexclusive reviewer, deployer\n", expect: [], ok: true },
  { name: "W_UNUSED_ROLE is not reported while the policy has errors", body: "duty d GET /d -> app\ngrant developr d\n", expect: ["E_UNKNOWN_ROLE p.duty:10:7"] },
  { name: "W_DUPLICATE_GRANT: same roles, duty and condition", body: "duty d GET /d -> app\ngrant developer, reviewer d when principal.mfa\ngrant reviewer d when principal.mfa\n", expect: ["W_DUPLICATE_GRANT p.duty:11:1"], message: "duplicate grant: `reviewer` already has `d` on the same terms at p.duty:10:1", help: "remove one of the two", ok: true },
  { name: "W_DUPLICATE_GRANT: an unconditional repeat", body: "duty d GET /d -> app\ngrant reviewer d\ngrant reviewer d\n", expect: ["W_DUPLICATE_GRANT p.duty:11:1"], ok: true },
  { name: "no W_DUPLICATE_GRANT for another condition or another until", body: "duty d GET /d -> app\ngrant reviewer d when principal.mfa\ngrant reviewer d when not principal.mfa\ngrant developer d when principal.mfa until 2026-06-01\ngrant developer d when principal.mfa until 2026-07-01\n", expect: [], ok: true },
  { name: "W_GRANT_SHADOWED_BY_GRANT: an earlier unconditional grant decides first", body: "duty d GET /d -> app\ngrant reviewer d\ngrant developer d\ngrant reviewer, developer d when principal.mfa\n", expect: ["W_GRANT_SHADOWED_BY_GRANT p.duty:12:1"], message: "this grant never decides: `reviewer`, `developer` already have `d` without condition at p.duty:10:1, p.duty:11:1", help: "grants are tried in source order and the first that applies decides; remove this one, or give p.duty:10:1 a condition", ok: true },
  { name: "no W_GRANT_SHADOWED_BY_GRANT when one role is not covered, or the earlier grant expires first", body: "duty d GET /d -> app\ngrant reviewer d\ngrant reviewer, developer d when principal.mfa\ngrant developer d until 2026-06-01\ngrant developer d when not principal.mfa\n", expect: [], ok: true },
  { name: "W_ADMIN_DUTY_OPERATIONAL_ROLE: an admin-channel duty granted to a role not declared `channel admin`", body: "role sre channel admin\nduty reload POST /admin/reload -> app channel admin\ngrant sre, developer reload\n", expect: ["W_ADMIN_DUTY_OPERATIONAL_ROLE p.duty:11:12"], message: "operational role `developer` is granted admin-channel duty `reload`", help: "admin-channel duties are for roles declared `channel admin`: declare `role developer channel admin` if it is meant to administer the gateway, or grant the duty to such a role", ok: true },
  { name: "E_UNKNOWN_CHANNEL on a role declaration", body: "role sre channel admn\n", expect: ["E_UNKNOWN_CHANNEL p.duty:9:18"], message: "`role … channel` takes `admin`, found `admn`", help: "did you mean `admin`?" },
];

describe("checker diagnostics", () => {
  test.each(rows.map((r) => [r.name, r] as const))("%s", (_name, row) => {
    const text = row.full ? row.body : HEAD + row.body;
    const all = check(text, row.now);
    // HEAD declares three roles most rows leave unnamed: their W_UNUSED_ROLE is listed only by
    // the rows about it.
    const diagnostics = row.expect.some((e) => e.startsWith("W_UNUSED_ROLE")) ? all.diagnostics : all.diagnostics.filter((d) => d.code !== "W_UNUSED_ROLE");
    const r = { ...all, diagnostics };
    expect(r.diagnostics.map(where)).toEqual(row.expect);
    const first = r.diagnostics[0];
    if (row.message) expect(first?.message).toContain(row.message);
    if (row.help) expect(first?.help).toBe(row.help);
    expect(r.ok).toBe(row.ok ?? !row.expect.some((e) => e.startsWith("E_")));
    // Errors and warnings are marked as such by their code.
    for (const d of r.diagnostics) expect(d.severity).toBe(d.code.startsWith("W_") ? "warning" : "error");
  });
});

describe("regressions", () => {
  test("the shipped policies load without a single warning (they are what `gateway init` writes)", () => {
    const dir = join(import.meta.dir, "..", "policies");
    const sources = readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") }));
    expect(loadPolicy(sources, { now: NOW }).diagnostics.map(where)).toEqual([]);
  });

  test("E_UNKNOWN_DUTY cascades from a declared duty with an error: rules naming it get no follow-on errors", () => {
    const r = check(HEAD + "duty d POST /c/:change/approve -> nope\ngrant reviewer d when request.param.change != \"\"\nforbid d when request.param.change == \"x\"\nduty e post /e -> app\ngrant reviewer e\n");
    expect(r.diagnostics.map(where)).toEqual(["E_UNKNOWN_UPSTREAM p.duty:9:35", "E_BAD_METHOD p.duty:12:8"]);
    // A name no duty declaration has is still unknown.
    expect(check(HEAD + "grant reviewer nothing\n").diagnostics.map(where)).toEqual(["E_UNKNOWN_DUTY p.duty:9:16"]);
  });

  test("W_DUTY_NEVER_GRANTED cascades from a grant with an error: a duty whose only grant is broken gets the error, not the warning", () => {
    const r = check(HEAD + "duty d GET /d -> app\ngrant reviwer d\n");
    expect(r.diagnostics.map(where)).toEqual(["E_UNKNOWN_ROLE p.duty:10:7"]);
    // A duty nobody writes a grant for still gets the warning.
    expect(check(HEAD + "duty d GET /d -> app\n").diagnostics.filter((d) => d.code !== "W_UNUSED_ROLE").map(where)).toEqual(["W_DUTY_NEVER_GRANTED p.duty:9:1"]);
  });

  test("E_OVERLAPPING_DUTY across channels: the same route on the operational and the admin channel does not overlap", () => {
    const r = check(HEAD + "duty status GET /status -> app\nduty admin_status GET /status -> app channel admin\ngrant developer status\ngrant reviewer admin_status\n");
    expect(r.diagnostics.filter((d) => d.severity === "error").map((d) => d.code)).toEqual([]);
    expect(r.ok).toBe(true);
    const again = check(HEAD + "duty status GET /status -> app\nduty status2 GET /status -> app\ngrant developer status\n");
    expect(again.diagnostics.map(where)).toEqual(["E_OVERLAPPING_DUTY p.duty:10:18"]);
  });
});

describe("the checker's passes", () => {
  test("docs/architecture.md lists every pass of CHECK_PASSES, in the order they run", () => {
    const doc = readFileSync(join(import.meta.dir, "..", "docs", "architecture.md"), "utf8");
    const table = doc.slice(doc.indexOf("| pass | file |"));
    const documented = [...table.slice(0, table.indexOf("\n\n")).matchAll(/^\| `([a-z-]+)` \| `check\/[a-z-]+\.ts` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual(CHECK_PASSES.map((p) => p.name));
  });

  test("passes run in dependency order, not source order: a group and a separate written before the duties they name", () => {
    const r = check(HEAD + "group steps = submit, approve\nseparate steps by c\nduty submit POST /c/:c -> app\nduty approve POST /c/:c/a -> app\ngrant developer submit\ngrant reviewer approve\n");
    expect(r.diagnostics.map(where)).toEqual(["W_UNUSED_ROLE p.duty:7:27"]);
    expect(r.ok).toBe(true);
  });
});
