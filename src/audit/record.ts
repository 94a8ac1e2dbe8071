// What writer and verifier agree on: record shape, hashing, file names, checkpoint payload.
import { createHash } from "node:crypto";
import { GatewayError } from "../errors.ts";
import { canonicalJson, replaceLoneSurrogates } from "../lib/mod.ts";

/** `prev` of the first record of a chain. */
export const GENESIS_HASH = "0".repeat(64);

/** `typ` header of checkpoint signatures, so a checkpoint JWS cannot pass for another token. */
export const CHECKPOINT_JWS_TYPE = "dutygate-audit-checkpoint+jws";

/**
 * The event type of a request's outcome (the upstream's answer to an allowed request). Format 1
 * wrote each as an `outcome` record of its own; the log now gathers every outcome of a write batch
 * into one `outcomes` record ({@link OUTCOMES_TYPE}), so a request costs one record, its decision.
 */
export const OUTCOME_TYPE = "outcome";

/** The record that holds the outcomes of one write batch: `outcomes: [{decision_seq, status, …}]`. */
export const OUTCOMES_TYPE = "outcomes";

/** Record types the log itself writes; callers may not append them. */
export const RESERVED_TYPES: ReadonlySet<string> = new Set(["checkpoint", "rotate", "recovery", OUTCOMES_TYPE]);

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

const FILE_NAME = /^audit-(?:(w\d{1,6})-)?(\d{16})\.jsonl$/;

/**
 * The chain a worker of a supervisor writes (`listen.workers` > 1): `w0`, `w1`, … Each worker
 * keeps its own chain in its own files of the one audit directory; a gateway of one process
 * writes the chain without a name.
 */
export function workerChainName(worker: number): string {
  return `w${worker}`;
}

/**
 * File holding the records from `firstSeq` on, of chain `chain` ("" for a single process).
 * Zero-padded to 16 digits (every safe integer), so lexical order of one chain's names is chain
 * order: `audit-0000000000000000.jsonl`, `audit-w1-0000000000000000.jsonl`.
 */
export function auditFileName(firstSeq: number, chain = ""): string {
  return `audit-${chain ? `${chain}-` : ""}${String(firstSeq).padStart(16, "0")}.jsonl`;
}

/** The first seq encoded in an audit file name, or null when the name is not one. */
export function parseAuditFileName(name: string): number | null {
  const m = FILE_NAME.exec(name);
  return m ? Number(m[2]) : null;
}

/** The chain an audit file belongs to (`""`, `w0`, `w1`, …), or null when the name is not one. */
export function auditFileChain(name: string): string | null {
  const m = FILE_NAME.exec(name);
  return m ? (m[1] ?? "") : null;
}

/** SHA-256 (hex) of the canonical JSON of `body` (a record without `hash`). */
export function hashCanonical(canonicalBody: string): string {
  return BUN_SHA256 !== null ? BUN_SHA256.hash(canonicalBody, "hex") : createHash("sha256").update(canonicalBody).digest("hex");
}

// Bun's one-shot SHA-256 takes half the time of a node:crypto Hash object (UTF-8 in both); the
// digest is the same, and other runtimes use node:crypto.
const BUN_SHA256 = (globalThis as { Bun?: { SHA256?: { hash(data: string | Uint8Array, encoding: "hex"): string } } }).Bun?.SHA256 ?? null;

const CHAIN_KEYS = ["prev", "seq", "time", "type", "worker"] as const;

/**
 * A record body: the event's members and the chain fields (`prev`, `seq`, `time`, `type`), in
 * sorted key order when the event's own keys are sorted — the order RFC 8785 writes, so the
 * canonical form is one `JSON.stringify` (see canonicalJson). `seq` and `prev` always come from
 * the chain; `type` and `time` from the event when it sets them; `worker` (a worker's chain
 * only) from the chain.
 */
export function chainedBody(event: Readonly<Record<string, unknown>>, chain: ChainMembers): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const withWorker = chain.worker !== undefined;
  // The chain keys go in where the event's sorted keys pass them: `next` is the first not placed.
  let next = 0;
  for (const key in event) {
    if (key === "prev" || key === "seq" || key === "time" || key === "type" || (key === "worker" && withWorker)) continue;
    while (next < 5 && CHAIN_KEYS[next]! < key) next = placeChainKey(out, chain, next, withWorker);
    out[key] = event[key];
  }
  while (next < 5) next = placeChainKey(out, chain, next, withWorker);
  return out;
}

/**
 * Whether `event` carries the chain fields' slots: own members `prev`, `seq` (and `worker` in a
 * worker's chain) whose value is undefined, and `time` and `type`, each in its sorted place among
 * the event's members. Such an event is written as it is, the chain fields filled in for the
 * moment it is serialised ({@link LineBuffer.appendEvent}), instead of copied member by member into
 * a new body ({@link chainedBody}): the copy and the slower serialisation of the object it builds
 * cost about half a microsecond per record. Slots out of sorted place are still written right (the
 * canonical serialiser sorts what is not in order), only slower.
 */
export function hasChainSlots(event: Readonly<Record<string, unknown>>, withWorker: boolean): boolean {
  return event.prev === undefined && event.seq === undefined && Object.hasOwn(event, "seq") && Object.hasOwn(event, "prev") &&
    Object.hasOwn(event, "time") && Object.hasOwn(event, "type") && (!withWorker || (event.worker === undefined && Object.hasOwn(event, "worker"))) &&
    Object.isExtensible(event);
}

/** The chain fields {@link chainedBody} merges into a record. */
export interface ChainMembers {
  prev: string;
  seq: number;
  time: string;
  type: string;
  worker?: number;
}

/** Sets chain key number `index` of {@link CHAIN_KEYS} (no `worker` outside a worker's chain); returns the next index. */
function placeChainKey(out: Record<string, unknown>, chain: ChainMembers, index: number, withWorker: boolean): number {
  // Each key by name, not `chain[key]`: one shape per property access, which the engine keeps fast.
  switch (index) {
    case 0: out.prev = chain.prev; break;
    case 1: out.seq = chain.seq; break;
    case 2: out.time = chain.time; break;
    case 3: out.type = chain.type; break;
    default: if (withWorker) out.worker = chain.worker;
  }
  return index + 1;
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
 * Lone surrogates anywhere in the body (strings and keys) are written as U+FFFD: records carry
 * what callers and tokens sent, and a string JSON cannot canonicalise must not cost the record
 * (every response has one). Throws `AUDIT_NOT_JSON` for what no replacement fixes (NaN,
 * ±Infinity, bigint, nesting deeper than 64).
 */
export function recordLine(body: Readonly<Record<string, unknown>>): { line: string; hash: string } {
  const canonical = canonicalRecord(body);
  const hash = hashCanonical(canonical);
  const line = canonical === "{}" ? `{"hash":"${hash}"}\n` : `${canonical.slice(0, -1)},"hash":"${hash}"}\n`;
  return { line, hash };
}

/** The canonical JSON of a record body, lone surrogates written as U+FFFD (see {@link recordLine}). */
function canonicalRecord(body: Readonly<Record<string, unknown>>): string {
  try {
    return canonicalJson(body);
  } catch (error) {
    // Only the rare record holding a lone surrogate pays for the copy.
    if (!(error instanceof GatewayError && error.detail?.loneSurrogate === true)) throw error;
    return canonicalJson(replaceLoneSurrogates(body));
  }
}

/**
 * The bytes of a write batch: each record's line encoded once, straight into one reused buffer,
 * and hashed from those bytes. The same lines as {@link recordLine}, without building each line
 * as a string, joining the batch's lines and encoding the whole again (docs/audit.md, Performance).
 */
export class LineBuffer {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  /** Bytes of complete lines. */
  length = 0;
  /** Lines held. */
  lines = 0;

  /** Appends the line of a record body; returns its hash. Throws `AUDIT_NOT_JSON` as {@link recordLine}. */
  append(body: Readonly<Record<string, unknown>>): string {
    const canonical = canonicalRecord(body);
    // UTF-8 takes at most 3 bytes per UTF-16 code unit; the hash member adds 77.
    this.reserve(canonical.length * 3 + 80);
    const start = this.length;
    const end = start + this.buffer.write(canonical, start, "utf8");
    const hash = hashBytes(this.buffer.subarray(start, end));
    // The line is the canonical form with `hash` as its last member: over the closing brace.
    const member = canonical === "{}" ? `"hash":"${hash}"}\n` : `,"hash":"${hash}"}\n`;
    this.length = end - 1 + this.buffer.write(member, end - 1, "latin1");
    this.lines++;
    return hash;
  }

  /**
   * Appends the record of `event` with the chain fields `chain`; returns its hash. An event with
   * chain slots ({@link hasChainSlots}) is serialised in place, its slots filled for that moment
   * and given back as they were; any other is merged into a new body by {@link chainedBody}.
   * With `contextRef`, the record's `context` is written as that seq (the record of the same file
   * that holds the context) instead of the context itself.
   */
  appendEvent(event: Readonly<Record<string, unknown>>, chain: ChainMembers, contextRef?: number): string {
    const withWorker = chain.worker !== undefined;
    if (!hasChainSlots(event, withWorker)) {
      const body = chainedBody(event, chain);
      if (contextRef !== undefined) body.context = contextRef;
      return this.append(body);
    }
    const slots = event as Record<string, unknown>;
    const { context, time, type } = slots;
    try {
      if (contextRef !== undefined) slots.context = contextRef;
      slots.prev = chain.prev;
      slots.seq = chain.seq;
      slots.time = chain.time;
      slots.type = chain.type;
      if (withWorker) slots.worker = chain.worker;
      return this.append(slots);
    } finally {
      if (contextRef !== undefined) slots.context = context;
      slots.prev = undefined;
      slots.seq = undefined;
      slots.time = time;
      slots.type = type;
      if (withWorker) slots.worker = undefined;
    }
  }

  /** The lines held, as bytes (a view that the next {@link clear} reuses). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
    this.lines = 0;
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

function hashBytes(bytes: Uint8Array): string {
  return BUN_SHA256 !== null ? BUN_SHA256.hash(bytes, "hex") : createHash("sha256").update(bytes).digest("hex");
}
