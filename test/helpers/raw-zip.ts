/**
 * A tiny ZIP builder for crafting hostile archives in tests: any names, stored
 * or deflated entries, lying sizes and CRCs. It follows checkpointd's ZIP
 * conventions (the format comment in src/checkpoint/archive/manifest.ts):
 * version 2.0, made by Unix, mode 0640, deflated entries with a signed data
 * descriptor, no comments; so a crafted archive fails only where a test means
 * it to. Written independently of the writer, so it also cross-checks it.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';

/** One entry of a raw ZIP. */
export interface RawEntry {
  name: string;
  /** The uncompressed content. */
  content: Buffer;
  method?: 'store' | 'deflate';
  /** Bytes stored as the entry's data instead of `content` (deflated, when deflate); for bombs and garbage. */
  rawData?: Buffer;
  /** Uncompressed size the headers declare (default: `content.length`). */
  declaredSize?: number;
  /** CRC-32 the headers declare (default: that of `content`). */
  crc?: number;
}

/** Options of {@link rawZip}. */
export interface RawZipOptions {
  /** Date and time of every header, taken in UTC (default 2024-01-01T00:00:00Z). */
  time?: Date;
}

/** DOS date and time of `t` in UTC. */
export function dosTime(t: Date): { date: number; time: number } {
  return {
    date: ((t.getUTCFullYear() - 1980) << 9) | ((t.getUTCMonth() + 1) << 5) | t.getUTCDate(),
    time: (t.getUTCHours() << 11) | (t.getUTCMinutes() << 5) | (t.getUTCSeconds() >> 1),
  };
}

/** Build a ZIP of `entries`, in order. */
export function rawZip(entries: RawEntry[], options: RawZipOptions = {}): Buffer {
  const dos = dosTime(options.time ?? new Date('2024-01-01T00:00:00Z'));
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const deflate = e.method === 'deflate';
    const name = Buffer.from(e.name, 'latin1');
    const data = e.rawData ?? (deflate ? zlib.deflateRawSync(e.content) : e.content);
    const size = e.declaredSize ?? e.content.length;
    const crc = e.crc ?? zlib.crc32(e.content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(deflate ? 0x0008 : 0, 6);
    local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt16LE(dos.time, 10);
    local.writeUInt16LE(dos.date, 12);
    local.writeUInt32LE(deflate ? 0 : crc, 14);
    local.writeUInt32LE(deflate ? 0 : data.length, 18);
    local.writeUInt32LE(deflate ? 0 : size, 22);
    local.writeUInt16LE(name.length, 26);
    const descriptor = Buffer.alloc(deflate ? 16 : 0);
    if (deflate) {
      descriptor.writeUInt32LE(0x08074b50, 0);
      descriptor.writeUInt32LE(crc, 4);
      descriptor.writeUInt32LE(data.length, 8);
      descriptor.writeUInt32LE(size, 12);
    }
    const record = Buffer.alloc(46);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt16LE((3 << 8) | 45, 4);
    record.writeUInt16LE(20, 6);
    record.writeUInt16LE(deflate ? 0x0008 : 0, 8);
    record.writeUInt16LE(deflate ? 8 : 0, 10);
    record.writeUInt16LE(dos.time, 12);
    record.writeUInt16LE(dos.date, 14);
    record.writeUInt32LE(crc, 16);
    record.writeUInt32LE(data.length, 20);
    record.writeUInt32LE(size, 24);
    record.writeUInt16LE(name.length, 28);
    record.writeUInt32LE((0o100640 << 16) >>> 0, 38);
    record.writeUInt32LE(offset, 42);
    parts.push(local, name, data, descriptor);
    central.push(record, name);
    offset += local.length + name.length + data.length + descriptor.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** The manifest `time` matching rawZip's default header time. */
export const RawTime = '2024-01-01T00:00:00.0000000Z';

/** Options of {@link rawCheckpoint}. */
export interface RawCheckpointOptions {
  /** What the manifest lists (default: every entry): path, size and the SHA-256 of `content`. */
  listed?: { name: string; content: Buffer; size?: number }[];
  /** Edit the manifest before it is serialised. */
  edit?: (manifest: Record<string, unknown>) => void;
  /** Entries placed before manifest.json. */
  before?: RawEntry[];
  /** Compression of manifest.json. */
  manifestMethod?: 'store' | 'deflate';
}

/**
 * A checkpoint-shaped raw ZIP: manifest.json (listing `collection/collection.json`
 * and `space/<id>/…` entries with sizes and SHA-256s), then `entries`.
 */
export function rawCheckpoint(entries: RawEntry[], options: RawCheckpointOptions = {}): Buffer {
  const listed = options.listed ?? entries.map((e) => ({ name: e.name, content: e.content, size: e.declaredSize }));
  const fileEntry = (l: { name: string; content: Buffer; size?: number }) => ({
    path: l.name,
    size: l.size ?? l.content.length,
    sha256: createHash('sha256').update(l.content).digest('hex'),
  });
  const collection = listed.find((l) => l.name === 'collection/collection.json');
  const spaces = new Map<string, ReturnType<typeof fileEntry>[]>();
  for (const l of listed) {
    const m = /^space\/([^/]+)\/(store|index)\/[^/]+$/.exec(l.name);
    if (m === null) continue;
    const files = spaces.get(m[1]!) ?? [];
    files.push(fileEntry(l));
    spaces.set(m[1]!, files);
  }
  const manifest: Record<string, unknown> = {
    format: 1,
    id: 7,
    scope: collection === undefined ? 'space' : 'collection',
    description: 'crafted',
    time: RawTime,
    trigger: 'manual',
    node: 'test',
    epoch: 1,
    seq: 10,
    collection: collection === undefined ? null : fileEntry(collection),
    spaces: [...spaces].map(([id, files]) => ({ id, template: { name: 'plm', version: '1.0' }, objects: 1, createdSeq: 1, updatedSeq: 2, files })),
  };
  options.edit?.(manifest);
  const text = Buffer.from(JSON.stringify(manifest));
  return rawZip([...(options.before ?? []), { name: 'manifest.json', content: text, method: options.manifestMethod ?? 'store' }, ...entries]);
}
