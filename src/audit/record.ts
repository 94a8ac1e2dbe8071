// What writer and verifier agree on: record shape, hashing, file names, checkpoint payload.
import { createHash } from "node:crypto";
import { CanonicalFragment, canonicalJson, serialiseString } from "./canonical-json.ts";

/** `prev` of the first record of a chain. */
export const GENESIS_HASH = "0".repeat(64);

/** `typ` header of checkpoint signatures, so a checkpoint JWS cannot pass for another token. */
export const CHECKPOINT_JWS_TYPE = "dutygate-audit-checkpoint+jws";

/** Record types the log itself writes; callers may not append them. */
export const RESERVED_TYPES: ReadonlySet<string> = new Set(["checkpoint", "rotate", "recovery"]);

/** Fields every record carries; the log sets them. */
export interface ChainFields {
  type: string;
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

/** Signed statement of the chain head: the payload of a checkpoint's JWS. */
export interface CheckpointPayload {
  head: string;
  seq: number;
  time: string;
  instance: string;
}

const FILE_NAME = /^audit-(\d{16})\.jsonl$/;

/**
 * File holding the records from `firstSeq` on. Zero-padded to 16 digits (every safe integer),
 * so lexical order of names is chain order.
 */
export function auditFileName(firstSeq: number): string {
  return `audit-${String(firstSeq).padStart(16, "0")}.jsonl`;
}

/** The first seq encoded in an audit file name, or null when the name is not one. */
export function parseAuditFileName(name: string): number | null {
  const m = FILE_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** SHA-256 (hex) of the canonical JSON of `body` (a record without `hash`). */
export function hashCanonical(canonicalBody: string): string {
  return BUN_SHA256 !== null ? BUN_SHA256.hash(canonicalBody, "hex") : createHash("sha256").update(canonicalBody).digest("hex");
}

// Bun's one-shot SHA-256 takes half the time of a node:crypto Hash object (UTF-8 in both); the
// digest is the same, and other runtimes use node:crypto.
const BUN_SHA256 = (globalThis as { Bun?: { SHA256?: { hash(data: string, encoding: "hex"): string } } }).Bun?.SHA256 ?? null;

const CHAIN_KEYS = ["prev", "seq", "time", "type"] as const;

/**
 * A record body: the event's members and the chain fields (`prev`, `seq`, `time`, `type`), in
 * sorted key order when the event's own keys are sorted — the order RFC 8785 writes, so the
 * canonical form is one `JSON.stringify` (see canonicalJson). `seq` and `prev` always come from
 * the chain; `type` and `time` from the event when it sets them.
 */
export function chainedBody(event: Readonly<Record<string, unknown>>, chain: { prev: string; seq: number; time: string; type: string }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let c = 0;
  for (const key in event) {
    if (key === "prev" || key === "seq" || key === "time" || key === "type") continue;
    while (c < CHAIN_KEYS.length && CHAIN_KEYS[c]! < key) { out[CHAIN_KEYS[c]!] = chain[CHAIN_KEYS[c]!]; c++; }
    out[key] = event[key];
  }
  for (; c < CHAIN_KEYS.length; c++) out[CHAIN_KEYS[c]!] = chain[CHAIN_KEYS[c]!];
  return out;
}

/**
 * Hash of a parsed record: SHA-256 over RFC 8785 JSON of every member except `hash`.
 * Throws `AUDIT_NOT_JSON` when the record holds something JSON cannot (never for parsed input).
 */
export function recordHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _ignored, ...body } = record;
  return hashCanonical(canonicalJson(body));
}

/**
 * The line for a record body: its canonical JSON with `hash` added as the last member, so a
 * reader sees the link fields at the end and the hash input is the line minus that member.
 */
export function recordLine(body: Readonly<Record<string, unknown>>): { line: string; hash: string } {
  const canonical = canonicalJson(body);
  const hash = hashCanonical(canonical);
  const line = canonical === "{}" ? `{"hash":"${hash}"}\n` : `${canonical.slice(0, -1)},"hash":"${hash}"}\n`;
  return { line, hash };
}

/** The chain members the log adds to a caller's event. */
export interface ChainMembers {
  prev: string;
  seq: number;
  time: string;
  type: string;
}

/**
 * `recordLine(chainedBody(event, chain))` in one pass, without the intermediate object: the
 * event's members, already in sorted key order as the gateway writes them, are serialised one by
 * one (a {@link CanonicalFragment} as its text) with the chain members merged in at their sorted
 * places. An event whose keys are not in order falls back to the general path; both give the
 * same bytes (a differential test holds them to it).
 */
export function chainedRecordLine(event: Readonly<Record<string, unknown>>, chain: ChainMembers): { line: string; hash: string } {
  // A caller's own `time` or `type` that is not a string: the general path serialises it.
  if (typeof chain.time !== "string" || typeof chain.type !== "string") return recordLine(chainedBody(event, chain));
  let out = "";
  let c = 0;
  let previous = "";
  for (const key in event) {
    if (key === "prev" || key === "seq" || key === "time" || key === "type") continue;
    // for-in lists integer-like keys first: such an event (or an unsorted one) takes the general path.
    if (!(previous < key)) return recordLine(chainedBody(event, chain));
    previous = key;
    while (c < CHAIN_KEYS.length && CHAIN_KEYS[c]! < key) { out += chainMember(CHAIN_KEYS[c]!, chain); c++; }
    const value = event[key];
    let text: string;
    switch (typeof value) {
      case "string": text = serialiseString(value); break;
      case "number": text = Number.isFinite(value) ? String(value) : canonicalJson(value); break; // -0 prints "0", as RFC 8785 asks
      case "boolean": text = value ? "true" : "false"; break;
      case "bigint": text = canonicalJson(value); break; // throws AUDIT_NOT_JSON
      case "object": text = value === null ? "null" : value instanceof CanonicalFragment ? value.json : canonicalJson(value); break;
      default: continue; // undefined, functions, symbols: left out, as JSON.stringify does
    }
    out += "," + serialiseString(key) + ":" + text;
  }
  for (; c < CHAIN_KEYS.length; c++) out += chainMember(CHAIN_KEYS[c]!, chain);
  // Every member was written with a leading comma: the first one's becomes the brace.
  const canonical = "{" + out.slice(1) + "}";
  const hash = hashCanonical(canonical);
  return { line: `{${out.slice(1)},"hash":"${hash}"}\n`, hash };
}

function chainMember(key: (typeof CHAIN_KEYS)[number], chain: ChainMembers): string {
  const value = chain[key];
  return `,"${key}":${typeof value === "number" ? String(value) : serialiseString(value)}`;
}
