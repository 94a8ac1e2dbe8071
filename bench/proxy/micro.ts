// Per-request CPU cost of the HTTP layer's pieces, without sockets: where a request's time goes
// before and after the upstream hop. Usage: node_modules/.bin/bun bench/proxy/micro.ts
import { bench, do_not_optimize, group, run } from "mitata";
import { generateKeyPair } from "jose";
import { createIdentityTokenSigner, normalizeRequestPath, requestIdFor, stripHopByHopHeaders, traceContextFor } from "../../src/http/mod.ts";

const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
const cached = await createIdentityTokenSigner({ privateKey, kid: "k", alg: "EdDSA", issuer: "gw", ttlMs: 60_000 });
const uncached = await createIdentityTokenSigner({ privateKey, kid: "k", alg: "EdDSA", issuer: "gw", ttlMs: 60_000, perRequestTokens: true });
const principal = { sub: "alice", roles: new Set(["developer", "reviewer"]), mfa: true, team: "core" };
const request = new Request("https://gw.example/changes/42/approve", {
  headers: { "user-agent": "bench", accept: "application/json", authorization: "Bearer x.y.z", "x-request-id": "abc", connection: "keep-alive" },
});

group("normalizeRequestPath", () => {
  bench("canonical /changes/42/approve?x=1", () => do_not_optimize(normalizeRequestPath("/changes/42/approve?x=1")));
  bench("dot segments and escapes", () => do_not_optimize(normalizeRequestPath("/a/%2e%2e//changes/%34%32/approve")));
  bench("unicode", () => do_not_optimize(normalizeRequestPath("/files/caf%C3%A9/日本")));
});
group("per-request pieces", () => {
  bench("requestIdFor (fresh UUID)", () => do_not_optimize(requestIdFor(request, { trustIncoming: false })));
  bench("traceContextFor (new trace)", () => do_not_optimize(traceContextFor(request.headers)));
  bench("copy headers + strip hop-by-hop", () => { const h = new Headers(request.headers); stripHopByHopHeaders(h); do_not_optimize(h); });
  bench("identity token, cached", async () => do_not_optimize(await cached.sign(principal, "changes", { duty: "approve_change" })));
  bench("identity token, signed per request (EdDSA)", async () => do_not_optimize(await uncached.sign(principal, "changes", { requestId: "r" })));
});

// The runtime objects forwardToUpstream makes per request: what they cost next to the hop itself.
const noop = () => {};
group("runtime primitives per forwarded request", () => {
  bench("AbortController + listener add/remove", () => { const a = new AbortController(); a.signal.addEventListener("abort", noop, { once: true }); a.signal.removeEventListener("abort", noop); });
  bench("request.signal listener add/remove", () => { request.signal.addEventListener("abort", noop, { once: true }); request.signal.removeEventListener("abort", noop); });
  bench("setTimeout + clearTimeout", () => clearTimeout(setTimeout(noop, 1000)));
  bench("new Response(bytes, headers)", () => do_not_optimize(new Response(new Uint8Array(38), { status: 200, headers: new Headers({ "content-type": "application/json", "x-request-id": "r" }) })));
  bench("new URL(upstream target)", () => do_not_optimize(new URL("http://127.0.0.1:9000/changes/42")));
});

await run();
