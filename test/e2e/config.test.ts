// Starting the gateway: `gateway serve --config FILE` as a real subprocess (bad configuration and
// broken policies fail closed with exit code 6 and positions; a good one serves), and the
// built-in default (no config file) in-process, with its self-signed certificate created under
// `.state` on the first start and reused on the next.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { defaultConfig, ensureDemoIssuer, mintDemoToken } from "../../src/config/mod.ts";
import type { GatewayConfig } from "../../src/config/types.ts";
import { createLogger } from "../../src/gateway/log.ts";
import { startGateway } from "../../src/gateway/serve.ts";
import { EXIT } from "../../src/cli/io.ts";
import { serveBinary } from "../binary/support.ts";
import { createTestIssuer, REPO_ROOT, SHIPPED_POLICIES, startTestUpstream, TEST_AUDIENCE, TEST_ISSUER, type TestIssuer, type TestUpstream } from "../support/harness.ts";

const MAIN = join(REPO_ROOT, "src", "main.ts");
/** The project's bun: the runtime running this test. */
const BUN = process.execPath;

let dir: string;
let issuer: TestIssuer;
let upstream: TestUpstream;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dutygate-config-e2e-"));
  issuer = await createTestIssuer(dir);
  upstream = startTestUpstream();
});
afterAll(() => {
  upstream?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `gateway ARGS` to completion in `cwd` (killed after 30 s, which fails the test's exit-code check). */
function runGateway(args: string[], cwd: string): { code: number | null; stdout: string; stderr: string } {
  const r = Bun.spawnSync([BUN, MAIN, ...args], { cwd, stdout: "pipe", stderr: "pipe", timeout: 30_000, env: { PATH: "/usr/bin:/bin", HOME: cwd } });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A valid config: loopback port 0, the test issuer, every upstream to the recording upstream, unsigned policies from `policies/`. */
function goodConfig(stateDir: string): string {
  return `state_dir = "${stateDir}"
[listen]
address = "127.0.0.1:0"
[issuers.test]
issuer = "${TEST_ISSUER}"
audience = "${TEST_AUDIENCE}"
jwks_file = "issuer.jwks"
algorithms = ["ES256"]
${["changes", "deploy", "logs", "admin"].map((u) => `[upstreams.${u}]\nurl = "${upstream.url}"\n`).join("")}[policy]
dir = "policies"
require_signature = false
watch = false
[audit]
dir = "audit-${stateDir}"
[shutdown]
drain = "0s"
`;
}

describe("gateway serve --config (subprocess)", () => {
  test("a bad config file: exit 6, every error with file:line:col, code and key path", () => {
    const file = join(dir, "bad.toml");
    writeFileSync(file, [
      `state_dir = "./state-bad"`, //                                      1
      `[listen]`, //                                                        2
      `adress = "127.0.0.1:0"`, //                                          3 unknown key
      `[issuers.test]`, //                                                  4
      `issuer = "${TEST_ISSUER}"`, //                                       5
      `audience = "${TEST_AUDIENCE}"`, //                                   6
      `jwks_file = "issuer.jwks"`, //                                       7
      `max_lifetime = "forever"`, //                                        8 bad duration
      `[upstreams.changes]`, //                                             9
      `url = "not a url"`, //                                               10 bad URL
      `[policy]`, //                                                        11
      `require_signature = "no"`, //                                        12 wrong type
      ``,
    ].join("\n"));
    const r = runGateway(["serve", "--config", file], dir);
    expect(r.code).toBe(EXIT.config);
    expect(r.stdout).not.toContain("dutygate listening");
    const lines = r.stderr.split("\n").filter((l) => l.includes(": error["));
    const found = lines.map((l) => /^(.*):(\d+):(\d+): error\[(\w+)\]: ([\w.\[\]]+)/.exec(l)?.slice(1, 6));
    expect(found).toEqual(expect.arrayContaining([
      [file, "3", expect.any(String), "CONFIG_UNKNOWN_KEY", "listen.adress"],
      [file, "8", expect.any(String), "CONFIG_BAD_DURATION", "issuers.test.max_lifetime"],
      [file, "10", expect.any(String), "CONFIG_BAD_URL", "upstreams.changes.url"],
      [file, "12", expect.any(String), "CONFIG_WRONG_TYPE", "policy.require_signature"],
    ]));
    expect(r.stderr).toContain("did you mean `address`?");
  });

  test("a TOML syntax error: exit 6 with its position", () => {
    const file = join(dir, "syntax.toml");
    writeFileSync(file, `[listen]\naddress = "127.0.0.1:0\n`);
    const r = runGateway(["serve", "--config", file], dir);
    expect(r.code).toBe(EXIT.config);
    expect(r.stderr).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2:\\d+: error\\[CONFIG_SYNTAX\\]`));
  });

  test("a config file that does not exist: exit 6 naming it", () => {
    const r = runGateway(["serve", "--config", join(dir, "missing.toml")], dir);
    expect(r.code).toBe(EXIT.config);
    expect(r.stderr).toContain("CONFIG_NOT_FOUND");
    expect(r.stderr).toContain("missing.toml");
  });

  test("a broken policy: serve refuses to start (fail closed), exit 6, the problem at file:line:col", () => {
    const work = mkdtempSync(join(dir, "broken-"));
    cpSync(SHIPPED_POLICIES, join(work, "policies"), { recursive: true });
    cpSync(issuer.jwksFile, join(work, "issuer.jwks"));
    // Line 2, column 7: a role the policy does not declare (a typo of `developer`).
    writeFileSync(join(work, "policies", "broken.duty"), `duty broken_duty POST /broken -> changes\ngrant developr broken_duty\n`);
    writeFileSync(join(work, "gateway.toml"), goodConfig("state"));
    const r = runGateway(["serve", "--config", "gateway.toml"], work);
    expect(r.code).toBe(EXIT.config);
    expect(r.stdout).not.toContain("dutygate listening");
    expect(r.stderr).toContain("POLICY_UNAVAILABLE");
    expect(r.stderr).toMatch(/broken\.duty:2:7: error\[\w+\]: .*`developr`/);
    // Nothing was served: no audit file was started.
    expect(existsSync(join(work, "audit-state"))).toBe(false);
  });

  test("the same setup with a valid policy serves, answers over TLS, and stops cleanly on SIGTERM", async () => {
    const work = mkdtempSync(join(dir, "good-"));
    cpSync(SHIPPED_POLICIES, join(work, "policies"), { recursive: true });
    cpSync(issuer.jwksFile, join(work, "issuer.jwks"));
    writeFileSync(join(work, "gateway.toml"), goodConfig("state"));
    const served = await serveBinary(MAIN, ["--config", "gateway.toml"], work, 30_000, { prefix: [BUN] });
    try {
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const res = await fetch(`${served.url}/changes/1/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
      expect(res.status).toBe(200);
      expect(served.stdout()).toContain("WARNING: policy signatures are NOT required");
    } finally {
      expect(await served.stop()).toBe(0);
    }
  }, 40_000);
});

describe("the built-in default (no config file)", () => {
  test("policies from ./policies, state in ./.state, a self-signed certificate created once and reused", async () => {
    const cwd = mkdtempSync(join(dir, "default-"));
    cpSync(SHIPPED_POLICIES, join(cwd, "policies"), { recursive: true });
    const base = defaultConfig({ cwd });
    expect(base).toMatchObject({ source: null, stateDir: join(cwd, ".state"), demo: true });
    expect(base.policy).toMatchObject({ dir: join(cwd, "policies"), requireSignature: false });
    expect(base.audit.dir).toBe(join(cwd, "audit"));
    expect({ host: base.listen.host, port: base.listen.port, certificate: base.listen.certificate }).toEqual({ host: "127.0.0.1", port: 8443, certificate: null });

    // Not bound to 8443 (another process may hold it), and the demo upstreams' fixed ports are
    // replaced by a recording upstream for the same reason; everything else is the default.
    await ensureDemoIssuer(base.stateDir);
    const config: GatewayConfig = {
      ...base,
      demo: false,
      listen: { ...base.listen, host: "127.0.0.1", port: 0 },
      upstreams: Object.fromEntries(Object.values(base.upstreams).map((u) => [u.name, { ...u, url: upstream.url }])),
      policy: { ...base.policy, watch: false },
    };
    const certFile = join(cwd, ".state", "tls", "listen", "cert.pem");
    expect(existsSync(certFile)).toBe(false);

    const first = await startOnce(config);
    expect(existsSync(certFile)).toBe(true);
    const created = { pem: readFileSync(certFile, "utf8"), mtimeMs: statSync(certFile).mtimeMs };
    const onDisk = new X509Certificate(created.pem).fingerprint256;
    expect(first.servedFingerprint).toBe(onDisk);
    expect(first.status).toBe(200);
    expect(statSync(join(cwd, ".state", "tls", "listen", "key.pem")).mode & 0o777).toBe(0o600);

    const second = await startOnce(config);
    expect(second.servedFingerprint).toBe(onDisk);
    expect(readFileSync(certFile, "utf8")).toBe(created.pem);
    expect(statSync(certFile).mtimeMs).toBe(created.mtimeMs);
    expect(second.status).toBe(200);
    // The gateway's own key is reused as well: upstreams keep trusting the same JWKS.
    expect(second.kid).toBe(first.kid);
  }, 30_000);
});

/** Starts the gateway, reads the served certificate's fingerprint, sends one demo-token request, stops. */
async function startOnce(config: GatewayConfig): Promise<{ servedFingerprint: string; status: number; kid: string }> {
  const gw = await startGateway(config, { log: createLogger("error") });
  try {
    const port = gw.operational.port;
    const servedFingerprint = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false }, () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      });
      socket.once("error", reject);
      socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
    });
    const token = await mintDemoToken(config.stateDir, { sub: "alice", roles: ["developer"], mfa: true, team: "core" });
    const res = await fetch(`${gw.operational.url}/changes/7/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
    await res.arrayBuffer();
    return { servedFingerprint, status: res.status, kid: gw.gatewayKey.kid };
  } finally {
    await gw.stop({ drainMs: 0, deadlineMs: 2000 });
  }
}
