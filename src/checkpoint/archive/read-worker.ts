/**
 * The read worker: the thread that reads a checkpoint's entries, inflates
 * them and checks their size, CRC-32 and SHA-256, handing the bytes to the
 * main thread as it goes (entry-reader.ts is the main thread's end). The main
 * thread then only parses: on two cores a restore reads, inflates and hashes
 * on one while it rebuilds the state on the other.
 *
 * The chunks go through a ring of `window` slots of `chunkBytes` in one
 * SharedArrayBuffer, allocated once: the worker fills a slot, the main thread
 * decodes from it and acknowledges it when it asks for the next chunk, and
 * the worker reuses it. Nothing is allocated per chunk on the main thread, so
 * a restore of a gigabyte does not add a gigabyte of buffers for V8 to count
 * as external memory (each 64 MB of which would start a full collection of
 * the whole heap). A stored entry is read straight into its slots. It stops
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
  /** `window` slots of `chunkBytes` each: the chunks sent and not yet acknowledged, at most. */
  ring: SharedArrayBuffer;
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
  | { type: 'chunk'; job: number; slot: number; length: number }
  | { type: 'end'; job: number; verdict: EntryVerdict }
  | { type: 'failed'; failure: ReadFailure };

/** `ack`: slots the main thread is done with. `stop`: read no more and end (the worker exits on its own: see EntryReader.close). */
export type ToReadWorker = { type: 'ack'; chunks: number } | { type: 'stop' };

/** The worker's body; its parameters are the modules it uses. */
export function readWorkerMain(threads: typeof WorkerThreads, crypto: typeof Crypto, zlib: typeof Zlib, fs: typeof Fs, stream: typeof Stream): void {
  const port = threads.parentPort;
  if (port === null) throw new Error('readWorkerMain runs only in a worker thread');
  const init = threads.workerData as ReadWorkerInit;
  const send = (message: FromReadWorker): void => port.postMessage(message);

  let credit = init.window;
  let waiting: (() => void) | null = null;
  let stopped = false;
  port.on('message', (message: ToReadWorker) => {
    if (message.type === 'stop') {
      // No terminate() from outside: interrupting this thread while it creates an inflater aborts the whole
      // process in Node 20 (zlib "close before init"). Stop at the next await and let the thread end.
      stopped = true;
      port.close();
    } else credit += message.chunks;
    const wake = waiting;
    waiting = null;
    wake?.();
  });

  /** Thrown out of the read loop when the main thread asks it to stop. */
  class Stopped extends Error {}
  const fd = init.fd;
  const slots = Array.from({ length: init.window }, (_, i) => Buffer.from(init.ring, i * init.chunkBytes, init.chunkBytes));
  let nextSlot = 0;
  /** The next free slot (waiting for one to be acknowledged if none is). */
  const slot = async (): Promise<number> => {
    while (credit <= 0 && !stopped) await new Promise<void>((resolve) => (waiting = resolve));
    if (stopped) throw new Stopped();
    credit--;
    const taken = nextSlot;
    nextSlot = (nextSlot + 1) % init.window;
    return taken;
  };
  /** Fill `target` from the file at `position`. */
  const readFully = (target: Buffer, position: number): void => {
    let filled = 0;
    while (filled < target.length) {
      const n = fs.readSync(fd, target, filled, target.length - filled, position + filled);
      if (n === 0) throw Object.assign(new Error(`the file ends at byte ${position + filled}, inside an entry's data`), { code: 'ETRUNCATED' });
      filled += n;
    }
  };
  /** The compressed bytes of a deflated job, in chunks of their own memory (the inflater holds on to them). */
  async function* raw(job: ReadJob): AsyncGenerator<Buffer> {
    const end = job.start + job.compressedSize;
    for (let position = job.start; position < end; ) {
      const chunk = Buffer.allocUnsafeSlow(Math.min(init.chunkBytes, end - position));
      readFully(chunk, position);
      position += chunk.length;
      yield chunk;
    }
  }
  /** The bytes of a stored job, read straight into slots: each yielded with its slot. */
  async function* stored(job: ReadJob): AsyncGenerator<[Buffer, number]> {
    const end = job.start + job.compressedSize;
    for (let position = job.start; position < end; ) {
      const taken = await slot();
      const view = (slots[taken] as Buffer).subarray(0, Math.min(init.chunkBytes, end - position));
      readFully(view, position);
      position += view.length;
      yield [view, taken];
    }
  }

  const run = async (): Promise<void> => {
    for (const [index, job] of init.jobs.entries()) {
      const hash = crypto.createHash('sha256');
      let crc = 0;
      let size = 0;
      /** Checks and hashes a chunk of the job; false (having reported it) when it takes the job past its listed size. */
      const take = (chunk: Buffer): boolean => {
        if (size + chunk.length > job.size) {
          send({ type: 'failed', failure: { job: index, message: `inflates to more than the ${job.size} bytes listed`, tooBig: true } });
          return false;
        }
        size += chunk.length;
        hash.update(chunk);
        crc = zlib.crc32(chunk, crc);
        return true;
      };
      let inflater: Zlib.InflateRaw | null = null;
      try {
        if (!job.deflate) {
          for await (const [view, taken] of stored(job)) {
            if (!take(view)) return;
            send({ type: 'chunk', job: index, slot: taken, length: view.length });
          }
        } else {
          // Output chunks of two slots: each is split below, a path that then runs for every inflated entry
          // (the stream's iterator may also join what it buffered into a chunk larger than a slot).
          inflater = zlib.createInflateRaw({ chunkSize: 2 * init.chunkBytes });
          const inflated: AsyncIterable<Buffer> = stream.pipeline(stream.Readable.from(raw(job)), inflater, () => undefined);
          for await (const chunk of inflated) {
            if (stopped) return;
            if (!take(chunk)) return;
            // A stream's async iterator hands out what it has buffered joined into one Buffer, which can be
            // larger than a slot when this side waited for one: split it.
            for (let from = 0; from < chunk.length; from += init.chunkBytes) {
              const piece = chunk.subarray(from, from + init.chunkBytes);
              const taken = await slot();
              piece.copy(slots[taken] as Buffer);
              send({ type: 'chunk', job: index, slot: taken, length: piece.length });
            }
          }
        }
      } catch (err) {
        if (err instanceof Stopped || stopped) return;
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
    if (!stopped) send({ type: 'failed', failure: { job: -1, message: err instanceof Error ? err.message : String(err) } });
  });
}
