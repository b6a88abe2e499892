/**
 * The read worker: the thread that reads a checkpoint's entries, inflates
 * them and checks their size, CRC-32 and SHA-256, handing the bytes to the
 * main thread as it goes (entry-reader.ts is the main thread's end). The main
 * thread then only parses: on two cores a restore reads, inflates and hashes
 * on one while it rebuilds the state on the other.
 *
 * The worker reads ahead of the main thread by at most `window` chunks, each
 * acknowledged once taken; a chunk is never more than `chunkBytes`. It stops
 * inflating an entry the moment it passes the entry's listed size (a zip
 * bomb), and reports a failure once, after which it sends nothing more.
 *
 * This function runs as an eval worker's whole source, so it may use nothing
 * from outside itself but its parameters: no imports at run time, no
 * module-level helpers. Types are fine, they are erased.
 */
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as Stream from 'node:stream';
import type * as WorkerThreads from 'node:worker_threads';
import type * as Zlib from 'node:zlib';

/** One entry for the worker to read: where its data is, how it is stored, and how big it says it is. */
export interface ReadJob {
  /** Offset of the entry's data (after its local header). */
  start: number;
  compressedSize: number;
  /** Uncompressed size listed in the manifest: never more is inflated. */
  size: number;
  deflate: boolean;
}

/** What the worker is started with. */
export interface ReadWorkerInit {
  /** The archive, opened (and checked to be a regular file) by the main thread, which closes it after the worker. */
  fd: number;
  jobs: ReadJob[];
  /** Chunks sent and not yet acknowledged, at most. */
  window: number;
  chunkBytes: number;
}

/** What the worker found in one entry. */
export interface EntryVerdict {
  size: number;
  crc: number;
  sha256: string;
  /** Compressed bytes the inflater used (the stored size for a stored entry). */
  consumed: number;
}

/** A failure in the worker: a file system error keeps its `code`; `tooBig` and `zlib` name the two ways an entry's data is bad. */
export interface ReadFailure {
  job: number;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  /** The entry inflates to more than its listed size. */
  tooBig?: boolean;
  /** Its compressed data is damaged (zlib's `Z_…` code in `code`). */
  zlib?: boolean;
}

export type FromReadWorker =
  | { type: 'chunk'; job: number; data: ArrayBuffer }
  | { type: 'end'; job: number; verdict: EntryVerdict }
  | { type: 'failed'; failure: ReadFailure };

export type ToReadWorker = { type: 'ack'; chunks: number };

/** The worker's body; its parameters are the modules it uses. */
export function readWorkerMain(threads: typeof WorkerThreads, crypto: typeof Crypto, zlib: typeof Zlib, fs: typeof Fs, stream: typeof Stream): void {
  const port = threads.parentPort;
  if (port === null) throw new Error('readWorkerMain runs only in a worker thread');
  const init = threads.workerData as ReadWorkerInit;
  const send = (message: FromReadWorker, transfer?: ArrayBuffer[]): void => port.postMessage(message, transfer);

  let credit = init.window;
  let waiting: (() => void) | null = null;
  port.on('message', (message: ToReadWorker) => {
    if (message.type !== 'ack') return;
    credit += message.chunks;
    const wake = waiting;
    waiting = null;
    wake?.();
  });
  const spend = async (): Promise<void> => {
    while (credit <= 0) await new Promise<void>((resolve) => (waiting = resolve));
    credit--;
  };

  const fd = init.fd;
  /** The compressed bytes of a job, in chunks of their own (transferable) memory. */
  async function* raw(job: ReadJob): AsyncGenerator<Buffer> {
    const end = job.start + job.compressedSize;
    for (let position = job.start; position < end; ) {
      const chunk = Buffer.allocUnsafeSlow(Math.min(init.chunkBytes, end - position));
      let filled = 0;
      while (filled < chunk.length) {
        const n = fs.readSync(fd, chunk, filled, chunk.length - filled, position + filled);
        if (n === 0) throw Object.assign(new Error(`the file ends at byte ${position + filled}, inside an entry's data`), { code: 'ETRUNCATED' });
        filled += n;
      }
      position += chunk.length;
      yield chunk;
    }
  }

  const run = async (): Promise<void> => {
    for (const [index, job] of init.jobs.entries()) {
      const hash = crypto.createHash('sha256');
      let crc = 0;
      let size = 0;
      let inflater: Zlib.InflateRaw | null = null;
      let source: AsyncIterable<Buffer> = raw(job);
      if (job.deflate) {
        inflater = zlib.createInflateRaw({ chunkSize: init.chunkBytes });
        source = stream.pipeline(stream.Readable.from(source), inflater, () => undefined);
      }
      try {
        for await (const chunk of source) {
          if (size + chunk.length > job.size) {
            send({ type: 'failed', failure: { job: index, message: `inflates to more than the ${job.size} bytes listed`, tooBig: true } });
            return;
          }
          size += chunk.length;
          hash.update(chunk);
          crc = zlib.crc32(chunk, crc);
          // A stored chunk owns its memory; the inflater's share a buffer it goes on using, so they are copied.
          let own = chunk;
          if (inflater !== null || chunk.byteOffset !== 0 || chunk.byteLength !== chunk.buffer.byteLength) {
            own = Buffer.allocUnsafeSlow(chunk.length);
            chunk.copy(own);
          }
          await spend();
          send({ type: 'chunk', job: index, data: own.buffer as ArrayBuffer }, [own.buffer as ArrayBuffer]);
        }
      } catch (err) {
        const e = err as Error & { code?: unknown; errno?: unknown; syscall?: unknown };
        const failure: ReadFailure = { job: index, message: e.message };
        if (typeof e.code === 'string') failure.code = e.code;
        if (typeof e.errno === 'number') failure.errno = e.errno;
        if (typeof e.syscall === 'string') failure.syscall = e.syscall;
        if (failure.code?.startsWith('Z_') === true) failure.zlib = true;
        send({ type: 'failed', failure });
        return;
      } finally {
        inflater?.destroy();
      }
      const consumed = inflater === null ? job.compressedSize : inflater.bytesWritten;
      send({ type: 'end', job: index, verdict: { size, crc, sha256: hash.digest('hex'), consumed } });
    }
  };
  run().catch((err: unknown) => {
    send({ type: 'failed', failure: { job: -1, message: err instanceof Error ? err.message : String(err) } });
  });
}
