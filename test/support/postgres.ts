// A real PostgreSQL 15 server (Debian's packages) for the tests: a fresh data directory in a temp
// directory, run as the unprivileged `postgres` user (initdb and postgres refuse root) on a free
// loopback port, its own process group, stopped by PID whatever happens. Nothing is mocked.
//
// The server asks for a password over TCP (scram-sha-256) and the gateway's role is an ordinary
// owner of its database, not a superuser: what a production ledger gets.
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { spawnSync } from "node:child_process";

/** Where Debian puts PostgreSQL 15's server binaries. */
export const POSTGRES_BIN = process.env.DUTYGATE_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** The role and password the gateway connects with (its database is named after the role). */
export const PG_ROLE = "dutygate";
export const PG_PASSWORD = "ledger-test-password";

/**
 * Why PostgreSQL tests cannot run here, or null when they can. `test/run.sh` installs the server
 * when it is missing and it can; under `CI=true` a reason is a failure, never a skip.
 */
export function postgresUnavailable(): string | null {
  if (process.platform !== "linux") return "the PostgreSQL tests run on Linux only";
  if (!existsSync(join(POSTGRES_BIN, "postgres")) || !existsSync(join(POSTGRES_BIN, "initdb"))) {
    return `PostgreSQL 15 is not installed (no ${POSTGRES_BIN}/postgres); \`apt-get install postgresql\` or run test/run.sh as root`;
  }
  if (process.getuid?.() === 0 && spawnSync("id", ["-u", "postgres"]).status !== 0) return "running as root, and there is no `postgres` user to run the server as";
  if (process.getuid?.() === 0 && !existsSync("/usr/bin/setpriv")) return "running as root without setpriv(1) to drop to the `postgres` user";
  return null;
}

/**
 * For a test file: null when PostgreSQL can run; otherwise prints why its tests skip, and under
 * `CI=true` throws, so that CI fails rather than skips.
 */
export function postgresSkipReason(what: string): string | null {
  const reason = postgresUnavailable();
  if (reason === null) return null;
  if (process.env.CI === "true") throw new Error(`${what}: PostgreSQL tests cannot run under CI: ${reason}`);
  console.warn(`skipping ${what}: ${reason}`);
  return reason;
}

export interface TestPostgres {
  /** `postgres://dutygate@127.0.0.1:PORT/dutygate` (no password: the gateway reads it from a file). */
  url: string;
  port: number;
  /** A file holding {@link PG_PASSWORD}, mode 0600. */
  passwordFile: string;
  /** The server's postmaster PID while it runs. */
  pid(): number | null;
  /** Creates an empty database owned by the gateway's role; returns its URL. */
  createDatabase(name: string): string;
  /** Runs SQL as the superuser over the socket (psql), returns stdout; throws with stderr on failure. */
  psql(sql: string, database?: string): string;
  /** Fast shutdown (SIGINT to the postmaster), then waits for it to exit. The data stay. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops the server (SIGKILL to its group if it lingers) and removes the data directory. */
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs `argv` as the `postgres` user when we are root (setpriv execs: no extra process, no new session). */
function asServerUser(argv: string[]): string[] {
  return process.getuid?.() === 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", ...argv] : argv;
}

/** Starts a fresh PostgreSQL 15 server; call {@link postgresUnavailable} first. */
export async function startTestPostgres(options: { settings?: Record<string, string> } = {}): Promise<TestPostgres> {
  const root = mkdtempSync(join(tmpdir(), "dutygate-pg-"));
  const data = join(root, "data");
  const passwordFile = join(root, "password");
  writeFileSync(passwordFile, `${PG_PASSWORD}\n`, { mode: 0o600 });
  mkdirSync(data, { mode: 0o700 });
  const serverPasswordFile = join(root, "initdb-password");
  writeFileSync(serverPasswordFile, `${PG_PASSWORD}\n`, { mode: 0o600 });
  if (process.getuid?.() === 0) {
    // The server user needs its own directory (the socket and the log go there too).
    chownSync(root, uid("postgres"), gid("postgres"));
    chownSync(data, uid("postgres"), gid("postgres"));
    chownSync(serverPasswordFile, uid("postgres"), gid("postgres"));
  }
  const run = (argv: string[], what: string) => {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout || r.error?.message}`);
    return r.stdout;
  };
  // Superuser `postgres` trusted over the socket only; TCP needs a password.
  run(asServerUser([join(POSTGRES_BIN, "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions", "--pwfile", serverPasswordFile]), "initdb");
  const port = await freePort();
  // Tests need no durability across a power cut: without fsync a test server starts and stops in
  // a fraction of the time on a busy disk. The benchmark passes `fsync: "on"`.
  const settings = { listen_addresses: "127.0.0.1", port: String(port), unix_socket_directories: root, max_connections: "200", fsync: "off", synchronous_commit: "off", full_page_writes: "off", ...options.settings };

  let child: ReturnType<typeof Bun.spawn> | null = null;
  let log = "";
  const psqlArgs = (database: string) => [join(POSTGRES_BIN, "psql"), "-h", root, "-p", String(port), "-U", "postgres", "-d", database, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"];
  const psql = (sql: string, database = "postgres") => run(asServerUser([...psqlArgs(database), "-c", sql]), `psql \`${sql.slice(0, 60)}\``);

  const start = async () => {
    const argv = asServerUser([join(POSTGRES_BIN, "postgres"), "-D", data, ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])]);
    // Its own process group, so that a kill reaches every backend too.
    child = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", detached: true });
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const reader = stream.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) log += new TextDecoder().decode(r.value);
    };
    void collect(child.stdout as ReadableStream<Uint8Array>);
    void collect(child.stderr as ReadableStream<Uint8Array>);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = spawnSync(join(POSTGRES_BIN, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-q"]);
      if (ready.status === 0) return;
      if (child.exitCode !== null || Date.now() > deadline) {
        killGroup();
        throw new Error(`PostgreSQL did not start on port ${port}:\n${log}`);
      }
      await Bun.sleep(50);
    }
  };
  const killGroup = () => {
    if (child === null) return;
    try { process.kill(-child.pid, "SIGKILL"); } catch { /* the group is gone */ }
  };
  const stop = async () => {
    if (child === null) return;
    const running = child;
    try { process.kill(running.pid, "SIGINT"); } catch { /* gone already */ }
    const killer = setTimeout(killGroup, 20_000);
    await running.exited;
    clearTimeout(killer);
    // Backends exit with the postmaster; anything left of the group goes too.
    try { process.kill(-running.pid, "SIGKILL"); } catch { /* the group is gone */ }
    child = null;
  };

  try {
    await start();
    psql(`CREATE ROLE ${PG_ROLE} LOGIN PASSWORD '${PG_PASSWORD}'`);
  } catch (error) {
    await stop();
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  // Whatever happens to the test, the server does not outlive this process.
  const onExit = () => killGroup();
  process.once("exit", onExit);

  const createDatabase = (name: string) => {
    psql(`CREATE DATABASE "${name}" OWNER ${PG_ROLE}`);
    return `postgres://${PG_ROLE}@127.0.0.1:${port}/${name}`;
  };
  createDatabase(PG_ROLE);
  return {
    url: `postgres://${PG_ROLE}@127.0.0.1:${port}/${PG_ROLE}`,
    port,
    passwordFile,
    pid: () => child?.pid ?? null,
    createDatabase,
    psql,
    stop,
    start,
    async destroy() {
      await stop();
      process.removeListener("exit", onExit);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function uid(user: string): number {
  return Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
}

function gid(user: string): number {
  return Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout.trim());
}
