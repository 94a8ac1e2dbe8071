// Running the compiled `gateway` binary as a user would: a bare environment (`env -i
// PATH=/usr/bin:/bin`), its own working directory, real sockets. Shared by the binary suite and
// bench/startup.bench.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBinary, buildCommit } from "../../scripts/build.ts";
import { drainText } from "../support/harness.ts";
import { killGroupOnExit, killProcessGroup } from "../support/process-group.ts";

/** The environment of a bare VM's service: nothing but a minimal PATH. */
export const BARE_ENV = { PATH: "/usr/bin:/bin" } as const;

/**
 * The binary under test: `DUTYGATE_BINARY` when set (CI can hand in `dist/gateway`), otherwise a
 * fresh linux-x64 build in a temp dir (a few seconds), so the suite never tests a stale binary.
 */
/** The commit id the test suites build with: no real build carries it, so `--version` proves the injection. */
export const TEST_COMMIT = "binary-suite-0001";

const builds = new Map<string, string>();

export function binaryUnderTest(commit = buildCommit()): { path: string; commit: string | null; built: boolean } {
  const given = process.env.DUTYGATE_BINARY;
  if (given) {
    if (!existsSync(given)) throw new Error(`DUTYGATE_BINARY \`${given}\` does not exist`);
    return { path: given, commit: null, built: false };
  }
  // One build per test process and commit id, shared by the suites that need it.
  let path = builds.get(commit);
  if (!path) {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-bin-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    path = buildBinary({ target: "x64", outfile: join(dir, "gateway"), commit }).outfile;
    builds.set(commit, path);
  }
  return { path, commit, built: true };
}

/** Runs one command of the binary to completion (bounded by `timeoutMs`). */
export function runBinary(binary: string, args: string[], cwd: string, timeoutMs = 60_000): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync([binary, ...args], { cwd, env: { ...BARE_ENV }, stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A `gateway serve` process that printed its start-up banner. */
export interface ServingBinary {
  /** Operational URL from the banner (`https://127.0.0.1:PORT`). */
  url: string;
  /** Everything printed so far (stdout: banner; stderr: JSON logs). */
  stdout(): string;
  stderr(): string;
  /** Sends a signal (SIGHUP reloads). */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then waits for the exit (SIGKILL after `deadlineMs`); returns the exit code. */
  stop(deadlineMs?: number): Promise<number>;
  pid: number;
}

/**
 * Starts `[...prefix] gateway serve ARGS` in `cwd` and waits (at most `deadlineMs`) for the
 * start-up banner (`waitFor`, default its `audit:` line) and its `dutygate listening on https://…`. Throws with the process output when it exits or the
 * deadline passes first.
 */
export async function serveBinary(binary: string, args: string[], cwd: string, deadlineMs = 30_000, options: { prefix?: string[]; waitFor?: RegExp } = {}): Promise<ServingBinary> {
  // The banner is several lines; `audit:` is the last one every configuration prints.
  const waitFor = options.waitFor ?? /^audit: .*\n/m;
  // `prefix` runs the binary under another program (strace, a W^X launcher).
  // Its own process group, killed by its PID whatever happens (a tracer's children included).
  const child = Bun.spawn([...(options.prefix ?? []), binary, "serve", ...args], { cwd, env: { ...BARE_ENV }, stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(child.pid);
  let out = "";
  let err = "";
  void drainText(child.stdout, (s) => (out += s));
  void drainText(child.stderr, (s) => (err += s));
  const until = Date.now() + deadlineMs;
  let url: string | null = null;
  while (Date.now() < until) {
    url = waitFor.test(out) ? /dutygate listening on (https:\/\/\S+)/.exec(out)?.[1] ?? null : null;
    if (url || child.exitCode !== null) break;
    await Bun.sleep(10);
  }
  if (!url) {
    killProcessGroup(child.pid);
    await child.exited;
    throw new Error(`gateway serve did not print its banner (exit ${child.exitCode}):\n${out}\n${err}`);
  }
  // Under a tracer the gateway is the tracer's child: signals go to it, not to the tracer.
  const gatewayPid = options.prefix ? tracedChild(child.pid) : child.pid;
  const send = (sig: NodeJS.Signals) => {
    try { process.kill(gatewayPid, sig); } catch { /* already gone */ }
  };
  return {
    url, pid: gatewayPid,
    stdout: () => out,
    stderr: () => err,
    signal: send,
    async stop(deadline = 15_000) {
      if (child.exitCode === null) send("SIGTERM");
      const timer = setTimeout(() => killProcessGroup(child.pid), deadline);
      const code = await child.exited;
      clearTimeout(timer);
      killProcessGroup(child.pid); // anything of its group still there
      return code;
    },
  };
}

/** The first child process of `pid` (Linux `/proc`), or `pid` itself when it has none. */
function tracedChild(pid: number): number {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0];
    return first ? Number(first) : pid;
  } catch {
    return pid;
  }
}

/**
 * Writes `gateway.toml` for a gateway on an ephemeral loopback port that trusts the harness's
 * test issuer (`issuer.jwks` in `dir`) and sends every upstream of the example policies to
 * `upstreamUrl`. With `trustedKeys`, signed bundles are required.
 */
export function writeTestConfig(dir: string, options: { issuer: string; audience: string; upstreamUrl: string; trustedKeys?: string }): string {
  const upstreams = ["changes", "deploy", "logs", "admin"].map((u) => `[upstreams.${u}]\nurl = "${options.upstreamUrl}"\n`).join("\n");
  const policy = options.trustedKeys ? `require_signature = true\ntrusted_keys = "${options.trustedKeys}"` : "require_signature = false";
  const file = join(dir, "gateway.toml");
  writeFileSync(file, `state_dir = "./state"
[listen]
address = "127.0.0.1:0"
[issuers.test]
issuer = "${options.issuer}"
audience = "${options.audience}"
jwks_file = "issuer.jwks"
algorithms = ["ES256"]
[issuers.test.claims]
roles = "roles"
mfa = "mfa"
team = "team"
${upstreams}
[policy]
dir = "./policies"
${policy}
[audit]
dir = "./audit"
fsync = "always"
checkpoint_every = 2
[shutdown]
drain = "0s"
`);
  return file;
}
