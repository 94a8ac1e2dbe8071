// `https://` upstreams on the HTTP/1.1 pool: real TLS upstreams over loopback with certificates
// from a CA this test makes. The pool must accept exactly what the runtime's fetch accepts and
// refuse, with the same error code, what fetch refuses: each case runs through both clients, in a
// child process that trusts the test CA through NODE_EXTRA_CA_CERTS (as an operator would).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { UpstreamConfig } from "../config/types.ts";
import { createCa, issueCertificate, type IssuedCertificate } from "../../test/support/pki.ts";
import { killGroupOnExit, killProcessGroup } from "../../test/support/process-group.ts";
import { drainText, REPO_ROOT } from "../../test/support/harness.ts";
import { tempDir } from "../../test/support/temp-dir.ts";
import { forwardToUpstream } from "./forward.ts";
import { existingHttp1Pool, http1PoolKey } from "./forward-http1.ts";

type Server = ReturnType<typeof Bun.serve>;
const servers: Server[] = [];
let dir: string;
let ca: IssuedCertificate;
let stranger: IssuedCertificate;
let gatewayClient: IssuedCertificate;
let strangerClient: IssuedCertificate;
const ports: Record<string, number> = {};

// Answers with what it received: method, body length and hash.
function startUpstream(name: string, certificate: IssuedCertificate): void {
  const server = Bun.serve({
    hostname: "127.0.0.1", port: 0, maxRequestBodySize: 64 << 20,
    tls: { cert: certificate.cert, key: certificate.key },
    async fetch(request) {
      const body = new Uint8Array(await request.arrayBuffer());
      return new Response(`${request.method} ${body.byteLength} ${Bun.hash(body).toString(16)}`);
    },
  });
  servers.push(server);
  ports[name] = server.port!;
}

beforeAll(async () => {
  dir = tempDir("dutygate-pool-tls-");
  ca = await createCa(dir, "upstream-ca");
  stranger = await createCa(dir, "stranger-ca");
  const day = 24 * 3600 * 1000;
  startUpstream("good", await issueCertificate(dir, ca, { commonName: "localhost", dnsNames: ["localhost"], fileName: "good" }));
  // Valid for 127.0.0.1 and other.example, asked for as `localhost`.
  startUpstream("wrong-name", await issueCertificate(dir, ca, { commonName: "other.example", dnsNames: ["other.example"], fileName: "wrong-name" }));
  startUpstream("unknown-ca", await issueCertificate(dir, stranger, { commonName: "localhost", dnsNames: ["localhost"], fileName: "unknown-ca" }));
  // One address, two certificates chosen by SNI (a.internal the default): only the name sent
  // as SNI gets b.internal's.
  const sniA = await issueCertificate(dir, ca, { commonName: "a.internal", dnsNames: ["a.internal"], fileName: "sni-a" });
  const sniB = await issueCertificate(dir, ca, { commonName: "b.internal", dnsNames: ["b.internal"], fileName: "sni-b" });
  const sniServer = Bun.serve({
    hostname: "127.0.0.1", port: 0,
    tls: [{ cert: sniA.cert, key: sniA.key, serverName: "a.internal" }, { cert: sniB.cert, key: sniB.key, serverName: "b.internal" }],
    fetch: (request) => new Response(`${request.method} 0 ${Bun.hash(new Uint8Array(0)).toString(16)}`),
  });
  servers.push(sniServer);
  ports.sni = sniServer.port!;
  // Asks for a client certificate from the test CA and refuses a handshake without one.
  const mtlsServer = await issueCertificate(dir, ca, { commonName: "localhost", dnsNames: ["localhost"], fileName: "mtls-server" });
  const mtls = Bun.serve({
    hostname: "127.0.0.1", port: 0,
    tls: { cert: mtlsServer.cert, key: mtlsServer.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true },
    fetch: (request) => new Response(`${request.method} 0 ${Bun.hash(new Uint8Array(0)).toString(16)}`),
  });
  servers.push(mtls);
  ports.mtls = mtls.port!;
  gatewayClient = await issueCertificate(dir, ca, { commonName: "dutygate", client: true, fileName: "gateway-client" });
  strangerClient = await issueCertificate(dir, stranger, { commonName: "dutygate", client: true, fileName: "stranger-client" });
  startUpstream("expired", await issueCertificate(dir, ca, { commonName: "localhost", dnsNames: ["localhost"], fileName: "expired", notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) }));
});
afterAll(() => { for (const s of servers) s.stop(true); });

interface Attempt { name: string; client: "pool" | "fetch"; status: number; code: string | null; text: string; expected: string; poolOpen: number }

/** `extraCa`: the file the child gets as NODE_EXTRA_CA_CERTS (the test CA by default), null for none. */
async function runClient(cases: Array<{ name: string; url: string; method: string; bodyBytes: number; streamed?: boolean; ca?: string; serverName?: string; cert?: string; key?: string }>, extraCa: string | null = ca.certFile): Promise<Attempt[]> {
  const bun = join(REPO_ROOT, "node_modules/.bin/bun");
  const env: Record<string, string | undefined> = { ...process.env, NODE_EXTRA_CA_CERTS: extraCa ?? undefined };
  if (extraCa === null) delete env.NODE_EXTRA_CA_CERTS;
  const child = Bun.spawn([bun, join(REPO_ROOT, "test/support/forward-tls-client.ts"), JSON.stringify(cases)], {
    env, stdout: "pipe", stderr: "pipe", detached: true,
  });
  killGroupOnExit(child.pid);
  let out = "";
  let err = "";
  try {
    await Promise.all([drainText(child.stdout, (s) => (out += s)), drainText(child.stderr, (s) => (err += s)), child.exited]);
  } finally {
    killProcessGroup(child.pid);
  }
  if (child.exitCode !== 0) throw new Error(`client exited ${child.exitCode}:\n${out}\n${err}`);
  return out.trim().split("\n").map((line) => JSON.parse(line) as Attempt);
}

describe("HTTP/1.1 pool over TLS", () => {
  test("a trusted upstream answers through the pool as through fetch: with bodies of 0 B, 1 KiB, 5 MiB and chunked", async () => {
    const url = `https://localhost:${ports.good}`;
    const attempts = await runClient([
      { name: "get", url, method: "GET", bodyBytes: 0 },
      { name: "post-1k", url, method: "POST", bodyBytes: 1024 },
      { name: "post-5m", url, method: "POST", bodyBytes: 5 * 1024 * 1024 },
      { name: "put-chunked", url, method: "PUT", bodyBytes: 300_000, streamed: true },
    ]);
    expect(attempts.length).toBe(8);
    for (const a of attempts) {
      expect({ name: a.name, client: a.client, status: a.status, text: a.text }).toEqual({ name: a.name, client: a.client, status: 200, text: a.expected });
    }
    // The pool carried the pool's attempts: its connection to the upstream stays open for reuse.
    expect(attempts.filter((a) => a.client === "pool").every((a) => a.poolOpen === 1)).toBe(true);
  }, 30_000);

  test("a certificate of the wrong name, from an unknown CA or expired: 502 UPSTREAM_UNAVAILABLE from both clients, no slot kept", async () => {
    const attempts = await runClient(["wrong-name", "unknown-ca", "expired"].map((name) => ({ name, url: `https://localhost:${ports[name]}`, method: "POST", bodyBytes: 1024 })));
    expect(attempts.length).toBe(6);
    for (const a of attempts) expect({ name: a.name, client: a.client, status: a.status, code: a.code }).toEqual({ name: a.name, client: a.client, status: 502, code: "UPSTREAM_UNAVAILABLE" });
    expect(attempts.every((a) => a.poolOpen === 0)).toBe(true);
  }, 30_000);

  test("the name the certificate is checked against is the upstream's host: 127.0.0.1 is in the wrong-name certificate", async () => {
    const attempts = await runClient([{ name: "by-address", url: `https://127.0.0.1:${ports["wrong-name"]}`, method: "GET", bodyBytes: 0 }]);
    for (const a of attempts) expect(a.status).toBe(200);
  }, 30_000);

  test("in this process, which does not trust the test CA, the pool refuses even the good upstream", async () => {
    const upstream: UpstreamConfig = { name: "good", url: `https://localhost:${ports.good}`, timeoutMs: 5_000, connectTimeoutMs: 2_000, client: "pool" };
    const response = await forwardToUpstream(new Request("https://gw.test/x"), {
      upstream, path: "/x", query: "", requestId: "req-tls", clientIp: "127.0.0.1", host: "gw.test", maxBodyBytes: 1 << 20, client: "pool",
    });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { code: string }).code).toBe("UPSTREAM_UNAVAILABLE");
    expect(existingHttp1Pool(new URL(upstream.url).origin)?.openConnections).toBe(0);
  });
});

describe("an upstream's own `ca`", () => {
  test("a `ca` or client certificate that was not read fails closed through both clients, never falling back to the defaults", async () => {
    const url = `https://localhost:${ports.good}`;
    for (const client of ["pool", "fetch"] as const) {
      const unread: Array<[Partial<UpstreamConfig>, string]> = [
        [{ caFile: join(dir, "never-read.pem"), caPem: null }, "`ca`"],
        [{ clientCertFile: join(dir, "never-read.pem"), clientKeyFile: join(dir, "never-read.key"), clientCertPem: null, clientKeyPem: null }, "client `cert`"],
      ];
      for (const [settings, named] of unread) {
        const upstream: UpstreamConfig = { name: "unread", url, timeoutMs: 5_000, connectTimeoutMs: 2_000, client, ...settings };
        const response = await forwardToUpstream(new Request("https://gw.test/x"), {
          upstream, path: "/x", query: "", requestId: "req-unread", clientIp: "127.0.0.1", host: "gw.test", maxBodyBytes: 1 << 20, client,
        });
        expect(response.status).toBe(502);
        expect(((await response.json()) as { code: string; detail: string })).toMatchObject({ code: "UPSTREAM_UNAVAILABLE", detail: expect.stringContaining(named) });
      }
    }
    expect(existingHttp1Pool(http1PoolKey(new URL(url).origin, join(dir, "never-read.pem")))).toBeUndefined();
  });

  test("with `ca` set and no NODE_EXTRA_CA_CERTS, both clients reach the upstream, the pool keeping its connection", async () => {
    const url = `https://localhost:${ports.good}`;
    const attempts = await runClient([
      { name: "get", url, method: "GET", bodyBytes: 0, ca: ca.certFile },
      { name: "post-1k", url, method: "POST", bodyBytes: 1024, ca: ca.certFile },
      // Asked for by address: the wrong-name certificate holds 127.0.0.1.
      { name: "by-address", url: `https://127.0.0.1:${ports["wrong-name"]}`, method: "GET", bodyBytes: 0, ca: ca.certFile },
    ], null);
    expect(attempts.length).toBe(6);
    for (const a of attempts) {
      expect({ name: a.name, client: a.client, status: a.status, text: a.text }).toEqual({ name: a.name, client: a.client, status: 200, text: a.expected });
    }
    expect(attempts.filter((a) => a.client === "pool").every((a) => a.poolOpen === 1)).toBe(true);
  }, 30_000);

  test("control: without `ca`, NODE_EXTRA_CA_CERTS of the other CA lets both clients reach that CA's upstream", async () => {
    const attempts = await runClient([{ name: "unknown-ca", url: `https://localhost:${ports["unknown-ca"]}`, method: "GET", bodyBytes: 0 }], stranger.certFile);
    expect(attempts.map((a) => [a.client, a.status])).toEqual([["pool", 200], ["fetch", 200]]);
  }, 30_000);

  test("`ca` replaces the roots: another CA's certificate is 502 UPSTREAM_UNAVAILABLE even when NODE_EXTRA_CA_CERTS trusts that CA; names and dates are still checked", async () => {
    const attempts = await runClient(["unknown-ca", "wrong-name", "expired"].map((name) => ({ name, url: `https://localhost:${ports[name]}`, method: "POST", bodyBytes: 1024, ca: ca.certFile })), stranger.certFile);
    expect(attempts.length).toBe(6);
    for (const a of attempts) expect({ name: a.name, client: a.client, status: a.status, code: a.code }).toEqual({ name: a.name, client: a.client, status: 502, code: "UPSTREAM_UNAVAILABLE" });
    expect(attempts.every((a) => a.poolOpen === 0)).toBe(true);
  }, 30_000);

  test("a bundle of both CAs trusts each: the two upstreams answer through both clients", async () => {
    const bundle = join(dir, "both-cas.pem");
    await Bun.write(bundle, `${stranger.cert.trim()}\n${ca.cert.trim()}\n`);
    const attempts = await runClient(["good", "unknown-ca"].map((name) => ({ name, url: `https://localhost:${ports[name]}`, method: "GET", bodyBytes: 0, ca: bundle })), null);
    expect(attempts.map((a) => [a.name, a.client, a.status])).toEqual([["good", "pool", 200], ["good", "fetch", 200], ["unknown-ca", "pool", 200], ["unknown-ca", "fetch", 200]]);
  }, 30_000);
});

describe("an upstream's own `server_name`", () => {
  test("sent as SNI: the upstream that picks its certificate by SNI answers as b.internal through both clients", async () => {
    const url = `https://localhost:${ports.sni}`;
    const attempts = await runClient([
      { name: "sni-b", url, method: "GET", bodyBytes: 0, ca: ca.certFile, serverName: "b.internal" },
      { name: "sni-a", url, method: "GET", bodyBytes: 0, ca: ca.certFile, serverName: "a.internal" },
    ], null);
    expect(attempts.map((a) => [a.name, a.client, a.status, a.text === a.expected])).toEqual([
      ["sni-b", "pool", 200, true], ["sni-b", "fetch", 200, true], ["sni-a", "pool", 200, true], ["sni-a", "fetch", 200, true],
    ]);
  }, 30_000);

  test("checked in place of the URL's host: the wrong-name certificate passes as other.example, with `ca` or with NODE_EXTRA_CA_CERTS", async () => {
    const url = `https://localhost:${ports["wrong-name"]}`;
    const withCa = await runClient([{ name: "with-ca", url, method: "POST", bodyBytes: 1024, ca: ca.certFile, serverName: "other.example" }], null);
    const withRoots = await runClient([{ name: "with-roots", url, method: "POST", bodyBytes: 1024, serverName: "other.example" }]);
    for (const a of [...withCa, ...withRoots]) expect({ name: a.name, client: a.client, status: a.status, text: a.text }).toEqual({ name: a.name, client: a.client, status: 200, text: a.expected });
    expect([...withCa, ...withRoots].length).toBe(4);
  }, 30_000);

  test("a name the certificate does not hold is 502 UPSTREAM_UNAVAILABLE from both clients, the URL's host no longer counting", async () => {
    const attempts = await runClient([
      { name: "sni-c", url: `https://localhost:${ports.sni}`, method: "GET", bodyBytes: 0, ca: ca.certFile, serverName: "c.internal" },
      // The good certificate holds localhost, the URL's host, but not the name asked for.
      { name: "good-as-other", url: `https://localhost:${ports.good}`, method: "GET", bodyBytes: 0, ca: ca.certFile, serverName: "other.example" },
    ], null);
    // Without `ca` the chain is still verified, against the roots and NODE_EXTRA_CA_CERTS (the test CA).
    attempts.push(...await runClient([{ name: "stranger-named", url: `https://localhost:${ports["unknown-ca"]}`, method: "GET", bodyBytes: 0, serverName: "localhost" }]));
    expect(attempts.length).toBe(6);
    for (const a of attempts) expect({ name: a.name, client: a.client, status: a.status, code: a.code }).toEqual({ name: a.name, client: a.client, status: 502, code: "UPSTREAM_UNAVAILABLE" });
    expect(attempts.every((a) => a.poolOpen === 0)).toBe(true);
  }, 30_000);
});

describe("an upstream's client certificate (`cert`, `key`)", () => {
  test("presented to an upstream that requires one: both clients are answered with it, refused without it or with another CA's", async () => {
    const url = `https://localhost:${ports.mtls}`;
    const attempts = await runClient([
      { name: "with-cert", url, method: "GET", bodyBytes: 0, ca: ca.certFile, cert: gatewayClient.certFile, key: gatewayClient.keyFile },
      { name: "without-cert", url, method: "GET", bodyBytes: 0, ca: ca.certFile },
      { name: "stranger-cert", url, method: "GET", bodyBytes: 0, ca: ca.certFile, cert: strangerClient.certFile, key: strangerClient.keyFile },
    ], null);
    expect(attempts.map((a) => [a.name, a.client, a.status, a.code])).toEqual([
      ["with-cert", "pool", 200, null], ["with-cert", "fetch", 200, null],
      ["without-cert", "pool", 502, "UPSTREAM_UNAVAILABLE"], ["without-cert", "fetch", 502, "UPSTREAM_UNAVAILABLE"],
      ["stranger-cert", "pool", 502, "UPSTREAM_UNAVAILABLE"], ["stranger-cert", "fetch", 502, "UPSTREAM_UNAVAILABLE"],
    ]);
    expect(attempts.filter((a) => a.name === "with-cert").every((a) => a.text === a.expected)).toBe(true);
  }, 30_000);
});
