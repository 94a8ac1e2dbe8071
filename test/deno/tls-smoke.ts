// Runtime smoke check for Deno (and Node-compatible runtimes without Bun.serve):
//   node_modules/.bin/deno run -A test/deno/tls-smoke.ts
// Loads a config, creates real certificates, starts an mTLS listener (node:http2 backend),
// calls it with and without a client certificate, rotates its certificate, and stops it.
// Prints one line per check and exits non-zero on the first failure.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/mod.ts";
import { loadTlsMaterial, principalAttributesFromCertificate, startListener, type ConnectionInfo } from "../../src/tls/mod.ts";
import { handshake, openConnection } from "../support/http1-client.ts";
import { createCa, issueCertificate } from "../support/pki.ts";

const dir = mkdtempSync(join(tmpdir(), "dutygate-smoke-"));
const check = (name: string, ok: boolean) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  if (!ok) { rmSync(dir, { recursive: true, force: true }); process.exit(1); }
};
try {
  const serverCa = await createCa(dir, "Server CA");
  const server = await issueCertificate(dir, serverCa, { commonName: "gateway.test" });
  const rotated = await issueCertificate(dir, serverCa, { commonName: "rotated.test" });
  const clientCa = await createCa(dir, "Client CA");
  const alice = await issueCertificate(dir, clientCa, { commonName: "alice", uris: ["spiffe://example.org/alice"], client: true });
  writeFileSync(join(dir, "trusted.json"), JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }] }));
  writeFileSync(join(dir, "gateway.toml"), [
    "[listen]", 'address = "127.0.0.1:0"', `cert = "${server.certFile}"`, `key = "${server.keyFile}"`, `client_ca = "${clientCa.certFile}"`,
    '[listen.identities."spiffe://example.org/alice"]', 'roles = ["deployer"]',
    "[policy]", 'trusted_keys = "trusted.json"',
  ].join("\n"));
  const loaded = loadConfig(join(dir, "gateway.toml"), { cwd: dir });
  check("config loads", loaded.ok);
  if (!loaded.ok) throw new Error("unreachable");
  const listen = loaded.config.listen;
  const listener = await startListener({
    listener: listen, tls: await loadTlsMaterial(listen), maxRequestBodySize: 1024,
    fetch: (_request, info: ConnectionInfo) => Response.json(info),
  });
  check(`listener started (backend ${listener.backend})`, listener.port > 0);
  const withCert = await openConnection(listener.port, { cert: alice.cert, key: alice.key });
  const info = JSON.parse((await withCert.request("GET", "/")).body) as ConnectionInfo;
  const identity = info.peerCertificate && principalAttributesFromCertificate(info.peerCertificate, listen.certificateMapping);
  check("handler sees the client certificate", identity?.ok === true && identity.sub === "spiffe://example.org/alice");
  const anonymous = await openConnection(listener.port);
  check("client without certificate gets peerCertificate null", (JSON.parse((await anonymous.request("GET", "/")).body) as ConnectionInfo).peerCertificate === null);
  const refused = await handshake(listener.port, { maxVersion: "TLSv1.1", minVersion: "TLSv1" }).then(() => false, () => true);
  check("TLS 1.1 refused", refused);
  await listener.reloadCertificates({ ...(await loadTlsMaterial(listen)), default: { cert: rotated.cert, key: rotated.key } });
  check("rotation: new connection sees the new certificate", (await handshake(listener.port)).cn === "rotated.test");
  check("rotation: open connection keeps working", (await withCert.request("GET", "/")).status === 200);
  withCert.close();
  anonymous.close();
  await listener.stop({ graceful: true, deadlineMs: 2000 });
  check("stopped", true);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
