// Which PostgreSQL client the shared ledger uses: the `postgres` package against Bun's built-in
// SQL, on the ledger's own round trips (a reserve-shaped transaction: BEGIN, advisory lock + read
// pipelined, INSERT, COMMIT), one at a time, on a throw-away PostgreSQL 15 server on loopback.
//   node_modules/.bin/bun bench/postgres-client.bench.ts [iterations]
// The result and the choice are in docs/architecture.md.
import { cpus } from "node:os";
import postgres from "postgres";
import { PG_PASSWORD, PG_ROLE, postgresUnavailable, startTestPostgres } from "../test/support/postgres.ts";

const iterations = Number(process.argv[2] ?? 3000);
const unavailable = postgresUnavailable();
if (unavailable) {
  console.error(`cannot run: ${unavailable}`);
  process.exit(2);
}
const pg = await startTestPostgres({ settings: process.env.FSYNC === "off" ? {} : { fsync: "on", synchronous_commit: "on" } });
const SCHEMA = "CREATE TABLE IF NOT EXISTS t (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, sub TEXT NOT NULL, at BIGINT NOT NULL)";

function quantiles(samples: number[]): string {
  samples.sort((a, b) => a - b);
  const q = (p: number) => (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 1000).toFixed(0);
  return `${q(0.5).padStart(6)} / ${q(0.99).padStart(6)}`;
}

async function measure(name: string, reserve: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < 200; i++) await reserve(-i - 1);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await reserve(i);
    samples.push(performance.now() - t);
  }
  console.log(`| ${name.padEnd(24)} | ${quantiles(samples)} |`);
}

try {
  const porsager = postgres({ host: "127.0.0.1", port: pg.port, user: PG_ROLE, database: PG_ROLE, pass: PG_PASSWORD, max: 1, fetch_types: false, onnotice: () => {} });
  await porsager.unsafe(SCHEMA);
  const BunSQL = (Bun as unknown as { SQL: new (o: object) => postgres.Sql }).SQL;
  const builtin = new BunSQL({ hostname: "127.0.0.1", port: pg.port, username: PG_ROLE, database: PG_ROLE, password: PG_PASSWORD, max: 1 });
  console.log(`${cpus()[0]?.model ?? "cpu"} ×${cpus().length}, Bun ${Bun.version}, PostgreSQL 15 on loopback (fsync on), ${iterations} transactions each, one at a time`);
  console.log("| client                   | p50 / p99 µs    |\n|--------------------------|-----------------|");
  for (const [name, sql] of [["Bun.SQL (built in)", builtin], ["postgres (npm) 4.2.0", porsager], ["Bun.SQL (built in)", builtin], ["postgres (npm) 4.2.0", porsager]] as const) {
    await measure(name, async (i) => {
      await sql.begin(async (tx) => {
        const [, rows] = await Promise.all([tx`SELECT pg_advisory_xact_lock(${i}::bigint)`, tx`SELECT k FROM t WHERE k = ${String(i)} AND sub = 'alice'`]);
        if (rows.length === 0) await tx`INSERT INTO t (k, sub, at) VALUES (${String(i)}, 'alice', ${i})`;
      });
    });
  }
  await porsager.end();
  await (builtin as unknown as { close(): Promise<void> }).close();
} finally {
  await pg.destroy();
}
