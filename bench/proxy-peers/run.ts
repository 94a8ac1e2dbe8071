// dutygate against the reverse proxies an operator would otherwise put in front of the same
// upstream, side by side in one run:
//   nginx        TLS reverse proxy with an upstream keep-alive pool (does no access control)
//   haproxy-jwt  HAProxy with `jwt_verify` on the same ES256 token, claim checks and a path ACL:
//                the closest off-the-shelf equivalent of what dutygate does before forwarding
//   caddy        TLS reverse proxy with a keep-alive pool (does no access control)
//   dutygate     `gateway serve` as an operator runs it (CLI, config file): TLS, JWT (ES256,
//                verified once then cached), compiled policy, duty ledger, audit log (fsync batch),
//                a signed identity token; and the same with `[listen] workers = 2`
//
//   npm run bench:proxy-peers -- [--rounds 3] [--duration 10] [--connections 50] [--threads 1]
//                                [--rate 1000] [--rate-seconds 8] [--rate-rounds 2] [--no-workers] [--no-pin]
//                                [--before DIR]   (another checkout, e.g. an earlier commit, run as dutygate-before)
//
// Installs wrk, nginx, haproxy and caddy from Debian with apt-get when missing (root only); a
// proxy that cannot be installed is reported and left out. Certificates (self-signed, EC P-256),
// the issuer's key and configs go to a temp dir; every process runs in its own process group and
// is stopped by its PID.
// Same CPU budget for everyone: wrk on CPU 0, upstream + proxy on CPU 1; nginx runs
// `worker_processes 1`, HAProxy `nbthread 1`; Caddy's Go runtime sees one CPU through the affinity
// mask (GOMAXPROCS=1). `workers = 2` puts both workers on that one core too: the row shows what
// the process model costs per request, not a second core.
// Closed loop (wrk): rounds interleave every setup; ratios are taken per round and reported as the
// median with the min–max over rounds. Open loop (rate-client.ts): each proxy interleaved with the
// direct upstream on one schedule at `--rate` req/s; the added p99 is the proxy's p99 minus
// direct's in the same run.
import { createPublicKey, type JsonWebKey } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import { createTestIssuer, REPO_ROOT, SHIPPED_POLICIES, TEST_AUDIENCE, TEST_ISSUER } from "../../test/support/harness.ts";
import {
  bounded, cpuBudget, describeMachine, ensureInstalled, flag, fmt, loadShapeFromArgs, median, runFixedRate, runWrk,
  startProcess, stopProcess, summarise, which, type FixedRateResult, type LoadResult, type LoadShape, type Started,
} from "../proxy/lib.ts";

const args = process.argv.slice(2);
const shape: LoadShape = loadShapeFromArgs();
const rounds = bounded(flag("rounds", "3"), 1, 10);
const rate = bounded(flag("rate", "1000"), 0, 20_000);
const rateSeconds = bounded(flag("rate-seconds", "8"), 2, 60);
const rateRounds = bounded(flag("rate-rounds", "2"), 1, 5);
const withWorkers = !args.includes("--no-workers");
// Another checkout of dutygate (its root, with node_modules), run beside this one as
// `dutygate-before`: before/after ratios measured in the same rounds.
const before = flag("before", "");
const path = "/changes/42";
const budget = cpuBudget(!args.includes("--no-pin"));

if (!ensureInstalled("wrk", "wrk")) {
  console.error("no load generator: install wrk (`apt-get install -y wrk`)");
  process.exit(2);
}
const notes: string[] = [];
const have = {
  nginx: ensureInstalled("nginx", "nginx"),
  haproxy: ensureInstalled("haproxy", "haproxy"),
  caddy: ensureInstalled("caddy", "caddy"),
};
for (const [name, ok] of Object.entries(have)) if (!ok) notes.push(`${name}: not installed and could not be installed with apt-get: left out`);

/** A free loopback port (bound and released; the proxy binds it right after). */
function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

function version(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "?";
}

interface Target {
  name: string;
  url: string;
  pid: number;
  /** Does access control: must refuse a token whose signature does not verify. */
  checksToken: boolean;
  /** Processes that serve (each warms its own JIT, caches and pool): the warm-up is this many times as long. */
  servers: number;
}

const dir = mkdtempSync(join(tmpdir(), "dutygate-peers-"));
const started: Started[] = [];
const targets: Target[] = [];
const results = new Map<string, LoadResult[]>();
const openLoop = new Map<string, { direct: FixedRateResult; proxy: FixedRateResult }[]>();
let upstreamPid = 0;
let token = "";
const loadBefore = loadavg();
process.on("SIGINT", () => void (async () => {
  for (const s of started.reverse()) await stopProcess(s);
  rmSync(dir, { recursive: true, force: true });
  process.exit(130);
})());

async function get(url: string, bearer: string, requestPath = path): Promise<number> {
  const response = await fetch(new URL(requestPath, url), { headers: { authorization: `Bearer ${bearer}` }, tls: { rejectUnauthorized: false } } as RequestInit);
  await response.arrayBuffer();
  return response.status;
}

/** `gateway serve` with `workers` processes, from a config file as an operator writes it. */
async function startGateway(workers: number, upstreamUrl: string, jwksFile: string, root = REPO_ROOT, name = workers === 1 ? "dutygate" : `dutygate-w${workers}`): Promise<Target> {
  const run = join(dir, name);
  mkdirSync(run);
  const q = (s: string) => JSON.stringify(s);
  const config = join(run, "gateway.toml");
  writeFileSync(config, [
    `state_dir = ${q(join(run, ".state"))}`,
    "[listen]", `address = "127.0.0.1:0"`, `workers = ${workers}`,
    "[issuers.bench]", `issuer = ${q(TEST_ISSUER)}`, `audience = ${q(TEST_AUDIENCE)}`, `jwks_file = ${q(jwksFile)}`, `algorithms = ["ES256"]`,
    ...["changes", "deploy", "logs", "admin"].flatMap((name) => [`[upstreams.${name}]`, `url = ${q(upstreamUrl)}`]),
    "[policy]", `dir = ${q(join(dir, "policies"))}`, "require_signature = false", "watch = false",
    "[audit]", `dir = ${q(join(run, "audit"))}`, `fsync = "batch"`,
    "[log]", `level = "error"`,
    "[shutdown]", `drain = "0s"`,
  ].join("\n") + "\n");
  const gateway = await startProcess(name, [process.execPath, join(root, "src/main.ts"), "serve", "--config", config], { cpu: budget?.serverCpu, ready: /dutygate listening on https:\/\//, timeoutMs: 60_000 });
  started.push(gateway);
  const base = /dutygate listening on (https:\/\/[^\s/]+)/.exec(gateway.lines.join("\n"))![1]!;
  return { name, url: base + path, pid: gateway.proc.pid, checksToken: true, servers: workers };
}

try {
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec", algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
  });
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });

  // One issuer and one token for every setup: dutygate reads the issuer's JWKS, HAProxy the same
  // public key as PEM; nginx and Caddy receive the header too and pass it on.
  const issuer = await createTestIssuer(dir);
  const jwk = (JSON.parse(readFileSync(issuer.jwksFile, "utf8")) as { keys: JsonWebKey[] }).keys[0]!;
  const publicKeyFile = join(dir, "issuer-public.pem");
  writeFileSync(publicKeyFile, createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }) as string);
  token = await issuer.token({ sub: "bench-dev", roles: ["developer"], mfa: true, team: "core" }, { ttlSeconds: 3000 });
  // The same token with its signature's last bytes changed: a verifying proxy must refuse it.
  const forged = token.slice(0, -6) + (token.endsWith("AAAAAA") ? "BBBBBB" : "AAAAAA");
  cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });

  const upstream = await startProcess("upstream", [process.execPath, join(REPO_ROOT, "bench/proxy/upstream.ts")], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
  started.push(upstream);
  upstreamPid = upstream.proc.pid;
  const upstreamPort = Number(/^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]);
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  targets.push({ name: "direct", url: `${upstreamUrl}${path}`, pid: upstream.proc.pid, checksToken: false, servers: 1 });

  targets.push(await startGateway(1, upstreamUrl, issuer.jwksFile));

  if (have.nginx) {
    const port = freePort();
    const nginxDir = join(dir, "nginx");
    mkdirSync(join(nginxDir, "tmp"), { recursive: true });
    // What a careful operator writes for a TLS reverse proxy with an upstream keep-alive pool.
    writeFileSync(join(nginxDir, "nginx.conf"), `
worker_processes 1;
daemon off;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${nginxDir}/tmp/body;
  proxy_temp_path ${nginxDir}/tmp/proxy;
  fastcgi_temp_path ${nginxDir}/tmp/fastcgi;
  uwsgi_temp_path ${nginxDir}/tmp/uwsgi;
  scgi_temp_path ${nginxDir}/tmp/scgi;
  keepalive_requests 1000000;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certFile};
    ssl_certificate_key ${keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`);
    const nginx = await startProcess("nginx", [which("nginx")!, "-p", nginxDir, "-c", join(nginxDir, "nginx.conf"), "-e", join(nginxDir, "error.log")], { cpu: budget?.serverCpu, port });
    started.push(nginx);
    targets.push({ name: "nginx", url: `https://127.0.0.1:${port}${path}`, pid: nginx.proc.pid, checksToken: false, servers: 1 });
    notes.push(`nginx: ${version([which("nginx")!, "-v"])}; TLS proxy only; worker_processes 1, upstream keepalive 64, proxy_http_version 1.1, Connection "", access_log off`);
  }

  if (have.haproxy) {
    const port = freePort();
    const haproxyDir = join(dir, "haproxy");
    mkdirSync(haproxyDir, { recursive: true });
    const crtFile = join(haproxyDir, "crt.pem");
    writeFileSync(crtFile, `${pems.cert.trim()}\n${pems.private.trim()}\n`, { mode: 0o600 });
    // HAProxy's documented JWT recipe: the bearer token's algorithm pinned, issuer, audience and
    // expiry checked, the signature verified against the issuer's public key (every request: HAProxy
    // has no verified-token cache), the role claim checked, and a path ACL; then the same
    // keep-alive forwarding as the others (connections reused across requests).
    writeFileSync(join(haproxyDir, "haproxy.cfg"), `
global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  option http-keep-alive
frontend edge
  bind 127.0.0.1:${port} ssl crt ${crtFile}
  http-request deny deny_status 401 unless { req.hdr(authorization) -m beg "Bearer " }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.role) var(txn.bearer),jwt_payload_query('$.roles[0]')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { var(txn.alg) -m str ES256 }
  http-request deny deny_status 401 unless { var(txn.iss) -m str ${TEST_ISSUER} }
  http-request deny deny_status 401 unless { var(txn.aud) -m str ${TEST_AUDIENCE} }
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"${publicKeyFile}") -m int 1 }
  acl changes_path path_reg ^/changes/[^/]+$
  acl developer var(txn.role) -m str developer
  http-request deny deny_status 403 unless METH_GET changes_path developer
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:${upstreamPort}
`);
    const haproxy = await startProcess("haproxy", [which("haproxy")!, "-db", "-f", join(haproxyDir, "haproxy.cfg")], { cpu: budget?.serverCpu, port });
    started.push(haproxy);
    targets.push({ name: "haproxy-jwt", url: `https://127.0.0.1:${port}${path}`, pid: haproxy.proc.pid, checksToken: true, servers: 1 });
    // The path ACL is live: a path outside it is refused with the valid token.
    const outside = await get(`https://127.0.0.1:${port}`, token, "/admin/users");
    if (outside !== 403) throw new Error(`haproxy-jwt answered ${outside} outside its path ACL (expected 403)`);
    notes.push(`haproxy: ${version([which("haproxy")!, "-v"])}; nbthread 1; jwt_verify ES256 against the issuer's public key (PEM) on every request, alg/iss/aud/exp/role checked, path ACL ^/changes/[^/]+$ for GET; http-reuse always, no log`);
  }

  if (have.caddy) {
    const port = freePort();
    const caddyDir = join(dir, "caddy");
    mkdirSync(caddyDir, { recursive: true });
    writeFileSync(join(caddyDir, "Caddyfile"), `
{
  admin off
  auto_https off
  storage file_system ${caddyDir}/data
}
https://127.0.0.1:${port} {
  tls ${certFile} ${keyFile}
  reverse_proxy 127.0.0.1:${upstreamPort} {
    transport http {
      keepalive 90s
      keepalive_idle_conns 64
      keepalive_idle_conns_per_host 64
    }
  }
}
`);
    const env = { HOME: caddyDir, XDG_DATA_HOME: join(caddyDir, "data"), XDG_CONFIG_HOME: join(caddyDir, "config") };
    const caddy = await startProcess("caddy", [which("caddy")!, "run", "--config", join(caddyDir, "Caddyfile"), "--adapter", "caddyfile"], { cpu: budget?.serverCpu, port, env });
    started.push(caddy);
    targets.push({ name: "caddy", url: `https://127.0.0.1:${port}${path}`, pid: caddy.proc.pid, checksToken: false, servers: 1 });
    notes.push(`caddy: ${version([which("caddy")!, "version"])}; TLS proxy only; reverse_proxy with transport http keepalive 90s, 64 idle connections, access log off (default)`);
  }

  if (withWorkers) targets.push(await startGateway(2, upstreamUrl, issuer.jwksFile));
  if (before !== "") {
    targets.push(await startGateway(1, upstreamUrl, issuer.jwksFile, before, "dutygate-before"));
    notes.push(`dutygate-before: \`gateway serve\` from ${before}, the same config`);
  }

  for (const t of targets) {
    const status = await get(t.url, token);
    if (status !== 200) throw new Error(`${t.name} answered ${status} on ${path}`);
    if (t.checksToken) {
      const refused = await get(t.url, forged);
      if (refused !== 401) throw new Error(`${t.name} answered ${refused} to a token with a bad signature (expected 401)`);
    }
  }

  const authorization = [`authorization: Bearer ${token}`];
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      await runWrk(t.url, authorization, shape.warmupS * t.servers, shape, budget);
      console.error(`round ${round}/${rounds}: ${t.name} (${shape.durationS} s) …`);
      const watch: Record<string, number> = t.name === "direct" ? { upstream: upstreamPid } : { proxy: t.pid, upstream: upstreamPid };
      results.set(t.name, [...(results.get(t.name) ?? []), await runWrk(t.url, authorization, shape.durationS, shape, budget, watch)]);
    }
  }

  if (rate > 0) {
    const direct = targets[0]!;
    for (let round = 1; round <= rateRounds; round++) {
      for (const t of targets.slice(1)) {
        await runFixedRate([direct.url, t.url], authorization, rate, 2, budget);
        console.error(`open loop ${round}/${rateRounds}: direct and ${t.name} interleaved at ${rate}/s each (${rateSeconds} s) …`);
        const [d, x] = await runFixedRate([direct.url, t.url], authorization, rate, rateSeconds, budget);
        openLoop.set(t.name, [...(openLoop.get(t.name) ?? []), { direct: d!, proxy: x! }]);
      }
    }
  }
} finally {
  for (const s of started.reverse()) await stopProcess(s, 30_000);
  rmSync(dir, { recursive: true, force: true });
}

const loadAfter = loadavg();
const range = (values: number[], digits = 2) => {
  const finite = values.filter(Number.isFinite);
  return finite.length < 2 ? "" : ` (${fmt(Math.min(...finite), digits)}–${fmt(Math.max(...finite), digits)})`;
};
console.log(`\n${describeMachine(shape, budget)}`);
console.log(`load average (1/5/15 min): ${loadBefore.map((l) => l.toFixed(2)).join(" ")} before, ${loadAfter.map((l) => l.toFixed(2)).join(" ")} after`);
console.log(`path GET ${path}, one ES256 token for every setup; ${rounds} interleaved round(s) of ${targets.map((t) => t.name).join(", ")}; medians over rounds, (min–max)\n`);
console.log("setup                  req/s (min–max)           p50 ms   p99 ms  proxy CPU µs/req (min–max)  upstream µs/req  errors");
for (const t of targets) {
  const runs = results.get(t.name) ?? [];
  const s = summarise({ name: t.name, runs });
  const cpu = t.name === "direct" ? "" : `${fmt(s.cpu.proxy ?? NaN, 1)}${range(runs.map((r) => r.cpuUsPerRequest.proxy ?? NaN), 1)}`;
  console.log(`${t.name.padEnd(16)} ${`${fmt(s.rps, 0)}${range(runs.map((r) => r.rps), 0)}`.padStart(25)} ${fmt(s.p50Ms).padStart(8)} ${fmt(s.p99Ms).padStart(8)} ${cpu.padStart(27)} ${fmt(s.cpu.upstream ?? NaN, 1).padStart(16)}  ${s.errors}`);
}

// Ratios per round (same moments of the machine), then the median and the spread over rounds.
console.log("\nratios per round, median (min–max over rounds):");
for (const ours of targets.filter((t) => t.name === "dutygate" || t.name === "dutygate-w2")) {
  const mine = results.get(ours.name) ?? [];
  for (const peer of ["nginx", "haproxy-jwt", "caddy", ...(ours.name === "dutygate" ? ["dutygate-before"] : [])]) {
    const theirs = results.get(peer);
    if (!theirs) continue;
    const rps = mine.map((r, i) => r.rps / theirs[i]!.rps);
    const cpu = mine.map((r, i) => (r.cpuUsPerRequest.proxy ?? NaN) / (theirs[i]!.cpuUsPerRequest.proxy ?? NaN));
    console.log(`  ${ours.name}/${peer}: req/s ×${fmt(median(rps))}${range(rps)}; proxy CPU per request ×${fmt(median(cpu))}${range(cpu)}`);
  }
}
const w2 = results.get("dutygate-w2");
const w1 = results.get("dutygate");
if (w1 && w2) {
  const rps = w2.map((r, i) => r.rps / w1[i]!.rps);
  const cpu = w2.map((r, i) => (r.cpuUsPerRequest.proxy ?? NaN) / (w1[i]!.cpuUsPerRequest.proxy ?? NaN));
  console.log(`  dutygate-w2/dutygate (both on one core): req/s ×${fmt(median(rps))}${range(rps)}; CPU per request ×${fmt(median(cpu))}${range(cpu)}`);
}
const gatewayRps = median(w1?.map((r, i) => r.rps / (results.get("nginx")?.[i]?.rps ?? NaN)) ?? []);
if (Number.isFinite(gatewayRps)) console.log(`goal: dutygate req/s per core ≥ nginx's: ${gatewayRps >= 1 ? "met" : `MISSED (×${fmt(gatewayRps)})`}`);

if (openLoop.size > 0) {
  console.log(`\nopen loop at ${rate} req/s (each setup interleaved with direct on one schedule, ${rateSeconds} s, ${rateRounds} round(s); medians (min–max))`);
  console.log("setup              direct p99 ms        p50 ms        p99 ms   added p50 ms   added p99 ms (min–max)   conns  errors");
  for (const [name, runs] of openLoop) {
    const addedP99 = runs.map((r) => r.proxy.p99Ms - r.direct.p99Ms);
    const addedP50 = runs.map((r) => r.proxy.p50Ms - r.direct.p50Ms);
    const errors = runs.reduce((a, r) => a + r.direct.errors + r.proxy.errors, 0);
    console.log(`${name.padEnd(16)} ${fmt(median(runs.map((r) => r.direct.p99Ms))).padStart(14)} ${fmt(median(runs.map((r) => r.proxy.p50Ms))).padStart(13)} ${fmt(median(runs.map((r) => r.proxy.p99Ms))).padStart(13)} ${fmt(median(addedP50)).padStart(14)} ${`${fmt(median(addedP99))}${range(addedP99)}`.padStart(24)} ${String(Math.max(...runs.map((r) => r.proxy.connections))).padStart(7)}  ${errors}`);
  }
}
for (const note of notes) console.log(note);
console.log(`dutygate: \`gateway serve\` (Bun ${Bun.version}) with the shipped policy, ES256 JWT, SQLite ledger, audit log (fsync batch, the default format), identity token; log level error`);
