// Certificate files: the self-signed fallback, reading a listener's PEM material, and
// watching those files so a renewed certificate is picked up without a restart.
import { X509Certificate, createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createSecureContext } from "node:tls";
import { GatewayError } from "../errors.ts";
import type { CertificatePair, ListenerConfig } from "../config/mod.ts";
import type { TlsMaterial } from "./types.ts";

const DAY_MS = 86_400_000;
/** A self-signed certificate this close to expiry is replaced on start. */
const RENEW_BEFORE_MS = 30 * DAY_MS;

/**
 * Returns the self-signed certificate under `<stateDir>/tls/<name>/`, creating it on first use
 * (EC P-256, SHA-256, valid one year, SANs from `hostnames`; key file mode 0600). Later starts
 * reuse it, so clients that pinned it keep working; it is replaced only when it expires within
 * 30 days or cannot be read.
 *
 * @example
 * const pair = await ensureSelfSignedCertificate(config.stateDir, { hostnames: ["localhost", "127.0.0.1"] });
 */
export async function ensureSelfSignedCertificate(
  stateDir: string,
  options: { hostnames: string[]; name?: string; nowMs?: number },
): Promise<CertificatePair> {
  const dir = join(stateDir, "tls", options.name ?? "listen");
  const pair: CertificatePair = { certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") };
  const now = options.nowMs ?? Date.now();
  if (existsSync(pair.certFile) && existsSync(pair.keyFile)) {
    try {
      const cert = new X509Certificate(readFileSync(pair.certFile));
      createSecureContext({ cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile) });
      if (Date.parse(cert.validTo) - now > RENEW_BEFORE_MS) return pair;
    } catch {
      // Unreadable or mismatched: fall through and create a fresh pair.
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostnames = options.hostnames.length > 0 ? options.hostnames : ["localhost"];
  const altNames = hostnames.map((h) => (/^[\d.]+$/.test(h) || h.includes(":") ? { type: 7 as const, ip: h } : { type: 2 as const, value: h }));
  // Loaded only to make a certificate (the first start): the X.509 library it pulls in costs
  // tens of milliseconds of CPU to evaluate, on every start that reuses the certificate.
  const { generate } = await import("selfsigned");
  const pems = await generate([{ name: "commonName", value: hostnames[0]! }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + 365 * DAY_MS),
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames },
    ],
  });
  // Key first, each written to a temporary name and renamed: a crash never leaves a cert without its key.
  writeAtomically(pair.keyFile, pems.private, 0o600);
  writeAtomically(pair.certFile, pems.cert, 0o644);
  return pair;
}

function writeAtomically(file: string, content: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new GatewayError("TLS_FILE_UNREADABLE", `cannot read ${what} \`${file}\`: ${(error as Error).message}`, { file });
  }
}

/** Throws `TLS_BAD_CERTIFICATE` unless `cert` parses and `key` belongs to it. */
export function assertUsablePair(cert: string, key: string, label: string): void {
  try {
    new X509Certificate(cert);
    createSecureContext({ cert, key });
  } catch (error) {
    throw new GatewayError("TLS_BAD_CERTIFICATE", `${label}: ${(error as Error).message.toLowerCase().replace(/\.$/, "")}`);
  }
}

/**
 * Reads the PEM files a listener names and checks each key matches its certificate.
 * A listener without its own certificate gets the self-signed one from `<stateDir>/tls/<name>/`
 * (`options.stateDir` is then required).
 *
 * @throws GatewayError `TLS_FILE_UNREADABLE`, `TLS_BAD_CERTIFICATE`, `TLS_NO_CERTIFICATE`
 */
export async function loadTlsMaterial(
  listener: ListenerConfig,
  options: { stateDir?: string; name?: string; hostnames?: string[] } = {},
): Promise<TlsMaterial> {
  let certificate = listener.certificate;
  if (!certificate) {
    if (!options.stateDir) throw new GatewayError("TLS_NO_CERTIFICATE", "listener has no certificate and no state directory for a self-signed one");
    certificate = await ensureSelfSignedCertificate(options.stateDir, { hostnames: options.hostnames ?? defaultHostnames(listener.host), name: options.name });
  }
  const cert = await readPem(certificate.certFile, "certificate");
  const key = await readPem(certificate.keyFile, "private key");
  assertUsablePair(cert, key, `certificate \`${certificate.certFile}\` with key \`${certificate.keyFile}\``);
  const sni: TlsMaterial["sni"] = [];
  for (const entry of listener.sni) {
    const sniCert = await readPem(entry.certFile, `certificate for \`${entry.serverName}\``);
    const sniKey = await readPem(entry.keyFile, `private key for \`${entry.serverName}\``);
    assertUsablePair(sniCert, sniKey, `certificate \`${entry.certFile}\` for \`${entry.serverName}\``);
    sni.push({ serverName: entry.serverName.toLowerCase(), cert: sniCert, key: sniKey });
  }
  const material: TlsMaterial = { default: { cert, key }, sni };
  if (listener.clientCaFile) {
    const ca = await readPem(listener.clientCaFile, "client CA bundle");
    try {
      createSecureContext({ ca });
      new X509Certificate(ca);
    } catch (error) {
      throw new GatewayError("TLS_BAD_CERTIFICATE", `client CA bundle \`${listener.clientCaFile}\`: ${(error as Error).message.toLowerCase()}`);
    }
    material.ca = ca;
  }
  return material;
}

function defaultHostnames(host: string): string[] {
  const names = ["localhost", "127.0.0.1", "::1"];
  return host === "0.0.0.0" || host === "::" || names.includes(host) ? names : [host, ...names];
}

/** A digest of the material, to tell a real change from a touch. */
export function materialDigest(material: TlsMaterial): string {
  const hash = createHash("sha256");
  for (const part of [material.default.cert, material.default.key, material.ca ?? "", ...material.sni.flatMap((s) => [s.serverName, s.cert, s.key])]) {
    hash.update(part).update("\0");
  }
  return hash.digest("hex");
}

/** Every file a listener's TLS material is read from. */
export function listenerFiles(listener: ListenerConfig): string[] {
  const files: string[] = [];
  if (listener.certificate) files.push(listener.certificate.certFile, listener.certificate.keyFile);
  for (const entry of listener.sni) files.push(entry.certFile, entry.keyFile);
  if (listener.clientCaFile) files.push(listener.clientCaFile);
  return files;
}

/** Handle of {@link watchCertificates}. */
export interface CertificateWatcher {
  close(): void;
}

/**
 * Watches the directories of a listener's certificate, key, SNI and CA files. Any event
 * triggers a debounced re-read (renames and atomic replaces show up as events on the directory,
 * not the file); when the material really changed and is usable, `onChange` receives it. A
 * half-written or mismatched pair goes to `onError` and the running certificates stay.
 *
 * @example
 * const watcher = watchCertificates(config.listen, (tls) => listener.reloadCertificates(tls), { onError: log.warn });
 */
export function watchCertificates(
  listener: ListenerConfig,
  onChange: (material: TlsMaterial) => void | Promise<void>,
  options: { debounceMs?: number; onError?: (error: unknown) => void; stateDir?: string; name?: string } = {},
): CertificateWatcher {
  const files = listenerFiles(listener);
  const names = new Set(files.map((f) => basename(f)));
  const directories = [...new Set(files.map((f) => dirname(f)))];
  const debounceMs = options.debounceMs ?? 100;
  const report = options.onError ?? (() => {});
  let lastDigest: string | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let closed = false;
  let running: Promise<void> = Promise.resolve();

  // The digest of what is running now, so the first event after start is not mistaken for a change.
  const initial = loadTlsMaterial(listener, { stateDir: options.stateDir, name: options.name })
    .then((m) => { lastDigest ??= materialDigest(m); })
    .catch(() => {});

  const reread = async () => {
    await initial;
    if (closed) return;
    try {
      const material = await loadTlsMaterial(listener, { stateDir: options.stateDir, name: options.name });
      const digest = materialDigest(material);
      if (digest === lastDigest) return;
      lastDigest = digest;
      await onChange(material);
    } catch (error) {
      report(error);
    }
  };
  const schedule = (filename: string | Buffer | null) => {
    if (closed) return;
    // Events for unrelated files in the same directory are ignored; a null name means "something changed".
    if (filename !== null && !names.has(basename(filename.toString()))) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; running = running.then(reread); }, debounceMs);
  };
  const watchers: FSWatcher[] = [];
  for (const directory of directories) {
    try {
      const watcher = watch(directory, { persistent: false }, (_event, filename) => schedule(filename));
      watcher.on("error", report);
      watchers.push(watcher);
    } catch (error) {
      report(error);
    }
  }
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const watcher of watchers) {
        try { watcher.close(); } catch { /* already closed */ }
      }
    },
  };
}
