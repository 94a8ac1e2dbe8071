// JWT authentication cost per request: cold (parse, signature verification, claim checks, claim
// mapping) against a verified-token cache hit (SHA-256 of the token, LRU lookup, expiry check), for
// EdDSA, ES256 and RS256 (2048-bit) tokens verified against a JWKS file. One call at a time.
// Run: node_modules/.bin/bun bench/authn.bench.ts   (or: deno run -A bench/authn.bench.ts)
// Options: --iterations 5000
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { hrtime } from "node:process";
import { createJwtAuthenticator } from "../src/authn/mod.ts";
import { issuerConfig, makeKey, signToken, testSchema, T0, writeJwksFile, type TestKey } from "../test/support/authn-tokens.ts";
import { removeTempDir, tempDir } from "../test/support/temp-dir.ts";

declare const Deno: { version: { deno: string; v8: string } } | undefined;

const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const ITERATIONS = Number(argValue("--iterations") ?? 5000);
const WARMUP = Math.min(500, ITERATIONS);

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : typeof Deno !== "undefined" ? `deno ${Deno.version.deno}` : `node ${process.version}`;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** Per-call latencies in µs of `call`, after a warm-up. */
async function measure(call: () => Promise<unknown>): Promise<{ median: number; p99: number; opsPerSec: number }> {
  for (let i = 0; i < WARMUP; i++) await call();
  const samples: number[] = [];
  const start = hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const t = hrtime.bigint();
    await call();
    samples.push(Number(hrtime.bigint() - t) / 1000);
  }
  const totalS = Number(hrtime.bigint() - start) / 1e9;
  samples.sort((a, b) => a - b);
  return { median: percentile(samples, 50), p99: percentile(samples, 99), opsPerSec: ITERATIONS / totalS };
}

const tmp = tempDir("dutygate-authn-bench-");
try {
  const keys: TestKey[] = await Promise.all([makeKey("EdDSA", "ed"), makeKey("ES256", "es"), makeKey("RS256", "rs")]);
  const jwksFile = join(tmp, "jwks.json");
  writeJwksFile(jwksFile, keys);
  const issuers = [issuerConfig({ jwksFile })];
  const now = () => T0;
  const cold = createJwtAuthenticator({ issuers, now, cacheSize: 0 });
  const cached = createJwtAuthenticator({ issuers, now });

  const rows: string[][] = [];
  for (const key of keys) {
    const header = `Bearer ${await signToken({ key })}`;
    for (const authn of [cold, cached]) {
      const r = await authn.authenticate(header, testSchema);
      if (!r.ok) throw new Error(`${key.alg}: ${r.code} ${r.message}`);
    }
    const c = await measure(async () => cold.authenticate(header, testSchema));
    const h = await measure(async () => cached.authenticate(header, testSchema));
    rows.push([key.alg, c.median.toFixed(1), c.p99.toFixed(1), Math.round(c.opsPerSec).toString(), h.median.toFixed(2), h.p99.toFixed(2), Math.round(h.opsPerSec).toString(), `${(c.median / h.median).toFixed(0)}x`]);
  }
  const statsCached = cached.stats();
  if (statsCached.verifications !== keys.length) throw new Error(`cache missed: ${statsCached.verifications} verifications`);

  console.log(`authn bench — ${runtime}, ${cpus()[0]?.model ?? "unknown cpu"} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${ITERATIONS} calls each, sequential`);
  const head = ["alg", "cold µs p50", "cold p99", "cold ops/s", "cached µs p50", "cached p99", "cached ops/s", "cold/cached"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
} finally {
  removeTempDir(tmp);
}
