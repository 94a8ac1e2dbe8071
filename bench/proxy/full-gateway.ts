// The FULL gateway for the proxy benchmark: `startGateway` exactly as `gateway serve` runs it —
// TLS listener, JWT verification (ES256, real key; the verified token is cached after the first
// request), the shipped policy compiled, the SQLite duty ledger, the hash-chained audit log with
// `fsync = "batch"`, and a signed identity token passed upstream. Every upstream points at
// `--upstream`. Files live in a temp directory that is removed on SIGTERM/SIGINT.
//
// Prints `token <jwt>` (a developer with MFA, valid 50 minutes) and then `listening <port>`.
// On SIGTERM it stops, prints `audit <records written> <write calls>` and exits.
// Usage: bun bench/proxy/full-gateway.ts --upstream http://127.0.0.1:PORT [--port 0] [--no-audit]
//        [--fsync always|batch|off] (default batch) [--client fetch|pool] (upstreams' `client`; default: the config default)
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../../src/config/mod.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { startGateway } from "../../src/gateway/serve.ts";
import { createTestIssuer, SHIPPED_POLICIES, TEST_AUDIENCE, TEST_ISSUER } from "../../test/support/harness.ts";
import { flag } from "./lib.ts";

const upstreamUrl = flag("upstream", "http://127.0.0.1:1");
const auditDisabled = process.argv.includes("--no-audit");
const fsync = flag("fsync", "batch");
// Unset: the upstreams' default (`DEFAULTS.upstream.client`), as `gateway serve` runs it.
const clientFlag = flag("client", "");
if (clientFlag !== "" && clientFlag !== "fetch" && clientFlag !== "pool") throw new Error(`--client must be fetch or pool, not \`${clientFlag}\``);
const client = clientFlag === "" ? undefined : clientFlag;
if (fsync !== "always" && fsync !== "batch" && fsync !== "off") throw new Error(`--fsync must be always, batch or off, not \`${fsync}\``);
const dir = mkdtempSync(join(tmpdir(), "dutygate-bench-"));
cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
const issuer = await createTestIssuer(dir);
const base = defaultConfig({ cwd: dir });
const listen = { host: "127.0.0.1", port: Number(flag("port", "0")), certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false, certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2" as const };
const config: GatewayConfig = {
  ...base,
  demo: false,
  listen,
  admin: null,
  issuers: [{ ...base.issuers[0]!, name: "bench", issuer: TEST_ISSUER, audience: [TEST_AUDIENCE], jwksFile: issuer.jwksFile, algorithms: ["ES256"] }],
  upstreams: Object.fromEntries(["changes", "deploy", "logs", "admin"].map((name) => [name, { name, url: upstreamUrl, timeoutMs: 10_000, connectTimeoutMs: 2_000, client }])),
  policy: { ...base.policy, dir: join(dir, "policies"), watch: false },
  audit: { ...base.audit, dir: join(dir, "audit"), fsync },
  ledger: { ...base.ledger, path: join(dir, ".state", "ledger.sqlite") },
  log: { level: "error" },
};

const gw = await startGateway(config, { log: createLogger("error"), auditDisabled });
const token = await issuer.token({ sub: "bench-dev", roles: ["developer"], mfa: true, team: "core" }, { ttlSeconds: 3000 });
console.log(`token ${token}`);
console.log(`listening ${gw.operational.port}`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const stats = gw.audit?.stats();
  await gw.stop({ drainMs: 0, deadlineMs: 2000 }).catch(() => {});
  console.log(`audit ${stats?.recordsWritten ?? 0} ${stats?.writes ?? 0}`);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
