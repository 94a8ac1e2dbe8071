import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ListenerConfig } from "../config/types.ts";
import type { GatewayError } from "../errors.ts";
import { ensureSelfSignedCertificate, loadTlsMaterial, watchCertificates } from "./mod.ts";
import type { TlsMaterial } from "./mod.ts";
import { createCa, issueCertificate, type IssuedCertificate } from "../../test/support/pki.ts";

let dir: string;
let ca: IssuedCertificate, one: IssuedCertificate, two: IssuedCertificate, sni: IssuedCertificate;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dutygate-certs-"));
  ca = await createCa(dir, "Test CA");
  one = await issueCertificate(dir, ca, { commonName: "one.test" });
  two = await issueCertificate(dir, ca, { commonName: "two.test" });
  sni = await issueCertificate(dir, ca, { commonName: "sni.test" });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function listener(overrides: Partial<ListenerConfig>): ListenerConfig {
  return {
    host: "0.0.0.0", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false,
    certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2", ...overrides,
  };
}

/** Polls until `check` passes or ~5 s pass; file watching is asynchronous, but not a timed assertion. */
async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

describe("ensureSelfSignedCertificate", () => {
  test("creates the pair once (key 0600) and reuses it on later starts", async () => {
    const stateDir = mkdtempSync(join(dir, "state-"));
    const pair = await ensureSelfSignedCertificate(stateDir, { hostnames: ["localhost", "127.0.0.1", "::1"] });
    expect(pair).toEqual({ certFile: join(stateDir, "tls", "listen", "cert.pem"), keyFile: join(stateDir, "tls", "listen", "key.pem") });
    expect(statSync(pair.keyFile).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(pair.certFile));
    expect(cert.subjectAltName).toContain("DNS:localhost");
    expect(cert.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(cert.checkPrivateKey(await import("node:crypto").then((c) => c.createPrivateKey(readFileSync(pair.keyFile))))).toBe(true);
    const firstPem = readFileSync(pair.certFile, "utf8");
    await ensureSelfSignedCertificate(stateDir, { hostnames: ["localhost"] });
    expect(readFileSync(pair.certFile, "utf8")).toBe(firstPem);
  });

  test("replaces a certificate that expires within 30 days, and a corrupt one", async () => {
    const stateDir = mkdtempSync(join(dir, "state-"));
    const pair = await ensureSelfSignedCertificate(stateDir, { hostnames: ["localhost"], name: "admin" });
    expect(pair.certFile).toBe(join(stateDir, "tls", "admin", "cert.pem"));
    const original = readFileSync(pair.certFile, "utf8");
    await ensureSelfSignedCertificate(stateDir, { hostnames: ["localhost"], name: "admin", nowMs: Date.now() + 340 * 86_400_000 });
    const renewed = readFileSync(pair.certFile, "utf8");
    expect(renewed).not.toBe(original);
    writeFileSync(pair.keyFile, "garbage");
    await ensureSelfSignedCertificate(stateDir, { hostnames: ["localhost"], name: "admin" });
    expect(readFileSync(pair.certFile, "utf8")).not.toBe(renewed);
  });
});

describe("loadTlsMaterial", () => {
  test("reads certificate, SNI entries and client CA", async () => {
    const material = await loadTlsMaterial(listener({
      certificate: { certFile: one.certFile, keyFile: one.keyFile },
      sni: [{ serverName: "SNI.test", certFile: sni.certFile, keyFile: sni.keyFile }],
      clientCaFile: ca.certFile,
    }));
    expect(material).toEqual({ default: { cert: one.cert, key: one.key }, sni: [{ serverName: "sni.test", cert: sni.cert, key: sni.key }], ca: ca.cert });
  });

  test("falls back to the self-signed certificate in the state dir", async () => {
    const stateDir = mkdtempSync(join(dir, "state-"));
    const material = await loadTlsMaterial(listener({}), { stateDir });
    expect(material.default.cert).toBe(readFileSync(join(stateDir, "tls", "listen", "cert.pem"), "utf8"));
    expect(material.ca).toBeUndefined();
  });

  const failures: [string, () => Partial<ListenerConfig>, string][] = [
    ["no certificate and no state dir", () => ({}), "TLS_NO_CERTIFICATE"],
    ["missing key file", () => ({ certificate: { certFile: one.certFile, keyFile: join(dir, "nope.key") } }), "TLS_FILE_UNREADABLE"],
    ["key of another certificate", () => ({ certificate: { certFile: one.certFile, keyFile: two.keyFile } }), "TLS_BAD_CERTIFICATE"],
    ["SNI key of another certificate", () => ({ certificate: { certFile: one.certFile, keyFile: one.keyFile }, sni: [{ serverName: "x", certFile: sni.certFile, keyFile: one.keyFile }] }), "TLS_BAD_CERTIFICATE"],
    ["client CA that is not PEM", () => ({ certificate: { certFile: one.certFile, keyFile: one.keyFile }, clientCaFile: one.keyFile }), "TLS_BAD_CERTIFICATE"],
  ];
  for (const [name, overrides, code] of failures) {
    test(`${name} → ${code}`, async () => {
      const error = await loadTlsMaterial(listener(overrides())).then(() => null, (e: unknown) => e);
      expect((error as GatewayError).code as string).toBe(code);
    });
  }
});

describe("watchCertificates", () => {
  test("an atomic replace of cert and key delivers the new material; a mismatched pair goes to onError", async () => {
    const watchDir = mkdtempSync(join(dir, "watch-"));
    const certFile = join(watchDir, "cert.pem"), keyFile = join(watchDir, "key.pem");
    writeFileSync(certFile, one.cert);
    writeFileSync(keyFile, one.key);
    const changes: TlsMaterial[] = [];
    const errors: unknown[] = [];
    const watcher = watchCertificates(listener({ certificate: { certFile, keyFile } }), (m) => { changes.push(m); }, { debounceMs: 50, onError: (e) => errors.push(e) });
    try {
      // Let the watcher record the running material before anything changes.
      await new Promise((resolve) => setTimeout(resolve, 100));
      writeFileSync(`${keyFile}.new`, two.key);
      writeFileSync(`${certFile}.new`, two.cert);
      renameSync(`${keyFile}.new`, keyFile);
      renameSync(`${certFile}.new`, certFile);
      expect(await eventually(() => changes.length > 0)).toBe(true);
      expect(changes.at(-1)!.default.cert).toBe(two.cert);

      writeFileSync(keyFile, one.key); // now the key no longer matches the certificate
      expect(await eventually(() => errors.length > 0)).toBe(true);
      expect((errors[0] as GatewayError).code).toBe("TLS_BAD_CERTIFICATE");
      expect(changes.every((m) => m.default.key !== one.key || m.default.cert === one.cert)).toBe(true);
    } finally {
      watcher.close();
    }
  });
});
