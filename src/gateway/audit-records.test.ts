import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { coercePrincipal, compilePolicy, loadPolicy, parseIp } from "../../dsl/mod.ts";
import { canonicalJson } from "../lib/canonical-json.ts";
import { decisionRecord, failureRecord, outcomeRecord, refusalRecord, type RecordedHeaders } from "./audit-records.ts";
import type { ActivePolicy } from "./policy-manager.ts";

const dir = join(import.meta.dir, "../../policies");
const loaded = loadPolicy(readdirSync(dir).filter((f) => f.endsWith(".duty")).map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") })));
if (!loaded.policy) throw new Error("the shipped policy does not load");
const compiled = compilePolicy(loaded.policy);
const active: ActivePolicy = { compiled, revision: 7, digest: "d".repeat(64), signers: [], signed: false, loadedAt: new Date(0), expiresAt: null, files: [], source: "policy_dir" };
const headers: RecordedHeaders = { allowlist: ["user-agent", "authorization", "x-identity"], neverLogged: ["x-identity"] };
const requestHeaders = new Headers({ "user-agent": "curl/8", authorization: "Bearer secret", "x-identity": "token", accept: "*/*" });

/** True when every object's keys are in sorted order (the audit log's fast path). */
function sortedKeys(value: unknown): boolean {
  if (Array.isArray(value)) return value.every(sortedKeys);
  if (value === null || typeof value !== "object") return true;
  const keys = Object.keys(value);
  return keys.every((k, i) => i === 0 || keys[i - 1]! < k) && Object.values(value).every(sortedKeys);
}

describe("audit records", () => {
  const p = coercePrincipal(loaded.policy!.schema, { sub: "alice", roles: ["developer"], mfa: true, team: "core" });
  if (!p.ok) throw new Error(p.message);
  const ip = parseIp("10.0.0.9")!;
  const policyRequest = { method: "GET", path: "/changes/42", ip, time: Date.UTC(2026, 0, 2), headers: {}, query: {} };
  const decision = compiled.decide("operational", p.principal, policyRequest);

  test("the decision record: who, which duty, which rule, the replay fields; credentials never", () => {
    const r = decisionRecord({
      requestId: "r1", channel: "operational", request: { method: "GET", headers: requestHeaders }, path: "/changes/42", ip,
      caller: { principal: p.principal, method: "jwt", issuer: "https://idp.test" }, decision, policyRequest, active, ledgerFacts: [], upstream: "changes", headers,
    });
    expect(decision.allow).toBe(true);
    expect(r).toMatchObject({
      type: "decision", request_id: "r1", sub: "alice", duty: "read_change",
      decision: "allow", code: decision.code, upstream: "changes", client_ip: "10.0.0.9",
      headers: { "user-agent": "curl/8" }, request_time: "2026-01-02T00:00:00.000Z",
    });
    // Who asked, under which bundle, down which branch: the context, written once per file.
    expect(r.context).toEqual({
      auth: "jwt", branch: [...decision.branch], bundle: { digest: active.digest, revision: 7 }, issuer: "https://idp.test",
      principal: { mfa: true, roles: ["developer"], sub: "alice", team: "core" }, roles: ["developer"],
    });
    expect(sortedKeys(r)).toBe(true);
    expect(canonicalJson(r)).not.toContain("secret");
  });

  test("the context is one object per principal, branch, bundle and credential: the log refers to it once written", () => {
    const input = {
      requestId: "r1", channel: "operational" as const, request: { method: "GET", headers: requestHeaders }, path: "/changes/42", ip,
      caller: { principal: p.principal, method: "jwt" as const, issuer: "https://idp.test" }, decision, policyRequest, active, ledgerFacts: [], upstream: "changes", headers,
    };
    const first = decisionRecord(input).context;
    expect(decisionRecord({ ...input, requestId: "r9", path: "/changes/9" }).context).toBe(first);
    expect(decisionRecord({ ...input, active: { ...active, revision: 8 } }).context).not.toBe(first);
    expect(decisionRecord({ ...input, caller: { ...input.caller, issuer: "https://other.test" } }).context).toMatchObject({ issuer: "https://other.test" });
    const denied = compiled.decide("operational", p.principal, { ...policyRequest, method: "POST", path: "/changes/42/deploy" });
    expect(decisionRecord({ ...input, decision: denied }).context).not.toBe(first);
  });

  test("a denied decision names no upstream", () => {
    const denied = compiled.decide("operational", p.principal, { ...policyRequest, method: "POST", path: "/changes/42/deploy" });
    const r = decisionRecord({
      requestId: "r2", channel: "operational", request: { method: "POST", headers: requestHeaders }, path: "/changes/42/deploy", ip,
      caller: { principal: p.principal, method: "jwt", issuer: null }, decision: denied, policyRequest, active, ledgerFacts: [], upstream: "deploy", headers,
    });
    expect(r).toMatchObject({ decision: "deny", upstream: null });
  });

  test("the refusal record: no subject, the code and detail, the bundle", () => {
    const r = refusalRecord({ requestId: "r3", channel: "admin", method: "GET", path: null, clientIp: "::1", code: "MTLS_REQUIRED", detail: "no certificate", active, requestHeaders, headers });
    expect(r).toEqual({
      bundle: { digest: active.digest, revision: 7 }, channel: "admin", client_ip: "::1", code: "MTLS_REQUIRED", decision: "deny", detail: "no certificate",
      duty: null, headers: { "user-agent": "curl/8" }, method: "GET", path: null, request_id: "r3", sub: null, type: "decision",
    });
    expect(sortedKeys(r)).toBe(true);
  });

  test("the failure record and outcome records", () => {
    expect(failureRecord({ requestId: "r4", channel: "operational", method: "PUT", clientIp: "127.0.0.1" })).toEqual({
      channel: "operational", client_ip: "127.0.0.1", code: "INTERNAL_ERROR", decision: "deny", duty: null, method: "PUT", request_id: "r4", sub: null, type: "decision",
    });
    const outcome = outcomeRecord({ decisionSeq: 3, requestId: "r5", status: 200, latencyMs: 1.23456, ledger: "confirmed" });
    expect(outcome).toEqual({ decision_seq: 3, latency_ms: 1.235, ledger: "confirmed", request_id: "r5", status: 200, type: "outcome" });
    expect(Object.keys(outcomeRecord({ decisionSeq: 4, requestId: "r6", status: 500, code: "INTERNAL_ERROR" }))).toEqual(["code", "decision_seq", "request_id", "status", "type"]);
    expect(sortedKeys(outcome)).toBe(true);
  });
});
