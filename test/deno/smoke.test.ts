// Deno parity: the same source, run by Deno. `deno test` cannot import bun:test, so this suite
// uses node:test and node:assert. Real parts only: the shipped policies, a real ES256 issuer
// (JWKS file), a real upstream (node:http on loopback), real TLS (self-signed, trusted by pinning).
//
//   node_modules/.bin/deno task test:deno
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { memoryIo } from "../../src/cli/io.ts";
import { loadConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/serve.ts";
import { main } from "../../src/cli/mod.ts";

interface DenoFetchApi {
  createHttpClient(options: { caCerts: string[] }): { close(): void };
  version: { deno: string };
}
const deno = (globalThis as unknown as { Deno: DenoFetchApi }).Deno;
const POLICIES = join(import.meta.dirname!, "..", "..", "policies");
const ISSUER = "https://idp.deno.test";

test("runs under Deno, not Bun", () => {
  assert.equal(typeof (globalThis as { Bun?: unknown }).Bun, "undefined");
  assert.match(deno.version.deno, /^\d+\.\d+/);
});

test("gateway check policies: exit 0, every policy test passes", async () => {
  const io = memoryIo();
  const code = await main(["check", POLICIES], io);
  assert.equal(code, 0, io.text());
  assert.match(io.text(), /0 errors/);
  assert.match(io.text(), /policy tests: \d+ passed, 0 failed/);
});

test("gateway check: a type error exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-deno-check-"));
  try {
    for (const name of ["base.duty", "logs.duty"]) writeFileSync(join(dir, name), readFileSync(join(POLICIES, name), "utf8"));
    writeFileSync(join(dir, "extra.duty"), "grant auditor read_logz\n");
    const io = memoryIo();
    assert.equal(await main(["check", dir], io), 1);
    assert.match(io.text(), /read_logz/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("gateway serve with workers = 2 is refused under Deno: WORKERS_UNSUPPORTED, exit 6, before anything starts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dutygate-deno-workers-"));
  try {
    const config = join(dir, "gateway.toml");
    writeFileSync(config, [
      `state_dir = ${JSON.stringify(join(dir, "state"))}`,
      "[listen]", `address = "127.0.0.1:0"`, "workers = 2",
      "[policy]", `dir = ${JSON.stringify(POLICIES)}`, "require_signature = false", "watch = false",
      "[audit]", `dir = ${JSON.stringify(join(dir, "audit"))}`,
    ].join("\n") + "\n");
    const io = memoryIo();
    assert.equal(await main(["serve", "--config", config], io), 6, io.text());
    assert.match(io.text(), /error\[WORKERS_UNSUPPORTED\]/);
    assert.doesNotMatch(io.text(), /    at /);
    // Refused before the state a supervisor prepares: no state directory, no audit directory.
    assert.deepEqual(readdirSync(dir), ["gateway.toml"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// gateway serve (startGateway) under Deno. Flat tests with file-level hooks, so `deno test` counts
// each check once (a describe would add a container to the count).
let dir: string;
let gateway: RunningGateway;
let upstream: Server;
const received: string[] = [];
let token: (claims: { sub: string; roles: string[]; mfa: boolean }) => Promise<string>;
let client: { close(): void };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "dutygate-deno-"));
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  writeFileSync(join(dir, "issuer.jwks"), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "deno-1", alg: "ES256", use: "sig" }] }));
  token = ({ sub, ...claims }) =>
    new SignJWT({ team: "core", ...claims }).setProtectedHeader({ alg: "ES256", kid: "deno-1" })
      .setIssuer(ISSUER).setAudience("dutygate").setSubject(sub).setIssuedAt().setExpirationTime("5m").sign(privateKey);
  upstream = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const port = (upstream.address() as { port: number }).port;
  const upstreams = ["changes", "deploy", "logs", "admin"].map((u) => `[upstreams.${u}]\nurl = "http://127.0.0.1:${port}"\n`).join("\n");
  writeFileSync(join(dir, "gateway.toml"), `state_dir = "./state"
[listen]
address = "127.0.0.1:0"
[issuers.test]
issuer = "${ISSUER}"
audience = "dutygate"
jwks_file = "issuer.jwks"
algorithms = ["ES256"]
[issuers.test.claims]
roles = "roles"
mfa = "mfa"
team = "team"
${upstreams}
[policy]
dir = "${POLICIES}"
require_signature = false
watch = false
[audit]
dir = "./audit"
`);
  const loaded = loadConfig(join(dir, "gateway.toml"), { cwd: dir });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
  gateway = await startGateway(loaded.config, { log: createLogger("error") });
  client = deno.createHttpClient({ caCerts: [readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8")] });
});
after(async () => {
  client?.close();
  await gateway?.stop({ drainMs: 0 });
  await new Promise((resolve) => upstream?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const post = async (path: string, bearer: string) =>
  fetch(gateway.operational.url + path, { method: "POST", headers: { authorization: `Bearer ${bearer}` }, client } as RequestInit);

test("config: an upstream's `ca`, `server_name` and client `cert` are refused under Deno, whose fetch can only add a CA to its roots and has no SNI name", () => {
  const file = join(dir, "upstream-ca.toml");
  const ca = join(dir, "state", "tls", "listen", "cert.pem");
  writeFileSync(file, `[policy]\ndir = ${JSON.stringify(POLICIES)}\nrequire_signature = false\n[upstreams.internal]\nurl = "https://127.0.0.1:1"\nca = ${JSON.stringify(ca)}\nserver_name = "internal.example"\ncert = ${JSON.stringify(ca)}\nkey = ${JSON.stringify(join(dir, "state", "tls", "listen", "key.pem"))}\n`);
  const loaded = loadConfig(file, { cwd: dir });
  assert.equal(loaded.ok, false);
  assert.deepEqual(!loaded.ok && loaded.errors.map((e) => [e.code, e.path, e.line]), [
    ["CONFIG_UNSUPPORTED_RUNTIME", "upstreams.internal.ca", 6], ["CONFIG_UNSUPPORTED_RUNTIME", "upstreams.internal.server_name", 7],
    ["CONFIG_UNSUPPORTED_RUNTIME", "upstreams.internal.cert", 8],
  ]);
});

test("serve: listens on the node:http2 backend over TLS", () => {
  assert.equal(gateway.operational.backend, "node");
  assert.match(gateway.operational.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test("serve allowed: a developer submits a change, forwarded upstream", async () => {
  const res = await post("/changes/7/submit", await token({ sub: "alice", roles: ["developer"], mfa: true }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  assert.equal(received.at(-1), "POST /changes/7/submit");
});

test("serve denied: a developer may not approve (DENY_NO_GRANT), never forwarded", async () => {
  const before = received.length;
  const res = await post("/changes/7/approve", await token({ sub: "alice", roles: ["developer"], mfa: true }));
  assert.equal(res.status, 403);
  assert.equal(((await res.json()) as { code: string }).code, "DENY_NO_GRANT");
  assert.equal(received.length, before);
});

test("serve denied: the submitter may not approve their own change (ledger on node:sqlite)", async () => {
  const res = await post("/changes/7/approve", await token({ sub: "alice", roles: ["reviewer"], mfa: false }));
  assert.equal(res.status, 403);
  assert.equal(((await res.json()) as { code: string }).code, "DENY_SOD_HISTORY");
});
