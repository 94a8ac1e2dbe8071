// The audit log writer: one JSON line per record, hash chained, group-committed, signed
// checkpoints, rotation by size and age. See docs/audit.md for the format and guarantees.
import { constants as fsConstants, fstatSync, statSync, writeSync } from "node:fs";
import { mkdir, open, readdir } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import type { KeyObject } from "node:crypto";
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { CompactSign } from "jose";
import { GatewayError } from "../errors.ts";
import { writeStdout } from "../stdio.ts";
import type { AuditConfig } from "../config/mod.ts";
import { canonicalJson } from "../lib/mod.ts";
import { CHECKPOINT_JWS_TYPE, GENESIS_HASH, LineBuffer, OUTCOMES_TYPE, OUTCOME_TYPE, RESERVED_TYPES, auditFileChain, auditFileName, parseAuditFileName, recordLine, workerChainName } from "./record.ts";
import type { ChainMembers, CheckpointPayload } from "./record.ts";
import { readFileTail, readFirstLine, scanLinesBackwards } from "./tail.ts";

/** The key that signs checkpoints (private; its public half goes in the verifier's JWKS). */
export interface AuditSigningKey {
  key: CryptoKey | KeyObject;
  kid: string;
  alg: "EdDSA" | "ES256";
}

/**
 * Options of {@link openAuditLog}: the `[audit]` config plus the gateway's signing key.
 * A whole `AuditConfig` is accepted (extra fields are ignored).
 */
export interface AuditLogOptions
  extends Pick<AuditConfig, "dir" | "fsync" | "batchIntervalMs" | "rotateBytes" | "rotateAgeMs" | "checkpointEvery" | "checkpointIntervalMs" | "stdout"> {
  signingKey: AuditSigningKey;
  /** Names this gateway in checkpoint signatures; default: the host name. */
  instance?: string;
  /**
   * The worker of a supervisor that writes this chain (`listen.workers` > 1): its files are
   * `audit-w<N>-<seq>.jsonl` beside the other workers' in `dir`, and every record carries
   * `worker: N`. Absent: the chain of a single process, `audit-<seq>.jsonl`.
   */
  worker?: number;
  /** Where `stdout: true` prints record lines; default `process.stdout`. */
  stdoutSink?: (text: string) => void;
}

/** How an append is written. */
export interface AppendOptions {
  /**
   * Nobody waits on this record (an outcome written after the response): it joins the next
   * batch instead of starting one, and is written at the latest `DEFERRED_FLUSH_MS` later. It
   * keeps its place in the chain; a crash in that window can lose it (and only it), like any
   * record not yet written — never the decision it answers, written before forwarding.
   */
  deferred?: boolean;
}

/** Longest a deferred record waits for a batch to join. */
export const DEFERRED_FLUSH_MS = 20;

/** Where an appended record landed in the chain. */
export interface AppendResult {
  seq: number;
  hash: string;
}

/** Counters for `/metrics` and `/readyz`. */
export interface AuditLogStats {
  /** Seq the next record will get. */
  nextSeq: number;
  /** Hash of the last record written (the chain head). */
  head: string;
  /** File records currently go to (a name inside `dir`). */
  file: string;
  recordsWritten: number;
  checkpointsWritten: number;
  /** `write` calls that carried records: fewer than records when appends were group-committed. */
  writes: number;
  /** fdatasync calls on log files. */
  fsyncs: number;
  /** Appends rejected because the log could not be written. */
  failedAppends: number;
  /** Times the current file was found deleted or replaced, and the chain moved to a new file. */
  filesLost: number;
}

/** A running audit log. Create with {@link openAuditLog}. */
export interface AuditLog {
  /**
   * Appends one record and resolves once its line is handed to the OS (`write` returned),
   * and with `fsync = "always"` also fsynced. `type` defaults to `"decision"`; `time` to now;
   * `seq`, `prev` and `hash` are set by the log. Rejects with `AUDIT_WRITE_FAILED` when the
   * line could not be written (the record is then not in the log), `AUDIT_BAD_RECORD` for an
   * event that is not JSON or sets a reserved field, `AUDIT_CLOSED` after {@link close}.
   *
   * An event's `context` (an object, read-only once appended) is written out by the first record
   * of the current file that carries that object, and as that record's seq by the later ones.
   *
   * An event of type `outcome` answers the decision record `decision_seq` (a seq this log
   * returned) and is not a record of its own: every outcome of a write batch becomes one entry of
   * that batch's `outcomes` record (the event without `type`), and the append resolves with that
   * record's seq and hash.
   */
  append(event: Readonly<Record<string, unknown>>, options?: AppendOptions): Promise<AppendResult>;
  /** Writes a signed checkpoint now (null when the chain head is already one). */
  checkpoint(): Promise<AppendResult | null>;
  /** False after a failed write or fsync, until a later write succeeds. */
  healthy(): boolean;
  /** The last failure seen (kept after recovery, for diagnostics). */
  readonly lastError: GatewayError | null;
  stats(): AuditLogStats;
  /** Writes a final checkpoint, fsyncs (unless `fsync = "off"`) and closes; idempotent. */
  close(): Promise<void>;
}

/**
 * Opens (or resumes) the audit log in `options.dir`: finds the chain head in the existing
 * files, repairs a torn last line (recording a `recovery` record), and returns the writer.
 * The directory and file are created lazily: when they cannot be, the log starts unhealthy
 * and every append rejects until they can. Rejects with `AUDIT_READ_FAILED` when existing
 * files cannot be read and `AUDIT_TAIL_INVALID` when the last record cannot be parsed,
 * because continuing would fork the chain.
 *
 * @example
 * const log = await openAuditLog({ ...config.audit, signingKey: { key, kid: "gw-1", alg: "EdDSA" } });
 * const { seq } = await log.append({ request_id, sub, duty, decision: "allow", reasons });
 * log.append({ type: "outcome", decision_seq: seq, latency_ms: 12, request_id, status: 200 }, { deferred: true });
 */
export async function openAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const log = new FileAuditLog(options);
  await log.resume();
  return log;
}

interface PendingAppend {
  event: Readonly<Record<string, unknown>>;
  /** For an outcome event: its entry in the batch's `outcomes` record (the event without `type`). */
  outcome: Readonly<Record<string, unknown>> | null;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

interface CurrentFile {
  name: string;
  handle: FileHandle | null;
  /** Bytes known to hold complete records; writes go exactly here. */
  bytes: number;
  openedAt: number;
  /** Device and inode of the open file: the path must still name it (see `checkFileStillNamed`). */
  identity: { dev: number; ino: number } | null;
}

/** The members of a `recovery` record (a torn line cut off, or the current file lost). */
type Recovery =
  | { file: string; discarded_bytes: number; discarded_sha256: string }
  | { file: string; reason: "file_deleted" | "file_replaced"; first_seq: number; last_seq: number };

type LostFile = "file_deleted" | "file_replaced";

const HEX64 = /^[0-9a-f]{64}$/;

class FileAuditLog implements AuditLog {
  private readonly options: AuditLogOptions;
  private readonly instance: string;
  /** The chain's name in file names (`w1`; "" for a single process), and its worker id. */
  private readonly chain: string;
  private readonly worker: number | undefined;
  private nextSeq = 0;
  private head = GENESIS_HASH;
  private sinceCheckpoint = 0;
  private file: CurrentFile;
  private needsTruncate = false;
  private pendingRecovery: Recovery | null = null;
  /** Set when the current file's path no longer names the open file; handled before the next write. */
  private lostFile: LostFile | null = null;
  private startWithCheckpoint = false;
  private queue: PendingAppend[] = [];
  /** The lines of the batch being written: one buffer, reused by every batch. */
  private readonly lineBuffer = new LineBuffer();
  private draining: Promise<void> | null = null;
  private checkpointWaiters: Array<{ resolve: (r: AppendResult | null) => void; reject: (e: unknown) => void }> = [];
  private checkpointRequested = false;
  private checkpointTimer: ReturnType<typeof setInterval> | null = null;
  private syncTimer: ReturnType<typeof setTimeout> | null = null;
  private deferredTimer: ReturnType<typeof setTimeout> | null = null;
  private syncing: Promise<void> | null = null;
  private syncFailed = false;
  /** Records written since the last fsync started (`fsync = "batch"`). */
  private unsynced = false;
  private lastSyncAt = 0;
  private isHealthy = true;
  /** Set by close(): appends are refused, queued work is still written. */
  private closing = false;
  /** Set once close() has flushed: nothing more is written. */
  private finished = false;
  private closed: Promise<void> | null = null;
  private currentPath = { name: "", path: "" };
  /**
   * The contexts the current file holds, each by the seq of the record that holds it (format 3):
   * a record whose `context` is here refers to it. A new file, or a batch that failed (whose
   * records may not be in the file), starts an empty table.
   */
  private contexts = new WeakMap<object, number>();
  private counters = { recordsWritten: 0, checkpointsWritten: 0, writes: 0, fsyncs: 0, failedAppends: 0, filesLost: 0 };
  lastError: GatewayError | null = null;

  constructor(options: AuditLogOptions) {
    this.options = options;
    this.instance = options.instance ?? hostname();
    this.worker = options.worker;
    this.chain = options.worker === undefined ? "" : workerChainName(options.worker);
    this.file = { name: auditFileName(0, this.chain), handle: null, bytes: 0, openedAt: Date.now(), identity: null };
  }

  // ---- start-up ---------------------------------------------------------------------------

  async resume(): Promise<void> {
    const { dir } = this.options;
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      this.markFailed(writeFailed(`cannot create audit directory \`${dir}\``, error));
    }
    let names: string[];
    try {
      // Only this chain's files: the other workers' chains share the directory.
      names = (await readdir(dir)).filter((n) => auditFileChain(n) === this.chain).sort();
    } catch (error) {
      if (errno(error) !== "ENOENT") throw new GatewayError("AUDIT_READ_FAILED", `cannot list audit directory \`${dir}\`: ${describe(error)}`, { dir });
      names = [];
    }
    try {
      await this.findChainHead(names);
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      throw new GatewayError("AUDIT_READ_FAILED", `cannot read audit files in \`${dir}\`: ${describe(error)}`, { dir });
    }
    if (this.options.checkpointIntervalMs > 0) {
      this.checkpointTimer = setInterval(() => {
        if (this.sinceCheckpoint > 0 || this.queue.length > 0) this.checkpoint().catch(() => {});
      }, this.options.checkpointIntervalMs);
      unrefTimer(this.checkpointTimer);
    }
  }

  private async findChainHead(names: string[]): Promise<void> {
    const { dir } = this.options;
    // The file to continue in is the last one; its torn tail (a write cut short by a crash or
    // power loss) is cut off on the first write and recorded in a `recovery` record.
    if (names.length > 0) {
      const name = names[names.length - 1]!;
      const tail = await readFileTail(join(dir, name));
      this.file = { name, handle: null, bytes: tail.completeBytes, openedAt: Date.now(), identity: null };
      if (tail.partial.length > 0) {
        this.needsTruncate = true;
        this.pendingRecovery = {
          file: name,
          discarded_bytes: tail.partial.length,
          discarded_sha256: createHash("sha256").update(tail.partial).digest("hex"),
        };
      }
    }
    // The head is the last complete record, in the last file that has one.
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const tail = await readFileTail(join(dir, name));
      if (tail.lastLine === null) continue;
      const last = parseTailRecord(tail.lastLine, name);
      this.head = last.hash;
      this.nextSeq = last.seq + 1;
      this.sinceCheckpoint = await this.countSinceCheckpoint(names.slice(0, i + 1), tail.completeBytes, last.seq);
      if (last.type === "rotate") {
        // Crashed between the rotate record and the first write of the next file.
        const next = typeof last.next === "string" && auditFileChain(last.next) === this.chain ? last.next : null;
        if (next === null) throw new GatewayError("AUDIT_TAIL_INVALID", `rotate record seq ${last.seq} in \`${name}\` names no valid next file`, { file: name });
        if (next !== this.file.name) this.file = { name: next, handle: null, bytes: 0, openedAt: Date.now(), identity: null };
        this.startWithCheckpoint = true;
      } else if (name === this.file.name) {
        const firstLine = await readFirstLine(join(dir, name));
        const firstTime = firstLine === null ? NaN : Date.parse(String(safeParse(firstLine)?.time));
        if (Number.isFinite(firstTime)) this.file.openedAt = firstTime;
      }
      return;
    }
  }

  /** Records after the last checkpoint, so the next checkpoint's `count` is exact after a restart. */
  private async countSinceCheckpoint(names: string[], endOfLast: number, lastSeq: number): Promise<number> {
    for (let i = names.length - 1; i >= 0; i--) {
      const path = join(this.options.dir, names[i]!);
      const end = i === names.length - 1 ? endOfLast : (await readFileTail(path)).completeBytes;
      let checkpointSeq: number | null = null;
      await scanLinesBackwards(path, end, (line) => {
        if (!line.includes('"type":"checkpoint"')) return false;
        const record = safeParse(line);
        if (record?.type !== "checkpoint" || typeof record.seq !== "number") return false;
        checkpointSeq = record.seq;
        return true;
      });
      if (checkpointSeq !== null) return lastSeq - checkpointSeq;
    }
    return lastSeq + 1;
  }

  // ---- public API -------------------------------------------------------------------------

  append(event: Readonly<Record<string, unknown>>, options?: AppendOptions): Promise<AppendResult> {
    if (this.closing) return Promise.reject(new GatewayError("AUDIT_CLOSED", "audit log is closed"));
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      return Promise.reject(new GatewayError("AUDIT_BAD_RECORD", "audit event must be an object"));
    }
    // A member left undefined is not set: the chain slots of a record built in sorted order.
    if (event.seq !== undefined || event.prev !== undefined || event.hash !== undefined) {
      const field = event.seq !== undefined ? "seq" : event.prev !== undefined ? "prev" : "hash";
      return Promise.reject(new GatewayError("AUDIT_BAD_RECORD", `audit event may not set \`${field}\`: the log sets it`));
    }
    const type = event.type ?? "decision";
    if (typeof type !== "string" || RESERVED_TYPES.has(type)) {
      return Promise.reject(new GatewayError("AUDIT_BAD_RECORD", `audit event type \`${String(type)}\` is reserved or not a string`));
    }
    const context = event.context;
    if (context !== undefined && (typeof context !== "object" || context === null || Array.isArray(context))) {
      return Promise.reject(new GatewayError("AUDIT_BAD_RECORD", "an audit event's `context` must be an object: the log writes it once per file and refers to it by seq"));
    }
    let outcome: Record<string, unknown> | null = null;
    if (type === OUTCOME_TYPE) {
      // An outcome names a decision this log wrote: readers find the request by that seq.
      const decisionSeq = event.decision_seq;
      if (!Number.isSafeInteger(decisionSeq) || (decisionSeq as number) < 0 || (decisionSeq as number) >= this.nextSeq) {
        return Promise.reject(new GatewayError("AUDIT_BAD_RECORD", `an outcome needs \`decision_seq\`, the seq of a record already written (below ${this.nextSeq}), not \`${String(decisionSeq)}\``));
      }
      // The entry is the event without `type`, copied member by member (cheaper than a rest copy).
      outcome = {};
      for (const key in event) if (key !== "type") outcome[key] = event[key];
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ event, outcome, resolve, reject });
      if (options?.deferred) this.scheduleDeferredFlush();
      else this.startDraining();
    });
  }

  private scheduleDeferredFlush(): void {
    if (this.draining !== null || this.deferredTimer !== null) return;
    this.deferredTimer = setTimeout(() => {
      this.deferredTimer = null;
      if (this.queue.length > 0) this.startDraining();
    }, DEFERRED_FLUSH_MS);
    unrefTimer(this.deferredTimer);
  }

  checkpoint(): Promise<AppendResult | null> {
    if (this.finished) return Promise.reject(new GatewayError("AUDIT_CLOSED", "audit log is closed"));
    return new Promise((resolve, reject) => {
      this.checkpointWaiters.push({ resolve, reject });
      this.checkpointRequested = true;
      this.startDraining();
    });
  }

  healthy(): boolean {
    return this.isHealthy;
  }

  stats(): AuditLogStats {
    return { nextSeq: this.nextSeq, head: this.head, file: this.file.name, ...this.counters };
  }

  close(): Promise<void> {
    if (this.closed === null) this.closed = this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    // Appends already queued are written; later ones are refused.
    this.closing = true;
    if (this.checkpointTimer !== null) clearInterval(this.checkpointTimer);
    if (this.deferredTimer !== null) clearTimeout(this.deferredTimer);
    this.deferredTimer = null;
    // Deferred records still queued are written now.
    if (this.queue.length > 0) this.startDraining();
    while (this.draining !== null) await this.draining;
    // A final checkpoint, so a cleanly closed log is covered by a signature to its last record.
    if (this.sinceCheckpoint > 0 && this.isHealthy) await this.checkpoint().catch(() => {});
    while (this.draining !== null) await this.draining;
    await this.stopSyncTimer();
    this.finished = true;
    const handle = this.file.handle;
    this.file.handle = null;
    if (handle === null) return;
    try {
      if (this.options.fsync !== "off") { await handle.datasync(); this.counters.fsyncs++; }
    } catch (error) {
      this.markFailed(writeFailed(`cannot fsync \`${this.file.name}\``, error));
    } finally {
      await handle.close().catch(() => {});
    }
  }

  // ---- the write loop ---------------------------------------------------------------------

  private startDraining(): void {
    if (this.draining === null) this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    // Let every append made in this turn of the event loop join the first batch: the requests
    // the runtime hands over from one poll of its sockets then share one write (group commit).
    await nextTurn();
    try {
      // Each pass writes everything queued so far as one write (group commit); appends that
      // arrive meanwhile form the next batch. A failed pass clears the checkpoint request,
      // so this ends when the queue is empty.
      while (this.queue.length > 0 || this.checkpointRequested) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.writeBatch(batch);
        } catch (error) {
          // Only a bug gets here; never leave a caller waiting.
          const failure = writeFailed("audit write failed unexpectedly", error);
          this.contexts = new WeakMap();
          for (const item of batch) item.reject(failure);
          this.rejectCheckpointWaiters(failure);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  private async writeBatch(batch: PendingAppend[]): Promise<void> {
    if (batch.length === 0 && this.sinceCheckpoint === 0 && this.pendingRecovery === null) {
      // A checkpoint was asked for but the head already is one: nothing to sign.
      this.checkpointRequested = false;
      this.resolveCheckpointWaiters(null);
      return;
    }
    const now = Date.now();
    // Opening, repairing, rotating, replacing a lost file: only when there is something to do
    // (one check, and one stat of the path, per batch).
    try {
      if (this.file.handle !== null && this.lostFile === null) this.lostFile = this.checkFileStillNamed();
      if (this.needsPreparation(now, batch.length > 0)) await this.prepareFile(now, batch.length > 0);
    } catch (error) {
      this.failBatch(batch.map((item) => item.reject), error);
      return;
    }
    const handle = this.file.handle!;
    const { checkpointEvery } = this.options;
    let seq = this.nextSeq;
    let head = this.head;
    let since = this.sinceCheckpoint;
    let checkpoints = 0;
    let checkpointResult: AppendResult | null = null;
    const lines = this.lineBuffer;
    lines.clear();
    const written: Array<{ item: PendingAppend; result: AppendResult }> = [];
    const outcomes: PendingAppend[] = [];
    const time = new Date(now).toISOString();

    const advance = (hash: string): AppendResult => {
      const result = { seq, hash };
      head = hash;
      seq++;
      return result;
    };
    const addRecord = (body: Record<string, unknown>): AppendResult => advance(lines.append(body));
    const addEvent = (event: Readonly<Record<string, unknown>>, chain: ChainMembers, contextRef: number | undefined): AppendResult => advance(lines.appendEvent(event, chain, contextRef));
    const addCheckpoint = async (): Promise<AppendResult> => {
      const body = await this.checkpointBody(seq, head, since, time);
      since = 0;
      checkpoints++;
      return addRecord(body);
    };

    // A new file starts with a signed checkpoint, even one that signs the same head again (a lost
    // file may have ended with a checkpoint); otherwise a checkpoint is written when asked for.
    if (this.startWithCheckpoint ? seq > 0 : this.checkpointRequested && since > 0) checkpointResult = await addCheckpoint();
    if (this.pendingRecovery !== null) {
      addRecord(this.withWorker({ type: "recovery", seq, time, prev: head, ...this.pendingRecovery }));
      since++;
    }
    for (const item of batch) {
      if (item.outcome !== null) { outcomes.push(item); continue; }
      let result: AppendResult;
      try {
        const event = item.event;
        // A context this file already holds is written as the seq of the record that holds it.
        const context = event.context as object | undefined;
        const contextRef = context === undefined ? undefined : this.contexts.get(context);
        result = addEvent(event, { prev: head, seq, time: (event.time as string | undefined) ?? time, type: (event.type as string | undefined) ?? "decision", worker: this.worker }, contextRef);
        if (context !== undefined && contextRef === undefined) this.contexts.set(context, result.seq);
      } catch (error) {
        // Not JSON: refuse this one record; it took no seq.
        item.reject(error instanceof GatewayError ? new GatewayError("AUDIT_BAD_RECORD", `audit event is not JSON: ${error.message}`) : error);
        continue;
      }
      written.push({ item, result });
      since++;
      if (since >= checkpointEvery && checkpointEvery > 0) await addCheckpoint();
    }
    // The batch's outcomes follow its decisions in one record: each answers a decision written in
    // an earlier batch, so every outcome comes after its decision in the chain.
    if (outcomes.length > 0) {
      const result = this.addOutcomes(outcomes, (body) => addRecord(body), { prev: () => head, seq: () => seq, time });
      if (result !== null) {
        for (const item of outcomes) written.push({ item, result });
        since++;
        if (since >= checkpointEvery && checkpointEvery > 0) await addCheckpoint();
      }
    }
    if (lines.lines === 0) {
      this.checkpointRequested = false;
      this.resolveCheckpointWaiters(null);
      return;
    }

    const buffer = lines.bytes();
    try {
      writeFully(handle, buffer, this.file.bytes);
      if (this.options.fsync === "always") { await handle.datasync(); this.counters.fsyncs++; }
    } catch (error) {
      this.failBatch(written.map((w) => w.item.reject), error);
      return;
    }

    // The line is in the file: only now does the chain advance.
    this.file.bytes += buffer.length;
    this.nextSeq = seq;
    this.head = head;
    this.sinceCheckpoint = since;
    this.pendingRecovery = null;
    this.startWithCheckpoint = false;
    this.isHealthy = true;
    this.counters.recordsWritten += lines.lines;
    this.counters.writes++;
    this.counters.checkpointsWritten += checkpoints;
    if (this.options.stdout) (this.options.stdoutSink ?? writeStdout)(buffer.toString("utf8"));
    if (this.options.fsync === "batch") this.scheduleSync();
    for (const { item, result } of written) item.resolve(result);
    if (this.checkpointRequested) {
      this.checkpointRequested = false;
      this.resolveCheckpointWaiters(checkpointResult);
    }
  }

  /**
   * Adds the `outcomes` record of a batch. An entry that is not JSON (NaN, say) refuses only
   * itself: the others are written without it. Null when no entry was left.
   */
  private addOutcomes(items: PendingAppend[], addRecord: (body: Record<string, unknown>) => AppendResult, chain: { prev: () => string; seq: () => number; time: string }): AppendResult | null {
    const body = (entries: Array<Readonly<Record<string, unknown>>>) =>
      this.withWorker({ outcomes: entries, prev: chain.prev(), seq: chain.seq(), time: chain.time, type: OUTCOMES_TYPE });
    try {
      return addRecord(body(items.map((item) => item.outcome!)));
    } catch {
      // Rare: find the entries at fault, refuse them, write the rest.
    }
    const good: PendingAppend[] = [];
    for (const item of items) {
      try {
        recordLine({ entry: item.outcome });
        good.push(item);
      } catch (error) {
        item.reject(error instanceof GatewayError ? new GatewayError("AUDIT_BAD_RECORD", `audit event is not JSON: ${error.message}`) : error);
      }
    }
    items.splice(0, items.length, ...good);
    return good.length > 0 ? addRecord(body(good.map((item) => item.outcome!))) : null;
  }

  private needsPreparation(now: number, mayRotate: boolean): boolean {
    if (this.syncFailed || this.file.handle === null || this.needsTruncate || this.lostFile !== null) return true;
    if (!mayRotate || this.file.bytes === 0) return false;
    const { rotateBytes, rotateAgeMs } = this.options;
    return (rotateBytes > 0 && this.file.bytes >= rotateBytes) || (rotateAgeMs > 0 && now - this.file.openedAt >= rotateAgeMs);
  }

  /**
   * Whether the current file's path still names the open file. Deleted (or renamed away), records
   * would go on into an inode nobody can read; replaced (renamed over, edited with a tool that
   * writes a copy), into a file nobody will see. One `stat` per batch, shared by every record
   * of the batch: cheap next to the write it guards.
   */
  private checkFileStillNamed(): LostFile | null {
    const identity = this.file.identity;
    if (identity === null) return null;
    const path = this.pathOf(this.file.name);
    let info;
    try {
      info = statSync(path, { throwIfNoEntry: false });
    } catch (error) {
      // The path cannot be looked at (the directory's permissions changed): nothing written now
      // could be shown to be in the log, so the batch fails like a failed write.
      throw writeFailed(`cannot check audit file \`${path}\``, error);
    }
    if (info === undefined) return "file_deleted";
    return info.dev === identity.dev && info.ino === identity.ino ? null : "file_replaced";
  }

  /** The path of a file of the log, the current one's kept (the `stat` of every batch needs it). */
  private pathOf(name: string): string {
    if (name !== this.currentPath.name) this.currentPath = { name, path: join(this.options.dir, name) };
    return this.currentPath.path;
  }

  /**
   * The current file was deleted or replaced: the chain continues in a new file named by the
   * next seq, which starts (as after a rotation) with a checkpoint over the head, then a
   * `recovery` record naming the lost file and the seqs it held. Nothing is written to the lost
   * file; the records it held are gone from the log, and `audit verify` reports the gap.
   */
  private async continueAfterLostFile(now: number, reason: LostFile): Promise<void> {
    const lost = this.file;
    await this.stopSyncTimer();
    await lost.handle?.close().catch(() => {});
    this.file = { name: auditFileName(this.nextSeq, this.chain), handle: null, bytes: 0, openedAt: now, identity: null };
    this.contexts = new WeakMap();
    // A file already at that name (left by someone else, or the replacement itself) is not ours:
    // prepareFile opens the new file and cuts it to nothing before the first write.
    this.needsTruncate = true;
    this.lostFile = null;
    this.counters.filesLost++;
    if (this.nextSeq > 0) {
      this.startWithCheckpoint = true;
      const firstSeq = parseAuditFileName(lost.name) ?? this.nextSeq;
      // A lost file that held no record of ours (nothing written yet) leaves nothing to report.
      if (firstSeq < this.nextSeq) this.pendingRecovery = { file: lost.name, reason, first_seq: firstSeq, last_seq: this.nextSeq - 1 };
    }
  }

  /** Opens the current file, repairs a torn tail, rotates: everything before the records. */
  private async prepareFile(now: number, mayRotate: boolean): Promise<void> {
    if (this.lostFile !== null) await this.continueAfterLostFile(now, this.lostFile);
    // A background fsync failed: the disk must prove itself before more is acknowledged.
    if (this.syncFailed && this.file.handle !== null) {
      await this.file.handle.datasync();
      this.counters.fsyncs++;
      this.syncFailed = false;
    }
    if (this.file.handle === null) await this.openCurrentFile();
    if (this.needsTruncate) {
      await this.file.handle!.truncate(this.file.bytes);
      this.needsTruncate = false;
    }
    const { rotateBytes, rotateAgeMs } = this.options;
    const tooBig = rotateBytes > 0 && this.file.bytes >= rotateBytes;
    const tooOld = rotateAgeMs > 0 && now - this.file.openedAt >= rotateAgeMs;
    // A checkpoint alone (close(), the interval timer) does not open a file of its own.
    if (mayRotate && this.file.bytes > 0 && (tooBig || tooOld)) await this.rotate(now);
  }

  private async openCurrentFile(): Promise<void> {
    const path = join(this.options.dir, this.file.name);
    let handle: FileHandle;
    // Positional writes (no O_APPEND): a torn write is overwritten by the next one.
    const openFile = () => open(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o640);
    try {
      handle = await openFile().catch(async (error: unknown) => {
        // The directory could not be created at start-up (or was removed): try again now.
        if (errno(error) !== "ENOENT") throw error;
        await mkdir(this.options.dir, { recursive: true });
        return openFile();
      });
    } catch (error) {
      throw writeFailed(`cannot open audit file \`${path}\``, error);
    }
    this.file.handle = handle;
    const info = fstatSync(handle.fd);
    this.file.identity = { dev: info.dev, ino: info.ino };
    if (this.file.bytes === 0) this.file.openedAt = Date.now();
    if (this.options.fsync !== "off") await syncDirectory(this.options.dir);
  }

  /** Ends the current file with a `rotate` record naming the next; the next starts with a checkpoint. */
  private async rotate(now: number): Promise<void> {
    const next = auditFileName(this.nextSeq + 1, this.chain);
    const { line, hash } = recordLine(this.withWorker({ type: "rotate", seq: this.nextSeq, time: new Date(now).toISOString(), next, prev: this.head }));
    const buffer = Buffer.from(line, "utf8");
    const handle = this.file.handle!;
    await this.stopSyncTimer();
    try {
      writeFully(handle, buffer, this.file.bytes);
      if (this.options.fsync !== "off") { await handle.datasync(); this.counters.fsyncs++; }
    } catch (error) {
      await handle.truncate(this.file.bytes).catch(() => { this.needsTruncate = true; });
      throw writeFailed(`cannot write rotate record to \`${this.file.name}\``, error);
    }
    this.head = hash;
    this.nextSeq++;
    this.sinceCheckpoint++;
    this.counters.recordsWritten++;
    this.counters.writes++;
    this.startWithCheckpoint = true;
    if (this.options.stdout) (this.options.stdoutSink ?? writeStdout)(line);
    await handle.close().catch(() => {});
    this.file = { name: next, handle: null, bytes: 0, openedAt: now, identity: null };
    this.contexts = new WeakMap();
    await this.openCurrentFile();
  }

  private async checkpointBody(seq: number, head: string, count: number, time: string): Promise<Record<string, unknown>> {
    const { key, kid, alg } = this.options.signingKey;
    const payload: CheckpointPayload = { head, seq, time, instance: this.instance };
    const jws = await new CompactSign(new TextEncoder().encode(canonicalJson(payload)))
      .setProtectedHeader({ alg, kid, typ: CHECKPOINT_JWS_TYPE })
      .sign(key);
    return this.withWorker({ type: "checkpoint", seq, time, head, count, kid, jws, prev: head });
  }

  /** The log's own records carry the worker id too: every record of a worker's chain names it. */
  private withWorker(body: Record<string, unknown>): Record<string, unknown> {
    return this.worker === undefined ? body : { ...body, worker: this.worker };
  }

  private failBatch(rejects: Array<(error: unknown) => void>, error: unknown): void {
    const failure = error instanceof GatewayError && error.code === "AUDIT_WRITE_FAILED"
      ? error
      : writeFailed(`cannot write audit file \`${this.file.name}\``, error);
    this.markFailed(failure);
    // Whatever part of the batch reached the file is cut off on the next write (or now), so the
    // chain continues from the last record actually written.
    if (this.file.handle !== null) this.needsTruncate = true;
    this.contexts = new WeakMap();
    this.counters.failedAppends += rejects.length;
    for (const reject of rejects) reject(failure);
    this.checkpointRequested = false;
    this.rejectCheckpointWaiters(failure);
  }

  private markFailed(error: GatewayError): void {
    this.isHealthy = false;
    this.lastError = error;
  }

  private resolveCheckpointWaiters(result: AppendResult | null): void {
    const waiters = this.checkpointWaiters;
    this.checkpointWaiters = [];
    for (const w of waiters) w.resolve(result);
  }

  private rejectCheckpointWaiters(error: unknown): void {
    const waiters = this.checkpointWaiters;
    this.checkpointWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  // ---- fsync = "batch" --------------------------------------------------------------------

  private scheduleSync(): void {
    this.unsynced = true;
    // A sync in flight re-schedules itself when it ends, for writes it may not have covered.
    if (this.syncTimer !== null || this.syncing !== null || this.closing) return;
    const delay = Math.max(0, this.lastSyncAt + this.options.batchIntervalMs - Date.now());
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      const handle = this.file.handle;
      if (handle === null) return;
      this.unsynced = false;
      this.syncing = handle.datasync().then(
        () => { this.lastSyncAt = Date.now(); this.counters.fsyncs++; },
        (error: unknown) => {
          this.syncFailed = true;
          this.markFailed(writeFailed(`cannot fsync \`${this.file.name}\``, error));
        },
      ).finally(() => {
        this.syncing = null;
        if (this.unsynced && !this.syncFailed) this.scheduleSync();
      });
    }, delay);
    unrefTimer(this.syncTimer);
  }

  /** No fsync may be in flight on a handle about to be closed. */
  private async stopSyncTimer(): Promise<void> {
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.syncing !== null) await this.syncing;
  }
}

function parseTailRecord(line: string, file: string): { seq: number; hash: string; type: unknown; next?: unknown } {
  const record = safeParse(line);
  if (record === null || !Number.isSafeInteger(record.seq) || (record.seq as number) < 0 || typeof record.hash !== "string" || !HEX64.test(record.hash)) {
    throw new GatewayError(
      "AUDIT_TAIL_INVALID",
      `last record of \`${file}\` cannot be parsed; run \`gateway audit verify\` and move the damaged file aside`,
      { file },
    );
  }
  return record as { seq: number; hash: string; type: unknown; next?: unknown };
}

function safeParse(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Writes the whole buffer at `position` with synchronous `pwrite` calls on the handle's fd.
 * A write into the page cache takes a few microseconds; the asynchronous `handle.write` costs
 * several times that in thread-pool hand-offs, once per batch, on the request path. What can
 * block for long — `fdatasync` — stays asynchronous (see `scheduleSync` and `fsync = "always"`).
 */
function writeFully(handle: FileHandle, buffer: Buffer, position: number): void {
  // One write almost always takes the whole batch; loop only for the rest of a short write.
  let offset = 0;
  while (offset < buffer.length) {
    const bytesWritten = writeSync(handle.fd, buffer, offset, buffer.length - offset, position + offset);
    if (bytesWritten <= 0) throw new Error("write returned no progress");
    offset += bytesWritten;
  }
}

/** Resolves on the next turn of the event loop, after the I/O callbacks of this one. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Makes a new file's directory entry durable; best effort where directories cannot be fsynced. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try { await handle.sync(); } finally { await handle.close(); }
  } catch {
    // Some platforms refuse fsync on directories; the file's own fsync still holds its data.
  }
}

function writeFailed(message: string, cause: unknown): GatewayError {
  return new GatewayError("AUDIT_WRITE_FAILED", `${message}: ${describe(cause)}`, { errno: errno(cause) });
}

function errno(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function describe(error: unknown): string {
  return errno(error) ?? (error instanceof Error ? error.message : String(error));
}

function unrefTimer(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer && typeof timer.unref === "function") {
    timer.unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
  if (deno && typeof timer === "number") deno.unrefTimer(timer);
}
