/**
 * The write worker: the thread that hashes, compresses and writes a checkpoint
 * while the main thread only encodes (protocol in write-worker-protocol.ts).
 *
 * Deflate is done the way pigz does it, so that batches compress at once on
 * deflate threads of their own: each batch is a raw deflate of its own, primed with the
 * last 32 KiB of the entry's bytes before it as its dictionary and ended with
 * a sync flush (byte-aligned, not final), the entry's last batch with
 * Z_FINISH. Their outputs, appended in order, are one valid deflate stream: a
 * back reference into the dictionary lands on the same bytes in the stream.
 * The deflate threads and this one run at a lower priority (nice 10) than
 * the main thread, which serves commits: a checkpoint gets the CPU the
 * commits leave, and commit latency stays where it was (libuv's pool, which
 * the journal's fsyncs use, is left alone).
 *
 * Given an O_DIRECT descriptor of the file (WriteWorkerInit.directFd), the
 * appends go from an aligned staging area straight to the disk, and the file
 * is read back for its SHA-256 the same way. Through the page cache, a
 * gigabyte cost this thread 1.5–3.7 s of system time (pages to take, fill and
 * flush), its fdatasyncs every 8 MiB held the encoder up, and a commit's fsync
 * waited behind the dirty pages; written directly, 0.1 s of system time, no
 * syncs until the last, and the main thread no longer waits (bench/HISTORY.md, eighth session).
 *
 * This function runs as an eval worker's whole source (see worker-sink.ts), so
 * it may use nothing from outside itself but its parameters: no imports at run
 * time, no module-level helpers. Types are fine, they are erased.
 */
import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as Os from 'node:os';
import type * as WorkerThreads from 'node:worker_threads';
import type * as Zlib from 'node:zlib';
import type { DeflateJob, DeflateResult, FromWriteWorker, ToWriteWorker, WorkerErrorData, WriteWorkerInit } from './write-worker-protocol.js';

/** The one piece of WebAssembly used here (the project's TypeScript libraries leave it out): page-aligned memory. */
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } };

/**
 * Lower the calling thread's priority to nice 10 (Linux: setpriority on the
 * thread's own id). Best effort: where it is not allowed, it stays as it is.
 */
export function lowerThreadPriority(fs: typeof Fs, os: typeof Os): void {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, 10);
  } catch {
    // Not Linux, or not allowed: the thread keeps the process's priority.
  }
}

/** A deflate thread's body: one batch at a time, synchronously (see the file's comment). */
export function deflateWorkerMain(threads: typeof WorkerThreads, zlib: typeof Zlib, fs: typeof Fs, os: typeof Os, lower: typeof lowerThreadPriority): void {
  const port = threads.parentPort;
  if (port === null) throw new Error('deflateWorkerMain runs only in a worker thread');
  lower(fs, os);
  port.on('message', (job: DeflateJob | { type: 'stop' }) => {
    if ('type' in job) {
      port.close();
      return;
    }
    try {
      const options: Zlib.ZlibOptions = {
        level: job.level,
        finishFlush: job.last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
        // One output chunk for a whole batch (it may grow a little when it does not compress).
        chunkSize: Math.max(64 * 1024, job.input.byteLength + (job.input.byteLength >>> 6) + 1024),
      };
      if (job.dictionary.byteLength > 0) options.dictionary = job.dictionary;
      let output = zlib.deflateRawSync(job.input, options);
      if (output.byteOffset !== 0 || output.byteLength !== output.buffer.byteLength) {
        // Moved below, so it must own its memory (not a slice of a larger buffer, nor of Node's pool).
        const own = Buffer.allocUnsafeSlow(output.length);
        output.copy(own);
        output = own;
      }
      // The input goes back too, to be filled again (see write-worker-protocol.ts, 'ack').
      port.postMessage({ id: job.id, output, input: job.input } satisfies DeflateResult, [output.buffer, job.input.buffer as ArrayBuffer]);
    } catch (err) {
      const e = err as Error & { code?: unknown };
      port.postMessage({ id: job.id, error: { name: e.name, message: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) } } satisfies DeflateResult);
    }
  });
}

/** The worker's body; its parameters are the modules it uses. */
export function writeWorkerMain(
  threads: typeof WorkerThreads,
  crypto: typeof Crypto,
  zlib: typeof Zlib,
  fs: typeof Fs,
  os: typeof Os,
  lower: typeof lowerThreadPriority,
): void {
  const port = threads.parentPort;
  if (port === null) throw new Error('writeWorkerMain runs only in a worker thread');
  const init = threads.workerData as WriteWorkerInit;
  lower(fs, os);
  /** Deflate's window: a batch's dictionary is this much of the bytes before it. */
  const WindowBytes = 32 * 1024;

  const send = (message: FromWriteWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
  let failed = false;
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    const e: Error & { code?: unknown; errno?: unknown; syscall?: unknown } = err instanceof Error ? err : new Error(String(err));
    const data: WorkerErrorData = { name: e.name, message: e.message };
    if (e.stack !== undefined) data.stack = e.stack;
    if (typeof e.code === 'string') data.code = e.code;
    if (typeof e.errno === 'number') data.errno = e.errno;
    if (typeof e.syscall === 'string') data.syscall = e.syscall;
    send({ type: 'failed', error: data });
  };

  // The file: appends gathered into large positional writes. Writes and reads are synchronous:
  // this thread is the checkpoint's own, and libuv's pool (four threads for the whole process)
  // stays free for the deflates and for the journal's writes and fsyncs, which commits wait on.
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let flushedTo = 0;
  let syncedTo = 0;
  /** The fdatasync in flight, if any (see flush). */
  let syncing: Promise<void> | null = null;
  const patches: { at: number; data: Buffer }[] = [];
  /** Batch buffers done with, to go back with the next ack. */
  let spare: ArrayBuffer[] = [];
  const giveBack = (buffer: ArrayBufferLike): void => {
    if (buffer.byteLength === init.batchBytes && buffer instanceof ArrayBuffer) spare.push(buffer);
  };

  // Pacing (WriteWorkerInit.bytesPerSecond): each write or read of n bytes starts no sooner than n / rate after
  // the one before it started (by the clock, not by its schedule: one that started late does not let the next
  // catch up), so that the disk sees an even trickle, never a burst. Journal fsyncs flush the disk's whole
  // write cache (a virtual disk without FUA), so every byte written beside them is waited for by some commit
  // (bench/HISTORY.md, tenth session).
  let nextTurn = 0;
  /** Milliseconds until the next move's turn (0: now, or unpaced). */
  const untilTurn = (): number => (init.bytesPerSecond <= 0 ? 0 : nextTurn - performance.now());
  /** Take the turn for a move of `bytes` starting now. */
  const takeTurn = (bytes: number): void => {
    if (init.bytesPerSecond > 0) nextTurn = performance.now() + (bytes * 1000) / init.bytesPerSecond;
  };
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  /** Wait for the turn of `bytes`, then take it (this thread does nothing else meanwhile: the main thread feels it as backpressure). */
  const waitTurn = (bytes: number): void => {
    for (let ms = untilTurn(); ms > 0; ms = untilTurn()) Atomics.wait(sleeper, 0, 0, ms);
    takeTurn(bytes);
  };
  /** Call `go` at the turn of `bytes`, taking it, without holding the thread up (a read while the last one is hashed). */
  const atTurn = (bytes: number, go: () => void): void => {
    const ms = untilTurn();
    if (ms > 0) {
      setTimeout(() => atTurn(bytes, go), Math.ceil(ms));
      return;
    }
    takeTurn(bytes);
    go();
  };

  const writeAll = (data: Buffer, position: number): void => {
    for (let done = 0; done < data.length; ) {
      const length = init.bytesPerSecond > 0 ? Math.min(init.writeBytes, data.length - done) : data.length - done;
      waitTurn(length);
      done += fs.writeSync(init.fd, data, done, length, position + done);
    }
  };

  // Direct writes (O_DIRECT, see WriteWorkerInit.directFd): bytes are copied into an aligned staging area and
  // written from it straight to the disk, whole blocks at a time; the last block is padded at the end and the
  // file cut to its size. A file system that takes the descriptor but not the writes (EINVAL) gets them
  // through the page cache instead, from where the direct writes stopped.
  const Align = 4096;
  let direct: { fd: number; stage: Buffer; staged: number; at: number } | null = null;
  if (init.directFd !== null) {
    // WebAssembly memory is page-aligned (a Buffer's is not): the address O_DIRECT needs, without native code.
    const stageBytes = init.writeBytes + Align;
    const memory = new WebAssembly.Memory({ initial: Math.ceil(stageBytes / 65536) });
    direct = { fd: init.directFd, stage: Buffer.from(memory.buffer, 0, stageBytes), staged: 0, at: 0 };
  }
  /** Write the staging area's first `length` bytes (a multiple of Align) at its place; false if the file system refuses direct writes. */
  const writeDirect = (d: NonNullable<typeof direct>, length: number): boolean => {
    waitTurn(length);
    try {
      for (let done = 0; done < length; ) done += fs.writeSync(d.fd, d.stage, done, length - done, d.at + done);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL' && d.at === 0) return false;
      throw err;
    }
    return true;
  };
  /** Stage `data` and write the whole blocks staged; `end` pads and writes the last one too. */
  const stage = (d: NonNullable<typeof direct>, data: Buffer, end: boolean): void => {
    for (let done = 0; done < data.length || (end && d.staged > 0); ) {
      const n = Math.min(data.length - done, d.stage.length - d.staged);
      data.copy(d.stage, d.staged, done, done + n);
      d.staged += n;
      done += n;
      if (d.staged < init.writeBytes && !(end && done === data.length)) continue;
      const length = end && done === data.length ? Math.ceil(d.staged / Align) * Align : d.staged - (d.staged % Align);
      // The last block's padding (cut off at the end).
      if (length > d.staged) d.stage.fill(0, d.staged, length);
      if (!writeDirect(d, length)) {
        // Refused: what is staged and what is left of `data` go through the page cache from here on.
        direct = null;
        writeAll(d.stage.subarray(0, d.staged), d.at);
        writeAll(data.subarray(done), d.at + d.staged);
        return;
      }
      const kept = Math.max(0, d.staged - length);
      d.stage.copyWithin(0, length, length + kept);
      d.at += length;
      d.staged = kept;
    }
  };

  const flush = (): void => {
    if (pendingBytes === 0) return;
    const pieces = pending;
    pending = [];
    const bytes = pendingBytes;
    pendingBytes = 0;
    if (direct !== null) {
      // No fdatasyncs as it goes: nothing is left dirty in the page cache for a commit's fsync to wait on.
      for (const piece of pieces) {
        if (direct !== null) stage(direct, piece, false);
        else writeAll(piece, flushedTo);
        flushedTo += piece.length;
      }
      for (const piece of pieces) giveBack(piece.buffer);
      return;
    }
    const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, bytes);
    writeAll(data, flushedTo);
    flushedTo += data.length;
    for (const piece of pieces) giveBack(piece.buffer);
    // Flush the data to the disk as it goes rather than all at the end: with ext4's ordered mode a commit's
    // fsync of the journal waits for every dirty block of this file, so a gigabyte left dirty until the final
    // fsync stalls every commit made meanwhile. Here a commit waits for about SyncEveryBytes. One sync at a
    // time, on libuv's pool, while this thread goes on writing: waiting for each (8 MiB to a virtual disk
    // took about 25 ms) held the encoder up for a third of a stored checkpoint's time. But never more than
    // maxUnsyncedBytes ahead of the last finished sync (see drain).
    if (init.syncEveryBytes > 0 && flushedTo - syncedTo >= init.syncEveryBytes && syncing === null) {
      const to = flushedTo;
      syncing = new Promise<void>((resolve) => {
        fs.fdatasync(init.fd, (err) => {
          syncing = null;
          if (err === null) syncedTo = to;
          else fail(err);
          resolve();
        });
      });
    }
  };

  const append = (data: Buffer): void => {
    if (data.length === 0) return;
    offset += data.length;
    pending.push(data);
    pendingBytes += data.length;
    if (pendingBytes >= init.writeBytes) flush();
  };

  /** The SHA-256 of the file as it reads back: from the disk when written directly, else from the page cache, mostly. */
  const hashFile = async (): Promise<string> => {
    const hash = crypto.createHash('sha256');
    const endsEarly = (position: number): Error => {
      const err = new Error(`the checkpoint being written ends at byte ${position}, before the ${offset} bytes written to it`);
      err.name = 'CheckpointdError';
      return err;
    };
    if (init.directFd !== null) {
      // Read straight from the disk too, the next read under way while this one is hashed: read through the
      // page cache, a gigabyte just written around it took three times as long (pages newly taken).
      const memory = new WebAssembly.Memory({ initial: Math.ceil((2 * init.hashReadBytes) / 65536) });
      const buffers = [Buffer.from(memory.buffer, 0, init.hashReadBytes), Buffer.from(memory.buffer, init.hashReadBytes, init.hashReadBytes)];
      let directReads = true;
      const read = (buffer: Buffer, position: number): Promise<number> =>
        new Promise((resolve, reject) => {
          // O_DIRECT reads whole blocks from a block's start; past the end of the file it reads what there is.
          const aligned = directReads && position % Align === 0;
          const length = aligned ? buffer.length : Math.min(buffer.length, offset - position);
          const go = (): void =>
            fs.read(aligned ? init.directFd! : init.fd, buffer, 0, length, position, (err, bytesRead) => {
              if (err === null) resolve(bytesRead);
              else if (aligned && err.code === 'EINVAL' && position === 0) {
                directReads = false;
                resolve(read(buffer, position));
              } else reject(err);
            });
          atTurn(Math.min(length, offset - position), go);
        });
      let next = offset > 0 ? read(buffers[0]!, 0) : null;
      for (let position = 0, i = 0; position < offset; i ^= 1) {
        const bytesRead = Math.min(await next!, offset - position);
        if (bytesRead === 0) throw endsEarly(position);
        if (position + bytesRead < offset) next = read(buffers[i ^ 1]!, position + bytesRead);
        hash.update(buffers[i]!.subarray(0, bytesRead));
        position += bytesRead;
      }
      return hash.digest('hex');
    }
    const buffer = Buffer.allocUnsafe(Math.min(init.hashReadBytes, Math.max(1, offset)));
    for (let position = 0; position < offset; ) {
      waitTurn(Math.min(buffer.length, offset - position));
      const bytesRead = fs.readSync(init.fd, buffer, 0, Math.min(buffer.length, offset - position), position);
      if (bytesRead === 0) throw endsEarly(position);
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return hash.digest('hex');
  };

  /** Write what is pending and the patches; fsync (on the pool) while the file is hashed here. */
  const finish = async (): Promise<void> => {
    flush();
    if (direct !== null) stage(direct, Buffer.alloc(0), true);
    // Cut the padding of the last direct block.
    if (init.directFd !== null) fs.ftruncateSync(init.fd, offset);
    if (syncing !== null) await syncing;
    if (failed) return;
    for (const { at, data } of patches) {
      if (at + data.length > offset) throw new Error(`patch of ${data.length} bytes at ${at} runs past the ${offset} bytes written`);
      writeAll(data, at);
    }
    const synced = new Promise<void>((resolve, reject) => fs.fsync(init.fd, (err) => (err === null ? resolve() : reject(err))));
    let sha256: string;
    try {
      sha256 = await hashFile();
    } finally {
      // Waited for even when hashing failed, so no fsync is left in flight.
      await synced.catch(() => undefined);
    }
    await synced;
    send({ type: 'finished', size: offset, sha256, direct: direct !== null });
  };

  // Deflate: each batch goes to the deflate thread with the fewest batches in hand; results come back by id.
  const deflaters = init.level === 0 ? [] : Array.from({ length: init.parallel }, () => {
    const worker = new threads.Worker(init.deflateSource, { eval: true, execArgv: [] });
    worker.on('message', (result: DeflateResult) => {
      const job = jobs.get(result.id);
      if (job === undefined) return;
      jobs.delete(result.id);
      busy.set(worker, (busy.get(worker) ?? 1) - 1);
      if (result.error === undefined) {
        giveBack(result.input.buffer);
        job.resolve(Buffer.from(result.output.buffer, result.output.byteOffset, result.output.byteLength));
      }
      else job.reject(Object.assign(new Error(result.error.message), result.error));
    });
    worker.on('error', fail);
    return worker;
  });
  const busy = new Map<WorkerThreads.Worker, number>(deflaters.map((w) => [w, 0]));
  const jobs = new Map<number, { resolve: (output: Buffer) => void; reject: (err: Error) => void }>();
  let nextJob = 0;
  const deflate = (input: Buffer, dictionary: Buffer, last: boolean): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const id = nextJob++;
      jobs.set(id, { resolve, reject });
      let worker = deflaters[0] as WorkerThreads.Worker;
      for (const w of deflaters) if ((busy.get(w) ?? 0) < (busy.get(worker) ?? 0)) worker = w;
      busy.set(worker, (busy.get(worker) ?? 0) + 1);
      // The input is handed over, the view with its whole ArrayBuffer (it has been hashed, and the buffer came
      // from the main thread for this batch alone); the dictionary is a copy of its own.
      worker.postMessage({ id, input, dictionary, last, level: init.level } satisfies DeflateJob, [input.buffer as ArrayBuffer]);
    });
  /** Stop the deflate threads (asked, not terminated: see read-worker.ts) and wait until they have ended. */
  const stopDeflaters = async (): Promise<void> => {
    await Promise.all(
      deflaters.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.postMessage({ type: 'stop' });
          }),
      ),
    );
  };

  // The queue of what to append, in message order; a deflated batch holds it up until its output is ready.
  interface EntryEnd {
    size: number;
    crc: number;
    sha256: string;
  }
  type Slot = { kind: 'put'; data: Buffer } | { kind: 'batch'; output: Promise<Buffer>; bytes: number; first: boolean; end: EntryEnd | null } | { kind: 'finish' };
  const slots: Slot[] = [];
  let entryStart = 0;
  let draining = false;

  const drain = async (): Promise<void> => {
    if (draining) return;
    draining = true;
    try {
      while (slots.length > 0 && !failed) {
        const slot = slots[0]!;
        if (slot.kind === 'put') {
          append(slot.data);
        } else if (slot.kind === 'batch') {
          const output = await slot.output;
          if (slot.first) entryStart = offset;
          append(output);
          // Go no further ahead of the disk than maxUnsyncedBytes: the encoder feels it through the acks below.
          while (syncing !== null && init.maxUnsyncedBytes > 0 && flushedTo - syncedTo >= init.maxUnsyncedBytes) await syncing;
          const buffers = spare;
          spare = [];
          send({ type: 'ack', bytes: slot.bytes, spare: buffers }, buffers);
          if (slot.end !== null) send({ type: 'entry', start: entryStart, compressedSize: offset - entryStart, ...slot.end });
        } else {
          await finish();
        }
        slots.shift();
      }
    } catch (err) {
      fail(err);
    } finally {
      draining = false;
    }
  };

  // The current entry, as its batches arrive.
  let hash: Crypto.Hash | null = null;
  let crc = 0;
  let size = 0;
  let window = Buffer.alloc(0);

  const onBatch = (data: Buffer, last: boolean): void => {
    // Taken now: a batch that owns its ArrayBuffer is moved to a deflate thread, and is empty here afterwards.
    const bytes = data.length;
    const first = hash === null;
    const entryHash = hash ?? crypto.createHash('sha256');
    hash = entryHash;
    entryHash.update(data);
    crc = zlib.crc32(data, crc);
    size += data.length;
    let output: Promise<Buffer>;
    if (init.level === 0) {
      output = Promise.resolve(data);
    } else {
      // The next batch's dictionary, taken before `data` is handed to a deflate thread.
      const dictionary = window;
      window = last ? Buffer.alloc(0) : data.length >= WindowBytes ? Buffer.from(data.subarray(data.length - WindowBytes)) : Buffer.from(Buffer.concat([window, data]).subarray(-WindowBytes));
      output = deflate(data, dictionary, last);
      // Failures are reported here at once, and again (ignored) when the queue reaches it.
      output.catch(fail);
    }
    const end = last ? { size, crc, sha256: entryHash.digest('hex') } : null;
    slots.push({ kind: 'batch', output, bytes, first, end });
    if (last) {
      hash = null;
      crc = 0;
      size = 0;
    }
  };

  port.on('message', (message: ToWriteWorker) => {
    if (message.type === 'stop') {
      // No terminate() from outside: interrupting a thread while it makes a deflater aborts the whole process
      // in Node 20 (zlib "close before init"). Write nothing more, stop the deflate threads, and with the port
      // closed this thread then ends.
      failed = true;
      void stopDeflaters().then(() => port.close());
      return;
    }
    if (failed) return;
    try {
      const bytes = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
      if (message.type === 'put') slots.push({ kind: 'put', data: bytes(message.data) });
      else if (message.type === 'batch') onBatch(bytes(message.data), message.last);
      else if (message.type === 'patch') patches.push({ at: message.at, data: bytes(message.data) });
      else slots.push({ kind: 'finish' });
      void drain();
    } catch (err) {
      fail(err);
    }
  });
}
