/**
 * Writes a checkpoint ZIP (format in manifest.ts) in one pass over the
 * sources. The manifest must come first but lists every file's size and
 * SHA-256, so its place is reserved at its longest possible length and filled
 * at the end, padded with spaces; stored entries' headers are patched the same
 * way. The whole file's SHA-256 is then read back from the disk (with
 * O_DIRECT where the file system allows it; write-worker.ts).
 *
 * The main thread only encodes the sources into batches and the ZIP records;
 * a write worker (worker-sink.ts, write-worker.ts) hashes, CRCs, deflates and
 * writes them, so encoding and compressing use two cores.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import zlib from 'node:zlib';
import { CheckpointdError, ConflictError } from '../../errors.js';
import { Breather } from './breather.js';
import { CheckpointFormatError } from './checkpoint-format-error.js';
import { ManifestEntry } from './entry-names.js';
import { ManifestMaxBytes, checkManifest, type FileEntry, type Manifest, type ManifestFormat, type ManifestHeader } from './manifest.js';
import { WorkerSink, type EntryReport } from './worker-sink.js';
import {
  Method,
  descriptorLength,
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
  /** Whether its data went straight to the disk (O_DIRECT) rather than through the page cache (see WriteOptions.directWrites). */
  direct: boolean;
}

/** Options of {@link writeCheckpointArchive}. */
export interface WriteOptions {
  compression: Compression;
  /**
   * Write the data with O_DIRECT, from an aligned buffer straight to the disk
   * (default true): no page cache to fill and flush, no dirty pages for a
   * commit's fsync to wait behind, far less CPU. Where the file system refuses
   * it, the page cache is used all the same, with an fdatasync every few MiB.
   */
  directWrites?: boolean;
  /**
   * Most bytes a second the file is written and read back at, together, in
   * small evenly spaced writes and reads (default: as fast as the disk takes
   * them); see checkpoint.maxDiskRate.
   */
  maxDiskRate?: number | null;
  signal?: AbortSignal;
  /** Called as source bytes are written, with the running total; the manifest is not counted. */
  onProgress?: (bytes: number) => void;
  /** The manifest format the sources follow (manifest.ts); 1 when absent: NDJSON files. */
  format?: ManifestFormat;
  /** Use zip64 records for every entry and at the end even when small (tests of the zip64 paths). */
  forceZip64?: boolean;
}

/** Permissions of a checkpoint file: it holds every space's data. */
export const CheckpointFileMode = 0o640;

/**
 * Strings shorter than this are joined before they are encoded (one encoding
 * call for many short index lines); longer ones, such as a leaf's text, are
 * encoded straight into the batch. Joining costs a copy on the JS heap (the
 * joined text is flattened when it is encoded): joining leaf texts too made a
 * checkpoint leave as much garbage as it wrote, a young collection every
 * 64 MiB that commits waited on.
 */
const JoinBelowChars = 1024;
/** Joined short strings are encoded once they reach this length. */
const JoinedChars = 16 * 1024;
/** A size no file reaches: formats the manifest's longest possible text. */
const WidestSize = Number.MAX_SAFE_INTEGER;

/**
 * Gathers a source's pieces (strings are UTF-8 encoded straight into place)
 * into buffers of about `BatchBytes`, so that hashing, CRC, the deflater and
 * the disk each see a few large buffers rather than many small ones. Small
 * strings are joined first (one encoding call for many), large ones and
 * Buffers are copied in, a piece larger than a batch gets a batch of its own.
 * Every batch owns its ArrayBuffer, so it can be moved to the write worker;
 * a new batch is one the worker has given back (WorkerSink.batchBuffer).
 */
class Batcher {
  /** Full batches, oldest first; the caller takes them. */
  readonly ready: Buffer[] = [];
  private batch: Buffer;
  private used = 0;
  private small = '';

  constructor(private readonly allocate: () => Buffer) {
    this.batch = allocate();
  }

  add(piece: string | Buffer): void {
    if (typeof piece === 'string') {
      if (piece.length < JoinBelowChars) {
        this.small += piece;
        if (this.small.length >= JoinedChars) this.flushSmall();
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
      // Copied all the same: the caller's Buffer cannot be moved to the worker (and may share a larger ArrayBuffer).
      const own = Buffer.allocUnsafeSlow(piece.length);
      piece.copy(own);
      this.ready.push(own);
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
    // Written straight into the batch when it surely fits (UTF-8 takes at most 3 bytes per UTF-16 code unit):
    // counting its bytes first is a second pass over the text, a tenth of the main thread's work in a checkpoint.
    if (this.used + 3 * text.length <= this.batch.length) {
      this.used += this.batch.write(text, this.used, 'utf8');
      return;
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (this.used + bytes > this.batch.length) this.emit();
    if (bytes > this.batch.length) {
      const own = Buffer.allocUnsafeSlow(bytes);
      own.write(text, 0, 'utf8');
      this.ready.push(own);
      return;
    }
    this.used += this.batch.write(text, this.used, 'utf8');
  }

  private emit(): void {
    if (this.used === 0) return;
    this.ready.push(this.batch.subarray(0, this.used));
    this.batch = this.allocate();
    this.used = 0;
  }
}

/**
 * A source's pieces as batches (see Batcher). A synchronous source is read
 * without an await per piece, yielding a turn between pieces whenever the
 * breather says the turn is used up: a batch can take many pieces.
 */
async function* batchesOf(chunks: Iterable<string | Buffer> | AsyncIterable<string | Buffer>, breather: Breather, allocate: () => Buffer): AsyncGenerator<Buffer> {
  const batcher = new Batcher(allocate);
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

function draftManifest(header: ManifestHeader, collection: FileEntry | null, spaces: SpaceSource[], files: (s: SpaceSource, index: number) => FileEntry[], format: ManifestFormat): Manifest {
  return {
    format,
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
function checkSources(target: string, header: ManifestHeader, collection: ArchiveFileSource | null, spaces: SpaceSource[], format: ManifestFormat): number {
  const widest = (path: string): FileEntry => ({ path, size: WidestSize, sha256: 'f'.repeat(64) });
  const draft = draftManifest(header, collection === null ? null : widest(collection.path), spaces, (s) => s.files.map((f) => widest(f.path)), format);
  const checked = checkManifest(draft);
  if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
  const length = Buffer.byteLength(manifestText(checked.manifest));
  if (length > ManifestMaxBytes) throw new CheckpointFormatError(target, ManifestEntry, `could reach ${length} bytes, over the ${ManifestMaxBytes}-byte limit`);
  return length;
}

/**
 * Writes entries one after the other through the worker and remembers them
 * for the central directory. An entry's compressed size (and so where the
 * next one starts) is known only once the worker has written it, so nothing
 * here waits for it: each entry's data descriptor is a reserved place, and
 * the records get their offsets from the worker's reports at the end.
 */
class EntryWriter {
  readonly records: EntryRecord[] = [];
  /** Each entry's path, in order, for its report. */
  private readonly paths: string[] = [];
  /** Bytes before the first entry: the manifest's reserved place. */
  private reserved = 0;

  constructor(
    private readonly sink: WorkerSink,
    private readonly method: MethodCode,
    private readonly dos: DosTime,
    private readonly forceZip64: boolean,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * Reserve the manifest's place at offset 0: a stored entry of exactly
   * `length` bytes, whose header and text are filled in by `fillManifest`.
   */
  reserveManifest(length: number): void {
    if (this.records.length > 0) throw new Error('the manifest must be the first entry');
    const record: EntryRecord = { name: ManifestEntry, method: Method.store, crc: 0, size: length, compressedSize: length, offset: 0, zip64: this.forceZip64, dos: this.dos };
    this.reserved = localHeaderLength(record) + length;
    this.sink.put(Buffer.alloc(this.reserved));
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

  /** Stream one source into an entry (hashed and written by the worker; see `written`). */
  async entry(source: ArchiveFileSource): Promise<void> {
    // Its size is unknown until it is written, so it may reach 4 GiB: zip64 fields, always. With
    // them the local header does not depend on the offset, known only later (see `written`).
    const record: EntryRecord = { name: source.path, method: this.method, crc: 0, size: 0, compressedSize: 0, offset: 0, zip64: true, dos: this.dos };
    // A stored entry's header carries its CRC-32 and sizes: written now, patched when they are known.
    this.sink.put(encodeLocalHeader(record));
    const breather = new Breather();
    // One batch is held back so that the entry's last one goes out marked as such (it ends the deflate stream).
    let held: Buffer | null = null;
    for await (const buf of batchesOf(source.chunks(), breather, () => this.sink.batchBuffer())) {
      await breather.breathe();
      this.signal?.throwIfAborted();
      if (held !== null) await this.sink.batch(held, false);
      held = buf;
    }
    await this.sink.batch(held ?? Buffer.alloc(0), true);
    // The data descriptor's place, filled by `written`.
    const descriptor = descriptorLength(record);
    if (descriptor > 0) this.sink.put(Buffer.alloc(descriptor));
    this.records.push(record);
    this.paths.push(source.path);
  }

  /**
   * Wait for the worker to have written every entry; complete their records
   * (offsets, CRC-32s, sizes), patch their stored headers and descriptors;
   * their sizes and SHA-256s for the manifest, in order.
   */
  async written(): Promise<FileEntry[]> {
    const reports = await this.sink.entriesWritten(this.paths.length);
    let end = this.reserved;
    return this.paths.map((path, i) => {
      const record = this.records[i + 1]!;
      const report: EntryReport = reports[i]!;
      record.offset = report.start - localHeaderLength(record);
      if (record.offset !== end) throw new Error(`the write worker put ${path} at byte ${record.offset}, not at ${end}`);
      record.crc = report.crc;
      record.size = report.size;
      record.compressedSize = report.compressedSize;
      if (record.method === Method.store) this.sink.patch(record.offset, encodeLocalHeader(record));
      else this.sink.patch(report.start + report.compressedSize, encodeDescriptor(record));
      end = report.start + report.compressedSize + descriptorLength(record);
      return { path, size: report.size, sha256: report.sha256 };
    });
  }

  /** Where the central directory goes: after the last entry (call after `written`). */
  get end(): number {
    const last = this.records.at(-1)!;
    return last.offset + localHeaderLength(last) + last.compressedSize + descriptorLength(last);
  }

  /** Write the central directory and end records. */
  finish(forceZip64: boolean): void {
    const directoryOffset = this.end;
    const directory = Buffer.concat(this.records.map((r) => encodeCentralRecord(r)));
    this.sink.put(directory);
    const count = this.records.length;
    this.sink.put(encodeEndRecords(count, directoryOffset, directory.length, forceZip64 || needsZip64End(count, directoryOffset, directory.length)));
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
  const format = options.format ?? 1;
  const manifestLength = checkSources(target, header, collection, spaces, format);

  let handle: FileHandle;
  try {
    handle = await fs.open(target, 'wx+', CheckpointFileMode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`${target} exists already; a checkpoint file is never overwritten`, { cause: err });
    throw err;
  }
  let sink: WorkerSink | null = null;
  let direct: FileHandle | null = null;
  try {
    // The same file once more, through /proc so that it is this very file; not at all where O_DIRECT is not known.
    if (options.directWrites !== false && fs.constants.O_DIRECT !== undefined) direct = await fs.open(`/proc/self/fd/${handle.fd}`, fs.constants.O_RDWR | fs.constants.O_DIRECT).catch(() => null);
    const method = compression.method === 'store' ? Method.store : Method.deflate;
    const level = compression.method === 'deflate' ? compression.level : 0;
    const forceZip64 = options.forceZip64 === true;
    sink = new WorkerSink(handle.fd, level, signal, onProgress, direct?.fd ?? null, options.maxDiskRate ?? 0);
    const entries = new EntryWriter(sink, method, dosTimeOf(header.time), forceZip64, signal);
    entries.reserveManifest(manifestLength);
    if (collection !== null) await entries.entry(collection);
    for (const s of spaces) {
      for (const f of s.files) await entries.entry(f);
    }
    const files = await entries.written();
    const collectionEntry = collection === null ? null : files.shift()!;
    const spaceEntries = spaces.map((s) => files.splice(0, s.files.length));
    const checked = checkManifest(draftManifest(header, collectionEntry, spaces, (_s, i) => spaceEntries[i]!, format));
    if (!checked.ok) throw new CheckpointFormatError(target, null, `cannot be written: ${checked.problem}`);
    entries.fillManifest(manifestText(checked.manifest));
    entries.finish(forceZip64);
    const { size, sha256, direct: wroteDirect } = await sink.finish();
    await sink.close();
    await direct?.close();
    await handle.close();
    return { manifest: checked.manifest, size, sha256, direct: wroteDirect };
  } catch (err) {
    // The worker is gone before the file is closed: none of its writes can land on a reused descriptor.
    await sink?.close();
    await direct?.close().catch(() => undefined);
    await handle.close().catch(() => undefined);
    await fs.rm(target, { force: true });
    throw err;
  }
}
