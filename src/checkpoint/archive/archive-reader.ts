/**
 * Reads a checkpoint: the manifest alone, or every entry streamed to a
 * consumer while its size, CRC-32 and SHA-256 are checked against the
 * manifest. Nothing is trusted before it is checked (see manifest.ts).
 */
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { CheckpointdError } from '../../errors.js';
import { CheckpointFormatError } from './checkpoint-format-error.js';
import { ManifestEntry } from './entry-names.js';
import { ManifestMaxBytes, checkManifest, manifestFiles, type FileEntry, type Manifest } from './manifest.js';
import { EntryReader, ReadWorkerError } from './entry-reader.js';
import type { EntryVerdict, ReadJob } from './read-worker.js';
import { Damaged, openDirectory, readAt, type Directory } from './zip-directory.js';
import {
  LocalFields,
  Method,
  descriptorLength,
  dosTimeOf,
  encodeDescriptor,
  encodeLocalHeader,
  fieldAt,
  firstDifference,
  localHeaderLength,
  type EntryRecord,
} from './zip-records.js';

/** Receives each entry's bytes in archive order; must consume `data` (or the reader drains it). */
export interface EntryConsumer {
  file(entry: FileEntry, data: AsyncIterable<Buffer>): Promise<void>;
  /**
   * The consumer is done with each chunk by the time it asks for the next (it
   * decodes or writes it at once, and keeps no reference): chunks are then
   * views of reused memory rather than copies.
   */
  transient?: boolean;
}

/** Options of {@link readCheckpointArchive}. */
export interface ReadOptions {
  /** Entries to read; the others are checked in their headers but not read or hashed. */
  only?: (path: string) => boolean;
  /** Called as bytes are read: uncompressed bytes done, out of the total of the entries read. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Bytes read from the file at a time. */
const ReadChunkBytes = 1024 * 1024;
/** Output chunk size of the inflater. */
const InflateChunkBytes = 256 * 1024;

const short = (hex: string) => `${hex.slice(0, 8)}…`;

/** The compressed bytes of an entry, one read ahead of the consumer. */
async function* rawChunks(dir: Directory, record: EntryRecord, start: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const end = start + record.compressedSize;
  let position = start;
  const next = () => {
    const length = Math.min(ReadChunkBytes, end - position);
    const read = readAt(dir.file, dir.handle, position, length, record.name);
    // A read ahead that fails while the consumer is busy, or is abandoned, must not be an
    // unhandled rejection; awaiting `read` still throws.
    read.catch(() => undefined);
    position += length;
    return read;
  };
  let ahead = position < end ? next() : null;
  while (ahead !== null) {
    const chunk = await ahead;
    ahead = position < end ? next() : null;
    signal?.throwIfAborted();
    yield chunk;
  }
}

/**
 * The uncompressed bytes of an entry read in this thread (the manifest, which
 * comes before anything is known of the rest: the other entries go through
 * the read worker, see workerEntry), checked: its local header, never more
 * than `size` bytes (inflating stops the moment one byte too many comes out),
 * then exactly `size` bytes, all compressed input used, CRC-32 and data
 * descriptor. A failure is thrown before the bad chunk is yielded or, for the
 * checksum, after the last one.
 */
async function* checkedEntry(dir: Directory, record: EntryRecord, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const refuse = (problem: string) => new CheckpointFormatError(dir.file, record.name, problem);
  await checkLocalHeader(dir, record);
  const start = record.offset + localHeaderLength(record);

  let crc = 0;
  let size = 0;
  let inflater: zlib.InflateRaw | null = null;
  let source: AsyncIterable<Buffer> = rawChunks(dir, record, start, signal);
  if (record.method === Method.deflate) {
    inflater = zlib.createInflateRaw({ chunkSize: InflateChunkBytes });
    source = pipeline(Readable.from(source), inflater, () => undefined);
  }
  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      if (size + chunk.length > record.size) {
        throw refuse(`inflates to more than the ${record.size} bytes the manifest lists (a zip bomb, or damage); refused`);
      }
      size += chunk.length;
      crc = zlib.crc32(chunk, crc);
      yield chunk;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) throw refuse(`its compressed data is damaged (${(err as Error).message}); ${Damaged}`);
    throw err;
  } finally {
    inflater?.destroy();
  }
  const consumed = inflater === null ? record.compressedSize : inflater.bytesWritten;
  checkVerdict(dir, record, null, { size, crc, consumed, sha256: '' });
  await checkDescriptor(dir, record);
}

/** Refuse an entry whose data, as read, is not what the manifest and the ZIP say: size, compressed length, SHA-256 (when given), CRC-32. */
function checkVerdict(dir: Directory, record: EntryRecord, sha256: string | null, verdict: EntryVerdict): void {
  const refuse = (problem: string) => new CheckpointFormatError(dir.file, record.name, problem);
  if (verdict.size !== record.size) throw refuse(`holds ${verdict.size} bytes, the manifest lists ${record.size}; ${Damaged}`);
  if (verdict.consumed !== record.compressedSize) {
    throw refuse(`its compressed data ends ${record.compressedSize - verdict.consumed} bytes before its stored length; ${Damaged}`);
  }
  if (sha256 !== null && verdict.sha256 !== sha256) throw refuse(`SHA-256 mismatch (manifest ${short(sha256)}, file ${short(verdict.sha256)}); ${Damaged}`);
  if (verdict.crc !== record.crc) throw refuse(`CRC-32 mismatch (ZIP ${record.crc.toString(16).padStart(8, '0')}, data ${verdict.crc.toString(16).padStart(8, '0')}); ${Damaged}`);
}

/**
 * An entry read and checked on the read worker (see entry-reader.ts): its
 * local header here, its bytes as the worker hands them over, then the
 * worker's verdict and the data descriptor, as checkedEntry does in this thread.
 */
async function* workerEntry(
  dir: Directory,
  record: EntryRecord,
  sha256: string,
  chunks: AsyncGenerator<Buffer, EntryVerdict, undefined>,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const refuse = (problem: string) => new CheckpointFormatError(dir.file, record.name, problem);
  await checkLocalHeader(dir, record);
  let verdict: EntryVerdict;
  let handedOut = 0;
  let handedCrc = 0;
  try {
    for (;;) {
      const next = await chunks.next();
      if (next.done === true) {
        verdict = next.value;
        break;
      }
      signal?.throwIfAborted();
      handedOut += next.value.length;
      handedCrc = zlib.crc32(next.value, handedCrc);
      onBytes(next.value.length);
      yield next.value;
    }
  } catch (err) {
    if (err instanceof ReadWorkerError) {
      const { failure } = err;
      if (failure.tooBig === true) throw refuse(`inflates to more than the ${record.size} bytes the manifest lists (a zip bomb, or damage); refused`);
      if (failure.zlib === true) throw refuse(`its compressed data is damaged (${failure.message}); ${Damaged}`);
      if (failure.code === 'ETRUNCATED') throw refuse(`${failure.message}; it is truncated, use another checkpoint`);
    }
    throw err;
  }
  // The worker checked what it read; this checks that what the consumer got is that, byte for byte (CRC-32 here
  // costs a few percent of a restore; the SHA-256 stays on the worker).
  if (handedOut !== verdict.size || handedCrc !== verdict.crc) {
    throw new CheckpointdError(`${dir.file}: the bytes of ${record.name} handed over by the read worker (${handedOut}, CRC-32 ${handedCrc.toString(16)}) differ from what it read (${verdict.size}, CRC-32 ${verdict.crc.toString(16)})`);
  }
  checkVerdict(dir, record, sha256, verdict);
  await checkDescriptor(dir, record);
}

/** Refuse a local header that is not the one the central directory implies. */
async function checkLocalHeader(dir: Directory, record: EntryRecord): Promise<void> {
  const local = await readAt(dir.file, dir.handle, record.offset, localHeaderLength(record), record.name);
  const at = firstDifference(local, encodeLocalHeader(record));
  if (at >= 0) throw new CheckpointFormatError(dir.file, record.name, `its local header is damaged (${fieldAt(LocalFields, at)} differs from the central directory); ${Damaged}`);
}

/** Refuse a data descriptor that does not repeat the central directory's values. */
async function checkDescriptor(dir: Directory, record: EntryRecord): Promise<void> {
  const length = descriptorLength(record);
  if (length === 0) return;
  const raw = await readAt(dir.file, dir.handle, record.offset + localHeaderLength(record) + record.compressedSize, length, record.name);
  if (firstDifference(raw, encodeDescriptor(record)) >= 0) {
    throw new CheckpointFormatError(dir.file, record.name, `its data descriptor differs from the central directory; ${Damaged}`);
  }
}

/** Check the local header and descriptor of an entry that is not read. */
async function checkSkipped(dir: Directory, record: EntryRecord): Promise<void> {
  await checkLocalHeader(dir, record);
  await checkDescriptor(dir, record);
}

/** Read and check manifest.json, and check it against the central directory. */
async function readManifestEntry(dir: Directory, signal?: AbortSignal): Promise<Manifest> {
  const refuse = (entry: string | null, problem: string) => new CheckpointFormatError(dir.file, entry, problem);
  const record = dir.entries[0]!;
  if (record.size > ManifestMaxBytes) throw refuse(ManifestEntry, `is ${record.size} bytes, over the ${ManifestMaxBytes}-byte limit; refused`);
  const chunks: Buffer[] = [];
  for await (const chunk of checkedEntry(dir, record, signal)) chunks.push(chunk);
  let value: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
    value = JSON.parse(text);
  } catch (err) {
    throw refuse(ManifestEntry, `is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  const checked = checkManifest(value);
  if (!checked.ok) throw refuse(ManifestEntry, checked.problem);
  const manifest = checked.manifest;
  const dos = dosTimeOf(manifest.time);
  if (dos.date !== dir.dos.date || dos.time !== dir.dos.time) throw refuse(null, `the ZIP headers' date and time differ from the manifest's time; ${Damaged}`);

  // The manifest and the ZIP must list the same entries, in the same order, with the same sizes.
  const files = manifestFiles(manifest);
  const listed = new Set(files.map((f) => f.path));
  const inZip = new Set(dir.entries.map((e) => e.name));
  for (const e of dir.entries.slice(1)) if (!listed.has(e.name)) throw refuse(e.name, 'is in the ZIP but not listed in the manifest; refused');
  for (const f of files) if (!inZip.has(f.path)) throw refuse(f.path, 'is listed in the manifest but missing from the ZIP; use another checkpoint');
  files.forEach((f, i) => {
    const e = dir.entries[i + 1]!;
    if (e.name !== f.path) throw refuse(e.name, `is out of order: the manifest lists ${f.path} there; refused`);
    if (e.size !== f.size) throw refuse(e.name, `the ZIP says it holds ${e.size} bytes, the manifest ${f.size}; refused`);
  });
  return manifest;
}

/** Open and check a checkpoint up to its manifest. The caller closes `dir.handle`. */
async function openCheckpoint(file: string, signal?: AbortSignal): Promise<{ dir: Directory; manifest: Manifest }> {
  const dir = await openDirectory(file);
  try {
    return { dir, manifest: await readManifestEntry(dir, signal) };
  } catch (err) {
    await dir.handle.close();
    throw err;
  }
}

/** Read only the manifest (found through the central directory); CheckpointFormatError if `file` is not a checkpoint. */
export async function readManifest(file: string): Promise<Manifest> {
  const { dir, manifest } = await openCheckpoint(file);
  await dir.handle.close();
  return manifest;
}

/**
 * Give `data` to the consumer; whatever it leaves unread is drained (and
 * checked) afterwards. A check that fails wins over whatever the consumer
 * made of it.
 */
async function deliver(consumer: EntryConsumer, entry: FileEntry, chunks: AsyncGenerator<Buffer>): Promise<void> {
  const state: { failure: Error | null; finished: boolean } = { failure: null, finished: false };
  const next = async (): Promise<IteratorResult<Buffer>> => {
    try {
      const r = await chunks.next();
      if (r.done === true) state.finished = true;
      return r;
    } catch (err) {
      state.failure ??= err as Error;
      state.finished = true;
      throw err;
    }
  };
  // The consumer's `break` must not end the checks: its return() only stops its own loop.
  const data: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]: () => ({ next, return: async () => ({ done: true, value: undefined }) }),
  };
  try {
    await consumer.file(entry, data);
  } catch (err) {
    if (state.failure !== null) throw state.failure;
    await chunks.return(undefined);
    throw err;
  }
  if (state.failure !== null) throw state.failure;
  while (!state.finished) await next();
}

/**
 * Stream each entry's uncompressed bytes to `consumer`, in archive order,
 * while checking them; throws CheckpointFormatError if anything does not
 * verify, possibly after the consumer has seen an entry's bytes (so build a
 * staged state and adopt it only when this resolves). Entries `only` skips are
 * checked in their headers but not read.
 */
export async function readCheckpointArchive(file: string, consumer: EntryConsumer, options: ReadOptions = {}): Promise<Manifest> {
  const { only, onProgress, signal } = options;
  signal?.throwIfAborted();
  const { dir, manifest } = await openCheckpoint(file, signal);
  try {
    const files = manifestFiles(manifest);
    const selected = files.map((f) => only === undefined || only(f.path));
    const total = files.reduce((sum, f, i) => sum + (selected[i] === true ? f.size : 0), 0);
    let done = 0;
    onProgress?.(0, total);
    const onBytes = (n: number) => {
      done += n;
      onProgress?.(done, total);
    };
    // The selected entries' data is read, inflated and hashed on a worker thread while this one consumes it.
    const jobs: ReadJob[] = [];
    files.forEach((_f, i) => {
      if (selected[i] !== true) return;
      const record = dir.entries[i + 1]!;
      jobs.push({ start: record.offset + localHeaderLength(record), compressedSize: record.compressedSize, size: record.size, deflate: record.method === Method.deflate });
    });
    const reader = jobs.length === 0 ? null : new EntryReader(dir.handle.fd, jobs, consumer.transient === true, signal);
    try {
      let job = 0;
      for (const [i, entry] of files.entries()) {
        signal?.throwIfAborted();
        const record = dir.entries[i + 1]!;
        if (selected[i] === true) await deliver(consumer, entry, workerEntry(dir, record, entry.sha256, reader!.entry(job++), onBytes, signal));
        else await checkSkipped(dir, record);
      }
    } finally {
      await reader?.close();
    }
    return manifest;
  } finally {
    await dir.handle.close();
  }
}
