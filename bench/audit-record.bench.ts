// What one decision record costs to serialise (RFC 8785) and hash, by how its members are held.
// Run: node_modules/.bin/bun bench/audit-record.bench.ts   (or: node_modules/.bin/deno run -A bench/audit-record.bench.ts)
//
// The record is the one the gateway writes for `GET /changes/42` (about 1 KB). Rows:
//   format 3, context by seq     LineBuffer.appendEvent(event, chain, seq): the gateway's record,
//                                its context named by the seq of the record of the file that holds
//                                it, the chain fields' slots filled in place (what the log does)
//   writer path, chain slots     the same record in format 2 (the context's members in it)
//   writer path, plain members   recordLine(chainedBody(event)): an event without slots, copied
//   writer path, frozen members  the same with the decision tree's frozen arrays and a frozen
//                                principal in the record (what the pipeline did before)
//   JSON.stringify alone         the engine's serialiser on the same body (the floor)
//   reference serialiser         the recursive JCS serialiser without the JSON.stringify fast path
//   outcome record (format 1)    the small second record each request wrote in format 1
//   outcomes record, 20 entries  format 2: the outcomes of a batch of 20 requests in one record
// Each cell is the fastest of 5 runs of 100 000 records, the rows' runs interleaved (the machine is shared).
import { canonicalJsonReference } from "../src/lib/mod.ts";
import { LineBuffer, chainedBody, hashCanonical, recordLine } from "../src/audit/record.ts";

const N = 100_000;
const RUNS = 5;

function members(freeze: boolean) {
  const fz = <T,>(v: T): T => (freeze ? Object.freeze(v) : v);
  return {
    branch: fz(["exclusive gate: pass", "forbids: none", "role mask matches developer|reviewer|deployer|sre"]),
    principal: fz({ mfa: true, roles: ["developer"], sub: "bench-dev", team: "core" }),
    reasons: fz([fz({ held: true, rule: "grant:changes.duty:9:1" })]),
    bundle: fz({ digest: "25bd32915c970236c3599f40c0bf1ae9bb0e8ff3b02ceee4eaee97ca616cb0d3", revision: 0 }),
    roles: fz(["developer"]),
  };
}
type Members = ReturnType<typeof members>;

// The literal the pipeline builds (src/gateway/pipeline.ts, buildRecord), member for member.
function decision(m: Members, i: number): Record<string, unknown> {
  return {
    auth: "jwt", branch: m.branch, bundle: m.bundle, channel: "operational", client_ip: "127.0.0.1", code: "ALLOW",
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: i < 0 ? true : undefined,
    headers: { "user-agent": "wrk" }, issuer: "https://idp.e2e.test", method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, principal: m.principal, reasons: m.reasons,
    request_id: crypto.randomUUID(), request_time: "2026-12-03T05:53:56.814Z", roles: m.roles, sod: undefined,
    sub: "bench-dev", type: "decision", upstream: "changes",
  };
}
// The same with the chain fields' slots in their sorted places (src/gateway/audit-records.ts).
function slotted(m: Members, i: number): Record<string, unknown> {
  return {
    auth: "jwt", branch: m.branch, bundle: m.bundle, channel: "operational", client_ip: "127.0.0.1", code: "ALLOW",
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: i < 0 ? true : undefined,
    headers: { "user-agent": "wrk" }, issuer: "https://idp.e2e.test", method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, prev: undefined, principal: m.principal, reasons: m.reasons,
    request_id: crypto.randomUUID(), request_time: "2026-12-03T05:53:56.814Z", roles: m.roles, seq: undefined, sod: undefined,
    sub: "bench-dev", time: undefined, type: "decision", upstream: "changes", worker: undefined,
  };
}
// Format 3: what one principal's records down one branch share, in the record's `context`.
function withContext(m: Members, i: number): Record<string, unknown> {
  return {
    channel: "operational", client_ip: "127.0.0.1", code: "ALLOW", context: contextOf(m),
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: i < 0 ? true : undefined,
    headers: { "user-agent": "wrk" }, method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, prev: undefined, reasons: m.reasons,
    request_id: crypto.randomUUID(), request_time: "2026-12-03T05:53:56.814Z", seq: undefined, sod: undefined,
    sub: "bench-dev", time: undefined, type: "decision", upstream: "changes", worker: undefined,
  };
}
const contexts = new Map<Members, object>();
function contextOf(m: Members): object {
  let c = contexts.get(m);
  if (c === undefined) contexts.set(m, (c = { auth: "jwt", branch: m.branch, bundle: m.bundle, issuer: "https://idp.e2e.test", principal: m.principal, roles: m.roles }));
  return c;
}
const outcome = (i: number) => ({ decision_seq: i, latency_ms: 1.234, request_id: crypto.randomUUID(), status: 200, type: "outcome" });
const outcomes = (i: number) => ({ outcomes: Array.from({ length: 20 }, (_, j) => { const { type: _t, ...entry } = outcome(i + j); return entry; }) });
const chain = (i: number, type: string) => ({ prev: "f14d554562c62941a32f7682dcd886bc76ec5e56a87f9e8182552384ae28e351", seq: i, time: "2026-12-03T05:53:56.823Z", type });

/** µs per record of one run of `run` over N records. */
function once(run: (i: number) => number): number {
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) sink += run(i);
  if (sink === 0) throw new Error("nothing was serialised");
  return ((performance.now() - t0) * 1000) / N;
}

const plain = members(false);
const frozen = members(true);
const lines = new LineBuffer();
const cases: Array<[string, (i: number) => number]> = [
  ["format 3, context by seq, chain slots (the gateway's record)", (i) => { if (i % 64 === 0) lines.clear(); return lines.appendEvent(withContext(plain, i), chain(i, "decision"), 7).length; }],
  ["format 2, chain slots", (i) => { if (i % 64 === 0) lines.clear(); return lines.appendEvent(slotted(plain, i), chain(i, "decision")).length; }],
  ["writer path, plain members, into the line buffer", (i) => { if (i % 64 === 0) lines.clear(); return lines.append(chainedBody(decision(plain, i), chain(i, "decision"))).length; }],
  ["writer path, plain members", (i) => recordLine(chainedBody(decision(plain, i), chain(i, "decision"))).line.length],
  ["writer path, frozen members", (i) => recordLine(chainedBody(decision(frozen, i), chain(i, "decision"))).line.length],
  ["JSON.stringify alone (no check, no hash)", (i) => JSON.stringify(chainedBody(decision(plain, i), chain(i, "decision"))).length],
  ["reference serialiser + hash", (i) => hashCanonical(canonicalJsonReference(chainedBody(decision(plain, i), chain(i, "decision")))).length],
  ["outcome record (format 1), writer path", (i) => recordLine(chainedBody(outcome(i), chain(i, "outcome"))).line.length],
  ["outcomes record of 20 outcomes (format 2), writer path", (i) => recordLine(chainedBody(outcomes(i), chain(i, "outcomes"))).line.length],
];
// Runs interleaved, case after case, so that a change in the machine's load hits every row.
const best = cases.map(() => Infinity);
for (let r = 0; r < RUNS; r++) cases.forEach(([, run], c) => { best[c] = Math.min(best[c]!, once(run)); });
const rows = cases.map(([name], c): [string, number] => [name, best[c]!]);
const runtime = (globalThis as { Bun?: { version: string } }).Bun ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}` : `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(`audit record cost — ${runtime}, ${N} records per run, fastest of ${RUNS}\n`);
console.log("| record | µs/record |\n|---|---|");
for (const [name, us] of rows) console.log(`| ${name} | ${us.toFixed(2)} |`);
const format3 = new LineBuffer();
format3.appendEvent(withContext(plain, 0), chain(0, "decision"), 7);
console.log(`\nthe decision record's line: ${recordLine(chainedBody(decision(plain, 0), chain(0, "decision"))).line.length} bytes in format 2, ${format3.length} in format 3 (naming its context)`);
