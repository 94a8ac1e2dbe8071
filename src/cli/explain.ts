// `gateway explain DIR --principal P.json|P.toml --request "POST /changes/42/approve"`: why a
// policy allows or denies one request, printed from the same `Explanation` value the admin
// `/-/explain` endpoint returns. No ledger is consulted here: history separations are listed as
// the checks the live gateway would make.
import { existsSync, readFileSync, statSync } from "node:fs";
import { parse as parseToml, TomlError } from "smol-toml";
import { GatewayError } from "../errors.ts";
import { renderDiagnostic, type Channel } from "../../dsl/mod.ts";
import { explainRequest, renderExplanation, type ExplainInput } from "../gateway/mod.ts";
import { buildPolicyDirectory } from "../policy/mod.ts";
import { fileErrorReason } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

/** Parameters of `gateway explain`. */
export interface ExplainParams {
  /** Policy directory. */
  dir: string;
  /** Principal file: JSON, or TOML (top-level keys or a `[principal]` table). */
  principalFile: string;
  /** `POST /changes/42/approve?dry=1` */
  request: string;
  /** `name=value` pairs from `--header`. */
  headers?: readonly string[];
  ip?: string;
  channel?: Channel;
  /** RFC 3339; default now. */
  time?: string;
  format?: "text" | "json";
  /** A file of duties performed before (TOML `history = [{duty, sub, key}]`, or JSON), judged instead of a ledger. */
  historyFile?: string;
  /** How policy files are named in rule ids (default: `dir` as given). */
  displayDir?: string;
}

/**
 * Reads a principal file: `{ "sub": …, "roles": […] }` as JSON, or the same keys in TOML.
 * Throws `GatewayError` `EXPLAIN_BAD_PRINCIPAL_FILE` naming the file (and line:col for TOML).
 */
export function readPrincipalFile(path: string): Record<string, unknown> {
  const bad = (message: string) => new GatewayError("EXPLAIN_BAD_PRINCIPAL_FILE", message);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw bad(`cannot read principal file \`${path}\`: ${fileErrorReason(e)}`);
  }
  let doc: unknown;
  if (path.endsWith(".toml")) {
    try {
      doc = parseToml(text);
    } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      const reason = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw bad(`principal file \`${path}:${e.line}:${e.column}\` is not valid TOML: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`);
    }
  } else {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw bad(`principal file \`${path}\` is not valid JSON (${(e as Error).message.replace(/^JSON Parse error: /, "").toLowerCase()}); name it \`.toml\` for TOML`);
    }
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw bad(`principal file \`${path}\` must hold one object of principal attributes`);
  const record = doc as Record<string, unknown>;
  const inner = record.principal;
  // `[principal]` in TOML (or `{"principal": {...}}`) when it is the only key.
  if (Object.keys(record).length === 1 && inner !== null && typeof inner === "object" && !Array.isArray(inner)) return inner as Record<string, unknown>;
  return record;
}

/**
 * Reads a history file: TOML `history = [{ duty = "…", sub = "…", key = "…" }]` (the shape of a
 * policy test's `history`), or JSON, a list or `{"history": [...]}`. The entries are checked
 * against the policy later; throws `GatewayError` `EXPLAIN_BAD_HISTORY_FILE` when the file cannot
 * be read or parsed.
 */
export function readHistoryFile(path: string): unknown {
  const bad = (message: string) => new GatewayError("EXPLAIN_BAD_HISTORY_FILE", message);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw bad(`cannot read history file \`${path}\`: ${fileErrorReason(e)}`);
  }
  let doc: unknown;
  if (path.endsWith(".json")) {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw bad(`history file \`${path}\` is not valid JSON (${(e as Error).message.replace(/^JSON Parse error: /, "").toLowerCase()})`);
    }
  } else {
    try {
      doc = parseToml(text);
    } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      const reason = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw bad(`history file \`${path}:${e.line}:${e.column}\` is not valid TOML: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`);
    }
  }
  if (Array.isArray(doc)) return doc;
  const list = doc !== null && typeof doc === "object" ? (doc as Record<string, unknown>).history : undefined;
  if (list === undefined) throw bad(`history file \`${path}\` holds no \`history\` list`);
  return list;
}

function parseHeaderPairs(pairs: readonly string[]): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return pair;
    out[pair.slice(0, eq).trim().toLowerCase()] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Runs `gateway explain`: prints the explanation (text or JSON) and returns 0 whatever the
 * decision; 1 when the policy has errors; 64 for bad input (unreadable principal file, a
 * request that is not `METHOD /path`, a principal that does not fit the schema, bad ip/time).
 *
 * @example await runExplain({ dir: "policies", principalFile: "bob.json", request: "POST /changes/42/approve" }, processIo)
 */
export async function runExplain(params: ExplainParams, io: Io): Promise<number> {
  const { dir } = params;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    io.err(`error: policy directory \`${dir}\` does not exist`);
    return EXIT.usage;
  }
  // Built as the gateway builds it, short of the policy tests: explaining one request needs none.
  const build = buildPolicyDirectory(dir, { displayDir: params.displayDir, until: "compile" });
  if (build.failure?.code === "POLICY_EMPTY") {
    io.err(`error: no \`.duty\` files under \`${dir}\``);
    return EXIT.policyErrors;
  }
  if (!build.compiled) {
    for (const d of build.diagnostics) io.err(renderDiagnostic(d, build.sources));
    io.err(`error: the policy in \`${dir}\` has errors; run \`gateway check ${dir}\``);
    return EXIT.policyErrors;
  }
  let principal: Record<string, unknown>;
  try {
    principal = readPrincipalFile(params.principalFile);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    io.err(`error[${e.code}]: ${e.message}`);
    return EXIT.usage;
  }
  const headers = parseHeaderPairs(params.headers ?? []);
  if (typeof headers === "string") {
    io.err(`error: \`--header\` needs \`name=value\`, got \`${headers}\``);
    return EXIT.usage;
  }
  let history: unknown;
  try {
    history = params.historyFile === undefined ? undefined : readHistoryFile(params.historyFile);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    io.err(`error[${e.code}]: ${e.message}`);
    return EXIT.usage;
  }
  const input: ExplainInput = { principal, request: params.request, channel: params.channel, ip: params.ip, headers, time: params.time, history };
  const result = await explainRequest(build.compiled, input, null);
  if (!result.ok) {
    io.err(`error[${result.code}]: ${result.code === "EXPLAIN_BAD_HISTORY" ? `\`${params.historyFile}\`: ` : ""}${result.message}`);
    return EXIT.usage;
  }
  if (params.format === "json") io.out(JSON.stringify(result.explanation, null, 2));
  else for (const line of renderExplanation(result.explanation)) io.out(line);
  return EXIT.ok;
}
