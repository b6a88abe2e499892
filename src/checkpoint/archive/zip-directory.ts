/**
 * Opens a checkpoint ZIP and checks its structure from the end: the end
 * records, the central directory, the entry names, and that every record is
 * byte for byte what the writer would have written (zip-records.ts).
 */
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { NotFoundError } from '../../errors.js';
import { CheckpointFormatError } from './checkpoint-format-error.js';
import { ManifestEntry, parseEntryName } from './entry-names.js';
import {
  CentralFields,
  Max16,
  Max32,
  Method,
  RecordLength,
  Signature,
  descriptorLength,
  encodeCentralRecord,
  encodeEndRecords,
  fieldAt,
  firstDifference,
  localHeaderLength,
  type DosTime,
  type EntryRecord,
  type MethodCode,
} from './zip-records.js';

/** Largest central directory read into memory (a manifest of 16 MiB lists far fewer entries). */
export const MaxDirectoryBytes = 64 * 1024 * 1024;

/** What the end of a checkpoint says, checked. */
export interface Directory {
  file: string;
  handle: FileHandle;
  /** Size of the file in bytes. */
  size: number;
  /** Entries in archive order, manifest.json first; contiguous from offset 0. */
  entries: EntryRecord[];
  /** Offset of the central directory: where the last entry ends. */
  directoryOffset: number;
  /** The date and time every header carries. */
  dos: DosTime;
}

/** Suffix of problems that mean the bytes changed after they were written. */
export const Damaged = 'the file is damaged, use another checkpoint';

/** Read exactly `length` bytes at `position`, or refuse the file as truncated. */
export async function readAt(file: string, handle: FileHandle, position: number, length: number, entry: string | null = null): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new CheckpointFormatError(file, entry, `the file ends at byte ${position + done}, before the ${length} bytes expected there; it is truncated, use another checkpoint`);
    done += bytesRead;
  }
  return buf;
}

/** Open `file` for reading without ever blocking on a FIFO or a device; refuse what is not a regular file. */
async function openRegular(file: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${file}: no such file`, { cause: err });
    throw err;
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw new CheckpointFormatError(file, null, 'not a regular file');
  }
  return { handle, size: stat.size };
}

interface End {
  count: number;
  directoryOffset: number;
  directorySize: number;
  zip64: boolean;
  /** Where the end records start. */
  start: number;
}

/** Find and parse the end records (leniently: the strict comparison comes later). */
async function readEnd(file: string, handle: FileHandle, size: number): Promise<End> {
  const refuse = (problem: string) => new CheckpointFormatError(file, null, problem);
  if (size === 0) throw refuse('the file is empty; it is not a checkpoint');
  const head = await readAt(file, handle, 0, Math.min(size, 4));
  const isZip = head.length === 4 && head.readUInt32LE(0) === Signature.local;
  const notZip = () => refuse(isZip ? `no end-of-central-directory record at the end: the file is truncated or damaged, use another checkpoint` : 'not a ZIP file, so not a checkpoint');
  if (size < RecordLength.end) throw notZip();
  const tailLength = Math.min(size, RecordLength.end + RecordLength.zip64Locator + RecordLength.zip64End);
  const tail = await readAt(file, handle, size - tailLength, tailLength);
  const e = tail.length - RecordLength.end;
  if (tail.readUInt32LE(e) !== Signature.end) {
    // Tell apart a ZIP with a comment or trailing bytes from one cut short.
    const scanLength = Math.min(size, RecordLength.end + Max16 + 4096);
    const scan = await readAt(file, handle, size - scanLength, scanLength);
    const found = scan.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (found >= 0) throw refuse('the ZIP has a comment or extra bytes after its end record; checkpointd never writes those, so it is not a checkpoint or it is damaged');
    throw notZip();
  }
  const endAt = size - RecordLength.end;
  if (tail.readUInt16LE(e + 20) !== 0) throw refuse(`the end-of-central-directory record is damaged; ${Damaged}`);
  const hasLocator = e >= RecordLength.zip64Locator && tail.readUInt32LE(e - RecordLength.zip64Locator) === Signature.zip64Locator;
  if (!hasLocator) {
    return { count: tail.readUInt16LE(e + 10), directorySize: tail.readUInt32LE(e + 12), directoryOffset: tail.readUInt32LE(e + 16), zip64: false, start: endAt };
  }
  const z = e - RecordLength.zip64Locator - RecordLength.zip64End;
  if (z < 0 || tail.readUInt32LE(z) !== Signature.zip64End) throw refuse(`the zip64 end record is missing or damaged; ${Damaged}`);
  const big = (at: number) => {
    const v = tail.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw refuse(`the zip64 end record is damaged; ${Damaged}`);
    return Number(v);
  };
  return { count: big(z + 24), directorySize: big(z + 40), directoryOffset: big(z + 48), zip64: true, start: endAt - RecordLength.zip64Locator - RecordLength.zip64End };
}

/** Parse one central directory record at `p` of `cd` (leniently). */
function parseCentralRecord(file: string, cd: Buffer, p: number, index: number): { record: EntryRecord; raw: Buffer } {
  const damaged = (what: string) => new CheckpointFormatError(file, null, `the central directory is damaged (record ${index + 1}: ${what}); ${Damaged}`);
  if (p + RecordLength.central > cd.length) throw damaged('cut short');
  if (cd.readUInt32LE(p) !== Signature.central) throw damaged('bad signature');
  const nameLength = cd.readUInt16LE(p + 28);
  const extraLength = cd.readUInt16LE(p + 30);
  const commentLength = cd.readUInt16LE(p + 32);
  const end = p + RecordLength.central + nameLength + extraLength + commentLength;
  if (end > cd.length) throw damaged('runs past the end of the directory');
  const name = cd.toString('latin1', p + RecordLength.central, p + RecordLength.central + nameLength);
  let compressedSize = cd.readUInt32LE(p + 20);
  let size = cd.readUInt32LE(p + 24);
  let offset = cd.readUInt32LE(p + 42);
  const zip64 = size === Max32 && compressedSize === Max32;
  // zip64 extra field: the values whose 32-bit fields hold the marker, in this order.
  let x = p + RecordLength.central + nameLength;
  const extraEnd = x + extraLength;
  while (x + 4 <= extraEnd) {
    const id = cd.readUInt16LE(x);
    const length = cd.readUInt16LE(x + 2);
    if (x + 4 + length > extraEnd) throw new CheckpointFormatError(file, name, `its central directory extra field is damaged; ${Damaged}`);
    if (id === 0x0001) {
      let v = x + 4;
      const take = (): number => {
        if (v + 8 > x + 4 + length) throw new CheckpointFormatError(file, name, `its zip64 extra field is too short; ${Damaged}`);
        const n = cd.readBigUInt64LE(v);
        v += 8;
        if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointFormatError(file, name, `its zip64 extra field holds an impossible size; ${Damaged}`);
        return Number(n);
      };
      if (size === Max32) size = take();
      if (compressedSize === Max32) compressedSize = take();
      if (offset === Max32) offset = take();
    }
    x += 4 + length;
  }
  const record: EntryRecord = {
    name,
    method: cd.readUInt16LE(p + 10) as MethodCode,
    crc: cd.readUInt32LE(p + 16),
    size,
    compressedSize,
    offset,
    zip64,
    dos: { time: cd.readUInt16LE(p + 12), date: cd.readUInt16LE(p + 14) },
  };
  return { record, raw: cd.subarray(p, end) };
}

/**
 * Open a checkpoint and check everything the end of the file says: end
 * records, central directory, names, layout. The caller closes `handle`.
 */
export async function openDirectory(file: string): Promise<Directory> {
  const { handle, size } = await openRegular(file);
  try {
    return await checkDirectory(file, handle, size);
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function checkDirectory(file: string, handle: FileHandle, size: number): Promise<Directory> {
  const refuse = (entry: string | null, problem: string) => new CheckpointFormatError(file, entry, problem);
  const end = await readEnd(file, handle, size);
  if (end.directoryOffset + end.directorySize !== end.start) {
    throw refuse(null, `the central directory is not where the end record says (the file is truncated or damaged); use another checkpoint`);
  }
  if (end.directorySize > MaxDirectoryBytes) throw refuse(null, `the central directory is ${end.directorySize} bytes, over the ${MaxDirectoryBytes}-byte limit`);
  if (end.count * RecordLength.central > end.directorySize) throw refuse(null, `the end record counts more entries than the central directory can hold; ${Damaged}`);
  const cd = await readAt(file, handle, end.directoryOffset, end.directorySize);

  const parsed: { record: EntryRecord; raw: Buffer }[] = [];
  for (let p = 0; p < cd.length; ) {
    const one = parseCentralRecord(file, cd, p, parsed.length);
    parsed.push(one);
    p += one.raw.length;
  }
  if (parsed.length !== end.count) throw refuse(null, `the end record counts ${end.count} entries, the central directory holds ${parsed.length}; ${Damaged}`);

  // What kind of file is this: a checkpoint starts with its manifest.
  const names = parsed.map((p) => p.record.name);
  if (!names.includes(ManifestEntry)) throw refuse(null, 'not a checkpoint: the ZIP holds no manifest.json (was it made by another tool?)');
  if (names[0] !== ManifestEntry) throw refuse(ManifestEntry, 'is not the first entry, so this is not a checkpoint');

  // Names before anything else about an entry: they are what extraction would trust.
  const seen = new Set<string>();
  for (const name of names) {
    const checked = parseEntryName(name);
    if (!checked.ok) throw refuse(name, `${checked.problem}; refused`);
    if (seen.has(name)) throw refuse(name, 'is in the ZIP twice; refused');
    seen.add(name);
  }

  const endRaw = await readAt(file, handle, end.start, size - end.start);
  const endExpected = encodeEndRecords(end.count, end.directoryOffset, end.directorySize, end.zip64);
  if (firstDifference(endRaw, endExpected) >= 0) throw refuse(null, `the end-of-central-directory record is damaged; ${Damaged}`);

  const dos = parsed[0]!.record.dos;
  let expectedOffset = 0;
  for (const { record, raw } of parsed) {
    if (record.method !== Method.store && record.method !== Method.deflate) {
      throw refuse(record.name, `uses compression method ${record.method as number}; checkpoints use only store (0) and deflate (8)`);
    }
    const expected = encodeCentralRecord({ ...record, dos });
    const at = firstDifference(raw, expected);
    if (at >= 0) throw refuse(record.name, `its central directory record is damaged (${fieldAt(CentralFields, at)} differs from what checkpointd writes); ${Damaged}`);
    if (record.method === Method.store && record.compressedSize !== record.size) throw refuse(record.name, `is stored but its compressed and uncompressed sizes differ; ${Damaged}`);
    if (record.offset !== expectedOffset) throw refuse(record.name, `its local header is not where the previous entry ends (byte ${record.offset}, expected ${expectedOffset}); ${Damaged}`);
    expectedOffset += localHeaderLength(record) + record.compressedSize + descriptorLength(record);
  }
  if (expectedOffset !== end.directoryOffset) throw refuse(null, `the entries do not end where the central directory starts; ${Damaged}`);
  return { file, handle, size, entries: parsed.map((p) => ({ ...p.record, dos })), directoryOffset: end.directoryOffset, dos };
}
