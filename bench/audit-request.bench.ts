// What the audit log costs one request, in one process, as the gateway drives it: 20 requests in
// flight, each appends its decision record and waits for it, comes back a turn later (where the
// gateway forwards) and appends its outcome deferred. CPU time per request (user + system), so
// the figure holds still on a shared machine far better than a load test's req/s.
//
//   node_modules/.bin/bun bench/audit-request.bench.ts [--baseline DIR] [--requests 40000] [--runs 5]
//
// Rows: the harness alone (no log: its own cost, subtracted from the others), this build's log,
// and with `--baseline DIR` another checkout's log (DIR holds its src/ and node_modules, e.g.
// `git worktree add /tmp/base main`), interleaved run by run; each cell the fastest run.
// fsync = "off" and a temp directory: the CPU the log spends, not the disk's latency.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { logOptions, makeSigner } from "../test/support/audit-log.ts";
import { removeTempDir, tempDir } from "../test/support/temp-dir.ts";
import { flag, bounded } from "./proxy/lib.ts";

const requests = bounded(flag("requests", "40000"), 1000, 1_000_000);
const runs = bounded(flag("runs", "5"), 1, 20);
const baselineDir = flag("baseline", "");
const IN_FLIGHT = 20;

interface Writer { name: string; root: string | null }
const writers: Writer[] = [{ name: "no audit log (the harness)", root: null }, { name: "this build", root: join(import.meta.dir, "..") }];
if (baselineDir !== "") writers.push({ name: `baseline (${baselineDir})`, root: baselineDir });

// The decision record of `GET /changes/42` as the gateway writes it (src/gateway/audit-records.ts).
const members = {
  branch: ["exclusive gate: pass", "forbids: none", "role mask matches developer|reviewer|deployer|sre"],
  principal: { mfa: true, roles: ["developer"], sub: "bench-dev", team: "core" },
  reasons: [{ held: true, rule: "grant:changes.duty:9:1" }],
  bundle: { digest: "25bd32915c970236c3599f40c0bf1ae9bb0e8ff3b02ceee4eaee97ca616cb0d3", revision: 0 },
  roles: ["developer"],
};
// The shape each writer's gateway builds: `context` (format 3), the members one principal's records
// down one branch share, in one object the log writes once per file; `slots`, the chain fields'
// slots in their sorted places, which the log fills in place; neither for a writer before them.
const context = { auth: "jwt", branch: members.branch, bundle: members.bundle, issuer: "https://idp.e2e.test", principal: members.principal, roles: members.roles };
function decision(requestId: string, slots: boolean, contexts: boolean): Record<string, unknown> {
  if (contexts) return {
    channel: "operational", client_ip: "127.0.0.1", code: "ALLOW", context,
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: undefined,
    headers: { "user-agent": "wrk" }, method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, prev: undefined, reasons: members.reasons,
    request_id: requestId, request_time: "2026-12-05T05:53:56.814Z", seq: undefined, sod: undefined,
    sub: "bench-dev", time: undefined, type: "decision", upstream: "changes", worker: undefined,
  };
  if (slots) return {
    auth: "jwt", branch: members.branch, bundle: members.bundle, channel: "operational", client_ip: "127.0.0.1", code: "ALLOW",
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: undefined,
    headers: { "user-agent": "wrk" }, issuer: "https://idp.e2e.test", method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, prev: undefined, principal: members.principal, reasons: members.reasons,
    request_id: requestId, request_time: "2026-12-05T05:53:56.814Z", roles: members.roles, seq: undefined, sod: undefined,
    sub: "bench-dev", time: undefined, type: "decision", upstream: "changes", worker: undefined,
  };
  return {
    auth: "jwt", branch: members.branch, bundle: members.bundle, channel: "operational", client_ip: "127.0.0.1", code: "ALLOW",
    decided_by: "grant:changes.duty:9:1", decision: "allow", duty: "read_change", exclusive_violation: undefined,
    headers: { "user-agent": "wrk" }, issuer: "https://idp.e2e.test", method: "GET", path: "/changes/42",
    policy_headers: { "x-freeze": null }, policy_query: undefined, principal: members.principal, reasons: members.reasons,
    request_id: requestId, request_time: "2026-12-05T05:53:56.814Z", roles: members.roles, sod: undefined,
    sub: "bench-dev", type: "decision", upstream: "changes",
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One run: CPU µs per request, and the log's records per request. */
async function run(writer: Writer): Promise<{ us: number; recordsPerRequest: number; bytesPerRequest: number }> {
  // Only the writer comes from the checkout measured; keys and options are this one's.
  const { openAuditLog } = writer.root === null ? { openAuditLog: null } : await import(join(writer.root, "src", "audit", "log.ts"));
  const slots = writer.root !== null && "hasChainSlots" in await import(join(writer.root, "src", "audit", "record.ts"));
  const contexts = writer.root !== null && "ContextTable" in await import(join(writer.root, "src", "audit", "mod.ts"));
  const dir = openAuditLog === null ? null : tempDir("dutygate-bench-audit-");
  const log = openAuditLog === null ? null : await openAuditLog(logOptions(dir!, (await makeSigner()).signingKey, { checkpointEvery: 1000, fsync: "off" }));
  let failures = 0;
  const start = process.cpuUsage();
  const inFlight = async (lane: number) => {
    for (let i = lane; i < requests; i += IN_FLIGHT) {
      const requestId = `bench-${i}-0000-4000-8000-000000000000`;
      const record = decision(requestId, slots, contexts);
      if (log === null) {
        await nextTurn();
      } else {
        const { seq } = await log.append(record);
        await nextTurn();
        log.append({ decision_seq: seq, latency_ms: 1.234, request_id: requestId, status: 200, type: "outcome" }, { deferred: true }).catch(() => failures++);
      }
      await nextTurn();
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, lane) => inFlight(lane)));
  await log?.close();
  const used = process.cpuUsage(start);
  const records = log?.stats().recordsWritten ?? 0;
  const bytes = dir === null ? 0 : readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  if (dir) removeTempDir(dir);
  if (failures > 0) throw new Error(`${failures} outcome appends failed`);
  return { us: (used.user + used.system) / requests, recordsPerRequest: records / requests, bytesPerRequest: bytes / requests };
}

const best = new Map<Writer, { us: number; recordsPerRequest: number; bytesPerRequest: number }>();
for (let r = 0; r < runs; r++) {
  for (const writer of writers) {
    const result = await run(writer);
    const kept = best.get(writer);
    if (kept === undefined || result.us < kept.us) best.set(writer, result);
  }
}
const floor = best.get(writers[0]!)!.us;
const bun = (globalThis as { Bun?: { version: string } }).Bun?.version ?? "?";
console.log(`audit log per request — Bun ${bun}; ${requests} requests, ${IN_FLIGHT} in flight, fsync off; fastest of ${runs} interleaved runs\n`);
console.log("| writer | CPU µs/request | the log's own µs/request | records/request | bytes/request |");
console.log("|---|---|---|---|---|");
for (const writer of writers) {
  const { us, recordsPerRequest, bytesPerRequest } = best.get(writer)!;
  const own = writer.root === null ? ["", "", ""] : [(us - floor).toFixed(2), recordsPerRequest.toFixed(2), bytesPerRequest.toFixed(0)];
  console.log(`| ${writer.name} | ${us.toFixed(2)} | ${own.join(" | ")} |`);
}
