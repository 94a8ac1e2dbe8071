// Certificates chosen by SNI on the operational listener, on both listener backends, and the TLS
// version floor: a client limited to TLS 1.1 is refused, TLS 1.2 and 1.3 are served, and
// `minTlsVersion = TLSv1.3` refuses TLS 1.2 too. Real certificates from a real test CA.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions } from "node:tls";
import { createCa, issueCertificate, type IssuedCertificate } from "../support/pki.ts";
import { startTestGateway, type TestGateway } from "../support/harness.ts";

let pkiDir: string;
let ca: IssuedCertificate;
let defaultCert: IssuedCertificate;
let apiCert: IssuedCertificate;
let appsCert: IssuedCertificate;
const gateways: Partial<Record<"bun" | "node" | "tls13", TestGateway>> = {};

beforeAll(async () => {
  pkiDir = mkdtempSync(join(tmpdir(), "dutygate-sni-"));
  ca = await createCa(pkiDir, "sni-test-ca");
  [defaultCert, apiCert, appsCert] = await Promise.all([
    issueCertificate(pkiDir, ca, { commonName: "default.e2e.test", dnsNames: ["default.e2e.test"] }),
    issueCertificate(pkiDir, ca, { commonName: "api.e2e.test", dnsNames: ["api.e2e.test"] }),
    issueCertificate(pkiDir, ca, { commonName: "apps-wildcard.e2e.test", dnsNames: ["*.apps.e2e.test"] }),
  ]);
  const clientCa = await createCa(pkiDir, "unused-client-ca");
  const withCertificates = (extra: { clientCaFile?: string; minTlsVersion?: "TLSv1.2" | "TLSv1.3" }) => (c: TestGateway["config"]) => ({
    ...c,
    listen: {
      ...c.listen,
      certificate: { certFile: defaultCert.certFile, keyFile: defaultCert.keyFile },
      sni: [
        { serverName: "api.e2e.test", certFile: apiCert.certFile, keyFile: apiCert.keyFile },
        { serverName: "*.apps.e2e.test", certFile: appsCert.certFile, keyFile: appsCert.keyFile },
      ],
      ...extra,
    },
  });
  [gateways.bun, gateways.node, gateways.tls13] = await Promise.all([
    startTestGateway({ configure: withCertificates({}) }),
    // A client CA puts the listener on the node:http2 backend (client certificates stay optional).
    startTestGateway({ configure: withCertificates({ clientCaFile: clientCa.certFile }) }),
    startTestGateway({ configure: withCertificates({ minTlsVersion: "TLSv1.3" }) }),
  ]);
});

afterAll(async () => {
  await Promise.all(Object.values(gateways).map((g) => g?.stop()));
  rmSync(pkiDir, { recursive: true, force: true });
});

interface HandshakeOutcome {
  ok: boolean;
  cn?: string;
  protocol?: string | null;
  /** Verified against the test CA for the name asked for (when `verify` was requested). */
  authorized?: boolean;
  error?: string;
}

/** One TLS handshake, bounded; resolves with the served certificate or the error, never rejects. */
function handshake(gateway: TestGateway, options: ConnectionOptions): Promise<HandshakeOutcome> {
  const port = Number(new URL(gateway.url).port);
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ca: ca.cert, ...options }, () => {
      const cn = (socket.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN;
      resolve({ ok: true, cn, protocol: socket.getProtocol(), authorized: socket.authorized });
      socket.end();
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
    socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
  });
}

describe("SNI certificate selection", () => {
  const cases: Array<{ servername: string | undefined; cn: string; verifiesFor: boolean }> = [
    { servername: "api.e2e.test", cn: "api.e2e.test", verifiesFor: true },
    { servername: "API.E2E.TEST", cn: "api.e2e.test", verifiesFor: true },
    { servername: "shop.apps.e2e.test", cn: "apps-wildcard.e2e.test", verifiesFor: true },
    // A wildcard covers exactly one label.
    { servername: "a.b.apps.e2e.test", cn: "default.e2e.test", verifiesFor: false },
    { servername: "unknown.example", cn: "default.e2e.test", verifiesFor: false },
    // No SNI (an IP address): the default certificate, which names 127.0.0.1.
    { servername: undefined, cn: "default.e2e.test", verifiesFor: true },
  ];
  for (const backend of ["bun", "node"] as const) {
    test(`${backend} backend serves the certificate for each server name`, async () => {
      const gateway = gateways[backend]!;
      expect(gateway.gw.operational.backend).toBe(backend);
      const got = [];
      for (const c of cases) {
        const r = await handshake(gateway, c.servername === undefined ? {} : { servername: c.servername });
        got.push({ servername: c.servername, cn: r.cn, authorized: r.authorized });
      }
      expect(got).toEqual(cases.map((c) => ({ servername: c.servername, cn: c.cn, authorized: c.verifiesFor })));
    });

    test(`${backend} backend: a request on a connection for an SNI name, verified for that name, reaches the pipeline`, async () => {
      const port = Number(new URL(gateways[backend]!.url).port);
      // No token: the pipeline answers 401, which proves the request got past TLS into the gateway.
      expect(await statusOverSni(port, "api.e2e.test")).toBe(401);
    });
  }
});

/** GET /changes over a connection that asked for `servername`; the status code, or 0 when the connection failed. */
async function statusOverSni(port: number, servername: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, servername, ca: ca.cert, ALPNProtocols: ["http/1.1"] }, () => {
      socket.write(`GET /changes HTTP/1.1\r\nhost: ${servername}\r\nconnection: close\r\n\r\n`);
    });
    let data = "";
    socket.on("data", (d: Buffer) => (data += d.toString()));
    socket.once("close", () => resolve(Number(data.slice(9, 12)) || 0));
    socket.once("error", () => resolve(0));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe("TLS versions", () => {
  // The client must really offer TLS 1.1 (Node's own floor is 1.2), so a refusal is the server's.
  const tls11: ConnectionOptions = { minVersion: "TLSv1", maxVersion: "TLSv1.1" };
  const tls12: ConnectionOptions = { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" };
  const tls13: ConnectionOptions = { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" };

  for (const backend of ["bun", "node"] as const) {
    test(`${backend} backend: TLS 1.1 refused, 1.2 and 1.3 served`, async () => {
      const gateway = gateways[backend]!;
      const [v11, v12, v13] = [await handshake(gateway, tls11), await handshake(gateway, tls12), await handshake(gateway, tls13)];
      expect({ v11: v11.ok, v12: v12.protocol, v13: v13.protocol }).toEqual({ v11: false, v12: "TLSv1.2", v13: "TLSv1.3" });
      // The refusal came from the server (a protocol-version alert), not from a client that offered nothing.
      expect(v11.error).toBe("ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION");
    });
  }

  test("minTlsVersion = TLSv1.3 refuses TLS 1.2", async () => {
    const gateway = gateways.tls13!;
    const [v12, v13] = [await handshake(gateway, tls12), await handshake(gateway, tls13)];
    expect({ v12: v12.error, v13: v13.protocol }).toEqual({ v12: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", v13: "TLSv1.3" });
  });
});
