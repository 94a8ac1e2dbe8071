// Policy reload cost for generated bundles of 10, 100, 1,000 and 10,000 duties, signed by two
// trusted keys (the production setting: require_signature, min_signers = 2):
//   - the split of one reload: verify (read, hash, two signatures) → parse → check → separation
//     analysis → compile (the stages of src/policy/build.ts);
//   - `reload()` as the gateway runs it (verify → rollback check → the policy build → swap);
//   - watch → active: a real gateway with `policy.watch = true`; a new signed revision is published
//     (policy file and manifest each renamed into place) and the time until
//     `gw.policy.active.digest` changes is measured by polling. It includes the debounce.
// Run: node_modules/.bin/bun bench/reload.bench.ts   (or: deno run -A bench/reload.bench.ts)
// Options: --sizes 10,100,1000,10000  --rounds 10  --debounce-ms 100  --log info (show each reload)
import { cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { analyzeSeparation, compilePolicy, loadPolicy, parsePolicySource, type PolicySource } from "../dsl/mod.ts";
import { generateSigningKey, verifyBundle, type SigningKeyPair } from "../src/bundle/mod.ts";
import { signBundleForTest } from "../test/support/sign-bundle.ts";
import { defaultConfig } from "../src/config/mod.ts";
import type { GatewayConfig } from "../src/config/types.ts";
import { createLogger } from "../src/gateway/log.ts";
import { startGateway, type RunningGateway } from "../src/gateway/serve.ts";
import { generatePolicy, SAMPLE_TIME } from "./gen-policy.ts";

declare const Deno: { version: { deno: string } } | undefined;

const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const SIZES = (argValue("--sizes") ?? "10,100,1000,10000").split(",").map(Number);
const ROUNDS = Number(argValue("--rounds") ?? 10);
const DEBOUNCE_MS = Number(argValue("--debounce-ms") ?? 100);
/** The 10,000-duty bundle takes seconds per round: fewer rounds there. */
const roundsFor = (size: number) => (size >= 10_000 ? Math.max(3, Math.ceil(ROUNDS / 3)) : ROUNDS);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const max = (xs: number[]) => Math.max(...xs);

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

async function waitForDigestChange(gw: RunningGateway, previous: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (let i = 0; Date.now() < end && i < 1_000_000; i++) {
    if (gw.policy.active!.digest !== previous) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`no new policy within ${deadlineMs} ms (last error: ${JSON.stringify(gw.policy.lastError)})`);
}

interface Row {
  duties: number;
  bytes: number;
  verify: number;
  parse: number;
  check: number;
  analyse: number;
  compile: number;
  reload: number;
  watchP50: number;
  watchMax: number;
  rounds: number;
}

async function measureSize(root: string, size: number, signers: SigningKeyPair[], trustedKeysFile: string, issuerJwks: string): Promise<Row> {
  const rounds = roundsFor(size);
  const gen = generatePolicy(size);
  const dir = join(root, `gw-${size}`);
  const policyDir = join(dir, "policies");
  const staging = join(dir, "staging");
  mkdirSync(policyDir, { recursive: true });
  mkdirSync(staging, { recursive: true });
  let revision = 1;
  const textFor = (round: number) => `${gen.text}# round ${round}\n`;
  writeFileSync(join(policyDir, gen.path), textFor(0));
  await signBundleForTest(policyDir, signers, { revision });

  // --- the split, on the files as the gateway will read them --------------------------------
  const verify: number[] = [], parse: number[] = [], check: number[] = [], analyse: number[] = [], compile: number[] = [];
  // Round 0 warms the JIT and is not counted.
  for (let i = 0; i <= rounds; i++) {
    const keep = i > 0;
    let t0 = performance.now();
    const v = await verifyBundle(policyDir, { trustedKeys: { keys: signers.map((s) => s.publicJwk) }, minSigners: 2 });
    if (keep) verify.push(performance.now() - t0);
    if (!v.ok) throw new Error(`bench bundle does not verify: ${JSON.stringify(v.problems)}`);
    const sources: PolicySource[] = v.bundle.files.map((f) => ({ path: f.path, text: f.text }));
    t0 = performance.now();
    for (const s of sources) parsePolicySource(s);
    const parsed = performance.now() - t0;
    if (keep) parse.push(parsed);
    // loadPolicy parses again and checks: check = load − parse.
    t0 = performance.now();
    const loaded = loadPolicy(sources, { now: SAMPLE_TIME });
    if (keep) check.push(Math.max(0, performance.now() - t0 - parsed));
    if (!loaded.policy) throw new Error(`generated policy has errors: ${loaded.diagnostics.filter((d) => d.severity === "error").slice(0, 3).map((d) => d.message).join("; ")}`);
    t0 = performance.now();
    analyzeSeparation(loaded.policy);
    if (keep) analyse.push(performance.now() - t0);
    t0 = performance.now();
    compilePolicy(loaded.policy);
    if (keep) compile.push(performance.now() - t0);
  }

  // --- a real gateway: reload() and watch → active --------------------------------------------
  const base = defaultConfig({ cwd: dir });
  const loopback = { ...base.listen, host: "127.0.0.1", port: 0 };
  const upstreams = Object.fromEntries(
    [...new Set(gen.text.match(/-> (\w+)/g)!.map((m) => m.slice(3)))].map((name) => [name, { name, url: "http://127.0.0.1:9", timeoutMs: 1000, connectTimeoutMs: 1000 }]),
  );
  const config: GatewayConfig = {
    ...base,
    demo: false,
    listen: loopback,
    admin: null,
    issuers: [{ ...base.issuers[0]!, jwksFile: issuerJwks }],
    upstreams,
    policy: { ...base.policy, dir: policyDir, requireSignature: true, trustedKeysFile, minSigners: 2, watch: false, debounceMs: DEBOUNCE_MS },
    audit: { ...base.audit, dir: join(dir, "audit") },
    ledger: { ...base.ledger, path: join(dir, ".state", "ledger.sqlite") },
  };
  const gw = await startGateway(config, { log: createLogger(argValue("--log") === "info" ? "info" : "error") });
  const reload: number[] = [];
  const watch: number[] = [];
  try {
    /** Signs round `round`'s files as a new revision in the staging dir, returns the files to publish. */
    const prepare = async (round: number) => {
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging);
      writeFileSync(join(staging, gen.path), textFor(round));
      await signBundleForTest(staging, signers, { revision: ++revision });
      return [gen.path, "bundle.sig.json"].map((name) => ({ name, text: readFileSync(join(staging, name), "utf8") }));
    };
    const publish = (files: Array<{ name: string; text: string }>) => {
      for (const f of files) writeAtomically(join(policyDir, f.name), f.text);
    };

    for (let i = 1; i <= rounds; i++) {
      publish(await prepare(i));
      const t0 = performance.now();
      const r = await gw.policy.reload("bench");
      reload.push(performance.now() - t0);
      if (!r.ok || !r.changed) throw new Error(`reload did not swap: ${JSON.stringify(r)}`);
    }

    gw.policy.watch();
    await new Promise((r) => setTimeout(r, 200)); // let the watcher arm
    for (let i = rounds + 1; i <= 2 * rounds; i++) {
      const files = await prepare(i);
      const previous = gw.policy.active!.digest;
      const t0 = performance.now();
      publish(files);
      await waitForDigestChange(gw, previous);
      watch.push(performance.now() - t0);
      // Quiet period so the next round's events are not folded into this one.
      await new Promise((r) => setTimeout(r, DEBOUNCE_MS * 2));
    }
  } finally {
    await gw.stop({ drainMs: 0, deadlineMs: 1000 });
  }
  return {
    duties: size, bytes: gen.text.length, rounds,
    verify: median(verify), parse: median(parse), check: median(check), analyse: median(analyse), compile: median(compile),
    reload: median(reload), watchP50: median(watch), watchMax: max(watch),
  };
}

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : `node ${process.version}`;
const cpu = cpus();
console.log(`policy reload — ${runtime}, ${platform()} ${release()}, ${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average ${loadavg().map((n) => n.toFixed(2)).join(" ")}`);
console.log(`bundles from bench/gen-policy.ts (seed 1), one file + manifest signed by 2 keys (EdDSA); medians of ${ROUNDS} rounds (${roundsFor(10_000)} at 10,000); watch debounce ${DEBOUNCE_MS} ms\n`);

const root = mkdtempSync(join(tmpdir(), "dutygate-reload-bench-"));
const rows: Row[] = [];
try {
  const signers = await Promise.all(["alice", "bob"].map((kid) => generateSigningKey({ kid })));
  const trustedKeysFile = join(root, "trusted.jwks");
  writeFileSync(trustedKeysFile, JSON.stringify({ keys: signers.map((s) => s.publicJwk) }));
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  const issuerJwks = join(root, "issuer.jwks");
  writeFileSync(issuerJwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "bench", alg: "ES256", use: "sig" }] }));
  for (const size of SIZES) {
    rows.push(await measureSize(root, size, signers, trustedKeysFile, issuerJwks));
    const r = rows.at(-1)!;
    console.error(`  measured ${size} duties (${r.rounds} rounds)`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const header = ["duties", "source", "verify ms", "parse ms", "check ms", "analyse ms", "compile ms", "sum ms", "reload() ms", "watch → active p50 / max ms", "reload() ≤ 100 ms"];
const table = rows.map((r) => [
  r.duties.toLocaleString("en-US"), `${(r.bytes / 1024).toFixed(0)} KiB`,
  f(r.verify), f(r.parse), f(r.check), f(r.analyse), f(r.compile), f(r.verify + r.parse + r.check + r.analyse + r.compile), f(r.reload),
  `${f(r.watchP50)} / ${f(r.watchMax)}`, r.reload <= 100 ? "yes" : "no",
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (row: string[]) => "| " + row.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
console.log(line(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const row of table) console.log(line(row));
console.log(`\nreload() = what the gateway does per trigger (verify → rollback check → the policy build: parse, check, analyse, compile, policy tests → swap); watch → active adds the ${DEBOUNCE_MS} ms debounce and event delivery.`);
