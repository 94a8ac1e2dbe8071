// `gateway audit verify`: recompute every hash and link of an audit chain, check seq
// continuity and every checkpoint signature, and name the first place it breaks.
import { readFile, readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { base64url, compactVerify, createLocalJWKSet, decodeProtectedHeader } from "jose";
import type { JSONWebKeySet } from "jose";
import { GatewayError } from "../errors.ts";
import { canonicalJson } from "../lib/mod.ts";
import { CHECKPOINT_JWS_TYPE, GENESIS_HASH, OUTCOMES_TYPE, OUTCOME_TYPE, auditFileChain, hashCanonical, parseAuditFileName } from "./record.ts";
import type { CheckpointPayload } from "./record.ts";
import { contextForm } from "./contexts.ts";

/**
 * How a chain is broken:
 * - `changed`: a record's content does not match its hash (or was rewritten with a new hash), or
 *   its line is not the canonical serialisation of its content (what the hash covers);
 * - `removed`: seq gap (records or a whole file deleted);
 * - `reordered`: a record comes before one it should follow;
 * - `inserted`: a record that does not belong (duplicate seq, wrong link, after a rotate record);
 * - `bad_checkpoint`: a checkpoint whose signature, head, seq or count does not hold;
 * - `truncated`: the log was cut short (partial last line, file named by a rotate record
 *   missing, ends before an anchor checkpoint);
 * - `malformed`: a line that is not a record;
 * - `unsigned`: with keys, records after the last checkpoint, which no signature covers (the
 *   tail of a live log, or a forgery); accepted with `allowUnsignedTail`.
 */
export type AuditBreakKind = "changed" | "removed" | "reordered" | "inserted" | "bad_checkpoint" | "truncated" | "malformed" | "unsigned";

/** The first place a chain breaks. `line` is 1-based within `file`. */
export interface AuditBreak {
  file: string;
  line: number;
  /** Seq of the record at that line, when it could be read. */
  seq: number | null;
  kind: AuditBreakKind;
  message: string;
}

/** Result of {@link verifyAuditFiles}. Totals count what was read up to the break. */
export interface AuditVerification {
  ok: boolean;
  break: AuditBreak | null;
  /** Records of every type, checkpoints included. */
  records: number;
  checkpoints: number;
  files: number;
  /** Records after the last checkpoint: intact as far as the chain shows, but signed by nothing. */
  recordsAfterLastCheckpoint: number;
  /** Bytes of those records' lines (newlines included). */
  bytesAfterLastCheckpoint: number;
  /** Whether checkpoint signatures were verified (keys given). */
  signaturesChecked: boolean;
  firstSeq: number | null;
  lastSeq: number | null;
  /** Hash of the last record read. */
  head: string | null;
  /** Decision records read. */
  decisions: number;
  /** Outcomes read: format-1 `outcome` records and the entries of `outcomes` records. */
  outcomes: number;
  /**
   * Allowed decisions with no outcome in the files read: the request's outcome is unknown (the
   * gateway stopped or crashed before writing it, or the request was still in flight). Not a
   * break: the decision itself was written before the request was forwarded.
   */
  unknownOutcomes: number;
  /** The seqs of the first {@link UNKNOWN_OUTCOME_EXAMPLES} of them, in order. */
  unknownOutcomeSeqs: number[];
  /** The files read, in chain order. */
  paths: string[];
}

/** Options of {@link verifyAuditFiles}. */
export interface VerifyAuditOptions {
  /** Public keys of the gateways that sign checkpoints; without them signatures are not checked. */
  keys?: JSONWebKeySet;
  /**
   * A checkpoint JWS kept outside the log (shipped by the log pipeline): the chain must reach
   * its seq with its head, which detects a tail cut off after an earlier checkpoint. Needs `keys`.
   */
  anchor?: string;
  /** Accept a chain that starts after seq 0 (older files archived); default false. */
  partial?: boolean;
  /**
   * With `keys`, accept records after the last checkpoint (reported in
   * `recordsAfterLastCheckpoint`): a running gateway's newest file normally ends with some.
   * Without it, they are an `unsigned` break, because nothing shows they were not forged.
   */
  allowUnsignedTail?: boolean;
}

/**
 * Verifies audit files in chain order. `paths` are files or directories (whose `audit-*.jsonl`
 * files are taken); files named by the log's scheme are sorted by name, others kept in the
 * order given. Reports the first break; rejects only for unusable input
 * (`AUDIT_READ_FAILED`, `AUDIT_NO_FILES`, `AUDIT_BAD_ANCHOR`, and `AUDIT_SEVERAL_CHAINS` for the
 * files of several workers' chains: {@link verifyAuditChains} verifies those).
 *
 * @example
 * const result = await verifyAuditFiles(["/var/lib/gateway/audit"], { keys: jwks });
 * if (!result.ok) console.log(`${result.break!.file}:${result.break!.line}: ${result.break!.kind}`);
 */
export async function verifyAuditFiles(paths: readonly string[], options: VerifyAuditOptions = {}): Promise<AuditVerification> {
  const files = await resolveAuditPaths(paths);
  const chains = new Set(files.map((f) => auditFileChain(basename(f)) ?? ""));
  if (chains.size > 1) {
    throw new GatewayError("AUDIT_SEVERAL_CHAINS", `the files hold ${chains.size} chains (${[...chains].sort().map(chainLabel).join(", ")}), written by several workers; verify each chain (verifyAuditChains)`);
  }
  const anchor = options.anchor === undefined ? null : await verifyAnchor(options.anchor, options.keys);
  return new ChainVerifier(files, options, anchor).run();
}

/** One chain's verification, of {@link verifyAuditChains}. */
export interface ChainVerification {
  /** The chain's name in its file names: `w0`, `w1`, … for workers, `""` for a single process's chain. */
  chain: string;
  result: AuditVerification;
}

/**
 * Verifies every chain among `paths`: a directory written by several workers holds one chain per
 * worker (`audit-w0-…`, `audit-w1-…`, and `audit-…` of a single process before), each verified on
 * its own, in name order. Files not named by the log's scheme form one chain, in the order given.
 * An anchor names one chain's checkpoint, so it needs the files of one chain.
 *
 * @example
 * for (const { chain, result } of await verifyAuditChains(["/var/lib/gateway/audit"], { keys })) console.log(chain, result.ok);
 */
export async function verifyAuditChains(paths: readonly string[], options: VerifyAuditOptions = {}): Promise<ChainVerification[]> {
  const files = await resolveAuditPaths(paths);
  const chains = new Map<string, string[]>();
  for (const file of files) {
    const chain = auditFileChain(basename(file)) ?? "";
    chains.set(chain, [...(chains.get(chain) ?? []), file]);
  }
  if (options.anchor !== undefined && chains.size > 1) {
    throw new GatewayError("AUDIT_BAD_ANCHOR", `an anchor checkpoint belongs to one chain, but the files hold ${chains.size} (${[...chains.keys()].map(chainLabel).join(", ")}); verify that chain's files alone`);
  }
  const anchor = options.anchor === undefined ? null : await verifyAnchor(options.anchor, options.keys);
  const out: ChainVerification[] = [];
  for (const chain of [...chains.keys()].sort()) {
    out.push({ chain, result: await new ChainVerifier(chains.get(chain)!, options, anchor).run() });
  }
  return out;
}

/** How a chain is named to a reader: `w1`, or `single` for the chain of a gateway without workers. */
export function chainLabel(chain: string): string {
  return chain === "" ? "single" : chain;
}

/** Expands directories and orders files by the log's naming scheme. */
export async function resolveAuditPaths(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (error) {
      throw new GatewayError("AUDIT_READ_FAILED", `cannot read \`${path}\`: ${(error as { code?: string }).code ?? String(error)}`, { path });
    }
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((n) => parseAuditFileName(n) !== null).sort();
      files.push(...names.map((n) => join(path, n)));
    } else {
      files.push(path);
    }
  }
  if (files.length === 0) throw new GatewayError("AUDIT_NO_FILES", `no audit files in ${paths.map((p) => `\`${p}\``).join(", ") || "the arguments"}`);
  if (files.every((f) => parseAuditFileName(basename(f)) !== null)) files.sort((a, b) => (basename(a) < basename(b) ? -1 : basename(a) > basename(b) ? 1 : 0));
  return files;
}

async function verifyAnchor(jws: string, keys: JSONWebKeySet | undefined): Promise<CheckpointPayload> {
  if (keys === undefined) throw new GatewayError("AUDIT_BAD_ANCHOR", "an anchor checkpoint needs the signer keys");
  try {
    const { payload } = await compactVerify(jws, createLocalJWKSet(keys));
    const decoded = parseCheckpointPayload(new TextDecoder().decode(payload));
    if (decoded === null) throw new Error("payload is not a checkpoint");
    return decoded;
  } catch (error) {
    throw new GatewayError("AUDIT_BAD_ANCHOR", `anchor checkpoint does not verify: ${(error as Error).message}`);
  }
}

interface ChainRecord {
  type: string;
  seq: number;
  prev: string;
  hash: string;
  [field: string]: unknown;
}

interface Accepted {
  seq: number;
  prev: string;
  hash: string;
  file: string;
  line: number;
}

type LineRead = { record: ChainRecord } | { error: string };

/** How many seqs of decisions without an outcome a verification names. */
export const UNKNOWN_OUTCOME_EXAMPLES = 10;

const HEX64 = /^[0-9a-f]{64}$/;
const REORDER_SEARCH_LINES = 100_000;

class ChainVerifier {
  private readonly files: string[];
  private readonly options: VerifyAuditOptions;
  private readonly anchor: CheckpointPayload | null;
  private readonly keySet: ReturnType<typeof createLocalJWKSet> | null;
  private previous: Accepted | null = null;
  private pendingRotate: { next: string; seq: number; file: string; line: number } | null = null;
  /** Records since the last checkpoint; null until known (partial chains, before the first checkpoint). */
  private sinceCheckpoint: number | null = 0;
  /** The records no checkpoint covers yet: from the first after the last checkpoint (or the start) on. */
  private tail: { file: string; line: number; seq: number; records: number; bytes: number } | null = null;
  private result: AuditVerification;
  /** Lines of the file being read and of the one after it (for look-ahead). */
  private lines: string[] = [];
  private nextFileLines: string[] | null = null;
  private fileIndex = 0;
  /**
   * Allowed decisions whose outcome has not been read yet. Outcomes follow their decisions within
   * milliseconds, so this holds the requests in flight plus those whose outcome was lost.
   */
  private readonly awaitingOutcome = new Set<number>();
  /** Seqs of the records of the file being read that hold a context (format 3): what a reference may name. */
  private contextSeqs = new Set<number>();

  constructor(files: string[], options: VerifyAuditOptions, anchor: CheckpointPayload | null) {
    this.files = files;
    this.options = options;
    this.anchor = anchor;
    this.keySet = options.keys ? createLocalJWKSet(options.keys) : null;
    if (options.partial) this.sinceCheckpoint = null;
    this.result = {
      ok: true, break: null, records: 0, checkpoints: 0, files: 0, recordsAfterLastCheckpoint: 0, bytesAfterLastCheckpoint: 0,
      signaturesChecked: this.keySet !== null, firstSeq: null, lastSeq: null, head: null, paths: files,
      decisions: 0, outcomes: 0, unknownOutcomes: 0, unknownOutcomeSeqs: [],
    };
  }

  async run(): Promise<AuditVerification> {
    for (this.fileIndex = 0; this.fileIndex < this.files.length; this.fileIndex++) {
      const broken = await this.verifyFile(this.files[this.fileIndex]!);
      if (broken !== null) return this.finish(broken);
    }
    return this.finish(this.checkEnd());
  }

  private finish(broken: AuditBreak | null): AuditVerification {
    this.result.ok = broken === null;
    this.result.break = broken;
    this.result.recordsAfterLastCheckpoint = this.tail?.records ?? 0;
    this.result.bytesAfterLastCheckpoint = this.tail?.bytes ?? 0;
    this.result.unknownOutcomes = this.awaitingOutcome.size;
    // A Set iterates in insertion order, which is seq order.
    for (const seq of this.awaitingOutcome) {
      if (this.result.unknownOutcomeSeqs.length >= UNKNOWN_OUTCOME_EXAMPLES) break;
      this.result.unknownOutcomeSeqs.push(seq);
    }
    return this.result;
  }

  private async verifyFile(file: string): Promise<AuditBreak | null> {
    this.lines = this.nextFileLines ?? (await readLines(file));
    this.nextFileLines = null;
    this.result.files++;
    this.contextSeqs = new Set();
    // The text after the last newline: empty for an intact file, else a torn record.
    const partial = this.lines[this.lines.length - 1]!;
    const complete = this.lines.length - 1;
    if (this.pendingRotate !== null) {
      const expected = this.pendingRotate.next;
      if (basename(file) !== expected) {
        return { file, line: 1, seq: null, kind: "removed", message: `file \`${expected}\` named by the rotate record seq ${this.pendingRotate.seq} is missing` };
      }
      this.pendingRotate = null;
    }
    for (let index = 0; index < complete; index++) {
      const broken = await this.verifyLine(file, index);
      if (broken !== null) return broken;
    }
    if (partial.length > 0) {
      const seq = /"seq":(\d+)/.exec(partial)?.[1];
      return {
        file, line: complete + 1, seq: seq === undefined ? null : Number(seq), kind: "truncated",
        message: `last line is cut short (${Buffer.byteLength(partial)} bytes without a newline): the file was truncated mid-record`,
      };
    }
    return null;
  }

  private async verifyLine(file: string, index: number): Promise<AuditBreak | null> {
    const line = index + 1;
    const at = (kind: AuditBreakKind, message: string, seq: number | null = null): AuditBreak => ({ file, line, seq, kind, message });
    const text = this.lines[index]!;
    const read = readRecord(text);
    if ("error" in read) return at("malformed", read.error);
    const record = read.record;
    let canonical: string;
    try {
      const { hash: _hash, ...body } = record;
      canonical = canonicalJson(body);
    } catch (error) {
      return at("malformed", `record cannot be canonicalised: ${(error as Error).message}`, record.seq);
    }
    if (hashCanonical(canonical) !== record.hash) return at("changed", `record seq ${record.seq} hash does not match its content`, record.seq);
    // The hash covers the parsed content, so the bytes must be the one serialisation of it the
    // writer produces: otherwise a reader whose JSON parser differs (the first of two duplicate
    // members, say) sees another record than the one the chain vouches for.
    const written = canonical === "{}" ? `{"hash":"${record.hash}"}` : `${canonical.slice(0, -1)},"hash":"${record.hash}"}`;
    if (text !== written) {
      return at("changed", `record seq ${record.seq} is not written in canonical form (a duplicate or reordered member, whitespace or another escaping): its bytes are not what its hash covers`, record.seq);
    }
    // Every file the writer opens after the first starts with a checkpoint signing the head.
    if (index === 0 && record.type !== "checkpoint" && (this.fileIndex > 0 || (this.options.partial && record.seq > 0))) {
      return at("bad_checkpoint", `file does not start with a checkpoint: every file after the first begins with one signed by the gateway (record seq ${record.seq} is a \`${record.type}\`)`, record.seq);
    }
    if (this.pendingRotate !== null) {
      return at("inserted", `record seq ${record.seq} follows the rotate record seq ${this.pendingRotate.seq}, which ends this file`, record.seq);
    }

    const linkBreak = await this.checkLink(file, index, record);
    if (linkBreak !== null) return linkBreak;

    if (record.type === "checkpoint") {
      const message = await this.checkCheckpoint(record);
      if (message !== null) return at("bad_checkpoint", message, record.seq);
      this.result.checkpoints++;
      this.sinceCheckpoint = 0;
      this.tail = null;
    } else {
      if (this.sinceCheckpoint !== null) this.sinceCheckpoint++;
      this.tail ??= { file, line, seq: record.seq, records: 0, bytes: 0 };
      this.tail.records++;
      this.tail.bytes += Buffer.byteLength(text) + 1;
    }
    const outcomeError = this.noteRequest(record);
    if (outcomeError !== null) return at("malformed", outcomeError, record.seq);
    if (record.type === "rotate") {
      if (typeof record.next !== "string" || parseAuditFileName(record.next) === null) {
        return at("malformed", `rotate record seq ${record.seq} names no valid next file`, record.seq);
      }
      this.pendingRotate = { next: record.next, seq: record.seq, file, line };
    }
    if (this.anchor !== null && record.seq === this.anchor.seq - 1 && record.hash !== this.anchor.head) {
      return at("bad_checkpoint", `record seq ${record.seq} is not the head signed by the anchor checkpoint: the chain was rewritten`, record.seq);
    }
    this.previous = { seq: record.seq, prev: record.prev, hash: record.hash, file, line };
    this.result.records++;
    this.result.firstSeq ??= record.seq;
    this.result.lastSeq = record.seq;
    this.result.head = record.hash;
    return null;
  }

  /**
   * Pairs decisions with their outcomes: an allowed decision awaits one; an `outcome` record
   * (format 1) or an entry of an `outcomes` record answers it. Returns why an `outcomes` record
   * is not one the log writes, or null.
   */
  private noteRequest(record: ChainRecord): string | null {
    // A context is held by a record of the same file before the records that refer to it.
    const context = contextForm(record);
    if (context.kind === "bad") return `record seq ${record.seq} has a \`context\` that is neither an object nor a seq`;
    if (context.kind === "inline") this.contextSeqs.add(record.seq);
    if (context.kind === "ref" && !this.contextSeqs.has(context.seq)) {
      return `record seq ${record.seq} refers to the context of seq ${context.seq}, which no earlier record of this file holds`;
    }
    if (record.type === "decision") {
      this.result.decisions++;
      if (record.decision === "allow") this.awaitingOutcome.add(record.seq);
    } else if (record.type === OUTCOME_TYPE) {
      this.result.outcomes++;
      if (typeof record.decision_seq === "number") this.awaitingOutcome.delete(record.decision_seq);
    } else if (record.type === OUTCOMES_TYPE) {
      const entries = record.outcomes;
      if (!Array.isArray(entries) || entries.length === 0) return `outcomes record seq ${record.seq} holds no list of outcomes`;
      for (const entry of entries as unknown[]) {
        const decisionSeq = (entry as { decision_seq?: unknown } | null)?.decision_seq;
        // The writer takes only seqs it already wrote: an outcome never comes before its decision.
        if (!Number.isSafeInteger(decisionSeq) || (decisionSeq as number) < 0 || (decisionSeq as number) >= record.seq) {
          return `outcomes record seq ${record.seq} holds an outcome whose \`decision_seq\` is not an earlier record's seq`;
        }
        this.result.outcomes++;
        this.awaitingOutcome.delete(decisionSeq as number);
      }
    }
    return null;
  }

  /** Seq continuity and the `prev` link; classifies what broke them. */
  private async checkLink(file: string, index: number, record: ChainRecord): Promise<AuditBreak | null> {
    const line = index + 1;
    const at = (kind: AuditBreakKind, message: string, where: { file: string; line: number; seq: number } = { file, line, seq: record.seq }): AuditBreak =>
      ({ ...where, kind, message });
    const previous = this.previous;
    if (previous === null) {
      if (this.options.partial) return null;
      if (record.seq !== 0) return at("removed", `chain starts at seq ${record.seq}: records seq 0..${record.seq - 1} are missing`);
      if (record.prev !== GENESIS_HASH) return at("inserted", "first record does not link to the genesis hash");
      return null;
    }
    const expected = previous.seq + 1;
    if (record.seq === expected) {
      if (record.prev === previous.hash) return null;
      const next = this.peek(index + 1);
      if (next !== null && next.seq === record.seq && next.prev === previous.hash) {
        return at("inserted", `record seq ${record.seq} does not link to seq ${previous.seq}; the record after it does`);
      }
      if (next !== null && next.seq === record.seq + 1 && next.prev === record.hash) {
        // The chain goes on from this record, so the one before was edited and re-hashed.
        return at("changed", `record seq ${previous.seq} was rewritten: its hash no longer matches the link in seq ${record.seq}`, { file: previous.file, line: previous.line, seq: previous.seq });
      }
      return at("inserted", `record seq ${record.seq} links to a record that is not seq ${previous.seq}`);
    }
    if (record.seq === previous.seq) {
      if (record.hash === previous.hash) return at("inserted", `record seq ${record.seq} is a copy of the line before`);
      const next = this.peek(index + 1);
      if (record.prev === previous.prev && next !== null && next.prev === record.hash) {
        return at("inserted", `record seq ${previous.seq} does not belong: the chain continues from the other record with seq ${record.seq}`, { file: previous.file, line: previous.line, seq: previous.seq });
      }
      return at("inserted", `duplicate seq ${record.seq}`);
    }
    if (record.seq > expected) {
      if (await this.occursLater(index + 1, expected)) return at("reordered", `record seq ${record.seq} comes before seq ${expected}`);
      const missing = record.seq - 1 === expected ? `record seq ${expected} is missing` : `records seq ${expected}..${record.seq - 1} are missing`;
      return at("removed", missing);
    }
    return at("reordered", `seq goes back from ${previous.seq} to ${record.seq}`);
  }

  private async checkCheckpoint(record: ChainRecord): Promise<string | null> {
    // A partial chain's first record links to a record not given; its own `prev` stands for it.
    const head = this.previous?.hash ?? (this.options.partial ? record.prev : GENESIS_HASH);
    if (record.head !== head) return `checkpoint seq ${record.seq} head is not the hash of the record before it`;
    if (this.sinceCheckpoint !== null && record.count !== this.sinceCheckpoint) {
      return `checkpoint seq ${record.seq} counts ${String(record.count)} records since the last checkpoint, the chain has ${this.sinceCheckpoint}`;
    }
    if (typeof record.jws !== "string") return `checkpoint seq ${record.seq} has no signature`;
    let payload: CheckpointPayload | null;
    try {
      const header = decodeProtectedHeader(record.jws);
      if (header.typ !== CHECKPOINT_JWS_TYPE) return `checkpoint seq ${record.seq} signature has type \`${String(header.typ)}\``;
      payload = parseCheckpointPayload(new TextDecoder().decode(base64url.decode(record.jws.split(".")[1] ?? "")));
    } catch {
      payload = null;
    }
    if (payload === null) return `checkpoint seq ${record.seq} signature cannot be decoded`;
    if (payload.seq !== record.seq || payload.head !== record.head) return `checkpoint seq ${record.seq} signed payload does not match the record`;
    if (this.keySet !== null) {
      try {
        await compactVerify(record.jws, this.keySet);
      } catch (error) {
        return `checkpoint seq ${record.seq} signature does not verify with the given keys (kid \`${String(record.kid)}\`): ${(error as Error).message}`;
      }
    }
    return null;
  }

  /** End of input: what a missing tail leaves behind. */
  private checkEnd(): AuditBreak | null {
    const lastFile = this.files[this.files.length - 1]!;
    const lastLine = Math.max(1, this.lines.length - 1);
    if (this.pendingRotate !== null) {
      const { next, seq, file, line } = this.pendingRotate;
      return { file, line, seq, kind: "truncated", message: `file \`${next}\` named by the rotate record seq ${seq} is missing: the log was cut after seq ${seq}` };
    }
    if (this.anchor !== null && (this.result.lastSeq ?? -1) < this.anchor.seq - 1) {
      return {
        file: lastFile, line: lastLine, seq: this.result.lastSeq, kind: "truncated",
        message: `log ends at seq ${this.result.lastSeq ?? "(none)"} but the anchor checkpoint covers seq ${this.anchor.seq - 1}: its tail was removed`,
      };
    }
    // Hashes alone prove nothing against someone who can rewrite the file: only what a verified
    // signature covers is vouched for.
    if (this.tail !== null && this.keySet !== null && !this.options.allowUnsignedTail) {
      const { file, line, seq, records, bytes } = this.tail;
      return {
        file, line, seq, kind: "unsigned",
        message: `${describeTail(records, bytes, seq, this.result.lastSeq ?? seq)} covered by no checkpoint signature: the tail of a running gateway's log, or a forgery; \`--allow-unsigned-tail\` accepts it`,
      };
    }
    return null;
  }

  /** The record at `index` of the current file (or the first of the next), if it parses. */
  private peek(index: number): ChainRecord | null {
    const text = this.lines[index];
    if (text === undefined || index >= this.lines.length - 1) return null;
    const read = readRecord(text);
    return "record" in read ? read.record : null;
  }

  /** Whether a record with `seq` comes later in this file or the next (a swap, not a deletion). */
  private async occursLater(fromIndex: number, seq: number): Promise<boolean> {
    const needle = `"seq":${seq},`;
    const search = (lines: string[], from: number): boolean => {
      const end = Math.min(lines.length - 1, from + REORDER_SEARCH_LINES);
      for (let i = from; i < end; i++) {
        if (!lines[i]!.includes(needle)) continue;
        const read = readRecord(lines[i]!);
        if ("record" in read && read.record.seq === seq) return true;
      }
      return false;
    };
    if (search(this.lines, fromIndex)) return true;
    const nextFile = this.files[this.fileIndex + 1];
    if (nextFile === undefined) return false;
    this.nextFileLines ??= await readLines(nextFile);
    return search(this.nextFileLines, 0);
  }
}

/** "3 records (seq 6..8, 1234 bytes)": the size of an unsigned tail, as verify reports it. */
export function describeTail(records: number, bytes: number, fromSeq: number, toSeq: number): string {
  return `${records} record${records === 1 ? "" : "s"} (seq ${fromSeq}..${toSeq}, ${bytes} bytes)`;
}

async function readLines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, "utf8")).split("\n");
  } catch (error) {
    throw new GatewayError("AUDIT_READ_FAILED", `cannot read \`${file}\`: ${(error as { code?: string }).code ?? String(error)}`, { file });
  }
}

function readRecord(text: string): LineRead {
  if (text.length === 0) return { error: "empty line" };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: "line is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { error: "line is not a JSON object" };
  const record = value as Record<string, unknown>;
  if (!Number.isSafeInteger(record.seq) || (record.seq as number) < 0) return { error: "record has no valid `seq`" };
  if (typeof record.type !== "string") return { error: `record seq ${record.seq} has no \`type\`` };
  if (typeof record.prev !== "string" || !HEX64.test(record.prev)) return { error: `record seq ${record.seq} has no valid \`prev\`` };
  if (typeof record.hash !== "string" || !HEX64.test(record.hash)) return { error: `record seq ${record.seq} has no valid \`hash\`` };
  return { record: record as ChainRecord };
}

function parseCheckpointPayload(text: string): CheckpointPayload | null {
  try {
    const value = JSON.parse(text) as Partial<CheckpointPayload> | null;
    if (value === null || typeof value !== "object") return null;
    if (typeof value.head !== "string" || !Number.isSafeInteger(value.seq) || typeof value.time !== "string" || typeof value.instance !== "string") return null;
    return value as CheckpointPayload;
  } catch {
    return null;
  }
}
