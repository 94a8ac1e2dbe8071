// Measures the two listener backends on this machine:
//   node_modules/.bin/bun bench/tls-listeners.bench.ts
// Requests/s over keep-alive HTTP/1.1 connections (N concurrent, sequential requests each),
// new TLS handshakes/s, and how long reloadCertificates takes. Prints one table.
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { startListener, type ListenerBackend, type TlsMaterial } from "../src/tls/mod.ts";
import { handshake, openConnection } from "../test/support/http1-client.ts";
import { createCa, issueCertificate } from "../test/support/pki.ts";

const dir = mkdtempSync(join(tmpdir(), "dutygate-measure-"));
const ca = await createCa(dir, "CA");
const one = await issueCertificate(dir, ca, { commonName: "one.test" });
const two = await issueCertificate(dir, ca, { commonName: "two.test" });
const tls = (c: typeof one): TlsMaterial => ({ default: { cert: c.cert, key: c.key }, sni: [] });
const CONNECTIONS = 8, REQUESTS = 500, HANDSHAKES = 200, ROTATIONS = 20;

const rows: string[][] = [];
for (const backend of ["bun", "node"] as ListenerBackend[]) {
  const listener = await startListener({
    listener: { host: "127.0.0.1", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false, certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2" },
    tls: tls(one), backend, maxRequestBodySize: 1024, fetch: () => new Response("ok"),
  });
  const connections = await Promise.all(Array.from({ length: CONNECTIONS }, () => openConnection(listener.port)));
  for (const c of connections) await c.request("GET", "/warmup");
  let t0 = performance.now();
  await Promise.all(connections.map(async (c) => { for (let i = 0; i < REQUESTS; i++) await c.request("GET", "/"); }));
  const rps = (CONNECTIONS * REQUESTS) / ((performance.now() - t0) / 1000);
  for (const c of connections) c.close();
  t0 = performance.now();
  for (let i = 0; i < HANDSHAKES; i++) await handshake(listener.port);
  const hps = HANDSHAKES / ((performance.now() - t0) / 1000);
  const rotationMs: number[] = [];
  for (let i = 0; i < ROTATIONS; i++) {
    const start = performance.now();
    await listener.reloadCertificates(tls(i % 2 === 0 ? two : one));
    rotationMs.push(performance.now() - start);
  }
  rotationMs.sort((a, b) => a - b);
  await listener.stop({ graceful: true, deadlineMs: 5000 });
  rows.push([backend, rps.toFixed(0), hps.toFixed(0), rotationMs[Math.floor(ROTATIONS / 2)]!.toFixed(2), rotationMs[ROTATIONS - 1]!.toFixed(2)]);
}
rmSync(dir, { recursive: true, force: true });
const runtime = typeof (globalThis as { Bun?: { version: string } }).Bun !== "undefined" ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}` : `node-compatible ${process.version}`;
console.log(`machine: ${cpus().length}× ${cpus()[0]?.model ?? "cpu"}; runtime: ${runtime}; client: node:tls in the same process`);
console.log(`${CONNECTIONS} keep-alive connections × ${REQUESTS} GETs; ${HANDSHAKES} sequential handshakes; ${ROTATIONS} rotations`);
console.log(["backend", "req/s", "handshakes/s", "rotation p50 ms", "rotation max ms"].join("\t"));
for (const row of rows) console.log(row.join("\t"));
console.log(`ratio bun/node req/s: ${(Number(rows[0]![1]) / Number(rows[1]![1])).toFixed(2)}`);
