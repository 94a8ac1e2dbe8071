// A start that cannot succeed ends with one coded line and exit 6, never a stack trace. Each case
// breaks one input of `gateway serve` (the state directory, the gateway key, the listener's
// certificate, the ledger) and runs the real command in its own process group. Regression: a
// garbage `state_dir/gateway-key/private.jwk` made `serve` die with a stack trace and exit 1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { EXIT } from "../../src/cli/io.ts";
import { GatewayError } from "../../src/errors.ts";
import { startupFailure } from "../../src/cli/mod.ts";
import { createCa, issueCertificate, type IssuedCertificate } from "../support/pki.ts";
import { createTestIssuer, runServeUntilExitOrBanner, SHIPPED_POLICIES, writeProcessConfig, type TestIssuer } from "../support/harness.ts";

const tmp = mkdtempSync(join(tmpdir(), "dutygate-startup-errors-"));
let issuer: TestIssuer;
let serverCert: IssuedCertificate;
let otherCert: IssuedCertificate;
let edPrivate: Record<string, unknown>;
let edOtherPrivate: Record<string, unknown>;
let p256Private: Record<string, unknown>;

beforeAll(async () => {
  issuer = await createTestIssuer(tmp);
  const pki = join(tmp, "pki");
  mkdirSync(pki);
  const ca = await createCa(pki, "startup-ca");
  serverCert = await issueCertificate(pki, ca, { commonName: "server", dnsNames: ["localhost"] });
  otherCert = await issueCertificate(pki, ca, { commonName: "other", dnsNames: ["localhost"] });
  const privateJwk = async (alg: "EdDSA" | "ES256") => exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey);
  edPrivate = { ...(await privateJwk("EdDSA")), kid: "gateway-test", alg: "EdDSA" };
  edOtherPrivate = { ...(await privateJwk("EdDSA")), kid: "gateway-test", alg: "EdDSA" };
  p256Private = { ...(await privateJwk("ES256")), kid: "gateway-test", alg: "ES256" };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `<state>/gateway-key/private.jwk` (a string as is, anything else as JSON). */
function gatewayKeyFile(state: string, content: unknown): void {
  mkdirSync(join(state, "gateway-key"), { recursive: true });
  writeFileSync(join(state, "gateway-key", "private.jwk"), typeof content === "string" ? content : JSON.stringify(content));
}

interface Case {
  name: string;
  /** Breaks one input; `state` is the state directory (not created yet). Returns `[listen]` TOML lines, if any. */
  breakIt: (state: string, dir: string) => string | void;
  code: RegExp;
  says: RegExp;
  /** More TOML at the end of the config (after `[ledger]`), e.g. another upstream. */
  extra?: (dir: string) => string;
}

const cases: Case[] = [
  { name: "gateway key that is not JSON", breakIt: (s) => gatewayKeyFile(s, "garbage\n"), code: /GATEWAY_KEY_NOT_JSON/, says: /private\.jwk` is not valid JSON/ },
  { name: "gateway key that is JSON null", breakIt: (s) => gatewayKeyFile(s, "null"), code: /GATEWAY_KEY_INVALID/, says: /is not a JWK object/ },
  { name: "gateway key that is an empty object", breakIt: (s) => gatewayKeyFile(s, {}), code: /GATEWAY_KEY_INVALID/, says: /is not an Ed25519 key/ },
  { name: "gateway key that is only a public key", breakIt: (s) => gatewayKeyFile(s, { ...edPrivate, d: undefined }), code: /GATEWAY_KEY_INVALID/, says: /holds no private key/ },
  { name: "gateway key of another kind (P-256)", breakIt: (s) => gatewayKeyFile(s, p256Private), code: /GATEWAY_KEY_INVALID/, says: /is not an Ed25519 key/ },
  { name: "gateway key without a kid", breakIt: (s) => gatewayKeyFile(s, { ...edPrivate, kid: undefined }), code: /GATEWAY_KEY_INVALID/, says: /has no `kid`/ },
  { name: "gateway key whose halves do not match", breakIt: (s) => gatewayKeyFile(s, { ...edPrivate, x: edOtherPrivate.x }), code: /GATEWAY_KEY_INVALID/, says: /not a usable Ed25519 key pair/ },
  { name: "gateway key with an undecodable `d`", breakIt: (s) => gatewayKeyFile(s, { ...edPrivate, d: "!!" }), code: /GATEWAY_KEY_INVALID/, says: /not a usable Ed25519 key pair/ },
  { name: "gateway key path that is a directory", breakIt: (s) => void mkdirSync(join(s, "gateway-key", "private.jwk"), { recursive: true }), code: /GATEWAY_KEY_UNREADABLE/, says: /cannot read the gateway key `.*private\.jwk`: is a directory/ },
  { name: "state_dir that is a regular file", breakIt: (s) => writeFileSync(s, "not a directory\n"), code: /FILE_ACCESS_FAILED/, says: /cannot mkdir `.*\.state`/ },
  { name: "state_dir/gateway-key that is a regular file", breakIt: (s) => { mkdirSync(s); writeFileSync(join(s, "gateway-key"), "x\n"); }, code: /FILE_ACCESS_FAILED/, says: /gateway-key`/ },
  { name: "state_dir/tls that is a regular file (no self-signed certificate possible)", breakIt: (s) => { mkdirSync(s); writeFileSync(join(s, "tls"), "x\n"); }, code: /FILE_ACCESS_FAILED/, says: /tls\/listen`: not a directory/ },
  {
    name: "listener certificate that is not PEM",
    breakIt: (_s, d) => { writeFileSync(join(d, "cert.pem"), "not a certificate\n"); return `cert = ${JSON.stringify(join(d, "cert.pem"))}\nkey = ${JSON.stringify(serverCert.keyFile)}`; },
    code: /TLS_BAD_CERTIFICATE/, says: /cert\.pem`/,
  },
  { name: "listener certificate file missing", breakIt: (_s, d) => `cert = ${JSON.stringify(join(d, "absent.pem"))}\nkey = ${JSON.stringify(serverCert.keyFile)}`, code: /CONFIG_[A-Z_]+/, says: /absent\.pem`/ },
  { name: "listener key of another certificate", breakIt: () => `cert = ${JSON.stringify(serverCert.certFile)}\nkey = ${JSON.stringify(otherCert.keyFile)}`, code: /TLS_BAD_CERTIFICATE/, says: /server\.pem` with key `.*other\.key`/ },
  {
    name: "upstream `ca` that holds no certificate",
    breakIt: (_s, d) => void writeFileSync(join(d, "upstream-ca.pem"), "not a certificate\n"),
    extra: (d) => `[upstreams.internal]\nurl = "https://127.0.0.1:9"\nca = ${JSON.stringify(join(d, "upstream-ca.pem"))}`,
    code: /CONFIG_BAD_VALUE/, says: /upstreams\.internal\.ca: `.*upstream-ca\.pem` holds no PEM certificate/,
  },
  { name: "ledger path that is a directory", breakIt: (s) => void mkdirSync(join(s, "ledger.sqlite"), { recursive: true }), code: /LEDGER_[A-Z_]+/, says: /ledger\.sqlite`/ },
];

let seq = 0;
/** A fresh gateway directory broken by `breakIt`, run with the real `serve`. */
async function serveBroken(breakIt: Case["breakIt"], extra: Case["extra"] = () => "") {
  const dir = join(tmp, `case-${++seq}`);
  mkdirSync(dir);
  const listenToml = breakIt(join(dir, ".state"), dir) ?? "";
  const config = writeProcessConfig(dir, { upstreamUrl: "http://127.0.0.1:9", issuer, policyDir: SHIPPED_POLICIES, listenToml, extra: `[ledger]\npath = ${JSON.stringify(join(dir, ".state", "ledger.sqlite"))}\n${extra(dir)}` });
  return runServeUntilExitOrBanner(config, { cwd: dir });
}

describe("serve refuses a broken start with a coded error and exit 6, never a stack trace", () => {
  test("control: the unbroken directory starts", async () => {
    const run = await serveBroken(() => {});
    expect(run.stdout).toContain("dutygate listening on https://127.0.0.1:");
    expect(run.exitCode).toBeNull();
  }, 60_000);

  for (const c of cases) {
    test(c.name, async () => {
      const run = await serveBroken(c.breakIt, c.extra);
      const output = `${run.stdout}\n${run.stderr}`;
      const errorLine = run.stderr.split("\n").find((line) => line.includes("error[")) ?? "(no error line)";
      expect(errorLine).toMatch(new RegExp(`^(\\S+:\\d+:\\d+: )?error\\[${c.code.source}\\]: `));
      expect(errorLine).toMatch(c.says);
      // Neither a stack frame nor the source excerpt Bun prints above an uncaught error.
      expect(output).not.toContain("    at ");
      expect(output).not.toMatch(/^\s*\d+ \| /m);
      expect(run.exitCode).toBe(EXIT.config);
    }, 60_000);
  }
});

describe("startupFailure: the one mapping of a failed start to a code", () => {
  test("an exception no check foresaw is STARTUP_FAILED with its first message line", () => {
    const coded = startupFailure(new TypeError("undefined is not an object\n    at somewhere (x.ts:1:1)"));
    expect(coded.code).toBe("STARTUP_FAILED");
    expect(coded.message).toBe("cannot start: TypeError: undefined is not an object");
  });
  test("a thrown non-error value is STARTUP_FAILED too", () => {
    expect(startupFailure("boom").message).toBe("cannot start: boom");
  });
  test("a file-system error is FILE_ACCESS_FAILED naming the path; a coded error keeps its code", () => {
    const enoent = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT", syscall: "open", path: "/x/y" });
    expect(startupFailure(enoent).code).toBe("FILE_ACCESS_FAILED");
    expect(startupFailure(enoent).message).toBe("cannot open `/x/y`: no such file or directory (ENOENT)");
    expect(startupFailure(new GatewayError("GATEWAY_KEY_INVALID", "m")).code).toBe("GATEWAY_KEY_INVALID");
  });
});
