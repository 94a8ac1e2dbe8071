// The compiled binary as a bare VM meets it: copied alone into an empty directory, run under
// `env -i PATH=/usr/bin:/bin`, with nothing of the repository beside it. Real TLS on an ephemeral
// loopback port, a real ES256 issuer, a real upstream, real signed bundles and audit files.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXAMPLE_POLICY_FILES } from "../../src/init/mod.ts";
import { VERSION } from "../../src/version.ts";
import { createTestIssuer, drainText, runWithSlowReader, startTestUpstream, writeLargeReportPolicies, TEST_AUDIENCE, TEST_ISSUER, type TestIssuer, type TestUpstream } from "../support/harness.ts";
import { startLspSession, uriOf } from "../support/lsp-client.ts";
import { BARE_ENV, binaryUnderTest, runBinary, serveBinary, TEST_COMMIT, writeTestConfig } from "./support.ts";

let work: string;
let gateway: string;
let injectedCommit: string | null;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "dutygate-binary-"));
  const bin = binaryUnderTest(TEST_COMMIT);
  injectedCommit = bin.commit;
  // The binary alone in a directory of its own: nothing of the repository is reachable by path.
  mkdirSync(join(work, "bin"));
  gateway = join(work, "bin", "gateway");
  copyFileSync(bin.path, gateway);
  Bun.spawnSync(["chmod", "755", gateway]);
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh empty working directory. */
function emptyDir(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

test("--version prints the version and the commit injected at build time", () => {
  const r = runBinary(gateway, ["--version"], emptyDir("version"));
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toBe(`gateway ${VERSION} (${injectedCommit ?? r.stdout.trim().replace(/^.*\((.*)\)$/, "$1")})`);
  expect(r.stdout).not.toContain("(source)");
});

test("the binary holds no path into the repository", () => {
  const bytes = readFileSync(gateway).toString("latin1");
  // node_modules by its real path too: a dependency's frozen `__filename` names it, and in a
  // checkout whose node_modules is linked from elsewhere that path is outside the repository.
  const repo = join(import.meta.dir, "..", "..");
  for (const path of [repo, realpathSync(join(repo, "node_modules"))]) expect({ path, found: bytes.includes(path) }).toEqual({ path, found: false });
});

describe("gateway init and check", () => {
  let site: string;
  beforeAll(() => {
    site = join(emptyDir("init"), "site");
  });

  test("init writes the starter config and the embedded example policies", () => {
    const r = runBinary(gateway, ["init", "site"], join(site, ".."));
    expect(r.code).toBe(0);
    expect(readdirSync(join(site, "policies")).sort()).toEqual(EXAMPLE_POLICY_FILES.map((f) => f.path).sort());
    for (const f of EXAMPLE_POLICY_FILES) expect(readFileSync(join(site, "policies", f.path), "utf8")).toBe(f.text);
    expect(readFileSync(join(site, "gateway.toml"), "utf8")).toContain('state_dir = "./state"');
  });

  test("init refuses to overwrite (exit 6) and leaves the files as they were", () => {
    writeFileSync(join(site, "gateway.toml"), "# mine\n");
    const r = runBinary(gateway, ["init", "site"], join(site, ".."));
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("INIT_FILE_EXISTS");
    expect(readFileSync(join(site, "gateway.toml"), "utf8")).toBe("# mine\n");
  });

  const cases: Array<{ name: string; edit: (dir: string) => void; args?: string[]; code: number; says: string }> = [
    { name: "the example policies pass", edit: () => {}, code: 0, says: "0 errors" },
    { name: "a type error", edit: (d) => appendFileSync(join(d, "logs.duty"), "\ngrant auditor read_logz\n"), code: 1, says: "read_logz" },
    {
      name: "a failing policy test", code: 2, says: "failed",
      edit: (d) => writeFileSync(join(d, "logs.test.toml"), readFileSync(join(d, "logs.test.toml"), "utf8").replace(/expect = "allow"/, 'expect = "deny"')),
    },
    { name: "an unknown flag", edit: () => {}, args: ["--frobnicate"], code: 64, says: "unknown flag" },
  ];
  for (const c of cases) {
    test(`check: ${c.name} → exit ${c.code}`, () => {
      const dir = emptyDir(`check-${c.code}`);
      for (const f of EXAMPLE_POLICY_FILES) writeFileSync(join(dir, f.path), f.text);
      c.edit(dir);
      const r = runBinary(gateway, ["check", ".", ...(c.args ?? [])], dir);
      expect(r.code).toBe(c.code);
      expect(r.stdout + r.stderr).toContain(c.says);
    });
  }

  test("regression: a report larger than a pipe holds arrives whole in every format when read late", async () => {
    const dir = writeLargeReportPolicies(emptyDir("large-report"));
    const runs = await Promise.all(["text", "json", "github", "junit"].map((format) => runWithSlowReader([gateway, "check", dir, "--format", format], { cwd: dir, env: { ...BARE_ENV } })));
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(run.stdout.length).toBeGreaterThan(2 * 65_536);
    }
    const [text, json, github, junit] = runs.map((r) => r.stdout.toString("utf8"));
    expect(text!.trimEnd().split("\n").at(-1)).toStartWith("FAILED: ");
    expect((JSON.parse(json!) as { exitCode: number }).exitCode).toBe(2);
    expect(github!.split("\n").filter((l) => l.startsWith("::error ")).length).toBe(700);
    expect(junit!.trimEnd()).toEndWith("</testsuites>");
  }, 120_000);
});

describe("authoring tools in the binary", () => {
  test("fmt --check passes the embedded example policies and flags a messy one (exit 7)", () => {
    const dir = emptyDir("fmt");
    for (const f of EXAMPLE_POLICY_FILES) writeFileSync(join(dir, f.path), f.text);
    expect(runBinary(gateway, ["fmt", "--check", "."], dir)).toMatchObject({ code: 0, stdout: "" });
    writeFileSync(join(dir, "extra.duty"), "grant   auditor,sre read_logs\n");
    const r = runBinary(gateway, ["fmt", "--check", "."], dir);
    expect(r.code).toBe(7);
    expect(r.stdout.trim()).toBe("extra.duty");
  });

  test("lsp answers initialize, hover and diagnostics over stdio, and exits on `exit`", async () => {
    const dir = emptyDir("lsp");
    for (const f of EXAMPLE_POLICY_FILES) writeFileSync(join(dir, f.path), f.text);
    const session = await startLspSession([gateway, "lsp", "--stdio"], { cwd: dir, env: { ...BARE_ENV } });
    try {
      expect(session.initializeResult.serverInfo?.name).toBe("dutygate");
      const file = join(dir, "logs.duty");
      const text = readFileSync(file, "utf8");
      expect(await session.open(uriOf(file), text)).toEqual([]);
      const at = text.indexOf("read_logs", text.indexOf("grant"));
      const line = text.slice(0, at).split("\n").length - 1;
      const hover = await session.connection.sendRequest("textDocument/hover", { textDocument: { uri: uriOf(file) }, position: { line, character: at - text.lastIndexOf("\n", at - 1) - 1 } }) as { contents: { value: string } };
      expect(hover.contents.value).toContain("`GET /logs/*` → upstream `logs`");
      const diags = await session.change(uriOf(file), text + "grant auditor read_logz\n");
      expect(diags.map((d) => d.code)).toEqual(["E_UNKNOWN_DUTY"]);
      expect(await session.close()).toBe(0);
    } finally {
      session.kill();
    }
  }, 60_000);
});

describe("serve from a config file, signed bundle, real token", () => {
  let dir: string;
  let issuer: TestIssuer;
  let upstream: TestUpstream;
  let serving: Awaited<ReturnType<typeof serveBinary>>;
  let exitCode: number;

  beforeAll(async () => {
    dir = emptyDir("serve");
    issuer = await createTestIssuer(dir);
    upstream = startTestUpstream();
    expect(runBinary(gateway, ["init", "."], dir).code).toBe(0);
    expect(runBinary(gateway, ["keygen", "--out", "keys", "--kid", "reviewer-1"], dir).code).toBe(0);
    expect(runBinary(gateway, ["sign", "policies", "--key", "keys/reviewer-1.private.jwk"], dir).code).toBe(0);
    writeTestConfig(dir, { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, upstreamUrl: upstream.url, trustedKeys: "keys/trusted.jwks" });
    serving = await serveBinary(gateway, ["--config", "gateway.toml"], dir);
  }, 60_000);
  afterAll(async () => {
    upstream?.stop();
  });

  /** Trusts exactly the certificate the gateway created for itself on first start. */
  function gatewayFetch(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
    const ca = readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8");
    const headers = new Headers(init.headers);
    if (init.token) headers.set("authorization", `Bearer ${init.token}`);
    return fetch(serving.url + path, { ...init, headers, tls: { ca } } as RequestInit);
  }

  test("the banner names an ephemeral loopback port and the signer", () => {
    expect(serving.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(serving.url).not.toEndWith(":0");
    expect(serving.stdout()).toContain("signed by reviewer-1");
  });

  test("allowed: a developer submits a change, forwarded over verified TLS", async () => {
    const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
    const res = await gatewayFetch("/changes/42/submit", { method: "POST", token, body: "x" });
    expect(res.status).toBe(200);
    expect(upstream.received.at(-1)?.path).toBe("/changes/42/submit");
    expect(upstream.received.at(-1)?.headers.authorization).toBeUndefined();
  });

  test("denied: the submitter may not approve the same change", async () => {
    const token = await issuer.token({ sub: "alice", roles: ["reviewer"], mfa: true });
    const before = upstream.received.length;
    const res = await gatewayFetch("/changes/42/approve", { method: "POST", token });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe("DENY_SOD_HISTORY");
    expect(upstream.received.length).toBe(before);
  });

  test("the duty ledger's WAL checkpoints run on a thread of their own (the worker entry is in the binary)", () => {
    const threads = readdirSync(`/proc/${serving.pid}/task`).map((t) => readFileSync(`/proc/${serving.pid}/task/${t}/comm`, "utf8").trim());
    expect(threads).toContain("Worker");
    expect(serving.stderr()).not.toContain("checkpoints run on the event loop");
  });

  test("denied: no grant for a developer to approve", async () => {
    const token = await issuer.token({ sub: "dora", roles: ["developer"], mfa: true });
    const res = await gatewayFetch("/changes/43/approve", { method: "POST", token });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe("DENY_NO_GRANT");
  });

  test("verify accepts the signed bundle and rejects a changed file (exit 4)", () => {
    expect(runBinary(gateway, ["verify", "policies", "--keys", "keys/trusted.jwks"], dir).code).toBe(0);
    const copy = emptyDir("serve-tampered");
    for (const name of readdirSync(join(dir, "policies"))) copyFileSync(join(dir, "policies", name), join(copy, name));
    appendFileSync(join(copy, "logs.duty"), "\n# a comment changes the digest\n");
    const r = runBinary(gateway, ["verify", copy, "--keys", join(dir, "keys", "trusted.jwks")], dir);
    expect(r.code).toBe(4);
    expect(r.stdout + r.stderr).toContain("BUNDLE_FILE_CHANGED");
  });

  test("SIGTERM stops gracefully (exit 0); audit verify proves the chain, and catches tampering (exit 4)", async () => {
    exitCode = await serving.stop();
    expect(exitCode).toBe(0);
    const keys = join("state", "gateway-key", "public.jwks");
    const ok = runBinary(gateway, ["audit", "verify", "audit", "--keys", keys], dir);
    expect(ok.stdout + ok.stderr).not.toContain("error");
    expect(ok.code).toBe(0);
    const file = readdirSync(join(dir, "audit")).find((n) => n.endsWith(".jsonl"))!;
    const path = join(dir, "audit", file);
    writeFileSync(path, readFileSync(path, "utf8").replace('"decision":"deny"', '"decision":"allow"'));
    expect(runBinary(gateway, ["audit", "verify", "audit", "--keys", keys], dir).code).toBe(4);
  }, 60_000);
});

test("workers = 2: the binary starts itself again as each worker; both serve, stop on SIGTERM, and leave a chain each", async () => {
  const dir = emptyDir("workers");
  const issuer = await createTestIssuer(dir);
  const upstream = startTestUpstream();
  try {
    expect(runBinary(gateway, ["init", "."], dir).code).toBe(0);
    const config = writeTestConfig(dir, { issuer: TEST_ISSUER, audience: TEST_AUDIENCE, upstreamUrl: upstream.url });
    writeFileSync(config, readFileSync(config, "utf8").replace(/^\[listen\]\n/m, "[listen]\nworkers = 2\n"));
    const serving = await serveBinary(gateway, ["--config", "gateway.toml"], dir, 60_000, { waitFor: /^workers: 2 processes share /m });
    let stopped = false;
    try {
      const pids = (JSON.parse(serving.stderr().split("\n").find((l) => l.includes('"msg":"workers serving"'))!) as { pids: number[] }).pids;
      expect(pids.length).toBe(2);
      // Each worker is the binary itself, run again with `serve`: no runtime, no script path.
      for (const pid of pids) {
        expect(realpathSync(`/proc/${pid}/exe`)).toBe(realpathSync(gateway));
        expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1, 2)).toEqual(["serve"]);
      }
      const ca = readFileSync(join(dir, "state", "tls", "listen", "cert.pem"), "utf8");
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      // Fresh connections until both workers have answered: the kernel spreads them (SO_REUSEPORT).
      for (let i = 0; i < 200 && new Set(readdirSync(join(dir, "audit")).map((n) => /^audit-(w\d+)-/.exec(n)?.[1])).size < 2; i++) {
        const res = await fetch(`${serving.url}/changes/w-${i}/submit`, { method: "POST", body: "x", keepalive: false, headers: { authorization: `Bearer ${token}` }, tls: { ca } } as RequestInit);
        expect(res.status).toBe(200);
      }
      stopped = true;
      expect(await serving.stop()).toBe(0);
      for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    } finally {
      if (!stopped) await serving.stop();
    }
    const verify = runBinary(gateway, ["audit", "verify", "audit", "--keys", join("state", "gateway-key", "public.jwks")], dir);
    expect(verify.stdout.trim().split("\n").at(-1)).toBe("ok: 2 chains intact");
    expect(verify.code).toBe(0);
  } finally {
    upstream.stop();
  }
}, 120_000);

/** The local addresses (IPv4, from /proc/net/tcp) with a socket listening on `port`. */
function listeningOn(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).map((line) => line.trim().split(/\s+/))
    .filter((f) => f[3] === "0A" && f[1]?.endsWith(`:${hexPort}`))
    .map((f) => Buffer.from(f[1]!.split(":")[0]!, "hex").reverse().join("."));
}

test("an empty directory serves the built-in default: demo token allowed, and denied where the policy says", async () => {
  const dir = emptyDir("builtin");
  const serving = await serveBinary(gateway, [], dir, 30_000, { waitFor: /# allowed: another person\n/ });
  try {
    expect(serving.stdout()).toContain("wrote the example policies");
    // The demo binds loopback, and the banner says the address it holds.
    expect(serving.stdout()).toContain("dutygate listening on https://127.0.0.1:8443 (operational");
    expect(listeningOn(8443)).toEqual(["127.0.0.1"]);
    const curls = [...serving.stdout().matchAll(/curl -k -X POST (\S+) -H "authorization: Bearer (\S+)"/g)].map((m) => ({ url: m[1]!, token: m[2]! }));
    expect(curls.length).toBe(3);
    const ca = readFileSync(join(dir, ".state", "tls", "listen", "cert.pem"), "utf8");
    const call = (c: { url: string; token: string }) =>
      fetch(c.url, { method: "POST", headers: { authorization: `Bearer ${c.token}` }, tls: { ca } } as RequestInit);
    expect((await call(curls[0]!)).status).toBe(200); // alice submits
    expect((await call(curls[1]!)).status).toBe(403); // alice may not approve
  } finally {
    expect(await serving.stop()).toBe(0);
  }
}, 60_000);

test("gateway play serves its page, grammar and API from the binary alone, on loopback", async () => {
  const dir = emptyDir("play");
  // Its own process group, killed by PID whatever happens.
  const child = Bun.spawn([gateway, "play", "--listen", "127.0.0.1:0"], { cwd: dir, env: { ...BARE_ENV }, stdout: "pipe", stderr: "pipe", detached: true });
  let out = "";
  void drainText(child.stdout, (s) => (out += s));
  void drainText(child.stderr, (s) => (out += s));
  try {
    const until = Date.now() + 30_000;
    let url: string | null = null;
    while (!url && Date.now() < until && child.exitCode === null) {
      url = /dutygate playground on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1] ?? null;
      await Bun.sleep(20);
    }
    expect({ url: url !== null, out }).toEqual({ url: true, out: expect.stringContaining("the example policies") });
    const page = await fetch(url!);
    expect(await page.text()).toContain("<title>dutygate playground</title>");
    for (const asset of ["app.js", "highlight.js", "style.css"]) expect((await fetch(`${url}${asset}`)).status).toBe(200);
    expect((await (await fetch(`${url}duty.tmLanguage.json`)).json()).scopeName).toBe("source.duty");
    const { files } = (await (await fetch(`${url}api/files`)).json()) as { files: Array<{ path: string; text: string }> };
    expect(files.map((f) => f.path)).toEqual(EXAMPLE_POLICY_FILES.map((f) => f.path));
    const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then((r) => r.json());
    const analysis = await post("api/analyze", { files });
    expect(analysis).toMatchObject({ ok: true, diagnostics: [] });
    expect(analysis.tests.length).toBeGreaterThan(0);
    expect(analysis.tests.every((t: { passed: boolean }) => t.passed)).toBe(true);
    const explained = await post("api/explain", { files, principal: { sub: "alice", roles: ["developer"], mfa: true, team: "core" }, request: "POST /changes/42/submit" });
    expect(explained.explanation.decision).toMatchObject({ allow: true, decidedBy: "grant:changes.duty:10:1" });
  } finally {
    try { process.kill(-child.pid, "SIGKILL"); } catch { /* the group is gone already */ }
    await child.exited;
  }
}, 60_000);
