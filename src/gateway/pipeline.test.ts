// The pipeline in process, as Hono apps are tested: `app.request()` with the connection facts as
// the environment, no socket. Everything is real (the shipped policy, tokens of a real issuer,
// the memory ledger, an audit log on disk, identity tokens) except the hop to the upstream: the
// forwarder is passed in, and here it answers from an in-process upstream app.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { expandOutcomes, openAuditLog, type AuditLog } from "../audit/mod.ts";
import { createJwtAuthenticator } from "../authn/mod.ts";
import { defaultConfig, type GatewayConfig } from "../config/mod.ts";
import { createIdentityTokenSigner, type ForwardOptions } from "../http/mod.ts";
import { MemoryDutyLedger } from "../ledger/mod.ts";
import type { ConnectionInfo } from "../tls/types.ts";
import { createTestIssuer, type TestIssuer } from "../../test/support/harness.ts";
import { ensureGatewayKey } from "./keys.ts";
import { createLogger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { channelStages, createGatewayApp, PIPELINE_STAGES, type Forwarder, type PipelineDeps } from "./pipeline.ts";
import { PolicyManager } from "./policy-manager.ts";

const TEST_ISSUER = "https://idp.e2e.test";
const dir = mkdtempSync(join(tmpdir(), "dutygate-pipeline-"));
const client: ConnectionInfo = { remoteAddress: "127.0.0.1", peerCertificate: null };

/** The in-process upstream: answers what it was asked, or the status `?status=` names. */
const upstream = new Hono().all("*", (c) => {
  const status = Number(c.req.query("status") ?? 200);
  return c.json({ method: c.req.method, path: c.req.path, identity: c.req.header("x-dutygate-identity") !== undefined }, status as 200);
});
/** Every hop the pipeline asked for. */
const hops: ForwardOptions[] = [];
let forwarder: Forwarder = async (request, options) => {
  hops.push(options);
  const query = options.query ? `?${options.query}` : "";
  return upstream.request(options.path + query, { method: request.method, headers: options.identityToken ? { [options.identityHeader!]: options.identityToken } : {} });
};

let issuer: TestIssuer;
let config: GatewayConfig;
let policy: PolicyManager;
let ledger: MemoryDutyLedger;
let audit: AuditLog;
let metrics: Metrics;
let app: Hono<any>;
let deps: PipelineDeps;

beforeAll(async () => {
  cpSync(join(import.meta.dir, "../../policies"), join(dir, "policies"), { recursive: true });
  issuer = await createTestIssuer(dir);
  const base = defaultConfig({ cwd: dir });
  config = {
    ...base, demo: false,
    issuers: [{ ...base.issuers[0]!, name: "e2e", issuer: TEST_ISSUER, audience: ["dutygate"], jwksFile: issuer.jwksFile }],
    upstreams: Object.fromEntries(["changes", "deploy", "logs", "admin"].map((name) => [name, { name, url: "http://upstream.invalid", timeoutMs: 5000, connectTimeoutMs: 2000 }])),
    policy: { ...base.policy, dir: join(dir, "policies"), watch: false, requireSignature: false },
    audit: { ...base.audit, dir: join(dir, "audit"), headerAllowlist: ["user-agent"] },
  };
  policy = new PolicyManager({ policy: config.policy, stateDir: config.stateDir, upstreams: config.upstreams, log: () => {} });
  const loaded = await policy.reload("test");
  if (!loaded.ok) throw new Error(loaded.error.problems.join("\n"));
  const key = await ensureGatewayKey(config.stateDir);
  ledger = new MemoryDutyLedger({ retentionDays: 30 });
  audit = await openAuditLog({ ...config.audit, signingKey: { key: key.privateKey, kid: key.kid, alg: "EdDSA" } });
  metrics = new Metrics();
  const identity = await createIdentityTokenSigner({ privateKey: key.privateKey, publicKey: key.publicJwk, kid: key.kid, alg: "EdDSA", issuer: "dutygate", ttlMs: 60_000 });
  deps = {
    config, policy, ledger, audit, metrics, identity, log: createLogger("error", () => {}),
    authn: createJwtAuthenticator({ issuers: config.issuers }),
    forward: (request, options) => forwarder(request, options),
  };
  app = createGatewayApp(deps, "operational", config.listen);
});

afterAll(async () => {
  await audit?.close();
  policy?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, options: { sub?: string; roles?: string[]; headers?: Record<string, string>; via?: Hono<any> } = {}) {
  const headers: Record<string, string> = { host: "gw.test", ...options.headers };
  if (options.sub) headers.authorization = `Bearer ${await issuer.token({ sub: options.sub, roles: options.roles ?? [], mfa: true })}`;
  const before = hops.length;
  const response = await (options.via ?? app).request(`https://gw.test${path}`, { method, headers }, client);
  return { response, body: (await response.json()) as Record<string, any>, forwarded: hops.slice(before) };
}

async function records(): Promise<Record<string, any>[]> {
  await Bun.sleep(40);
  const files = readdirSync(config.audit.dir).filter((f) => f.endsWith(".jsonl")).sort();
  return files.flatMap((f) => readFileSync(join(config.audit.dir, f), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l))).flatMap(expandOutcomes);
}

describe("the pipeline, in process", () => {
  test("an allowed request reaches its upstream with the gateway's identity token, and is audited before and after", async () => {
    const { response, body, forwarded } = await call("GET", "/changes/42", { sub: "alice", roles: ["developer"], headers: { "user-agent": "in-process" } });
    expect(response.status).toBe(200);
    expect(body).toEqual({ method: "GET", path: "/changes/42", identity: true });
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]).toMatchObject({ path: "/changes/42", query: "", host: "gw.test", clientIp: "127.0.0.1", upstream: { name: "changes" } });
    // The caller's bearer token stops at the gateway.
    expect(forwarded[0]!.stripHeaders).toContain("authorization");
    const requestId = response.headers.get("x-request-id") ?? forwarded[0]!.requestId;
    const mine = (await records()).filter((r) => r.request_id === requestId);
    expect(mine.map((r) => r.type)).toEqual(["decision", "outcome"]);
    expect(mine[0]).toMatchObject({ decision: "allow", duty: "read_change", sub: "alice", upstream: "changes", headers: { "user-agent": "in-process" } });
    expect(mine[1]).toMatchObject({ status: 200, decision_seq: mine[0]!.seq });
  });

  test("a denied request is answered with its problem and never forwarded", async () => {
    const { response, body, forwarded } = await call("POST", "/changes/42/approve", { sub: "dave", roles: ["developer"] });
    expect(response.status).toBe(403);
    expect(body).toMatchObject({ code: "DENY_NO_GRANT", duty: "approve_change" });
    expect(forwarded).toEqual([]);
  });

  test.each<[string, string, Record<string, string>, number, string]>([
    ["a Host that names another host", "/changes/1", { host: "evil.test" }, 400, "REQUEST_BAD_HOST"],
    ["a `_method` override", "/changes/1?_method=DELETE", {}, 400, "METHOD_OVERRIDE_REFUSED"],
    ["no credential at all", "/changes/1", {}, 401, "AUTHN_MISSING_TOKEN"],
  ])("refused before a decision: %s", async (_name, path, headers, status, code) => {
    const { response, body, forwarded } = await call("GET", path, { headers });
    expect({ status: response.status, code: body.code }).toEqual({ status, code });
    expect(forwarded).toEqual([]);
    const record = (await records()).find((r) => r.request_id === body.request_id);
    expect(record).toMatchObject({ type: "decision", decision: "deny", code, sub: null });
  });

  test("history separation: the submitter cannot approve, and the submit's reservation was confirmed", async () => {
    const submit = await call("POST", "/changes/77/submit", { sub: "erin", roles: ["developer", "reviewer"] });
    expect(submit.response.status).toBe(200);
    const approve = await call("POST", "/changes/77/approve", { sub: "erin", roles: ["developer", "reviewer"] });
    expect(approve.response.status).toBe(403);
    expect(approve.body.code).toBe("DENY_SOD_HISTORY");
    expect(approve.forwarded).toEqual([]);
    expect(await ledger.pending()).toEqual([]);
  });

  test("an upstream that cannot be reached: 502, and the reservation is released (another try may pass)", async () => {
    const saved = forwarder;
    forwarder = async () => { throw new Error("connection refused"); };
    try {
      const first = await call("POST", "/changes/78/submit", { sub: "frank", roles: ["developer"] });
      expect({ status: first.response.status, code: first.body.code }).toEqual({ status: 502, code: "UPSTREAM_UNAVAILABLE" });
    } finally {
      forwarder = saved;
    }
    expect(await ledger.pending()).toEqual([]);
    const again = await call("POST", "/changes/78/approve", { sub: "frank", roles: ["reviewer"] });
    expect(again.response.status).toBe(200);
  });

  test("an upstream that answers 504 leaves the reservation of unknown outcome", async () => {
    const { response } = await call("POST", "/changes/79/submit?status=504", { sub: "gina", roles: ["developer"] });
    expect(response.status).toBe(504);
    const pending = await ledger.pending();
    expect(pending.map((p) => ({ duty: p.duty, state: p.state }))).toEqual([{ duty: "submit_change", state: "unknown" }]);
    for (const p of pending) await ledger.release(p);
  });

  test("a forwarder that throws is the upstream's failure: 502, the reservation released, the outcome recorded", async () => {
    const saved = forwarder;
    forwarder = () => { throw new TypeError("a bug in the hop"); };
    let body: Record<string, any>;
    try {
      const r = await call("POST", "/changes/80/submit", { sub: "hank", roles: ["developer"] });
      expect(r.response.status).toBe(502);
      body = r.body;
    } finally {
      forwarder = saved;
    }
    expect(await ledger.pending()).toEqual([]);
    const mine = (await records()).filter((r) => r.request_id === body.request_id);
    expect(mine.map((r) => [r.type, r.status ?? r.decision])).toEqual([["decision", "allow"], ["outcome", 502]]);
    expect(mine[1]!.ledger).toBe("released");
  });

  test("an exception inside a stage: 500 INTERNAL_ERROR, nothing forwarded, the reservation released, the outcome recorded", async () => {
    const failing = createGatewayApp({
      ...deps,
      identity: { ...deps.identity, cached: () => null, sign: async () => { throw new Error("the signing key is unavailable"); } },
    }, "operational", config.listen);
    const { response, body, forwarded } = await call("POST", "/changes/81/submit", { sub: "iris", roles: ["developer"], via: failing });
    expect({ status: response.status, code: body.code }).toEqual({ status: 500, code: "INTERNAL_ERROR" });
    expect(forwarded).toEqual([]);
    expect(await ledger.pending()).toEqual([]);
    const mine = (await records()).filter((r) => r.request_id === body.request_id);
    expect(mine.map((r) => [r.type, r.code])).toEqual([["decision", "ALLOW"], ["outcome", "INTERNAL_ERROR"]]);
    expect(mine[1]).toMatchObject({ status: 500, ledger: "released" });
    // Nobody performed the duty: the same person may submit it again.
    expect((await call("POST", "/changes/81/submit", { sub: "iris", roles: ["developer"] })).response.status).toBe(200);
  });

  test("an exception before the decision record: a deny record with code INTERNAL_ERROR", async () => {
    const failing = createGatewayApp({ ...deps, authn: { authenticate: () => { throw new Error("the key set is corrupt"); } } }, "operational", config.listen);
    const { response, body } = await call("GET", "/changes/1", { sub: "jack", roles: ["developer"], via: failing });
    expect({ status: response.status, code: body.code }).toEqual({ status: 500, code: "INTERNAL_ERROR" });
    const mine = (await records()).filter((r) => r.request_id === body.request_id);
    expect(mine).toEqual([expect.objectContaining({ type: "decision", decision: "deny", code: "INTERNAL_ERROR", sub: null })]);
  });

  test("the request metric carries the channel, duty, decision and status", async () => {
    await call("GET", "/changes", { sub: "ivy", roles: ["developer"] });
    const text = metrics.render();
    expect(text).toContain('dutygate_requests_total{channel="operational",duty="list_changes",decision="allow",status="200"} 1');
    expect(text).toMatch(/dutygate_requests_total\{channel="operational",duty="",decision="unauthenticated",status="401"\} \d/);
  });
});

describe("the order of the stages", () => {
  test("each channel runs PIPELINE_STAGES in order; the admin channel answers its probes after checkRequest", () => {
    expect(channelStages(deps, "operational", config.listen).map((s) => s.name)).toEqual([...PIPELINE_STAGES]);
    const admin = channelStages(deps, "admin", config.listen, { metrics, policy, ledger, audit }).map((s) => s.name);
    expect(admin).toEqual([...PIPELINE_STAGES.slice(0, 2), "probes", ...PIPELINE_STAGES.slice(2)]);
  });
});

describe("the admin channel's app, in process", () => {
  const operator = {
    subjectCN: "olga", uriSans: [], dnsSans: [], issuerCN: "Admin CA", fingerprint256: "AA:BB", serialNumber: "01",
    validFrom: "2026-01-01T00:00:00.000Z", validTo: "2030-01-01T00:00:00.000Z", authorized: true, authorizationError: null,
  };
  let admin: Hono<any>;
  beforeAll(() => {
    const listener = { ...config.listen, certificateMapping: { identities: { olga: { roles: ["sre"], mfa: true, team: "ops" } } } };
    admin = createGatewayApp(deps, "admin", listener, { metrics, policy, ledger, audit });
  });
  const request = (method: string, path: string, certificate: boolean) =>
    admin.request(`https://gw.test${path}`, { method, headers: { host: "gw.test" } }, { remoteAddress: "127.0.0.1", peerCertificate: certificate ? operator : null });

  test("the probes answer GET before authentication; other methods go on to it", async () => {
    const live = await request("GET", "/-/healthz", false);
    expect({ status: live.status, body: await live.json() }).toEqual({ status: 200, body: { status: "live" } });
    const ready = await request("GET", "/-/readyz", false);
    expect(await ready.json()).toMatchObject({ status: "ready", ready: true, policy: true });
    expect((await request("HEAD", "/-/healthz", false)).status).toBe(401);
  });

  test("an admin function is a duty: granted to an operator's certificate, refused without one", async () => {
    const status = await request("GET", "/-/policy", true);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ active: { revision: policy.active!.revision, digest: policy.active!.digest } });
    const refused = await request("GET", "/-/policy", false);
    expect({ status: refused.status, code: ((await refused.json()) as { code: string }).code }).toEqual({ status: 401, code: "MTLS_REQUIRED" });
    expect(hops.filter((h) => h.path.startsWith("/-/"))).toEqual([]);
  });
});

