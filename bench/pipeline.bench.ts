// The request pipeline alone, in process: CPU time per request of `createPipeline(...)` answering
// `GET /changes/42` (a developer's cached ES256 token, the shipped policy, the memory ledger, the
// audit log on disk with fsync = batch, a cached identity token), with the hop to the upstream
// passed in as a forwarder that answers at once. No TLS, no sockets: what the stages cost.
//
//   node_modules/.bin/bun bench/pipeline.bench.ts [--requests 10000] [--rounds 5] [--concurrency 1] [--before DIR]
//
// Each round runs every tree in its own process, one after the other (rounds interleave the
// trees, so drift on a shared machine hits both); a process warms up, then times `--requests`
// requests five times and reports the median. --before DIR adds another checkout (its root, with
// node_modules) whose PipelineDeps takes `forward`. Prints per tree the median and the best
// round, and the ratio to --before per round (median). With --concurrency N, N requests are in
// flight at once and the forwarder answers on the next turn of the event loop, so requests
// overlap as under load (their objects live across turns; the audit log batches).
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1]! : fallback);

if (args[0] === "--child") await child(resolve(args[1]!), Number(args[2]), Number(args[3]));
else await parent();

async function parent(): Promise<void> {
  const requests = Math.min(Math.max(Number(flag("requests", "10000")) || 10000, 1000), 200_000);
  const rounds = Math.min(Math.max(Number(flag("rounds", "5")) || 5, 1), 20);
  const concurrency = Math.min(Math.max(Number(flag("concurrency", "1")) || 1, 1), 500);
  const trees: Array<[string, string]> = [["this tree", join(import.meta.dir, "..")]];
  if (flag("before", "") !== "") trees.push(["before", resolve(flag("before", ""))]);
  const results = new Map<string, number[]>(trees.map(([name]) => [name, []]));
  const load = loadavg();
  for (let r = 0; r < rounds; r++) {
    for (const [name, root] of trees) {
      // Bounded: a child that hangs is killed (it is the only process it starts).
      const run = spawnSync(process.execPath, [import.meta.path, "--child", root, String(requests), String(concurrency)], { encoding: "utf8", timeout: 300_000 });
      const m = /^µs\/req (\S+)$/m.exec(run.stdout ?? "");
      if (run.status !== 0 || !m) throw new Error(`${name} (${root}) failed: ${run.stderr || run.stdout}`);
      results.get(name)!.push(Number(m[1]));
      console.error(`round ${r + 1}/${rounds}: ${name} ${m[1]} µs/req`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\n${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; Bun ${Bun.version}; load average ${load.map((l) => l.toFixed(2)).join(" ")} at the start`);
  console.log(`GET /changes/42 in process, ${requests} requests per timing, ${concurrency} in flight, ${rounds} interleaved rounds\n`);
  console.log("tree         median µs/req   best round");
  for (const [name, root] of trees) {
    const xs = results.get(name)!;
    console.log(`${name.padEnd(12)} ${median(xs).toFixed(1).padStart(13)} ${Math.min(...xs).toFixed(1).padStart(12)}   ${root}`);
  }
  const before = results.get("before");
  if (before) {
    const ratio = median(results.get("this tree")!.map((x, i) => x / before[i]!));
    console.log(`\nthis tree / before, per round then the median: × ${ratio.toFixed(3)}`);
  }
}

async function child(root: string, requests: number, concurrency: number): Promise<void> {
  const { cpSync, mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const load = (path: string) => import(join(root, path));
  const { createTestIssuer } = await load("test/support/harness.ts");
  const { defaultConfig } = await load("src/config/mod.ts");
  const { openAuditLog } = await load("src/audit/mod.ts");
  const { createJwtAuthenticator } = await load("src/authn/mod.ts");
  const { createIdentityTokenSigner } = await load("src/http/mod.ts");
  const { MemoryDutyLedger } = await load("src/ledger/mod.ts");
  const { ensureGatewayKey } = await load("src/gateway/keys.ts");
  const { createLogger } = await load("src/gateway/log.ts");
  const { Metrics } = await load("src/gateway/metrics.ts");
  const { createPipeline } = await load("src/gateway/pipeline.ts");
  const { PolicyManager } = await load("src/gateway/policy-manager.ts");
  const dir = mkdtempSync(join(tmpdir(), "dutygate-pipeline-bench-"));
  try {
    cpSync(join(root, "policies"), join(dir, "policies"), { recursive: true });
    const issuer = await createTestIssuer(dir);
    const base = defaultConfig({ cwd: dir });
    const config = {
      ...base, demo: false,
      issuers: [{ ...base.issuers[0], name: "bench", issuer: "https://idp.e2e.test", audience: ["dutygate"], jwksFile: issuer.jwksFile, algorithms: ["ES256"] }],
      upstreams: Object.fromEntries(["changes", "deploy", "logs", "admin"].map((name) => [name, { name, url: "http://127.0.0.1:9", timeoutMs: 5000, connectTimeoutMs: 2000 }])),
      policy: { ...base.policy, dir: join(dir, "policies"), watch: false, requireSignature: false },
      audit: { ...base.audit, dir: join(dir, "audit") },
    };
    const policy = new PolicyManager({ policy: config.policy, stateDir: config.stateDir, upstreams: config.upstreams, log: () => {} });
    const loaded = await policy.reload("bench");
    if (!loaded.ok) throw new Error("the shipped policy does not load");
    const key = await ensureGatewayKey(config.stateDir);
    const audit = await openAuditLog({ ...config.audit, signingKey: { key: key.privateKey, kid: key.kid, alg: "EdDSA" } });
    const identity = await createIdentityTokenSigner({ privateKey: key.privateKey, publicKey: key.publicJwk, kid: key.kid, alg: "EdDSA", issuer: "dutygate", ttlMs: 60_000 });
    const pipeline = createPipeline({
      config, policy, audit, identity, metrics: new Metrics(), log: createLogger("error", () => {}),
      ledger: new MemoryDutyLedger({ retentionDays: 30 }), authn: createJwtAuthenticator({ issuers: config.issuers }),
      forward: async () => {
        if (concurrency > 1) await new Promise((next) => setImmediate(next));
        return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
      },
    }, "operational", config.listen);
    const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true }, { ttlSeconds: 3000 });
    const info = { remoteAddress: "127.0.0.1", peerCertificate: null };
    const one = async () => {
      const response = await pipeline(new Request("https://127.0.0.1:8443/changes/42", { headers: { host: "127.0.0.1:8443", authorization: `Bearer ${token}`, "user-agent": "bench" } }), info);
      if (response.status !== 200) throw new Error(`answered ${response.status}`);
      await response.arrayBuffer();
    };
    const time = async (n: number) => {
      const each = Math.ceil(n / concurrency);
      const start = process.cpuUsage();
      await Promise.all(Array.from({ length: concurrency }, async () => { for (let i = 0; i < each; i++) await one(); }));
      const used = process.cpuUsage(start);
      return (used.user + used.system) / (each * concurrency);
    };
    await time(3000);
    const xs: number[] = [];
    for (let r = 0; r < 5; r++) xs.push(await time(requests));
    console.log(`µs/req ${xs.sort((a, b) => a - b)[2]!.toFixed(2)}`);
    await audit.close();
    policy.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
