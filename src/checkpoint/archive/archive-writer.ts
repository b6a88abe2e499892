/**
 * Writes a checkpoint ZIP (format in manifest.ts) in two passes over the
 * sources: the first hashes each file for the manifest, which must come first;
 * the second streams the entries to disk, hashing the file on the way.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { CheckpointdError, ConflictError } from '../../errors.js';
import { Breather } from './breather.js';
import { CheckpointFormatError } from './checkpoint-format-error.js';
import { ManifestEntry } from './entry-names.js';
import { ManifestMaxBytes, checkManifest, type FileEntry, type Manifest, type ManifestHeader } from './manifest.js';
import {
  Max32,
  Method,
  dosTimeOf,
  encodeCentralRecord,
  encodeDescriptor,
  encodeEndRecords,
  encodeLocalHeader,
  needsZip64,
  needsZip64End,
  type DosTime,
  type EntryRecord,
  type MethodCode,
} from './zip-records.js';

/**
 * One file to put in the archive. `chunks()` must yield the same bytes each
 * time it is called (it is called twice), and a yielded Buffer must not be
 * changed afterwards (it may still be queued for the disk).
 */
export interface ArchiveFileSource {
  path: string;
  chunks: () => Iterable<string | Buffer> | AsyncIterable<string | Buffer>;
}

/** One space to put in the archive, with its files (store files, then index files). */
export interface SpaceSource {
  id: string;
  template: { name: string; version: string };
  objects: number;
  createdSeq: number;
  updatedSeq: number;
  files: ArchiveFileSource[];
}

/** How entries are compressed; `level` is zlib's 1 (fastest) to 9 (smallest). */
export type Compression = { method: 'store' } | { method: 'deflate'; level: number };

/** What {@link writeCheckpointArchive} wrote. */
export interface WriteResult {
  manifest: Manifest;
  /** Size of the whole ZIP file in bytes. */
  size: number;
  /** SHA-256 (hex) of the whole ZIP file. */
  sha256: string;
}

/** Options of {@link writeCheckpointArchive}. */
export interface WriteOptions {
  compression: Compression;
  signal?: AbortSignal;
  /** Called as source bytes are written (second pass), with the running total; the manifest is not counted. */
  onProgress?: (bytes: number) => void;
  /** Use zip64 records for every entry and at the end even when small (tests of the zip64 paths). */
  forceZip64?: boolean;
}

/** Permissions of a checkpoint file: it holds every space's data. */
export const CheckpointFileMode = 0o640;

/** Bytes gathered before one write to disk. */
const WriteBatchBytes = 1024 * 1024;
/** Output chunk size of the deflater. */
const DeflateChunkBytes = 256 * 1024;

/** Buffers small records into large writes, hashing every byte on its way to disk; one write in flight. */
class HashingFileSink {
  /** Bytes accepted so far: the offset of the next record. */
  offset = 0;
  private readonly hash: Hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly handle: FileHandle) {}

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.offset += data.length;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes >= WriteBatchBytes) await this.flush();
  }

  /** Start writing what is pending, after the write in flight ends. */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const batch = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.hash.update(batch);
    const position = this.written;
    this.written += batch.length;
    await this.inFlight;
    this.inFlight = this.writeAll(batch, position);
    // Handled here so it is never an unhandled rejection; the next flush or finish awaits it and throws.
    this.inFlight.catch(() => undefined);
  }

  private async writeAll(batch: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < batch.length) {
      const { bytesWritten } = await this.handle.write(batch, done, batch.length - done, position + done);
      done += bytesWritten;
    }
  }

  /** Write everything, fsync, and return the file's SHA-256. */
  async finish(): Promise<string> {
    await this.flush();
    await this.inFlight;
    await this.handle.sync();
    return this.hash.digest('hex');
  }

  /** Wait for the write in flight, ignoring its failure (cleanup after an error). */
  async settle(): Promise<void> {
    await this.inFlight.catch(() => undefined);
  }
}

function toBuffer(chunk: string | Buffer): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
}

interface Hashed {
  source: ArchiveFileSource;
  entry: FileEntry;
  crc: number;
}

/** First pass: size, CRC-32 and SHA-256 of one source. */
async function hashSource(source: ArchiveFileSource, signal?: AbortSignal): Promise<Hashed> {
  const hash = createHash('sha256');
  const breather = new Breather();
  let crc = 0;
  let size = 0;
  for await (const chunk of source.chunks()) {
    await breather.breathe();
    signal?.throwIfAborted();
    const buf = toBuffer(chunk);
    hash.update(buf);
    crc = zlib.crc32(buf, crc);
    size += buf.length;
  }
  return { source, entry: { path: source.path, size, sha256: hash.digest('hex') }, crc };
}

function draftManifest(header: ManifestHeader, collection: FileEntry | null, spaces: SpaceSource[], files: (s: SpaceSource, index: number) => FileEntry[]): Manifest {
  return {
    format: 1,
    id: header.id,
    scope: header.scope,
    description: header.description,
    time: header.time,
    trigger: header.trigger,
    node: header.node,
    epoch: header.epoch,
    seq: header.seq,
    collection,
    spaces: spaces.map((s, i) => ({
      id: s.id,
      template: { name: s.template.name, version: s.template.version },
      objects: s.objects,
      createdSeq: s.createdSeq,
      updatedSeq: s.updatedSeq,
      files: files(s, i),
    })),
  };
}

/** Refuse, before any work, what the readers would refuse. */
function checkSources(target: string, header: ManifestHeader, collection: ArchiveFileSource | null, spaces: SpaceSource[]): void {
  const unhashed = (path: string): FileEntry => ({ path, size: 0, sha256: '0'.repeat(64) });
  const draft = draftManifest(header, collection === null ? null : unhashed(collection.path), spaces, (s) => s.files.map((f) => unhashed(f.path)));
  const checked = checkManifest(draft);
  if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
}

/** Writes entries one after the other and remembers them for the central directory. */
class EntryWriter {
  readonly records: EntryRecord[] = [];
  private written = 0;

  constructor(
    private readonly sink: HashingFileSink,
    private readonly method: MethodCode,
    private readonly level: number,
    private readonly dos: DosTime,
    private readonly forceZip64: boolean,
    private readonly signal?: AbortSignal,
    private readonly onProgress?: (bytes: number) => void,
  ) {}

  /** Write one entry whose size and CRC-32 are known from the first pass; `counted` entries report progress. */
  async entry(name: string, size: number, crc: number, chunks: () => Iterable<string | Buffer> | AsyncIterable<string | Buffer>, counted = true): Promise<void> {
    const method = this.method;
    const record: EntryRecord = { name, method, crc, size, compressedSize: method === Method.store ? size : 0, offset: this.sink.offset, zip64: this.forceZip64 || needsZip64(method, size), dos: this.dos };
    await this.sink.write(encodeLocalHeader(record));
    const start = this.sink.offset;
    let seenCrc = 0;
    let seenSize = 0;
    const signal = this.signal;
    const breather = new Breather();
    const checked = async function* (this: EntryWriter): AsyncGenerator<Buffer> {
      for await (const chunk of chunks()) {
        await breather.breathe();
        signal?.throwIfAborted();
        const buf = toBuffer(chunk);
        if (buf.length === 0) continue;
        seenCrc = zlib.crc32(buf, seenCrc);
        seenSize += buf.length;
        yield buf;
        if (counted) {
          this.written += buf.length;
          this.onProgress?.(this.written);
        }
      }
    }.bind(this);
    if (method === Method.store) {
      for await (const buf of checked()) await this.sink.write(buf);
    } else {
      const sink = this.sink;
      const deflater = zlib.createDeflateRaw({ level: this.level, chunkSize: DeflateChunkBytes });
      const write = async function (deflated: AsyncIterable<Buffer>) {
        for await (const buf of deflated) await sink.write(buf);
      };
      await (signal === undefined ? pipeline(checked, deflater, write) : pipeline(checked, deflater, write, { signal }));
    }
    if (seenSize !== size || seenCrc !== crc) {
      throw new CheckpointdError(`checkpoint source ${name} yielded different bytes on its second pass (${seenSize} bytes, first ${size}); sources must be deterministic`);
    }
    record.compressedSize = this.sink.offset - start;
    if (!record.zip64 && record.compressedSize >= Max32) throw new CheckpointdError(`entry ${name} deflated past its zip64 bound`);
    await this.sink.write(encodeDescriptor(record));
    this.records.push(record);
  }

  /** Write the central directory and end records. */
  async finish(forceZip64: boolean): Promise<void> {
    const directoryOffset = this.sink.offset;
    for (const r of this.records) await this.sink.write(encodeCentralRecord(r));
    const directorySize = this.sink.offset - directoryOffset;
    const count = this.records.length;
    await this.sink.write(encodeEndRecords(count, directoryOffset, directorySize, forceZip64 || needsZip64End(count, directoryOffset, directorySize)));
  }
}

/**
 * Create `target` (O_EXCL) and write the checkpoint ZIP: manifest.json, the
 * collection file, then each space's files in order; fsync it. It neither
 * renames nor fsyncs the folder: the caller publishes. On any failure or abort
 * `target` is removed and the error rethrown.
 */
export async function writeCheckpointArchive(
  target: string,
  header: ManifestHeader,
  collection: ArchiveFileSource | null,
  spaces: SpaceSource[],
  options: WriteOptions,
): Promise<WriteResult> {
  const { compression, signal, onProgress } = options;
  if (compression.method === 'deflate' && !(Number.isInteger(compression.level) && compression.level >= 1 && compression.level <= 9)) {
    throw new CheckpointdError(`deflate level ${compression.level} is not an integer from 1 to 9`);
  }
  signal?.throwIfAborted();
  checkSources(target, header, collection, spaces);

  // First pass: the manifest needs every file's size and SHA-256.
  const hashedCollection = collection === null ? null : await hashSource(collection, signal);
  const hashedSpaces: Hashed[][] = [];
  for (const s of spaces) {
    const files: Hashed[] = [];
    for (const f of s.files) files.push(await hashSource(f, signal));
    hashedSpaces.push(files);
  }
  const manifest = draftManifest(header, hashedCollection?.entry ?? null, spaces, (_s, i) => hashedSpaces[i]!.map((h) => h.entry));
  const checked = checkManifest(manifest);
  if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
  const manifestBytes = Buffer.from(JSON.stringify(checked.manifest, null, 2) + '\n', 'utf8');
  if (manifestBytes.length > ManifestMaxBytes) {
    throw new CheckpointFormatError(target, ManifestEntry, `would be ${manifestBytes.length} bytes, over the ${ManifestMaxBytes}-byte limit`);
  }

  let handle: FileHandle;
  try {
    handle = await fs.open(target, 'wx', CheckpointFileMode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${target} exists already; a checkpoint file is never overwritten`, { cause: err });
    throw err;
  }
  const sink = new HashingFileSink(handle);
  try {
    const method = compression.method === 'store' ? Method.store : Method.deflate;
    const level = compression.method === 'deflate' ? compression.level : 0;
    const forceZip64 = options.forceZip64 === true;
    const entries = new EntryWriter(sink, method, level, dosTimeOf(header.time), forceZip64, signal, onProgress);
    await entries.entry(ManifestEntry, manifestBytes.length, zlib.crc32(manifestBytes), () => [manifestBytes], false);
    for (const h of [...(hashedCollection === null ? [] : [hashedCollection]), ...hashedSpaces.flat()]) {
      await entries.entry(h.entry.path, h.entry.size, h.crc, h.source.chunks);
    }
    await entries.finish(forceZip64);
    const sha256 = await sink.finish();
    await handle.close();
    return { manifest: checked.manifest, size: sink.offset, sha256 };
  } catch (err) {
    await sink.settle();
    await handle.close().catch(() => undefined);
    await fs.rm(target, { force: true });
    throw err;
  }
}
