// `npx gateway serve` runs bin/gateway.mjs (Node), which runs the gateway under Bun. Real
// processes: the wrapper starts in a process group of its own, the gateway in a session of its
// own (the wrapper puts it there), and both groups are killed by PID whatever happens.
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { verifyAuditFiles } from "../../src/audit/mod.ts";
import { killGroupOnExit, killProcessGroup } from "../support/process-group.ts";
import { createTestIssuer, drainText, REPO_ROOT, SHIPPED_POLICIES, startTestUpstream, writeProcessConfig, type TestIssuer, type TestUpstream } from "../support/harness.ts";

const work = mkdtempSync(join(tmpdir(), "dutygate-npx-wrapper-"));
const upstream: TestUpstream = startTestUpstream();
afterAll(() => {
  upstream.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Polls `check` every 20 ms until it holds, at most `seconds`; false when it never did. */
async function eventually(check: () => boolean, seconds = 60): Promise<boolean> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (check()) return true;
    await Bun.sleep(20);
  }
  return check();
}

/** Whether `pid` is gone (no process, or a zombie nobody has reaped yet). */
function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** The session id of `pid` (`/proc/PID/stat` field 6). */
function sessionOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ");
  return Number(fields[3]);
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Started {
  /** The process the test spawned: the wrapper itself, or a shell standing in for npm. */
  top: ReturnType<typeof Bun.spawn>;
  wrapper: number;
  gateway: number;
  url: string;
  out(): string;
  err(): string;
  /** Resolves when the last writer of the output pipes (the gateway) closed them. */
  outputClosed: Promise<unknown>;
  dir: string;
  issuer: TestIssuer;
}

let sequence = 0;
const cleanups: Array<() => Promise<void>> = [];

/**
 * Starts `node bin/gateway.mjs serve` (under `sh -c '…; true'` with `viaShell`, as npm runs it:
 * a parent that can die without passing a signal on) in its own process group and waits for the
 * banner by reading whatever output arrived (no read is ever abandoned to a timer).
 */
async function startWrapper(options: { viaShell?: boolean } = {}): Promise<Started> {
  const dir = join(work, `run-${++sequence}`);
  mkdirSync(dir, { recursive: true });
  const issuer = await createTestIssuer(dir);
  const policyDir = join(dir, "policies");
  cpSync(SHIPPED_POLICIES, policyDir, { recursive: true });
  const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir, auditToml: `fsync = "always"` });
  const command = ["node", join(REPO_ROOT, "bin", "gateway.mjs"), "serve", "--config", config];
  const argv = options.viaShell ? ["sh", "-c", `"$@"; true`, "sh", ...command] : command;
  const top = Bun.spawn(argv, { cwd: dir, stdout: "pipe", stderr: "pipe", detached: true });
  killGroupOnExit(top.pid);
  let out = "";
  let err = "";
  const outputClosed = Promise.all([drainText(top.stdout as ReadableStream<Uint8Array>, (s) => (out += s)), drainText(top.stderr as ReadableStream<Uint8Array>, (s) => (err += s))]);
  let wrapper: number | null = options.viaShell ? null : top.pid;
  let gateway: number | null = null;
  cleanups.push(async () => {
    killProcessGroup(top.pid);
    killProcessGroup(gateway);
    await top.exited;
  });
  await eventually(() => {
    wrapper ??= childrenOf(top.pid)[0] ?? null;
    if (gateway === null && wrapper !== null) {
      gateway = childrenOf(wrapper)[0] ?? null;
      // The gateway leads a session (and group) of its own: killed by its PID too.
      if (gateway !== null) killGroupOnExit(gateway);
    }
    return (gateway !== null && out.includes("dutygate listening on")) || top.exitCode !== null;
  });
  const url = /dutygate listening on (https:\/\/\S+)/.exec(out)?.[1];
  if (!url || wrapper === null || gateway === null) throw new Error(`the wrapper did not start the gateway (exit ${top.exitCode}):\n${out}\n${err}`);
  return { top, wrapper, gateway, url, out: () => out, err: () => err, outputClosed, dir, issuer };
}

async function submit(s: Started): Promise<number> {
  const token = await s.issuer.token({ sub: "alice", roles: ["developer"] });
  const res = await fetch(`${s.url}/changes/1/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
  await res.arrayBuffer();
  return res.status;
}

async function auditEndsWithCheckpoint(s: Started): Promise<void> {
  const keys = JSON.parse(readFileSync(join(s.dir, ".state", "gateway-key", "public.jwks"), "utf8")) as JSONWebKeySet;
  const result = await verifyAuditFiles([join(s.dir, "audit")], { keys });
  expect(result.break).toBeNull();
  expect(result.recordsAfterLastCheckpoint).toBe(0);
}

async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0)) await cleanup();
}

describe("the npx wrapper (bin/gateway.mjs)", () => {
  // Regression: a terminal sends SIGINT to its whole foreground group; the wrapper passed it on
  // again, and the second SIGINT killed Bun outright (exit 130, no final audit checkpoint).
  test("Ctrl-C (SIGINT to the whole process group) reaches the gateway once: the request in flight completes, exit 0, audit log closed with its checkpoint", async () => {
    try {
      const s = await startWrapper();
      // The terminal's signals reach the gateway only through the wrapper: another session.
      expect(sessionOf(s.gateway)).not.toBe(sessionOf(s.wrapper));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const before = upstream.received.length;
      upstream.respond(async () => {
        await held;
        return Response.json({ ok: true });
      });
      const inFlight = submit(s);
      expect(await eventually(() => upstream.received.length > before)).toBe(true);
      process.kill(-s.wrapper, "SIGINT");
      expect(await eventually(() => s.err().includes("SIGINT: stopping gracefully"))).toBe(true);
      release();
      expect(await inFlight).toBe(200);
      expect(await s.top.exited).toBe(0);
      await s.outputClosed;
      expect(s.err().match(/SIGINT: stopping gracefully/g)?.length).toBe(1);
      expect(gone(s.gateway)).toBe(true);
      await auditEndsWithCheckpoint(s);
    } finally {
      upstream.respond(() => Response.json({ ok: true }));
      await runCleanups();
    }
  }, 120_000);

  // Regression: `kill -TERM` of npm: npm passes it to its shell and exits; the wrapper and Bun
  // were left running, holding the port.
  test("its parent killed without passing the signal on: the wrapper stops the gateway and both exit", async () => {
    try {
      const s = await startWrapper({ viaShell: true });
      expect(await submit(s)).toBe(200);
      process.kill(s.top.pid, "SIGTERM"); // the shell dies; nothing reaches the wrapper
      await s.top.exited;
      await s.outputClosed; // the gateway, last holder of the output pipes, has exited
      expect(await eventually(() => gone(s.wrapper) && gone(s.gateway))).toBe(true);
      expect(s.err()).toContain("SIGTERM: stopping gracefully");
      await auditEndsWithCheckpoint(s);
    } finally {
      await runCleanups();
    }
  }, 120_000);

  // Regression: the gateway outlived a wrapper killed by SIGKILL.
  test("the wrapper killed by SIGKILL: the gateway notices (its lifeline pipe closes) and stops gracefully", async () => {
    try {
      const s = await startWrapper();
      expect(await submit(s)).toBe(200);
      process.kill(s.wrapper, "SIGKILL");
      await s.top.exited;
      await s.outputClosed;
      expect(await eventually(() => gone(s.gateway))).toBe(true);
      expect(s.err()).toContain("the launcher is gone: stopping gracefully");
      await auditEndsWithCheckpoint(s);
    } finally {
      await runCleanups();
    }
  }, 120_000);

  test("reports a gateway killed by a signal as 128 + that signal (SIGKILL: 137), like a shell", async () => {
    try {
      const s = await startWrapper();
      process.kill(s.gateway, "SIGKILL");
      expect(await s.top.exited).toBe(137);
    } finally {
      await runCleanups();
    }
  }, 120_000);
});
