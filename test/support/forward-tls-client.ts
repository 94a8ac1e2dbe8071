// Child process of src/http/forward-http1-tls.test.ts: forwards requests to the HTTPS upstreams
// named in argv[2] (JSON) with each client, and prints one JSON line per attempt. It runs as its
// own process because the CA the test made must be trusted the way an operator trusts one,
// through NODE_EXTRA_CA_CERTS, which the runtime reads only at start (or through the upstream's `ca`).
import { forwardToUpstream } from "../../src/http/forward.ts";
import { existingHttp1Pool, http1PoolKey } from "../../src/http/forward-http1.ts";
import { readFileSync } from "node:fs";

/**
 * `ca`: a PEM file set as the upstream's `ca` (what the config reads into `caPem`); `serverName`:
 * its `server_name`; `cert` and `key`: its client certificate files.
 */
interface Case { name: string; url: string; method: string; bodyBytes: number; streamed?: boolean; ca?: string; serverName?: string; cert?: string; key?: string }
const cases = JSON.parse(process.argv[2]!) as Case[];

function payload(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(size).map((_, i) => (i * 13 + 5) & 0xff);
}

for (const c of cases) {
  for (const client of ["pool", "fetch"] as const) {
    const bytes = payload(c.bodyBytes);
    let body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null = null;
    if (c.bodyBytes > 0) {
      body = c.streamed
        ? new ReadableStream<Uint8Array>({ start(controller) { for (let at = 0; at < bytes.byteLength; at += 100_000) controller.enqueue(bytes.subarray(at, at + 100_000)); controller.close(); } })
        : bytes;
    }
    const headers: Record<string, string> = c.bodyBytes > 0 && !c.streamed ? { "content-length": String(c.bodyBytes) } : {};
    const request = new Request("https://gw.test/echo", { method: c.method, body, headers, duplex: "half" } as RequestInit);
    const upstream = { name: c.name, url: c.url, timeoutMs: 10_000, connectTimeoutMs: 5_000, client, caFile: c.ca ?? null, caPem: c.ca ? readFileSync(c.ca, "utf8") : null, serverName: c.serverName ?? null,
      clientCertFile: c.cert ?? null, clientKeyFile: c.key ?? null, clientCertPem: c.cert ? readFileSync(c.cert, "utf8") : null, clientKeyPem: c.key ? readFileSync(c.key, "utf8") : null };
    const response = await forwardToUpstream(request, {
      upstream, path: "/echo", query: "", requestId: "req-tls", clientIp: "127.0.0.1", host: "gw.test", maxBodyBytes: 16 << 20, client,
    });
    const text = await response.text();
    const code = response.headers.get("content-type")?.includes("problem") ? (JSON.parse(text) as { code: string }).code : null;
    const pool = existingHttp1Pool(http1PoolKey(new URL(c.url).origin, c.ca, c.serverName, c.cert));
    console.log(JSON.stringify({
      name: c.name, client, status: response.status, code, text: code === null ? text : "",
      expected: `${c.method} ${c.bodyBytes} ${Bun.hash(bytes).toString(16)}`,
      poolOpen: pool?.openConnections ?? 0,
    }));
  }
}
process.exit(0);
