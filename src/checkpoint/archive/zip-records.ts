/**
 * The ZIP records of a checkpoint, byte for byte (the rules are in manifest.ts).
 * The writer encodes with these functions and the readers re-encode what they
 * parsed and compare, so anything the writer would not have written is refused.
 */
import { manifestTimeFields } from './manifest.js';

/** Record signatures. */
export const Signature = {
  local: 0x04034b50,
  central: 0x02014b50,
  descriptor: 0x08074b50,
  end: 0x06054b50,
  zip64End: 0x06064b50,
  zip64Locator: 0x07064b50,
} as const;

/** The 32-bit marker meaning "see the zip64 extra field". */
export const Max32 = 0xffffffff;
/** The 16-bit marker meaning "see the zip64 end record". */
export const Max16 = 0xffff;

/** Fixed lengths of the records. */
export const RecordLength = { local: 30, central: 46, end: 22, zip64End: 56, zip64Locator: 20, zip64LocalExtra: 20 } as const;

/** Compression methods a checkpoint may use. */
export const Method = { store: 0, deflate: 8 } as const;
export type MethodCode = (typeof Method)[keyof typeof Method];

const VersionNeeded = 20;
const VersionNeededZip64 = 45;
/** Made by Unix (3), spec 4.5. */
const VersionMadeBy = (3 << 8) | 45;
/** Bit 3: CRC-32 and sizes follow the data in a data descriptor. */
const FlagDataDescriptor = 0x0008;
/** A regular file, mode 0640, in the Unix half of the external attributes. */
export const ExternalAttributes = (0o100640 << 16) >>> 0;
const Zip64ExtraId = 0x0001;

/** Date and time in MS-DOS format. */
export interface DosTime {
  date: number;
  time: number;
}

/** One entry as the records describe it. */
export interface EntryRecord {
  /** ASCII entry name. */
  name: string;
  method: MethodCode;
  crc: number;
  size: number;
  compressedSize: number;
  /** Offset of the local header in the file. */
  offset: number;
  /** The local header carries a zip64 extra field; the data descriptor 8-byte sizes. */
  zip64: boolean;
  dos: DosTime;
}

/** The DOS date and time of a manifest `time` (UTC), clamped to 1980..2107. */
export function dosTimeOf(time: string): DosTime {
  const t = manifestTimeFields(time);
  if (t === null || t.year < 1980) return { date: (1 << 5) | 1, time: 0 };
  if (t.year > 2107) return { date: (127 << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29 };
  return { date: ((t.year - 1980) << 9) | (t.month << 5) | t.day, time: (t.hour << 11) | (t.minute << 5) | (Math.min(t.second, 59) >> 1) };
}

function versionNeeded(e: EntryRecord): number {
  return e.zip64 || e.offset >= Max32 ? VersionNeededZip64 : VersionNeeded;
}

function flags(e: EntryRecord): number {
  return e.method === Method.deflate ? FlagDataDescriptor : 0;
}

/** The local file header of `e`. */
export function encodeLocalHeader(e: EntryRecord): Buffer {
  const name = Buffer.from(e.name, 'latin1');
  const b = Buffer.alloc(RecordLength.local + name.length + (e.zip64 ? RecordLength.zip64LocalExtra : 0));
  const deferred = e.method === Method.deflate;
  b.writeUInt32LE(Signature.local, 0);
  b.writeUInt16LE(versionNeeded(e), 4);
  b.writeUInt16LE(flags(e), 6);
  b.writeUInt16LE(e.method, 8);
  b.writeUInt16LE(e.dos.time, 10);
  b.writeUInt16LE(e.dos.date, 12);
  b.writeUInt32LE(deferred ? 0 : e.crc, 14);
  b.writeUInt32LE(e.zip64 ? Max32 : deferred ? 0 : e.compressedSize, 18);
  b.writeUInt32LE(e.zip64 ? Max32 : deferred ? 0 : e.size, 22);
  b.writeUInt16LE(name.length, 26);
  b.writeUInt16LE(e.zip64 ? RecordLength.zip64LocalExtra : 0, 28);
  name.copy(b, RecordLength.local);
  if (e.zip64) {
    const x = RecordLength.local + name.length;
    b.writeUInt16LE(Zip64ExtraId, x);
    b.writeUInt16LE(16, x + 2);
    b.writeBigUInt64LE(BigInt(deferred ? 0 : e.size), x + 4);
    b.writeBigUInt64LE(BigInt(deferred ? 0 : e.compressedSize), x + 12);
  }
  return b;
}

/** Length of the local header of `e`. */
export function localHeaderLength(e: Pick<EntryRecord, 'name' | 'zip64'>): number {
  return RecordLength.local + e.name.length + (e.zip64 ? RecordLength.zip64LocalExtra : 0);
}

/** Length of the data descriptor of `e` (0 when stored). */
export function descriptorLength(e: Pick<EntryRecord, 'method' | 'zip64'>): number {
  return e.method === Method.deflate ? (e.zip64 ? 24 : 16) : 0;
}

/** The data descriptor that follows a deflated entry's data (empty when stored). */
export function encodeDescriptor(e: EntryRecord): Buffer {
  const b = Buffer.alloc(descriptorLength(e));
  if (b.length === 0) return b;
  b.writeUInt32LE(Signature.descriptor, 0);
  b.writeUInt32LE(e.crc, 4);
  if (e.zip64) {
    b.writeBigUInt64LE(BigInt(e.compressedSize), 8);
    b.writeBigUInt64LE(BigInt(e.size), 16);
  } else {
    b.writeUInt32LE(e.compressedSize, 8);
    b.writeUInt32LE(e.size, 12);
  }
  return b;
}

/** The values a central directory record moves to its zip64 extra field, in order. */
function centralZip64Values(e: EntryRecord): { size: boolean; compressedSize: boolean; offset: boolean } {
  return { size: e.zip64 || e.size >= Max32, compressedSize: e.zip64 || e.compressedSize >= Max32, offset: e.offset >= Max32 };
}

/** The central directory record of `e`. */
export function encodeCentralRecord(e: EntryRecord): Buffer {
  const name = Buffer.from(e.name, 'latin1');
  const z = centralZip64Values(e);
  const extraValues = [z.size ? e.size : null, z.compressedSize ? e.compressedSize : null, z.offset ? e.offset : null].filter((v): v is number => v !== null);
  const extraLength = extraValues.length === 0 ? 0 : 4 + 8 * extraValues.length;
  const b = Buffer.alloc(RecordLength.central + name.length + extraLength);
  b.writeUInt32LE(Signature.central, 0);
  b.writeUInt16LE(VersionMadeBy, 4);
  b.writeUInt16LE(versionNeeded(e), 6);
  b.writeUInt16LE(flags(e), 8);
  b.writeUInt16LE(e.method, 10);
  b.writeUInt16LE(e.dos.time, 12);
  b.writeUInt16LE(e.dos.date, 14);
  b.writeUInt32LE(e.crc, 16);
  b.writeUInt32LE(z.compressedSize ? Max32 : e.compressedSize, 20);
  b.writeUInt32LE(z.size ? Max32 : e.size, 24);
  b.writeUInt16LE(name.length, 28);
  b.writeUInt16LE(extraLength, 30);
  // comment length, disk number start, internal attributes: 0
  b.writeUInt32LE(ExternalAttributes, 38);
  b.writeUInt32LE(z.offset ? Max32 : e.offset, 42);
  name.copy(b, RecordLength.central);
  if (extraLength > 0) {
    let x = RecordLength.central + name.length;
    b.writeUInt16LE(Zip64ExtraId, x);
    b.writeUInt16LE(extraLength - 4, x + 2);
    x += 4;
    for (const v of extraValues) {
      b.writeBigUInt64LE(BigInt(v), x);
      x += 8;
    }
  }
  return b;
}

/** Names of the central directory record's fields by offset, for messages. */
export const CentralFields: [number, string][] = [
  [0, 'signature'], [4, 'version made by'], [6, 'version needed'], [8, 'flags'], [10, 'compression method'],
  [12, 'time'], [14, 'date'], [16, 'CRC-32'], [20, 'compressed size'], [24, 'size'], [28, 'name length'],
  [30, 'extra field length'], [32, 'comment length'], [34, 'disk number'], [36, 'internal attributes'],
  [38, 'external attributes'], [42, 'local header offset'], [46, 'name or extra field'],
];

/** Names of the local header's fields by offset, for messages. */
export const LocalFields: [number, string][] = [
  [0, 'signature'], [4, 'version needed'], [6, 'flags'], [8, 'compression method'], [10, 'time'], [12, 'date'],
  [14, 'CRC-32'], [18, 'compressed size'], [22, 'size'], [26, 'name length'], [28, 'extra field length'], [30, 'name or extra field'],
];

/** Whether the end of the archive needs zip64 end records. */
export function needsZip64End(count: number, directoryOffset: number, directorySize: number): boolean {
  return count >= Max16 || directoryOffset >= Max32 || directorySize >= Max32;
}

/** The end records: zip64 end record and locator when `zip64`, then the end-of-central-directory record. */
export function encodeEndRecords(count: number, directoryOffset: number, directorySize: number, zip64: boolean): Buffer {
  const b = Buffer.alloc((zip64 ? RecordLength.zip64End + RecordLength.zip64Locator : 0) + RecordLength.end);
  let x = 0;
  if (zip64) {
    b.writeUInt32LE(Signature.zip64End, 0);
    b.writeBigUInt64LE(BigInt(RecordLength.zip64End - 12), 4);
    b.writeUInt16LE(VersionMadeBy, 12);
    b.writeUInt16LE(VersionNeededZip64, 14);
    // disk numbers (16, 20): 0
    b.writeBigUInt64LE(BigInt(count), 24);
    b.writeBigUInt64LE(BigInt(count), 32);
    b.writeBigUInt64LE(BigInt(directorySize), 40);
    b.writeBigUInt64LE(BigInt(directoryOffset), 48);
    b.writeUInt32LE(Signature.zip64Locator, 56);
    // disk with the zip64 end record (60): 0
    b.writeBigUInt64LE(BigInt(directoryOffset + directorySize), 64);
    b.writeUInt32LE(1, 72);
    x = RecordLength.zip64End + RecordLength.zip64Locator;
  }
  b.writeUInt32LE(Signature.end, x);
  // disk numbers (x+4, x+6): 0
  b.writeUInt16LE(Math.min(count, Max16), x + 8);
  b.writeUInt16LE(Math.min(count, Max16), x + 10);
  b.writeUInt32LE(Math.min(directorySize, Max32), x + 12);
  b.writeUInt32LE(Math.min(directoryOffset, Max32), x + 16);
  // comment length (x+20): 0
  return b;
}

/** The name of the field at byte `offset` of a record, given its field table. */
export function fieldAt(fields: [number, string][], offset: number): string {
  let name = fields[0]?.[1] ?? 'field';
  for (const [at, n] of fields) if (offset >= at) name = n;
  return name;
}

/** The first byte at which `a` and `b` differ, or -1 when they are equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
