/**
 * Reading the journal back: start-up recovery (cut a torn tail, refuse damage
 * in the middle) and replay. The rules are explained once, in record.ts.
 */
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { MaxBatchBytes } from '../config/index.js';
import { JournalCorruptError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { countedJournalFiles, listJournalFiles, type JournalFile } from './journal-files.js';
import { FrameHeaderBytes, decodeFrame, decodeFrameHead, frameLength, type JournalRecord } from './record.js';

/** Bytes read per call; memory stays at this or one frame, whichever is larger. */
const ReadChunkBytes = 1024 * 1024;

/** What {@link scanJournal} does and whom it tells. */
export interface ScanOptions {
  /** Deliver only records with a seq above this (default 0: all). */
  fromSeq?: number;
  /**
   * Do not read the files that hold nothing past `fromSeq` (the caller read
   * them already: a follower taking over). Default false: every file is
   * read and checked.
   */
  skipReadFiles?: boolean;
  /**
   * Read only the files that start below this seq (the ones start-up did not
   * read, checked later): the last of them must end just before the file
   * that starts here. Default: every file.
   */
  olderThan?: number;
  /** Stop reading (the scan rejects with the signal's reason) once this aborts. */
  signal?: AbortSignal;
  /** Cut a torn tail off on disk (start-up); false leaves every file as it is (read-only replay, tailing). */
  repair: boolean;
  logger: Logger;
  /**
   * Called with each valid record past `fromSeq`, in seq order. It may return a
   * promise (replaying a restore loads a checkpoint): the scan then waits for it.
   */
  onRecord?: (rec: JournalRecord) => unknown;
  /**
   * Called with each record at or before `fromSeq` whose op is of a type in
   * `earlierTypes` (a start-up from a checkpoint still wants the restores the
   * journal before it holds). The records before `fromSeq` are checked
   * (checksum, seq order) but their payloads are parsed only for this: the
   * others reach no callback.
   */
  onEarlier?: (rec: JournalRecord) => void;
  earlierTypes?: ReadonlySet<string>;
}

/** A torn tail found at the end of the last journal file. */
export interface JournalCut {
  file: string;
  /** Where the last good record ends: the file's length after the cut. */
  offset: number;
  bytesCut: number;
  reason: string;
}

/** What a scan found. */
export interface ScanResult {
  /** Seq of the last good record, 0 when there is none. */
  lastSeq: number;
  /** Epoch of the last good record, 0 when there is none. */
  lastEpoch: number;
  /** Journal files read. */
  files: number;
  /** Valid records read (delivered or not). */
  records: number;
  /** Bytes of valid frames read. */
  bytes: number;
  /** The torn tail found (and cut, with `repair`), or null. */
  cut: JournalCut | null;
}

/** Void files already logged by this process: each is reported once, not at every scan. */
const reportedVoid = new Set<string>();

/** Log `what` about `file` once per process. */
function reportVoidOnce(key: string, log: () => void): void {
  if (reportedVoid.has(key)) return;
  reportedVoid.add(key);
  log();
}

/** Index in `files` (counted, in seq order) of the file that holds seq `fromSeq` + 1, or of the first file: where a reader that holds `fromSeq` starts. */
export function firstFileToRead(files: readonly JournalFile[], fromSeq: number): number {
  return Math.max(0, files.findLastIndex((f) => f.firstSeq <= fromSeq + 1));
}

/** Reads every journal file in seq order, checking frames and seq continuity; see record.ts for the rules. */
export async function scanJournal(dir: string, options: ScanOptions): Promise<ScanResult> {
  const fromSeq = options.fromSeq ?? 0;
  const { counted: all, superseded } = countedJournalFiles(await listJournalFiles(dir));
  for (const file of superseded) {
    reportVoidOnce(file.path, () =>
      options.logger.warn('journal file of a superseded epoch ignored (a fenced primary rolled after its successor took over; nothing in it was acknowledged)', {
        file: file.path,
        epoch: file.epoch,
      }),
    );
  }
  // The file that holds seq fromSeq + 1 (or the first one) and those after it.
  const skip = options.skipReadFiles === true ? firstFileToRead(all, fromSeq) : 0;
  const { olderThan } = options;
  const firstNotRead = olderThan === undefined ? -1 : all.findIndex((f) => f.firstSeq >= olderThan);
  const end = firstNotRead < 0 ? all.length : firstNotRead;
  const files = all.slice(skip, end);
  const result: ScanResult = { lastSeq: 0, lastEpoch: 0, files: 0, records: 0, bytes: 0, cut: null };
  // The seq the next record must carry; unknown until the first file's name.
  let expected: number | null = null;
  for (const [index, file] of files.entries()) {
    const laterFiles = all.length - (skip + index) - 1;
    checkStartsAt(file, expected, result.lastSeq, laterFiles);
    const next = all[skip + index + 1];
    const seal = next === undefined ? null : await sealOf(next);
    expected = await scanFile(file, laterFiles, fromSeq, options, result, seal);
    result.files++;
  }
  // The file after the last one read (olderThan) must go on from it.
  const after = all[end];
  if (files.length > 0 && after !== undefined) checkStartsAt(after, expected, result.lastSeq, all.length - end - 1);
  options.logger.debug('journal scanned', {
    dir,
    ...(olderThan === undefined ? {} : { olderThan }),
    files: result.files,
    records: result.records,
    lastSeq: result.lastSeq,
    cut: result.cut !== null,
  });
  return result;
}

/** A file must start at the seq the journal before it reached (`expected`; null: no file before it was read). */
function checkStartsAt(file: JournalFile, expected: number | null, lastGoodSeq: number, laterFiles: number): void {
  if (expected === null || file.firstSeq === expected) return;
  const what =
    file.firstSeq > expected
      ? `it starts at seq ${file.firstSeq} but the journal before it ends at seq ${expected - 1}, so seqs ${expected}..${file.firstSeq - 1} are missing`
      : `it starts at seq ${file.firstSeq} but the journal before it already reaches seq ${expected - 1}`;
  throw corruption(file.path, 0, lastGoodSeq, what, 0, laterFiles);
}

/**
 * Where the file before `next` was sealed: it ends at the seq before `next`
 * begins, and when `next` has a higher epoch, whatever follows that seq in
 * it is void. The epoch is in `next`'s name; a file named without one
 * (earlier versions) gives its first record's, and no seal when it has none.
 */
interface Seal {
  endSeq: number;
  nextEpoch: number;
}

async function sealOf(next: JournalFile): Promise<Seal | null> {
  if (next.epoch !== null) return { endSeq: next.firstSeq - 1, nextEpoch: next.epoch };
  const handle = await open(next.path, 'r');
  try {
    const reader = new ChunkReader(handle, (await handle.stat()).size);
    if (reader.size === 0) return null;
    const frame = await readFrameAt(reader, 0);
    return frame.ok ? { endSeq: next.firstSeq - 1, nextEpoch: frame.record.epoch } : null;
  } finally {
    await handle.close();
  }
}

/**
 * Scans one file into `result`; returns the seq the next file must start with.
 * With `seal` (a later file exists): once the file's records reach the seq
 * before the later file's first, anything after them is void if the later
 * file begins a higher epoch. Those are bytes the fenced primary of the old
 * epoch wrote after its successor sealed the file (a write that hung on a
 * network file system and landed late): never acknowledged, since the old
 * primary was fenced before its successor claimed the epoch. They are ignored
 * (and logged), not cut: the file is left as it is.
 */
async function scanFile(
  file: JournalFile,
  laterFiles: number,
  fromSeq: number,
  options: ScanOptions,
  result: ScanResult,
  seal: Seal | null,
): Promise<number> {
  let expected = file.firstSeq;
  let offset = 0;
  let bad: { reason: string; size: number } | null = null;
  const handle = await open(file.path, 'r');
  try {
    const reader = new ChunkReader(handle, (await handle.stat()).size);
    while (offset < reader.size) {
      options.signal?.throwIfAborted();
      if (seal !== null && expected > seal.endSeq && (file.epoch ?? result.lastEpoch) < seal.nextEpoch) {
        reportVoidOnce(`${file.path}@${offset}`, () =>
          options.logger.warn('journal bytes written after the file was sealed by a newer epoch are ignored (a fenced primary\'s late write, never acknowledged)', {
            file: file.path,
            offset,
            bytes: reader.size - offset,
            sealedAtSeq: seal.endSeq,
            nextEpoch: seal.nextEpoch,
          }),
        );
        break;
      }
      const frame = await readFrameAt(reader, offset, expected <= fromSeq ? (options.earlierTypes ?? NoTypes) : undefined);
      if (!frame.ok) {
        const later = await findLaterFrame(reader, offset + 1, expected - 1);
        if (laterFiles === 0 && (later === null || (await landedPastHole(reader, offset, later, expected)))) {
          bad = { reason: later === null ? frame.reason : `${frame.reason}; a later batch landed past a hole where an earlier one never did (two writes in flight)`, size: reader.size };
          break;
        }
        const follow = later === null ? 0 : await countFrames(reader, later);
        throw corruption(file.path, offset, result.lastSeq, frame.reason, follow, laterFiles);
      }
      const { record } = frame;
      if (record.seq !== expected) {
        const what =
          offset === 0
            ? `its name says it starts at seq ${file.firstSeq} but its first record is seq ${record.seq}`
            : `it holds seq ${record.seq} where seq ${expected} should follow`;
        throw corruption(file.path, offset, result.lastSeq, what, await countFrames(reader, offset + frame.size), laterFiles);
      }
      if (record.seq > fromSeq) {
        const pending = options.onRecord?.(record);
        if (pending instanceof Promise) await pending;
      } else if (record.op !== null) {
        options.onEarlier?.(record);
      }
      result.lastSeq = record.seq;
      result.lastEpoch = record.epoch;
      result.records++;
      result.bytes += frame.size;
      offset += frame.size;
      expected++;
    }
  } finally {
    await handle.close();
  }
  if (bad !== null) result.cut = await cutTornTail(file.path, offset, bad.size - offset, bad.reason, options);
  return expected;
}

/** Handles a torn tail: cut it off (repair) or just report it. */
async function cutTornTail(
  file: string,
  offset: number,
  bytesCut: number,
  reason: string,
  options: ScanOptions,
): Promise<JournalCut> {
  if (options.repair) {
    const handle = await open(file, 'r+');
    try {
      await handle.truncate(offset);
      await handle.sync();
    } finally {
      await handle.close();
    }
    options.logger.warn('journal torn tail cut off at the last good record', { file, offset, bytesCut, reason });
  } else {
    // Expected while tailing a journal that is being written; nothing is changed.
    options.logger.debug('journal ends in an incomplete record; left as is', { file, offset, bytesCut, reason });
  }
  return { file, offset, bytesCut, reason };
}

/** The error that stops start-up: where, what, and what an operator can do. */
function corruption(
  file: string,
  offset: number,
  lastGoodSeq: number,
  what: string,
  followingRecords: number,
  laterFiles: number,
): JournalCorruptError {
  const follow = [`${followingRecords} valid record(s) follow the damage in this file`];
  if (laterFiles > 0) follow.push(`${laterFiles} later journal file(s) follow`);
  const name = path.basename(file);
  const damage = `journal file ${file} is damaged at byte offset ${offset}: ${what}. The last good seq is ${lastGoodSeq}; ${follow.join(' and ')}.`;
  return new JournalCorruptError(
    `${damage} Start-up stopped rather than drop acknowledged commits: restore ${name} from a copy, ` +
      `or move ${name} and any later journal files aside to accept losing the commits they hold, then start again.`,
    file,
    offset,
    lastGoodSeq,
    damage,
  );
}

type FrameAt = { ok: true; record: JournalRecord; size: number } | { ok: false; reason: string };

const NoTypes: ReadonlySet<string> = new Set();

/**
 * Reads and checks the frame at `offset` (which must be before the end of the
 * file). With `headOnly`, its op is parsed only if of one of those types
 * (decodeFrameHead), else null.
 */
async function readFrameAt(reader: ChunkReader, offset: number, headOnly?: ReadonlySet<string>): Promise<FrameAt> {
  const header = reader.cached(offset, FrameHeaderBytes) ?? (await reader.bytes(offset, FrameHeaderBytes));
  if (header === null) {
    return { ok: false, reason: `frame header cut short (${reader.size - offset} of ${FrameHeaderBytes} bytes)` };
  }
  const length = frameLength(header);
  if (length === null) return { ok: false, reason: `invalid record length ${header.readUInt32LE(0)}` };
  const size = FrameHeaderBytes + length;
  const frame = reader.cached(offset, size) ?? (await reader.bytes(offset, size));
  if (frame === null) return { ok: false, reason: `frame cut short (${reader.size - offset} of ${size} bytes)` };
  const decoded = headOnly === undefined ? decodeFrame(frame) : decodeFrameHead(frame, headOnly);
  return decoded.ok ? { ok: true, record: decoded.record, size } : decoded;
}

/**
 * The first offset at or after `from` where a valid frame with a seq above
 * `lastGoodSeq` starts, byte by byte; null when there is none. Such a frame
 * means the bad one is damage in the middle, not a tail that never finished.
 */
async function findLaterFrame(reader: ChunkReader, from: number, lastGoodSeq: number): Promise<number | null> {
  for (let p = from; p + FrameHeaderBytes < reader.size; p++) {
    const header = reader.cached(p, FrameHeaderBytes) ?? (await reader.bytes(p, FrameHeaderBytes));
    if (header === null) return null;
    // Cheap checks first: most offsets announce an impossible length.
    const length = frameLength(header);
    if (length === null || p + FrameHeaderBytes + length > reader.size) continue;
    const frame = await readFrameAt(reader, p);
    if (frame.ok && frame.record.seq > lastGoodSeq) return p;
  }
  return null;
}

/**
 * True when the bad stretch from `offset` to the valid frame at `later` is a
 * batch that never landed, with the one written after it landed: the stretch
 * holds a run of zero bytes (never written), and from `later` on the file
 * holds nothing but one batch — one frame, or frames of consecutive seqs
 * after a gap, MaxBatchBytes at most — and then at most an unfinished frame.
 * Batches are acknowledged in file order, so none of it was acknowledged.
 */
async function landedPastHole(reader: ChunkReader, offset: number, later: number, expected: number): Promise<boolean> {
  if (!(await holdsZeroRun(reader, offset, later))) return false;
  let at = later;
  let frames = 0;
  let seq = expected; // the missing batch held at least the seq expected here
  while (at < reader.size) {
    const frame = await readFrameAt(reader, at);
    if (!frame.ok) break;
    if (frame.record.seq <= seq || (frames > 0 && frame.record.seq !== seq + 1)) return false;
    seq = frame.record.seq;
    frames++;
    at += frame.size;
  }
  if (frames > 1 && at - later > MaxBatchBytes) return false;
  return at >= reader.size || (await findLaterFrame(reader, at + 1, seq)) === null;
}

/** Bytes of zeros in a row that mark a stretch the writer never wrote (frames have none: their JSON payload cannot hold a NUL). */
const HoleRunBytes = 64;

/** True when [from, to) holds HoleRunBytes zero bytes in a row, or is all zeros when shorter. */
async function holdsZeroRun(reader: ChunkReader, from: number, to: number): Promise<boolean> {
  const need = Math.min(HoleRunBytes, to - from);
  let run = 0;
  for (let at = from; at < to; ) {
    const n = Math.min(64 * 1024, to - at);
    const chunk = reader.cached(at, n) ?? (await reader.bytes(at, n));
    if (chunk === null) return false;
    for (const byte of chunk) {
      run = byte === 0 ? run + 1 : 0;
      if (run >= need) return true;
    }
    at += n;
  }
  return false;
}

/** How many valid frames run back to back from `offset`, for the operator's message. */
async function countFrames(reader: ChunkReader, offset: number): Promise<number> {
  let count = 0;
  while (offset < reader.size) {
    const frame = await readFrameAt(reader, offset);
    if (!frame.ok) break;
    count++;
    offset += frame.size;
  }
  return count;
}

/**
 * A window over a file read in chunks, so a scan holds at most one chunk or
 * one frame in memory however large the file.
 */
class ChunkReader {
  private buf = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private start = 0;
  /** Valid bytes in buf. */
  private length = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** `n` bytes at `offset` if the window already holds them. */
  cached(offset: number, n: number): Buffer | undefined {
    if (offset < this.start || offset + n > this.start + this.length) return undefined;
    return this.buf.subarray(offset - this.start, offset - this.start + n);
  }

  /** `n` bytes at `offset`, or null when the file ends first. Valid until the next call. */
  async bytes(offset: number, n: number): Promise<Buffer | null> {
    if (offset + n > this.size) return null;
    const hit = this.cached(offset, n);
    if (hit !== undefined) return hit;
    const want = Math.min(Math.max(n, ReadChunkBytes), this.size - offset);
    const next = this.buf.length >= want ? this.buf : Buffer.allocUnsafe(Math.max(want, ReadChunkBytes));
    let have = 0;
    if (offset >= this.start && offset < this.start + this.length) {
      // Keep the bytes already read; copy() handles the overlap when next === buf.
      have = this.start + this.length - offset;
      this.buf.copy(next, 0, offset - this.start, this.length);
    }
    this.buf = next;
    this.start = offset;
    this.length = have;
    while (this.length < want) {
      const { bytesRead } = await this.handle.read(next, this.length, want - this.length, offset + this.length);
      if (bytesRead === 0) throw new Error(`journal file shrank while it was read (expected ${this.size} bytes)`);
      this.length += bytesRead;
    }
    return next.subarray(0, n);
  }
}
