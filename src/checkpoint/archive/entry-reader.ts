/**
 * The main thread's end of the read worker (read-worker.ts): the entries of
 * one archive, in order, each as its chunks followed by the worker's verdict.
 * Every way the worker can fail (a failure it reports, an exception, its
 * exit) and an abort becomes a rejection of the next call, never a hang.
 *
 * One worker per archive read: it starts in about 30 ms, a failure or an
 * abort simply terminates it, and nothing outlives the read to keep the
 * process from exiting.
 */
import { Worker } from 'node:worker_threads';
import { CheckpointdError } from '../../errors.js';
import { stopWorker } from './worker-stop.js';
import { readWorkerMain, type EntryVerdict, type FromReadWorker, type ReadFailure, type ReadJob, type ReadWorkerInit, type ToReadWorker } from './read-worker.js';

/** Chunks the worker may read ahead of the main thread (slots of the ring): with ChunkBytes, the memory a read holds. */
const WindowChunks = 8;
/**
 * Bytes of one chunk, read from the file or inflated. Under 1 MB so that a
 * chunk decoded to a string stays on V8's heap: Node makes a longer one an
 * external string, and every 64 MB of those starts a full collection.
 */
const ChunkBytes = 512 * 1024;

/** The worker's source: an eval worker, so that it runs the same from dist/ and under tsx; tsx (esbuild) may insert calls to `__name`. */
const workerSource = `var __name = (f) => f;\n(${readWorkerMain.toString()})(require('node:worker_threads'), require('node:crypto'), require('node:zlib'), require('node:fs'), require('node:stream'));`;

/** A failure of the worker, with what the archive reader needs to word it. */
export class ReadWorkerError extends CheckpointdError {
  constructor(readonly failure: ReadFailure) {
    super(failure.message);
    if (failure.code !== undefined) Object.assign(this, { code: failure.code, errno: failure.errno, syscall: failure.syscall });
  }
}

/**
 * Reads the entries `jobs` of the archive open as `fd` on a worker thread;
 * take them in order with `entry`, then `close` (before closing `fd`). With
 * `transient`, a chunk handed out is a view of a slot of the ring, valid only
 * until the next one is asked for (the slot is then reused); else a copy.
 */
export class EntryReader {
  private readonly worker: Worker;
  private readonly slots: Buffer[];
  /** Chunks handed out and not yet acknowledged to the worker. */
  private held = 0;
  private readonly queue: FromReadWorker[] = [];
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private next = 0;
  private gone = false;

  constructor(
    fd: number,
    jobs: ReadJob[],
    private readonly transient: boolean,
    private readonly signal?: AbortSignal,
  ) {
    const ring = new SharedArrayBuffer(WindowChunks * ChunkBytes);
    this.slots = Array.from({ length: WindowChunks }, (_, i) => Buffer.from(ring, i * ChunkBytes, ChunkBytes));
    const workerData: ReadWorkerInit = { fd, jobs, ring, window: WindowChunks, chunkBytes: ChunkBytes };
    // No execArgv: the worker needs none of the main thread's flags (nor tsx, which it could not use).
    this.worker = new Worker(workerSource, { eval: true, workerData, execArgv: [] });
    this.worker.on('message', (message: FromReadWorker) => {
      if (message.type === 'failed') this.fail(new ReadWorkerError(message.failure));
      else this.queue.push(message);
      this.wake();
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      this.gone = true;
      this.fail(new CheckpointdError(`the checkpoint read worker ended (exit code ${code})`));
      this.wake();
    });
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = (): void => {
    this.fail(this.signal?.reason instanceof Error ? this.signal.reason : new CheckpointdError('the checkpoint read was aborted'));
    this.wake();
  };

  /**
   * The chunks of the next entry (job `job`, which must be the next one), then
   * the worker's verdict on it as the generator's return value. A failure of
   * this entry or the worker is thrown.
   */
  async *entry(job: number): AsyncGenerator<Buffer, EntryVerdict, undefined> {
    if (job !== this.next) throw new Error(`EntryReader: entry ${job} asked for, entry ${this.next} is next`);
    this.next++;
    for (;;) {
      // Slots go back two at a time while chunks are waiting here (one message per chunk cost a few
      // percent of a restore); all of them before waiting for the worker, which may be out of slots.
      if (this.held >= 2 || this.queue.length === 0) this.release();
      const message = await this.take();
      if (message.type === 'failed') throw new Error('unreachable: failures are not queued');
      if (message.job !== job) throw new CheckpointdError(`the checkpoint read worker sent entry ${message.job} while entry ${job} was being read`);
      if (message.type === 'end') return message.verdict;
      if (message.length > ChunkBytes) throw new CheckpointdError(`the checkpoint read worker sent a chunk of ${message.length} bytes, more than a slot holds`);
      const view = (this.slots[message.slot] as Buffer).subarray(0, message.length);
      if (this.transient) {
        this.held++;
        yield view;
      } else {
        const copy = Buffer.from(view);
        this.held++;
        this.release();
        yield copy;
      }
    }
  }

  /**
   * Stop the worker and wait until it has exited (then it reads nothing more
   * from the descriptor); the reader cannot be used afterwards. The worker is
   * asked to stop rather than terminated (see read-worker.ts), and terminated
   * only if it has not ended in time (see worker-stop.ts).
   */
  async close(): Promise<void> {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.failure ??= new CheckpointdError('the checkpoint read worker was closed');
    if (this.gone) return;
    await stopWorker(this.worker);
  }

  /** Give the worker back the slots of the chunks handed out: asked for the next chunk, the consumer is done with them. */
  private release(): void {
    if (this.held === 0) return;
    this.worker.postMessage({ type: 'ack', chunks: this.held } satisfies ToReadWorker);
    this.held = 0;
  }

  private async take(): Promise<FromReadWorker> {
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) return message;
      if (this.failure !== null) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
