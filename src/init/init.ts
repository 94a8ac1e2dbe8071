// What `gateway init [DIR]` writes: a starter `gateway.toml` and the example policies with their
// tests, from texts embedded in the program (the binary carries no repository). Never
// overwrites: if any target exists, nothing is written. The command is src/cli/init.ts.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { GatewayError } from "../errors.ts";
import { EXAMPLE_POLICY_FILES, STARTER_CONFIG_TEMPLATE } from "./embedded.ts";

/** Where and how {@link writeStarterFiles} writes. */
export interface StarterOptions {
  /** Directory to write into (created when missing). */
  dir: string;
  /** `state_dir` written into the config; default `./state` (relative to the config file). */
  stateDir?: string;
  /** `[audit] dir` written into the config; default `./audit`. */
  auditDir?: string;
  /** `[listen] address`; default `127.0.0.1:8443` (loopback: serving other hosts is a decision). */
  listenAddress?: string;
}

/** `[listen] address` of the starter config without `--listen`: loopback until someone decides otherwise. */
export const STARTER_LISTEN_ADDRESS = "127.0.0.1:8443";

/** The files `gateway init` writes, relative to its directory. */
export function initFileList(): string[] {
  return ["gateway.toml", ...EXAMPLE_POLICY_FILES.map((f) => `policies/${f.path}`)];
}

/**
 * The starter configuration text with its placeholders filled in.
 *
 * @example
 * starterConfigText({ stateDir: "/var/lib/dutygate", auditDir: "/var/log/dutygate/audit" })
 */
export function starterConfigText(options: { stateDir?: string; auditDir?: string; policyDir?: string; listenAddress?: string } = {}): string {
  const values: Record<string, string> = {
    state_dir: options.stateDir ?? "./state",
    audit_dir: options.auditDir ?? "./audit",
    policy_dir: options.policyDir ?? "./policies",
    listen_address: options.listenAddress ?? STARTER_LISTEN_ADDRESS,
  };
  // TOML basic strings: escape what would end or break the string (paths rarely need it).
  const quoted = (s: string) => JSON.stringify(s).slice(1, -1);
  return STARTER_CONFIG_TEMPLATE.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new GatewayError("INIT_TEMPLATE", `unknown placeholder \`${key}\` in the starter config`);
    return quoted(value);
  });
}

/**
 * Writes the example policies (and their `*.test.toml`) into `dir`, creating it. Refuses with
 * `INIT_FILE_EXISTS` before writing anything when one of the files is already there.
 * Returns the absolute paths written.
 */
export function writeExamplePolicies(dir: string): string[] {
  const targets = EXAMPLE_POLICY_FILES.map((f) => ({ path: join(dir, f.path), text: f.text }));
  refuseExisting(targets.map((t) => t.path));
  mkdirSync(dir, { recursive: true });
  for (const t of targets) writeFileSync(t.path, t.text, { flag: "wx" });
  return targets.map((t) => t.path);
}

function refuseExisting(paths: string[]): void {
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length > 0) {
    throw new GatewayError("INIT_FILE_EXISTS", `refusing to overwrite ${existing.map((p) => `\`${p}\``).join(", ")}`, { existing });
  }
}

/**
 * Writes `DIR/gateway.toml` and `DIR/policies/`, creating `DIR`. Refuses with
 * `INIT_FILE_EXISTS` before writing anything when one of the files is already there. Returns
 * the absolute directory written into.
 */
export function writeStarterFiles(options: StarterOptions): string {
  const dir = resolve(options.dir);
  const configFile = join(dir, "gateway.toml");
  const policyDir = join(dir, "policies");
  refuseExisting([configFile, ...EXAMPLE_POLICY_FILES.map((f) => join(policyDir, f.path))]);
  mkdirSync(dir, { recursive: true });
  writeFileSync(configFile, starterConfigText({ stateDir: options.stateDir, auditDir: options.auditDir, listenAddress: options.listenAddress }), { flag: "wx", mode: 0o644 });
  writeExamplePolicies(policyDir);
  return dir;
}
