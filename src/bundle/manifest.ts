// The manifest: a General JWS JSON Serialization (RFC 7515 §7.2.1) whose payload lists every
// bundle file with its SHA-256. One payload, one signature per signer, each protected header
// carrying `{alg, kid, typ}` so the key id and algorithm are covered by the signature itself.
import { base64url } from "jose";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE_NAME, sha256Hex } from "./files.ts";
import { BundleCodes, type BundleProblem } from "./problems.ts";
import { writeFileAtomic } from "../lib/mod.ts";

/** `format` value of the manifest payload; bumped on any incompatible change. */
export const MANIFEST_FORMAT = "dutygate-bundle/1";
/** `typ` of every manifest signature's protected header (explicit typing, RFC 8725 §3.11). */
export const MANIFEST_JWS_TYPE = "dutygate-bundle+json";
/** Signature algorithms a manifest may use. */
export const MANIFEST_ALGORITHMS = ["EdDSA", "ES256"] as const;
export type ManifestAlgorithm = (typeof MANIFEST_ALGORITHMS)[number];

/** One file entry of the signed payload. */
export interface ManifestFileEntry {
  path: string;
  sha256: string;
}

/** The signed payload. Field names are snake_case because they are a wire format. */
export interface ManifestPayload {
  format: typeof MANIFEST_FORMAT;
  /** Positive integer, strictly increasing across issued bundles (rollback protection). */
  revision: number;
  /** RFC 3339 UTC date-time, second precision. */
  issued_at: string;
  expires_at?: string;
  /** Sorted by path, no duplicates. */
  files: ManifestFileEntry[];
}

/** One signature as stored in the manifest file. */
export interface ManifestSignatureEntry {
  /** base64url of the protected header JSON. */
  protected: string;
  /** base64url of the signature. */
  signature: string;
}

/** The manifest file as stored: General JWS JSON Serialization. */
export interface SignedManifest {
  /** base64url of the canonical payload bytes. */
  payload: string;
  signatures: ManifestSignatureEntry[];
}

/** The decoded protected header of one signature. */
export interface ManifestSignatureHeader {
  alg: ManifestAlgorithm;
  kid: string;
  typ: typeof MANIFEST_JWS_TYPE;
}

/** A manifest that passed structural validation (signatures are not verified yet). */
export interface ParsedManifest {
  signed: SignedManifest;
  payload: ManifestPayload;
  /** The exact bytes signers signed. */
  payloadBytes: Uint8Array;
  /** SHA-256 hex of `payloadBytes`: the bundle digest. */
  digest: string;
  headers: ManifestSignatureHeader[];
}

export type ManifestRead =
  | { kind: "absent" }
  | { kind: "malformed"; problems: BundleProblem[] }
  | { kind: "ok"; manifest: ParsedManifest };

// One RFC 8785 (JCS) implementation (src/lib/) serves the bundle manifest and the audit chain.
export { canonicalJson } from "../lib/mod.ts";
import { canonicalJson } from "../lib/mod.ts";

/** The canonical bytes of a payload: what is signed, and what the bundle digest hashes. */
export function encodeManifestPayload(payload: ManifestPayload): Uint8Array {
  return new TextEncoder().encode(canonicalJson(payload));
}

/** RFC 3339 UTC date-time with second precision, e.g. `2026-11-22T05:34:00Z`. */
export function formatManifestTime(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z");
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** True when `path` is a safe bundle-relative path: `/`-separated, no empty, `.` or `..` segments. */
export function isValidBundlePath(path: string): boolean {
  if (path === "" || path.includes("\\") || path.includes("\0")) return false;
  return path.split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

function malformed(message: string): ManifestRead {
  return { kind: "malformed", problems: [{ code: BundleCodes.MANIFEST_MALFORMED, message, path: MANIFEST_FILE_NAME }] };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function decodeJsonSegment(segment: string): unknown {
  const bytes = base64url.decode(segment);
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
}

function unknownKeys(record: Record<string, unknown>, allowed: readonly string[]): string[] {
  return Object.keys(record).filter((key) => !allowed.includes(key));
}

/**
 * Validates manifest text structurally: JWS shape, protected headers, payload fields, sorted and
 * unique safe paths, canonical payload encoding. Does not verify signatures.
 */
export function parseManifest(text: string): ManifestRead {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return malformed(`manifest is not JSON: ${(error as Error).message}`);
  }
  if (!isRecord(raw)) return malformed("manifest must be a JSON object");
  const extraTop = unknownKeys(raw, ["payload", "signatures"]);
  if (extraTop.length > 0) return malformed(`unexpected manifest member \`${extraTop[0]}\` (unprotected headers are not accepted)`);
  if (typeof raw.payload !== "string" || raw.payload === "" || !BASE64URL.test(raw.payload)) {
    return malformed("`payload` must be a non-empty base64url string");
  }
  if (!Array.isArray(raw.signatures)) return malformed("`signatures` must be an array");

  const signatures: ManifestSignatureEntry[] = [];
  const headers: ManifestSignatureHeader[] = [];
  for (const [index, entry] of raw.signatures.entries()) {
    const where = `signatures[${index}]`;
    if (!isRecord(entry)) return malformed(`\`${where}\` must be an object`);
    const extra = unknownKeys(entry, ["protected", "signature"]);
    if (extra.length > 0) return malformed(`unexpected member \`${where}.${extra[0]}\` (unprotected headers are not accepted)`);
    if (typeof entry.protected !== "string" || !BASE64URL.test(entry.protected) || typeof entry.signature !== "string" || !BASE64URL.test(entry.signature)) {
      return malformed(`\`${where}\` needs base64url \`protected\` and \`signature\``);
    }
    let header: unknown;
    try {
      header = decodeJsonSegment(entry.protected);
    } catch {
      return malformed(`\`${where}.protected\` is not base64url JSON`);
    }
    if (!isRecord(header)) return malformed(`\`${where}.protected\` must be a JSON object`);
    if (typeof header.kid !== "string" || header.kid === "") return malformed(`\`${where}\` protected header needs a \`kid\``);
    if (!MANIFEST_ALGORITHMS.includes(header.alg as ManifestAlgorithm)) {
      return malformed(`\`${where}\` uses algorithm \`${String(header.alg)}\`; expected one of ${MANIFEST_ALGORITHMS.join(", ")}`);
    }
    if (header.typ !== MANIFEST_JWS_TYPE) return malformed(`\`${where}\` protected header needs \`typ\` = \`${MANIFEST_JWS_TYPE}\``);
    if (header.crit !== undefined) return malformed(`\`${where}\` uses \`crit\`, which bundle manifests do not support`);
    signatures.push({ protected: entry.protected, signature: entry.signature });
    headers.push({ alg: header.alg as ManifestAlgorithm, kid: header.kid, typ: MANIFEST_JWS_TYPE });
  }

  let payloadBytes: Uint8Array;
  let payload: unknown;
  try {
    payloadBytes = base64url.decode(raw.payload);
    payload = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payloadBytes));
  } catch {
    return malformed("`payload` is not base64url JSON");
  }
  if (!isRecord(payload)) return malformed("payload must be a JSON object");
  const extraPayload = unknownKeys(payload, ["format", "revision", "issued_at", "expires_at", "files"]);
  if (extraPayload.length > 0) return malformed(`unexpected payload member \`${extraPayload[0]}\``);
  if (payload.format !== MANIFEST_FORMAT) return malformed(`payload \`format\` must be \`${MANIFEST_FORMAT}\`, found \`${String(payload.format)}\``);
  if (typeof payload.revision !== "number" || !Number.isSafeInteger(payload.revision) || payload.revision < 1) {
    return malformed("payload `revision` must be a positive integer");
  }
  if (typeof payload.issued_at !== "string" || !RFC3339.test(payload.issued_at) || !Number.isFinite(Date.parse(payload.issued_at))) {
    return malformed("payload `issued_at` must be an RFC 3339 date-time");
  }
  if (payload.expires_at !== undefined) {
    if (typeof payload.expires_at !== "string" || !RFC3339.test(payload.expires_at) || !Number.isFinite(Date.parse(payload.expires_at))) {
      return malformed("payload `expires_at` must be an RFC 3339 date-time");
    }
    if (Date.parse(payload.expires_at) <= Date.parse(payload.issued_at)) return malformed("payload `expires_at` must be after `issued_at`");
  }
  if (!Array.isArray(payload.files)) return malformed("payload `files` must be an array");
  const files: ManifestFileEntry[] = [];
  for (const [index, entry] of payload.files.entries()) {
    if (!isRecord(entry) || unknownKeys(entry, ["path", "sha256"]).length > 0) return malformed(`payload \`files[${index}]\` must be \`{path, sha256}\``);
    if (typeof entry.path !== "string" || !isValidBundlePath(entry.path)) return malformed(`payload \`files[${index}].path\` is not a safe relative path`);
    if (typeof entry.sha256 !== "string" || !SHA256_HEX.test(entry.sha256)) return malformed(`payload \`files[${index}].sha256\` must be 64 lowercase hex digits`);
    const previous = files[files.length - 1];
    if (previous !== undefined && !(previous.path < entry.path)) return malformed(`payload \`files\` must be sorted by path without duplicates (at \`${entry.path}\`)`);
    files.push({ path: entry.path, sha256: entry.sha256 });
  }
  const typed: ManifestPayload = {
    format: MANIFEST_FORMAT,
    revision: payload.revision,
    issued_at: payload.issued_at,
    ...(payload.expires_at === undefined ? {} : { expires_at: payload.expires_at as string }),
    files,
  };
  // A non-canonical payload would let two byte strings describe one bundle under two digests.
  const canonical = encodeManifestPayload(typed);
  if (canonical.length !== payloadBytes.length || canonical.some((byte, i) => byte !== payloadBytes[i])) {
    return malformed("payload is not canonical JSON (sorted keys, no whitespace)");
  }
  return {
    kind: "ok",
    manifest: { signed: { payload: raw.payload, signatures }, payload: typed, payloadBytes, digest: sha256Hex(payloadBytes), headers },
  };
}

/** Reads and validates `DIR/bundle.sig.json`. A missing file is `absent`, not an error. */
export async function readManifestFile(dir: string): Promise<ManifestRead> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE_NAME), "utf8");
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return { kind: "absent" };
    return malformed(`cannot read manifest: ${String((error as { code?: unknown }).code ?? error).toLowerCase()}`);
  }
  return parseManifest(text);
}

/** Writes the manifest atomically (temp file, fsync, rename), pretty-printed for review diffs. */
export async function writeManifestFile(dir: string, manifest: SignedManifest): Promise<void> {
  const body = { payload: manifest.payload, signatures: manifest.signatures.map((s) => ({ protected: s.protected, signature: s.signature })) };
  await writeFileAtomic(join(dir, MANIFEST_FILE_NAME), `${JSON.stringify(body, null, 2)}\n`);
}
