// Shared by the audit tests and benchmark: real keys, real files (directories: temp-dir.ts).
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import type { JSONWebKeySet } from "jose";
import { ContextTable } from "../../src/audit/mod.ts";
import type { AuditLogOptions, AuditSigningKey } from "../../src/audit/mod.ts";

/** A fresh Ed25519 signing key and the JWKS that verifies it. */
export async function makeSigner(kid = "gw-test"): Promise<{ signingKey: AuditSigningKey; jwks: JSONWebKeySet }> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  return { signingKey: { key: privateKey, kid, alg: "EdDSA" }, jwks: { keys: [jwk] } };
}

/** Log options for tests: no timers unless asked, no rotation unless asked. */
export function logOptions(dir: string, signingKey: AuditSigningKey, overrides: Partial<AuditLogOptions> = {}): AuditLogOptions {
  return {
    dir,
    fsync: "off",
    batchIntervalMs: 50,
    rotateBytes: 0,
    rotateAgeMs: 0,
    checkpointEvery: 10,
    checkpointIntervalMs: 0,
    stdout: false,
    signingKey,
    instance: "test-instance",
    ...overrides,
  };
}

/** The audit files of `dir` in chain order. */
export function auditFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => /^audit-\d+\.jsonl$/.test(n)).sort().map((n) => join(dir, n));
}

/** Lines of a file without the final empty string. */
export function readLinesOf(path: string): string[] {
  const text = readFileSync(path, "utf8");
  return text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
}

/**
 * The records of the audit files of `dir` (every chain's), file by file in name order, each whole:
 * a format-3 record's context members merged in (src/audit/contexts.ts). A line that is not JSON
 * is left out; a record whose context cannot be found is kept as it was written.
 */
export function readWholeRecords(dir: string): Array<Record<string, unknown>> {
  return readdirSync(dir).filter((n) => n.endsWith(".jsonl")).sort().flatMap((name) => {
    const contexts = new ContextTable();
    return readFileSync(join(dir, name), "utf8").split("\n").filter((l) => l.trim() !== "").flatMap((line) => {
      let record: Record<string, unknown>;
      try { record = JSON.parse(line) as Record<string, unknown>; } catch { return []; }
      return [(contexts.resolve(record) ?? record) as Record<string, unknown>];
    });
  });
}

export function writeLinesTo(path: string, lines: readonly string[]): void {
  writeFileSync(path, lines.map((l) => l + "\n").join(""));
}

/**
 * Makes `dir` refuse new entries. chmod is enough for ordinary users; root ignores it, so
 * then the immutable attribute (chattr +i) is used. Throws when neither works here.
 */
export function makeDirReadOnly(dir: string): () => void {
  chmodSync(dir, 0o555);
  if (!canCreateIn(dir)) return () => chmodSync(dir, 0o755);
  const set = spawnSync("chattr", ["+i", dir]);
  const restore = () => {
    spawnSync("chattr", ["-i", dir]);
    chmodSync(dir, 0o755);
  };
  if (set.status === 0 && !canCreateIn(dir)) return restore;
  restore();
  throw new Error(`cannot make \`${dir}\` read-only on this machine (chmod ignored and chattr unavailable)`);
}

function canCreateIn(dir: string): boolean {
  const probe = join(dir, ".probe");
  try {
    writeFileSync(probe, "x");
    unlinkSync(probe);
    return true;
  } catch {
    return false;
  }
}
