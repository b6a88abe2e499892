/**
 * The main thread's end of the write worker (write-worker.ts): it appends
 * bytes and batches to the checkpoint file through the worker, keeps at most
 * `MaxInFlightBytes` of batches unacknowledged (memory stays flat however far
 * the encoder runs ahead), and turns every way the worker can fail (an error
 * it reports, an exception, its exit) and an abort into a rejection of the
 * next call, never a hang.
 *
 * One worker per checkpoint rather than a shared one: it starts in about
 * 30 ms, far less than any checkpoint worth a thread, a failure or an abort
 * simply stops it, and nothing outlives the write to keep the process from
 * exiting.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CheckpointdError } from '../../errors.js';
import { stopWorker } from './worker-stop.js';
import { deflateWorkerMain, lowerThreadPriority, writeWorkerMain } from './write-worker.js';
import type { FromWriteWorker, ToWriteWorker, WorkerErrorData, WriteWorkerInit } from './write-worker-protocol.js';

/** Bytes of batches sent to the worker and not yet acknowledged, at most. */
const MaxInFlightBytes = 32 * 1024 * 1024;
/** Bytes of source text gathered before hashing and writing them (or handing them to the deflater): a batch. */
const BatchBytes = 1024 * 1024;
/** Bytes gathered before one write to disk. */
const WriteBatchBytes = 1024 * 1024;
/** Bytes written between two fdatasyncs while a checkpoint is written (see write-worker.ts). */
const SyncEveryBytes = 8 * 1024 * 1024;
/**
 * How far the writes may run ahead of the disk (see WriteWorkerInit). With no
 * limit a `store` checkpoint of 256 MiB left most of itself dirty for the
 * final fsync, and a 3 KiB O_DSYNC write beside it waited up to 100–135 ms;
 * with this one, up to 12–15 ms, and the checkpoint took as long.
 */
const MaxUnsyncedBytes = 2 * SyncEveryBytes;
/**
 * Bytes read at a time when hashing the finished file (the next read under way
 * while one is hashed). Read straight from the disk at its full speed, the
 * read-back holds up the journal's writes: with 16 saturating writers around a
 * 1 GiB `store` checkpoint, p99 12.8–14.0 ms with 4 MiB reads, 6.8–6.9 ms
 * with 1 MiB, the checkpoint as long (bench/HISTORY.md, ninth session).
 */
const HashReadBytes = 1024 * 1024;
/**
 * Bytes a paced checkpoint (checkpoint.maxDiskRate) writes or reads at a time,
 * instead of WriteBatchBytes and HashReadBytes. Each journal fsync waits for
 * what was written since the one before: another process copying a file with
 * O_DIRECT beside 16 saturating writers kept their p99 within 2× of its
 * baseline at 25 MiB/s in 64 KiB writes, and not at 50 MiB/s in 1 MiB ones
 * (bench/HISTORY.md, tenth session).
 */
const PacedIoBytes = 64 * 1024;
/**
 * Deflate threads: one core fewer than the machine has (at least one, at most
 * four), so that a core stays for the main thread, the journal's writes on
 * libuv's pool and the garbage collector, which commits wait on. They also run
 * at nice 10 (see write-worker.ts), which was not enough on its own: on two
 * cores, with two deflate threads, commits at a steady 2,000 a second stalled
 * now and then for 80–240 ms during a deflate checkpoint (the event loop
 * never for more than 16 ms); with one, never for more than 20 ms. A deflate
 * checkpoint takes 25–45% longer on two cores for it.
 */
const DeflateParallel = Math.max(1, Math.min(4, availableParallelism() - 1));

/**
 * The worker's source. An eval worker rather than a file: the function is
 * type-checked with the rest and runs the same from dist/ and under tsx (whose
 * hooks a worker does not get). tsx (esbuild) may insert calls to `__name`.
 */
export const workerSource = `var __name = (f) => f;\n(${writeWorkerMain.toString()})(require('node:worker_threads'), require('node:crypto'), require('node:zlib'), require('node:fs'), require('node:os'), ${lowerThreadPriority.toString()});`;
/** The deflate threads' source, which the write worker starts. */
export const deflateSource = `var __name = (f) => f;\n(${deflateWorkerMain.toString()})(require('node:worker_threads'), require('node:zlib'), require('node:fs'), require('node:os'), ${lowerThreadPriority.toString()});`;

/** Where the worker put one entry's data, and what it found in it. */
export interface EntryReport {
  start: number;
  compressedSize: number;
  size: number;
  crc: number;
  sha256: string;
}

/** An error from the worker as the caller would have had it in this thread: `code`, `errno`, `syscall` kept. */
function errorOf(data: WorkerErrorData): Error {
  const err = data.name === 'CheckpointdError' ? new CheckpointdError(data.message) : new Error(data.message);
  if (data.name !== 'Error' && data.name !== 'CheckpointdError') err.name = data.name;
  if (data.code !== undefined) Object.assign(err, { code: data.code, errno: data.errno, syscall: data.syscall });
  if (data.stack !== undefined) err.stack = `${data.stack}\n    in the checkpoint write worker`;
  return err;
}

/** Appends to a checkpoint file through a write worker of its own. */
export class WorkerSink {
  /** The entries written so far, in order. */
  readonly entries: EntryReport[] = [];
  private readonly worker: Worker;
  private failure: Error | null = null;
  private finished: { size: number; sha256: string; direct: boolean } | null = null;
  private inFlight = 0;
  private acknowledged = 0;
  /** Batch buffers the worker has given back, to be filled again. */
  private readonly spare: ArrayBuffer[] = [];
  private allocated = 0;
  private waiters: { ready: () => boolean; resolve: () => void; reject: (err: Error) => void }[] = [];
  private closed: Promise<void> | null = null;
  private exited = false;
  private readonly onAbort = (): void => this.fail(this.signal?.reason instanceof Error ? this.signal.reason : new CheckpointdError('the checkpoint write was aborted'));

  /**
   * Start a worker writing to `fd` (which the caller keeps open until `close`
   * resolves); level 0 stores. `directFd`: the same file opened with O_DIRECT
   * (see WriteWorkerInit), kept open by the caller just as long.
   * `bytesPerSecond`: most bytes a second written and read back (0: no limit).
   */
  constructor(
    fd: number,
    level: number,
    private readonly signal?: AbortSignal,
    private readonly onProgress?: (bytes: number) => void,
    directFd: number | null = null,
    bytesPerSecond = 0,
  ) {
    const paced = bytesPerSecond > 0;
    const workerData: WriteWorkerInit = {
      fd,
      directFd,
      level,
      parallel: DeflateParallel,
      deflateSource,
      writeBytes: paced ? PacedIoBytes : WriteBatchBytes,
      batchBytes: BatchBytes,
      hashReadBytes: paced ? PacedIoBytes : HashReadBytes,
      syncEveryBytes: SyncEveryBytes,
      maxUnsyncedBytes: MaxUnsyncedBytes,
      bytesPerSecond,
    };
    // No execArgv: the worker needs none of the main thread's flags (nor tsx, which it could not use).
    this.worker = new Worker(workerSource, { eval: true, workerData, execArgv: [] });
    this.worker.on('message', (message: FromWriteWorker) => this.onMessage(message));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('messageerror', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (this.closed === null) this.fail(new CheckpointdError(`the checkpoint write worker stopped (exit code ${code}) before the checkpoint was written`));
    });
    if (signal?.aborted === true) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * An empty batch buffer of its own ArrayBuffer (to be moved by `batch`): one
   * the worker has given back, or a new one. With them, a checkpoint's
   * batches take as many buffers as are in flight, not one per megabyte.
   */
  batchBuffer(): Buffer {
    const spare = this.spare.pop();
    if (spare !== undefined) return Buffer.from(spare);
    this.allocated++;
    return Buffer.allocUnsafeSlow(BatchBytes);
  }

  /** Batch buffers `batchBuffer` has had to make so far. */
  get batchBuffersAllocated(): number {
    return this.allocated;
  }

  /** Append `data` (copied) as it is. */
  put(data: Buffer): void {
    this.post({ type: 'put', data });
  }

  /**
   * Append the next batch of the current entry's bytes; `last` ends the entry.
   * `data` must own its ArrayBuffer: it is moved to the worker, not copied, and
   * is empty here afterwards. Waits while too many bytes are in flight.
   */
  async batch(data: Buffer, last: boolean): Promise<void> {
    const bytes = data.length;
    await this.until(() => this.inFlight === 0 || this.inFlight + bytes <= MaxInFlightBytes);
    this.inFlight += bytes;
    this.post({ type: 'batch', data, last }, bytes === 0 ? [] : [data.buffer as ArrayBuffer]);
  }

  /** Write `data` at `at` (already appended) once everything is appended. */
  patch(at: number, data: Buffer): void {
    this.post({ type: 'patch', at, data });
  }

  /** Wait until the worker has reported `count` entries. */
  async entriesWritten(count: number): Promise<EntryReport[]> {
    await this.until(() => this.entries.length >= count);
    return this.entries;
  }

  /** Append nothing more: the worker writes, patches, fsyncs and hashes the file; its size and SHA-256. */
  async finish(): Promise<{ size: number; sha256: string; direct: boolean }> {
    this.post({ type: 'finish' });
    await this.until(() => this.finished !== null);
    return this.finished!;
  }

  /**
   * Stop the worker and wait until it has exited: then none of its writes is
   * still in flight on the file. It is asked to stop rather than terminated
   * (see worker-stop.ts), and terminated only if it has not ended in time.
   */
  async close(): Promise<void> {
    if (this.closed === null) {
      this.signal?.removeEventListener('abort', this.onAbort);
      this.closed = this.stop();
    }
    await this.closed;
  }

  private async stop(): Promise<void> {
    if (!this.exited) await stopWorker(this.worker);
  }

  private post(message: ToWriteWorker, transfer: ArrayBuffer[] = []): void {
    if (this.failure !== null) throw this.failure;
    this.worker.postMessage(message, transfer);
  }

  private onMessage(message: FromWriteWorker): void {
    if (message.type === 'ack') {
      this.inFlight -= message.bytes;
      this.acknowledged += message.bytes;
      for (const buffer of message.spare) if (buffer.byteLength === BatchBytes) this.spare.push(buffer);
      if (message.bytes > 0 && this.onProgress !== undefined) {
        try {
          this.onProgress(this.acknowledged);
        } catch (err) {
          this.fail(err instanceof Error ? err : new Error(String(err)));
        }
      }
    } else if (message.type === 'entry') {
      const { start, compressedSize, size, crc, sha256 } = message;
      this.entries.push({ start, compressedSize, size, crc, sha256 });
    } else if (message.type === 'finished') {
      this.finished = { size: message.size, sha256: message.sha256, direct: message.direct };
    } else {
      this.fail(errorOf(message.error));
    }
    this.wake();
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.ready()) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Resolves once `ready()` holds; rejects as soon as the worker fails or the signal aborts. */
  private until(ready: () => boolean): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ ready, resolve, reject }));
  }
}
