// A tiny upstream for the proxy benchmark: a fixed small answer, as fast as Bun serves.
// Prints `listening <port>` once ready. Usage: bun bench/proxy/upstream.ts [port]
const body = JSON.stringify({ ok: true, service: "bench-upstream" });
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch: () => new Response(body, { headers: { "content-type": "application/json" } }),
});
console.log(`listening ${server.port}`);
