import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { formatConfigErrors, loadConfig, parseAddress, parseConfigText, parseSize } from "./mod.ts";
import type { ConfigError, ConfigErrorCode } from "./mod.ts";
import { X509Certificate } from "node:crypto";
import { createCa, issueCertificate } from "../../test/support/pki.ts";

// Every case writes a real gateway.toml into a temp dir that also holds the files configs name
// (their content only matters for JWKS files, which are parsed at load time).
let dir: string;
const publicJwk = (kid: string) => ({ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dutygate-config-"));
  for (const sub of ["certs", "ca", "keys"]) mkdirSync(join(dir, sub));
  for (const f of ["certs/listen.pem", "certs/listen.key", "certs/admin.pem", "certs/admin.key", "certs/a.pem", "certs/a.key", "ca/clients.pem", "ca/admin.pem"]) {
    writeFileSync(join(dir, f), "-----BEGIN PLACEHOLDER-----\n");
  }
  writeFileSync(join(dir, "keys/jwks.json"), JSON.stringify({ keys: [publicJwk("idp-1")] }));
  writeFileSync(join(dir, "keys/trusted.json"), JSON.stringify({ keys: [publicJwk("alice"), publicJwk("bob")] }));
  writeFileSync(join(dir, "keys/private.json"), JSON.stringify({ keys: [{ ...publicJwk("x"), d: "secret" }] }));
  writeFileSync(join(dir, "keys/not-json.json"), "not json");
  writeFileSync(join(dir, "keys/hmac.txt"), "0123456789abcdef0123456789abcdef\n");
  writeFileSync(join(dir, "ca/broken.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  mkdirSync(join(dir, "ca/a-directory"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function load(toml: string, options: { checkFiles?: boolean } = {}) {
  const file = join(dir, `case-${counter++}.toml`);
  writeFileSync(file, toml);
  return loadConfig(file, { cwd: "/", ...options });
}
function errorsOf(toml: string): ConfigError[] {
  const result = load(toml);
  if (result.ok) throw new Error("expected errors, config loaded");
  return result.errors;
}

/** The smallest valid config: signatures required by default, so trusted keys are needed. */
const POLICY = `[policy]\ntrusted_keys = "keys/trusted.json"\n`;
const ISSUER = `[issuers.corp]\nissuer = "https://idp.example.com"\naudience = "dutygate"\njwks_file = "keys/jwks.json"\n`;

interface ErrorCase {
  name: string;
  toml: string;
  expect: { code: ConfigErrorCode; path: string; line?: number; help?: string | RegExp; message?: RegExp }[];
}

const ERROR_CASES: ErrorCase[] = [
  { name: "TOML syntax error carries line:col", toml: `${POLICY}[listen]\naddress = "0.0.0.0:8443\n`,
    expect: [{ code: "CONFIG_SYNTAX", path: "", line: 4 }] },
  { name: "unknown top-level key suggests the near one", toml: `stat_dir = "x"\n${POLICY}`,
    expect: [{ code: "CONFIG_UNKNOWN_KEY", path: "stat_dir", line: 1, help: "did you mean `state_dir`?" }] },
  { name: "unknown listener key suggests `address`", toml: `${POLICY}[listen]\nadress = "0.0.0.0:8443"\n`,
    expect: [{ code: "CONFIG_UNKNOWN_KEY", path: "listen.adress", line: 4, help: "did you mean `address`?" }] },
  { name: "wrong type at the top level", toml: `hide_deny_details = "yes"\n${POLICY}`,
    expect: [{ code: "CONFIG_WRONG_TYPE", path: "hide_deny_details", line: 1, message: /expected a boolean/ }] },
  { name: "a table key that is not a table", toml: `listen = "0.0.0.0:8443"\n${POLICY}`,
    expect: [{ code: "CONFIG_WRONG_TYPE", path: "listen" }] },
  { name: "address without a port", toml: `${POLICY}[listen]\naddress = "8443"\n`,
    expect: [{ code: "CONFIG_BAD_ADDRESS", path: "listen.address", line: 4 }] },
  { name: "address with a port out of range", toml: `${POLICY}[listen]\naddress = "127.0.0.1:70000"\n`,
    expect: [{ code: "CONFIG_BAD_ADDRESS", path: "listen.address" }] },
  { name: "cert without key", toml: `${POLICY}[listen]\ncert = "certs/listen.pem"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "listen.key" }] },
  { name: "certificate file that does not exist", toml: `${POLICY}[listen]\ncert = "certs/missing.pem"\nkey = "certs/listen.key"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "listen.cert", line: 4, message: /certs\/missing\.pem/ }] },
  { name: "TLS 1.1 is not a choice", toml: `${POLICY}[listen]\nmin_tls = "1.1"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "listen.min_tls" }] },
  { name: "SNI entry without server name, and one with a bad name", toml:
      `${POLICY}[[listen.sni]]\ncert = "certs/a.pem"\nkey = "certs/a.key"\n[[listen.sni]]\nserver_name = "bad name"\ncert = "certs/a.pem"\nkey = "certs/a.key"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "listen.sni[0].server_name", line: 3 }, { code: "CONFIG_BAD_VALUE", path: "listen.sni[1].server_name", line: 7 }] },
  { name: "admin listener needs a client CA", toml: `${POLICY}[admin]\naddress = "127.0.0.1:9443"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "admin.client_ca" }] },
  { name: "admin on the operational address (wildcard overlaps loopback)", toml: `${POLICY}[listen]\naddress = "0.0.0.0:8443"\n[admin]\naddress = "127.0.0.1:8443"\nclient_ca = "ca/admin.pem"\n`,
    expect: [{ code: "CONFIG_LISTENER_CONFLICT", path: "admin.address", line: 6 }] },
  { name: "admin sharing the operational certificate", toml:
      `${POLICY}[listen]\ncert = "certs/listen.pem"\nkey = "certs/listen.key"\n[admin]\ncert = "certs/listen.pem"\nkey = "certs/admin.key"\nclient_ca = "ca/admin.pem"\n`,
    expect: [{ code: "CONFIG_LISTENER_CONFLICT", path: "admin.cert" }] },
  { name: "admin trusting the operational client CA", toml: `${POLICY}[listen]\nclient_ca = "ca/clients.pem"\n[admin]\nclient_ca = "ca/clients.pem"\n`,
    expect: [{ code: "CONFIG_LISTENER_CONFLICT", path: "admin.client_ca" }] },
  { name: "identities without a client CA", toml: `${POLICY}[listen.identities."spiffe://example.org/ci"]\nroles = ["deployer"]\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "listen.identities", line: 3 }] },
  { name: "required client certificate without a client CA", toml: `${POLICY}[listen]\nrequire_client_cert = true\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "listen.require_client_cert" }] },
  { name: "identity mapping cannot set sub", toml: `${POLICY}[listen]\nclient_ca = "ca/clients.pem"\n[listen.identities.ci]\nsub = "root"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "listen.identities.ci.sub", line: 6 }] },
  { name: "relative upstream URL", toml: `${POLICY}[upstreams.changes]\nurl = "changes.internal:8080"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "upstreams.changes.url", line: 4, message: /^upstreams\.changes\.url: `changes\.internal:8080` is not an absolute http\(s\) URL$/ }] },
  { name: "upstream URL with another scheme", toml: `${POLICY}[upstreams.changes]\nurl = "ftp://127.0.0.1/x"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "upstreams.changes.url" }] },
  { name: "upstream URL with a query", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:8080/?debug=1"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "upstreams.changes.url" }] },
  { name: "upstream without url points at its table", toml: `${POLICY}[upstreams.changes]\ntimeout = "5s"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "upstreams.changes.url", line: 3 }] },
  { name: "upstream name that policies cannot name", toml: `${POLICY}[upstreams.my-svc]\nurl = "http://127.0.0.1:1"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.my-svc" }] },
  { name: "duration in words", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\ntimeout = "30 seconds"\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "upstreams.changes.timeout", line: 5 }] },
  { name: "duration without a unit suggests one", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\nconnect_timeout = 30\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "upstreams.changes.connect_timeout", help: "write the unit, e.g. `30s`" }] },
  // A request running longer than the duty ledger's reservation TTL would be reported of unknown
  // outcome (an operator could release it) while the upstream still works.
  { name: "upstream timeout longer than the ledger reservation TTL", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\ntimeout = "11m"\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "upstreams.changes.timeout", line: 5, message: /at most 10m/, help: /reservation/ }] },
  { name: "unknown upstream client suggests the near one", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\nclient = "pol"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.client", line: 5, help: "did you mean `pool`?" }] },
  { name: "upstream `ca` that does not exist", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nca = "ca/absent.pem"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "upstreams.changes.ca", line: 5, message: /upstream CA bundle `.*ca\/absent\.pem` does not exist/ }] },
  { name: "upstream `ca` that is a directory", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nca = "ca/a-directory"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "upstreams.changes.ca", line: 5, message: /is not a file/ }] },
  { name: "upstream `ca` without a PEM certificate", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nca = "ca/clients.pem"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.ca", line: 5, message: /clients\.pem` holds no PEM certificate/ }] },
  { name: "upstream `ca` whose certificate does not parse", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nca = "ca/broken.pem"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.ca", line: 5, message: /certificate 1 of `.*broken\.pem` is not a valid X\.509 certificate/ }] },
  { name: "upstream `ca` on a plain http upstream", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\nca = "ca/broken.pem"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "upstreams.changes.ca", line: 5, message: /applies only to an `https:\/\/` upstream/ }, { code: "CONFIG_BAD_VALUE", path: "upstreams.changes.ca", line: 5 }] },
  { name: "upstream `server_name` that is an address", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nserver_name = "10.0.0.1"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.server_name", line: 5, message: /`10\.0\.0\.1` is not a DNS name/ }] },
  { name: "upstream `server_name` with a wildcard", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\nserver_name = "*.internal"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.server_name", line: 5 }] },
  { name: "upstream `server_name` on a plain http upstream", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\nserver_name = "changes.internal"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "upstreams.changes.server_name", line: 5, message: /applies only to an `https:\/\/` upstream/ }] },
  { name: "upstream client `cert` without `key`", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\ncert = "certs/a.pem"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "upstreams.changes.key", message: /`key` is missing/ }] },
  { name: "upstream client `cert` that holds no certificate", toml: `${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\ncert = "certs/a.pem"\nkey = "certs/a.key"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "upstreams.changes.cert", line: 5, message: /a\.pem` holds no PEM certificate/ }] },
  { name: "upstream client `cert` on a plain http upstream", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\ncert = "certs/absent.pem"\nkey = "certs/a.key"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "upstreams.changes.cert", line: 5 }, { code: "CONFIG_CONFLICT", path: "upstreams.changes.cert", line: 5, message: /apply only to an `https:\/\/` upstream/ }] },
  { name: "misspelt upstream key", toml: `${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\ntimout = "5s"\n`,
    expect: [{ code: "CONFIG_UNKNOWN_KEY", path: "upstreams.changes.timout", help: "did you mean `timeout`?" }] },
  { name: "shutdown drain without a unit", toml: `${POLICY}[shutdown]\ndrain = 5\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "shutdown.drain", line: 4, help: "write the unit, e.g. `5s`" }] },
  { name: "shutdown timeout of zero", toml: `${POLICY}[shutdown]\ntimeout = "0s"\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "shutdown.timeout", line: 4 }] },
  { name: "misspelt shutdown key", toml: `${POLICY}[shutdown]\ndrian = "5s"\n`,
    expect: [{ code: "CONFIG_UNKNOWN_KEY", path: "shutdown.drian", line: 4, help: "did you mean `drain`?" }] },
  { name: "size in words", toml: `max_body_bytes = "10 megs"\n${POLICY}`,
    expect: [{ code: "CONFIG_BAD_SIZE", path: "max_body_bytes", line: 1 }] },
  { name: "no_route_status other than 404/403", toml: `no_route_status = 500\n${POLICY}`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "no_route_status" }] },
  { name: "min_signers below one", toml: `${POLICY}min_signers = 0\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "policy.min_signers", line: 3 }] },
  { name: "more signers required than trusted keys", toml: `${POLICY}min_signers = 3\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "policy.trusted_keys", message: /2 key\(s\), at least 3/ }] },
  { name: "signatures required without trusted keys", toml: `[policy]\ndir = "policies"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "policy.trusted_keys", line: 1 }] },
  { name: "trusted keys file missing", toml: `[policy]\ntrusted_keys = "keys/nope.json"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "policy.trusted_keys", line: 2 }] },
  { name: "trusted keys that are not a JWKS", toml: `[policy]\ntrusted_keys = "keys/not-json.json"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "policy.trusted_keys" }] },
  { name: "`none` algorithm", toml: `${POLICY}${ISSUER}algorithms = ["ES256", "none"]\n`,
    expect: [{ code: "CONFIG_INSECURE_ALGORITHM", path: "issuers.corp.algorithms[1]", line: 7 }] },
  { name: "HS256 without a secret", toml: `${POLICY}${ISSUER}algorithms = ["HS256"]\n`,
    expect: [{ code: "CONFIG_MISSING_SECRET", path: "issuers.corp.algorithms", line: 7 }] },
  { name: "HMAC secret shorter than the hash", toml: `${POLICY}${ISSUER}algorithms = ["HS256"]\nhmac_secret = "short"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "issuers.corp.hmac_secret", line: 8 }] },
  { name: "HMAC secret without an HS algorithm", toml: `${POLICY}${ISSUER}hmac_secret_file = "keys/hmac.txt"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "issuers.corp.hmac_secret_file" }] },
  { name: "misspelt algorithm", toml: `${POLICY}${ISSUER}algorithms = ["ES265"]\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "issuers.corp.algorithms[0]", help: "did you mean `ES256`?" }] },
  { name: "issuer without issuer and audience", toml: `${POLICY}[issuers.corp]\njwks_file = "keys/jwks.json"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "issuers.corp.issuer", line: 3 }, { code: "CONFIG_MISSING_KEY", path: "issuers.corp.audience", line: 3 }] },
  { name: "both jwks_file and jwks_url", toml: `${POLICY}${ISSUER}jwks_url = "https://idp.example.com/jwks"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "issuers.corp.jwks_url" }] },
  { name: "plain http JWKS URL off loopback", toml: `${POLICY}[issuers.corp]\nissuer = "i"\naudience = ["a", "b"]\njwks_url = "http://idp.example.com/jwks"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "issuers.corp.jwks_url", line: 6 }] },
  { name: "JWKS file that does not exist", toml: `${POLICY}[issuers.corp]\nissuer = "i"\naudience = "a"\njwks_file = "keys/missing.json"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "issuers.corp.jwks_file" }] },
  { name: "asymmetric algorithms without any JWKS", toml: `${POLICY}[issuers.corp]\nissuer = "i"\naudience = "a"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "issuers.corp.jwks_file" }] },
  { name: "JWKS file holding a private key", toml: `${POLICY}[issuers.corp]\nissuer = "i"\naudience = "a"\njwks_file = "keys/private.json"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "issuers.corp.jwks_file", message: /private key/ }] },
  { name: "claim mapping that is not a claim path", toml: `${POLICY}${ISSUER}[issuers.corp.claims]\nroles = 5\n`,
    expect: [{ code: "CONFIG_WRONG_TYPE", path: "issuers.corp.claims.roles", line: 8 }] },
  { name: "misspelt fsync mode", toml: `${POLICY}[audit]\nfsync = "alway"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "audit.fsync", help: "did you mean `always`?" }] },
  { name: "credential header in the audit allowlist", toml: `${POLICY}[audit]\nheader_allowlist = ["user-agent", "Authorization"]\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "audit.header_allowlist[1]", line: 4 }] },
  { name: "rotation size below the floor", toml: `${POLICY}[audit]\nrotate_bytes = "1KB"\n`,
    expect: [{ code: "CONFIG_BAD_SIZE", path: "audit.rotate_bytes" }] },
  { name: "unknown log level", toml: `${POLICY}[log]\nlevel = "verbose"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "log.level" }] },
  { name: "identity header that is not a header name", toml: `${POLICY}[identity]\nheader = "x identity"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "identity.header" }] },
  { name: "strip_headers entry that is not a header name", toml: `${POLICY}[identity]\nstrip_headers = ["x-user", "x user"]\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "identity.strip_headers[1]", line: 4 }] },
  { name: "strip_headers that is not a list", toml: `${POLICY}[identity]\nstrip_headers = "x-user"\n`,
    expect: [{ code: "CONFIG_WRONG_TYPE", path: "identity.strip_headers", line: 4 }] },
  { name: "ledger url carrying a password", toml: `${POLICY}[ledger]\nurl = "postgres://gw:hunter2@127.0.0.1/gw"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "ledger.url", line: 4, message: /must not carry a password/ }] },
  { name: "ledger url that is not postgres", toml: `${POLICY}[ledger]\nurl = "mysql://gw@127.0.0.1/gw"\n`,
    expect: [{ code: "CONFIG_BAD_URL", path: "ledger.url" }] },
  { name: "ledger url and path together", toml: `${POLICY}[ledger]\npath = "l.sqlite"\nurl = "postgres://gw@127.0.0.1/gw"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "ledger.url", line: 5 }] },
  { name: "ledger password_file and password_env together", toml: `${POLICY}[ledger]\nurl = "postgres://gw@127.0.0.1/gw"\npassword_file = "keys/hmac.txt"\npassword_env = "PGPASS"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "ledger.password_env", line: 6 }] },
  { name: "ledger password_file that does not exist", toml: `${POLICY}[ledger]\nurl = "postgres://gw@127.0.0.1/gw"\npassword_file = "keys/nope.txt"\n`,
    expect: [{ code: "CONFIG_FILE_NOT_FOUND", path: "ledger.password_file" }] },
  { name: "ledger password_env that is not a variable name", toml: `${POLICY}[ledger]\nurl = "postgres://gw@127.0.0.1/gw"\npassword_env = "PG PASS"\n`,
    expect: [{ code: "CONFIG_BAD_VALUE", path: "ledger.password_env" }] },
  { name: "ledger on another host without a CA (its answers would cross the network in the clear)", toml: `${POLICY}[ledger]\nurl = "postgres://gw@db.internal:5432/gw"\n`,
    expect: [{ code: "CONFIG_MISSING_KEY", path: "ledger.ca", help: /CA bundle/ }] },
  { name: "ledger password without url", toml: `${POLICY}[ledger]\npassword_env = "PGPASS"\n`,
    expect: [{ code: "CONFIG_CONFLICT", path: "ledger.password_env" }] },
  { name: "ledger timeout that is not a duration", toml: `${POLICY}[ledger]\nurl = "postgres://gw@127.0.0.1/gw"\ntimeout = "soon"\n`,
    expect: [{ code: "CONFIG_BAD_DURATION", path: "ledger.timeout" }] },
  { name: "every error of a file is reported, in line order", toml:
      `stat_dir = "x"\nmax_body_bytes = "lots"\n[policy]\nmin_signers = 0\n[upstreams.changes]\nurl = "nope"\n`,
    expect: [
      { code: "CONFIG_UNKNOWN_KEY", path: "stat_dir", line: 1 },
      { code: "CONFIG_BAD_SIZE", path: "max_body_bytes", line: 2 },
      { code: "CONFIG_MISSING_KEY", path: "policy.trusted_keys", line: 3 },
      { code: "CONFIG_BAD_VALUE", path: "policy.min_signers", line: 4 },
      { code: "CONFIG_BAD_URL", path: "upstreams.changes.url", line: 6 },
    ] },
];

describe("loadConfig errors", () => {
  test("there are at least 25 error cases", () => expect(ERROR_CASES.length).toBeGreaterThanOrEqual(25));
  for (const c of ERROR_CASES) {
    test(c.name, () => {
      const errors = errorsOf(c.toml);
      expect(errors.map((e) => ({ code: e.code, path: e.path }))).toEqual(c.expect.map((e) => ({ code: e.code, path: e.path })));
      for (const [i, want] of c.expect.entries()) {
        const got = errors[i]!;
        if (want.line !== undefined) expect(got.line).toBe(want.line);
        if (want.help !== undefined) expect(got.help ?? "").toMatch(want.help);
        if (want.message !== undefined) expect(got.message).toMatch(want.message);
        // House style: lowercase start after the path, no final period.
        expect(got.message.endsWith(".")).toBe(false);
      }
    });
  }

  test("a missing config file is CONFIG_NOT_FOUND with its absolute path", () => {
    const result = loadConfig("nope/gateway.toml", { cwd: dir });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors[0]!.code).toBe("CONFIG_NOT_FOUND");
      expect(result.errors[0]!.message).toContain(join(dir, "nope/gateway.toml"));
    }
  });

  test("checkFiles: false accepts files that do not exist but still checks shapes", () => {
    const shapeOnly = load(`[policy]\ntrusted_keys = "keys/nope.json"\n[listen]\ncert = "a.pem"\nkey = "a.key"\n`, { checkFiles: false });
    expect(shapeOnly.ok).toBe(true);
    const stillBad = load(`[policy]\ntrusted_keys = "keys/nope.json"\nmin_signers = 0\n`, { checkFiles: false });
    expect(stillBad.ok ? [] : stillBad.errors.map((e) => e.code)).toEqual(["CONFIG_BAD_VALUE"]);
  });

  test("formatConfigErrors renders file:line:col, code, message and help", () => {
    const errors = errorsOf(`${POLICY}[listen]\nadress = "x"\n`);
    expect(formatConfigErrors(errors, "gateway.toml")).toBe(
      "gateway.toml:4:1: error[CONFIG_UNKNOWN_KEY]: listen.adress: unknown key `adress`\n  help: did you mean `address`?",
    );
  });
});

describe("loadConfig values", () => {
  test("a minimal file gets every default, paths resolved against the file's directory", () => {
    const result = load(POLICY);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const c = result.config;
    expect(c.stateDir).toBe(join(dir, ".state"));
    expect(c.listen).toMatchObject({ host: "0.0.0.0", port: 8443, certificate: null, sni: [], clientCaFile: null, minTlsVersion: "TLSv1.2" });
    expect(c.admin).toBeNull();
    expect(c.policy).toEqual({ dir: join(dir, "policies"), requireSignature: true, trustedKeysFile: join(dir, "keys/trusted.json"), minSigners: 1, watch: true, debounceMs: 100 });
    expect(c.audit.dir).toBe(join(dir, "audit"));
    expect(c.ledger.path).toBe(join(dir, ".state", "ledger.sqlite"));
    expect(c.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(c.noRouteStatus).toBe(404);
    expect(c.shutdown).toEqual({ drainMs: 5000, timeoutMs: 10_000 });
    expect(c.demo).toBe(false);
    expect(c.source).toMatch(/case-\d+\.toml$/);
  });

  test("a full file becomes the typed config", () => {
    const result = load(`
state_dir = "/var/lib/dutygate"
no_route_status = 403
hide_deny_details = true
trust_request_id = true
max_body_bytes = "512KiB"

[listen]
address = "[::1]:0"
cert = "certs/listen.pem"
key = "certs/listen.key"
min_tls = "1.3"
client_ca = "ca/clients.pem"
[[listen.sni]]
server_name = "*.Example.com"
cert = "certs/a.pem"
key = "certs/a.key"
[listen.identities."spiffe://example.org/ns/ci/sa/deployer"]
roles = ["deployer"]
mfa = true
team = "platform"

[admin]
address = "127.0.0.1:9443"
cert = "certs/admin.pem"
key = "certs/admin.key"
client_ca = "ca/admin.pem"
[admin.identities.alice]
roles = ["security_admin"]

[issuers.corp]
issuer = "https://idp.example.com"
audience = ["dutygate", "api"]
jwks_file = "keys/jwks.json"
algorithms = ["ES256", "HS256"]
hmac_secret_file = "keys/hmac.txt"
clock_tolerance = "5s"
max_lifetime = "15m"
required_claims = ["exp", "iat", "jti"]
[issuers.corp.claims]
roles = "realm_access.roles"
[issuers.corp.constants]
mfa = false

[upstreams.changes]
url = "http://127.0.0.1:8081/api"
timeout = "10s"
connect_timeout = "250ms"
client = "pool"

[policy]
dir = "/etc/dutygate/policies"
trusted_keys = "keys/trusted.json"
min_signers = 2
watch = false
debounce = "1s"

[audit]
dir = "audit-log"
fsync = "always"
batch_interval = "5ms"
rotate_bytes = "1GiB"
rotate_age = "7d"
checkpoint_every = 500
checkpoint_interval = "30s"
on_failure = "allow"
stdout = true
header_allowlist = ["User-Agent", "x-forwarded-for"]

[ledger]
path = "ledger.db"
retention_days = 30
hide_details = true

[identity]
header = "X-Gateway-Identity"
ttl = "30s"
strip_headers = ["X_User", "x-roles"]

[log]
level = "debug"
`);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors, "inline"));
    const c = result.config;
    expect(c.stateDir).toBe("/var/lib/dutygate");
    expect([c.noRouteStatus, c.hideDenyDetails, c.trustRequestId, c.maxBodyBytes]).toEqual([403, true, true, 512 * 1024]);
    expect(c.listen).toEqual({
      host: "::1", port: 0,
      certificate: { certFile: join(dir, "certs/listen.pem"), keyFile: join(dir, "certs/listen.key") },
      sni: [{ serverName: "*.example.com", certFile: join(dir, "certs/a.pem"), keyFile: join(dir, "certs/a.key") }],
      clientCaFile: join(dir, "ca/clients.pem"), requireClientCertificate: false,
      certificateMapping: { identities: { "spiffe://example.org/ns/ci/sa/deployer": { roles: ["deployer"], mfa: true, team: "platform" } } },
      minTlsVersion: "TLSv1.3",
    });
    expect(c.admin).toMatchObject({ host: "127.0.0.1", port: 9443, requireClientCertificate: true, clientCaFile: join(dir, "ca/admin.pem") });
    expect(c.admin?.certificateMapping.identities).toEqual({ alice: { roles: ["security_admin"] } });
    expect(c.issuers).toEqual([{
      name: "corp", issuer: "https://idp.example.com", audience: ["dutygate", "api"], jwksFile: join(dir, "keys/jwks.json"), jwksUrl: null, jwksCaFile: null,
      algorithms: ["ES256", "HS256"], hmacSecret: "0123456789abcdef0123456789abcdef", clockToleranceMs: 5000, maxLifetimeMs: 900_000,
      requiredClaims: ["exp", "iat", "jti"], claims: { sub: "sub", roles: "realm_access.roles" }, constants: { mfa: false },
    }]);
    expect(c.upstreams).toEqual({ changes: { name: "changes", url: "http://127.0.0.1:8081/api", timeoutMs: 10_000, connectTimeoutMs: 250, client: "pool", caFile: null, caPem: null, serverName: null,
      clientCertFile: null, clientKeyFile: null, clientCertPem: null, clientKeyPem: null } });
    expect(c.policy).toEqual({ dir: "/etc/dutygate/policies", requireSignature: true, trustedKeysFile: join(dir, "keys/trusted.json"), minSigners: 2, watch: false, debounceMs: 1000 });
    expect(c.audit).toEqual({
      dir: join(dir, "audit-log"), fsync: "always", batchIntervalMs: 5, rotateBytes: 1024 ** 3, rotateAgeMs: 7 * 86_400_000,
      checkpointEvery: 500, checkpointIntervalMs: 30_000, onFailure: "allow", stdout: true, headerAllowlist: ["user-agent", "x-forwarded-for"],
    });
    expect(c.ledger).toEqual({ path: join(dir, "ledger.db"), retentionDays: 30, hideDetails: true, postgres: null });
    // Stripped by the name an upstream reads: `X_User` is `x-user` to CGI and WSGI servers.
    expect(c.identity).toEqual({ header: "x-gateway-identity", ttlMs: 30_000, stripHeaders: ["x-user", "x-roles"] });
    expect(c.log.level).toBe("debug");
  });

  test("the loaded config is immutable", () => {
    const result = load(`${POLICY}[upstreams.changes]\nurl = "http://127.0.0.1:1"\n`);
    if (!result.ok) throw new Error("expected ok");
    expect(Object.isFrozen(result.config)).toBe(true);
    expect(Object.isFrozen(result.config.upstreams["changes"])).toBe(true);
    expect(() => { (result.config.listen as { port: number }).port = 1; }).toThrow();
  });

  test("an upstream's `ca` is read at load: its certificates, whatever lies around and between them", async () => {
    const one = await createCa(join(dir, "ca"), "upstream-one");
    const two = await createCa(join(dir, "ca"), "upstream-two");
    // Concatenated without a newline between, with text around: each certificate is kept.
    writeFileSync(join(dir, "ca/bundle.pem"), `# internal CAs\n${one.cert.trim()}${two.cert.trim()}\ntrailing words\n`);
    const result = load(`${POLICY}[upstreams.changes]\nurl = "https://changes.internal:8443"\nca = "ca/bundle.pem"\n`);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const upstream = result.config.upstreams["changes"]!;
    expect(upstream.caFile).toBe(join(dir, "ca/bundle.pem"));
    expect(upstream.caPem).toBe(`${one.cert.trim()}\n${two.cert.trim()}\n`);
    expect(new X509Certificate(upstream.caPem!).subject).toBe("CN=upstream-one");
  });

  test("an upstream's client `cert` and `key` are read at load and must belong together", async () => {
    const ca = await createCa(join(dir, "ca"), "client-ca");
    const one = await issueCertificate(join(dir, "certs"), ca, { commonName: "gw-one", client: true, fileName: "gw-one" });
    const two = await issueCertificate(join(dir, "certs"), ca, { commonName: "gw-two", client: true, fileName: "gw-two" });
    const good = load(`${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\ncert = "certs/gw-one.pem"\nkey = "certs/gw-one.key"\n`);
    if (!good.ok) throw new Error(JSON.stringify(good.errors));
    expect(good.config.upstreams["changes"]).toMatchObject({ clientCertFile: one.certFile, clientKeyFile: one.keyFile, clientCertPem: `${one.cert.trim()}\n`, clientKeyPem: one.key });
    const mismatched = load(`${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\ncert = "certs/gw-one.pem"\nkey = "certs/gw-two.key"\n`);
    expect(!mismatched.ok && mismatched.errors.map((e) => [e.code, e.path, e.message])).toEqual([
      ["CONFIG_BAD_VALUE", "upstreams.changes.key", `upstreams.changes.key: \`${two.keyFile}\` is not the key of the certificate \`${one.certFile}\``],
    ]);
    const notKey = load(`${POLICY}[upstreams.changes]\nurl = "https://127.0.0.1:1"\ncert = "certs/gw-one.pem"\nkey = "certs/gw-one.pem"\n`);
    expect(!notKey.ok && notKey.errors.map((e) => [e.code, e.path])).toEqual([["CONFIG_BAD_VALUE", "upstreams.changes.key"]]);
  });

  test("an upstream's `server_name` is kept in lower case", () => {
    const result = load(`${POLICY}[upstreams.changes]\nurl = "https://10.1.2.3:8443"\nserver_name = "Changes.Internal"\n`);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.config.upstreams["changes"]?.serverName).toBe("changes.internal");
  });

  test("`ca` is not read when files are not checked (a config linted on another machine)", () => {
    const result = load(`${POLICY}[upstreams.changes]\nurl = "https://changes.internal:8443"\nca = "ca/absent.pem"\n`, { checkFiles: false });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.config.upstreams["changes"]).toMatchObject({ caFile: join(dir, "ca/absent.pem"), caPem: null });
  });

  test("an http JWKS URL on loopback is accepted (local identity providers)", () => {
    const result = load(`${POLICY}[issuers.local]\nissuer = "i"\naudience = "a"\njwks_url = "http://127.0.0.1:8080/jwks"\n`);
    expect(result.ok).toBe(true);
  });
});

describe("loadConfig: the shared PostgreSQL ledger", () => {
  test("url, password file, CA and timeout become the PostgreSQL ledger's config", () => {
    const result = load(`[policy]\nrequire_signature = false\n[ledger]\nurl = "postgres://dutygate@db.internal:6432/ledger"\npassword_file = "keys/hmac.txt"\nca = "ca/admin.pem"\ntimeout = "750ms"\nretention_days = 400\n`);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors, "gateway.toml"));
    expect(result.config.ledger.postgres).toEqual({ url: "postgres://dutygate@db.internal:6432/ledger", passwordFile: join(dir, "keys/hmac.txt"), passwordEnv: null, caFile: join(dir, "ca/admin.pem"), timeoutMs: 750 });
    expect(result.config.ledger.retentionDays).toBe(400);
  });

  test("a loopback server needs no CA; the password may come from the environment", () => {
    const result = load(`[policy]\nrequire_signature = false\n[ledger]\nurl = "postgresql://dutygate@127.0.0.1/dutygate"\npassword_env = "DUTYGATE_LEDGER_PASSWORD"\n`);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors, "gateway.toml"));
    expect(result.config.ledger.postgres).toEqual({ url: "postgresql://dutygate@127.0.0.1/dutygate", passwordFile: null, passwordEnv: "DUTYGATE_LEDGER_PASSWORD", caFile: null, timeoutMs: 2000 });
  });

  test("the error for a URL with a password never repeats the password", () => {
    const errors = errorsOf(`${POLICY}[ledger]\nurl = "postgres://gw:hunter2@127.0.0.1/gw"\n`);
    expect(errors.map((e) => e.code)).toEqual(["CONFIG_BAD_URL"]);
    expect(formatConfigErrors(errors, "gateway.toml")).not.toContain("hunter2");
  });
});

describe("parseAddress and parseSize", () => {
  const addresses: [string, { host: string; port: number } | null][] = [
    ["0.0.0.0:8443", { host: "0.0.0.0", port: 8443 }],
    ["[::1]:9443", { host: "::1", port: 9443 }],
    ["localhost:0", { host: "localhost", port: 0 }],
    ["gateway.internal:443", { host: "gateway.internal", port: 443 }],
    ["8443", null], ["::1:8443", null], ["[1.2.3.4]:1", null], ["300.1.1.1:1", null], ["host:65536", null], ["ho st:1", null],
  ];
  for (const [text, want] of addresses) test(`address ${text}`, () => expect(parseAddress(text)).toEqual(want));

  const sizes: [string, number | null][] = [
    ["10MiB", 10 * 1024 ** 2], ["512KB", 512_000], ["1GiB", 1024 ** 3], ["4096", 4096], ["7 B", 7], ["1.5MiB", null], ["10 megs", null], ["", null],
  ];
  for (const [text, want] of sizes) test(`size ${JSON.stringify(text)}`, () => expect(parseSize(text)).toBe(want));
});

describe("[listen] workers", () => {
  const POLICY = `[policy]\nrequire_signature = false\n`;
  const load = (value: string) => parseConfigText(`[listen]\naddress = "127.0.0.1:0"\nworkers = ${value}\n${POLICY}`, "/tmp/gateway.toml", false);
  test("a whole number, or \"auto\" for one per core; absent: 1", () => {
    expect(load("4")).toMatchObject({ ok: true, config: { workers: 4 } });
    expect(load('"auto"')).toMatchObject({ ok: true, config: { workers: availableParallelism() } });
    expect(parseConfigText(`[listen]\naddress = "127.0.0.1:0"\n${POLICY}`, "/tmp/gateway.toml", false)).toMatchObject({ ok: true, config: { workers: 1 } });
  });
  test("0, a fraction, or another word is an error at the key", () => {
    expect(load("0")).toMatchObject({ ok: false, errors: [{ code: "CONFIG_BAD_VALUE", path: "listen.workers", line: 3 }] });
    expect(load("1.5")).toMatchObject({ ok: false, errors: [{ code: "CONFIG_WRONG_TYPE", path: "listen.workers" }] });
    expect(load('"atuo"')).toMatchObject({ ok: false, errors: [{ code: "CONFIG_BAD_VALUE", path: "listen.workers", help: 'did you mean `"auto"`?' }] });
  });
  test("the admin listener has no workers of its own", () => {
    const r = parseConfigText(`[admin]\naddress = "127.0.0.1:0"\nworkers = 2\n`, "/tmp/gateway.toml", false);
    expect(r.ok ? [] : r.errors.map((e) => [e.code, e.path])).toContainEqual(["CONFIG_UNKNOWN_KEY", "admin.workers"]);
  });
  test("worker_start_timeout: a duration, absent 30 s (no [listen] at all too); 0 or a bare number is an error at the key", () => {
    const timeout = (value: string) => parseConfigText(`[listen]\naddress = "127.0.0.1:0"\nworkers = 2\nworker_start_timeout = ${value}\n${POLICY}`, "/tmp/gateway.toml", false);
    expect(timeout('"2s"')).toMatchObject({ ok: true, config: { workerStartTimeoutMs: 2000 } });
    expect(load("2")).toMatchObject({ ok: true, config: { workerStartTimeoutMs: 30_000 } });
    expect(parseConfigText(POLICY, "/tmp/gateway.toml", false)).toMatchObject({ ok: true, config: { workerStartTimeoutMs: 30_000 } });
    expect(timeout('"0s"')).toMatchObject({ ok: false, errors: [{ code: "CONFIG_BAD_DURATION", path: "listen.worker_start_timeout", line: 4 }] });
    expect(timeout("30")).toMatchObject({ ok: false, errors: [{ code: "CONFIG_BAD_DURATION", path: "listen.worker_start_timeout" }] });
  });
});
