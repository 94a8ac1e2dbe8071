// A minimal TLS gateway for the proxy benchmark: normalise the request-target, mint a request
// id and a (cached) identity token, and forwardToUpstream. `--mode answer` skips the proxying
// and answers itself, which isolates the cost of TLS and the server from the cost of the hop.
// Prints `listening <port>` once ready.
// `--client pool` forwards over the keep-alive HTTP/1.1 pool instead of fetch (the default).
// `--mode answer-later` answers itself one event-loop turn later (what an awaited upstream costs the server side).
// Usage: bun bench/proxy/gateway.ts --upstream http://127.0.0.1:PORT [--mode forward|answer|answer-later] [--client fetch|pool]
import { generateKeyPair } from "jose";
import { generate } from "selfsigned";
import {
  createIdentityTokenSigner, forwardToUpstream, normalizeRequestPath, problemResponse, requestIdFor, requestTargetOf,
} from "../../src/http/mod.ts";
import { flag } from "./lib.ts";

const mode = flag("mode", "forward");
const client = flag("client", "fetch") === "pool" ? "pool" : "fetch";
const upstream = { name: "bench", url: flag("upstream", "http://127.0.0.1:1"), timeoutMs: 10_000, connectTimeoutMs: 2_000 };
const pems = await generate([{ name: "commonName", value: "localhost" }], {
  keyType: "ec", algorithm: "sha256",
  extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
});
const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
const signer = await createIdentityTokenSigner({ privateKey, kid: "bench", alg: "EdDSA", issuer: "https://gateway.bench", ttlMs: 60_000 });
const principal = { sub: "bench-user", roles: new Set(["developer"]), mfa: true, team: "core" };
const answer = JSON.stringify({ ok: true, service: "bench-gateway" });

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(flag("port", "0")),
  tls: { cert: pems.cert, key: pems.private },
  async fetch(request, srv) {
    const requestId = requestIdFor(request, { trustIncoming: false });
    const target = normalizeRequestPath(requestTargetOf(request));
    if (!target.ok) return problemResponse({ status: target.status, code: target.code, detail: target.message, requestId });
    if (mode === "answer-later") await new Promise((resolve) => setImmediate(resolve));
    if (mode === "answer" || mode === "answer-later") return new Response(answer, { headers: { "content-type": "application/json", "x-request-id": requestId } });
    return forwardToUpstream(request, {
      upstream, path: target.path, query: target.query, requestId,
      clientIp: srv.requestIP(request)?.address ?? "", host: request.headers.get("host") ?? "",
      identityHeader: "x-dutygate-identity", identityToken: await signer.sign(principal, upstream.name, { duty: "bench" }),
      stripHeaders: [], maxBodyBytes: 10 << 20, client,
    });
  },
});
console.log(`listening ${server.port}`);
