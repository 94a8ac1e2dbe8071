// dutygate against the reverse proxies an operator would otherwise put in front of the same
// upstream: nginx and Caddy, each terminating TLS and keeping a keep-alive pool to the upstream.
//
//   npm run bench:proxy-peers -- [--rounds 3] [--duration 10] [--connections 50] [--threads 1] [--no-pin]
//
// Installs wrk, nginx and caddy from Debian with apt-get when missing (root only); a proxy that
// cannot be installed is reported and left out. Certificates (self-signed, EC P-256) and configs
// go to a temp dir; every process is started here, pinned, and stopped by its PID.
// Same CPU budget for everyone: wrk on CPU 0 (1 thread), upstream + proxy on CPU 1; nginx runs
// `worker_processes 1`; Caddy's Go runtime sees one CPU through the affinity mask (GOMAXPROCS=1).
// dutygate does its full work: TLS, JWT (ES256, cached), compiled policy, duty ledger, audit log
// (fsync batch) and a signed identity token; nginx and Caddy only terminate TLS and proxy.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import {
  cpuBudget, describeMachine, ensureInstalled, fmt, median, runWrk, startProcess, stopProcess, summarise, which,
  type LoadResult, type LoadShape, type Started, flag, bounded, loadShapeFromArgs,
} from "../proxy/lib.ts";

const here = import.meta.dir;
const args = process.argv.slice(2);
const shape: LoadShape = loadShapeFromArgs();
const rounds = bounded(flag("rounds", "3"), 1, 10);
const path = "/changes/42";
const budget = cpuBudget(!args.includes("--no-pin"));

if (!ensureInstalled("wrk", "wrk")) {
  console.error("no load generator: install wrk (`apt-get install -y wrk`)");
  process.exit(2);
}
const notes: string[] = [];
const haveNginx = ensureInstalled("nginx", "nginx");
const haveCaddy = ensureInstalled("caddy", "caddy");
if (!haveNginx) notes.push("nginx: not installed and could not be installed with apt-get: left out");
if (!haveCaddy) notes.push("caddy: not installed and could not be installed with apt-get: left out");

/** A free loopback port (bound and released; the proxy binds it right after). */
async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

function version(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "?";
}

const dir = mkdtempSync(join(tmpdir(), "dutygate-peers-"));
const started: Started[] = [];
const targets: { name: string; url: string; headers: string[]; pid: number }[] = [];
const results = new Map<string, LoadResult[]>();
let upstreamPid = 0;
process.on("SIGINT", () => void (async () => {
  for (const s of started.reverse()) await stopProcess(s);
  rmSync(dir, { recursive: true, force: true });
  process.exit(130);
})());

try {
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec", algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] }],
  });
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });

  const bun = process.execPath;
  const upstream = await startProcess("upstream", [bun, join(here, "../proxy/upstream.ts")], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
  started.push(upstream);
  upstreamPid = upstream.proc.pid;
  const upstreamPort = Number(/^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]);
  targets.push({ name: "direct", url: `http://127.0.0.1:${upstreamPort}${path}`, headers: [], pid: upstream.proc.pid });

  if (haveNginx) {
    const port = await freePort();
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
    targets.push({ name: "nginx", url: `https://127.0.0.1:${port}${path}`, headers: [], pid: nginx.proc.pid });
    notes.push(`nginx: ${version([which("nginx")!, "-v"])}; worker_processes 1, upstream keepalive 64, proxy_http_version 1.1, Connection "", access_log off`);
  }

  if (haveCaddy) {
    const port = await freePort();
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
    targets.push({ name: "caddy", url: `https://127.0.0.1:${port}${path}`, headers: [], pid: caddy.proc.pid });
    notes.push(`caddy: ${version([which("caddy")!, "version"])}; reverse_proxy with transport http keepalive 90s, 64 idle connections, access log off (default)`);
  }

  const gateway = await startProcess("dutygate", [bun, join(here, "../proxy/full-gateway.ts"), "--upstream", `http://127.0.0.1:${upstreamPort}`], { cpu: budget?.serverCpu, ready: /^listening \d+/ });
  started.push(gateway);
  const gatewayPort = Number(/^listening (\d+)/.exec(gateway.lines.find((l) => l.startsWith("listening"))!)![1]);
  const token = gateway.lines.find((l) => l.startsWith("token "))!.slice(6);
  targets.push({ name: "dutygate", url: `https://127.0.0.1:${gatewayPort}${path}`, headers: [`authorization: Bearer ${token}`], pid: gateway.proc.pid });

  for (const t of targets) {
    const headers = Object.fromEntries(t.headers.map((h) => [h.slice(0, h.indexOf(":")), h.slice(h.indexOf(":") + 1).trim()]));
    const response = await fetch(t.url, { headers, tls: { rejectUnauthorized: false } } as RequestInit);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${t.name} answered ${response.status} on ${path}`);
  }

  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      await runWrk(t.url, t.headers, shape.warmupS, shape, budget);
      console.error(`round ${round}/${rounds}: ${t.name} (${shape.durationS} s) …`);
      const watch: Record<string, number> = t.name === "direct" ? { upstream: upstreamPid } : { proxy: t.pid, upstream: upstreamPid };
      results.set(t.name, [...(results.get(t.name) ?? []), await runWrk(t.url, t.headers, shape.durationS, shape, budget, watch)]);
    }
  }
} finally {
  for (const s of started.reverse()) {
    await stopProcess(s);
    const line = s.lines.find((l) => l.startsWith("audit "));
    if (line) notes.push(`dutygate: ${line.split(" ")[1]} audit records written in ${line.split(" ")[2]} writes (decision + outcome per request)`);
  }
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\n${describeMachine(shape, budget)}\npath ${path}; ${rounds} interleaved round(s) of ${targets.map((t) => t.name).join(", ")}; medians over rounds\n`);
console.log("setup          req/s   p50 ms   p99 ms  proxy CPU µs/req  upstream CPU µs/req  errors");
const summary = new Map<string, ReturnType<typeof summarise>>();
for (const t of targets) {
  const s = summarise({ name: t.name, runs: results.get(t.name) ?? [] });
  summary.set(t.name, s);
  console.log(`${t.name.padEnd(10)} ${fmt(s.rps, 0).padStart(9)} ${fmt(s.p50Ms).padStart(8)} ${fmt(s.p99Ms).padStart(8)} ${(t.name === "direct" ? "" : fmt(s.cpu.proxy ?? NaN, 1)).padStart(17)} ${fmt(s.cpu.upstream ?? NaN, 1).padStart(20)}  ${s.errors}`);
}
const ours = results.get("dutygate") ?? [];
for (const peer of ["nginx", "caddy"]) {
  const theirs = results.get(peer);
  if (!theirs) continue;
  // Ratios per round (same conditions), then the median.
  const rpsRatio = median(ours.map((r, i) => r.rps / theirs[i]!.rps));
  const cpuRatio = median(ours.map((r, i) => (r.cpuUsPerRequest.proxy ?? NaN) / (theirs[i]!.cpuUsPerRequest.proxy ?? NaN)));
  const goal = peer === "nginx" ? 1 : 2;
  console.log(`dutygate/${peer}: req/s × ${fmt(rpsRatio)} (goal ≥ ${goal}: ${rpsRatio >= goal ? "met" : `MISSED by ${fmt((1 - rpsRatio / goal) * 100, 0)} %`}); proxy CPU per request × ${fmt(cpuRatio)}`);
}
for (const note of notes) console.log(note);
console.log(`dutygate: Bun ${Bun.version}, full work per request (see bench/proxy/full-gateway.ts)`);
