import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ListenerConfig } from "../config/types.ts";
import { GatewayError } from "../errors.ts";
import { killGroupOnExit, killProcessGroup } from "../../test/support/process-group.ts";
import { handshake, openConnection } from "../../test/support/http1-client.ts";
import { createCa, issueCertificate, type IssuedCertificate } from "../../test/support/pki.ts";
import { principalAttributesFromCertificate, startListener } from "./mod.ts";
import type { ConnectionInfo, ListenerBackend, RunningListener, TlsMaterial } from "./mod.ts";

// Real certificates from a real CA, real TLS on loopback port 0, both listener backends.
let dir: string;
const pki: Record<string, IssuedCertificate> = {};
const running: RunningListener[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dutygate-tls-"));
  pki.serverCa = await createCa(dir, "Server CA");
  pki.defaultCert = await issueCertificate(dir, pki.serverCa, { commonName: "default.test", dnsNames: ["default.test"] });
  pki.a = await issueCertificate(dir, pki.serverCa, { commonName: "a.test", dnsNames: ["a.test"] });
  pki.wild = await issueCertificate(dir, pki.serverCa, { commonName: "wild.test", dnsNames: ["*.wild.test"], fileName: "wild" });
  pki.rotated = await issueCertificate(dir, pki.serverCa, { commonName: "rotated.test", dnsNames: ["rotated.test"] });
  pki.clientCa = await createCa(dir, "Client CA");
  pki.alice = await issueCertificate(dir, pki.clientCa, { commonName: "alice", uris: ["spiffe://example.org/ns/prod/sa/alice"], client: true });
  pki.bob = await issueCertificate(dir, pki.clientCa, { commonName: "bob", client: true });
  pki.rogueCa = await createCa(dir, "Rogue CA");
  pki.mallory = await issueCertificate(dir, pki.rogueCa, { commonName: "alice", client: true, fileName: "mallory" });
});

afterAll(async () => {
  for (const listener of running) await listener.stop({ graceful: false });
  rmSync(dir, { recursive: true, force: true });
});

function listenerConfig(overrides: Partial<ListenerConfig> = {}): ListenerConfig {
  return {
    host: "127.0.0.1", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false,
    certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2", ...overrides,
  };
}

function material(options: { withClientCa?: boolean; defaultCert?: IssuedCertificate } = {}): TlsMaterial {
  const defaultCert = options.defaultCert ?? pki.defaultCert!;
  return {
    default: { cert: defaultCert.cert, key: defaultCert.key },
    sni: [
      { serverName: "a.test", cert: pki.a!.cert, key: pki.a!.key },
      { serverName: "*.wild.test", cert: pki.wild!.cert, key: pki.wild!.key },
    ],
    ...(options.withClientCa ? { ca: pki.clientCa!.cert } : {}),
  };
}

const echoInfo = (request: Request, info: ConnectionInfo) =>
  Response.json({ path: new URL(request.url).pathname, info });

async function start(options: {
  backend: ListenerBackend;
  listener?: Partial<ListenerConfig>;
  tls?: TlsMaterial;
  fetch?: (request: Request, info: ConnectionInfo) => Response | Promise<Response>;
  maxRequestBodySize?: number;
}): Promise<RunningListener> {
  const listener = await startListener({
    listener: listenerConfig(options.listener),
    tls: options.tls ?? material(),
    fetch: options.fetch ?? echoInfo,
    maxRequestBodySize: options.maxRequestBodySize ?? 1024 * 1024,
    backend: options.backend,
  });
  running.push(listener);
  return listener;
}

const BACKENDS: ListenerBackend[] = ["bun", "node"];

describe.each(BACKENDS)("%s backend", (backend) => {
  test("SNI picks the certificate: exact name, one-label wildcard, else the default", async () => {
    const listener = await start({ backend });
    expect(listener.backend).toBe(backend);
    const cases: [string | undefined, string][] = [
      ["a.test", "a.test"],
      ["x.wild.test", "wild.test"],
      ["a.b.wild.test", "default.test"],
      ["unknown.test", "default.test"],
      [undefined, "default.test"],
    ];
    for (const [servername, cn] of cases) {
      const served = await handshake(listener.port, servername ? { servername } : {});
      expect({ servername, cn: served.cn }).toEqual({ servername, cn });
    }
    const connection = await openConnection(listener.port, { servername: "a.test" });
    const response = await connection.request("GET", "/hello");
    connection.close();
    expect(response.status).toBe(200);
    const body = JSON.parse(response.body) as { path: string; info: ConnectionInfo };
    expect(body.path).toBe("/hello");
    expect(body.info.remoteAddress).toBe("127.0.0.1");
    expect(body.info.peerCertificate).toBeNull();
  });

  test("TLS 1.0 and 1.1 are refused; min_tls 1.3 refuses 1.2", async () => {
    const listener = await start({ backend });
    for (const maxVersion of ["TLSv1", "TLSv1.1"] as const) {
      // The client offers only the old version; the alert proves the server refused it (not the client).
      const error = await handshake(listener.port, { minVersion: "TLSv1", maxVersion }).then(() => null, (e: Error) => e);
      expect(error?.message ?? "accepted").toMatch(/ALERT_PROTOCOL_VERSION/i);
    }
    expect((await handshake(listener.port, { maxVersion: "TLSv1.2" })).protocol).toBe("TLSv1.2");
    const strict = await start({ backend, listener: { minTlsVersion: "TLSv1.3" } });
    const refused = await handshake(strict.port, { maxVersion: "TLSv1.2" }).then(() => null, (e: Error) => e);
    expect(refused?.message ?? "accepted").toMatch(/ALERT_PROTOCOL_VERSION/i);
    expect((await handshake(strict.port)).protocol).toBe("TLSv1.3");
  });

  test("a body over the limit with a declared length gets 413 without reaching the handler", async () => {
    let calls = 0;
    const listener = await start({ backend, maxRequestBodySize: 16, fetch: async (request) => { calls++; return new Response(await request.text()); } });
    const connection = await openConnection(listener.port);
    const small = await connection.request("POST", "/", { body: "0123456789" });
    expect([small.status, small.body]).toEqual([200, "0123456789"]);
    const big = await connection.request("POST", "/", { body: "x".repeat(100) }).catch((e: Error) => ({ status: 0, body: e.message }));
    connection.close();
    expect(big.status).toBe(413);
    expect(calls).toBe(1);
  });

  test("a second listener on a port in use fails with TLS_ADDRESS_IN_USE", async () => {
    const first = await start({ backend });
    const error = await start({ backend, listener: { port: first.port } }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe("TLS_ADDRESS_IN_USE");
  });

  test("reloadCertificates: new connections see the new certificate, bad material is refused", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const listener = await start({
      backend,
      fetch: async (request) => {
        if (new URL(request.url).pathname === "/slow") await gate;
        return new Response("done");
      },
    });
    const before = await openConnection(listener.port);
    expect(before.serverCN()).toBe("default.test");
    // A request in flight across the rotation must complete.
    const inFlight = before.request("GET", "/slow");
    await new Promise((resolve) => setTimeout(resolve, 50));

    const broken = { ...material(), default: { cert: pki.rotated!.cert, key: pki.a!.key } };
    const error = await listener.reloadCertificates(broken).then(() => null, (e: unknown) => e);
    expect((error as GatewayError).code).toBe("TLS_BAD_CERTIFICATE");
    expect((await handshake(listener.port)).cn).toBe("default.test");

    await listener.reloadCertificates(material({ defaultCert: pki.rotated }));
    for (let i = 0; i < 5; i++) expect((await handshake(listener.port)).cn).toBe("rotated.test");
    expect((await handshake(listener.port, { servername: "a.test" })).cn).toBe("a.test");
    release();
    expect(await inFlight).toMatchObject({ status: 200, body: "done" });
    before.close();
  });

  test("graceful stop lets the in-flight request finish, then refuses connections", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let entered: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => { entered = resolve; });
    const listener = await startListener({
      listener: listenerConfig(), tls: material(), backend, maxRequestBodySize: 1024,
      fetch: async () => { entered(); await gate; return new Response("finished"); },
    });
    const connection = await openConnection(listener.port);
    const pending = connection.request("GET", "/");
    await inHandler;
    const stopped = listener.stop({ graceful: true, deadlineMs: 10_000 });
    release();
    expect(await pending).toMatchObject({ status: 200, body: "finished" });
    await stopped;
    const after = await handshake(listener.port).then(() => "connected", (e: NodeJS.ErrnoException) => e.code);
    expect(after).toBe("ECONNREFUSED");
  });
});

describe("node backend only", () => {
  test("rotation keeps an open keep-alive connection working on its old certificate", async () => {
    const listener = await start({ backend: "node", fetch: () => new Response("ok") });
    const kept = await openConnection(listener.port);
    expect((await kept.request("GET", "/1")).status).toBe(200);
    await listener.reloadCertificates(material({ defaultCert: pki.rotated }));
    const fresh = await openConnection(listener.port);
    expect(fresh.serverCN()).toBe("rotated.test");
    const again = await kept.request("GET", "/2");
    expect([again.status, again.body, kept.serverCN(), kept.socket.destroyed]).toEqual([200, "ok", "default.test", false]);
    kept.close();
    fresh.close();
  });

  test("a chunked body over the limit errors the handler's body stream with BODY_TOO_LARGE", async () => {
    const listener = await start({
      backend: "node", maxRequestBodySize: 16,
      fetch: async (request) => {
        try {
          return new Response(`read ${(await request.text()).length}`);
        } catch (error) {
          return new Response((error as GatewayError).code ?? "unknown", { status: 413 });
        }
      },
    });
    const connection = await openConnection(listener.port);
    expect(await connection.request("POST", "/", { body: "short", chunked: true })).toMatchObject({ status: 200, body: "read 5" });
    expect(await connection.request("POST", "/", { body: "y".repeat(64), chunked: true })).toMatchObject({ status: 413, body: "BODY_TOO_LARGE" });
    connection.close();
  });

  test("HTTP/2 is negotiated and served", async () => {
    const listener = await start({ backend: "node" });
    const session = connectHttp2(listener.url, { rejectUnauthorized: false, servername: "a.test" } as Parameters<typeof connectHttp2>[1]);
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ":path": "/h2" });
      let text = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => { text += chunk; });
      stream.on("end", () => resolve(text));
      stream.on("error", reject);
      stream.end();
    });
    session.close();
    const parsed = JSON.parse(body) as { path: string; info: ConnectionInfo };
    expect([parsed.path, parsed.info.alpnProtocol, parsed.info.serverName]).toEqual(["/h2", "h2", "a.test"]);
  });
});

describe("mTLS (node backend)", () => {
  const mapping = { identities: { "spiffe://example.org/ns/prod/sa/alice": { roles: ["deployer"], mfa: true } } };

  test("the auto backend serves mTLS listeners with node:http2", async () => {
    const listener = await startListener({ listener: listenerConfig({ clientCaFile: "ca" }), tls: material({ withClientCa: true }), fetch: echoInfo, maxRequestBodySize: 1 });
    running.push(listener);
    expect(listener.backend).toBe("node");
  });

  test("the handler sees the client certificate's CN, SPIFFE ID, issuer and fingerprint", async () => {
    const listener = await start({ backend: "node", tls: material({ withClientCa: true }), listener: { clientCaFile: "ca", requireClientCertificate: true } });
    const cases = [
      { who: pki.alice!, cn: "alice", uris: ["spiffe://example.org/ns/prod/sa/alice"] },
      { who: pki.bob!, cn: "bob", uris: [] },
    ];
    for (const c of cases) {
      const connection = await openConnection(listener.port, { cert: c.who.cert, key: c.who.key, servername: "a.test" });
      const response = await connection.request("GET", "/whoami");
      connection.close();
      const info = (JSON.parse(response.body) as { info: ConnectionInfo }).info;
      expect(info.peerCertificate).toMatchObject({ subjectCN: c.cn, uriSans: c.uris, issuerCN: "Client CA", fingerprint256: c.who.fingerprint256, authorized: true, authorizationError: null });
      expect(info.tlsProtocol).toBe("TLSv1.3");
      expect(Date.parse(info.peerCertificate!.validTo)).toBeGreaterThan(Date.now());
    }
    const alice = await openConnection(listener.port, { cert: pki.alice!.cert, key: pki.alice!.key });
    const peer = (JSON.parse((await alice.request("GET", "/")).body) as { info: ConnectionInfo }).info.peerCertificate!;
    alice.close();
    expect(principalAttributesFromCertificate(peer, mapping)).toEqual({ ok: true, sub: "spiffe://example.org/ns/prod/sa/alice", attributes: { roles: ["deployer"], mfa: true } });
  });

  test("the handler sees the client certificate over HTTP/2 too", async () => {
    const listener = await start({ backend: "node", tls: material({ withClientCa: true }), listener: { clientCaFile: "ca", requireClientCertificate: true } });
    const session = connectHttp2(listener.url, { rejectUnauthorized: false, cert: pki.alice!.cert, key: pki.alice!.key } as Parameters<typeof connectHttp2>[1]);
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ":path": "/" });
      let text = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => { text += chunk; });
      stream.on("end", () => resolve(text));
      stream.on("error", reject);
      stream.end();
    });
    session.close();
    const info = (JSON.parse(body) as { info: ConnectionInfo }).info;
    expect([info.alpnProtocol, info.peerCertificate?.subjectCN, info.peerCertificate?.authorized]).toEqual(["h2", "alice", true]);
  });

  test("a client without a certificate, or with one from another CA, is refused when required", async () => {
    let calls = 0;
    const listener = await start({
      backend: "node", tls: material({ withClientCa: true }), listener: { clientCaFile: "ca", requireClientCertificate: true },
      fetch: () => { calls++; return new Response("should not happen"); },
    });
    for (const credentials of [{}, { cert: pki.mallory!.cert, key: pki.mallory!.key }]) {
      // With TLS 1.3 the client finishes its handshake before the server checks its certificate,
      // so the refusal shows up as a failed first request.
      const outcome = await openConnection(listener.port, credentials)
        .then((c) => c.request("GET", "/").then((r) => `status ${r.status}`, (e: Error) => e.message))
        .catch((e: Error) => e.message);
      expect(outcome).not.toMatch(/^status/);
    }
    expect(calls).toBe(0);
  });

  test("with an optional client certificate, JWT callers pass without one and foreign certificates are marked unauthorised", async () => {
    const listener = await start({ backend: "node", tls: material({ withClientCa: true }), listener: { clientCaFile: "ca", requireClientCertificate: false } });
    const anonymous = await openConnection(listener.port);
    const none = (JSON.parse((await anonymous.request("GET", "/")).body) as { info: ConnectionInfo }).info;
    anonymous.close();
    expect(none.peerCertificate).toBeNull();

    const foreign = await openConnection(listener.port, { cert: pki.mallory!.cert, key: pki.mallory!.key });
    const peer = (JSON.parse((await foreign.request("GET", "/")).body) as { info: ConnectionInfo }).info.peerCertificate!;
    foreign.close();
    expect(peer.subjectCN).toBe("alice");
    expect(peer.authorized).toBe(false);
    expect(peer.authorizationError).toBeTruthy();
    const verdict = principalAttributesFromCertificate(peer, { identities: { alice: { roles: ["security_admin"] } } });
    expect(verdict.ok ? "accepted" : verdict.code).toBe("MTLS_NOT_AUTHORIZED");
  });

  test("the bun backend refuses a client CA (it cannot show client certificates)", async () => {
    const error = await startListener({ listener: listenerConfig(), tls: material({ withClientCa: true }), fetch: echoInfo, maxRequestBodySize: 1, backend: "bun" })
      .then(() => null, (e: unknown) => e);
    expect((error as GatewayError).code).toBe("TLS_BACKEND_MISMATCH");
  });
});

// An independent TLS client: OpenSSL's own s_client, when the machine has it.
const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
describe.if(hasOpenssl)("openssl s_client", () => {
  test.each(BACKENDS)("%s backend answers a TLS 1.1 hello with a protocol_version alert", async (backend) => {
    const listener = await start({ backend });
    const run = (flag: string) => new Promise<string>((resolve) => {
      const child = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${listener.port}`, flag, "-cipher", "DEFAULT:@SECLEVEL=0"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
      killGroupOnExit(child.pid);
      const timer = setTimeout(() => killProcessGroup(child.pid), 10_000);
      void Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]).then(([out, err]) => { clearTimeout(timer); killProcessGroup(child.pid); resolve(out + err); });
    });
    expect(await run("-tls1_1")).toMatch(/alert protocol version|no protocols available|unsupported protocol/i);
    expect(await run("-tls1_2")).toMatch(/Protocol\s*:\s*TLSv1\.2/);
  });
});
