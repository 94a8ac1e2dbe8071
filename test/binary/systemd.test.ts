// deploy/dutygate.service against the real tools: systemd-analyze verifies the unit and rates
// its exposure; strace shows that the binary, serving real requests, stays inside the sandbox the
// unit promises (system calls in @system-service, only the allowed socket families); and the
// memory W^X question (MemoryDenyWriteExecute) is answered from what the engine asks the kernel.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestIssuer, startTestUpstream, TEST_AUDIENCE, TEST_ISSUER } from "../support/harness.ts";
import { binaryUnderTest, runBinary, serveBinary, TEST_COMMIT, writeTestConfig } from "./support.ts";

const UNIT = join(import.meta.dir, "..", "..", "deploy", "dutygate.service");
const which = (tool: string) => Bun.which(tool, { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" });
const systemdAnalyze = which("systemd-analyze");
const strace = which("strace");
const cc = which("cc");

// test/run.sh installs systemd, strace and gcc from Debian when missing; without them (not root,
// no package access) these checks cannot run here, and say so rather than pass silently.
for (const [tool, path] of [["systemd-analyze", systemdAnalyze], ["strace", strace], ["cc", cc]] as const) {
  if (!path) console.warn(`test/binary/systemd.test.ts: \`${tool}\` not found; its checks are skipped (apt-get install systemd strace gcc)`);
}

let work: string;
let gateway: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "dutygate-systemd-"));
  gateway = binaryUnderTest(TEST_COMMIT).path;
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * A root tree for `systemd-analyze --root`: the distribution's unit files (targets the unit
 * refers to), the unit under test, and the executables its Exec lines name.
 */
function unitRoot(unitText: string): string {
  const root = mkdtempSync(join(work, "root-"));
  cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
  mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
  writeFileSync(join(root, "etc/systemd/system/dutygate.service"), unitText);
  mkdirSync(join(root, "usr/local/bin"), { recursive: true });
  copyFileSync(gateway, join(root, "usr/local/bin/gateway"));
  mkdirSync(join(root, "bin"), { recursive: true });
  copyFileSync("/bin/kill", join(root, "bin/kill"));
  Bun.spawnSync(["chmod", "755", join(root, "usr/local/bin/gateway"), join(root, "bin/kill")]);
  return root;
}

function analyze(args: string[], root: string): { code: number; out: string } {
  const r = Bun.spawnSync([systemdAnalyze!, ...args, `--root=${root}`, "/etc/systemd/system/dutygate.service"], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

describe.if(systemdAnalyze !== null)("systemd-analyze", () => {
  test("verify accepts deploy/dutygate.service without a single warning", () => {
    const r = analyze(["verify"], unitRoot(readFileSync(UNIT, "utf8")));
    expect(r.out.trim()).toBe("");
    expect(r.code).toBe(0);
  });

  // The check above must be able to fail: systemd only warns (exit 0) about unknown keys and bad values.
  const broken: Array<{ name: string; from: RegExp; to: string; says: string }> = [
    { name: "a misspelt key", from: /^NoNewPrivileges=yes$/m, to: "NoNewPrivilege=yes", says: "Unknown key" },
    { name: "a bad value", from: /^ProtectSystem=strict$/m, to: "ProtectSystem=sometimes", says: "protect system" },
    { name: "a missing executable", from: /^ExecStart=\/usr\/local\/bin\/gateway/m, to: "ExecStart=/usr/local/bin/gateway-missing", says: "not executable" },
  ];
  for (const b of broken) {
    test(`verify reports ${b.name}`, () => {
      const text = readFileSync(UNIT, "utf8");
      expect(text).toMatch(b.from);
      const r = analyze(["verify"], unitRoot(text.replace(b.from, b.to)));
      expect(r.out).toContain(b.says);
    });
  }

  test("security exposure (offline) is at most 2.0", () => {
    const r = analyze(["security", "--offline=true", "--no-pager"], unitRoot(readFileSync(UNIT, "utf8")));
    const score = Number(/Overall exposure level for dutygate\.service: ([\d.]+)/.exec(r.out)?.[1]);
    expect(score).toBeLessThanOrEqual(2.0);
  });
});

test("the unit's sandbox settings are the ones the deploy docs promise", () => {
  const unit = readFileSync(UNIT, "utf8");
  const settings = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  const one = (key: string) => settings.get(key)?.join(" ");
  expect(one("ExecStart")).toBe("/usr/local/bin/gateway serve --config /etc/dutygate/gateway.toml");
  expect(one("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
  expect(one("User")).toBe("dutygate");
  expect(one("ProtectSystem")).toBe("strict");
  expect(one("ReadWritePaths")).toBe("/var/lib/dutygate /var/log/dutygate");
  expect(one("NoNewPrivileges")).toBe("yes");
  expect(one("SystemCallFilter")).toBe("@system-service");
  expect(one("AmbientCapabilities")).toBe(""); // default ports are above 1024
  expect(settings.has("MemoryDenyWriteExecute")).toBe(false); // see the W^X test below
});

/** Expands a systemd syscall set (`@system-service`, which always adds `@default`) into names. */
function syscallSet(name: string): Set<string> {
  const text = Bun.spawnSync([systemdAnalyze!, "syscall-filter"], { stdout: "pipe" }).stdout.toString();
  const sets = new Map<string, string[]>();
  let current: string | null = null;
  for (const line of text.split("\n")) {
    if (/^@\S+$/.test(line)) { current = line.trim(); sets.set(current, []); continue; }
    const entry = line.trim();
    if (current && entry && !entry.startsWith("#")) sets.get(current)!.push(entry);
  }
  const out = new Set<string>();
  const add = (set: string) => {
    for (const e of sets.get(set) ?? []) e.startsWith("@") ? add(e) : out.add(e);
  };
  add(name);
  add("@default");
  return out;
}

describe.if(systemdAnalyze !== null && strace !== null)("under strace: serving real requests", () => {
  let trace = "";
  beforeAll(async () => {
    const dir = join(work, "strace");
    mkdirSync(dir, { recursive: true });
    const issuer = await createTestIssuer(dir);
    const upstream = startTestUpstream();
    try {
      expect(runBinary(gateway, ["init", "."], dir).code).toBe(0);
      writeTestConfig(dir, { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, upstreamUrl: upstream.url });
      const traceFile = join(dir, "trace.txt");
      const serving = await serveBinary(gateway, ["--config", "gateway.toml"], dir, 60_000, { prefix: [strace!, "-f", "-qq", "-o", traceFile] });
      const ca = readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8");
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      for (const path of ["/changes/1/submit", "/changes/2/approve"]) {
        const res = await fetch(serving.url + path, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { ca } } as RequestInit);
        expect([200, 403]).toContain(res.status);
      }
      serving.signal("SIGHUP"); // reload path: bundle re-read, certificates re-read
      expect(await serving.stop()).toBe(0);
      trace = readFileSync(traceFile, "utf8");
    } finally {
      upstream.stop();
    }
  }, 120_000);

  test("every system call is in SystemCallFilter=@system-service", () => {
    const used = new Set([...trace.matchAll(/^\d+\s+([a-z0-9_]+)\(/gm)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(20);
    const allowed = syscallSet("@system-service");
    expect([...used].filter((s) => !allowed.has(s)).sort()).toEqual([]);
  });

  test("sockets stay within RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", () => {
    const families = new Set([...trace.matchAll(/\bsocket\((AF_[A-Z0-9]+)/g)].map((m) => m[1]!));
    expect(families.has("AF_INET")).toBe(true);
    expect([...families].filter((f) => !["AF_INET", "AF_INET6", "AF_UNIX"].includes(f))).toEqual([]);
  });

  test("the engine maps writable+executable memory for its JIT, which MemoryDenyWriteExecute=yes would take away", () => {
    expect(trace).toMatch(/mmap\([^)]*PROT_READ\|PROT_WRITE\|PROT_EXEC/);
  });
});

describe.if(strace !== null && cc !== null && existsSync("/proc/self/status"))("under W^X (PR_SET_MDWE, what MemoryDenyWriteExecute=yes uses)", () => {
  test("the binary still serves, but its JIT mapping is refused: the engine falls back to the interpreter", async () => {
    const src = join(work, "mdwe.c");
    const launcher = join(work, "mdwe");
    // PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1 (Linux 6.3+); inherited across execve.
    writeFileSync(src, `#include <sys/prctl.h>
#include <unistd.h>
#include <stdio.h>
int main(int argc, char **argv) {
  if (prctl(65, 1, 0, 0, 0) != 0) { perror("prctl(PR_SET_MDWE)"); return 125; }
  execv(argv[1], argv + 1); perror("execv"); return 126;
}
`);
    const compiled = Bun.spawnSync([cc!, "-o", launcher, src], { stdout: "pipe", stderr: "pipe" });
    expect(compiled.exitCode).toBe(0);
    const dir = join(work, "mdwe-run");
    mkdirSync(dir, { recursive: true });
    const traceFile = join(dir, "trace.txt");
    expect(runBinary(gateway, ["init", ".", "--listen", "127.0.0.1:0"], dir).code).toBe(0);
    const serving = await serveBinary(gateway, ["--config", "gateway.toml"], dir, 60_000, { prefix: [strace!, "-f", "-qq", "-e", "trace=mmap,mprotect", "-o", traceFile, launcher] });
    const ca = readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8");
    const res = await fetch(serving.url + "/changes", { tls: { ca } } as RequestInit);
    expect(res.status).toBe(401); // served end to end: TLS, pipeline, problem body
    expect(await serving.stop()).toBe(0);
    expect(readFileSync(traceFile, "utf8")).toMatch(/mmap\([^)]*PROT_WRITE\|PROT_EXEC[^)]*\)\s*=\s*-1 EACCES/);
  }, 120_000);
});
