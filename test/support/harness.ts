// End-to-end harness: a real gateway (startGateway) on an ephemeral loopback port with real TLS,
// a real JWT issuer key (JWKS file), a real upstream (Bun.serve on loopback) that records what it
// received, optional mTLS with a real CA, and real files in a temp directory. Nothing is mocked.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from "jose";
import { defaultConfig } from "../../src/config/mod.ts";
import type { GatewayConfig, ListenerConfig } from "../../src/config/types.ts";
import { createLogger, type Logger } from "../../src/gateway/log.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/serve.ts";
import { createCa, issueCertificate, type IssuedCertificate } from "./pki.ts";
import { killGroupOnExit, killProcessGroup } from "./process-group.ts";

export const REPO_ROOT = resolve(import.meta.dir, "../..");
export const SHIPPED_POLICIES = join(REPO_ROOT, "policies");
export const TEST_ISSUER = "https://idp.e2e.test";
export const TEST_AUDIENCE = "dutygate";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  bodyBytes: number;
}

export interface TestUpstream {
  port: number;
  url: string;
  received: ReceivedRequest[];
  /** Replace the handler (default: 200 JSON echo). */
  respond: (handler: (req: Request) => Response | Promise<Response>) => void;
  stop(): void;
}

/** A real HTTP upstream on loopback that records every request it received. */
export function startTestUpstream(): TestUpstream {
  const received: ReceivedRequest[] = [];
  let handler: (req: Request) => Response | Promise<Response> = (req) =>
    Response.json({ ok: true, path: new URL(req.url).pathname });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    maxRequestBodySize: 512 * 1024 * 1024,
    async fetch(req) {
      const url = new URL(req.url);
      const body = req.body ? await req.arrayBuffer() : new ArrayBuffer(0);
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => (headers[k] = v));
      received.push({ method: req.method, path: url.pathname + url.search, headers, bodyBytes: body.byteLength });
      return handler(new Request(req.url, { method: req.method, headers: req.headers }));
    },
  });
  return {
    port: server.port!,
    url: `http://127.0.0.1:${server.port}`,
    received,
    respond: (h) => void (handler = h),
    stop: () => server.stop(true),
  };
}

export interface TestIssuer {
  kid: string;
  privateKey: CryptoKey;
  jwksFile: string;
  /** Signs a token for the test issuer; defaults: 5-minute lifetime, aud `dutygate`. */
  token(claims: { sub: string; roles?: string[]; mfa?: boolean; team?: string } & JWTPayload, options?: { ttlSeconds?: number; iat?: number; audience?: string; issuer?: string }): Promise<string>;
}

export async function createTestIssuer(dir: string, kid = "e2e-1"): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwksFile = join(dir, "issuer.jwks");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] }));
  return {
    kid, privateKey, jwksFile,
    async token(claims, options = {}) {
      const iat = options.iat ?? Math.floor(Date.now() / 1000);
      const { sub, ...rest } = claims;
      return new SignJWT({ roles: [], mfa: false, team: "core", ...rest })
        .setProtectedHeader({ alg: "ES256", kid })
        .setIssuer(options.issuer ?? TEST_ISSUER)
        .setAudience(options.audience ?? TEST_AUDIENCE)
        .setSubject(sub)
        .setIssuedAt(iat)
        .setExpirationTime(iat + (options.ttlSeconds ?? 300))
        .sign(privateKey);
    },
  };
}

export interface TestPki {
  ca: IssuedCertificate;
  /** Issues a client certificate signed by the CA (CN, optional SPIFFE URI). */
  client(commonName: string, uris?: string[]): Promise<IssuedCertificate>;
}

export async function createTestPki(dir: string, name = "e2e-ca"): Promise<TestPki> {
  const pkiDir = join(dir, name);
  mkdirSync(pkiDir, { recursive: true });
  const ca = await createCa(pkiDir, name);
  return { ca, client: (cn, uris) => issueCertificate(pkiDir, ca, { commonName: cn, uris, client: true }) };
}

export interface TestGatewayOptions {
  /** Policy directory to copy (default: the shipped `policies/`). */
  policyDir?: string;
  /** Adjust the config before start. */
  configure?: (config: GatewayConfig, ctx: { dir: string; upstream: TestUpstream }) => GatewayConfig;
  /** Start an admin listener whose client CA is a fresh test CA. */
  admin?: boolean;
  /** Identities of the admin listener (cert CN or SPIFFE ID → attributes). */
  adminIdentities?: Record<string, Record<string, unknown>>;
  /** Keep the temp directory after stop (restart tests). */
  dir?: string;
  auditDisabled?: boolean;
  /** The gateway's operational logger (default: errors only, to stderr). */
  log?: Logger;
}

export interface TestGateway {
  gw: RunningGateway;
  dir: string;
  config: GatewayConfig;
  url: string;
  adminUrl: string | null;
  upstream: TestUpstream;
  issuer: TestIssuer;
  adminPki: TestPki | null;
  /** fetch against the operational listener (self-signed certificate accepted). */
  fetch(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  /** fetch against the admin listener with a client certificate. */
  adminFetch(path: string, init: RequestInit & { cert?: IssuedCertificate }): Promise<Response>;
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

function testListener(): ListenerConfig {
  return { host: "127.0.0.1", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false, certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2" };
}

/** Starts a real gateway for a test. Always `await t.stop()` (in `afterAll`/`finally`). */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "dutygate-e2e-"));
  const policyDir = join(dir, "policies");
  if (!options.dir) cpSync(options.policyDir ?? SHIPPED_POLICIES, policyDir, { recursive: true });
  const upstream = startTestUpstream();
  const issuer = await createTestIssuer(dir);
  const base = defaultConfig({ cwd: dir });
  let adminPki: TestPki | null = null;
  let admin: ListenerConfig | null = null;
  if (options.admin) {
    adminPki = await createTestPki(dir, "admin-ca");
    admin = { ...testListener(), clientCaFile: adminPki.ca.certFile, requireClientCertificate: true, certificateMapping: { identities: options.adminIdentities ?? {} } };
  }
  let config: GatewayConfig = {
    ...base,
    demo: false,
    listen: testListener(),
    admin,
    issuers: [{ ...base.issuers[0]!, name: "e2e", issuer: TEST_ISSUER, audience: [TEST_AUDIENCE], jwksFile: issuer.jwksFile }],
    upstreams: Object.fromEntries(["changes", "deploy", "logs", "admin"].map((name) => [name, { name, url: upstream.url, timeoutMs: 5000, connectTimeoutMs: 2000 }])),
    policy: { ...base.policy, dir: policyDir, watch: false },
    audit: { ...base.audit, dir: join(dir, "audit") },
    ledger: { ...base.ledger, path: join(dir, ".state", "ledger.sqlite") },
    // Tests stop at once; the drain has tests of its own.
    shutdown: { drainMs: 0, timeoutMs: 2000 },
  };
  if (options.configure) config = options.configure(config, { dir, upstream });
  let gw: RunningGateway;
  try {
    gw = await startGateway(config, { log: options.log ?? createLogger("error"), auditDisabled: options.auditDisabled });
  } catch (e) {
    // A refused start (tests of fail-closed start-up) must not leak the upstream or the temp dir.
    upstream.stop();
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const url = gw.operational.url;
  const adminUrl = gw.admin?.url ?? null;
  return {
    gw, dir, config, url, adminUrl, upstream, issuer, adminPki,
    fetch(path, init = {}) {
      const { token, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token) headers.set("authorization", `Bearer ${token}`);
      return fetch(url + path, { ...rest, headers, tls: { rejectUnauthorized: false } } as RequestInit);
    },
    adminFetch(path, init) {
      const { cert, ...rest } = init;
      if (!adminUrl) throw new Error("no admin listener");
      return fetch(adminUrl + path, { ...rest, tls: { rejectUnauthorized: false, ...(cert ? { cert: cert.cert, key: cert.key } : {}) } } as RequestInit);
    },
    async stop({ keepDir = false } = {}) {
      await gw.stop({ drainMs: 0, deadlineMs: 2000 });
      upstream.stop();
      if (!keepDir && !options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A `gateway.toml` for a gateway run as its own process: loopback listener on an ephemeral port,
 * the test issuer, every shipped upstream name pointing at `upstreamUrl`, unsigned policies from
 * `policyDir` (`policyToml` replaces `require_signature = false`), audit in `dir/audit`, state in
 * `dir/.state`, no drain on stop (`shutdownToml` replaces `drain = "0s"`). `extra` is appended
 * verbatim (TOML).
 */
export function writeProcessConfig(dir: string, options: { upstreamUrl: string; issuer: TestIssuer; policyDir: string; extra?: string; auditToml?: string; listenToml?: string; policyToml?: string; shutdownToml?: string }): string {
  const file = join(dir, "gateway.toml");
  const q = (s: string) => JSON.stringify(s);
  writeFileSync(file, [
    `state_dir = ${q(join(dir, ".state"))}`,
    "[listen]", `address = "127.0.0.1:0"`, options.listenToml ?? "",
    "[issuers.e2e]", `issuer = ${q(TEST_ISSUER)}`, `audience = ${q(TEST_AUDIENCE)}`, `jwks_file = ${q(options.issuer.jwksFile)}`, `algorithms = ["ES256"]`,
    ...["changes", "deploy", "logs", "admin"].flatMap((name) => [`[upstreams.${name}]`, `url = ${q(options.upstreamUrl)}`]),
    "[policy]", `dir = ${q(options.policyDir)}`, options.policyToml ?? "require_signature = false", "watch = false",
    "[audit]", `dir = ${q(join(dir, "audit"))}`, options.auditToml ?? "",
    "[log]", `level = "info"`,
    "[shutdown]", options.shutdownToml ?? `drain = "0s"`,
    options.extra ?? "",
  ].join("\n") + "\n");
  return file;
}

/** A `gateway serve` process that printed its start-up banner. */
export interface GatewayProcess {
  /** Operational URL from the banner. */
  url: string;
  pid: number;
  stdout(): string;
  /** JSON log lines so far. */
  stderr(): string;
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the exit code once the process exited. */
  exited: Promise<number>;
  /** SIGKILL to its process group (whatever still runs there), then waits for the exit. */
  kill(): Promise<number>;
}

/** Reads a child's output stream as text as it arrives (for banners and error messages). */
export async function drainText(stream: ReadableStream<Uint8Array>, add: (s: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    add(decoder.decode(value, { stream: true }));
  }
}

/**
 * Runs `bun src/main.ts serve --config FILE [args]` as a separate process and waits (at most
 * `deadlineMs`) for the banner line `dutygate listening on https://…`. Throws with the output
 * when the process exits or the deadline passes first (the process is killed then).
 */
export async function spawnGatewayProcess(configFile: string, options: { cwd: string; deadlineMs?: number; args?: readonly string[] }): Promise<GatewayProcess> {
  const bun = join(REPO_ROOT, "node_modules/.bin/bun");
  // Its own process group, so that a kill reaches anything it started too.
  const child = Bun.spawn([bun, join(REPO_ROOT, "src/main.ts"), "serve", "--config", configFile, ...(options.args ?? [])], { cwd: options.cwd, stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(child.pid);
  const killGroup = () => {
    killProcessGroup(child.pid);
  };
  let out = "";
  let err = "";
  void drainText(child.stdout, (s) => (out += s));
  void drainText(child.stderr, (s) => (err += s));
  const until = Date.now() + (options.deadlineMs ?? 30_000);
  let url: string | null = null;
  while (Date.now() < until) {
    url = /dutygate listening on (https:\/\/\S+)/.exec(out)?.[1] ?? null;
    if (url || child.exitCode !== null) break;
    await Bun.sleep(10);
  }
  if (!url) {
    killGroup();
    await child.exited;
    throw new Error(`gateway serve did not print its banner (exit ${child.exitCode}):\n${out}\n${err}`);
  }
  return {
    url, pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => child.kill(sig),
    exited: child.exited,
    async kill() {
      killGroup();
      return child.exited;
    },
  };
}

/** What {@link runServeUntilExitOrBanner} saw: the exit code, or null when the gateway started serving. */
export interface ServeRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bun src/main.ts serve --config FILE [args]` in its own process group until it exits (a refused
 * start) or prints its banner (it started), at most `deadlineMs`. The whole group is killed by
 * its PID whatever happens, so no gateway outlives the test.
 */
export async function runServeUntilExitOrBanner(configFile: string, options: { cwd: string; deadlineMs?: number; args?: readonly string[] }): Promise<ServeRun> {
  const bun = join(REPO_ROOT, "node_modules/.bin/bun");
  const child = Bun.spawn([bun, join(REPO_ROOT, "src/main.ts"), "serve", "--config", configFile, ...(options.args ?? [])], { cwd: options.cwd, stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(child.pid);
  let stdout = "";
  let stderr = "";
  const drained = Promise.all([drainText(child.stdout, (s) => (stdout += s)), drainText(child.stderr, (s) => (stderr += s))]);
  try {
    const until = Date.now() + (options.deadlineMs ?? 30_000);
    while (child.exitCode === null && !stdout.includes("dutygate listening on") && Date.now() < until) await Bun.sleep(10);
    if (child.exitCode !== null) await drained;
    return { exitCode: child.exitCode, stdout, stderr };
  } finally {
    killProcessGroup(child.pid);
    await child.exited;
  }
}

/** What {@link runWithSlowReader} saw: the command's exit code and every byte it wrote to stdout. */
export interface SlowReaderResult {
  code: number;
  stdout: Buffer;
}

/**
 * Runs `argv` with its stdout in a pipe that nobody reads until the command has exited or
 * `delayMs` passed — a CI step piping a report into a busy consumer. A command that exits before
 * its output drained loses what the pipe could not hold (64 KiB on Linux). The command runs in a
 * process group of its own, killed by its id whatever happens.
 */
export async function runWithSlowReader(argv: string[], options: { cwd: string; env?: Record<string, string>; delayMs?: number; deadlineMs?: number }): Promise<SlowReaderResult> {
  const marks = mkdtempSync(join(tmpdir(), "dutygate-slow-reader-"));
  const rc = join(marks, "rc");
  const go = join(marks, "go");
  // The reader (`cat`) starts only when `go` exists; the exit code is written to `rc`.
  const script = `{ "$@"; echo $? > "${rc}"; } | { until [ -e "${go}" ]; do sleep 0.02; done; exec cat; }`;
  const child = Bun.spawn(["sh", "-c", script, "sh", ...argv], { cwd: options.cwd, env: options.env, stdout: "pipe", stderr: "inherit", detached: true });
  killGroupOnExit(child.pid);
  try {
    const started = Date.now();
    while (!existsSync(rc) && Date.now() - started < (options.delayMs ?? 3_000)) await Bun.sleep(20);
    writeFileSync(go, "");
    const finished = Promise.all([new Response(child.stdout).arrayBuffer(), child.exited]);
    const deadline = Bun.sleep(options.deadlineMs ?? 60_000).then(() => null);
    const done = await Promise.race([finished, deadline]);
    if (!done) throw new Error(`\`${argv.join(" ")}\` did not finish`);
    return { code: Number(readFileSync(rc, "utf8")), stdout: Buffer.from(done[0]) };
  } finally {
    killProcessGroup(child.pid);
    rmSync(marks, { recursive: true, force: true });
  }
}

/**
 * A policy directory whose `gateway check` report is far larger than a pipe holds in every
 * format: the shipped `.duty` files and `tests` policy tests that all fail (exit 2).
 */
export function writeLargeReportPolicies(dir: string, tests = 700): string {
  mkdirSync(dir, { recursive: true });
  cpSync(SHIPPED_POLICIES, dir, { recursive: true, filter: (src) => !src.endsWith(".test.toml") });
  const cases = Array.from({ length: tests }, (_, i) => `[[test]]\nname = "auditors may not read log ${i}"\nprincipal = { sub = "audrey", roles = ["auditor"], mfa = false, team = "audit" }\nrequest = "GET /logs/gateway/${i}"\nexpect = "deny"\n`);
  writeFileSync(join(dir, "large.test.toml"), cases.join("\n"));
  return dir;
}
