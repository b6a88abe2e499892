/**
 * The journal writer: appends commits to the newest journal file.
 */
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { MaxBatchBytes } from '../config/index.js';
import { ConflictError, JournalWriteError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { fsyncDir } from '../vault/index.js';
import { journalFileName, listCountedJournalFiles } from './journal-files.js';
import { encodeRecord } from './record.js';

/** How a {@link JournalWriter} writes, syncs and reports failure. */
export interface JournalWriterOptions {
  /** The journal folder (`FileVault/journal`); created when missing. */
  dir: string;
  /** Seq of the next record: the scanned journal's lastSeq + 1. */
  nextSeq: number;
  /** This writer's epoch: stamped on each record and named in each file it creates. */
  epoch: number;
  /** `commit`: acknowledge after fdatasync; `interval`: after the write, fdatasync every `syncIntervalMs`. */
  sync: 'commit' | 'interval';
  /** Extra time a flush waits for company before writing; 0 = batches form while the previous fsync runs. */
  groupCommitMs: number;
  syncIntervalMs: number;
  logger: Logger;
  /**
   * Called once per failed write or fdatasync, before any record is rejected,
   * with the last acknowledged seq and the JournalWriteError (its `cause` is the OS error).
   */
  onFailure?: (lastDurableSeq: number, err: Error) => void;
  /**
   * Called with the last seq of each acknowledged stretch of records, before
   * any of their `durable` promises resolves: the store applies them to its
   * engine in one step, so that each commit's caller finds its own applied.
   */
  onAcknowledged?: (lastSeq: number) => void;
}

/** Counters for status and metrics. */
export interface JournalStats {
  /** Path of the file being appended to. */
  file: string;
  /** Bytes in that file so far. */
  fileBytes: number;
  /** Bytes written by this writer, all files. */
  bytesWritten: number;
  /** Last seq handed out by append(). */
  lastSeq: number;
  /** Last seq known to be fsynced. */
  lastDurableSeq: number;
  fsyncs: number;
  batches: number;
}

interface Pending {
  seq: number;
  frame: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** One write of queued records, in file order with the others in flight. */
interface Batch {
  records: Pending[];
  position: number;
  bytes: number;
  /** undefined while the write runs, null once it succeeded, the error once it failed. */
  outcome: Error | null | undefined;
}

/**
 * Most batch writes in flight at once. Two lanes let the next batch reach the
 * disk while the committers of the last one do their work (answer clients,
 * prepare the next commit), and the file system merges concurrent O_DSYNC
 * writes into one journal commit.
 */
const MaxInflight = 2;

/**
 * Appends records with group commit. append() numbers a record and queues its
 * frame at once. Queued records go out together in one write per batch (in
 * `commit` mode durable on return: the file is open with O_DSYNC, which is
 * write + fdatasync in one system call), with up to {@link MaxInflight} batches
 * in flight, acknowledged strictly in file order. A batch leaves when a lane is
 * free and either enough records wait (half the committers lately waiting at
 * once, so that concurrent committers split into cohorts whose CPU work
 * overlaps each other's I/O) or the current turn of the event loop has ended
 * (or `groupCommitMs` has passed, which also turns the early start off).
 *
 * When a write fails, nothing after the last acknowledged record may survive:
 * no new write starts, the writes still in flight are awaited, onFailure hears
 * first, every record not yet acknowledged is rejected, the next seq goes back
 * to lastDurableSeq + 1, and the file is cut back to its acknowledged length
 * (through a fresh handle if the old one is dead) so later appends continue
 * cleanly. If the file cannot be cut back, or an `interval`-mode fsync fails
 * (the kernel may have dropped the unsynced pages, so what is on disk is
 * unknown), the writer refuses every later append; a restart recovers the
 * journal's good prefix.
 */
export class JournalWriter {
  private readonly options: JournalWriterOptions;
  private handle: FileHandle;
  private file: string;
  private fileFirstSeq: number;
  private nextSeq: number;
  private readonly epoch: number;
  private queue: Pending[] = [];
  /** Batch writes started and not yet acknowledged, in file order. */
  private inflight: Batch[] = [];
  /** A wait for the end of the turn (or groupCommitMs) is scheduled. */
  private gathering = false;
  /** An exclusive operation (roll, close, interval sync) owns the file: no batch starts. */
  private held = false;
  /** A failed write is being handled: no batch starts until the file is cut back. */
  private failing = false;
  /** Moving estimate of how many committers wait at once; sets the early-start threshold. */
  private concurrency = 1;
  private drainWaiters: (() => void)[] = [];
  /** Length of the current file as written: where the next batch goes. */
  private fileBytes: number;
  /** Last seq, and file length, whose `durable` promises have resolved. */
  private ackedSeq: number;
  private ackedBytes: number;
  /** Last seq known fsynced. */
  private syncedSeq: number;
  private bytesWritten = 0;
  private fsyncs = 0;
  private batches = 0;
  /** Serialises every operation on the file (flush, interval sync, roll, close). */
  private ioTail: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** Set when the writer can no longer append safely. */
  private broken: JournalWriteError | null = null;

  private constructor(options: JournalWriterOptions, handle: FileHandle, file: string, fileFirstSeq: number, size: number) {
    this.options = options;
    this.handle = handle;
    this.file = file;
    this.fileFirstSeq = fileFirstSeq;
    this.nextSeq = options.nextSeq;
    this.epoch = options.epoch;
    this.fileBytes = size;
    this.ackedBytes = size;
    this.ackedSeq = options.nextSeq - 1;
    this.syncedSeq = options.nextSeq - 1;
    if (options.sync === 'interval') {
      this.timer = setInterval(() => void this.syncTick(), options.syncIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Opens the newest journal file for appending when this epoch wrote it, or
   * creates `journalFileName(nextSeq, epoch)` with O_EXCL: a new epoch never
   * writes a file an earlier one made (a fenced writer's late write may still
   * land there).
   */
  static async open(options: JournalWriterOptions): Promise<JournalWriter> {
    if (!Number.isSafeInteger(options.nextSeq) || options.nextSeq < 1) {
      throw new RangeError(`journal nextSeq must be a positive integer, got ${options.nextSeq}`);
    }
    checkEpoch(options.epoch);
    const created = await mkdir(options.dir, { recursive: true });
    if (created !== undefined) await fsyncDir(path.dirname(created));
    const newest = (await listCountedJournalFiles(options.dir)).at(-1);
    if (newest !== undefined && newest.firstSeq > options.nextSeq) {
      throw new ConflictError(
        `journal ${newest.path} starts at seq ${newest.firstSeq}, past the next seq ${options.nextSeq}; scan the journal and open the writer at its lastSeq + 1`,
      );
    }
    if (newest !== undefined && newest.epoch !== null && newest.epoch > options.epoch) {
      throw new ConflictError(`journal ${newest.path} was written by epoch ${newest.epoch}, newer than this writer's epoch ${options.epoch}; this node must not write the journal`);
    }
    let writer: JournalWriter;
    if (newest === undefined || newest.epoch !== options.epoch) {
      const file = path.join(options.dir, journalFileName(options.nextSeq, options.epoch));
      const handle = await open(file, openFlags(options.sync, true));
      await fsyncDir(options.dir);
      writer = new JournalWriter(options, handle, file, options.nextSeq, 0);
    } else {
      const handle = await open(newest.path, openFlags(options.sync, false));
      const { size } = await handle.stat();
      if (size === 0 && newest.firstSeq !== options.nextSeq) {
        await handle.close();
        throw new ConflictError(
          `journal ${newest.path} is empty but named for seq ${newest.firstSeq}, not the next seq ${options.nextSeq}; scan the journal and open the writer at its lastSeq + 1`,
        );
      }
      writer = new JournalWriter(options, handle, newest.path, newest.firstSeq, size);
    }
    options.logger.info('journal opened', { file: writer.file, nextSeq: options.nextSeq, epoch: options.epoch, sync: options.sync });
    return writer;
  }

  /** Numbers `op` with the next seq (gap-free, at once) and queues it; `durable` resolves once it is acknowledged. */
  append(op: unknown): { seq: number; bytes: number; durable: Promise<void> } {
    if (this.closing !== null) throw new JournalWriteError(`journal ${this.file} is closed; the commit was not acknowledged`);
    this.throwIfBroken();
    const seq = this.nextSeq;
    // Encode before taking the seq, so an op that cannot be written leaves no gap.
    const frame = encodeRecord({ seq, epoch: this.epoch, op });
    this.nextSeq = seq + 1;
    let resolve!: () => void;
    let settleFailed!: (err: Error) => void;
    const durable = new Promise<void>((res, rej) => {
      resolve = res;
      settleFailed = rej;
    });
    // A caller may ignore `durable`: a handler attached just before rejecting keeps a
    // failure from becoming an unhandled rejection (at no cost on the success path),
    // while `durable` itself still rejects for those who await it.
    const reject = (err: Error): void => {
      durable.catch(() => undefined);
      settleFailed(err);
    };
    this.queue.push({ seq, frame, resolve, reject });
    this.pump();
    return { seq, bytes: frame.length, durable };
  }

  /** Flushes and fsyncs the current file, then continues in a new file named for the next seq; returns its path. */
  async roll(): Promise<string> {
    if (this.closing !== null) throw new JournalWriteError(`journal ${this.file} is closed; cannot roll`);
    return this.exclusive(async () => {
      // Records handed out so far belong to the current file; those appended while it rolls wait for the new one
      // (flushing until the queue is empty would never end while committers keep appending).
      await this.flushHeld(this.nextSeq - 1);
      await this.syncForHandOver();
      const firstSeq = this.ackedSeq + 1;
      if (this.fileBytes === 0 && this.fileFirstSeq === firstSeq) return this.file;
      const file = path.join(this.options.dir, journalFileName(firstSeq, this.epoch));
      try {
        const handle = await open(file, openFlags(this.options.sync, true));
        const old = this.handle;
        this.handle = handle;
        this.file = file;
        this.fileFirstSeq = firstSeq;
        this.fileBytes = 0;
        this.ackedBytes = 0;
        await closeQuietly(old, this.options.logger);
        await fsyncDir(this.options.dir);
      } catch (err) {
        throw new JournalWriteError(`journal roll to ${file} failed (${messageOf(err)})`, { cause: err });
      }
      this.options.logger.info('journal rolled', { file, firstSeq });
      return file;
    });
  }

  /** Counters for status and metrics. */
  get stats(): JournalStats {
    return {
      file: this.file,
      fileBytes: this.fileBytes,
      bytesWritten: this.bytesWritten,
      lastSeq: this.nextSeq - 1,
      lastDurableSeq: this.syncedSeq,
      fsyncs: this.fsyncs,
      batches: this.batches,
    };
  }

  /** Writes and fsyncs what is queued, then closes the file; append() throws afterwards. */
  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.closing ??= this.exclusive(async () => {
      await this.flushHeld();
      try {
        // A writer broken earlier has already reported why; only a new failure is thrown here.
        if (this.broken === null) await this.syncForHandOver();
      } finally {
        await closeQuietly(this.handle, this.options.logger);
      }
      this.options.logger.info('journal closed', { file: this.file, lastSeq: this.ackedSeq });
    });
    await this.closing;
  }

  /** Starts a batch now if enough records wait and a lane is free, or schedules one for the end of the turn. */
  private pump(): void {
    if (this.queue.length === 0 || this.held || this.failing) return;
    if (this.options.groupCommitMs === 0 && this.queue.length >= Math.ceil(this.concurrency / MaxInflight)) {
      this.flushNow();
      return;
    }
    if (this.gathering) return;
    this.gathering = true;
    const wait = this.options.groupCommitMs > 0 ? delay(this.options.groupCommitMs) : nextTurn();
    void wait.then(() => {
      this.gathering = false;
      this.flushNow();
    });
  }

  /** Starts a write of everything queued, unless the file is held, failing, or both lanes are busy. */
  private flushNow(): void {
    if (this.queue.length === 0 || this.held || this.failing) return;
    if (this.broken !== null) {
      this.refuseQueued();
      return;
    }
    while (this.queue.length > 0 && this.inflight.length < MaxInflight) this.dispatch();
  }

  /** Inside an exclusive operation: write what is queued up to seq `upto` (all of it when absent) and wait until it is acknowledged (or refused). */
  private async flushHeld(upto = Infinity): Promise<void> {
    while (this.queue.length > 0 && this.queue[0]!.seq <= upto) {
      if (this.broken !== null) {
        this.refuseQueued();
        break;
      }
      this.dispatch(upto);
      await this.whenDrained();
    }
    await this.whenDrained();
  }

  /**
   * Takes the queue as one batch — all of it up to seq `upto`, or as many
   * records as fit in MaxBatchBytes (at least one) — and starts its write at the end of what is
   * already in flight. Recovery relies on the bound (record.ts).
   */
  private dispatch(upto = Infinity): void {
    let take = 0;
    for (let bytes = 0; take < this.queue.length && this.queue[take]!.seq <= upto && (take === 0 || bytes + this.queue[take]!.frame.length <= MaxBatchBytes); take++) {
      bytes += this.queue[take]!.frame.length;
    }
    const records = this.queue.splice(0, take);
    const data = records.length === 1 ? records[0]!.frame : Buffer.concat(records.map((p) => p.frame));
    const batch: Batch = { records, position: this.fileBytes, bytes: data.length, outcome: undefined };
    this.fileBytes += data.length;
    this.inflight.push(batch);
    this.writeAt(data, batch.position).then(
      () => {
        batch.outcome = null;
        this.completed(batch.records.length);
      },
      (err: unknown) => {
        batch.outcome = err instanceof Error ? err : new Error(String(err));
        this.completed(batch.records.length);
      },
    );
  }

  /**
   * A write finished. Acknowledges finished batches in file order; starts the
   * next batch before waking the acknowledged committers (so their work overlaps
   * its I/O); on a failure, waits for the other writes in flight and recovers.
   */
  private completed(size: number): void {
    const acknowledged: Pending[][] = [];
    while (this.inflight[0]?.outcome === null) {
      const batch = this.inflight.shift()!;
      const last = batch.records.at(-1)!;
      this.ackedSeq = last.seq;
      this.ackedBytes = batch.position + batch.bytes;
      this.bytesWritten += batch.bytes;
      this.batches++;
      if (this.options.sync === 'commit') {
        // O_DSYNC: the write returned only once durable, as a write plus fdatasync would.
        this.fsyncs++;
        this.syncedSeq = last.seq;
      }
      acknowledged.push(batch.records);
    }
    const waiting = this.queue.length + this.inflight.reduce((n, b) => n + b.records.length, 0);
    this.concurrency += (size + waiting - this.concurrency) / 8;
    if (this.inflight.some((b) => b.outcome instanceof Error)) this.failing = true;
    if (this.failing) {
      if (this.inflight.every((b) => b.outcome !== undefined)) void this.recover();
    } else {
      this.flushNow(); // these records waited through a whole write: no reason to wait longer
    }
    if (acknowledged.length > 0) {
      try {
        this.options.onAcknowledged?.(acknowledged.at(-1)!.at(-1)!.seq);
      } catch (err) {
        this.options.logger.error('journal onAcknowledged callback threw', { file: this.file, error: messageOf(err) });
      }
    }
    for (const records of acknowledged) for (const p of records) p.resolve();
    this.notifyDrained();
  }

  /** After a failed write, once nothing is in flight: refuse what was not acknowledged and cut the file back. Never rejects. */
  private async recover(): Promise<void> {
    const cause = this.inflight.find((b) => b.outcome instanceof Error)?.outcome ?? new Error('unknown write failure');
    const error = new JournalWriteError(`journal write to ${this.file} failed (${messageOf(cause)}); the commit was not acknowledged`, { cause });
    this.notifyFailure(this.ackedSeq, error);
    const rejected = this.inflight.splice(0).flatMap((b) => b.records).concat(this.queue.splice(0));
    for (const p of rejected) p.reject(error);
    this.nextSeq = this.ackedSeq + 1;
    this.options.logger.error('journal write failed; commits not acknowledged were rejected', {
      file: this.file,
      error: messageOf(cause),
      lastDurableSeq: this.ackedSeq,
      rejected: rejected.length,
    });
    try {
      await this.cutBack();
    } finally {
      this.failing = false;
      this.notifyDrained();
      this.pump();
    }
  }

  /** Refuses queued records because the writer is broken, onFailure first. */
  private refuseQueued(): void {
    const records = this.queue.splice(0);
    if (records.length === 0 || this.broken === null) return;
    const error = new JournalWriteError(this.broken.message, { cause: this.broken });
    this.notifyFailure(this.ackedSeq, error);
    for (const p of records) p.reject(error);
    this.nextSeq = this.ackedSeq + 1;
  }

  /** Resolves once no write is in flight and no failure is being handled. */
  private whenDrained(): Promise<void> {
    if (this.inflight.length === 0 && !this.failing) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private notifyDrained(): void {
    if (this.inflight.length > 0 || this.failing) return;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }

  /** Positional write of all of `data`, looping over short writes. */
  private async writeAt(data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      if (bytesWritten === 0) throw new Error('write made no progress');
      done += bytesWritten;
    }
  }

  /** Truncates the file to its acknowledged length so the next batch starts on a record boundary. */
  private async cutBack(): Promise<void> {
    const size = this.ackedBytes;
    try {
      await this.handle.truncate(size);
      await this.handle.datasync();
    } catch {
      // The handle itself may be what failed (closed, stale on NFS): try once through a fresh one.
      try {
        await closeQuietly(this.handle, this.options.logger);
        this.handle = await open(this.file, openFlags(this.options.sync, false));
        await this.handle.truncate(size);
        await this.handle.datasync();
      } catch (err) {
        this.broken = new JournalWriteError(
          `journal ${this.file} could not be cut back to its last acknowledged record (${messageOf(err)}); ` +
            `commits are refused until the daemon restarts and recovers the journal`,
          { cause: err },
        );
        this.options.logger.error('journal could not be cut back; refusing further commits', {
          file: this.file,
          bytes: size,
          error: messageOf(err),
        });
        return;
      }
    }
    this.fileBytes = size;
    this.options.logger.error('journal cut back to its last acknowledged record', {
      file: this.file,
      bytes: size,
      lastSeq: this.ackedSeq,
    });
  }

  /** Before a roll or close: make every acknowledged record durable (only `interval` mode has any that are not). */
  private async syncForHandOver(): Promise<void> {
    this.throwIfBroken();
    if (this.syncedSeq >= this.ackedSeq) return;
    await this.syncNow();
    this.throwIfBroken();
  }

  private throwIfBroken(): void {
    if (this.broken !== null) throw new JournalWriteError(this.broken.message, { cause: this.broken });
  }

  /** The `interval`-mode timer: fsync what was written since the last one. Never rejects. */
  private async syncTick(): Promise<void> {
    try {
      if (this.closing !== null || this.broken !== null || this.syncedSeq >= this.ackedSeq) return;
      await this.exclusive(async () => {
        if (this.closing === null && this.broken === null && this.syncedSeq < this.ackedSeq) await this.syncNow();
      });
    } catch (err) {
      this.options.logger.error('journal interval sync failed unexpectedly', { file: this.file, error: messageOf(err) });
    }
  }

  /** fdatasync of acknowledged but unsynced records; a failure breaks the writer. Caller holds the I/O lock. */
  private async syncNow(): Promise<void> {
    const seq = this.ackedSeq;
    try {
      await this.handle.datasync();
    } catch (cause) {
      // After a failed fsync the kernel may have dropped the dirty pages: what
      // is on disk is unknown, so stop rather than stack commits on top of it.
      this.broken = new JournalWriteError(
        `journal fdatasync of ${this.file} failed (${messageOf(cause)}); commits after seq ${this.syncedSeq} may not be durable, ` +
          `and commits are refused until the daemon restarts and recovers the journal`,
        { cause },
      );
      this.notifyFailure(this.syncedSeq, this.broken);
      for (const p of this.queue.splice(0)) p.reject(this.broken);
      this.nextSeq = this.ackedSeq + 1;
      this.options.logger.error('journal fdatasync failed; refusing further commits', {
        file: this.file,
        error: messageOf(cause),
        lastDurableSeq: this.syncedSeq,
      });
      return;
    }
    this.fsyncs++;
    this.syncedSeq = seq;
  }

  private notifyFailure(lastDurableSeq: number, error: JournalWriteError): void {
    try {
      this.options.onFailure?.(lastDurableSeq, error);
    } catch (err) {
      this.options.logger.error('journal onFailure callback threw', { file: this.file, error: messageOf(err) });
    }
  }

  /** Runs `work` after every earlier file operation has finished, with no batch write in flight or starting. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.ioTail.then(async () => {
      this.held = true;
      try {
        await this.whenDrained();
        return await work();
      } finally {
        this.held = false;
        this.pump();
      }
    });
    this.ioTail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 1) throw new RangeError(`journal epoch must be a positive integer, got ${epoch}`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Closes a handle that may already be dead; a failure is only worth a warning. */
async function closeQuietly(handle: FileHandle, logger: Logger): Promise<void> {
  try {
    await handle.close();
  } catch (err) {
    logger.warn('journal file close failed', { error: messageOf(err) });
  }
}

/**
 * Flags for a journal file handle. In `commit` mode the file is opened with
 * O_DSYNC so that each batch's single write is also its fdatasync.
 */
function openFlags(sync: 'commit' | 'interval', create: boolean): number {
  const base = constants.O_WRONLY | (create ? constants.O_CREAT | constants.O_EXCL : 0);
  return sync === 'commit' ? base | constants.O_DSYNC : base;
}
