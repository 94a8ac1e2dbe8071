// A tiny upstream for the proxy benchmark: a fixed small answer, as fast as Bun serves; the body of
// a request other than GET or HEAD is read first. Prints `listening <port>` once ready.
// Usage: bun bench/proxy/upstream.ts [port] [--tls CERT_FILE KEY_FILE]
import { readFileSync } from "node:fs";

const body = JSON.stringify({ ok: true, service: "bench-upstream" });
const tlsAt = process.argv.indexOf("--tls");
const answer = () => new Response(body, { headers: { "content-type": "application/json" } });
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  tls: tlsAt < 0 ? undefined : { cert: readFileSync(process.argv[tlsAt + 1]!, "utf8"), key: readFileSync(process.argv[tlsAt + 2]!, "utf8") },
  fetch: (request) => (request.method === "GET" || request.method === "HEAD" ? answer() : request.arrayBuffer().then(answer)),
});
console.log(`listening ${server.port}`);
