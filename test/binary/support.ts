// Running the compiled `gateway` binary as a user would: a bare environment (`env -i
// PATH=/usr/bin:/bin`), its own working directory, real sockets. Shared by the binary suite and
// bench/startup.bench.ts.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBinary, buildCommit } from "../../scripts/build.ts";

/** The environment of a bare VM's service: nothing but a minimal PATH. */
export const BARE_ENV = { PATH: "/usr/bin:/bin" } as const;

/**
 * The binary under test: `DUTYGATE_BINARY` when set (CI can hand in `dist/gateway`), otherwise a
 * fresh linux-x64 build in a temp dir (a few seconds), so the suite never tests a stale binary.
 */
export function binaryUnderTest(commit = buildCommit()): { path: string; commit: string | null; built: boolean } {
  const given = process.env.DUTYGATE_BINARY;
  if (given) {
    if (!existsSync(given)) throw new Error(`DUTYGATE_BINARY \`${given}\` does not exist`);
    return { path: given, commit: null, built: false };
  }
  const dir = mkdtempSync(join(tmpdir(), "dutygate-bin-"));
  const built = buildBinary({ target: "x64", outfile: join(dir, "gateway"), commit });
  return { path: built.outfile, commit, built: true };
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
 * Starts `gateway serve ARGS` in `cwd` and waits (at most `deadlineMs`) for the banner line
 * `dutygate listening on https://…`. Throws with the process output when it exits or the
 * deadline passes first.
 */
export async function serveBinary(binary: string, args: string[], cwd: string, deadlineMs = 30_000): Promise<ServingBinary> {
  const child = Bun.spawn([binary, "serve", ...args], { cwd, env: { ...BARE_ENV }, stdout: "pipe", stderr: "pipe" });
  let out = "";
  let err = "";
  const drain = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      add(decoder.decode(value, { stream: true }));
    }
  };
  void drain(child.stdout, (s) => (out += s));
  void drain(child.stderr, (s) => (err += s));
  const until = Date.now() + deadlineMs;
  let url: string | null = null;
  while (Date.now() < until) {
    url = /dutygate listening on (https:\/\/\S+)/.exec(out)?.[1] ?? null;
    if (url || child.exitCode !== null) break;
    await Bun.sleep(10);
  }
  if (!url) {
    child.kill("SIGKILL");
    await child.exited;
    throw new Error(`gateway serve did not print its banner (exit ${child.exitCode}):\n${out}\n${err}`);
  }
  return {
    url, pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => child.kill(sig),
    async stop(deadline = 15_000) {
      if (child.exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), deadline);
      const code = await child.exited;
      clearTimeout(timer);
      return code;
    },
  };
}
