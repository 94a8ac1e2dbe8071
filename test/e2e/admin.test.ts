// The admin trust channel over real mTLS: who gets in, what is served where, the gateway's own
// admin functions (policy status, reload, explain, metrics) as duties of the policy, audited
// like any other request.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compilePolicy, loadPolicy, type CheckedPolicy } from "../../dsl/mod.ts";
import { createJwtAuthenticator } from "../../src/authn/mod.ts";
import { EXIT, memoryIo } from "../../src/cli/io.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { createPipeline } from "../../src/gateway/pipeline.ts";
import type { ActivePolicy } from "../../src/gateway/policy-manager.ts";
import { createIdentityTokenSigner } from "../../src/http/mod.ts";
import { main } from "../../src/cli/mod.ts";
import { COMMIT, VERSION } from "../../src/version.ts";
import { loadTlsMaterial, startListener, type RunningListener } from "../../src/tls/mod.ts";
import type { IssuedCertificate } from "../support/pki.ts";
import { expandOutcomes } from "../../src/audit/mod.ts";
import { createTestPki, startTestGateway, type TestGateway } from "../support/harness.ts";
import { readWholeRecords } from "../support/audit-log.ts";

let t: TestGateway;
const certs: Record<string, IssuedCertificate> = {};

beforeAll(async () => {
  t = await startTestGateway({
    admin: true,
    adminIdentities: {
      olga: { roles: ["sre"], mfa: true, team: "ops" },
      aud: { roles: ["auditor"], mfa: true, team: "audit" },
      nomfa: { roles: ["sre"], mfa: false, team: "ops" },
    },
  });
  for (const cn of ["olga", "aud", "nomfa", "stranger"]) certs[cn] = await t.adminPki!.client(cn);
});

afterAll(async () => {
  await t?.stop();
});

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

/** Either the TLS handshake refuses the client (fetch rejects) or the gateway answers 401. */
async function refused(request: () => Promise<Response>): Promise<string> {
  try {
    const res = await request();
    expect(res.status).toBe(401);
    return `401 ${(await json(res)).code}`;
  } catch (e) {
    return `tls: ${(e as Error).message}`;
  }
}

function auditRecords(): Array<Record<string, unknown>> {
  return readWholeRecords(t.config.audit.dir).flatMap(expandOutcomes);
}

describe("who may connect to the admin listener", () => {
  test("a client without a certificate is refused at TLS or with 401", async () => {
    const before = t.upstream.received.length;
    const how = await refused(() => t.adminFetch("/-/policy", {}));
    expect(how).toMatch(/^(tls: |401 MTLS_REQUIRED)/);
    expect(t.upstream.received.length).toBe(before);
  });

  test("a certificate from another CA is refused", async () => {
    const other = await createTestPki(t.dir, "other-ca");
    const intruder = await other.client("olga"); // same name, wrong issuer
    const how = await refused(() => t.adminFetch("/-/policy", { cert: intruder }));
    expect(how).toMatch(/^(tls: |401 MTLS_NOT_AUTHORIZED)/);
  });

  test("a bearer token on the admin channel: 401 AUTHN_TOKEN_NOT_ACCEPTED, even with a good certificate", async () => {
    const token = await t.issuer.token({ sub: "olga", roles: ["sre"], mfa: true });
    const res = await t.adminFetch("/-/policy", { cert: certs.olga, headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect((await json(res)).code).toBe("AUTHN_TOKEN_NOT_ACCEPTED");
  });

  test("a certificate of the admin CA whose identity is not mapped: 401 MTLS_UNKNOWN_IDENTITY", async () => {
    const res = await t.adminFetch("/-/policy", { cert: certs.stranger });
    expect(res.status).toBe(401);
    expect((await json(res)).code).toBe("MTLS_UNKNOWN_IDENTITY");
  });
});

describe("channels keep their duties apart", () => {
  test.each([
    ["GET", "/-/metrics"],
    ["GET", "/-/policy"],
    ["POST", "/-/policy/reload"],
    ["POST", "/-/explain"],
    ["GET", "/admin/security/tls"],
  ])("%s %s is not served on the operational listener", async (method, path) => {
    const token = await t.issuer.token({ sub: "olga", roles: ["sre", "security_admin"], mfa: true });
    const before = t.upstream.received.length;
    const res = await t.fetch(path, { method, token, body: method === "POST" ? "{}" : undefined });
    expect([403, 404]).toContain(res.status);
    expect((await json(res)).code).toBe("DENY_NO_ROUTE");
    expect(t.upstream.received.length).toBe(before);
  });

  test.each([
    ["GET", "/changes"],
    ["POST", "/changes/42/submit"],
    ["GET", "/logs/app"],
  ])("operational duty %s %s is not served on the admin listener", async (method, path) => {
    const before = t.upstream.received.length;
    const res = await t.adminFetch(path, { method, cert: certs.olga });
    expect([403, 404]).toContain(res.status);
    expect((await json(res)).code).toBe("DENY_NO_ROUTE");
    expect(t.upstream.received.length).toBe(before);
  });

  test("an admin duty without its grant's condition (no MFA) is denied with the rule", async () => {
    const res = await t.adminFetch("/-/policy", { cert: certs.nomfa });
    expect(res.status).toBe(403);
    expect(await json(res)).toMatchObject({ code: "DENY_NO_GRANT", duty: "read_policy" });
  });

  test("an auditor may read the policy but not reload it", async () => {
    expect((await t.adminFetch("/-/policy", { cert: certs.aud })).status).toBe(200);
    const res = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.aud });
    expect(res.status).toBe(403);
    expect(await json(res)).toMatchObject({ code: "DENY_NO_GRANT", duty: "reload_policy" });
  });
});

describe("probes", () => {
  test("/-/healthz and /-/readyz answer before authentication (any admin-CA certificate)", async () => {
    const live = await t.adminFetch("/-/healthz", { cert: certs.stranger });
    expect(live.status).toBe(200);
    expect(await json(live)).toEqual({ status: "live" });
    const ready = await t.adminFetch("/-/readyz", { cert: certs.stranger });
    expect(ready.status).toBe(200);
    expect(await json(ready)).toEqual({ status: "ready", ready: true, degraded: false, policy: true, bundle_expired: false, audit_writable: true, ledger_available: true, reasons: [], warnings: [] });
  });

  test("probes are not served on the operational listener", async () => {
    const res = await t.fetch("/-/healthz");
    expect(res.status).toBe(401); // the operational channel authenticates everything
  });
});

describe("policy status and reload", () => {
  test("/-/policy shows the active revision, digest and signers", async () => {
    const res = await t.adminFetch("/-/policy", { cert: certs.olga });
    expect(res.status).toBe(200);
    const body = await json(res);
    const active = body.active as Record<string, unknown>;
    expect(active.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(active.revision).toBe(t.gw.policy.active!.revision);
    expect(active.signers).toEqual(t.gw.policy.active!.signers);
    expect(active.duties).toBe(t.gw.policy.active!.compiled.policy.duties.length);
    expect(body.last_error).toBeNull();
  });

  test("a broken reload keeps the last good policy and shows the error at file:line:col; a fixed one swaps", async () => {
    const file = join(t.config.policy.dir, "broken.duty");
    const digest = t.gw.policy.active!.digest;
    writeFileSync(file, "duty oops GET /oops -> nowhere\n");
    try {
      const failed = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.olga });
      expect(failed.status).toBe(422);
      expect((await json(failed)).ok).toBe(false);
      const status = await json(await t.adminFetch("/-/policy", { cert: certs.olga }));
      expect((status.active as { digest: string }).digest).toBe(digest);
      const lastError = status.last_error as { code: string; trigger: string; problems: string[] };
      expect(lastError.trigger).toBe("admin");
      expect(lastError.problems.join("\n")).toMatch(/broken\.duty:1:\d+/);
      // The policy in force still decides: the gateway kept serving.
      expect((await t.adminFetch("/-/metrics", { cert: certs.olga })).status).toBe(200);
    } finally {
      rmSync(file, { force: true });
    }
    writeFileSync(join(t.config.policy.dir, "extra.duty"), "# a harmless addition\nduty read_one_log GET /logs/one -> logs\ngrant auditor read_one_log\n");
    const ok = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.olga });
    expect(ok.status).toBe(200);
    const body = await json(ok);
    expect(body).toMatchObject({ ok: true, changed: true });
    expect(body.digest).not.toBe(digest);
    expect(t.gw.policy.active!.digest).toBe(body.digest as string);
  });
});

describe("explain over the admin channel", () => {
  test("returns the explanation, calls no upstream and leaves the ledger as it was", async () => {
    // A real history first: alice submits change 77 (ledger entry), then ask whether she may approve it.
    const alice = await t.issuer.token({ sub: "alice", roles: ["developer", "reviewer"], mfa: true });
    expect((await t.fetch("/changes/77/submit", { method: "POST", token: alice })).status).toBe(200);
    const ledgerBefore = await t.gw.ledger.size();
    const upstreamBefore = t.upstream.received.length;
    const res = await t.adminFetch("/-/explain", {
      method: "POST", cert: certs.aud, headers: { "content-type": "application/json" },
      body: JSON.stringify({ principal: { sub: "alice", roles: ["developer", "reviewer"], mfa: true, team: "core" }, request: "POST /changes/77/approve" }),
    });
    expect(res.status).toBe(200);
    const e = await json(res);
    expect(e.decision).toMatchObject({ allow: false, code: "DENY_SOD_HISTORY", duty: "approve_change" });
    expect((e.ledger as Array<{ duty: string; sub: string }>).map((f) => [f.duty, f.sub])).toEqual([["submit_change", "alice"]]);
    expect(e.evaluatorsAgree).toBe(true);
    expect(await t.gw.ledger.size()).toBe(ledgerBefore);
    expect(t.upstream.received.length).toBe(upstreamBefore);
  });

  test("a bad body: 400 with a code", async () => {
    const res = await t.adminFetch("/-/explain", { method: "POST", cert: certs.aud, body: "not json" });
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe("EXPLAIN_BAD_BODY");
    const bad = await t.adminFetch("/-/explain", { method: "POST", cert: certs.aud, body: JSON.stringify({ principal: { sub: "x", roles: [], mfa: true, team: "t" }, request: "approve it" }) });
    expect(bad.status).toBe(400);
    expect((await json(bad)).code).toBe("EXPLAIN_BAD_REQUEST");
  });

  test("JSON of the wrong shape is a 400 with a code, never a 500", async () => {
    const principal = { sub: "x", roles: [], mfa: true, team: "t" };
    const rows: Array<[unknown, string]> = [
      [null, "EXPLAIN_BAD_BODY"],
      [[1, 2], "EXPLAIN_BAD_REQUEST"],
      [{ principal, request: 42 }, "EXPLAIN_BAD_REQUEST"],
      [{ principal: "alice", request: "GET /changes" }, "EXPLAIN_BAD_PRINCIPAL"],
      [{ principal, request: "GET /changes", channel: "backdoor" }, "EXPLAIN_BAD_CHANNEL"],
      [{ principal, request: "GET /changes", headers: { "x-freeze": 1 } }, "EXPLAIN_BAD_HEADERS"],
      [{ principal, request: "GET /changes", time: 12 }, "EXPLAIN_BAD_TIME"],
    ];
    for (const [body, code] of rows) {
      const res = await t.adminFetch("/-/explain", { method: "POST", cert: certs.aud, body: JSON.stringify(body) });
      expect({ body, status: res.status, code: (await json(res)).code }).toEqual({ body, status: 400, code });
    }
  });
});

describe("admin calls are audited", () => {
  test("decision and outcome records on the admin channel, with the certificate identity", async () => {
    const res = await t.adminFetch("/-/policy", { cert: certs.aud });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id");
    const records = auditRecords().filter((r) => r.request_id === requestId);
    expect(records.map((r) => r.type)).toEqual(["decision", "outcome"]);
    expect(records[0]).toMatchObject({ channel: "admin", sub: "aud", auth: "mtls", duty: "read_policy", decision: "allow", upstream: "gateway" });
    expect(records[1]).toMatchObject({ status: 200, decision_seq: records[0]!.seq });
    // Refusals too: the unmapped certificate's attempt is on record.
    const refusal = await t.adminFetch("/-/metrics", { cert: certs.stranger });
    const denied = auditRecords().find((r) => r.request_id === refusal.headers.get("x-request-id"));
    expect(denied).toMatchObject({ channel: "admin", decision: "deny", code: "MTLS_UNKNOWN_IDENTITY" });
  });
});

describe("admin functions are never exposed by an operational duty", () => {
  /** A policy whose only duty on the built-in `gateway` upstream is operational (line 4). */
  const EXPOSING = "principal { sub: string roles: set<role> mfa: bool team: string }\nrole sre\nupstream gateway\nduty m GET /-/metrics -> gateway\ngrant sre m\n";
  const tmp = mkdtempSync(join(tmpdir(), "dutygate-admin-exposed-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const policyDir = join(tmp, "policies");
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, "ops.duty"), EXPOSING);

  async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const io = memoryIo();
    const code = await main(argv, io);
    return { code, out: io.stdout.join("\n"), err: io.stderr.join("\n") };
  }

  test("gateway check fails with E_GATEWAY_DUTY_NOT_ADMIN at the duty's file:line:col", async () => {
    const r = await run(["check", policyDir]);
    expect(r.out + r.err).toMatch(/ops\.duty:4:1: error\[E_GATEWAY_DUTY_NOT_ADMIN\]: duty `m` reaches the built-in `gateway` upstream on the operational channel/);
    expect(r.code).toBe(EXIT.policyErrors);
  });

  test("serve refuses to start: POLICY_UNAVAILABLE naming the diagnostic, exit 6", async () => {
    const config = join(tmp, "gateway.toml");
    writeFileSync(config, [
      `state_dir = ${JSON.stringify(join(tmp, "state"))}`,
      `[listen]`, `address = "127.0.0.1:0"`,
      `[policy]`, `dir = ${JSON.stringify(policyDir)}`, `require_signature = false`, `watch = false`,
      `[audit]`, `dir = ${JSON.stringify(join(tmp, "audit"))}`,
    ].join("\n"));
    const r = await run(["serve", "--config", config]);
    expect(r.err).toMatch(/^error\[POLICY_UNAVAILABLE\]: /);
    expect(r.err).toContain("ops.duty:4:1: error[E_GATEWAY_DUTY_NOT_ADMIN]");
    expect(r.err).not.toContain("    at ");
    expect(r.code).toBe(EXIT.config);
  });

  test("a reload that adds one is refused and the last good policy keeps deciding", async () => {
    const file = join(t.config.policy.dir, "exposed.duty");
    const digest = t.gw.policy.active!.digest;
    writeFileSync(file, "duty ops_metrics GET /-/metrics -> gateway\ngrant sre ops_metrics\n");
    try {
      const failed = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.olga });
      expect(failed.status).toBe(422);
      const body = await json(failed);
      expect(body.code).toBe("POLICY_INVALID");
      expect((body.problems as string[]).join("\n")).toContain("exposed.duty:1:1: error[E_GATEWAY_DUTY_NOT_ADMIN]");
      expect(t.gw.policy.active!.digest).toBe(digest);
      const sre = await t.issuer.token({ sub: "olga", roles: ["sre"], mfa: true });
      const res = await t.fetch("/-/metrics", { token: sre });
      expect(res.status).toBe(404);
      expect((await json(res)).code).toBe("DENY_NO_ROUTE");
    } finally {
      rmSync(file, { force: true });
      await t.gw.policy.reload("test");
    }
    expect(t.gw.policy.lastError).toBeNull();
  });

  test("at run time the admin functions answer on the admin listener only, even for a policy that escaped the checker", async () => {
    // The shipped policy with its `gateway` duties moved to the operational channel: what the
    // checker refuses, compiled without it, and served by an operational pipeline that has the
    // real admin functions at hand.
    const dir = t.config.policy.dir;
    const sources = readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") }));
    const checked = loadPolicy(sources).policy!;
    const bypassed: CheckedPolicy = { ...checked, duties: checked.duties.map((d) => (d.upstream === "gateway" ? { ...d, channel: "operational" as const } : d)) };
    expect(bypassed.duties.filter((d) => d.upstream === "gateway" && d.channel === "operational").length).toBe(4);
    const active: ActivePolicy = { compiled: compilePolicy(bypassed), revision: 1, digest: "0".repeat(64), signers: [], signed: false, loadedAt: new Date(), expiresAt: null, files: sources.map((s) => s.path), source: "policy_dir" };
    const key = t.gw.gatewayKey;
    const pipeline = createPipeline({
      config: t.config, policy: { active }, authn: createJwtAuthenticator({ issuers: t.config.issuers }), ledger: t.gw.ledger, audit: t.gw.audit,
      identity: await createIdentityTokenSigner({ privateKey: key.privateKey, publicKey: key.publicJwk, kid: key.kid, alg: "EdDSA", issuer: "dutygate", ttlMs: 60_000 }),
      metrics: t.gw.metrics, log: createLogger("error"),
    }, "operational", t.config.listen, { metrics: t.gw.metrics, policy: t.gw.policy, ledger: t.gw.ledger, audit: t.gw.audit });
    let running: RunningListener | undefined;
    try {
      running = await startListener({
        listener: t.config.listen, fetch: pipeline, maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        tls: await loadTlsMaterial(t.config.listen, { stateDir: t.config.stateDir, name: "bypassed" }),
      });
      const sre = await t.issuer.token({ sub: "olga", roles: ["sre", "security_admin"], mfa: true });
      const reloadsBefore = { ...t.gw.policy.reloads };
      for (const [method, path] of [["GET", "/-/metrics"], ["GET", "/-/policy"], ["POST", "/-/policy/reload"], ["POST", "/-/explain"]] as const) {
        const res = await fetch(running.url + path, { method, headers: { authorization: `Bearer ${sre}` }, body: method === "POST" ? "{}" : undefined, tls: { rejectUnauthorized: false } } as RequestInit);
        const body = await json(res);
        expect({ path, status: res.status, code: body.code }).toEqual({ path, status: 403, code: "DENY_ADMIN_CHANNEL_ONLY" });
        const record = auditRecords().find((r) => r.request_id === res.headers.get("x-request-id"));
        expect(record).toMatchObject({ type: "decision", channel: "operational", sub: "olga", decision: "deny", code: "DENY_ADMIN_CHANNEL_ONLY", upstream: null });
      }
      // Nothing ran: no reload happened.
      expect(t.gw.policy.reloads).toEqual(reloadsBefore);
    } finally {
      await running?.stop({ graceful: false });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Prometheus text format 0.0.4, parsed strictly: every sample belongs to a family declared by
// HELP and TYPE, names and labels are well formed, values are numbers, histograms are cumulative.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { name: string; type: string; help: string; samples: Sample[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseLabels(text: string, lineNo: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`line ${lineNo}: label without value`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${lineNo}: bad label name \`${name}\``);
    if (text[eq + 1] !== '"') throw new Error(`line ${lineNo}: label value not quoted`);
    let j = eq + 2;
    let value = "";
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === "\\") {
        const next = text[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`line ${lineNo}: bad escape \`\\${next}\``);
      } else value += text[j];
    }
    if (j >= text.length) throw new Error(`line ${lineNo}: unterminated label value`);
    if (name in labels) throw new Error(`line ${lineNo}: duplicate label \`${name}\``);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (i !== text.length) throw new Error(`line ${lineNo}: expected \`,\` between labels`);
  }
  return labels;
}

function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, Family>();
  let current: Family | null = null;
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    if (line === "") throw new Error(`line ${lineNo}: empty line`);
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      if (families.has(help[1]!)) throw new Error(`line ${lineNo}: family \`${help[1]}\` declared twice`);
      current = { name: help[1]!, type: "", help: help[2]!, samples: [] };
      families.set(current.name, current);
      return;
    }
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      if (!current || current.name !== type[1] || current.type) throw new Error(`line ${lineNo}: TYPE must follow its HELP`);
      current.type = type[2]!;
      return;
    }
    if (line.startsWith("#")) throw new Error(`line ${lineNo}: unknown comment`);
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`line ${lineNo}: not a sample: \`${line}\``);
    const [, name, labelText, valueText] = m;
    if (!METRIC_NAME.test(name!)) throw new Error(`line ${lineNo}: bad metric name \`${name}\``);
    const fam = current as Family | null;
    if (!fam || !fam.type) throw new Error(`line ${lineNo}: sample before HELP/TYPE`);
    const suffixes = fam.type === "histogram" ? ["_bucket", "_sum", "_count"] : [""];
    if (!suffixes.some((s) => name === fam.name + s)) throw new Error(`line ${lineNo}: sample \`${name}\` outside its family \`${fam.name}\``);
    const value = valueText === "+Inf" ? Infinity : valueText === "-Inf" ? -Infinity : Number(valueText);
    if (valueText !== "NaN" && Number.isNaN(value)) throw new Error(`line ${lineNo}: bad value \`${valueText}\``);
    if (fam.type === "counter" && value < 0) throw new Error(`line ${lineNo}: negative counter`);
    fam.samples.push({ name: name!, labels: labelText ? parseLabels(labelText, lineNo) : {}, value });
  });
  for (const f of families.values()) {
    if (!f.type) throw new Error(`family \`${f.name}\` has no TYPE`);
    if (f.type === "histogram") {
      // One series per label set (`le` aside): each is cumulative, with +Inf equal to its _count.
      const seriesKey = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
      const series = new Map<string, typeof f.samples>();
      for (const s of f.samples) series.set(seriesKey(s.labels), [...(series.get(seriesKey(s.labels)) ?? []), s]);
      for (const samples of series.values()) {
        const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
        for (let i = 1; i < buckets.length; i++) if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`histogram \`${f.name}\` is not cumulative`);
        const inf = buckets.find((b) => b.labels.le === "+Inf");
        const count = samples.find((s) => s.name === `${f.name}_count`);
        if (!inf || !count || inf.value !== count.value) throw new Error(`histogram \`${f.name}\`: +Inf bucket must equal _count`);
      }
    }
  }
  return families;
}

function sum(families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  const f = families.get(name) ?? families.get(name.replace(/_(count|sum|bucket)$/, ""));
  if (!f) throw new Error(`no family \`${name}\``);
  return f.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

describe("/-/metrics", () => {
  test("the strict parser rejects what Prometheus would", () => {
    expect(() => parsePrometheusText("x 1\n")).toThrow("sample before HELP/TYPE");
    expect(() => parsePrometheusText("# HELP a h\n# TYPE a counter\na{l=\"x} 1\n")).toThrow();
    expect(() => parsePrometheusText("# HELP a h\n# TYPE a counter\nb 1\n")).toThrow("outside its family");
    expect(() => parsePrometheusText("# HELP a h\n# TYPE a counter\na one\n")).toThrow("bad value");
    expect(parsePrometheusText("# HELP a h\n# TYPE a counter\na{x=\"q\\\"\"} 2\n").get("a")!.samples[0]).toEqual({ name: "a", labels: { x: 'q"' }, value: 2 });
  });

  test("parses strictly, and counters move as expected after real requests", async () => {
    const scrape = async () => {
      const res = await t.adminFetch("/-/metrics", { cert: certs.olga });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
      return parsePrometheusText(await res.text());
    };
    const before = await scrape();
    const bob = await t.issuer.token({ sub: "bob", roles: ["reviewer"], mfa: false });
    expect((await t.fetch("/changes/500/approve", { method: "POST", token: bob })).status).toBe(200);
    expect((await t.fetch("/changes/500/submit", { method: "POST", token: bob })).status).toBe(403);
    expect((await t.fetch("/changes/500/submit", { method: "POST" })).status).toBe(401);
    expect((await t.fetch("/changes/500/submit", { method: "POST", token: "not.a.jwt" })).status).toBe(401);
    // `ok` counts every reload that succeeded (this one swaps in a new policy).
    writeFileSync(join(t.config.policy.dir, "metrics.duty"), "duty read_two_logs GET /logs/two -> logs\ngrant auditor read_two_logs\n");
    const okReload = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.olga });
    expect(okReload.status).toBe(200);
    expect((await json(okReload)).changed).toBe(true);
    const after = await scrape();

    const delta = (name: string, match: Record<string, string> = {}) => sum(after, name, match) - sum(before, name, match);
    // The first scrape itself is counted once it has been answered, so the admin channel moves by 2 (scrape + reload).
    expect(delta("dutygate_requests_total", { channel: "operational" })).toBe(4);
    expect(delta("dutygate_requests_total", { channel: "admin" })).toBe(2);
    expect(delta("dutygate_requests_total", { channel: "operational", duty: "approve_change", decision: "allow", status: "200" })).toBe(1);
    expect(delta("dutygate_decisions_total", { channel: "operational", code: "ALLOW", duty: "approve_change" })).toBe(1);
    expect(delta("dutygate_decisions_total", { channel: "operational", code: "DENY_NO_GRANT", duty: "submit_change" })).toBe(1);
    expect(delta("dutygate_decisions_total", { channel: "admin", code: "ALLOW", duty: "reload_policy" })).toBe(1);
    expect(delta("dutygate_authn_failures_total", { code: "AUTHN_MISSING_TOKEN" })).toBe(1);
    expect(delta("dutygate_authn_failures_total")).toBe(2);
    expect(delta("dutygate_policy_reloads_total", { result: "ok" })).toBe(1);
    // Records: 4 operational decisions + 1 outcome; admin: the first scrape's outcome, the reload's
    // decision and outcome, the second scrape's decision (written before the metrics are rendered).
    // Regression: outcome records of admin functions were written but not counted.
    expect(delta("dutygate_audit_records_total")).toBe(4 + 1 + 1 + 2 + 1);
    expect(delta("dutygate_audit_write_failures_total")).toBe(0);
    expect(sum(after, "dutygate_request_duration_seconds_count")).toBeGreaterThan(sum(before, "dutygate_request_duration_seconds_count"));
    for (const family of ["dutygate_decision_duration_seconds", "dutygate_audit_write_duration_seconds", "dutygate_policy_revision", "dutygate_ledger_entries", "dutygate_upstream_errors_total", "dutygate_upstream_connections", "dutygate_upstream_waiting_requests"]) {
      expect(after.has(family)).toBe(true);
    }
    // The approved request went over the default client: the `changes` upstream holds a
    // connection, idle again once answered, and nobody waits.
    expect(sum(after, "dutygate_upstream_connections", { upstream: "changes", state: "idle" })).toBeGreaterThanOrEqual(1);
    expect(sum(after, "dutygate_upstream_connections", { upstream: "changes", state: "busy" })).toBe(0);
    expect(sum(after, "dutygate_upstream_waiting_requests", { upstream: "changes" })).toBe(0);
  });

  test("process_* and dutygate_build_info; an upstream error series per upstream from the start; reloads counted once, as /-/policy counts them", async () => {
    // An unchanged directory: the reload succeeds and swaps nothing. `/-/policy` counted it and
    // the metric did not (they disagreed by the number of such reloads).
    const unchanged = await t.adminFetch("/-/policy/reload", { method: "POST", cert: certs.olga });
    expect(unchanged.status).toBe(200);
    expect((await json(unchanged)).changed).toBe(false);
    const status = (await json(await t.adminFetch("/-/policy", { cert: certs.olga }))) as { reloads: { ok: number; failed: number } };
    const families = parsePrometheusText(await (await t.adminFetch("/-/metrics", { cert: certs.olga })).text());
    expect({ ok: sum(families, "dutygate_policy_reloads_total", { result: "ok" }), failed: sum(families, "dutygate_policy_reloads_total", { result: "failed" }) }).toEqual(status.reloads);
    expect(status.reloads.ok).toBeGreaterThanOrEqual(2);

    // Every configured upstream has its series before its first error, and no series lacks the label.
    const errors = families.get("dutygate_upstream_errors_total")!.samples;
    expect(errors.map((s) => s.labels.upstream).sort()).toEqual(Object.keys(t.config.upstreams).sort());
    for (const family of ["dutygate_requests_total", "dutygate_decisions_total", "dutygate_authn_failures_total", "dutygate_policy_reloads_total", "dutygate_upstream_errors_total"]) {
      expect({ family, unlabelled: families.get(family)!.samples.filter((s) => Object.keys(s.labels).length === 0) }).toEqual({ family, unlabelled: [] });
    }

    const build = families.get("dutygate_build_info")!;
    expect(build.type).toBe("gauge");
    expect(build.samples).toEqual([{ name: "dutygate_build_info", labels: { version: VERSION, commit: COMMIT, runtime: `bun/${Bun.version}` }, value: 1 }]);

    const one = (name: string, type: string) => {
      const f = families.get(name);
      expect({ name, type: f?.type, samples: f?.samples.length }).toEqual({ name, type, samples: 1 });
      return f!.samples[0]!.value;
    };
    expect(one("process_resident_memory_bytes", "gauge")).toBeGreaterThan(1024 * 1024);
    expect(one("process_cpu_seconds_total", "counter")).toBeGreaterThan(0);
    expect(one("process_open_fds", "gauge")).toBeGreaterThan(3); // stdio, the listeners, the audit file, the ledger
    const started = one("process_start_time_seconds", "gauge");
    expect(started).toBeLessThanOrEqual(Date.now() / 1000);
    expect(started).toBeGreaterThan(Date.now() / 1000 - 3600);
    expect(started).toBe(Math.floor(performance.timeOrigin / 1000)); // this test process runs the gateway
  });
});
