/**
 * Writes a checkpoint ZIP (format in manifest.ts) in one pass over the
 * sources. The manifest must come first but lists every file's size and
 * SHA-256, so its place is reserved at its longest possible length and filled
 * at the end, padded with spaces; stored entries' headers are patched the same
 * way. The whole file's SHA-256 is then read back from the page cache.
 */
import { createHash } from 'node:crypto';
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
  Method,
  dosTimeOf,
  encodeCentralRecord,
  encodeDescriptor,
  encodeEndRecords,
  encodeLocalHeader,
  localHeaderLength,
  needsZip64End,
  type DosTime,
  type EntryRecord,
  type MethodCode,
} from './zip-records.js';

/**
 * One file to put in the archive. `chunks()` is called once; a yielded Buffer
 * must not be changed afterwards (it may still be queued for the disk).
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
  /** Called as source bytes are written, with the running total; the manifest is not counted. */
  onProgress?: (bytes: number) => void;
  /** Use zip64 records for every entry and at the end even when small (tests of the zip64 paths). */
  forceZip64?: boolean;
}

/** Permissions of a checkpoint file: it holds every space's data. */
export const CheckpointFileMode = 0o640;

/** Bytes gathered before one write to disk. */
const WriteBatchBytes = 1024 * 1024;
/** Bytes of source text gathered before hashing and writing them (or handing them to the deflater). */
const BatchBytes = 1024 * 1024;
/** Strings shorter than this are joined before they are encoded. */
const SmallPieceChars = 16 * 1024;
/** Output chunk size of the deflater. */
const DeflateChunkBytes = 256 * 1024;
/** Bytes read at a time when hashing the finished file. */
const HashReadBytes = 4 * 1024 * 1024;
/** A size no file reaches: formats the manifest's longest possible text. */
const WidestSize = Number.MAX_SAFE_INTEGER;

/** Buffers small records into large writes, one write in flight; `patch` rewrites bytes already accepted once the rest is out. */
class FileSink {
  /** Bytes accepted so far: the offset of the next record. */
  offset = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private readonly patches: { at: number; data: Buffer }[] = [];

  constructor(private readonly handle: FileHandle) {}

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.offset += data.length;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes >= WriteBatchBytes) await this.flush();
  }

  /** Leave `length` bytes to be filled by `patch`. */
  async reserve(length: number): Promise<void> {
    await this.write(Buffer.alloc(length));
  }

  /** Replace bytes at `at` (already accepted) with `data` when the file is finished. */
  patch(at: number, data: Buffer): void {
    if (at + data.length > this.offset) throw new Error(`patch of ${data.length} bytes at ${at} runs past the ${this.offset} bytes written`);
    this.patches.push({ at, data });
  }

  /** Start writing what is pending, after the write in flight ends. */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const batch = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
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

  /** Write everything and the patches, then fsync and hash the file (both at once: the hash reads from the page cache); its SHA-256. */
  async finish(signal?: AbortSignal): Promise<string> {
    await this.flush();
    await this.inFlight;
    for (const { at, data } of this.patches) await this.writeAll(data, at);
    const [, sha256] = await Promise.all([this.handle.sync(), this.hashFile(signal)]);
    return sha256;
  }

  private async hashFile(signal?: AbortSignal): Promise<string> {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(HashReadBytes, Math.max(1, this.offset)));
    for (let position = 0; position < this.offset; ) {
      signal?.throwIfAborted();
      const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, this.offset - position), position);
      if (bytesRead === 0) throw new CheckpointdError(`the checkpoint being written ends at byte ${position}, before the ${this.offset} bytes written to it`);
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return hash.digest('hex');
  }

  /** Wait for the write in flight, ignoring its failure (cleanup after an error). */
  async settle(): Promise<void> {
    await this.inFlight.catch(() => undefined);
  }
}

/**
 * Gathers a source's pieces (strings are UTF-8 encoded straight into place)
 * into buffers of about `BatchBytes`, so that hashing, CRC, the deflater and
 * the disk each see a few large buffers rather than many small ones. Small
 * strings are joined first (one encoding call for many), large ones and
 * Buffers are copied in, a piece larger than a batch passes as it is.
 */
class Batcher {
  /** Full batches, oldest first; the caller takes them. */
  readonly ready: Buffer[] = [];
  private batch = Buffer.allocUnsafeSlow(BatchBytes);
  private used = 0;
  private small = '';

  add(piece: string | Buffer): void {
    if (typeof piece === 'string') {
      if (piece.length < SmallPieceChars) {
        this.small += piece;
        if (this.small.length >= SmallPieceChars) this.flushSmall();
        return;
      }
      this.flushSmall();
      this.putString(piece);
      return;
    }
    this.flushSmall();
    if (piece.length === 0) return;
    if (this.used + piece.length > this.batch.length) this.emit();
    if (piece.length > this.batch.length) {
      this.ready.push(piece);
      return;
    }
    piece.copy(this.batch, this.used);
    this.used += piece.length;
  }

  /** Hand out what is left as the last batch. */
  end(): void {
    this.flushSmall();
    this.emit();
  }

  private flushSmall(): void {
    if (this.small.length === 0) return;
    const text = this.small;
    this.small = '';
    this.putString(text);
  }

  private putString(text: string): void {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (this.used + bytes > this.batch.length) this.emit();
    if (bytes > this.batch.length) {
      this.ready.push(Buffer.from(text, 'utf8'));
      return;
    }
    this.used += this.batch.write(text, this.used, 'utf8');
  }

  private emit(): void {
    if (this.used === 0) return;
    this.ready.push(this.batch.subarray(0, this.used));
    this.batch = Buffer.allocUnsafeSlow(BatchBytes);
    this.used = 0;
  }
}

/**
 * A source's pieces as batches (see Batcher). A synchronous source is read
 * without an await per piece, yielding a turn between pieces whenever the
 * breather says the turn is used up: a batch can take many pieces.
 */
async function* batchesOf(chunks: Iterable<string | Buffer> | AsyncIterable<string | Buffer>, breather: Breather): AsyncGenerator<Buffer> {
  const batcher = new Batcher();
  if (Symbol.iterator in chunks) {
    for (const piece of chunks) {
      batcher.add(piece);
      while (batcher.ready.length > 0) yield batcher.ready.shift()!;
      if (breather.due()) await breather.rest();
    }
  } else {
    for await (const piece of chunks) {
      batcher.add(piece);
      while (batcher.ready.length > 0) yield batcher.ready.shift()!;
      await breather.breathe();
    }
  }
  batcher.end();
  yield* batcher.ready;
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
    ...(header.installation === undefined ? {} : { installation: header.installation }),
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

function manifestText(manifest: Manifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

/**
 * Refuse, before any work, what the readers would refuse, and return the
 * manifest's longest possible length in bytes: its text with every size at
 * its widest (the SHA-256s have a fixed width).
 */
function checkSources(target: string, header: ManifestHeader, collection: ArchiveFileSource | null, spaces: SpaceSource[]): number {
  const widest = (path: string): FileEntry => ({ path, size: WidestSize, sha256: 'f'.repeat(64) });
  const draft = draftManifest(header, collection === null ? null : widest(collection.path), spaces, (s) => s.files.map((f) => widest(f.path)));
  const checked = checkManifest(draft);
  if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
  const length = Buffer.byteLength(manifestText(checked.manifest));
  if (length > ManifestMaxBytes) throw new CheckpointFormatError(target, ManifestEntry, `could reach ${length} bytes, over the ${ManifestMaxBytes}-byte limit`);
  return length;
}

/** Writes entries one after the other and remembers them for the central directory. */
class EntryWriter {
  readonly records: EntryRecord[] = [];
  private written = 0;

  constructor(
    private readonly sink: FileSink,
    private readonly method: MethodCode,
    private readonly level: number,
    private readonly dos: DosTime,
    private readonly forceZip64: boolean,
    private readonly signal?: AbortSignal,
    private readonly onProgress?: (bytes: number) => void,
  ) {}

  /**
   * Reserve the manifest's place at offset 0: a stored entry of exactly
   * `length` bytes, whose header and text are filled in by `fillManifest`.
   */
  async reserveManifest(length: number): Promise<void> {
    const record: EntryRecord = { name: ManifestEntry, method: Method.store, crc: 0, size: length, compressedSize: length, offset: this.sink.offset, zip64: this.forceZip64, dos: this.dos };
    if (record.offset !== 0) throw new Error('the manifest must be the first entry');
    await this.sink.reserve(localHeaderLength(record) + length);
    this.records.push(record);
  }

  /** Fill the reserved place with `text`, padded with spaces (JSON allows trailing white space) to its length. */
  fillManifest(text: string): void {
    const record = this.records[0]!;
    const bytes = Buffer.alloc(record.size, 0x20);
    const length = bytes.write(text, 'utf8');
    if (length !== Buffer.byteLength(text)) throw new Error(`the manifest grew past the ${record.size} bytes reserved for it`);
    record.crc = zlib.crc32(bytes);
    this.sink.patch(0, Buffer.concat([encodeLocalHeader(record), bytes]));
  }

  /** Stream one source into an entry; its size and SHA-256 for the manifest. */
  async entry(source: ArchiveFileSource): Promise<FileEntry> {
    const method = this.method;
    // Its size is unknown until it is written, so it may reach 4 GiB: zip64 fields, always.
    const record: EntryRecord = { name: source.path, method, crc: 0, size: 0, compressedSize: 0, offset: this.sink.offset, zip64: true, dos: this.dos };
    // A stored entry's header carries its CRC-32 and sizes: written now, patched when they are known.
    await this.sink.write(encodeLocalHeader(record));
    const start = this.sink.offset;
    const hash = createHash('sha256');
    let crc = 0;
    let size = 0;
    const signal = this.signal;
    const breather = new Breather();
    const checked = async function* (this: EntryWriter): AsyncGenerator<Buffer> {
      for await (const buf of batchesOf(source.chunks(), breather)) {
        await breather.breathe();
        signal?.throwIfAborted();
        hash.update(buf);
        crc = zlib.crc32(buf, crc);
        size += buf.length;
        yield buf;
        this.written += buf.length;
        this.onProgress?.(this.written);
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
    record.crc = crc;
    record.size = size;
    record.compressedSize = this.sink.offset - start;
    if (method === Method.store) this.sink.patch(record.offset, encodeLocalHeader(record));
    await this.sink.write(encodeDescriptor(record));
    this.records.push(record);
    return { path: source.path, size, sha256: hash.digest('hex') };
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
 * Create `target` (O_EXCL) and write the checkpoint ZIP in one pass over the
 * sources: a place for manifest.json, the collection file, then each space's
 * files in order, each hashed on its way out; then the manifest into its
 * place; fsync; and the file's SHA-256, read back from the page cache. It
 * neither renames nor fsyncs the folder: the caller publishes. On any failure
 * or abort `target` is removed and the error rethrown.
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
  const manifestLength = checkSources(target, header, collection, spaces);

  let handle: FileHandle;
  try {
    handle = await fs.open(target, 'wx+', CheckpointFileMode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${target} exists already; a checkpoint file is never overwritten`, { cause: err });
    throw err;
  }
  const sink = new FileSink(handle);
  try {
    const method = compression.method === 'store' ? Method.store : Method.deflate;
    const level = compression.method === 'deflate' ? compression.level : 0;
    const forceZip64 = options.forceZip64 === true;
    const entries = new EntryWriter(sink, method, level, dosTimeOf(header.time), forceZip64, signal, onProgress);
    await entries.reserveManifest(manifestLength);
    const collectionEntry = collection === null ? null : await entries.entry(collection);
    const spaceEntries: FileEntry[][] = [];
    for (const s of spaces) {
      const files: FileEntry[] = [];
      for (const f of s.files) files.push(await entries.entry(f));
      spaceEntries.push(files);
    }
    const checked = checkManifest(draftManifest(header, collectionEntry, spaces, (_s, i) => spaceEntries[i]!));
    if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
    entries.fillManifest(manifestText(checked.manifest));
    await entries.finish(forceZip64);
    const sha256 = await sink.finish(signal);
    await handle.close();
    return { manifest: checked.manifest, size: sink.offset, sha256 };
  } catch (err) {
    await sink.settle();
    await handle.close().catch(() => undefined);
    await fs.rm(target, { force: true });
    throw err;
  }
}
